# Prometheus from Debian's package, on the local bookworm base (make base-images), for hosts that
# cannot pull prom/prometheus. Compose uses it through PROMETHEUS_IMAGE; the command line, port
# and paths match prom/prometheus, so the two are interchangeable there.
ARG BASE_IMAGE=torchserve-stack/debian:bookworm
# hadolint ignore=DL3006
FROM ${BASE_IMAGE}
# Debian drops superseded package versions from its mirrors; the release pins the version.
# wget: the compose health check.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus \
    && chown 65534:65534 /prometheus
# nobody, as in prom/prometheus, so a data volume works with either image.
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=5s --retries=5 \
    CMD ["wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
