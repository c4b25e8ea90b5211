FROM mcr.microsoft.com/deployment-environments/runners/core:4.0 AS tools
RUN apk add --no-cache curl unzip \
    && curl -fsSLo /tmp/tf.zip https://releases.hashicorp.com/terraform/1.9.8/terraform_1.9.8_linux_amd64.zip \
    && unzip /tmp/tf.zip -d /usr/local/bin

FROM tools
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && dos2unix /scripts/*.sh
