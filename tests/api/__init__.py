"""Tests of the API definition itself: the CRD file against the Python model, and the examples."""
