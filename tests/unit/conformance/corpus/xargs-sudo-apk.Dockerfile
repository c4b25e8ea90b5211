FROM mcr.microsoft.com/deployment-environments/runners/core:4.1
COPY packages.txt /tmp/packages.txt
RUN xargs -a /tmp/packages.txt sudo apk add --no-cache
# Grab all .sh files from scripts, copy to
# root scripts, replace line-endings and make them all executable
COPY scripts/* /scripts/
RUN find /scripts/ -type f -iname "*.sh" -exec dos2unix '{}' '+'
RUN find /scripts/ -type f -iname "*.sh" -exec chmod +x {} \;
