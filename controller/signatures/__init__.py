"""Notary Project (Notation) image signatures: the JWS envelope, signing keys, OCI artifacts."""
