FROM mcr.microsoft.com/azure-cli:2.67.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN bash -c 'apk add --no-cache jq'

COPY --chmod=755 scripts/ /scripts/
RUN sed -i 's/\r$//' /scripts/*.sh
