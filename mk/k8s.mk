# Kubernetes: kustomize overlays of k8s/ (see k8s/README.md). Rendering needs only kubectl (no
# cluster); apply/delete use the current kubectl context; k8s-pod needs only a Docker engine.
#   make k8s-render OVERLAY=cpu COMPONENTS="monitoring loadtest"
#   make k8s-apply  OVERLAY=gpu REGISTRY=registry.example.com/team VERSION=1.2.0   # what `make push` pushed
OVERLAY    ?= gpu
COMPONENTS ?=
KUBECTL    ?= kubectl
# REGISTRY and VERSION reach the render only when given on the command line or in the
# environment: a default VERSION that another makefile defines for its own use (image labels, push)
# must not turn the overlays' local image tags into registry tags nobody pushed.
k8s_given   = $(and $(filter command line environment environment override,$(origin $(1))),$($(1)))
K8S_IMAGES  = $(if $(call k8s_given,REGISTRY),--registry $(REGISTRY)) $(if $(call k8s_given,VERSION),--version $(VERSION))
K8S_RENDER  = $(PY) -m stackctl.deploy.k8s render --overlay $(OVERLAY) $(foreach c,$(COMPONENTS),--component $(c)) $(K8S_IMAGES)
POD_OVERLAY ?= cpu
# Components rendered into the pod run, e.g. POD_COMPONENTS=model-oci (its init container pulls the
# archives first; PODRUN_ARGS="--model-refs FILE --env MODEL_REGISTRY_PLAIN_HTTP=1" for a test registry)
POD_COMPONENTS ?=
# e.g. PODRUN_ARGS=--drop-gpu with POD_OVERLAY=gpu on a host without GPUs
PODRUN_ARGS ?=

.PHONY: k8s-render k8s-apply k8s-delete k8s-generate kserve-generate k8s-pod
k8s-render: $(STAMP_VENV) ## Print the Kubernetes manifests of OVERLAY (gpu|cpu) with COMPONENTS; REGISTRY= VERSION= deploy what `make push` pushed
	@$(K8S_RENDER)
k8s-apply: $(STAMP_VENV) ## Apply OVERLAY (+ COMPONENTS, REGISTRY, VERSION) to the current kubectl context (server-side apply)
	$(K8S_RENDER) | $(KUBECTL) apply --server-side --field-manager=torchserve-stack -f -
k8s-delete: $(STAMP_VENV) ## Delete what k8s-apply created for OVERLAY (+ COMPONENTS), namespace included
	$(K8S_RENDER) | $(KUBECTL) delete --ignore-not-found --wait=false -f -
k8s-generate: $(STAMP_VENV) ## Regenerate k8s/components/monitoring/torchserve-prometheusRule.yaml from config/prometheus/rules/
	$(PY) -m stackctl.deploy.k8s_monitoring
kserve-generate: $(STAMP_VENV) ## Regenerate k8s/kserve/ (ServingRuntimes, storage container, one InferenceService per model) from the specs
	$(PY) -m stackctl.deploy.k8s_kserve
k8s-pod: $(STAMP_VENV) ## Run the TorchServe pod of POD_OVERLAY (cpu) + POD_COMPONENTS as Docker containers as a kubelet would: init containers, probes, traffic, preStop + drain
	$(PY) -m stackctl.pod.podrun --overlay $(POD_OVERLAY) $(foreach c,$(POD_COMPONENTS),--component $(c)) $(PODRUN_ARGS)
