"""What ships and how it is checked: the Dockerfile read as data, the Kubernetes render and its
monitoring objects, the per-model alert rules, the security audit."""
