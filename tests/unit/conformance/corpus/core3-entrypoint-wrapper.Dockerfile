FROM mcr.microsoft.com/deployment-environments/runners/core:3.9
RUN apk add --no-cache jq
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && dos2unix /scripts/*.sh
ENTRYPOINT ["/bin/sh", "-c", "/scripts/deploy.sh"]
