"""The suite's loopback guard: decisions, and that it is active here and in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sitecustomize as netguard


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "::ffff:127.0.0.1", b"127.0.0.1"]
)
def test_loopback_hosts_are_allowed(host):
    assert netguard.is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["10.0.0.1", "192.168.1.1", "172.16.0.1", "8.8.8.8", "2001:db8::1", "example.com", "0.0.0.0", None, 5],
)
def test_other_hosts_are_refused(host):
    assert not netguard.is_loopback_host(host)


def test_guard_is_installed_in_the_test_process():
    assert netguard.installed
    assert os.environ[netguard.ENV_LOG]


def test_guard_refuses_in_a_subprocess_before_any_packet(tmp_path):
    """A child started with the suite's environment refuses a lookup and records it in the shared log.

    The child checks that the guard is installed before it tries anything, so a broken guard fails this
    test instead of sending a packet."""
    log = tmp_path / "child.log"
    code = (
        "import socket, sitecustomize as g\n"
        "assert g.installed, 'guard not installed'\n"
        "try:\n"
        "    socket.getaddrinfo('hayhooks-guard-probe.invalid', 80)\n"
        "except g.NetworkGuardError:\n"
        "    print('refused')\n"
    )
    env = {**os.environ, netguard.ENV_LOG: str(log)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "refused", out.stderr
    assert "hayhooks-guard-probe.invalid" in log.read_text()
