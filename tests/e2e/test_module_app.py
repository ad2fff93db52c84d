"""The module-level app works under plain uvicorn and ``fastapi run`` with several workers,
and each of those workers loads the pipelines directory and follows deploys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import SAMPLE_PIPELINES, copy_pipelines, free_port, read_folder, stop_process, wait_until

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
_CLIENT = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "uvicorn"), "hayhooks.server.app:app", "--workers", "2"],
        [str(BIN / "fastapi"), "run", str(REPO / "src" / "hayhooks" / "server" / "app.py"), "--workers", "2"],
    ],
    ids=["uvicorn", "fastapi-run"],
)
def test_module_level_app_with_workers(command, pipelines_dir, tmp_path):
    copy_pipelines(pipelines_dir, "echo")
    port = free_port()
    env = {**os.environ, "HAYHOOKS_PIPELINES_DIR": str(pipelines_dir)}
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        workers = wait_until(
            lambda: (
                (w := _CLIENT.get(f"{url}/status").json()["workers"])
                and len(w) == 2
                and all(x["in_sync"] for x in w)
            ),
            timeout=90,
        )
        assert workers
        statuses = [_CLIENT.get(f"{url}/status").json() for _ in range(20)]
        assert all(s["pipelines"] == ["echo"] for s in statuses)
        r = _CLIENT.post(
            f"{url}/deploy-files", json={"name": "echo2", "files": read_folder(SAMPLE_PIPELINES / "echo")}
        )
        assert r.status_code == 200 and r.json()["workers"] == 2, r.text + log.read_text()
        for _ in range(30):
            assert _CLIENT.post(f"{url}/echo2/run", json={"name": "w"}).json() == {"result": "Hello w!"}
    finally:
        stop_process(proc)
