"""Unit tests of the pure modules: no cluster, no network."""
