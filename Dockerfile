# The mlserver-rs images, as Seldon ships MLServer's: one Dockerfile, three
# targets, each the base of the next (shared layers).
#
#   docker build --target server  -t mlserver-rs:0.1.0         .  # Rust runtimes only (small)
#   docker build --target py-slim -t mlserver-rs:0.1.0-py-slim .  # + Python with mlserver 1.7.1
#   docker build --target py      -t mlserver-rs:0.1.0-py      .  # + MLServer's runtimes
#
# `server` is what `mlserver dockerfile` output starts from for Rust and
# conda folders, `py-slim` for pip folders (MLServer's `-slim`), and `py` is
# the drop-in for `seldonio/mlserver` in KServe's `kserve-mlserver` and
# ModelMesh's `mlserver-1.x` runtimes (deploy/). Every image runs as uid 1000
# with group 0 owning the writable folders (OpenShift runs containers with a
# random uid in group 0). Only classic Dockerfile syntax: the classic
# builder, BuildKit, Kaniko and Buildah all build it.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p mlserver-cli \
    && cp target/release/mlserver /usr/local/bin/mlserver

FROM ${RUNTIME_IMAGE} AS server
COPY --from=builder /usr/local/bin/mlserver /usr/local/bin/mlserver
RUN mkdir -p /opt/mlserver /mnt/models \
    && chown -R 1000:0 /opt/mlserver /mnt/models \
    && chmod -R g=u /opt/mlserver /mnt/models
WORKDIR /opt/mlserver
# HOME for libraries that keep caches there (uid 1000 has no passwd entry).
ENV MLSERVER_MODELS_DIR=/mnt/models \
    HOME=/opt/mlserver
EXPOSE 8080 8081 8082
USER 1000
# A shell, so that $MLSERVER_MODELS_DIR expands (ModelMesh sets it); the
# server by absolute path, whatever PATH holds.
CMD ["/bin/sh", "-c", "exec /usr/local/bin/mlserver start \"$MLSERVER_MODELS_DIR\""]

# Debian's Python 3 (the same release as the server image, so the
# environment finds every shared library it was built against) and a venv
# with MLServer's package, which the Python workers use for `MLModel`,
# `types` and codecs. The venv's `mlserver` console script (MLServer's own
# server) is removed and its bin/ goes last on PATH: `mlserver` is this
# server, `python` and `pip` are the environment's.
FROM server AS py-slim
USER 0
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/mlserver-env \
    && /opt/mlserver-env/bin/python -m pip install --no-cache-dir "mlserver==1.7.1" "uvloop<0.22" \
    && rm -f /opt/mlserver-env/bin/mlserver
# MLSERVER_ENV_TARBALL: a packed environment (conda-pack or venv) found
# there at start is unpacked and used for every Python model, as
# MLServer's image does.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/mlserver-env/bin \
    MLSERVER_PYTHON=/opt/mlserver-env/bin/python \
    MLSERVER_ENV_TARBALL=/mnt/models/environment.tar.gz
USER 1000

# The runtimes of MLServer's full image.
FROM py-slim AS py
USER 0
RUN /opt/mlserver-env/bin/python -m pip install --no-cache-dir \
       "mlserver-sklearn==1.7.1" "mlserver-xgboost==1.7.1" \
       "mlserver-lightgbm==1.7.1" "mlserver-mlflow==1.7.1" \
    && rm -f /opt/mlserver-env/bin/mlserver
USER 1000
