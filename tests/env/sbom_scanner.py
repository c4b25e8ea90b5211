"""A BuildKit SBOM generator image for the tests, built with the real BuildKit and pushed.

BuildKit's default generator (`docker/buildkit-syft-scanner`) cannot be pulled here. This one
follows the same protocol (BuildKit's docs/attestations/sbom-protocol.md): BuildKit runs the
image with the built image's root file system read-only at `$BUILDKIT_SCAN_SOURCE` and an empty
`$BUILDKIT_SCAN_DESTINATION`, and attaches every in-toto statement the scanner writes there. It
reads the Alpine package database (`/lib/apk/db/installed`, the format of apk, which ADE's core
images before 4 use) and writes one SPDX 2.3 document listing each package with its version, as
syft's apk cataloger would. busybox `awk` does the work: the image is `FROM scratch` + busybox.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile

from tests.env import images
from tests.env.buildkitd import BuildkitDaemon

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY scan.sh /scan.sh
CMD ["/bin/sh", "/scan.sh"]
"""

SCAN_SH = r"""#!/bin/sh
# BuildKit SBOM protocol: read $BUILDKIT_SCAN_SOURCE, write in-toto statements to
# $BUILDKIT_SCAN_DESTINATION.
set -eu
db="$BUILDKIT_SCAN_SOURCE/lib/apk/db/installed"
out="$BUILDKIT_SCAN_DESTINATION/apk.spdx.json"
[ -f "$db" ] || db=/dev/null
awk '
  function flush() {
    if (name != "") {
      q = "\""
      printf "%s{%sSPDXID%s:%sSPDXRef-Package-apk-%s%s,", sep, q, q, q, name, q
      printf "%sname%s:%s%s%s,%sversionInfo%s:%s%s%s,", q, q, q, name, q, q, q, q, version, q
      printf "%sdownloadLocation%s:%sNOASSERTION%s}", q, q, q, q
      sep = ","
    }
    name = ""; version = ""
  }
  BEGIN {
    printf "{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"predicateType\":\"https://spdx.dev/Document\","
    printf "\"subject\":[],\"predicate\":{\"spdxVersion\":\"SPDX-2.3\",\"dataLicense\":\"CC0-1.0\","
    printf "\"SPDXID\":\"SPDXRef-DOCUMENT\",\"name\":\"ade-test-scanner\",\"documentNamespace\":"
    printf "\"https://ade.dev/test-scanner\",\"creationInfo\":{\"created\":\"1970-01-01T00:00:00Z\","
    printf "\"creators\":[\"Tool: ade-test-scanner\"]},\"packages\":["
  }
  /^P:/ { flush(); name = substr($0, 3) }
  /^V:/ { version = substr($0, 3) }
  /^$/ { flush() }
  END { flush(); printf "]}}\n" }
' "$db" > "$out"
"""


def push_scanner(buildkit: BuildkitDaemon, reference: str) -> str:
    """Build the scanner image and push it to `reference`; returns its digest."""
    with tempfile.TemporaryDirectory(prefix="ade-scanner-") as tmp:
        folder = pathlib.Path(tmp)
        (folder / "Dockerfile").write_text(DOCKERFILE)
        (folder / "scan.sh").write_text(SCAN_SH)
        shutil.copy2(images.BUSYBOX, folder / "busybox")
        return images.build_and_push(buildkit, folder, reference)
