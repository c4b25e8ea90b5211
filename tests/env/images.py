"""The stand-in for the ADE core base image, built with the real BuildKit and pushed for real.

`mcr.microsoft.com/deployment-environments/runners/core` cannot be pulled here, so the test
environment seeds a small stand-in into a local registry and points `BASE_IMAGE` at it, as a user
with a registry mirror would. The stand-in is `FROM scratch` with Debian's static busybox
installed (so `/bin/sh`, `sed`, `find`, `chmod`, `cat`, ... exist), an
`ENTRYPOINT ["/scripts/entrypoint.sh"]` that runs the operation script ADE names (a derived runner
image keeps it), and labels that say what it is.

`push_core(buildkit, "127.0.0.1:PORT/deployment-environments/runners/core:4.0")` builds and pushes
it and returns the manifest digest. `revision=` changes a label and a file, so the same tag gets
a NEW digest ("the base image changed"); the same revision builds the same digest again
(timestamps are pinned with SOURCE_DATE_EPOCH and rewritten in the layers).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
from collections.abc import Mapping

from tests.env.buildkitd import BuildkitDaemon

BUSYBOX = pathlib.Path("/bin/busybox")  # Debian busybox-static: one static binary
CORE_REPOSITORY = "deployment-environments/runners/core"
CORE_TAG = "4.0"
REVISION_LABEL = "dev.ade.test.core.revision"
SOURCE_DATE_EPOCH = "1700000000"

CORE_DOCKERFILE = """\
# Stand-in for mcr.microsoft.com/deployment-environments/runners/core (tests/env/images.py).
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && mkdir -p /tmp && chmod 1777 /tmp
ARG CORE_REVISION=1
RUN echo "$CORE_REVISION" > /scripts/core-revision
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL org.opencontainers.image.title="ade-core-stand-in" \\
      org.opencontainers.image.description="test stand-in for the ADE core runner image" \\
      dev.ade.test.core.revision="$CORE_REVISION"
WORKDIR /scripts
ENTRYPOINT ["/scripts/entrypoint.sh"]
"""

ENTRYPOINT_SH = """\
#!/bin/sh
# Stand-in for the ADE core image's entrypoint: runs the operation script that ADE names
# (ADE_OPERATION_NAME, e.g. deploy or delete) from /scripts.
set -eu
operation="${ADE_OPERATION_NAME:-deploy}"
echo "ade core stand-in $(cat /scripts/core-revision): operation ${operation}"
script="/scripts/${operation}.sh"
if [ ! -f "$script" ]; then
  echo "no ${script} in this runner image" >&2
  exit 64
fi
exec /bin/sh "$script" "$@"
"""


def write_core_context(folder: pathlib.Path) -> pathlib.Path:
    """Write the stand-in's build context (Dockerfile, busybox, scripts/) into `folder`."""
    if not BUSYBOX.exists():
        raise RuntimeError(f"{BUSYBOX} is missing: run hack/test.sh (installs busybox-static)")
    (folder / "scripts").mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(CORE_DOCKERFILE)
    shutil.copy2(BUSYBOX, folder / "busybox")
    (folder / "scripts" / "entrypoint.sh").write_text(ENTRYPOINT_SH)
    return folder


def build_and_push(
    buildkit: BuildkitDaemon,
    context: pathlib.Path,
    reference: str,
    *,
    build_args: Mapping[str, str] | None = None,
    secrets: Mapping[str, pathlib.Path] | None = None,
    reproducible: bool = True,
    insecure: bool = False,
    timeout: float = 600.0,
) -> str:
    """Build the Dockerfile in `context` with buildctl, push it to `reference`, return the
    manifest digest buildkit reports (`containerimage.digest`). `reproducible` pins timestamps
    (SOURCE_DATE_EPOCH, rewritten in the layers); `insecure` lets the push use plain HTTP;
    `secrets` are build secrets (`--secret id=NAME,src=PATH`)."""
    output = f"type=image,name={reference},push=true"
    if reproducible:
        output += ",rewrite-timestamp=true"
    if insecure:
        output += ",registry.insecure=true"
    with tempfile.TemporaryDirectory(prefix="ade-buildctl-") as tmp:
        metadata = pathlib.Path(tmp) / "metadata.json"
        args = [
            "build",
            "--frontend=dockerfile.v0",
            f"--local=context={context}",
            f"--local=dockerfile={context}",
            "--progress=plain",
            f"--output={output}",
            f"--metadata-file={metadata}",
        ]
        if reproducible:
            args.append(f"--opt=build-arg:SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}")
        for key, value in (build_args or {}).items():
            args.append(f"--opt=build-arg:{key}={value}")
        for name, path in (secrets or {}).items():
            args.append(f"--secret=id={name},src={path}")
        buildkit.buildctl(*args, timeout=timeout)
        digest: str = json.loads(metadata.read_text())["containerimage.digest"]
    return digest


def push_core(buildkit: BuildkitDaemon, reference: str, *, revision: str = "1") -> str:
    """Build the stand-in core image at `revision` and push it to `reference` (e.g.
    `127.0.0.1:PORT/deployment-environments/runners/core:4.0`); returns its manifest digest."""
    with tempfile.TemporaryDirectory(prefix="ade-core-") as tmp:
        context = write_core_context(pathlib.Path(tmp))
        return build_and_push(buildkit, context, reference, build_args={"CORE_REVISION": revision})
