# A team's own core image, built like ADE's: azure-cli plus an entrypoint of its own.
FROM mcr.microsoft.com/azure-cli:2.70.0

RUN tdnf install -y jq dos2unix && tdnf clean all
COPY entrypoint.sh /usr/local/bin/runner-entrypoint.sh
RUN chmod +x /usr/local/bin/runner-entrypoint.sh

COPY scripts/ /scripts/
RUN chmod -R 755 /scripts && dos2unix /scripts/*.sh

ENTRYPOINT ["/usr/local/bin/runner-entrypoint.sh"]
