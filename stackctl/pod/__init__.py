"""The Kubernetes pod run as a Docker container, as a kubelet would (`python -m stackctl.pod.podrun`)."""
