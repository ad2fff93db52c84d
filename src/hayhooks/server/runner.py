"""Start uvicorn: one process, or N worker processes that each build the app from HAYHOOKS_*."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from typing import Any, Optional

import uvicorn

from hayhooks.observability.logs import uvicorn_log_config
from hayhooks.observability.runner import instance_metrics_dir
from hayhooks.server import protocols
from hayhooks.settings import HayhooksSettings

FACTORY = "hayhooks.server.app:create_app_from_env"


def export_settings(settings: HayhooksSettings) -> None:
    """Make worker processes (and reloads) see exactly these settings, CLI flags included."""
    for name, value in settings.model_dump().items():
        if value is not None:
            if isinstance(value, bool):
                text = str(value).lower()
            elif isinstance(value, (list, dict)):
                text = json.dumps(value)  # list settings read JSON back
            else:
                text = str(value)
            os.environ[f"HAYHOOKS_{name.upper()}"] = text


def run_server(settings: HayhooksSettings, reload: bool = False, **uvicorn_options: Any) -> None:
    """Serve until stopped.

    ``reload`` needs no process restart: every worker already follows the pipelines directory and
    reloads a pipeline whose files change; reload mode only makes it look more often.
    """
    if reload:
        settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    workers = settings.worker_count
    settings.pipelines_dir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "root_path": settings.root_path,
        "log_level": settings.log_level.lower(),
        "access_log": settings.access_log,
        "log_config": uvicorn_log_config(
            settings.log_format, settings.access_log_excluded_path_prefixes, settings.intercepted_loggers
        ),
        # In-flight requests and streams get this long after SIGTERM; open streams are then cut.
        "timeout_graceful_shutdown": settings.graceful_shutdown_timeout,
        # uvicorn's HTTP protocol plus a header-read timeout against slow clients.
        "http": protocols.protocol_name(),
        **uvicorn_options,
    }
    protocols.header_read_timeout = settings.header_read_timeout
    with exit_zero_after_sigterm(), instance_metrics_dir():
        if workers == 1:
            from hayhooks.server.app import create_app

            uvicorn.run(create_app(settings), **common)
            return
        export_settings(settings)
        uvicorn.run(FACTORY, factory=True, workers=workers, **common)


@contextlib.contextmanager
def exit_zero_after_sigterm() -> Iterator[None]:
    """A drained shutdown is a success: exit 0, not "killed by SIGTERM".

    uvicorn re-raises the signal it handled once it has shut down, for the handler that was there
    before it; this no-op handler receives it, so ``hayhooks run`` returns normally.
    """
    try:
        previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_app(settings: Optional[HayhooksSettings] = None, reload: bool = False, **overrides: Any) -> None:
    """Programmatic entry point: ``run_app(port=8000, pipelines_dir="my_pipelines")``."""
    settings = settings or HayhooksSettings(**overrides)
    run_server(settings, reload=reload)
