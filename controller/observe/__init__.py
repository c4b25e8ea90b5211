"""Pure observation logic: conditions, status diffs, transition events. No I/O, no kopf."""
