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
