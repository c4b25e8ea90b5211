ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
WORKDIR /
ARG IMAGE_VERSION
RUN echo "Using core image version ${IMAGE_VERSION}"

WORKDIR /scripts
COPY deploy.sh delete.sh ./
RUN chmod +x deploy.sh delete.sh && sed -i 's/\r$//' *.sh
WORKDIR /
