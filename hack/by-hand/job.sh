#!/usr/bin/env bash
# By hand, what the operator does for one change of a RunnerImage on the Job backend: put the
# build context in a ConfigMap, create a Job whose pod runs the same rootless BuildKit image and
# the same `buildctl-daemonless.sh build ...` command (cache in `<repository>/buildcache`, as the
# operator's), `kubectl wait` for it to complete, read the pushed digest from the pod's log, then
# point the catalog's manifest at it (clone, edit the `runner:` line, commit, push).
# tests/node/test_by_hand_job.py times this against the operator on a real node.
#
# Usage: hack/by-hand/job.sh CONTEXT IMAGE CATALOG_URL MANIFEST [NAME=VALUE ...]
#   (as hack/by-hand/buildkitd.sh; CONTEXT is read here and shipped in the ConfigMap)
# Environment:
#   KUBECTL        the CLI (default kubectl; KUBECONFIG and NAMESPACE as kubectl reads them)
#   NAMESPACE      where the ConfigMap and the Job go (default: kubectl's current namespace)
#   PUSH_SECRET    a kubernetes.io/dockerconfigjson Secret to push with (default: none)
#   BUILDKIT_IMAGE the rootless BuildKit image (default: the operator's pinned one)
#   HOST_NETWORK   true: the build pod uses the node's network (default false)
#   NODE_SELECTOR  the pod's nodeSelector, in JSON (default: none)
#   TOLERATIONS    the pod's tolerations, in JSON (default: none)
#   BUILD_TIMEOUT  how long to wait for the Job (default 10m)
#   CATALOG_BRANCH (default main)
#   SOURCE_DATE_EPOCH the time the image's files and history get (default 0, as the operator's
#                  for an inline source)
set -euo pipefail
context="$1" image="$2" url="$3" manifest="$4"
shift 4
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/by-hand/catalog.sh
. "$here/catalog.sh"
kubectl=("${KUBECTL:-kubectl}")
if [ -n "${NAMESPACE:-}" ]; then kubectl+=(--namespace "$NAMESPACE"); fi
name="by-hand-$(date +%s)-$$"
cache="${image%:*}/buildcache:latest"

# The context: one ConfigMap key per file (keys hold no '/'), mounted back at its path and mode.
files=() items="" count=0
while IFS= read -r path; do
  key="f$((count++))"
  files+=(--from-file "${key}=${context}/${path}")
  mode=420 # 0644
  if [ -x "${context}/${path}" ]; then mode=493; fi # 0755
  items+="{\"key\": \"${key}\", \"path\": \"${path}\", \"mode\": ${mode}}, "
done < <(cd "$context" && find . -type f | sed 's|^\./||' | sort)
"${kubectl[@]}" create configmap "$name" "${files[@]}" >/dev/null

build=(buildctl-daemonless.sh build --frontend dockerfile.v0
  --local context=/workspace/context --local dockerfile=/workspace/context
  --opt filename=Dockerfile --opt "build-arg:SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}")
for arg in "$@"; do build+=(--opt "build-arg:${arg}"); done
# SLSA provenance, as the operator attaches by default (spec.build.attestations): the same image.
build+=(--opt "attest:provenance=mode=min")
# Reproducible timestamps, as the operator's builds: the image's files get SOURCE_DATE_EPOCH.
build+=(--output "type=image,name=${image},push=true,rewrite-timestamp=true"
  --export-cache "type=registry,ref=${cache},mode=max,ignore-error=true"
  --import-cache "type=registry,ref=${cache}"
  --metadata-file /tmp/metadata.json)
script="set -e; ${build[*]@Q}; cat /tmp/metadata.json"

push_env="" push_mount="" push_volume=""
if [ -n "${PUSH_SECRET:-}" ]; then
  push_env='{"name": "DOCKER_CONFIG", "value": "/home/user/.docker"}'
  push_mount='{"name": "docker-config", "mountPath": "/home/user/.docker", "readOnly": true}'
  push_volume='{"name": "docker-config", "secret": {"secretName": "'"${PUSH_SECRET}"'",'
  push_volume+=' "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}'
fi

# Rootless BuildKit's needs: user 1000, seccomp and AppArmor unconfined, no process sandbox.
"${kubectl[@]}" create -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: ${name}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      hostNetwork: ${HOST_NETWORK:-false}
      nodeSelector: ${NODE_SELECTOR:-null}
      tolerations: ${TOLERATIONS:-null}
      securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000}
      containers:
        - name: buildkit
          image: ${BUILDKIT_IMAGE:-moby/buildkit:v0.34.2-rootless}
          command: ["/bin/sh", "-c", $(jq -Rn --arg s "$script" '$s')]
          env:
            - {name: BUILDKITD_FLAGS, value: --oci-worker-no-process-sandbox}
            - {name: HOME, value: /home/user}
            ${push_env:+- $push_env}
          securityContext:
            runAsUser: 1000
            runAsGroup: 1000
            seccompProfile: {type: Unconfined}
            appArmorProfile: {type: Unconfined}
          volumeMounts:
            - {name: buildkitd, mountPath: /home/user/.local/share/buildkit}
            - {name: tmp, mountPath: /home/user/.local/tmp}
            - {name: context, mountPath: /workspace/context, readOnly: true}
            ${push_mount:+- $push_mount}
      volumes:
        - {name: buildkitd, emptyDir: {}}
        - {name: tmp, emptyDir: {}}
        - {name: context, configMap: {name: ${name}, items: [${items%, }]}}
        ${push_volume:+- $push_volume}
EOF

if ! "${kubectl[@]}" wait --for=condition=complete "job/${name}" \
  --timeout="${BUILD_TIMEOUT:-10m}" >/dev/null; then
  "${kubectl[@]}" logs "job/${name}" | tail -n 20 >&2
  exit 1
fi
digest="$("${kubectl[@]}" logs "job/${name}" \
  | grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' | grep -o 'sha256:[0-9a-f]*')"

point_catalog_at "$url" "${CATALOG_BRANCH:-main}" "$manifest" "${image}@${digest}"
echo "${image}@${digest}"
