ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
WORKDIR /
ARG IMAGE_VERSION
RUN echo "Using core image version ${IMAGE_VERSION}"

RUN mkdir -p /scripts && cat > /scripts/deploy.sh <<'EOF'
#!/bin/bash
set -e
apk add --no-cache jq
az deployment group create --resource-group "$ADE_RESOURCE_GROUP_NAME" --template-file "$ADE_TEMPLATE_FILE"
EOF
RUN cat > /scripts/delete.sh <<"EOF" && chmod +x /scripts/deploy.sh /scripts/delete.sh
#!/bin/bash
echo "nothing to delete"
EOF
