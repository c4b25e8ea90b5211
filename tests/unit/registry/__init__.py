"""Unit tests of the registry package: references, auth data, the client's protocol edges."""
