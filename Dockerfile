# syntax=docker/dockerfile:1
#
# Images of the four services and the all-in-one command, from one build stage:
#
#   docker build --target collector  -t clickstream/collector:0.1.0  .
#   docker build --target validator  -t clickstream/validator:0.1.0  .
#   docker build --target lakewriter -t clickstream/lakewriter:0.1.0 .
#   docker build --target compactor  -t clickstream/compactor:0.1.0  .
#   docker build --target clickstream -t clickstream/clickstream:0.1.0 .   (run, topics, healthcheck)
#
# (docker compose build does all five.) The binaries are static (CGO off) and run on scratch as
# user 65532: no shell, no package manager. The health check is the binary itself:
# `<binary> -healthcheck` asks the admin server for /readyz, so no curl is needed.
# For reproducible builds, pin the golang image by digest in your own registry.

ARG GO_VERSION=1.26.8
ARG VERSION=0.1.0

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath
# Module files first, so the download layer is reused while only code changes.
COPY go.work go.work.sum ./
COPY schemas/go.mod schemas/go.sum schemas/
COPY services/go.mod services/go.sum services/
COPY collector/go.mod collector/go.sum collector/
COPY validator/go.mod validator/go.sum validator/
COPY lakewriter/go.mod lakewriter/go.sum lakewriter/
COPY compactor/go.mod compactor/go.sum compactor/
COPY e2e/go.mod e2e/go.sum e2e/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X github.com/clickstream/clickstream/validator.Version=v${VERSION}" -o /out/ \
      ./collector/cmd/collector ./validator/cmd/validator ./lakewriter/cmd/lakewriter \
      ./compactor/cmd/compactor ./services/cmd/clickstream
# The runtime image's few files: a passwd entry for the non-root user, CA certificates for TLS to
# Kafka or HDFS, a world-writable /tmp (the compactor's spill files) and /data owned by the user.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /data \
 && echo 'nonroot:x:65532:65532:nonroot:/data:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'nonroot:x:65532:' > /rootfs/etc/group \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp

# The runtime is scratch plus those files: nothing but the static binary, so no base image tag can
# float under a release, no shell, no package manager.
FROM scratch AS runtime
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /data /data
USER 65532:65532
WORKDIR /data
ENV TMPDIR=/tmp

FROM runtime AS collector
COPY --from=build /out/collector /usr/local/bin/collector
# In a container, listen on every interface (the defaults are loopback only). These are Raccoon's
# variable names on purpose: a Raccoon deployment that switches to this image keeps its own
# SERVER_WEBSOCKET_PORT, SERVER_GRPC_PORT and METRIC_PROMETHEUS_PORT (they replace these), and
# COLLECTOR_HTTP_ADDR, COLLECTOR_GRPC_ADDR and COLLECTOR_ADMIN_ADDR still win over all of them.
ENV SERVER_WEBSOCKET_PORT=8080 \
    SERVER_GRPC_PORT=8081 \
    METRIC_PROMETHEUS_PORT=9100 \
    COLLECTOR_LOG_FORMAT=json
EXPOSE 8080 8081 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/collector", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/collector"]

FROM runtime AS validator
COPY --from=build /out/validator /usr/local/bin/validator
ENV VALIDATOR_ADMIN_ADDR=0.0.0.0:9101 \
    VALIDATOR_LOG_FORMAT=json
EXPOSE 9101
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/validator", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/validator"]

FROM runtime AS lakewriter
COPY --from=build /out/lakewriter /usr/local/bin/lakewriter
ENV LAKEWRITER_ADMIN_ADDR=0.0.0.0:9102 \
    LAKEWRITER_LOG_FORMAT=json \
    LAKEWRITER_LAKE_URL=/data/lake
EXPOSE 9102
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/lakewriter", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/lakewriter"]

FROM runtime AS compactor
COPY --from=build /out/compactor /usr/local/bin/compactor
ENV COMPACTOR_ADMIN_ADDR=0.0.0.0:9103 \
    COMPACTOR_LOG_FORMAT=json \
    COMPACTOR_LAKE_URL=/data/lake
EXPOSE 9103
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/compactor", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/compactor"]

# The all-in-one command: `run` (default; CLICKSTREAM_EMBEDDED=true for a single container with an
# in-process Kafka and the lake under /data/lake), `topics` (creates the contract topics on
# CLICKSTREAM_KAFKA_BROKERS: compose and Kubernetes run it once before the services) and
# `healthcheck`.
FROM runtime AS clickstream
COPY --from=build /out/clickstream /usr/local/bin/clickstream
ENV CLICKSTREAM_ADMIN_ADDR=0.0.0.0:9090 \
    CLICKSTREAM_LOG_FORMAT=json \
    CLICKSTREAM_DATA_DIR=/data/lake \
    COLLECTOR_HTTP_ADDR=0.0.0.0:8080 \
    COLLECTOR_GRPC_ADDR=0.0.0.0:8081
EXPOSE 8080 8081 9090
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/clickstream", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/clickstream"]
CMD ["run"]
