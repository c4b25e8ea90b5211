"""Benchmarks that run in the suite and print their figures (marked `benchmark`)."""
