"""Entry point of the PyInstaller bundle: the same `ferry` command as the wheel's."""

import sys

from desktop_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
