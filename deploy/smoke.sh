#!/usr/bin/env bash
# Smoke test of the production image and stack, on a machine with podman instead of Docker Compose and
# no container registry (docs/RUNBOOK.md, "Smoke test"). As root:   bash deploy/smoke.sh
#
# Installs podman, runc and debootstrap if missing; builds (once, then cached) a Debian 12 base image, a
# stand-in for python:3.11-slim and one for the postgres image; builds the Dockerfile on the stand-in.
# Then starts every service of docker-compose.yml but `clickhouse` (no server image exists here) with
# the command, environment, volumes and health check that docker-compose.yml gives it (read by
# deploy/smoke/compose.py), in one pod whose network is its own loopback: the compose service names
# resolve to it and the compose ports are used as they are, so nothing listens on the host. The
# warehouse is the embedded engine (CLICKHOUSE_DSN=chdb://…, the env file's override) in a volume
# mounted only where runs execute: `migrate` and `code` (deploy/dagster.yaml: the code server launches
# the runs). The API is the built-in sandbox (no QTICKETS_API_BASE_URL).
# Checks: migrate; schedules and sensors RUNNING; a qtickets_refresh run queued through GraphQL,
# dequeued by the daemon, executed by the code server, SUCCESS and recorded in the warehouse; every
# container restarted keeps the run history (PostgreSQL) and the warehouse (volume).
# One line per step with its duration; the first failure stops it (exit 1) with the step's log.
# Everything it started is removed on exit; the base images stay cached for the next run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=$ROOT/deploy/smoke
ID=qtsmoke-$$
IMAGE=localhost/qtickets-assets:$ID
BASE_IMAGE=localhost/bookworm-min
# Stand-ins are tagged with a digest of their files: a changed Containerfile builds a new one.
digest() { (cd "$ROOT/deploy/smoke" && cat "$@") | sha256sum | cut -c1-12; }
PYTHON_IMAGE=localhost/python:3.11-slim-$(digest python.Containerfile)
POSTGRES_IMAGE=localhost/postgres:bookworm-$(digest postgres.Containerfile postgres-entrypoint.sh)
SKIPPED=(clickhouse)           # compose services without an image here
WAREHOUSE=/opt/dagster/warehouse
RUNS_WHERE=(migrate code)      # the services that open the warehouse
NEEDED=(webserver daemon)      # what the checks use (GraphQL, the run queue): awaited like a dependent
RUN_TIMEOUT_S=${SMOKE_RUN_TIMEOUT_S:-900}
WORK=$(mktemp -d "/tmp/$ID.XXXXXX")
export CONTAINERS_CONF=$WORK/containers.conf

exec 3>&1 4>&2  # the terminal, for the report lines while a step's output goes to its log
pm() { podman "$@"; }
note() { printf '%s\n' "$*" > "$WORK/note"; }

STEP="" STEP_START=$SECONDS
step() {  # step NAME FUNCTION [ARGS]: run it, its output in a log; one line with its time
    STEP=$1 STEP_START=$SECONDS
    : > "$WORK/note"
    "${@:2}" > "$WORK/step.log" 2>&1
    printf 'ok    %-34s %5d s  %s\n' "$STEP" $((SECONDS - STEP_START)) "$(cat "$WORK/note")" >&3
}

cleanup() {
    local rc=$?
    set +e
    exec 1>&3 2>&4
    if ((rc)); then
        printf 'FAIL  %-34s %5d s\n' "$STEP" $((SECONDS - STEP_START))
        [[ -f $WORK/step.log ]] && tail -n 60 "$WORK/step.log" | sed 's/^/      /'
    fi
    if command -v podman >/dev/null; then
        pm pod rm -f -t 5 "$ID" >/dev/null 2>&1
        pm ps -a -q --filter "name=^$ID-" | xargs -r podman rm -f >/dev/null 2>&1
        pm volume ls -q --filter "name=^$ID-" | xargs -r podman volume rm -f >/dev/null 2>&1
        pm image exists "$IMAGE" && pm rmi -f "$IMAGE" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
    printf 'done  removed pod %s, its containers, volumes and image (%d s in all)\n' "$ID" "$SECONDS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- images ---------------------------------------------------------------------------------------------

tools() {
    local missing=()
    for tool in podman runc debootstrap; do command -v "$tool" || missing+=("$tool"); done
    [[ -x /usr/libexec/podman/catatonit ]] || missing+=(catatonit)  # --init (compose: init: true)
    if ((${#missing[@]})); then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap catatonit
    fi
    # This machine's kernel sandbox: runc (crun fails on its cgroups), cgroupfs, no default ulimits.
    printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
        > "$CONTAINERS_CONF"
    note "$(podman --version); installed now: ${missing[*]:-nothing}"
}

base_image() {
    if pm image exists "$BASE_IMAGE"; then note "$BASE_IMAGE cached"; return; fi
    local mirror
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "${mirror:-http://deb.debian.org/debian}"
    tar -C "$WORK/rootfs" -c . | pm import - "$BASE_IMAGE"
    rm -rf "$WORK/rootfs"
    note "$BASE_IMAGE built (debootstrap)"
}

stand_in() {  # stand_in IMAGE CONTAINERFILE
    if pm image exists "$1"; then note "$1 cached"; return; fi
    pm build --network host -t "$1" -f "$SMOKE/$2" "$SMOKE"
    note "$1 built"
}

app_image() {
    # pip inside the build trusts this machine's CA bundle (the stand-in sets PIP_CERT to it).
    pm build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
        --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" -t "$IMAGE" "$ROOT"
    local user health size location
    user=$(pm image inspect -f '{{.Config.User}}' "$IMAGE")
    health=$(pm image inspect -f '{{.Config.Healthcheck.Test}}' "$IMAGE")
    size=$(pm image inspect -f '{{.Size}}' "$IMAGE")
    # Imported as the services import it (their working directory), it must be the installed copy.
    location=$(pm run --rm --network none --health-cmd none "$IMAGE" python -c \
        'import qtickets_assets.definitions as module; print(module.__file__)')
    echo "user=$user healthcheck=$health package=$location"
    [[ $user && $user != root && $user != 0 ]] || { echo "the image runs as root"; return 1; }
    [[ $health == *grpc-health-check* ]] || { echo "no HEALTHCHECK"; return 1; }
    [[ $location == /opt/venv/* ]] || { echo "the package is not installed into the venv"; return 1; }
    note "$IMAGE $((size / 1000000)) MB, user $user, package at $(dirname "$location")"
}

# --- the stack ------------------------------------------------------------------------------------------

read_compose() {
    local secret
    secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
    # deploy/.env as an operator makes it from the template, with the sandbox API (no base URL or token)
    # and the embedded warehouse (the template's documented CLICKHOUSE_DSN override).
    grep -E '^[A-Z_]+=' "$ROOT/deploy/env.sample" | grep -Ev '^(QTICKETS_API_BASE_URL|QTICKETS_API_TOKEN)=' \
        | sed -e "s/^CLICKHOUSE_PASSWORD=.*/CLICKHOUSE_PASSWORD=$(secret)/" \
              -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(secret)/" > "$WORK/env"
    echo "CLICKHOUSE_DSN=chdb://$WAREHOUSE/clickhouse" >> "$WORK/env"
    mkdir -m 777 "$WORK/services"
    pm run --rm --network none --user 0 -v "$ROOT/docker-compose.yml:/in/docker-compose.yml:ro" \
        -v "$SMOKE/compose.py:/in/compose.py:ro" -v "$WORK:/work" "$IMAGE" \
        python /in/compose.py /in/docker-compose.yml /work/env "$ID-" /work/services "${SKIPPED[@]}"
    cat "$WORK/services/services"
    # Compose's network resolves service names; here every service is on the pod's loopback.
    { echo "127.0.0.1 localhost"; awk '{printf "127.0.0.1 %s\n", $1}' "$WORK/services/services"; } \
        > "$WORK/hosts"
    pm pod create --name "$ID" --network none
    note "services in start order: $(awk '{printf "%s ", $1}' "$WORK/services/services")(skipped: ${SKIPPED[*]})"
}

image_of() {  # the image that stands in for a compose service's `image:` / `build:`
    case $1 in
        build) echo "$IMAGE" ;;
        postgres:*) echo "$POSTGRES_IMAGE" ;;
        *) echo "no stand-in for image $1" >&2; return 1 ;;
    esac
}

run_args() {  # run_args SERVICE: podman run arguments (before the image) for a compose service
    local service=$1 opts=()
    mapfile -d '' opts < "$WORK/services/$service.opts"
    ARGS=(--pod "$ID" --name "$ID-$service" --env-file "$WORK/services/$service.env"
          -v "$WORK/hosts:/etc/hosts:ro" --health-cmd none "${opts[@]}")
    # :U hands the volume to the image's user, as a fresh named volume at an existing path would be.
    [[ " ${RUNS_WHERE[*]} " == *" $service "* ]] && ARGS+=(-v "$ID-warehouse:$WAREHOUSE:U")
    return 0
}

wait_healthy() {  # wait_healthy SERVICE SECONDS: poll the compose health check inside the container
    local service=$1 deadline=$((SECONDS + $2)) test=() check=()
    mapfile -d '' test < "$WORK/services/$service.health"
    ((${#test[@]})) || return 0
    case ${test[0]} in
        CMD) check=("${test[@]:1}") ;;
        CMD-SHELL) check=(sh -c "${test[1]}") ;;
        *) echo "$service: unsupported health check ${test[*]}"; return 1 ;;
    esac
    until pm exec "$ID-$service" "${check[@]}" > "$WORK/health.log" 2>&1; do
        if [[ $(pm inspect -f '{{.State.Running}}' "$ID-$service") != true ]] || ((SECONDS > deadline)); then
            echo "$service is not healthy:"; cat "$WORK/health.log"; pm logs --tail 80 "$ID-$service"
            return 1
        fi
        sleep 2
    done
}

start_stack() {  # as `compose up`: in order, a service's start waits for what its dependents await
    local service image restart awaited cmd
    while read -r service image restart awaited <&5; do
        run_args "$service"
        mapfile -d '' cmd < "$WORK/services/$service.cmd"
        image=$(image_of "$image")
        if [[ $restart == no ]]; then  # a one-shot job (migrate): the others wait for its exit 0
            pm run "${ARGS[@]}" "$image" "${cmd[@]}" | tee "$WORK/$service.out"
        else
            pm run -d "${ARGS[@]}" "$image" "${cmd[@]}"
            [[ $awaited == no ]] || wait_healthy "$service" 300
        fi
    done 5< "$WORK/services/services"
    for service in "${NEEDED[@]}"; do wait_healthy "$service" 300; done
    note "running: $(pm ps --filter "name=^$ID-" --format '{{.Names}}' | sed "s/^$ID-//" | sort | tr '\n' ' ')" \
         "| migrate: $(cat "$WORK/migrate.out")"
    grep -q '"applied": \["0001' "$WORK/migrate.out"
}

all_healthy() {  # every service's compose health check passes (serve's: facts fresh, after the run)
    local service image restart awaited healthy=()
    while read -r service image restart awaited <&5; do
        [[ $restart == no ]] && continue
        wait_healthy "$service" 300
        healthy+=("$service")
    done 5< "$WORK/services/services"
    note "${healthy[*]}"
}

graphql() { pm exec -i "$ID-webserver" python - "$@" < "$SMOKE/graphql.py"; }

automation_running() {
    graphql automation | tee "$WORK/automation"
    note "$(cat "$WORK/automation")"
}

queued_run() {
    local range
    range=$(pm exec "$ID-webserver" python -c '
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
today = datetime.now(ZoneInfo("Europe/Moscow")).date()
print(today - timedelta(days=1), today)')
    # shellcheck disable=SC2086  # two dates
    graphql launch qtickets_refresh $range | tee "$WORK/launch"
    read -r RUN_ID status < "$WORK/launch"
    [[ $status == QUEUED ]]  # the webserver queued it (QueuedRunCoordinator); only the daemon dequeues
    graphql wait "$RUN_ID" "$RUN_TIMEOUT_S" | tee "$WORK/run"
    note "run $RUN_ID over ${range/ /...}: $status -> $(cat "$WORK/run")"
}

warehouse() {  # the run as recorded where it executed: the code container's warehouse volume
    pm exec -i "$ID-code" python - "$RUN_ID" < "$SMOKE/warehouse.py" | tee "$WORK/warehouse"
    pm exec "$ID-code" qtickets-assets health --wait-s 120 > "$WORK/health"
    cat "$WORK/health"
    note "$(cat "$WORK/warehouse") health: $(grep -o '"healthy": [a-z]*' "$WORK/health")"
}

restart_all() {
    local service image restart awaited
    while read -r service image restart awaited <&5; do
        if [[ $restart == no ]]; then
            pm start -a "$ID-$service" | tee "$WORK/$service.again"
        else
            pm restart "$ID-$service"
        fi
    done 5< "$WORK/services/services"
    all_healthy
    grep -q '"applied": \[\]' "$WORK/migrate.again"
    local before after
    before=$(cat "$WORK/warehouse")
    after=$(pm exec -i "$ID-code" python - "$RUN_ID" < "$SMOKE/warehouse.py")
    echo "warehouse before: $before"; echo "warehouse after:  $after"
    [[ $(graphql status "$RUN_ID") == SUCCESS ]]
    graphql automation
    # The run's own record is unchanged (fact counts may move: the schedule keeps running).
    [[ ${after%%'"facts"'*} == "${before%%'"facts"'*}" ]]
    note "run $RUN_ID still SUCCESS (PostgreSQL), same record in the warehouse (volume)," \
         "migrate again: applied [], all healthy again"
}

memory() {
    pm stats --no-stream --format '{{.Name}} {{.MemUsage}}' | grep "^$ID-" | grep -v ' 0B / 0B' \
        | sed -e "s/^$ID-//" -e 's| / .*||' | sort | tee "$WORK/stats"
    note "$(paste -sd ' ' "$WORK/stats" | sed 's/\([0-9.]*[kMG]B\) /\1, /g')"
}

step "podman, runc, debootstrap" tools
step "base image (Debian 12)" base_image
step "python:3.11-slim stand-in" stand_in "$PYTHON_IMAGE" python.Containerfile
step "postgres stand-in" stand_in "$POSTGRES_IMAGE" postgres.Containerfile
step "build the image" app_image
step "read docker-compose.yml" read_compose
step "start the stack (+ migrate)" start_stack
step "schedules and sensors RUNNING" automation_running
step "qtickets_refresh queued run" queued_run
step "run recorded in the warehouse" warehouse
step "every health check passes" all_healthy
step "restart every container" restart_all
step "memory per container" memory
