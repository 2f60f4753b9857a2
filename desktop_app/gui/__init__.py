"""The window: PySide6 views over desktop_app.core."""
