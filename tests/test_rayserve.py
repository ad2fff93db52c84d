"""``hayhooks ray run``'s replica options, without starting Ray (the cluster test is e2e/test_ray.py)."""

from __future__ import annotations

import subprocess

import pytest
from conftest import HAYHOOKS

from hayhooks.rayserve.deployment import DEPLOYMENT_NAME, ReplicaSpec


def test_fixed_replica_count_and_placement():
    options = ReplicaSpec.parse("3", max_replicas_per_node=1, num_cpus=0.5).deployment_options()
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options
    assert options["max_replicas_per_node"] == 1
    assert options["ray_actor_options"] == {"num_cpus": 0.5}
    assert options["name"] == DEPLOYMENT_NAME


def test_auto_replicas_scale_between_the_bounds():
    options = ReplicaSpec.parse(
        "auto", min_replicas=2, max_replicas=8, target_ongoing_requests=4
    ).deployment_options()
    assert "num_replicas" not in options and "max_replicas_per_node" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 2,
        "initial_replicas": 2,
        "max_replicas": 8,
        "target_ongoing_requests": 4,
    }


@pytest.mark.parametrize(
    ("replicas", "bounds"), [("0", {}), ("two", {}), ("auto", {"min_replicas": 5, "max_replicas": 2})]
)
def test_bad_replica_options_are_refused(replicas, bounds):
    with pytest.raises(ValueError):
        ReplicaSpec.parse(replicas, **bounds)


def test_cli_reports_bad_replicas_without_a_traceback():
    result = subprocess.run(
        [HAYHOOKS, "ray", "run", "--replicas", "many"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--replicas must be a positive number or 'auto'" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_node_bound_narrows_only_the_wildcard_address():
    from hayhooks.rayserve.compat import node_bound

    seen: list[str] = []

    def add_port(server: object, address: str) -> int:
        seen.append(address)
        return 4242

    assert node_bound(add_port, "127.0.0.1")(None, "[::]:0") == 4242
    node_bound(add_port, "fd00::7")(None, "[::]:0")
    node_bound(add_port, "10.0.0.5")(None, "10.0.0.5:9000")
    assert seen == ["127.0.0.1:0", "[fd00::7]:0", "10.0.0.5:9000"]


def test_ray_serve_internals_the_compat_module_relies_on():
    """Pins Ray Serve: replicas bind their inter-deployment gRPC server through the module-level
    ``add_port_to_grpc_server`` on ``[::]:0``. If this fails, revisit hayhooks.rayserve.compat."""
    import inspect

    replica = pytest.importorskip("ray.serve._private.replica", reason="needs the extra hayhooks[ray]")
    assert callable(replica.add_port_to_grpc_server)
    source = inspect.getsource(replica.Replica._on_initialized)
    assert 'add_port_to_grpc_server(self._server, "[::]:0")' in source
