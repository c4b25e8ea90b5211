"""Unit tests of the signatures package: Notary Project JWS envelopes, signing keys, artifacts."""
