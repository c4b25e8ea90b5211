"""ade-runner-operator: builds, verifies and publishes Azure Deployment Environments runners.

The package is layered (checked by import-linter, see `.importlinter`): the entry point and the
kopf handlers sit on top; `reconcile` orchestrates; `api` and `observe` hold pure logic that
imports neither kopf nor any I/O library.
"""
