"""Condition types and reasons of RunnerImage status (kstatus vocabulary plus step conditions).

`Ready` summarizes; `Reconciling` and `Stalled` are "abnormal-true" conditions, present only while
true, as kstatus expects. Each reconcile step owns one step condition.
"""

from typing import Final

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"

# Step conditions, one per reconcile step that does work in the world.
INPUTS_RESOLVED: Final = "InputsResolved"
REGISTRY_ACCESS: Final = "RegistryAccessReady"
BASE_IMAGE_TRUSTED: Final = "BaseImageTrusted"
"""spec.baseImageVerification: the base image carries a trusted signature."""
BUILT: Final = "Built"
VERIFIED: Final = "Verified"
SIGNED: Final = "Signed"
"""spec.signing: the image the catalog names is signed."""
CATALOG_SYNCED: Final = "CatalogSynced"
IMAGES_RETAINED: Final = "ImagesRetained"
"""Housekeeping (spec.retention): never holds Ready back, and Ready does not repeat its news."""

STEP_CONDITIONS: Final = (
    INPUTS_RESOLVED,
    REGISTRY_ACCESS,
    BASE_IMAGE_TRUSTED,
    BUILT,
    VERIFIED,
    SIGNED,
    CATALOG_SYNCED,
    IMAGES_RETAINED,
)

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"


class Reason:
    """Reasons shared across conditions. Step-specific reasons live beside their steps."""

    SUCCEEDED: Final = "Succeeded"
    INVALID_SPEC: Final = "InvalidSpec"
    SUSPENDED: Final = "Suspended"
    PROGRESSING: Final = "Progressing"
    NOT_CONFIGURED: Final = "NotConfigured"
    NOT_IMPLEMENTED: Final = "NotImplemented"
    RECONCILE_ERROR: Final = "ReconcileError"
    RECONCILE_TIMEOUT: Final = "ReconcileTimeout"
    """A step was still running when the reconcile's deadline passed; retried with backoff."""
