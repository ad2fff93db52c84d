"""PipelineService pieces not covered through the HTTP routes."""

import asyncio
from pathlib import Path

import pytest
from conftest import copy_pipelines

from hayhooks.pipelines.service import PipelineService
from hayhooks.settings import HayhooksSettings


async def test_hand_edits_are_noticed_through_filesystem_events(app_client, pipelines_dir):
    """With a 60 s poll interval, only a filesystem event can make this pass in time."""
    client = await app_client(pipelines_dir, poll_interval=60)
    service = client.app.state.service
    assert service.follower.watching or await _eventually(lambda: service.follower.watching)
    folder = pipelines_dir / "by_hand"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "from hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self) -> None:\n        pass\n"
        "    def run_api(self) -> str:\n        return 'hand'\n"
    )
    assert await _eventually(lambda: service.registry.get("by_hand") is not None, timeout=10)
    assert (await client.post("/by_hand/run", json={})).json() == {"result": "hand"}


async def test_readiness_is_an_event_and_loaded_pipelines_serve_before_it(pipelines_dir):
    slow = pipelines_dir / "slow"
    slow.mkdir()
    (slow / "pipeline_wrapper.py").write_text(
        "import time\nfrom hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self) -> None:\n        time.sleep(3)\n"
        "    def run_api(self) -> str:\n        return 'slow'\n"
    )
    copy_pipelines(pipelines_dir, "echo")
    service = PipelineService(HayhooksSettings(pipelines_dir=pipelines_dir))
    await service.start()
    try:
        assert await _eventually(lambda: service.registry.get("echo") is not None, timeout=10)
        assert not service.ready and service.registry.loading() == ["slow"]
        assert service.status()["pipelines"] == ["echo"], "/status answers while a setup() runs"
        assert await service.wait_ready(30)
        assert service.registry.names() == ["echo", "slow"]
    finally:
        await service.stop()


async def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def test_a_read_only_pipelines_directory_is_served_and_deploys_answer_503():
    """/sys/power exists and refuses writes, even to root (a stand-in for a read-only volume)."""
    from hayhooks.errors import StoreUnavailable

    read_only = Path("/sys/power")
    if not read_only.is_dir():  # noqa: ASYNC240 - a test precondition
        pytest.skip("needs a Linux sysfs directory as a read-only stand-in")
    service = PipelineService(HayhooksSettings(pipelines_dir=read_only))
    await service.start()
    try:
        assert await service.wait_ready(30) and service.store.read_only
        assert not str(service.store.meta).startswith(str(read_only))
        with pytest.raises(StoreUnavailable) as info:
            await service.deploy_files("p", {"pipeline_wrapper.py": "x = 1\n"})
        assert info.value.status_code == 503 and "/sys" not in info.value.message
    finally:
        await service.stop()
