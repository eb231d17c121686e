"""setup_logger idempotence and outputs; rate-limited logging helpers; small tables."""
import logging

import pytest

from detectron2.utils import logger as d2_logger
from detectron2.utils.logger import (
    _log_api_usage,
    create_small_table,
    log_every_n,
    log_every_n_seconds,
    log_first_n,
    setup_logger,
)


@pytest.fixture
def fresh_name(request):
    """A logger name unique to the test, with its handlers removed afterwards."""
    name = "d2test." + request.node.name
    yield name
    log = logging.getLogger(name)
    for h in list(log.handlers):
        log.removeHandler(h)


def test_setup_logger_is_idempotent(fresh_name):
    a = setup_logger(name=fresh_name)
    b = setup_logger(name=fresh_name)
    assert a is b
    assert len(a.handlers) == 1  # no duplicated console handler
    assert a.level == logging.DEBUG and a.propagate is False


def test_file_output_and_ranks(fresh_name, tmp_path):
    log = setup_logger(output=str(tmp_path), name=fresh_name, color=False)
    log.info("hello file")
    setup_logger(output=str(tmp_path / "named.log"), distributed_rank=1, name=fresh_name + ".r1").warning("rank1")
    for h in logging.getLogger(fresh_name).handlers + logging.getLogger(fresh_name + ".r1").handlers:
        h.flush()
    text = (tmp_path / "log.txt").read_text()
    assert "hello file" in text and fresh_name in text and "INFO" in text
    assert "rank1" in (tmp_path / "named.log.rank1").read_text()
    # Rank > 0 gets no console handler: only the file handler.
    assert len(logging.getLogger(fresh_name + ".r1").handlers) == 1
    logging.getLogger(fresh_name + ".r1").handlers.clear()


def test_console_output_is_abbreviated_and_coloured(fresh_name, capsys):
    log = setup_logger(name=fresh_name, abbrev_name="short")
    log.info("plain message")
    log.warning("careful")
    out = capsys.readouterr().out
    assert "plain message" in out
    assert "WARNING" in out and "careful" in out
    # Loggers below the root show the abbreviation instead of the root name.
    child = logging.getLogger(fresh_name + ".child")
    child.info("from child")
    out = capsys.readouterr().out
    assert "short.child" in out and fresh_name not in out


def test_abbreviation_does_not_leak_into_the_file(fresh_name, tmp_path):
    setup_logger(output=str(tmp_path / "f.log"), name=fresh_name, abbrev_name="ab")
    logging.getLogger(fresh_name + ".child").info("to both")
    for h in logging.getLogger(fresh_name).handlers:
        h.flush()
    assert fresh_name + ".child" in (tmp_path / "f.log").read_text()


def test_no_stdout_option(fresh_name):
    log = setup_logger(name=fresh_name, configure_stdout=False)
    assert log.handlers == []


def test_log_first_n(caplog):
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            log_first_n(logging.INFO, "first-n message", n=2, name="d2test.first")
        for i in range(3):
            log_first_n(logging.INFO, "by message", n=1, key="message", name="d2test.first")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("first-n message") == 2
    assert messages.count("by message") == 1
    with pytest.raises(ValueError, match="key"):
        log_first_n(logging.INFO, "x", key="wrong")


def test_log_every_n(caplog):
    with caplog.at_level(logging.INFO):
        for i in range(7):
            log_every_n(logging.INFO, f"every {i}", n=3, name="d2test.every")
    assert [r.getMessage() for r in caplog.records] == ["every 0", "every 3", "every 6"]


def test_log_every_n_seconds(caplog, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(d2_logger.time, "time", lambda: now[0])
    with caplog.at_level(logging.INFO):
        for step in range(6):
            now[0] = 1000.0 + step * 0.5
            log_every_n_seconds(logging.INFO, f"t{step}", n=1, name="d2test.seconds")
    assert [r.getMessage() for r in caplog.records] == ["t0", "t2", "t4"]


def test_caller_name_is_the_default_logger(caplog):
    with caplog.at_level(logging.INFO):
        log_first_n(logging.INFO, "who am i")
    assert caplog.records[-1].name == __name__


def test_create_small_table():
    table = create_small_table({"AP": 40.12345, "AP50": 60.0, "name": "x"})
    lines = table.splitlines()
    assert len(lines) == 3
    assert "AP" in lines[0] and "AP50" in lines[0] and "name" in lines[0]
    assert "40.123" in lines[2] and "60.000" in lines[2] and "x" in lines[2]
    assert lines[1].startswith("|:")


def test_log_api_usage_accepts_identifier():
    _log_api_usage("tests.logger")  # must not raise
