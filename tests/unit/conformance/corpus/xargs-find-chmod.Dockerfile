ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
WORKDIR /
ARG IMAGE_VERSION
RUN echo "Using core image version ${IMAGE_VERSION}"

COPY scripts/ /scripts/
RUN find /scripts -type f -name '*.sh' -print0 | xargs -0 chmod 0755 \
    && find /scripts -type f -name '*.sh' -print0 | xargs -0 dos2unix
