FROM mcr.microsoft.com/azure-cli

RUN apk add --no-cache jq bash curl
RUN az extension add --name devcenter --upgrade

COPY scripts/deploy.sh scripts/delete.sh /scripts/
RUN chmod +x /scripts/*.sh && dos2unix /scripts/*.sh
