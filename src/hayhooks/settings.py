"""One typed settings object for the server, the workers and the CLI.

Every field maps to a ``HAYHOOKS_<FIELD>`` environment variable (and ``.env``); CLI flags override
by constructing ``HayhooksSettings(**overrides)``. Nothing reads the environment at import time:
callers build a settings object in ``create_app`` / ``main``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hayhooks.pipelines.ignore import DEFAULT_PATTERNS as DEFAULT_IGNORE_PATTERNS

# A list setting read from the environment as a JSON list (`["a", "b"]`) or a comma list (`a, b`).
StrList = Annotated[list[str], NoDecode]

# Threads for sync runs when HAYHOOKS_THREAD_POOL_SIZE is 0. A run blocked on an LLM API holds a
# thread, not a core; threads start only when needed, so the bound costs nothing until it is used.
DEFAULT_THREAD_POOL_SIZE = 256


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
        0,
        description="Most threads for sync wrapper calls and sync stream steps per worker, started "
        "only when needed; 0 means 256 (sized for runs that wait on I/O such as LLM APIs).",
    )

    gc_threshold: int = Field(
        50_000,
        ge=0,
        description="Young-generation threshold of Python's garbage collector in server processes "
        "(Python's default is 700, which under concurrent load collects every few requests for "
        "nothing: about 10% of an echo worker's CPU); 0 keeps the interpreter's setting.",
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

    # Security: API keys, request size limits, CORS (see docs/configuration.md, "Security")
    api_keys: StrList = Field(
        default_factory=list,
        description="Keys accepted on the serving routes (Bearer or X-API-Key); empty = open.",
    )
    protect_docs: bool = Field(
        False, description="Require an API key for /docs, /redoc, /openapi.json and /openapi.yaml too."
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, description="Largest request body (JSON, deploys) in bytes; 0 = no limit."
    )
    max_upload_bytes: int = Field(
        256 * 1024 * 1024, description="Largest multipart (file upload) body in bytes; 0 = no limit."
    )
    cors_allow_origins: StrList = Field(default_factory=lambda: ["*"], description="CORS allowed origins.")
    cors_allow_methods: StrList = Field(default_factory=lambda: ["*"], description="CORS allowed methods.")
    cors_allow_headers: StrList = Field(default_factory=lambda: ["*"], description="CORS allowed headers.")
    cors_allow_credentials: bool = Field(False, description="CORS: allow credentials (cookies, auth).")
    cors_allow_origin_regex: Optional[str] = Field(None, description="CORS: regex of allowed origins.")
    cors_expose_headers: StrList = Field(default_factory=list, description="CORS: headers browsers may read.")
    cors_max_age: int = Field(600, description="CORS: seconds a browser may cache a preflight answer.")

    # Hayhooks 2.x compatibility (compat): folder reading and the CLI's connection to the server
    files_to_ignore_patterns: StrList = Field(
        default_factory=lambda: list(DEFAULT_IGNORE_PATTERNS),
        description="Files left out of a pipeline folder (shell patterns, matched against every path "
        "component) by `deploy-files` and by the server: a JSON list or a comma list.",
    )
    use_https: bool = Field(False, description="The CLI talks to the server over https (client side only).")
    disable_ssl: bool = Field(
        False, description="The CLI does not verify the server's TLS certificate (self-signed setups)."
    )

    # Runtime: timeouts, graceful shutdown, slow clients
    request_timeout: float = Field(
        0.0,
        ge=0,
        description="Seconds a run (a stream included) may take before it answers 504; 0 = no limit. "
        "A wrapper's `request_timeout` class attribute overrides it.",
    )
    graceful_shutdown_timeout: float = Field(
        5.0,
        ge=0,
        description="Seconds in-flight requests and streams get to finish after SIGTERM before they are cut.",
    )
    shutdown_delay: float = Field(
        0.0,
        ge=0,
        description="Seconds to keep accepting requests after SIGTERM with /ready at 503 (for load "
        "balancers that learn from readiness probes) before draining.",
    )
    header_read_timeout: float = Field(
        10.0,
        ge=0,
        description="Seconds a client has to send a request's headers before the connection is closed; 0 = no limit.",
    )

    # Observability (metrics, request ids, logs, traces; see docs/observability.md)
    metrics_enabled: bool = Field(True, description="Serve `GET /metrics` (Prometheus) and record metrics.")
    metrics_public: bool = Field(
        False, description="Let `/metrics` be scraped without an API key when API keys are configured."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`text`, or `json`: one object per line (server and uvicorn logs)."
    )
    access_log_excluded_path_prefixes: StrList = Field(
        default_factory=list,
        description="Path prefixes whose requests are left out of the access log (JSON or comma list).",
    )
    tracing_token: Optional[str] = Field(
        None, description="Bearer token for `GET /traces` (the admin token works too); unset = loopback-only."
    )
    recent_runs: int = Field(
        100, description="Recent runs each worker keeps for `GET /traces`; 0 turns the record off."
    )

    # Durable runs (issue 13): 2.x names and defaults, except the embedded SQLite default store.
    durable_store: Literal["sqlite", "redis"] = Field(
        "sqlite",
        description="Where executions live: `sqlite` (a file in the pipelines directory's `.hayhooks/` "
        "folder, shared by every worker and instance on that filesystem) or `redis` (many hosts).",
    )
    durable_sqlite_path: Optional[Path] = Field(
        None,
        description="SQLite file of the durable store; unset = `<pipelines_dir>/.hayhooks/durable.sqlite3`.",
    )
    durable_redis_url: str = Field("redis://localhost:6379/0", description="Redis URL of the durable store.")
    durable_redis_key_prefix: str = Field(
        "hayhooks:durable", description="Prefix of every Redis key the durable store writes."
    )
    durable_worker_concurrency: int = Field(
        1, ge=1, le=1024, description="Durable executions one worker process runs at once."
    )
    durable_poll_interval_seconds: float = Field(
        1.0, gt=0, description="Seconds between checks for due or abandoned executions when idle."
    )
    durable_maintenance_interval_seconds: float = Field(
        60.0, gt=0, description="Seconds between purges of expired terminal executions."
    )
    durable_lease_duration_ms: int = Field(
        30_000,
        ge=100,
        description="Lease of a running execution; renewed every third of it. Another worker takes the "
        "execution over when its owner stops renewing (crash) for this long.",
    )
    durable_max_run_attempts: int = Field(
        3,
        ge=1,
        description="Runs of one execution lost with their worker (crash, kill -9) before it fails; suspensions and retries do not count.",
    )
    durable_max_application_retries: int = Field(
        2,
        ge=0,
        description="Retries a wrapper may request (`raise context.retry(...)`) before the execution fails.",
    )
    durable_retry_base_delay_seconds: float = Field(
        1.0, ge=0, description="First application-retry delay; doubles on each retry."
    )
    durable_retry_max_delay_seconds: float = Field(60.0, ge=0, description="Cap of the retry delay.")
    durable_shutdown_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="On graceful shutdown, seconds running executions get to finish before release.",
    )
    durable_release_running_on_shutdown: bool = Field(
        True,
        description="On graceful shutdown, hand unfinished executions back at once (another worker resumes "
        "them from their last checkpoint) instead of waiting for their lease to expire.",
    )
    durable_terminal_ttl_seconds: int = Field(
        604_800, ge=1, description="Seconds finished executions are kept."
    )
    durable_max_nonterminal_executions: int = Field(
        0,
        ge=0,
        description="Queued + running + waiting executions accepted at once (429 beyond); 0 = no cap.",
    )
    durable_max_payload_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest request, result, checkpoint or resume input (JSON bytes); 413 beyond.",
    )
    durable_max_progress_events: int = Field(
        100, ge=1, description="Progress events kept per execution (older ones are dropped)."
    )
    durable_max_progress_event_bytes: int = Field(
        8_192, ge=256, description="Largest progress event; longer ones are truncated with a marker."
    )
    durable_max_stream_chunks: int = Field(
        10_000,
        ge=0,
        description="Stream chunks kept per execution for `.../stream`; 0 disables the chunk log.",
    )
    durable_max_stream_chunk_bytes: int = Field(
        64_000, ge=256, description="Largest stream chunk; longer ones are truncated with a marker."
    )

    # Durable runs: commits only within a safe lease (issue 13, leftovers)
    durable_lease_commit_safety_ms: int = Field(
        2_000,
        ge=0,
        description="An execution's owner writes (checkpoints, progress, result, state changes) only "
        "while its lease has at least this long left by its own clock since its last renewal; with "
        "less it renews first, and stops if it cannot. Capped at a third of the lease; 0 turns it off.",
    )

    # Deploy engine: archive of replaced versions (issue 10)
    archive_keep: int = Field(
        10,
        ge=1,
        description="Archived (replaced or undeployed) versions kept per pipeline for history and rollback.",
    )

    # Networked pipelines store (issue 12 point 3): Redis as the source of truth, for instances
    # that share no filesystem. Empty = the pipelines directory alone (the default).
    store_url: str = Field(
        "",
        description="Where deployed pipelines live: empty = the pipelines directory (default); "
        "`redis://host:6379/0` (or `rediss://`, `unix://`) = a Redis store shared by every instance, "
        "each keeping its pipelines directory as a local copy. Needs `hayhooks[redis]`.",
    )
    store_key_prefix: str = Field(
        "hayhooks:store", description="Prefix of every Redis key the pipelines store writes."
    )

    # Hayhooks 2.x compatibility, issue 8 follow-up (compat2): intercepted loggers, excluded spans
    intercepted_loggers: StrList = Field(
        default_factory=lambda: ["uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"],
        description="Standard-library loggers whose records go out in our format (HAYHOOKS_LOG_FORMAT, "
        "request id) at HAYHOOKS_LOG_LEVEL, once: a JSON list or a comma list.",
    )
    tracing_excluded_spans: StrList = Field(
        default_factory=lambda: ["send", "receive"],
        description="Spans not exported over OTLP: a name matches a span of that exact name, and "
        "`send` / `receive` also match ASGI instrumentation's per-message spans (`GET /x http send`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_log_variable(cls, data: Any) -> Any:
        """2.x read the log level from ``LOG`` too; HAYHOOKS_LOG_LEVEL (or an argument) wins."""
        legacy = os.environ.get("LOG")
        if legacy and isinstance(data, dict) and "log_level" not in data:
            return {**data, "log_level": legacy}
        return data

    @field_validator(
        "api_keys",
        "cors_allow_origins",
        "cors_allow_methods",
        "cors_allow_headers",
        "cors_expose_headers",
        "files_to_ignore_patterns",
        "access_log_excluded_path_prefixes",
        "intercepted_loggers",
        "tracing_excluded_spans",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a JSON list or a comma list, like Hayhooks 2.x did, from the environment and flags."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a valid JSON list: {exc}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str) -> str:
        """Refuse at startup what we cannot serve, with the fix, rather than on the first deploy."""
        value = (value or "").strip()
        if not value:
            return value
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"unsupported store URL scheme {scheme or value!r}: use redis://, rediss:// or unix:// "
                "(or leave it empty for the pipelines directory)"
            )
        if importlib.util.find_spec("redis") is None:
            raise ValueError('a Redis store needs the redis client: pip install "hayhooks[redis]"')
        return value

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
        return self.thread_pool_size if self.thread_pool_size > 0 else DEFAULT_THREAD_POOL_SIZE

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
