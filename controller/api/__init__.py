"""The RunnerImage API: its identity, a typed model of spec and status, and condition vocabulary."""
