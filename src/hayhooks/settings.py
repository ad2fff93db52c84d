"""One typed settings object for the server, the workers and the CLI.

Every field maps to a ``HAYHOOKS_<FIELD>`` environment variable (and ``.env``); CLI flags override
by constructing ``HayhooksSettings(**overrides)``. Nothing reads the environment at import time:
callers build a settings object in ``create_app`` / ``main``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HayhooksSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAYHOOKS_", env_file=".env", extra="ignore")

    # Server
    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(1416, description="Port of the HTTP server.")
    root_path: str = Field("", description="ASGI root path when served behind a proxy under a prefix.")
    pipelines_dir: Path = Field(
        Path("pipelines"), description="The pipelines directory (created if missing)."
    )
    additional_python_path: Optional[str] = Field(
        None, description="Extra import path(s), os.pathsep-separated, added to sys.path for wrappers."
    )
    workers: str = Field("1", description="Worker processes: a number or `auto` (usable cores).")

    # Execution
    thread_pool_size: int = Field(
        0, description="Threads for sync `run_api` calls per worker; 0 means min(32, cores + 4)."
    )

    max_queued_runs: int = Field(
        -1,
        description="Sync runs that may wait for a free thread per worker before new ones get 503 "
        "with Retry-After; -1 = no bound.",
    )
    setup_timeout: float = Field(
        300.0,
        description="Seconds a pipeline's setup() may take before it is reported as failed; 0 = no limit.",
    )

    # Runtime deploy and safety
    admin_token: Optional[str] = Field(
        None, description="Bearer token required by the deploy endpoints; unset = loopback-only."
    )
    disable_runtime_deploy: bool = Field(False, description="Turn the deploy/undeploy endpoints off.")
    yaml_allowed_modules: str = Field(
        "", description="Extra module prefixes (comma list) whose classes YAML pipelines may instantiate."
    )
    show_tracebacks: bool = Field(False, description="Add tracebacks to error responses.")

    # Keeping workers and instances in agreement
    deploy_sync_timeout: float = Field(
        10.0, description="Seconds a deploy waits for every live worker to serve the change."
    )
    poll_interval: float = Field(
        1.0, description="Seconds between full scans of the pipelines directory for hand edits."
    )
    heartbeat_interval: float = Field(1.0, description="Seconds between worker heartbeats.")

    # Streaming
    streaming_components: str = Field(
        "", description="Which components stream in streaming_generator: `all` or a comma list; empty = last."
    )

    # MCP
    mcp_host: str = Field("127.0.0.1", description="Host of `hayhooks mcp run`.")
    mcp_port: int = Field(1417, description="Port of `hayhooks mcp run`.")

    # Logging
    log_level: str = Field("info", description="Log level of the server.")
    access_log: bool = Field(True, description="Log every request (uvicorn access log).")

    # Deploy engine: archive of replaced versions (issue 10)
    archive_keep: int = Field(
        10,
        ge=1,
        description="Archived (replaced or undeployed) versions kept per pipeline for history and rollback.",
    )

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: str) -> str:
        value = str(value).strip().lower()
        if value != "auto" and (not value.isdigit() or int(value) < 1):
            raise ValueError("workers must be a positive number or 'auto'")
        return value

    @property
    def worker_count(self) -> int:
        if self.workers == "auto":
            try:
                return max(1, len(os.sched_getaffinity(0)))
            except AttributeError:  # pragma: no cover - non-Linux
                return max(1, os.cpu_count() or 1)
        return int(self.workers)

    @property
    def resolved_thread_pool_size(self) -> int:
        return self.thread_pool_size or min(32, (os.cpu_count() or 1) + 4)

    @property
    def bound_to_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
