# The mlserver-rs server image: the `mlserver` binary on a slim Debian, run
# as uid 1000 with group 0 owning the writable folders (OpenShift runs
# containers with a random uid in group 0). `mlserver dockerfile` output
# uses it as its default base (build arg MLSERVER_IMAGE).
#
#   docker build -t mlserver-rs:0.1.0 .
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p mlserver-cli \
    && cp target/release/mlserver /usr/local/bin/mlserver

FROM ${RUNTIME_IMAGE}
COPY --from=builder /usr/local/bin/mlserver /usr/local/bin/mlserver
RUN mkdir -p /opt/mlserver /mnt/models \
    && chown -R 1000:0 /opt/mlserver /mnt/models \
    && chmod -R g=u /opt/mlserver /mnt/models
WORKDIR /opt/mlserver
ENV MLSERVER_MODELS_DIR=/mnt/models
EXPOSE 8080 8081 8082
USER 1000
# A shell, so that $MLSERVER_MODELS_DIR expands (ModelMesh sets it).
CMD ["/bin/sh", "-c", "exec mlserver start \"$MLSERVER_MODELS_DIR\""]
