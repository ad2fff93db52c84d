"""Build and run the project's Dockerfile with podman, without any image registry.

No registry is reachable from the test machines, so the official base image cannot be pulled. The
test instead makes its own base: a ``debootstrap --variant=minbase`` of the Debian release this
machine runs, from the mirror apt already uses, with Python added, imported as a local image and
passed as the Dockerfile's ``BASE_IMAGE``. It carries this machine's CA bundle (pip inside the build
reaches PyPI through whatever TLS setup the machine has). The root filesystem is cached as a tarball
under ``~/.cache/hayhooks-test/`` (``HAYHOOKS_TEST_CACHE``), so a re-run skips debootstrap.

podman runs with its own configuration (``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``): runc,
cgroupfs, fixed ulimits, no network namespace, overlay storage in the cache folder. Nothing is
installed or started globally.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_PACKAGES = "python3,python3-venv,ca-certificates,passwd"


def cache_dir() -> Path:
    path = Path(os.environ.get("HAYHOOKS_TEST_CACHE", Path.home() / ".cache" / "hayhooks-test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One test run at a time builds the cached base (parallel runs on one machine wait)."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def debian_release() -> str:
    fields = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    if not codename:
        raise RuntimeError("/etc/os-release names no VERSION_CODENAME: not a Debian release")
    return codename


def debian_mirror() -> str:
    """The Debian archive apt already uses (deb822 ``URIs:`` or one-line ``deb`` entries)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        text = source.read_text(errors="replace")
        found = re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M
        )
        for uri in found:
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    raise RuntimeError("no Debian mirror found in /etc/apt/sources.list*")


def podman_env(tmp: Path) -> dict[str, str]:
    """Environment for podman calls: the test's configuration, storage in the cache."""
    cache = cache_dir()
    conf = tmp / "containers.conf"
    conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        'netns = "none"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{tmp}/events.log"\n'
    )
    storage = tmp / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{cache}/storage"\nrunroot = "{tmp}/run"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def podman(
    env: dict[str, str], *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def base_rootfs(debootstrap: str) -> Path:
    """The cached tarball of a minimal Debian with Python (debootstrap on first use)."""
    cache = cache_dir()
    release = debian_release()
    tarball = cache / f"base-{release}.tar"
    with locked(cache / "base.lock"):
        if tarball.exists():
            return tarball
        rootfs = cache / f"rootfs-{release}"
        shutil.rmtree(rootfs, ignore_errors=True)
        result = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                release,
                str(rootfs),
                debian_mirror(),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        # This machine's trust store, so pip in the build trusts what the machine trusts.
        host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_bundle.exists():
            shutil.copy(host_bundle, rootfs / "usr/local/share/hayhooks-test-ca.crt")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(rootfs, arcname=".")
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
        return tarball


def ensure_base_image(env: dict[str, str], debootstrap: str) -> str:
    """A local image of this machine's Debian with Python, usable as the Dockerfile's BASE_IMAGE."""
    name = f"localhost/hayhooks-test-base:{debian_release()}"
    if podman(env, "image", "exists", name, check=False).returncode == 0:
        return name
    tarball = base_rootfs(debootstrap)
    ca = "/usr/local/share/hayhooks-test-ca.crt"
    podman(
        env,
        "import",
        "--change",
        f"ENV PIP_CERT={ca}",
        "--change",
        f"ENV SSL_CERT_FILE={ca}",
        "--change",
        'CMD ["python3"]',
        str(tarball),
        name,
    )
    return name


def image_id(env: dict[str, str], tag: str) -> str | None:
    result = podman(env, "image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def build_image(env: dict[str, str], base: str, tag: str) -> subprocess.CompletedProcess:
    """Build the repository's Dockerfile on ``base`` (docker format: it keeps HEALTHCHECK).

    The image this replaces is removed, so the cache holds one test image (plus the build cache)
    instead of one per source change.
    """
    previous = image_id(env, tag)
    result = podman(
        env,
        "build",
        "--format",
        "docker",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-t",
        tag,
        str(REPO),
        timeout=900,
    )
    if previous and previous != image_id(env, tag):
        podman(env, "rmi", previous, check=False)
    return result
