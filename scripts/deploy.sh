#!/usr/bin/env bash
# Runs voiceagent in Docker on this host (docker/compose.yml, host networking).
#
#   scripts/deploy.sh up        build the image and start (or restart with a new image)
#   scripts/deploy.sh down      stop and remove the container (the data volume stays)
#   scripts/deploy.sh logs      follow the logs (extra arguments go to `logs`, e.g. --tail 100)
#   scripts/deploy.sh update    git pull, rebuild, restart
#   scripts/deploy.sh status    container state and health, and the API's liveness answer
#
# Works with Docker Compose v2 (`docker compose`) and v1 (`docker-compose`). Configuration is the
# repository root's .env; docs/DEPLOYMENT.md explains it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=voiceagent
SERVICE=voiceagent

say() { printf 'deploy: %s\n' "$*" >&2; }
die() { printf 'deploy: error: %s\n' "$*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    die "neither 'docker compose' (v2) nor 'docker-compose' (v1) was found; install Docker with the compose plugin"
fi
COMPOSE+=(-p "$PROJECT" -f "$ROOT/docker/compose.yml")

need_env() {
    [[ -f "$ROOT/.env" ]] \
        || die "$ROOT/.env is missing: copy .env.example to .env and fill it in (docs/DEPLOYMENT.md)"
}

up() {
    need_env
    "${COMPOSE[@]}" build
    "${COMPOSE[@]}" up -d --remove-orphans
    status
}

status() {
    "${COMPOSE[@]}" ps
    local id health
    id=$("${COMPOSE[@]}" ps -q "$SERVICE" 2>/dev/null || true)
    if [[ -z $id ]]; then
        say "not running"
        return 0
    fi
    health=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}no health check{{end}}' "$id")
    say "health: $health"
    # The same check Docker runs, right now.
    if docker exec "$id" voiceagent health; then
        say "liveness endpoint answers"
    else
        say "liveness endpoint does not answer (docker logs: scripts/deploy.sh logs --tail 100)"
        return 1
    fi
}

case ${1:-} in
    up) up ;;
    down) "${COMPOSE[@]}" down ;;
    logs) shift; "${COMPOSE[@]}" logs -f "$@" "$SERVICE" ;;
    update)
        need_env
        git -C "$ROOT" pull --ff-only
        # Build first: the running service keeps answering calls during the build and is only
        # replaced once the new image exists.
        "${COMPOSE[@]}" build --pull
        "${COMPOSE[@]}" up -d --remove-orphans
        status
        ;;
    status) status ;;
    *) sed -n '2,/^set -euo/{ /^set -euo/d; s/^# \{0,1\}//; p; }' "$0"; exit 2 ;;
esac
