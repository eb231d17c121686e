"""Logging setup (console + file, rank aware) and rate-limited logging helpers."""
import atexit
import functools
import logging
import os
import sys
import time
from collections import Counter
from typing import Dict, Optional

import torch
from tabulate import tabulate
from termcolor import colored

from .file_io import PathManager

__all__ = ["setup_logger", "log_first_n", "log_every_n", "log_every_n_seconds", "create_small_table"]

D2_LOG_BUFFER_SIZE_KEY = "D2_LOG_BUFFER_SIZE"
DEFAULT_LOG_BUFFER_SIZE = 1024 * 1024  # remote (e.g. "manifold://") log files write in 1 MiB chunks


class _ColorfulFormatter(logging.Formatter):
    """Shortens the root logger name to ``abbrev_name`` and colours warnings and errors."""

    def __init__(self, *args, root_name: str, abbrev_name: str = "", **kwargs):
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""
        super().__init__(*args, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (the log file) must still see the full name.
        record = logging.makeLogRecord(record.__dict__)
        record.name = record.name.replace(self._root_name, self._abbrev_name)
        log = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            prefix = colored("WARNING", "red", attrs=["blink"])
        elif record.levelno in (logging.ERROR, logging.CRITICAL):
            prefix = colored("ERROR", "red", attrs=["blink", "underline"])
        else:
            return log
        return prefix + " " + log


@functools.lru_cache()  # same arguments -> same logger, no duplicated handlers
def setup_logger(
    output: Optional[str] = None,
    distributed_rank: int = 0,
    *,
    color: bool = True,
    name: str = "detectron2",
    abbrev_name: Optional[str] = None,
    enable_propagation: bool = False,
    configure_stdout: bool = True,
) -> logging.Logger:
    """Initialize the logger ``name`` and set its verbosity level to DEBUG.

    Args:
        output: a file name ending in ".txt"/".log", or a directory (logs go to
            ``output/log.txt``). None: no file output. Ranks > 0 write to ``<file>.rank<N>``.
        distributed_rank: only rank 0 logs to stdout.
        color: colourful console output.
        name: the root logger name this sets up.
        abbrev_name: short name shown instead of ``name`` on the console
            ("d2" for "detectron2" by default).
        enable_propagation: let records also reach ancestor loggers' handlers.
        configure_stdout: attach a console handler (on rank 0).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = enable_propagation

    if abbrev_name is None:
        abbrev_name = "d2" if name == "detectron2" else name

    plain_formatter = logging.Formatter(
        "[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S"
    )
    if configure_stdout and distributed_rank == 0:
        ch = logging.StreamHandler(stream=sys.stdout)
        ch.setLevel(logging.DEBUG)
        if color:
            formatter = _ColorfulFormatter(
                colored("[%(asctime)s %(name)s]: ", "green") + "%(message)s",
                datefmt="%m/%d %H:%M:%S",
                root_name=name,
                abbrev_name=str(abbrev_name),
            )
        else:
            formatter = plain_formatter
        ch.setFormatter(formatter)
        logger.addHandler(ch)

    if output is not None:
        if output.endswith(".txt") or output.endswith(".log"):
            filename = output
        else:
            filename = os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = filename + f".rank{distributed_rank}"
        PathManager.mkdirs(os.path.dirname(filename) or ".")
        fh = logging.StreamHandler(_cached_log_stream(filename))
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(plain_formatter)
        logger.addHandler(fh)
    return logger


@functools.lru_cache(maxsize=None)  # one open stream per file, even across loggers
def _cached_log_stream(filename: str):
    remote = "://" in filename
    buffering = int(os.environ.get(D2_LOG_BUFFER_SIZE_KEY, DEFAULT_LOG_BUFFER_SIZE)) if remote else -1
    stream = PathManager.open(filename, "a", buffering=buffering)
    atexit.register(stream.close)
    return stream


def _find_caller():
    """(module name, (file, line, function)) of the first frame outside this file."""
    frame = sys._getframe(2)
    this_file = os.path.normcase(os.path.abspath(__file__))
    while frame is not None:
        code = frame.f_code
        if os.path.normcase(os.path.abspath(code.co_filename)) != this_file:
            mod_name = frame.f_globals.get("__name__", "__main__")
            if mod_name == "__main__":
                mod_name = "detectron2"
            return mod_name, (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return "detectron2", ("<unknown>", 0, "<unknown>")


_LOG_COUNTER: Counter = Counter()
_LOG_TIMER: Dict[tuple, float] = {}


def log_first_n(lvl: int, msg: str, n: int = 1, *, name: Optional[str] = None, key="caller") -> None:
    """Log ``msg`` only the first ``n`` times.

    Args:
        key: "caller" (count per call site), "message" (count per message text), or a
            tuple of both.
    """
    if isinstance(key, str):
        key = (key,)
    if not key or any(k not in ("caller", "message") for k in key):
        raise ValueError(f"log_first_n: key must be 'caller', 'message' or a tuple of them, got {key!r}")
    caller_module, caller_key = _find_caller()
    hash_key = ()
    if "caller" in key:
        hash_key = hash_key + caller_key
    if "message" in key:
        hash_key = hash_key + (msg,)
    _LOG_COUNTER[hash_key] += 1
    if _LOG_COUNTER[hash_key] <= n:
        logging.getLogger(name or caller_module).log(lvl, msg)


def log_every_n(lvl: int, msg: str, n: int = 1, *, name: Optional[str] = None) -> None:
    """Log ``msg`` on the 1st, (n+1)th, (2n+1)th ... call from the same call site."""
    caller_module, key = _find_caller()
    _LOG_COUNTER[key] += 1
    if n == 1 or _LOG_COUNTER[key] % n == 1:
        logging.getLogger(name or caller_module).log(lvl, msg)


def log_every_n_seconds(lvl: int, msg: str, n: float = 1, *, name: Optional[str] = None) -> None:
    """Log ``msg`` at most once every ``n`` seconds from the same call site."""
    caller_module, key = _find_caller()
    last = _LOG_TIMER.get(key)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name or caller_module).log(lvl, msg)
        _LOG_TIMER[key] = now


def create_small_table(small_dict: Dict) -> str:
    """A one-row markdown ("pipe") table: the keys as header, the values below them."""
    keys, values = tuple(zip(*small_dict.items())) if small_dict else ((), ())
    return tabulate(
        [values], headers=keys, tablefmt="pipe", floatfmt=".3f", stralign="center", numalign="center"
    )


def _log_api_usage(identifier: str) -> None:
    """Record the use of a detectron2 API once per process (torch's API-usage hook)."""
    torch._C._log_api_usage_once("detectron2." + identifier)
