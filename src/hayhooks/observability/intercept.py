"""``HAYHOOKS_INTERCEPTED_LOGGERS``: standard-library loggers whose records go out in our format.

Hayhooks 2.x routed the loggers named by this setting (by default uvicorn's and FastAPI's) through
its own log pipeline, so the framework's lines look like the server's. Here the same names get our
handler: the format of ``HAYHOOKS_LOG_FORMAT`` (text, or JSON with request id, pipeline and worker
pid), ``HAYHOOKS_LOG_LEVEL``, and ``propagate = False`` so a root handler (a library's
``basicConfig``) cannot print each record a second time. Loggers not named keep whatever their
library or the application gave them.

uvicorn's loggers are configured by uvicorn itself from ``uvicorn_log_config`` (every worker, at
server start), which gives the named ones our format; this module handles every other name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from hayhooks.observability.logs import RequestContextFilter, make_formatter

DEFAULT_INTERCEPTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi")
UVICORN_LOGGERS = frozenset({"uvicorn", "uvicorn.error", "uvicorn.access"})
# Configured by ``hayhooks.logger.configure_logging`` itself.
OWN_LOGGERS = frozenset({"hayhooks"})


class InterceptedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our stderr handler on an intercepted logger (a class of its own, so a second call replaces it)."""


def intercept(names: Iterable[str], level: str, log_format: str) -> list[str]:
    """Give each named logger (uvicorn's and our own excepted) our handler, format and level.

    Idempotent: calling it again (a second app in the process, a reload) replaces the handler it
    added before instead of adding another one. Returns the names it configured.
    """
    done = []
    for name in dict.fromkeys(n.strip() for n in names):
        if not name or name in UVICORN_LOGGERS or name in OWN_LOGGERS:
            continue
        logger = logging.getLogger(name)
        handler = InterceptedHandler(sys.stderr)
        handler.addFilter(RequestContextFilter())
        handler.setFormatter(make_formatter(log_format, tag=None))
        # Every handler goes: one line per record, in one format (as 2.x replaced them by its own).
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
        done.append(name)
    return done
