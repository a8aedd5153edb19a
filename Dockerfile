# syntax=docker/dockerfile:1
# One image for every Dagster process of qtickets-assets: the code server (gRPC, which also executes the
# runs), the webserver and the daemon. docker-compose.yml picks the role by command; docs/RUNBOOK.md.
# The base is a build argument only so that a machine without a registry can build on a local stand-in
# (deploy/smoke.sh); the default is the pinned official image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    QTICKETS_DATA_DIR=/opt/dagster/storage/data

RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --no-create-home dagster \
    && mkdir -p /opt/dagster/home /opt/dagster/storage \
    && chown -R dagster:dagster /opt/dagster

WORKDIR /app
COPY pyproject.toml README.md dagster.yaml ./
COPY deploy/ deploy/
COPY clickhouse_migrations/ clickhouse_migrations/
COPY qtickets_assets/ qtickets_assets/
# Exact versions from deploy/constraints.txt. A plain install: the migrations ship as package data.
RUN python -m venv /opt/venv \
    && pip install --constraint deploy/constraints.txt ".[postgres]" \
    && cd / && python -c "import dagster_postgres, qtickets_assets.warehouse.migrations as m; assert m.discover()"

COPY --chown=dagster:dagster deploy/dagster.yaml /opt/dagster/home/dagster.yaml
# Processes start outside /app: there the source tree would shadow the installed package (Dagster and
# Python put the working directory first on sys.path). /app keeps deploy/workspace.yaml for the commands.
WORKDIR /opt/dagster

USER dagster
EXPOSE 3000 3001 4000
# For the default role (the code server); docker-compose.yml gives each role its own check.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=8 \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
# Default role: the code server. The webserver and daemon override the command (docker-compose.yml).
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "qtickets_assets.definitions", "--location-name", "qtickets_assets"]
