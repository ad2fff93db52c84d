"""``hayhooks ray run``: serve the app as a Ray Serve deployment on a local or existing Ray cluster."""

from __future__ import annotations

import signal
import threading
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.common import AdditionalPythonPathOption, PipelinesDirOption, build_settings
from hayhooks.cli.output import EXIT_INPUT, console, fail

ray_app = typer.Typer(
    name="ray",
    help="Serve the pipelines with Ray Serve, on one machine or a Ray cluster (extra hayhooks[ray]).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


class ProxyLocation(str, Enum):
    EveryNode = "EveryNode"
    HeadOnly = "HeadOnly"


@ray_app.command("run")
def run(
    replicas: Annotated[
        str,
        typer.Option("--replicas", help="Replicas: a number, or `auto` to scale between the bounds below."),
    ] = "1",
    min_replicas: Annotated[
        int, typer.Option("--min-replicas", help="Lower bound with --replicas auto.")
    ] = 1,
    max_replicas: Annotated[
        int, typer.Option("--max-replicas", help="Upper bound with --replicas auto.")
    ] = 4,
    target_ongoing_requests: Annotated[
        float,
        typer.Option(
            "--target-ongoing-requests", help="With --replicas auto: requests per replica to aim for."
        ),
    ] = 2.0,
    max_replicas_per_node: Annotated[
        Optional[int],
        typer.Option("--max-replicas-per-node", help="Spread replicas: at most this many per node."),
    ] = None,
    num_cpus: Annotated[float, typer.Option("--num-cpus", help="CPUs Ray reserves for each replica.")] = 1.0,
    address: Annotated[
        Optional[str],
        typer.Option(
            "--address",
            help="Ray cluster to join (`auto`, `host:port`, `ray://...`). Default: start a local Ray.",
        ),
    ] = None,
    proxy_location: Annotated[
        ProxyLocation, typer.Option("--proxy-location", help="Where Ray Serve runs HTTP proxies.")
    ] = ProxyLocation.EveryNode,
    host: Annotated[
        Optional[str],
        typer.Option(
            "--host", help="Address the HTTP proxy binds to. \\[env: HAYHOOKS_HOST]", show_default=False
        ),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option("--port", help="Port of the HTTP proxy. \\[env: HAYHOOKS_PORT]", show_default=False),
    ] = None,
    pipelines_dir: PipelinesDirOption = None,
    additional_python_path: AdditionalPythonPathOption = None,
) -> None:
    """Serve the pipelines as a Ray Serve application until stopped (Ctrl+C or SIGTERM).

    Every replica serves every pipeline and follows the pipelines directory (which must be shared
    by every node); a deploy through any replica returns once all of them serve it.
    """
    from hayhooks.rayserve import require_ray
    from hayhooks.rayserve.deployment import DEPLOYMENT_NAME, ReplicaSpec, build_application

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "pipelines_dir": pipelines_dir,
            "additional_python_path": additional_python_path,
        }.items()
        if v is not None
    }
    settings = build_settings(overrides)
    try:
        spec = ReplicaSpec.parse(
            replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=target_ongoing_requests,
            max_replicas_per_node=max_replicas_per_node,
            num_cpus=num_cpus,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_INPUT)
    try:
        ray, serve = require_ray()
    except ImportError as exc:
        fail(str(exc))

    settings.pipelines_dir.mkdir(parents=True, exist_ok=True)
    init: dict[str, Any] = {"address": address, "log_to_driver": True}
    if address is None:
        init["include_dashboard"] = False  # a local Ray: nothing listens beyond what serves requests
    ray.init(**init)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(
            proxy_location=proxy_location.value,
            http_options={"host": settings.host, "port": settings.port},
        )
        serve.run(build_application(settings, spec), name=DEPLOYMENT_NAME, route_prefix="/", blocking=False)
        console.print(
            f"Hayhooks on Ray Serve at http://{settings.host}:{settings.port} "
            f"({'autoscaling' if spec.replicas is None else spec.replicas} replica(s), "
            f"pipelines from {settings.pipelines_dir.resolve()})",
            highlight=False,
        )
        stop.wait()
    finally:
        console.print("Stopping Ray Serve ...", highlight=False)
        serve.shutdown()
        ray.shutdown()
