"""`ferry sandbox`: the local S3 sandbox and its 'local' profile.

Starts the sandbox (or finds the one another Ferry started), writes its
profile and says how aws-cli and rclone reach it; ``--show`` says so without
starting anything, ``--open`` opens the window on it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from desktop_app.cli.rendering import EXIT_ERROR, EXIT_OK, say
from desktop_app.cli.session import environment
from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.profiles import DEFAULT_PROFILE_NAME


def cmd_sandbox(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.sandbox_profile import sandbox_access, start_sandbox

    env = environment()
    if args.show:
        return _show_sandbox(env)
    server, state, profile = start_sandbox(env)
    say(
        f"Local sandbox running at {state.endpoint_url} (bucket {profile.bucket!r}, "
        f"data in {env.paths.sandbox_dir}). Profile {profile.name!r} is ready."
    )
    for line in sandbox_access(profile).lines():
        say(f"  {line}")
    try:
        if args.open:
            from desktop_app.gui.app import run_gui

            return run_gui(env, profile.name)
        if not server.owned:
            say("It was already running (started by another Ferry); nothing more to do.")
            return EXIT_OK
        say("Press Ctrl-C to stop it.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        return EXIT_OK
    finally:
        server.stop()


def _show_sandbox(env: Environment) -> int:
    """Where the sandbox is and how aws-cli or rclone reach it; starts nothing."""
    from desktop_app.core.runtime.sandbox_profile import sandbox_access, sandbox_running

    try:
        profile = env.profiles.get(DEFAULT_PROFILE_NAME)
    except FerryError:
        profile = None
    if profile is None or not profile.sandbox:
        say("No sandbox yet: `ferry sandbox` starts one and writes its profile.")
        return EXIT_ERROR
    state = "running" if sandbox_running(env) else "stopped: `ferry sandbox` starts it"
    print(f"The local sandbox ({state})")
    for line in sandbox_access(profile).lines():
        print(line)
    return EXIT_OK
