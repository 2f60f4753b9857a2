"""Entry point of the PyInstaller bundle: the same `ferry` command as the wheel's."""

import multiprocessing
import sys

from desktop_app.cli import main

if __name__ == "__main__":
    # The window runs its engine in a spawned child; in a frozen program the
    # child is this executable again, and freeze_support() turns it into one.
    multiprocessing.freeze_support()
    sys.exit(main())
