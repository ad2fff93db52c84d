"""Without the optional ``redis`` client, both Redis stores refuse with a 503 that names the setting
and the extra to install (the client is made unimportable for the test, as on an install without
``hayhooks[redis]``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hayhooks.durable.errors import StoreUnavailable as ExecutionStoreUnavailable
from hayhooks.durable.redis_store import RedisExecutionStore
from hayhooks.errors import StoreUnavailable
from hayhooks.pipelines.store_redis import RedisPipelineStore
from hayhooks.redis_support import RedisClientMissing, redis_module


@pytest.fixture
def no_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError


def test_the_client_is_imported_lazily_and_returned() -> None:
    import redis

    assert redis_module("anything") is redis


@pytest.mark.usefixtures("no_redis_client")
def test_a_missing_client_names_the_setting_and_the_extra(tmp_path: Path) -> None:
    with pytest.raises(RedisClientMissing) as missing:
        redis_module("HAYHOOKS_SOMETHING=redis")
    assert "HAYHOOKS_SOMETHING=redis" in str(missing.value)
    assert "pip install 'hayhooks[redis]'" in str(missing.value)
    with pytest.raises(ExecutionStoreUnavailable) as durable:
        RedisExecutionStore("redis://127.0.0.1:1/0")
    assert durable.value.status_code == 503
    assert "HAYHOOKS_DURABLE_STORE=redis" in str(durable.value) and "hayhooks[redis]" in str(durable.value)
    with pytest.raises(StoreUnavailable) as pipelines:
        RedisPipelineStore(tmp_path, "redis://127.0.0.1:1/0")
    assert pipelines.value.status_code == 503
    assert "HAYHOOKS_STORE_URL" in str(pipelines.value) and "hayhooks[redis]" in str(pipelines.value)
