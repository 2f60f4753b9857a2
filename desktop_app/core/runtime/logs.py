"""Logging: a rotating file in the log dir, and stderr for the CLI.

Every handler carries a :class:`RedactingFilter`, which replaces any secret
registered with it (and anything that looks like a credential assignment or a
password in a URL) before a line is written, so a secret cannot reach a log
even by accident.
"""

from __future__ import annotations

import base64
import logging
import logging.handlers
import re
import sys
import threading
from pathlib import Path

_PATTERNS = (
    re.compile(
        r"(?i)(secret[_-]?(access[_-]?)?key|password|passwd|token)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",]+)"
    ),
    re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s]+)(@)"),
)
REDACTED = "***"


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no known secret is printed."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def add_binary_secret(self, secret: bytes | None) -> None:
        """A secret of raw bytes (an SSE-C key): each form in which it could reach a
        line of text (base64 as sent in its header, hex, the repr of the bytes)."""
        if secret:
            self.add_secret(base64.b64encode(secret).decode("ascii"))
            self.add_secret(secret.hex())
            self.add_secret(repr(secret)[2:-1])

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(3)}{REDACTED}", text)
        return _PATTERNS[1].sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redact(message)
        record.args = None
        return True


REDACTOR = RedactingFilter()


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file; when it cannot be written (disk full), says so once on stderr.

    The standard handler prints a traceback for every line it fails to
    write: thousands of them when the disk is full. Ferry goes on without
    its log (the journal, not the log, is what keeps data safe).
    """

    _complained = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: ARG002 - logging's signature
        if not self._complained:
            self._complained = True
            error = sys.exc_info()[1]
            sys.stderr.write(f"ferry: cannot write the log {self.baseFilename} ({error}); "
                             "going on without it.\n")  # fmt: skip


def _ferry_records_only(record: logging.LogRecord) -> bool:
    return record.name == "ferry" or record.name.startswith(("ferry.", "desktop_app"))


def configure_logging(
    log_file: Path, *, stderr_level: int | None = logging.WARNING, file_level: int = logging.INFO
) -> None:
    """Send Ferry's logs to a rotating file and, for the CLI, to stderr.

    The file holds INFO and above unless asked for more (``ferry -v``): at
    DEBUG every command wrote keyring's backend search, six lines, and the
    lines that matter drowned in them.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ferry", False):
            root.removeHandler(handler)
            handler.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = _LogFile(log_file, maxBytes=5 * 1024 * 1024, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    )
    file_handler.setLevel(file_level)
    handlers: list[logging.Handler] = [file_handler]
    if stderr_level is not None:
        console = logging.StreamHandler(sys.stderr)
        # An undecodable file name must not break a line on the terminal.
        if hasattr(sys.stderr, "reconfigure"):
            sys.stderr.reconfigure(errors="backslashreplace")
        console.setFormatter(logging.Formatter("ferry: %(message)s"))
        console.setLevel(stderr_level)
        # Libraries' own warnings (botocore's refresh tracebacks) go to the file
        # only: what they mean reaches the terminal as Ferry's translated error.
        console.addFilter(_ferry_records_only)
        handlers.append(console)
    for handler in handlers:
        handler.addFilter(REDACTOR)
        handler._ferry = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # botocore logs request bodies and headers at DEBUG, watchdog every file
    # system event (thousands for one folder): keep them out of the file.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "alembic", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
