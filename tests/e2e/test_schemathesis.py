"""Schemathesis against a real ``hayhooks run`` serving the example and fixture pipelines.

Every operation of ``/openapi.json`` is called with generated valid and invalid requests; the run
fails on any 5xx, any answer whose status, content type, headers or body the document does not
describe, and any schema-valid request that is refused. Deploy routes are left out (they execute
code); ``test_openapi.py`` checks their documented answers.

``negative_data_rejection`` is the one check left out, on purpose: like FastAPI and Hayhooks 2.x,
request bodies are validated leniently (``"3"`` for an integer field is accepted as 3), which that
check reports as "invalid data accepted".

Bounded: a fixed seed, a few examples per operation, one worker, and a memory cap on the server
so a pipeline that a generated input makes allocate without limit fails this test, not the machine.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import SAMPLE_PIPELINES, copy_pipelines, free_port, stop_process, wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parents[2] / "examples" / "pipelines"
# All fixture pipelines but `fails_at_run`, whose run raises by design (its 500 is the point).
FIXTURES = [
    "async_echo",
    "chat_input",
    "echo",
    "headers",
    "helpers_a",
    "helpers_b",
    "qa.yml",
    "response_passthrough",
    "retrieval",
    "stream_sse",
    "stream_text",
    "untyped",
    "upload",
]
SERVER_MEMORY_CAP = 4 * 1024**3  # address space; a normal server uses well under 1 GiB
SCHEMATHESIS = Path(sys.executable).with_name("st")


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SERVER_MEMORY_CAP, SERVER_MEMORY_CAP))


@pytest.mark.timeout(240)  # about a minute alone; room for a loaded machine
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines"
    shutil.copytree(EXAMPLES, pipelines, ignore=shutil.ignore_patterns("__pycache__"))
    copy_pipelines(pipelines, *FIXTURES, source=SAMPLE_PIPELINES)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("hayhooks")), "run", "--host", "127.0.0.1", "--port", str(port)]
        + ["--pipelines-dir", str(pipelines)],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "HAYHOOKS_LOG_LEVEL": "warning"},
        start_new_session=True,
        preexec_fn=_cap_memory,
    )
    try:
        wait_until(lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200, timeout=90)
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "negative_data_rejection",
                "--exclude-path-regex",
                "^/(deploy|deploy-files|deploy-yaml|undeploy/|pipelines/)",
                "--max-examples",
                "5",
                "--seed",
                "20261201",
                "--workers",
                "1",
                "--no-shrink",
                "--request-timeout",
                "20",
            ],
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=100,
        )
        summary = run.stdout[-12000:]
        assert run.returncode == 0, f"schemathesis found problems:\n{summary}\n{run.stderr[-2000:]}"
        # Every pipeline's run route and every fixed route but the four deploy ones was exercised.
        tested = re.search(r"Tested:\s+(\d+)", run.stdout)
        assert tested and int(tested.group(1)) >= 30, summary
        assert server.poll() is None, f"the server died during the run:\n{log.read_text()[-4000:]}"
    finally:
        stop_process(server)
