# syntax=docker/dockerfile:1

# ---- build: install the project and its dependencies into a virtualenv ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README.md is optional: the wildcard lets the build go on without it.
COPY pyproject.toml README.md* ./
COPY callcenter/ callcenter/
COPY api/ api/
COPY scheduler/ scheduler/
RUN pip install .

# ---- runtime ----
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 callcenter \
 && useradd --system --uid 10001 --gid callcenter \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin callcenter

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Owned by root and read-only for the service user.
COPY scripts/ scripts/
COPY alembic/ alembic/
COPY alembic.ini ./

USER 10001:10001

EXPOSE 8000

# The slim image has no curl; the interpreter is enough.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["callcenter", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-scheduler", "--workers", "4"]
