# The rootless BuildKit image the Job backend runs, built here because moby/buildkit cannot be
# pulled: the same release's buildkitd, buildctl and buildctl-daemonless.sh, the rootlesskit that
# release pins, and newuidmap/newgidmap with file capabilities (a setuid bit does not work in a
# pod: "write to uid_map failed"). Laid out like upstream's `rootless` stage (user 1000, the same
# folders and variables), on a Debian base instead of Alpine, without the git and ssh upstream adds
# for git contexts (the Job backend sends its context in a ConfigMap). Built by
# tests/env/node_images.py.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends uidmap runc libcap2-bin ca-certificates pigz xz-utils \
 && rm -rf /var/lib/apt/lists/* \
 && chmod u-s /usr/bin/newuidmap /usr/bin/newgidmap \
 && setcap cap_setuid+ep /usr/bin/newuidmap \
 && setcap cap_setgid+ep /usr/bin/newgidmap
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/user user \
 && mkdir -p /run/user/1000 /home/user/.local/tmp /home/user/.local/share/buildkit \
 && chown -R user:user /run/user/1000 /home/user \
 && echo user:100000:65536 | tee /etc/subuid | tee /etc/subgid
COPY buildkitd buildctl rootlesskit buildctl-daemonless.sh /usr/bin/
USER 1000:1000
ENV HOME=/home/user \
    USER=user \
    XDG_RUNTIME_DIR=/run/user/1000 \
    TMPDIR=/home/user/.local/tmp \
    BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock
VOLUME /home/user/.local/share/buildkit
ENTRYPOINT ["rootlesskit", "buildkitd"]
