FROM mcr.microsoft.com/azure-cli:2.61.0

# azure-cli images before 2.67.0 are Alpine
RUN apk add --no-cache jq bash curl dos2unix

COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && dos2unix /scripts/*.sh
