# syntax=docker/dockerfile:1
# The hayhooks server image. Build: docker build -t hayhooks .
# Run:   docker run -p 1416:1416 -v ./pipelines:/pipelines -e HAYHOOKS_ADMIN_TOKEN=... hayhooks
# Every HAYHOOKS_* setting comes from the environment (docs/configuration.md).

# Any Debian-like image with Python 3.11+ and the `venv` module; the build and the final stage use
# the same one, so the virtual environment's interpreter links stay valid.
ARG BASE_IMAGE=python:3.12-slim-bookworm

# -- build: install hayhooks and its dependencies into a virtual environment ---------------------
FROM ${BASE_IMAGE} AS build
# Optional parts installed in the image (comma list of pyproject extras): `redis` lets the image use
# the Redis pipelines store (HAYHOOKS_STORE_URL, the Helm chart's store.type=redis). Empty = none.
ARG EXTRAS=redis
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/hayhooks
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN /opt/hayhooks/bin/python -m pip install --no-cache-dir --upgrade pip \
    && /opt/hayhooks/bin/python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e.strip() for e in os.environ.get('EXTRAS', '').split(',') if e.strip()]; print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" > /tmp/requirements.txt \
    && /opt/hayhooks/bin/python -m pip install --no-cache-dir -r /tmp/requirements.txt
COPY src ./src
RUN /opt/hayhooks/bin/python -m pip install --no-cache-dir --no-deps . \
    && /opt/hayhooks/bin/python -m compileall -q /opt/hayhooks/lib

# -- runtime: the virtual environment, a non-root user, the pipelines volume ----------------------
FROM ${BASE_IMAGE}
COPY --from=build /opt/hayhooks /opt/hayhooks
RUN groupadd --system --gid 1000 hayhooks \
    && useradd --system --uid 1000 --gid hayhooks --home-dir /home/hayhooks --create-home hayhooks \
    && mkdir -p /pipelines \
    && chown hayhooks:hayhooks /pipelines
# The defaults of `hayhooks run --host 0.0.0.0 --workers auto`, given as variables rather than
# flags so that `-e HAYHOOKS_WORKERS=4` (or any other HAYHOOKS_* variable) overrides them.
ENV PATH=/opt/hayhooks/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HAYSTACK_TELEMETRY_ENABLED=False \
    HAYHOOKS_HOST=0.0.0.0 \
    HAYHOOKS_PORT=1416 \
    HAYHOOKS_WORKERS=auto \
    HAYHOOKS_PIPELINES_DIR=/pipelines
# Numeric, so Kubernetes (runAsNonRoot) can tell it is not root.
USER 1000:1000
WORKDIR /home/hayhooks
# Shared by every instance (a named volume, NFS, a ReadWriteMany claim); it must be writable by
# uid 1000: workers keep their heartbeats in its .hayhooks/ folder.
VOLUME ["/pipelines"]
EXPOSE 1416
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HAYHOOKS_PORT', '1416') + '/health', timeout=4)"]
# uvicorn stops accepting on SIGTERM and lets running requests finish; give it time to
# (docker stop -t 30, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["hayhooks", "run"]
