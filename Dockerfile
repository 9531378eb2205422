# syntax=docker/dockerfile:1
# Two images from one build:
#   gateway (the default target): the gateway and, later, the autoscaler.
#     docker build -t REGISTRY/tidegate/gateway:0.1.0 .
#     docker run -p 8000:8000 REGISTRY/tidegate/gateway:0.1.0 gateway --host 0.0.0.0 --workers http://worker:8000
#   worker: the official vLLM OpenAI image with `tidegate worker` (drain on SIGTERM) added.
#     docker build --target worker -t REGISTRY/tidegate/worker:0.1.0 .
#     docker run --gpus all -p 8000:8000 REGISTRY/tidegate/worker:0.1.0 worker --model MODEL --host 0.0.0.0
# The Helm chart (helm/tidegate) runs both as UID 10001.

ARG PYTHON_IMAGE=python:3.11-slim
# Keep in step with the `gpu` extra in pyproject.toml.
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tidegate ./tidegate
COPY gateway ./gateway
COPY scheduler ./scheduler
COPY workers ./workers
COPY autoscaler ./autoscaler
# Wheels for Tidegate and everything it needs, Kubernetes discovery and the Redis client
# (prefix-index exchange between gateway replicas) included.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[kubernetes,redis]"

FROM ${VLLM_IMAGE} AS worker
# `tidegate worker` needs only pydantic and prometheus-client, which vLLM already has, so
# Tidegate goes in without dependencies: vLLM's carefully pinned environment is not touched.
# The drain middleware is imported inside vLLM's server from this same installation.
COPY --from=build /wheels/tidegate-*.whl /tmp/
RUN python3 -m pip install --no-cache-dir --no-deps /tmp/tidegate-*.whl \
    && rm /tmp/tidegate-*.whl \
    && python3 -c "import workers.vllm.cli, workers.vllm.middleware" \
    && useradd --system --uid 10001 --gid 0 --create-home --home-dir /home/tidegate \
        --shell /usr/sbin/nologin tidegate
ENV HOME=/home/tidegate HF_HOME=/home/tidegate/.cache/huggingface
USER 10001
EXPOSE 8000
# Loading a model takes minutes; Kubernetes uses the chart's startup probe instead.
HEALTHCHECK --start-period=1800s --interval=30s --timeout=5s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["tidegate"]
CMD ["worker", "--help"]

FROM ${PYTHON_IMAGE} AS gateway
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tidegate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "tidegate[kubernetes,redis]" \
    && rm -rf /wheels
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["tidegate"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8000"]
