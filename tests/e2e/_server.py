"""Start a real ``hayhooks run`` subprocess on a free loopback port, and run CLI commands against it.

Reusable by any e2e test: ``HayhooksServer(pipelines_dir).start()`` waits until ``GET /ready``
answers 200 (the process' own startup, not a performance assertion) and ``stop()`` ends it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from conftest import instance_ready, worker_count

STARTUP_LIMIT = 90.0  # generous: the machine is shared; only a hung start should reach it


def hayhooks_command() -> list[str]:
    """The installed ``hayhooks`` console script next to this interpreter (or ``python -m``)."""
    script = Path(sys.executable).parent / "hayhooks"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hayhooks.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without HAYHOOKS_* settings, with wide non-colour console output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAYHOOKS_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


class HayhooksServer:
    def __init__(
        self,
        pipelines_dir: Path,
        workdir: Optional[Path] = None,
        env: Optional[dict[str, str]] = None,
        args: tuple[str, ...] = (),
        port_flag: bool = True,
    ) -> None:
        """``port_flag=False`` passes the port as HAYHOOKS_PORT instead of ``--port``."""
        self.pipelines_dir = Path(pipelines_dir)
        self.workdir = Path(workdir or self.pipelines_dir.parent)
        self.extra_env = env or {}
        self.args = args
        self.port_flag = port_flag
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"hayhooks-{self.port}.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> HayhooksServer:
        command = [
            *hayhooks_command(),
            "run",
            "--host",
            "127.0.0.1",
            "--pipelines-dir",
            str(self.pipelines_dir),
            *self.args,
        ]
        env = dict(self.extra_env)
        if self.port_flag:
            command += ["--port", str(self.port)]
        else:
            env["HAYHOOKS_PORT"] = str(self.port)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=clean_env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"hayhooks run exited with {self.process.returncode}:\n{self.log()}")
            if instance_ready(self.url, worker_count(self.args), self.extra_env, self.process.pid):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"hayhooks run did not become ready:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        self.process = None

    def __enter__(self) -> HayhooksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(
    *args: str, cwd: Optional[Path] = None, env: Optional[dict[str, str]] = None, timeout: float = 120.0
) -> subprocess.CompletedProcess:
    """Run ``hayhooks ARGS...`` as a subprocess and capture its text output."""
    return subprocess.run(
        [*hayhooks_command(), *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
