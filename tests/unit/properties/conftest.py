"""Hypothesis profiles for the property tests.

- `ci` (the default): 200 examples a property, derandomized (the same examples on every run, so
  CI cannot fail on a rare example one day and pass the next), no deadline (a loaded 2-core
  machine must not turn a slow example into a failure), no example database written to the tree.
- `long` (`HYPOTHESIS_PROFILE=long`): 2,000 random examples a property, for a run by hand before
  changing an engine; a failure prints the seed to reproduce it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=2000, print_blob=True, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
