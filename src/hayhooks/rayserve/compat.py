"""The one place that touches Ray Serve internals (pinned by tests/test_rayserve.py).

Ray Serve replicas start an inter-deployment gRPC server bound to ``[::]:0``: every interface of
the machine, whatever address the Ray node itself uses (Ray 2.5x, ``ReplicaActor._on_initialized``;
no setting changes it). Proxies and other replicas reach a replica at its *node* address, so
binding to that address instead serves them all and exposes nothing else: on a node started on
127.0.0.1 the replica is then reachable from this machine only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hayhooks")

WILDCARD = "[::]:"


def node_bound(add_port: Callable[[Any, str], int], node_ip: str) -> Callable[[Any, str], int]:
    """Wrap ``add_port_to_grpc_server`` so a wildcard address becomes the node's address."""
    host = f"[{node_ip}]" if ":" in node_ip else node_ip

    def add_port_on_node(server: Any, address: str) -> int:
        if address.startswith(WILDCARD):
            address = host + ":" + address[len(WILDCARD) :]
        return add_port(server, address)

    add_port_on_node.__wrapped__ = add_port  # type: ignore[attr-defined]
    return add_port_on_node


def bind_replica_grpc_to_node_address() -> bool:
    """Call in a replica before it finishes initialising; True if the bind address was narrowed."""
    try:
        import ray
        from ray.serve._private import replica
    except ImportError:  # pragma: no cover - only called inside a Ray replica
        return False
    current = getattr(replica, "add_port_to_grpc_server", None)
    if current is None:
        logger.warning("Ray Serve changed: replicas' gRPC bind address left as Ray sets it")
        return False
    if hasattr(current, "__wrapped__"):
        return True
    replica.add_port_to_grpc_server = node_bound(current, ray.util.get_node_ip_address())
    return True
