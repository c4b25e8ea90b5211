FROM golang:1.22-alpine AS build
RUN apk add --no-cache git make
WORKDIR /src
COPY tool/ .
RUN CGO_ENABLED=0 go build -o /out/deploy-helper .

FROM mcr.microsoft.com/deployment-environments/runners/core:latest
COPY --from=build /out/deploy-helper /usr/local/bin/deploy-helper
COPY scripts/ /scripts/
RUN find /scripts -type f -name '*.sh' -exec chmod +x {} + \
    && find /scripts -type f -name '*.sh' -exec dos2unix {} +
