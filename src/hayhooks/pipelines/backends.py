"""Which pipelines store this server uses: the directory (default) or Redis (``HAYHOOKS_STORE_URL``).

Both are ``PipelineStore``s: the Redis store keeps the directory as each instance's local copy and
overrides the operations that change or read what is deployed, so the service sees one interface.
"""

from __future__ import annotations

from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.store import PipelineStore
from hayhooks.settings import HayhooksSettings


def open_store(settings: HayhooksSettings, ignore: IgnoreRules) -> PipelineStore:
    if not settings.store_url:
        return PipelineStore(settings.pipelines_dir, settings.archive_keep, ignore=ignore)
    from hayhooks.pipelines.store_redis import RedisPipelineStore  # needs the redis extra

    return RedisPipelineStore(
        settings.pipelines_dir,
        settings.store_url,
        settings.store_key_prefix,
        settings.archive_keep,
        ignore=ignore,
    )
