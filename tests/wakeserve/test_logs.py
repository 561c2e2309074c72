"""Other libraries log at WARNING unless DEBUG is asked for; ``up`` logs to its file, warnings to the terminal."""

from __future__ import annotations

import logging

import pytest

from wakeserve import logs


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logs.THIRD_PARTY}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [(logging.INFO, logging.WARNING), (logging.WARNING, logging.WARNING), (logging.ERROR, logging.ERROR),
     (logging.DEBUG, logging.DEBUG)],
)  # fmt: skip
def test_third_party_levels(chosen, expected):
    logs.quiet_third_party(chosen)
    assert {logging.getLogger(name).level for name in ("kafka", "httpx", "botocore", "kserve")} == {expected}


def test_up_logs_to_its_file_and_libraries_info_stays_out(tmp_path, capsys):
    path = tmp_path / "state" / "up.log"
    logs.to_file(path, "INFO")
    logging.getLogger("wakeserve.pool").info("scale 0 -> 1")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/ok")
    logging.getLogger("wakeserve.autoscaler").warning("reading lag failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "scale 0 -> 1" in text and "reading lag failed" in text and "HTTP Request" not in text
    err = capsys.readouterr().err
    assert "reading lag failed" in err and "scale 0 -> 1" not in err


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        logs.level_of("loud")
