# The project's image: the stand-in services, the worker and the codec server all run from it.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ordersaga ordersaga
COPY workflows workflows
COPY activities activities
COPY services services
COPY worker.py starter.py ./
RUN pip install . && useradd --create-home --uid 10001 saga && mkdir /data && chown saga /data
USER saga
CMD ["order-saga-worker"]
