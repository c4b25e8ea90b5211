"""End-to-end tests against the real control plane (marked `e2e`)."""
