#!/usr/bin/env bash
# The release's smoke test (issue #20): the image and the compose stack, built and run.
# CI's `image` job runs it after building genstudio:local (SMOKE_BUILD=0); on a machine
# without Docker Hub it runs against the stand-in bases of deploy/standin/ (README.md).
#
#   1. (SMOKE_BUILD=1) build the image: DOCKER_BUILDKIT=1 docker build [--build-arg
#      PYTHON_IMAGE=$SMOKE_PYTHON_IMAGE] -t $SMOKE_IMAGE .
#   2. the image runs as 10001:10001, knows its commands (--help) and accepts its own
#      default configuration (check)
#   3. docker compose up: migrate exits 0, the API answers /health/ready at $PORT, a
#      service-role token minted in the api container reads /v1/admin/stats, and a user
#      with 2 credits gets a PNG rendered by the worker (the CPU preview renderer) and
#      classified by the classifier service
#   4. on failure the services' logs; always `down --volumes`
#
# Settings (environment):
#   SMOKE_IMAGE          the image compose runs (default genstudio:local, compose's name)
#   SMOKE_BUILD          1: build it first (default 0: CI builds it with buildx)
#   SMOKE_PYTHON_IMAGE   the Dockerfile's PYTHON_IMAGE for that build (default its own)
#   SMOKE_BUILD_NETWORK  docker build --network (e.g. host where the bridge has no NAT)
#   SMOKE_BUILTIN_FRONTEND  1: build with the engine's own Dockerfile frontend, without
#                        the `# syntax=` line (its frontend is an image on Docker Hub)
#   DOCKER               the docker client (default docker)
#   COMPOSE              the compose command (default "docker compose")
#   COMPOSE_FILE         compose's own: extra files, e.g.
#                        docker-compose.yml:deploy/standin/compose.standin.yml
#   PORT                 the API's host port (compose's, default 8000)
#   SMOKE_TIMEOUT        seconds to wait for the API to be ready (default 180)
#   SMOKE_KEEP           1: leave the stack up (no `down --volumes`)
# SUPABASE_JWT_SECRET, GENSTUDIO_MEDIA_SECRET and GENSTUDIO_CLASSIFIER_TOKEN are made up
# when not set.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER="${DOCKER:-docker}"
read -r -a COMPOSE <<<"${COMPOSE:-docker compose}"
IMAGE="${SMOKE_IMAGE:-genstudio:local}"
PORT="${PORT:-8000}"
BASE="http://localhost:$PORT"
export PORT
export GENSTUDIO_PUBLIC_URL="${GENSTUDIO_PUBLIC_URL:-$BASE}"
export SUPABASE_JWT_SECRET="${SUPABASE_JWT_SECRET:-smoke-jwt-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
export GENSTUDIO_MEDIA_SECRET="${GENSTUDIO_MEDIA_SECRET:-smoke-media-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
export GENSTUDIO_CLASSIFIER_TOKEN="${GENSTUDIO_CLASSIFIER_TOKEN:-smoke-classifier-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"

step() { printf '\n=== %s\n' "$*"; }
fail() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}
compose() { "${COMPOSE[@]}" "$@"; }

if [ "${SMOKE_BUILD:-0}" = 1 ]; then
  step "build $IMAGE"
  args=(build --tag "$IMAGE")
  [ -n "${SMOKE_PYTHON_IMAGE:-}" ] && args+=(--build-arg "PYTHON_IMAGE=$SMOKE_PYTHON_IMAGE")
  [ -n "${SMOKE_BUILD_NETWORK:-}" ] && args+=(--network "$SMOKE_BUILD_NETWORK")
  if [ "${SMOKE_BUILTIN_FRONTEND:-0}" = 1 ]; then
    dockerfile="$(mktemp)"
    sed '1{/^# syntax=/d}' Dockerfile >"$dockerfile"
    args+=(--file "$dockerfile")
  fi
  DOCKER_BUILDKIT=1 "$DOCKER" "${args[@]}" .
  rm -f "${dockerfile:-}"
fi
size=$("$DOCKER" image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE: $((size / 1024 / 1024)) MiB"

step "the image runs as a non-root user and knows its process types"
user=$("$DOCKER" image inspect "$IMAGE" --format '{{.Config.User}}')
[ "$user" = "10001:10001" ] || fail "the image's user is '$user', not 10001:10001"
[ "$("$DOCKER" run --rm --entrypoint id "$IMAGE" -u)" = 10001 ] || fail "not uid 10001"
"$DOCKER" run --rm "$IMAGE" --help
"$DOCKER" run --rm "$IMAGE" check

finish() {
  status=$?
  if [ "$status" != 0 ]; then
    step "logs (the smoke failed)"
    compose ps --all || true
    compose logs --no-color || true
  fi
  if [ "${SMOKE_KEEP:-0}" != 1 ]; then
    step "down"
    compose down --volumes || true
  fi
  [ "$status" = 0 ] && echo "smoke: passed"
  exit "$status"
}
trap finish EXIT

step "the stack starts and answers ready"
compose up --detach --no-build
for _ in $(seq $((${SMOKE_TIMEOUT:-180} / 2))); do
  curl --fail --silent "$BASE/health/ready" >/dev/null && break
  sleep 2
done
curl --fail --silent --show-error "$BASE/health/ready"
echo
migrate=$(compose ps --all --quiet migrate)
[ -n "$migrate" ] || fail "no migrate container"
state=$("$DOCKER" inspect "$migrate" --format '{{.State.Status}} {{.State.ExitCode}}')
[ "$state" = "exited 0" ] || fail "migrate: $state, not exited 0"
echo "migrate: $state"
for service in classifier api worker scheduler; do
  id=$(compose ps --quiet "$service")
  [ -n "$id" ] || fail "no $service container"
  running=$("$DOCKER" inspect "$id" --format '{{.State.Status}} restarts={{.RestartCount}}')
  [ "$running" = "running restarts=0" ] || fail "$service: $running"
  echo "$service: $running"
done
health=""
for _ in $(seq 30); do  # compose's healthcheck of the api (its first run: after 5 s)
  health=$("$DOCKER" inspect "$(compose ps --quiet api)" --format '{{.State.Health.Status}}')
  [ "$health" = healthy ] && break
  sleep 2
done
[ "$health" = healthy ] || fail "the api's healthcheck says $health"
echo "api: $health"

step "a service-role token minted in the api container"
token=$(compose exec -T api genstudio token --role service_role)
curl --fail --silent --show-error -H "Authorization: Bearer $token" "$BASE/v1/admin/stats"
echo

step "a user's image, rendered by the worker"
user_id=$(cat /proc/sys/kernel/random/uuid)
compose exec -T api genstudio credits grant "$user_id" 2 --reason smoke
user_token=$(compose exec -T api genstudio token --user "$user_id")
auth=(-H "Authorization: Bearer $user_token")
job=$(curl --fail --silent --show-error "${auth[@]}" -H "Idempotency-Key: smoke-$user_id" \
  -H 'Content-Type: application/json' \
  -d '{"model":"flux-schnell","prompt":"a lighthouse at dusk","width":256,"height":256}' \
  "$BASE/v1/generate/image")
echo "$job"
job_id=$(printf '%s' "$job" | sed -nE 's/.*"id":"([^"]+)".*/\1/p')
[ -n "$job_id" ] || fail "no job id in the answer"
body=""
for _ in $(seq 60); do
  body=$(curl --fail --silent --show-error "${auth[@]}" "$BASE/v1/generate/$job_id")
  case "$body" in *'"status":"succeeded"'* | *'"status":"failed"'* | *'"status":"cancelled"'*) break ;; esac
  sleep 1
done
echo "$body"
case "$body" in *'"status":"succeeded"'*) ;; *) fail "the job did not succeed" ;; esac
# with REDIS_URL the API runs no worker of its own: the worker container ran the job
worker_log=$(compose logs --no-color worker)
printf '%s\n' "$worker_log" | grep '"job succeeded"' | grep -F "$job_id" >/dev/null ||
  fail "the worker's log does not say job $job_id succeeded"
echo "worker: job $job_id succeeded"
# the output was moderated by the classifier service (its count of images classified)
classified=$(compose exec -T classifier python -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:8010/health/ready'))['classified'])")
[ "$classified" -ge 1 ] || fail "the classifier service classified no image"
echo "classifier: $classified image(s) classified"
url=$(printf '%s' "$body" | sed -nE 's/.*"url":"([^"]+)".*/\1/p' | sed 's/\\u0026/\&/g')
[ -n "$url" ] || fail "no asset URL"
asset=$(curl --fail --silent --show-error --output /dev/null \
  --write-out '%{http_code} %{content_type} %{size_download}' "$url")
echo "asset: $asset bytes"
case "$asset" in "200 image/png "*) ;; *) fail "the asset is not a PNG" ;; esac
