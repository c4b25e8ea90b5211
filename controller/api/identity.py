"""Names that identify the RunnerImage API on the API server."""

GROUP = "runners.ade.dev"
VERSION = "v1alpha1"
KIND = "RunnerImage"
PLURAL = "runnerimages"
API_VERSION = f"{GROUP}/{VERSION}"

FINALIZER = f"{GROUP}/finalizer"
RECONCILE_REQUEST_ANNOTATION = f"{GROUP}/reconcile-requested-at"
"""Set to any new value (e.g. a timestamp) to ask for a reconcile now; echoed in
`status.lastHandledReconcileAt` once handled (the Flux convention)."""

BUILD_FINISHED_ANNOTATION = f"{GROUP}/build-finished"
"""Set by the operator to the name of an in-process build that just ended, so the object is
reconciled at once rather than at the next progress timer (`controller.reconcile.wake`)."""

CATALOG_WRITTEN_ANNOTATION = f"{GROUP}/catalog-written"
"""Set by the operator to the commit that wrote a catalog change whose reconcile had stopped
waiting for it (its pushes lost every race of a round), so the object records it at once."""

RUNNER_IMAGE_LABEL = f"{GROUP}/runner-image"
"""The image label (`<namespace>/<name>`) naming the RunnerImage that built and pushed an image:
retention deletes only images whose label names it."""

KOPF_STATE_PREFIX = f"kopf.{GROUP}"
"""Annotation prefix of kopf's own bookkeeping. It must differ from GROUP: kopf ignores changes
to annotations under its prefix, and the reconcile-request annotation must be seen."""

RECEIVER_KIND = "WebhookReceiver"
RECEIVER_PLURAL = "webhookreceivers"
"""The WebhookReceiver API (crds/webhookreceivers.yaml), in the same group and version."""
