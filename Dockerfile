# syntax=docker/dockerfile:1
# Gateway image. Build: docker build -t tidegate:dev .
# Run:   docker run -p 8000:8000 tidegate:dev gateway --host 0.0.0.0 --workers http://worker:8000

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tidegate ./tidegate
COPY gateway ./gateway
COPY scheduler ./scheduler
COPY workers ./workers
COPY autoscaler ./autoscaler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS gateway
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tidegate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["tidegate"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8000"]
