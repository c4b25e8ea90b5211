"""Unit tests of the pure build modules: Dockerfile, identity, buildctl, Job, task registry."""
