"""The `log` object wrapper code imports from hayhooks (``from hayhooks import log``)."""

import logging

log = logging.getLogger("hayhooks")
