"""A local two-node Ray cluster for the Ray Serve tests, run as its own process.

``python _ray_cluster.py`` starts ``ray.cluster_utils.Cluster`` (a head and a second node, 1 CPU
each, no dashboard), prints the GCS address on one line, and keeps the cluster up until its
standard input closes or it receives SIGTERM. Kept out of the pytest process so Ray's threads and
import-time settings never leak into other tests. Started with the loopback-only Ray environment
of ``test_ray.py`` (and the suite's network guard, through PYTHONPATH).
"""

from __future__ import annotations

import signal
import sys
import threading

import ray
from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(cluster.address, flush=True)
    stop.wait()
    ray.shutdown()  # the driver first: Cluster refuses to remove the node it is connected to
    cluster.shutdown()


if __name__ == "__main__":
    main()
