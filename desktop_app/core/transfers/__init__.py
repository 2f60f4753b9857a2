"""Where a transfer lives while something acts on it.

``holds`` is the one registry of who acts on a transfer now: a worker's
attempt or a person's action (cancel, pause, retry), never both at once.
"""
