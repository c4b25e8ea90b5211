ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
WORKDIR /
ARG IMAGE_VERSION
RUN echo "Using core image version ${IMAGE_VERSION}"

COPY scripts/ /scripts/
RUN curl -fsSLo /usr/local/bin/yq https://github.com/mikefarah/yq/releases/latest/download/yq_linux_amd64 \
    && chmod +x /usr/local/bin/yq \
    && dos2unix /scripts/*.sh
