ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
WORKDIR /
ARG IMAGE_VERSION
RUN echo "Using core image version ${IMAGE_VERSION}"

# The core image was Alpine before 4.0 and is Azure Linux since: try one, then the other.
RUN (apk add --no-cache bash icu-libs krb5-libs libgcc libintl libssl3 libstdc++ zlib) \
    || (tdnf install -y icu krb5 libgcc libstdc++ openssl-libs zlib && tdnf clean all)

# install Pulumi
RUN curl -fsSL https://get.pulumi.com | sh -s -- --version 3.140.0
ENV PATH="/root/.pulumi/bin:${PATH}"

# install .NET for Pulumi programs in C#
RUN curl -fsSL https://dot.net/v1/dotnet-install.sh -o /tmp/dotnet-install.sh \
    && bash /tmp/dotnet-install.sh --channel 8.0 --install-dir /usr/share/dotnet \
    && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet

# Grab all .sh files from scripts, copy to
# root scripts, replace line-endings and make them all executable
COPY scripts/* /scripts/
RUN find /scripts/ -type f -iname "*.sh" -exec dos2unix '{}' '+'
RUN find /scripts/ -type f -iname "*.sh" -exec chmod +x {} \;
