#!/usr/bin/env bash
# Load test of the status daemon: wrk against GET /status (with the bearer token) on loopback,
# beside a bare Falcon hello-world served with the same gunicorn settings, in the same run.
# Prints requests/s and p99 latency of both and the throughput ratio. Target: ratio >= 0.8, zero errors.
# The two servers are measured in alternating rounds (hello, daemon, hello, daemon) so that load from
# anything else on the machine hits both alike; requests/s is the mean of the rounds, p99 the worst.
# Usage: bench/daemon_load.sh [SECONDS] [CONNECTIONS]   (defaults: 10 s per server, 16 connections)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv/bin"
duration=${1:-10}
rounds=2
connections=${2:-16}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -x "$venv/soong-daemon" ] || { echo "run: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

umask 077
token=$("$venv/python" -c 'import secrets; print(secrets.token_urlsafe(24))')
printf '%s\n' "$token" > "$work/token"
printf 'bench-unused-key\n' > "$work/api-key"
port_for() { "$venv/python" -c 'from soong.testing.net import free_port; print(free_port())'; }

write_config() {  # $1 = file, $2 = port
  cat > "$1" <<YAML
instance_id: bench-instance
provider_api_url: http://127.0.0.1:9/api/v1
launched_at: "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
bind: 127.0.0.1:$2
workers: 2
state_dir: $work/state
token_file: $work/token
api_key_file: $work/api-key
boot_log: $work/boot.log
sglang_metrics_url: ""
n8n_metrics_url: ""
wall: false
poweroff_command: []
check_interval_seconds: 30
YAML
}

wait_port() {
  "$venv/python" -c "from soong.testing.net import wait_for_port; wait_for_port($1, timeout=20)"
}

# The token goes to wrk through its environment and a Lua script, never on a command line.
cat > "$work/auth.lua" <<'LUA'
local token = os.getenv("BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
LUA

run_wrk() {  # $1 = label, $2 = port; prints "label rps p99_ms errors"
  local out rps p99 errors non2xx
  out=$(BENCH_TOKEN="$token" wrk -t2 -c"$connections" -d"$(( (duration + rounds - 1) / rounds ))s" --latency -s "$work/auth.lua" \
        "http://127.0.0.1:$2/status")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
  echo "$1 ${rps:-0} ${p99:-nan} $(( ${non2xx:-0} + ${errors:-0} ))"
}

hello_port=$(port_for)
write_config "$work/hello.yaml" "$hello_port"
"$venv/python" "$here/bench/daemon_hello_server.py" "$work/hello.yaml" >"$work/hello.log" 2>&1 &
pids+=($!)
wait_port "$hello_port"

daemon_port=$(port_for)
write_config "$work/daemon.yaml" "$daemon_port"
"$venv/soong-daemon" --config "$work/daemon.yaml" >"$work/daemon.log" 2>&1 &
pids+=($!)
wait_port "$daemon_port"

status=$(curl -s -o /dev/null -w '%{http_code}' -H @- "http://127.0.0.1:$daemon_port/status" <<<"Authorization: Bearer $token")
[ "$status" = 200 ] || { echo "the daemon answered $status to an authorised /status" >&2; cat "$work/daemon.log" >&2; exit 1; }

for _ in $(seq "$rounds"); do
  run_wrk hello "$hello_port" >> "$work/results"
  run_wrk daemon "$daemon_port" >> "$work/results"
done
summary() {  # $1 = label -> "mean_rps worst_p99 total_errors"
  awk -v l="$1" '$1 == l { n++; rps += $2; if ($3 > p99) p99 = $3; err += $4 }
                 END { printf "%.0f %.2f %d\n", rps / n, p99, err }' "$work/results"
}
read -r hello_rps hello_p99 hello_err < <(summary hello)
read -r daemon_rps daemon_p99 daemon_err < <(summary daemon)

printf '%-28s %12s %10s %8s\n' "server (2 sync workers)" "requests/s" "p99 ms" "errors"
printf '%-28s %12s %10s %8s\n' "falcon hello-world" "$hello_rps" "$hello_p99" "$hello_err"
printf '%-28s %12s %10s %8s\n' "soong-daemon GET /status" "$daemon_rps" "$daemon_p99" "$daemon_err"
ratio=$(awk -v a="$daemon_rps" -v b="$hello_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0" }')
echo "throughput ratio daemon/hello: $ratio (target >= 0.80, zero errors)"
if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.8) }' && [ "$daemon_err" -eq 0 ] && [ "$hello_err" -eq 0 ]; then
  echo "PASS"
else
  echo "BELOW TARGET"
  exit 1
fi
