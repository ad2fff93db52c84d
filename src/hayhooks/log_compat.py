"""Loguru habits of Hayhooks 2.x wrappers, on our standard-library ``log``.

2.x exported a loguru logger as ``hayhooks.log``, and its wrappers and examples call ``log.trace``,
``log.success`` and ``log.info("... {}", value)``. On a plain ``logging.Logger`` the first two do not
exist (the wrapper fails with AttributeError mid-request) and the third is reported as a logging
error. ``install`` adds the two methods (levels TRACE=5 and SUCCESS=25) and a filter that formats
``{}`` placeholders when a message has arguments and no ``%`` placeholder.

It also adds loguru's ``bind`` and ``opt``, which 2.x wrappers chain before a call
(``log.bind(user=uid).info(...)``, ``log.opt(exception=True).error(...)``): ``bind`` returns a
``BoundLogger`` whose fields go on every record as ``extra`` (so JSON logs show them as keys), and
``opt`` returns a logger that honours ``exception=`` and ignores the options that only matter to
loguru's own formatting (``lazy``, ``depth``, ``colors``, ``raw``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
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


# Attributes every LogRecord has: ``extra`` may not overwrite them (logging raises KeyError).
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class BoundLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """What ``log.bind(**fields)`` and ``log.opt(...)`` return: the same logger, with fields.

    A field named like a record attribute (``name``, ``args``, ...) is kept with a ``_`` suffix
    instead of breaking the call, as loguru would have accepted it.
    """

    def __init__(self, logger: logging.Logger, fields: dict[str, Any], exc_info: bool = False) -> None:
        super().__init__(logger, {(k + "_" if k in _RECORD_ATTRS else k): v for k, v in fields.items()})
        self._exc_info = exc_info

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        if self._exc_info:
            kwargs.setdefault("exc_info", True)
        return msg, kwargs

    def bind(self, **fields: Any) -> BoundLogger:
        return BoundLogger(self.logger, {**(self.extra or {}), **fields}, self._exc_info)

    def opt(self, *, exception: Any = None, **_ignored: Any) -> BoundLogger:
        return BoundLogger(self.logger, dict(self.extra or {}), bool(exception) or self._exc_info)

    def trace(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, msg, *args, **kwargs)

    def success(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(SUCCESS, msg, *args, **kwargs)


def install(logger: logging.Logger) -> logging.Logger:
    logging.addLevelName(TRACE, "TRACE")
    logging.addLevelName(SUCCESS, "SUCCESS")

    def trace(msg: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        logger.log(TRACE, msg, *args, **kwargs)

    def success(msg: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        logger.log(SUCCESS, msg, *args, **kwargs)

    def bind(**fields: Any) -> BoundLogger:
        return BoundLogger(logger, fields)

    def opt(*, exception: Any = None, **_ignored: Any) -> logging.Logger | BoundLogger:
        """Loguru's per-call options: only ``exception`` changes what a standard record carries."""
        return BoundLogger(logger, {}, exc_info=True) if exception else logger

    logger.trace = trace  # type: ignore[attr-defined]
    logger.success = success  # type: ignore[attr-defined]
    logger.bind = bind  # type: ignore[attr-defined]
    logger.opt = opt  # type: ignore[attr-defined]
    if not any(isinstance(f, BraceArguments) for f in logger.filters):
        logger.addFilter(BraceArguments())
    return logger
