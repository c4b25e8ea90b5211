"""The real test environment: a Kubernetes control plane on loopback, and the operator as a process."""
