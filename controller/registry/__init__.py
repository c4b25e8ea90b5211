"""OCI distribution v2 client: token auth, manifests and digests, blobs, retries (httpx)."""
