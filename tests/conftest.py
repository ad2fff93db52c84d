"""Shared fixtures: sample pipelines, an in-process app, and real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tests need no network: Haystack's telemetry stays off here and in every server we start. This must
# run before anything imports haystack (its telemetry reads the variable at import).
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

# The loopback guard: this process and every Python process the tests start (through PYTHONPATH and
# sitecustomize) refuse connections and name lookups outside 127.0.0.0/8 and ::1, and the test that
# caused one fails. Subprocesses must inherit os.environ for it to reach them.
NETGUARD_DIR = Path(__file__).parent / "netguard"
sys.path.insert(0, str(NETGUARD_DIR))
import sitecustomize as netguard  # the guard module, shared with subprocesses

os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD_DIR), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault(
    netguard.ENV_LOG, str(Path(tempfile.mkdtemp(prefix="loopback-guard-")) / "violations.log")
)
netguard.install()

import httpx
import pytest
import uvicorn

from hayhooks.server.app import create_app
from hayhooks.settings import HayhooksSettings

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_PIPELINES = FIXTURES / "pipelines"
BROKEN_PIPELINES = FIXTURES / "broken"
HAYHOOKS = str(Path(sys.executable).with_name("hayhooks"))


@pytest.fixture(autouse=True)
def loopback_guard() -> Iterator[None]:
    """Fail the test if it, or any process it started, reached for a non-loopback address."""
    log = Path(os.environ[netguard.ENV_LOG])
    before = log.stat().st_size if log.exists() else 0
    seen = len(netguard.violations)
    yield
    found = list(netguard.violations[seen:])
    if log.exists() and log.stat().st_size > before:
        with log.open(encoding="utf-8") as fh:
            fh.seek(before)
            found += [line.strip() for line in fh if line.strip()]
    if found:
        pytest.fail("network guard: non-loopback traffic attempted:\n" + "\n".join(dict.fromkeys(found)))


def require_binary(name: str, package: str) -> str:
    """Path of a system program the test needs; skip naming its Debian package, or fail under CI=true."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if path:
        return path
    message = f"needs `{name}` (Debian package `{package}`: apt-get install {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_pipelines(dest: Path, *names: str, source: Path = SAMPLE_PIPELINES) -> Path:
    """Copy sample pipeline folders or YAML files (by name) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def read_folder(folder: Path) -> dict[str, str]:
    """A pipeline folder as the ``files`` mapping of ``POST /deploy-files``."""
    return {
        str(p.relative_to(folder)): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; bounded, so a broken feature fails instead of hanging."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pipelines"
    path.mkdir()
    return path


@pytest.fixture
async def app_client() -> AsyncIterator[Callable[..., Any]]:
    """Factory: an in-process app (lifespan running, pipelines loaded) and an httpx client on it."""
    stack: list[Any] = []

    async def make(pipelines_dir: Path, **settings: Any) -> httpx.AsyncClient:
        app = create_app(HayhooksSettings(pipelines_dir=pipelines_dir, **settings))
        started, stop = asyncio.Event(), asyncio.Event()

        async def run_lifespan() -> None:
            # Entered and exited in one task: task groups inside the lifespan require it.
            async with app.router.lifespan_context(app):
                started.set()
                await stop.wait()

        task = asyncio.create_task(run_lifespan())
        await asyncio.wait_for(started.wait(), 30)
        stack.append((stop, task))
        assert await app.state.service.wait_ready(30)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:1416", timeout=30
        )
        client.app = app  # type: ignore[attr-defined]
        stack.append(client)
        return client

    yield make
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            stop, task = item
            stop.set()
            await asyncio.wait_for(task, 30)


@dataclass
class LiveServer:
    url: str
    port: int
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def _admin_headers(env: dict[str, str]) -> dict[str, str]:
    """A credential /status accepts on a server started with ``env`` (admin token or first API key)."""
    token = env.get("HAYHOOKS_ADMIN_TOKEN", "")
    keys = env.get("HAYHOOKS_API_KEYS", "").strip()
    if not token and keys:
        parsed = json.loads(keys) if keys.startswith("[") else keys.split(",")
        token = str(parsed[0]).strip() if parsed else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def worker_count(args: Iterable[str]) -> int:
    """The ``--workers N`` of a ``hayhooks run`` command line (1 without it)."""
    args = list(args)
    return int(args[args.index("--workers") + 1]) if "--workers" in args else 1


def instance_ready(url: str, workers: int, env: dict[str, str], pid: int | None = None) -> bool:
    """Every worker of a server started with ``env`` has settled. ``/ready`` speaks for the one
    worker that answered; with several, ``/status`` lists every worker's readiness.

    With ``pid`` (the started process), the answer must also come from that process or one of its
    workers: uvicorn binds the port only after the app has loaded, so until then another server
    that took the same free port meanwhile could answer in its place.
    """
    try:
        if httpx.get(f"{url}/ready", timeout=2).status_code != 200:
            return False
        if workers == 1 and pid is None:
            return True
        status = httpx.get(f"{url}/status", headers=_admin_headers(env), timeout=2)
    except httpx.TransportError:
        return False
    if status.status_code != 200:
        return workers == 1  # /status refused this credential: readiness is all we can check
    body = status.json()
    if pid is not None and not _served_by(str(body.get("worker", "")), pid):
        return False
    listed = body.get("workers", [])
    return workers == 1 or (len(listed) >= workers and all(w.get("ready") for w in listed))


def _served_by(worker_id: str, pid: int) -> bool:
    """Whether a worker id (``<host>-<pid>``) names process ``pid`` or a child of it."""
    try:
        worker_pid = int(worker_id.rsplit("-", 1)[-1])
    except ValueError:
        return False
    return worker_pid == pid or parent_pid(worker_pid) == pid


def parent_pid(pid: int) -> int | None:
    """The parent of process ``pid`` (field 4 of ``/proc/<pid>/stat``), None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def parent_pids() -> dict[int, int]:
    """The parent of every live process, by pid."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        parent = parent_pid(int(entry.name))
        if parent is not None:
            found[int(entry.name)] = parent
    return found


def child_pids(pid: int) -> set[int]:
    """The direct children of process ``pid``."""
    return {child for child, parent in parent_pids().items() if parent == pid}


@pytest.fixture
def hayhooks_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Factory: a real ``hayhooks run`` subprocess on a free port, ready when returned."""
    started: list[LiveServer] = []

    def start(
        pipelines_dir: Path, *args: str, env: dict[str, str] | None = None, ready_timeout: float = 60
    ) -> LiveServer:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        full_env = {**os.environ, "HAYHOOKS_LOG_LEVEL": "info", **(env or {})}
        cmd = [
            HAYHOOKS,
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--pipelines-dir",
            str(pipelines_dir),
            *args,
        ]
        proc = subprocess.Popen(
            cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
        server = LiveServer(f"http://127.0.0.1:{port}", port, proc, log_path)
        started.append(server)

        workers = worker_count(args)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
            return instance_ready(server.url, workers, full_env, proc.pid)

        wait_until(ready, timeout=ready_timeout, interval=0.1)
        return server

    yield start
    for server in started:
        stop_process(server.proc)


def stop_process(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture
def live_app() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``create_app(settings)`` served by uvicorn in a thread, over real loopback HTTP."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(pipelines_dir: Path, **settings: Any) -> LiveServer:
        port = free_port()
        app = create_app(HayhooksSettings(pipelines_dir=pipelines_dir, port=port, **settings))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200, timeout=60)
        return LiveServer(url, port, extra={"app": app})

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(15)
