"""Property-based tests (Hypothesis) of the parsers and pure engines: generated input, one file
per engine. Profiles in conftest.py: `ci` (the default) and `long` (HYPOTHESIS_PROFILE=long)."""
