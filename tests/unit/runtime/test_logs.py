import logging
from pathlib import Path

from desktop_app.core.runtime.logs import REDACTOR, configure_logging


def test_no_secret_reaches_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "ferry.log"
    configure_logging(log_file, stderr_level=None)
    REDACTOR.add_secret("wJalrXUtnFEMI-very-secret")
    logger = logging.getLogger("ferry.test")
    logger.warning("using secret %s for the upload", "wJalrXUtnFEMI-very-secret")
    logger.warning("catalog at postgresql://alice:hunter2pw@db.example/ferry")
    logger.warning("config aws_secret_access_key=AbCdEf123456 region=eu")
    try:
        raise RuntimeError("failed with password=topsecretpw")
    except RuntimeError:
        logger.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert "using secret *** for the upload" in text
    for secret in ("wJalrXUtnFEMI-very-secret", "hunter2pw", "AbCdEf123456", "topsecretpw"):
        assert secret not in text
    assert "postgresql://alice:***@db.example/ferry" in text


def test_file_system_events_do_not_flood_the_log(tmp_path: Path) -> None:
    log_file = tmp_path / "ferry.log"
    configure_logging(log_file, stderr_level=None)
    for n in range(1000):
        logging.getLogger("watchdog.observers.inotify_buffer").debug("in-event %s", n)
    logging.getLogger("desktop_app.core.runtime.watcher").info("Watching /home/ann/Inbox")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert "in-event" not in text
    assert "Watching /home/ann/Inbox" in text


def test_the_log_file_holds_info_and_above_unless_debug_is_asked_for(tmp_path: Path) -> None:
    logger = logging.getLogger("ferry.test")
    for level, log_file in ((None, tmp_path / "default.log"), (logging.DEBUG, tmp_path / "v.log")):
        if level is None:
            configure_logging(log_file, stderr_level=None)
        else:
            configure_logging(log_file, stderr_level=None, file_level=level)
        logging.getLogger("keyring.backend").debug("Loading KWallet")
        logger.debug("a detail for the maintainer")
        logger.info("Profile team: S3 credentials from the keyring")
        for handler in logging.getLogger().handlers:
            handler.flush()
    default, verbose = (tmp_path / "default.log").read_text(), (tmp_path / "v.log").read_text()
    assert " DEBUG " not in default
    assert "Loading KWallet" not in default
    assert "S3 credentials from the keyring" in default
    assert "a detail for the maintainer" in verbose
    assert "Loading KWallet" in verbose
