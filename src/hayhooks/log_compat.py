"""Loguru habits of Hayhooks 2.x wrappers, on our standard-library ``log``.

2.x exported a loguru logger as ``hayhooks.log``, and its wrappers and examples call ``log.trace``,
``log.success`` and ``log.info("... {}", value)``. On a plain ``logging.Logger`` the first two do not
exist (the wrapper fails with AttributeError mid-request) and the third is reported as a logging
error. ``install`` adds the two methods (levels TRACE=5 and SUCCESS=25) and a filter that formats
``{}`` placeholders when a message has arguments and no ``%`` placeholder.
"""

from __future__ import annotations

import logging
from typing import Any

TRACE = 5
SUCCESS = 25


class BraceArguments(logging.Filter):
    """``log.info("took {} s", 3)`` → "took 3 s"; %-style messages are left to ``logging``."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg, args = record.msg, record.args
        if isinstance(msg, str) and isinstance(args, tuple) and args and "{" in msg and "%" not in msg:
            try:
                record.msg, record.args = msg.format(*args), ()
            except (IndexError, KeyError, ValueError, AttributeError):
                pass  # not a format string after all: logging reports it as usual
        return True


def install(logger: logging.Logger) -> logging.Logger:
    logging.addLevelName(TRACE, "TRACE")
    logging.addLevelName(SUCCESS, "SUCCESS")

    def trace(msg: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        logger.log(TRACE, msg, *args, **kwargs)

    def success(msg: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        logger.log(SUCCESS, msg, *args, **kwargs)

    logger.trace = trace  # type: ignore[attr-defined]
    logger.success = success  # type: ignore[attr-defined]
    if not any(isinstance(f, BraceArguments) for f in logger.filters):
        logger.addFilter(BraceArguments())
    return logger
