# syntax=docker/dockerfile:1
# The operator's image: the package built as a wheel (with its dependencies) in a builder stage,
# installed into a slim Python runtime that runs as a non-root numeric user, with git (sources
# and catalogs) and buildctl (the BuildKitDaemon backend) beside it.
#
#   docker build -t ade-runner-operator:0.1.0 .
#
# Pin by digest in production (FROM python:3.11-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The BuildKit release the Job backend runs by default (controller/build/job.py BUILDKIT_IMAGE).
ARG BUILDKIT_VERSION=v0.25.2

FROM moby/buildkit:${BUILDKIT_VERSION} AS buildkit

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller/ controller/
# The operator's wheel and a wheel of every dependency, so the runtime installs offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ade-runner-operator" \
      org.opencontainers.image.description="Builds, verifies and publishes runner images for Azure Deployment Environments" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
# git: the operator clones sources and catalog repositories with the git CLI (GitPython).
# Debian's security updates move these versions; the base image digest pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/ade_runner_operator-*.whl \
 && groupadd --gid 10001 operator \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin operator
USER 10001:10001
WORKDIR /tmp
# 8080: Prometheus /metrics (ADE_METRICS_PORT); 8081: kopf's /healthz (ADE_HEALTH_PORT).
EXPOSE 8080 8081
ENTRYPOINT ["ade-runner-operator"]
CMD ["run"]
