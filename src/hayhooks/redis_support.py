"""The one lazy import of the ``redis`` client, shared by the Redis pipelines store and the Redis
durable store.

``redis`` is an optional dependency (the ``hayhooks[redis]`` extra): the server must start without
it, and a setting that needs it must say which extra to install rather than fail with a bare
``ModuleNotFoundError``. Callers wrap ``RedisClientMissing`` in their own error class when that class
decides the HTTP status of the answer.
"""

from __future__ import annotations

from types import ModuleType

EXTRA_INSTALL = "pip install 'hayhooks[redis]'"


class RedisClientMissing(ImportError):
    """The ``redis`` package is not installed; the message names the setting and the extra."""


def redis_module(needed_by: str) -> ModuleType:
    """Import and return ``redis``; ``RedisClientMissing`` if it is not installed.

    ``needed_by`` names what asked for it (a setting, e.g. ``HAYHOOKS_DURABLE_STORE=redis``), so the
    message tells the user both why the client is needed and how to get it.
    """
    try:
        import redis
    except ImportError as exc:
        raise RedisClientMissing(
            f"{needed_by} needs the redis client, which is not installed: {EXTRA_INSTALL}"
        ) from exc
    return redis
