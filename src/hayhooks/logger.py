"""The `log` object wrapper code imports from hayhooks (``from hayhooks import log``)."""

import logging
import sys

from hayhooks.log_compat import install as _loguru_habits

# 2.x wrappers call log.trace / log.success / log.info("{}", x): see hayhooks.log_compat.
log = _loguru_habits(logging.getLogger("hayhooks"))


def configure_logging(level: str, tag: str = "hayhooks") -> None:
    """Our log lines go to stderr (stdout may be a protocol wire, as with MCP over stdio)."""
    log.setLevel(level.upper())
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"%(levelname)s:     [{tag}] %(message)s"))
        log.addHandler(handler)
        log.propagate = False
