"""The level-based reconcile: an ordered list of small steps, each owning its conditions."""
