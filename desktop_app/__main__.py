from desktop_app.cli import main

# The guard matters: the window's engine process (multiprocessing, spawn)
# imports the parent's main module again, and must not start a second Ferry.
if __name__ == "__main__":
    raise SystemExit(main())
