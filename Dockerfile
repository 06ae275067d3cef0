# The release agent's image: the `canary` command from the hash-locked requirements-canary.lock, as a non-root
# user, running `canary agent` by default (components/release_agent.py gives the full command line).
#
# The base is pinned by digest: python:3.11.15-slim-trixie as docker-library/repo-info recorded it (the 3.11-slim
# tag pointed at the same index then). To move it, take the new digest from
# https://github.com/docker-library/repo-info/blob/master/repos/python/remote/3.11-slim.md or
# `docker buildx imagetools inspect python:3.11-slim`, and change both FROM lines.

# --- the wheel, built from the packaged sources only (.dockerignore lets nothing else into the context) ----------
FROM python:3.11.15-slim-trixie@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS wheel
WORKDIR /src
COPY pyproject.toml ./
COPY istio_canary ./istio_canary
# The base image's setuptools builds it: no unpinned build dependency is fetched.
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# --- the image ------------------------------------------------------------------------------------------------
FROM python:3.11.15-slim-trixie@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
# git: the agent clones the repository, commits and pushes. Debian's security updates replace old package
# versions on the mirror, so the version is the one the pinned base's release (trixie) serves today.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Every dependency at the version and hash in the lock, then the project itself: tests/integration/
# test_agent_image.py runs the same two steps. The lock is complete (pip-compile wrote every transitive package), so
# --no-deps installs exactly it: pip before 24 resolves githubkit's `hishel[async,httpx]` afresh in hash mode and
# refuses (pypa/pip#9644). `pip check` then proves no dependency is missing or at a version something refuses.
COPY requirements-canary.lock /tmp/requirements-canary.lock
RUN python -m pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements-canary.lock \
    && rm /tmp/requirements-canary.lock
COPY --from=wheel /dist/ /tmp/dist/
RUN python -m pip install --no-cache-dir --no-deps /tmp/dist/*.whl \
    && python -m pip check \
    && rm -rf /tmp/dist
# A numeric user (Kubernetes can only prove non-root with a number): components/k8s_common.py NON_ROOT_UID.
# Its home is /tmp, like the pod's HOME: the root filesystem is read-only there.
RUN groupadd --gid 10001 canary \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin canary \
    && install -d -o 10001 -g 10001 /work
USER 10001:10001
ENV HOME=/tmp
WORKDIR /work
EXPOSE 9102
# Kubernetes probes /healthz itself (livenessProbe); this is for `docker run`. No curl in the image: Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/healthz', timeout=4)"]
ENTRYPOINT ["canary"]
CMD ["agent"]
