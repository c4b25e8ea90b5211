FROM mcr.microsoft.com/deployment-environments/runners/core:latest AS runner
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && dos2unix /scripts/*.sh

FROM alpine:3.20 AS debug
RUN apk add --no-cache bash
ENTRYPOINT ["/bin/bash"]
