"""Python opcodes per request, by function: metrics (and the recent-runs record) on vs off.

    python -m bench.bench_opcodes                          # echo_async, metrics only switched off
    python -m bench.bench_opcodes --off both --paths echo_async,echo

Why a third measure beside ``bench_toggle`` (req/s) and ``bench_instructions`` (callgrind): it
says *where* a difference is. Each side is a fresh process that drives the real app in-process
over ASGI (no sockets, no server), warms it up, then counts every Python opcode executed on the
event loop's thread for ``--requests`` requests (``sys.settrace`` with ``f_trace_opcodes``), by
function, including one metrics flush. Counts are deterministic: a change of a few opcodes in a
request path of ~3,000 shows. They do not weigh opcodes (a call costs more than a load) nor see C
code (the flush's ``map`` and sort), so they point at a cost, ``bench_instructions`` sizes it.
Takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from bench.bench_instructions import OFF_ENVS, add_off_argument
from bench.run import BENCH, PYTHON, QUIET_ENV, ROOT, report_table

BODY = json.dumps({"text": "hello hayhooks"}).encode()


def count(path: str, requests: int, concurrency: int) -> dict[str, float]:
    """In this process (configured by the environment): opcodes per request by function."""
    from hayhooks.server.app import create_app

    app = create_app()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/{path}/run",
        "raw_path": f"/{path}/run".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 1416),
    }
    counts: collections.Counter[str] = collections.Counter()
    prefixes = [str(ROOT / "src") + "/", "site-packages/", sys.prefix + "/", sys.base_prefix + "/"]

    def name(code: Any) -> str:
        filename = code.co_filename
        for prefix in prefixes:
            if prefix in filename:
                filename = filename.split(prefix, 1)[1]
                break
        if "/.hayhooks/" in filename:  # a loaded wrapper: its temporary path differs per process
            filename = "<pipeline>/" + filename.rsplit("/", 2)[-2]
        return f"{filename}:{code.co_name}"

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            counts[name(frame.f_code)] += 1
        return tracer

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        if status != [200]:
            raise RuntimeError(f"{path}: answered {status}")

    async def batch(total: int) -> None:
        async def worker(each: int) -> None:
            for _ in range(each):
                await one()

        await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        lifespan = asyncio.ensure_future(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
        )
        await inbox.put({"type": "lifespan.startup"})
        await outbox.get()
        await batch(max(concurrency, 200))  # warm-up: caches, first series, first flush
        await asyncio.sleep(1)
        sys.settrace(tracer)
        await batch(requests)
        await asyncio.sleep(0.1)  # one metrics flush (every 50 ms)
        sys.settrace(None)
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await lifespan

    asyncio.run(main())
    return {key: value / requests for key, value in counts.items()}


def side(label: str, env: dict[str, str], path: str, args: argparse.Namespace) -> dict[str, float]:
    """One fresh process's counts (``--count`` mode of this script)."""
    pdir = Path(tempfile.mkdtemp(prefix="bench-opcodes-"))
    shutil.rmtree(pdir)
    shutil.copytree(BENCH / "pipelines", pdir)
    metrics_dir = tempfile.mkdtemp(prefix="bench-opcodes-metrics-")
    try:
        full_env = {
            **os.environ,
            **QUIET_ENV,
            **env,
            "HAYHOOKS_PIPELINES_DIR": str(pdir),
            "HAYHOOKS_ADDITIONAL_PYTHON_PATH": str(ROOT),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            "HAYSTACK_TELEMETRY_ENABLED": "False",
            "PYTHONHASHSEED": "0",
        }
        cmd = [
            PYTHON,
            "-m",
            "bench.bench_opcodes",
            "--count",
            path,
            str(args.requests),
            str(args.concurrency),
        ]
        done = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{label} side failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(pdir, ignore_errors=True)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_opcodes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--paths", default="echo_async", help="pipelines to call (default echo_async)")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per side (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    add_off_argument(parser, default="metrics")
    parser.add_argument("--top", type=int, default=8, help="functions listed per path (default 8)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for raw results")
    parser.add_argument(
        "--count", nargs=3, metavar=("PATH", "REQUESTS", "CONCURRENCY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.count:
        found = count(args.count[0], int(args.count[1]), int(args.count[2]))
        print(json.dumps(found))
        return 0
    lines = [
        "| endpoint | off | opcodes/request off / on | on − off | where (on − off, by function) |",
        "| --- | --- | --- | ---: | --- |",
    ]
    rows: list[dict[str, Any]] = []
    for path in args.paths.split(","):
        on = side("on", {}, path, args)
        off = side("off", OFF_ENVS[args.off], path, args)
        diff = {key: on.get(key, 0.0) - off.get(key, 0.0) for key in set(on) | set(off)}
        top = sorted(diff.items(), key=lambda item: -abs(item[1]))[: args.top]
        where = ", ".join(
            f"`{key.rsplit('/', 1)[-1]}` {value:+.1f}" for key, value in top if abs(value) >= 0.05
        )
        total_on, total_off = sum(on.values()), sum(off.values())
        rows.append(
            {"path": path, "off": args.off, "on_total": total_on, "off_total": total_off, "diff": diff}
        )
        lines.append(
            f"| `{path}` | {args.off} | {total_off:,.1f} / {total_on:,.1f} | **{total_on - total_off:+.1f}** | {where} |"
        )
        print(f"  {path}: {total_off:,.1f} -> {total_on:,.1f} opcodes/request", flush=True)
    report_table(lines, rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
