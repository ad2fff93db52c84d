"""The Ray Serve deployment: one replica = one ``create_app(settings)`` ASGI app with its lifespan.

The replica class is built lazily (Ray is an optional dependency) and receives the settings as
plain JSON, so a replica on another node rebuilds exactly the settings the driver resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hayhooks.rayserve import require_ray
from hayhooks.settings import HayhooksSettings

DEPLOYMENT_NAME = "hayhooks"


@dataclass(frozen=True)
class ReplicaSpec:
    """How many replicas, and where: a fixed count, or autoscaling between two bounds."""

    replicas: Optional[int] = 1  # None = autoscaling
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    max_replicas_per_node: Optional[int] = None
    num_cpus: float = 1.0
    max_ongoing_requests: int = 100

    @classmethod
    def parse(cls, replicas: str, **bounds: Any) -> ReplicaSpec:
        """``"3"`` or ``"auto"`` (with ``min_replicas`` / ``max_replicas`` ...)."""
        value = replicas.strip().lower()
        if value == "auto":
            spec = cls(replicas=None, **bounds)
            if not 0 <= spec.min_replicas <= spec.max_replicas or spec.max_replicas < 1:
                raise ValueError("need 0 <= --min-replicas <= --max-replicas and --max-replicas >= 1")
            return spec
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--replicas must be a positive number or 'auto', not {replicas!r}")
        return cls(replicas=int(value), **bounds)

    def deployment_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.max_replicas_per_node is not None:
            options["max_replicas_per_node"] = self.max_replicas_per_node
        if self.replicas is None:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(1, self.min_replicas),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def build_application(settings: HayhooksSettings, spec: ReplicaSpec) -> Any:
    """A bound Ray Serve application serving ``create_app(settings)`` on every replica."""
    _, serve = require_ray()

    @serve.ingress()
    class HayhooksReplica:
        """One replica: the whole Hayhooks app (HTTP, OpenAI, MCP routes), built on the replica."""

        def __init__(self, settings_json: dict[str, Any]) -> None:
            from hayhooks.rayserve.compat import bind_replica_grpc_to_node_address

            bind_replica_grpc_to_node_address()  # before Ray starts the replica's gRPC server
            self._settings = HayhooksSettings(**settings_json)

        def __serve_build_asgi_app__(self) -> Any:
            from hayhooks.server.app import create_app

            return create_app(self._settings)

    deployment = serve.deployment(HayhooksReplica).options(**spec.deployment_options())
    # Every setting travels as resolved here (a replica's own HAYHOOKS_* environment does not
    # override it); the pipelines directory as an absolute path, as replicas run elsewhere.
    resolved = settings.model_copy(update={"pipelines_dir": settings.pipelines_dir.resolve()})
    return deployment.bind(resolved.model_dump(mode="json"))
