# The project's image: the stand-in services, the worker and the codec server all run from it.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# The whole build context, less what .dockerignore leaves out: a package added to pyproject.toml
# needs no line here. The extras: the image runs the stand-in services and the codec server,
# through the `order-saga` command (whose command table imports rich).
COPY . .
RUN pip install ./temporal-saga-helper '.[services,dashboard]' && useradd --create-home --uid 10001 saga && mkdir /data && chown saga /data
USER saga
CMD ["order-saga-worker"]
