"""The real test environment: a control plane on loopback, and the operator as a process."""
