"""Unit tests of controller.conformance: layer resolution, rules, Dockerfile lint, the pipe,
and the image check against an in-memory registry (httpx.MockTransport)."""
