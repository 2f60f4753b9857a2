"""GUI tests drive the real window offscreen; every started backend is stopped."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
