"""Observation: conditions, status diffs, transition events (pure); metrics and logs. No kopf."""
