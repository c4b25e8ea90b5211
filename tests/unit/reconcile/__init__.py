"""Unit tests of the reconcile steps: pure decisions, and steps with fake services."""
