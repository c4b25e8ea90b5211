"""Tests on the real node (a kubelet with containerd and runc), marked `e2e`: they run after
the other end-to-end tests, and the node is up only while they run."""
