"""An async stream whose generator never awaits must not take the server down with it.

Found by fuzzing: such a generator, streamed to a client that left, kept the event loop busy for
minutes (no disconnect noticed, no other request served, SIGTERM ignored)."""

from __future__ import annotations

import textwrap
import time

import httpx

WRAPPER = textwrap.dedent(
    """
    from hayhooks import BasePipelineWrapper
    from hayhooks.pipelines.sse import SSEStream


    class PipelineWrapper(BasePipelineWrapper):
        def setup(self) -> None:
            pass

        async def run_api_async(self, count: int = 50_000_000) -> SSEStream:
            async def events():
                for i in range(count):  # never awaits anything
                    yield {"n": i}

            return SSEStream(events())
    """
)


def test_a_never_awaiting_stream_leaves_the_server_responsive(hayhooks_server, pipelines_dir):
    (pipelines_dir / "busy").mkdir()
    (pipelines_dir / "busy" / "pipeline_wrapper.py").write_text(WRAPPER)
    server = hayhooks_server(pipelines_dir)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{server.url}/busy/run", json={}) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the stream runs; then the client leaves
        started = time.monotonic()
        health = client.get(f"{server.url}/health")
        assert health.status_code == 200
        assert time.monotonic() - started < 5, "the busy stream held the event loop"
    # The abandoned stream is noticed and stopped: the server keeps answering.
    for _ in range(5):
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        time.sleep(0.2)
    assert server.proc is not None and server.proc.poll() is None
