# Kubernetes: kustomize overlays of k8s/ (see k8s/README.md). Rendering needs only kubectl (no
# cluster); apply/delete use the current kubectl context.
#   make k8s-render OVERLAY=cpu COMPONENTS="monitoring loadtest"
OVERLAY    ?= gpu
COMPONENTS ?=
KUBECTL    ?= kubectl
K8S_RENDER  = $(PY) -m stackctl.k8s render --overlay $(OVERLAY) $(foreach c,$(COMPONENTS),--component $(c))

.PHONY: k8s-render k8s-apply k8s-delete k8s-generate
k8s-render: $(STAMP_VENV) ## Print the Kubernetes manifests of OVERLAY (gpu|cpu) with COMPONENTS ("monitoring loadtest model-pvc")
	@$(K8S_RENDER)
k8s-apply: $(STAMP_VENV) ## Apply OVERLAY (+ COMPONENTS) to the current kubectl context (server-side apply)
	$(K8S_RENDER) | $(KUBECTL) apply --server-side --field-manager=torchserve-stack -f -
k8s-delete: $(STAMP_VENV) ## Delete what k8s-apply created for OVERLAY (+ COMPONENTS), namespace included
	$(K8S_RENDER) | $(KUBECTL) delete --ignore-not-found --wait=false -f -
k8s-generate: $(STAMP_VENV) ## Regenerate k8s/components/monitoring/torchserve-prometheusRule.yaml from config/prometheus/rules/
	$(PY) -m stackctl.k8s_monitoring
