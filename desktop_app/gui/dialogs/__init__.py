"""The window's dialogs: settings, first run, sign-in, about."""
