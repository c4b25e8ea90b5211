FROM mcr.microsoft.com/azure-cli:latest
RUN sh -c "bash -c 'apk add --no-cache jq'"
COPY --chmod=755 scripts/ /scripts/
RUN dos2unix /scripts/*
