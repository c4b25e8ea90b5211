# The operator's image: Debian bookworm with Debian's Python 3.11, the operator and its
# dependencies in a virtual environment made in a builder stage, git (sources and catalogs) and
# buildctl (the BuildKitDaemon backend) beside it; runs as a non-root numeric user.
#
#   docker build -t ade-runner-operator:0.1.0 .
#
# Build arguments:
#   BASE_IMAGE      a Debian bookworm image (default debian:bookworm-slim; a mirror of it, or a
#                   digest: debian:bookworm-slim@sha256:... pins Debian's packages too)
#   BUILDKIT_IMAGE  where buildctl comes from: the BuildKit release the Job backend runs
#                   (controller/builds/job.py BUILDKIT_IMAGE; hack/tools.versions BUILDKIT_VERSION)
# The test suite builds this same file with both pointed at local images (tests/env/node_images.py).
# No `# syntax=` line: the Dockerfile frontend built into BuildKit reads every instruction here,
# so the build needs no frontend image from Docker Hub.

ARG BASE_IMAGE=debian:bookworm-slim
ARG BUILDKIT_IMAGE=moby/buildkit:v0.34.2-rootless

FROM ${BUILDKIT_IMAGE} AS buildkit

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/ade-runner-operator
WORKDIR /src
# Behind a TLS-intercepting proxy or with a private package index, pass the proxy's CA bundle
# and/or a pip.conf as build secrets (both optional; neither stays in the image):
#   --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt --secret id=pip.conf,src=...
# Dependencies first (a layer that changes only with pyproject.toml), then the operator.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca-certificates,target=/run/secrets/ca-certificates \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/ade-runner-operator/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY controller/ controller/
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca-certificates,target=/run/secrets/ca-certificates \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
 && /opt/ade-runner-operator/bin/pip install --no-deps . \
 && /opt/ade-runner-operator/bin/ade-runner-operator --help >/dev/null

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="ade-runner-operator" \
      org.opencontainers.image.description="Builds, verifies and publishes runner images for Azure Deployment Environments" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/ade-runner-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp
# python3: the virtual environment's interpreter; git: the operator clones sources and catalog
# repositories with the git CLI; openssh-client: git's SSH transport and SSH commit signing
# (ssh-keygen -Y sign); gpg, gpg-agent: OpenPGP commit signing (spec.catalog.signing); tini: PID 1,
# which reaps what is orphaned to it (a gpg-agent daemonizes: when it ends, its parent is PID 1,
# and Python would leave it a zombie). The base image's digest pins these versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 git ca-certificates openssh-client gpg gpg-agent tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 ade-operator \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin ade-operator
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl
COPY --from=build /opt/ade-runner-operator /opt/ade-runner-operator
USER 10001:10001
WORKDIR /tmp
# 8080: Prometheus /metrics (ADE_METRICS_PORT); 8081: kopf's /healthz (ADE_HEALTH_PORT).
EXPOSE 8080 8081 9292
ENTRYPOINT ["/usr/bin/tini", "--", "ade-runner-operator"]
CMD ["run"]
