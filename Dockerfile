# syntax=docker/dockerfile:1
# The wheel is built once. The default target (`serving`, last below) installs it with the
# `cpu` extra only: no torch, no chdb, no embedded broker. `trainer` adds the `train` extra
# (torch, CPU build) for docker-compose's one-shot model job.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams streams
COPY models models
COPY bench bench
COPY infra infra
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim AS trainer
# torch==2.13.0 is pinned by the `train` extra; this index serves its CPU build (no CUDA libraries).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN useradd --create-home --uid 10001 reckon \
    && mkdir -p /models && chown reckon:reckon /models
COPY --from=build /dist /dist
# The wheel, by its own path: the one built above, with its extras, is the requirement.
RUN echo "reckon[cpu,train] @ file://$(echo /dist/reckon-*.whl)" > /dist/requirements.txt \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" --requirement /dist/requirements.txt \
    && rm -rf /dist
USER 10001
WORKDIR /home/reckon
ENV PYTHONUNBUFFERED=1 RECKON_MODEL_REGISTRY=/models
CMD ["reckon", "bootstrap"]

FROM python:3.11-slim AS serving
# cpu: ONNX Runtime's CPU build; gpu: onnxruntime-gpu (run on a CUDA base image for a GPU).
ARG RECKON_EXTRAS=cpu
RUN useradd --create-home --uid 10001 reckon \
    && mkdir -p /data /models && chown reckon:reckon /data /models
COPY --from=build /dist /dist
RUN echo "reckon[${RECKON_EXTRAS}] @ file://$(echo /dist/reckon-*.whl)" > /dist/requirements.txt \
    && pip install --no-cache-dir --requirement /dist/requirements.txt \
    && rm -rf /dist
USER 10001
WORKDIR /home/reckon
# Bind every interface inside the container: port mappings and Prometheus reach the worker.
ENV PYTHONUNBUFFERED=1 RECKON_WEB_BIND=0.0.0.0 RECKON_DATA_DIR=/data RECKON_MODEL_REGISTRY=/models
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('RECKON_WEB_PORT', '6066')}/stats\", timeout=4)"]
CMD ["reckon", "worker"]
