"""Streaming overhead of hayhooks' OpenAI route vs a raw FastAPI SSE endpoint.

Starts, as child processes of this script, (1) a raw FastAPI + sse-starlette server that emits N
pre-built ``chat.completion.chunk`` messages and (2) hayhooks serving a pipeline whose fake chat
generator streams N chunks (async wrapper with ``async_streaming_generator`` and sync wrapper with
``streaming_generator``). Then it measures, over the same loopback HTTP client:

* time to first content chunk (TTFC), median over the requests;
* chunk throughput (content chunks / time between first and last chunk), median;

and prints a markdown table with ratios vs the baseline. Nothing is asserted: numbers depend on
the machine. Usage: ``python bench/bench_streaming.py [--chunks 500] [--requests 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import Request  # module level: endpoint annotations are resolved against globals

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

WRAPPER = """
from fixtures.fake_chat import FakeChatGenerator, chat_pipeline
from hayhooks import BasePipelineWrapper, async_streaming_generator, get_last_user_message, streaming_generator

N = {n}


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = chat_pipeline(FakeChatGenerator(reply=" ".join(["tok"] * N)))

    {method}
"""
ASYNC_METHOD = """async def run_chat_completion_async(self, model, messages, body):
        return async_streaming_generator(self.pipeline, pipeline_run_args={"query": get_last_user_message(messages)})"""
SYNC_METHOD = """def run_chat_completion(self, model, messages, body):
        return streaming_generator(self.pipeline, pipeline_run_args={"query": get_last_user_message(messages)})"""


def baseline_app(n: int):  # runs in the child process
    """Two hand-written baselines: model "m" emits pre-built chunks (the transport's floor); model
    "haystack" runs the very pipeline hayhooks serves, with a hand-written streaming callback and
    queue, so the difference to hayhooks is hayhooks' own cost."""
    import asyncio

    from fastapi import FastAPI
    from sse_starlette import EventSourceResponse

    sys.path.insert(0, str(TESTS))
    from fixtures.fake_chat import FakeChatGenerator, chat_pipeline

    pipeline = chat_pipeline(FakeChatGenerator(reply=" ".join(["tok"] * n)))
    app = FastAPI()

    def chunk_event(piece: str, created: int) -> dict:
        return {
            "data": json.dumps(
                {
                    "id": "chatcmpl-x",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": "m",
                    "choices": [
                        {"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}
                    ],
                }
            )
        }

    @app.get("/ready")
    async def ready() -> dict:
        return {"ok": True}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> EventSourceResponse:
        body = await request.json()
        created = int(time.time())

        async def prebuilt():
            for i in range(n):
                yield chunk_event("tok" if i == n - 1 else "tok ", created)
            yield {"data": "[DONE]"}

        async def from_pipeline():
            queue: asyncio.Queue = asyncio.Queue()

            async def on_chunk(chunk) -> None:
                await queue.put(chunk.content)

            data = {
                "prompt": {"query": body["messages"][-1]["content"]},
                "llm": {"streaming_callback": on_chunk},
            }
            task = asyncio.create_task(pipeline.run_async(data))
            task.add_done_callback(lambda _: queue.put_nowait(None))
            while (piece := await queue.get()) is not None:
                if piece:
                    yield chunk_event(piece, created)
            await task
            yield {"data": "[DONE]"}

        return EventSourceResponse(from_pipeline() if body.get("model") == "haystack" else prebuilt())

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server {url} not ready in {timeout}s")


def one_request(client: httpx.Client, url: str, model: str, expected: int) -> tuple[float, float]:
    """(time to first content chunk, content chunks per second) of one streamed completion."""
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    start = time.perf_counter()
    first = last = None
    count = 0
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                count += 1
    if count != expected or first is None or last is None:
        raise RuntimeError(f"{model}: expected {expected} content chunks, got {count}")
    return first - start, (count - 1) / (last - first) if last > first else float("inf")


def measure_interleaved(
    targets: list[tuple[str, str, str]], requests: int, expected: int
) -> dict[str, dict[str, float]]:
    """Round-robin over the targets (label, url, model), one request each per round, so every
    target sees the same background load; two warm-up rounds; medians per target."""
    ttfc: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    rate: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    with httpx.Client(timeout=60) as client:
        for i in range(requests + 2):
            order = targets if i % 2 == 0 else list(reversed(targets))
            for label, url, model in order:
                first, per_s = one_request(client, url, model, expected)
                if i >= 2:
                    ttfc[label].append(first)
                    rate[label].append(per_s)
    return {
        label: {
            "ttfc_ms": statistics.median(ttfc[label]) * 1000,
            "chunks_per_s": statistics.median(rate[label]),
        }
        for label, _, _ in targets
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_baseline:
        import uvicorn

        uvicorn.run(
            baseline_app(args.chunks), host="127.0.0.1", port=args.serve_baseline, log_level="warning"
        )
        return

    work = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    for name, method in (("stream_async", ASYNC_METHOD), ("stream_sync", SYNC_METHOD)):
        (work / name).mkdir()
        (work / name / "pipeline_wrapper.py").write_text(WRAPPER.format(n=args.chunks, method=method))

    base_port, hh_port = free_port(), free_port()
    env = {
        **os.environ,
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "HAYHOOKS_PIPELINES_DIR": str(work),
        "HAYHOOKS_ADDITIONAL_PYTHON_PATH": str(TESTS),
        "HAYHOOKS_LOG_LEVEL": "warning",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve-baseline", str(base_port), "--chunks", str(args.chunks)],
            env=env,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "hayhooks.server.app:create_app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(hh_port),
                "--log-level",
                "warning",
            ],
            env=env,
        ),
    ]
    try:
        base_url, hh_url = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{hh_port}"
        wait_ready(base_url, procs[0])
        wait_ready(hh_url, procs[1])
        targets = [
            ("raw FastAPI SSE, pre-built chunks (floor)", base_url, "m"),
            ("raw FastAPI SSE + same Haystack pipeline (baseline)", base_url, "haystack"),
            ("hayhooks, async_streaming_generator", hh_url, "stream_async"),
            ("hayhooks, streaming_generator (sync)", hh_url, "stream_sync"),
        ]
        measured = measure_interleaved(targets, args.requests, args.chunks)
        rows = [(label, measured[label]) for label, _, _ in targets]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    base = rows[1][1]
    print(f"\n### Streaming: {args.chunks} chunks, median of {args.requests} requests each (interleaved)\n")
    print("| server | time to first chunk (ms) | vs baseline | chunks/s | vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, m in rows:
        print(
            f"| {name} | {m['ttfc_ms']:.2f} | {m['ttfc_ms'] / base['ttfc_ms']:.2f}x | "
            f"{m['chunks_per_s']:.0f} | {m['chunks_per_s'] / base['chunks_per_s']:.2f}x |"
        )


if __name__ == "__main__":
    main()
