ARG BASE_IMAGE=contoso.azurecr.io/mirror/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
RUN apk add --no-cache jq
COPY scripts/* /scripts/
RUN find /scripts/ -type f -iname "*.sh" -exec dos2unix '{}' '+' -exec chmod +x '{}' '+'
