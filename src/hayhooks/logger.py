"""The `log` object wrapper code imports from hayhooks (``from hayhooks import log``)."""

import logging
import sys
from collections.abc import Sequence

from hayhooks.log_compat import install as _loguru_habits

# 2.x wrappers call log.trace / log.success / log.info("{}", x): see hayhooks.log_compat.
log = _loguru_habits(logging.getLogger("hayhooks"))


def configure_logging(
    level: str, tag: str = "hayhooks", log_format: str = "text", intercepted: Sequence[str] = ()
) -> None:
    """Our log lines go to stderr (stdout may be a protocol wire, as with MCP over stdio).

    ``log_format`` is ``text`` or ``json`` (``HAYHOOKS_LOG_FORMAT``); both carry the request id.
    ``intercepted`` (``HAYHOOKS_INTERCEPTED_LOGGERS``) names library loggers that get the same.
    """
    from hayhooks.observability.intercept import intercept
    from hayhooks.observability.logs import make_formatter

    log.setLevel(level.upper())
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        log.addHandler(handler)
        log.propagate = False
    for existing in log.handlers:
        existing.setFormatter(make_formatter(log_format, tag))
    intercept(intercepted, level, log_format)
