"""Observability of a real ``hayhooks run``: metrics summed over workers (and surviving a killed
worker), request ids in responses, error bodies and JSON log lines, and ``hayhooks top``."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from conftest import HAYHOOKS, SAMPLE_PIPELINES, wait_until
from observability_support import value

pytestmark = pytest.mark.e2e

TWO_STEPS = Path(__file__).resolve().parents[1] / "fixtures" / "observability" / "two_steps"
SLOW = (
    "import time\nfrom hayhooks import BasePipelineWrapper\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n        pass\n"
    "    def run_api(self) -> str:\n        time.sleep(1.0)\n        return 'ok'\n"
)

# No keep-alive: every request opens its own connection, so the kernel spreads them over workers.
_CLIENT = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    return _CLIENT.request(
        method, url, headers={"connection": "close", **kwargs.pop("headers", {})}, **kwargs
    )


def scrape(url: str) -> str:
    r = fresh("GET", f"{url}/metrics")
    assert r.status_code == 200, r.text
    return r.text


def worker_pids(url: str) -> set[int]:
    return {int(w["id"].rsplit("-", 1)[1]) for w in fresh("GET", f"{url}/status").json()["workers"]}


def test_metrics_add_up_over_workers_and_survive_a_killed_worker(hayhooks_server, pipelines_dir):
    shutil.copytree(SAMPLE_PIPELINES / "echo", pipelines_dir / "echo")
    shutil.copytree(SAMPLE_PIPELINES / "fails_at_run", pipelines_dir / "fails")
    (pipelines_dir / "slow").mkdir()
    (pipelines_dir / "slow" / "pipeline_wrapper.py").write_text(SLOW)
    server = hayhooks_server(
        pipelines_dir,
        "--workers",
        "2",
        env={"HAYHOOKS_THREAD_POOL_SIZE": "1", "HAYHOOKS_MAX_QUEUED_RUNS": "0"},
    )
    pids = wait_until(lambda: (p := worker_pids(server.url)) and len(p) == 2 and p, timeout=60)

    for i in range(200):
        r = fresh("POST", f"{server.url}/echo/run", json={"name": str(i)})
        assert r.status_code == 200, r.text
    for _ in range(5):
        assert fresh("POST", f"{server.url}/fails/run", json={"text": "x"}).status_code == 500
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = list(pool.map(lambda _: fresh("POST", f"{server.url}/slow/run", json={}), range(8)))
    rejected = sum(r.status_code == 503 for r in slow)
    assert rejected >= 6 and {r.status_code for r in slow} <= {200, 503}

    for _ in range(10):
        text = scrape(server.url)
        assert value(text, "hayhooks_requests_total", pipeline="echo", code="200") == 200
        assert value(text, "hayhooks_requests_total", pipeline="fails", code="500") == 5
        assert value(text, "hayhooks_requests_total", pipeline="slow", code="503") == rejected
        assert value(text, "hayhooks_admission_rejections_total", pipeline="slow") == rejected
        assert value(text, "hayhooks_pipeline_runs_total", pipeline="echo", outcome="ok") == 200
        assert value(text, "hayhooks_runs_in_flight") == 0
        assert value(text, "hayhooks_workers") == 2

    # GET /traces describes the instance: runs of both workers, whichever worker answers.
    def both_workers() -> set:
        runs = fresh("GET", f"{server.url}/traces", params={"limit": 1000}).json()["runs"]
        return (w := {r["pid"] for r in runs if r["pipeline"] == "echo"}) == pids and w

    wait_until(both_workers, timeout=30, interval=0.2)

    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: (p := worker_pids(server.url)) and len(p) == 2 and victim not in p, timeout=60)
    for _ in range(10):
        text = scrape(server.url)
        assert value(text, "hayhooks_requests_total", pipeline="echo", code="200") == 200
        assert value(text, "hayhooks_requests_total", pipeline="fails", code="500") == 5
    for i in range(10):
        assert fresh("POST", f"{server.url}/echo/run", json={"name": str(i)}).status_code == 200
    text = scrape(server.url)
    assert value(text, "hayhooks_requests_total", pipeline="echo", code="200") == 210
    assert value(text, "hayhooks_runs_in_flight") == 0


def test_request_ids_in_headers_error_bodies_and_json_logs(hayhooks_server, pipelines_dir):
    shutil.copytree(TWO_STEPS, pipelines_dir / "two_steps")
    server = hayhooks_server(
        pipelines_dir,
        env={
            "HAYHOOKS_LOG_FORMAT": "json",
            "HAYHOOKS_ACCESS_LOG_EXCLUDED_PATH_PREFIXES": '["/ready", "/metrics"]',
        },
    )
    r = httpx.post(f"{server.url}/two_steps/run", json={"text": "a"}, headers={"X-Request-ID": "e2e-rid-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "e2e-rid-1"
    bad = httpx.post(f"{server.url}/two_steps/run", json={}, headers={"X-Request-ID": 'bad id "2" <x>'})
    assert bad.status_code == 422 and bad.headers["x-request-id"] == "badid2x"
    assert bad.json()["request_id"] == "badid2x"
    generated = httpx.post(f"{server.url}/nope/run", json={})
    assert generated.status_code == 404
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    httpx.get(f"{server.url}/metrics")

    def lines() -> list[dict]:
        out = []
        for line in server.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    records = wait_until(
        lambda: (
            (ls := lines())
            and any(x["logger"] == "uvicorn.access" and x["request_id"] == "badid2x" for x in ls)
            and ls
        ),
        timeout=30,
    )
    mine = [x for x in records if x["request_id"] == "e2e-rid-1"]
    assert {x["logger"] for x in mine} >= {"hayhooks", "uvicorn.access"}
    app_line = next(x for x in mine if x["logger"] == "hayhooks")
    assert app_line["message"] == "two_steps running" and app_line["pipeline"] == "two_steps"
    assert app_line["level"] == "INFO" and isinstance(app_line["pid"], int) and app_line["time"]
    access = next(x for x in mine if x["logger"] == "uvicorn.access")
    assert access["path"] == "/two_steps/run" and access["status_code"] == 200
    # Excluded prefixes leave the access log; everything written is one JSON object per line.
    assert not [
        x
        for x in records
        if x["logger"] == "uvicorn.access" and x.get("path", "").startswith(("/ready", "/metrics"))
    ]
    stray = [line for line in server.log().splitlines() if line.strip() and not line.startswith("{")]
    assert not stray, stray


def test_top_once_json_against_a_live_server(hayhooks_server, pipelines_dir):
    import subprocess

    shutil.copytree(SAMPLE_PIPELINES / "echo", pipelines_dir / "echo")
    server = hayhooks_server(pipelines_dir)
    for i in range(5):
        assert httpx.post(f"{server.url}/echo/run", json={"name": str(i)}).status_code == 200
    out = subprocess.run(
        [HAYHOOKS, "top", "--url", server.url, "--once", "--json", "--interval", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    (echo,) = [p for p in snap["pipelines"] if p["name"] == "echo"]
    assert echo["requests"] == 5 and echo["errors"] == 0 and echo["in_flight"] == 0
    assert echo["p50_ms"] is not None and echo["p99_ms"] >= echo["p50_ms"]
    assert len(snap["workers"]) == 1 and snap["workers"][0]["in_sync"] is True
