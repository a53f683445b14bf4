#!/usr/bin/env bash
# soong status against the emulator: 10 instances, each with its real status
# daemon, and 200 ms of latency injected on every call (every API request and
# every daemon connection). Prints medians and ratios against baselines measured
# in the same run:
#   - one raw API call (curl GET /instances): the injected latency itself;
#   - one soong command that makes one API call (soong available): the same
#     start-up cost as status, plus one call.
# status makes one provider call, then the ten daemon calls at once, so it costs
# about two calls' latency; asked one after the other it would cost eleven.
# The target is status under 2x the one-call soong command.
#
#   bench/status.sh                 # RUNS=7 INSTANCES=10 LATENCY=0.2 by default
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.venv/bin"
RUNS=${RUNS:-7}
INSTANCES=${INSTANCES:-10}
LATENCY=${LATENCY:-0.2}
WORK=$(mktemp -d)
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config" XDG_STATE_HOME="$WORK/home/.state" \
       XDG_DATA_HOME="$WORK/home/.data" XDG_CACHE_HOME="$WORK/home/.cache" NO_COLOR=1
export PYTHON_KEYRING_BACKEND=soong.testing.keyring_backend.FileKeyring SOONG_TEST_KEYRING_FILE="$WORK/keyring.json"
mkdir -p "$HOME"

"$BIN/python" "$ROOT/bench/status_fleet.py" --env-file "$WORK/fleet.env" --instances "$INSTANCES" \
    --latency "$LATENCY" >"$WORK/fleet.log" 2>&1 &
FLEET=$!
cleanup() {
    kill "$FLEET" 2>/dev/null || true
    wait "$FLEET" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
    [ -s "$WORK/fleet.env" ] && break
    if ! kill -0 "$FLEET" 2>/dev/null; then
        cat "$WORK/fleet.log" >&2
        exit 1
    fi
    sleep 0.2
done
[ -s "$WORK/fleet.env" ] || { echo "the fleet did not come up" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/fleet.env"

# median wall time in milliseconds of RUNS runs of a command (after one warm-up run)
median_ms() {
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2; exit 1; }
    local times=() start end
    for _ in $(seq 1 "$RUNS"); do
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

raw=$(median_ms curl -sf -H "Authorization: Bearer $LAMBDA_API_KEY" "$FLEET_API_URL/instances")
one=$(median_ms "$BIN/soong" available)
rows=$("$BIN/soong" status -f value -c "SGLang" | grep -vc '^?$' || true)
status=$(median_ms "$BIN/soong" status)

printf '%-44s %10s %10s\n' "case ($INSTANCES instances, ${LATENCY}s per call)" "median ms" "ratio"
printf '%-44s %10d %10s\n' "one raw API call (curl)" "$raw" "1.00"
printf '%-44s %10d %10.2f\n' "one-call soong command (soong available)" "$one" "$(echo "$one / $raw" | bc -l)"
printf '%-44s %10d %10.2f\n' "soong status" "$status" "$(echo "$status / $raw" | bc -l)"
ratio=$(echo "$status / $one" | bc -l)
verdict=$(echo "$ratio < 2" | bc -l)
printf 'soong status is %.2fx the one-call soong command (%s the 2x target); %.2fx one raw call; %s of %s rows had their daemon answer\n' \
    "$ratio" "$([ "$verdict" = 1 ] && echo meets || echo misses)" "$(echo "$status / $raw" | bc -l)" "$rows" "$INSTANCES"
