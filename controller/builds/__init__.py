"""Builds: pure renderers of buildctl arguments and Job manifests, and the three backends."""
