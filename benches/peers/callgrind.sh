#!/usr/bin/env bash
# Instructions per request of one or more Palisade binaries, counted by callgrind (repeatable
# whatever else the machine runs; see docs/performance.md). Not part of CI.
#
#   benches/peers/callgrind.sh NAME=BINARY [NAME=BINARY ...]
#
# A NAME starting with `stock` runs the binary as examples/stock_pingora (`BINARY LISTEN
# ORIGIN`); one starting with `bare` runs Palisade with an empty policy and telemetry off
# (the peer benchmark's palisade-bare), one starting with `lean` the same with the switchable
# per-request headers off (forwarding headers, request id; palisade-lean). Counts are of all
# the process's threads (callgrind's default), the telemetry writer included. With KEEP=DIR,
# each measured profile is kept as DIR/NAME.callgrind, with its function names written out
# (the dump taken after zeroing would otherwise refer to names defined in another file), for
# `benches/peers/cgsummary.py`; a build with line tables names inlined code too (`cargo build
# --profile profiling`).
#
# Each binary runs with one worker thread behind a fixed-response nginx origin, with the peer
# benchmark's kind of policy: a 10,000-CIDR deny list, a per-address limit that never trips,
# repeat-offender tracking and telemetry of every request to a file. After 500 warm-up
# requests the counters are zeroed, 3,000 keep-alive requests on 4 connections are sent with
# h2load, and user-space instructions per request are printed. Needs valgrind, nginx and
# h2load (nghttp2-client). Everything listens on 127.0.0.1, on ports picked now.
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,21p' "$0"; exit 2; }
N=${N:-3000}
dir=$(mktemp -d)
trap 'nginx -c "$dir/nginx.conf" -p "$dir" -s stop 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin=$(port); listen=$(port); metrics=$(port)

cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$origin; location / { return 200 "hello\n"; } } }
NGINX
nginx -c "$dir/nginx.conf" -p "$dir"

python3 - "$dir" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(1)
with open(f"{d}/deny.txt", "w") as f:
    for _ in range(10000):
        f.write(f"10.{random.randint(0,255)}.{random.randint(0,255)}.0/24\n")
with open(f"{d}/policy.yaml", "w") as f:
    f.write(f"""lists:
  deny: {{files: [{d}/deny.txt]}}
rules:
  - {{id: deny, match: {{ip_lists: [deny]}}, action: block}}
limits:
  - {{id: per-ip, requests: 100000000, per: 1s}}
offenders: {{strikes: 30, window: 60s, ban_for: 15m}}
""")
PY

cat > "$dir/palisade.yaml" <<YAML
server: {threads: 1, pid_file: $dir/palisade.pid, upgrade_sock: $dir/upgrade.sock}
listeners: [{address: 127.0.0.1:$listen}]
metrics: {address: 127.0.0.1:$metrics}
telemetry: {sink: file, path: $dir/telemetry.jsonl}
upstreams: {o: {backends: [127.0.0.1:$origin]}}
routes: [{name: app, upstream: o}]
policies: [$dir/policy.yaml]
YAML
echo "{}" > "$dir/empty.yaml"
cat > "$dir/lean.yaml" <<YAML
server: {threads: 1, pid_file: $dir/lean.pid, upgrade_sock: $dir/lean.sock}
listeners: [{address: 127.0.0.1:$listen}]
metrics: {address: 127.0.0.1:$metrics}
telemetry: {sink: off}
forwarding: {x_forwarded_for: false, x_forwarded_proto: false}
request_id: {to_origin: false, to_client: false}
upstreams: {o: {backends: [127.0.0.1:$origin]}}
routes: [{name: app, upstream: o}]
policies: [$dir/empty.yaml]
YAML
cat > "$dir/bare.yaml" <<YAML
server: {threads: 1, pid_file: $dir/bare.pid, upgrade_sock: $dir/bare.sock}
listeners: [{address: 127.0.0.1:$listen}]
metrics: {address: 127.0.0.1:$metrics}
telemetry: {sink: off}
upstreams: {o: {backends: [127.0.0.1:$origin]}}
routes: [{name: app, upstream: o}]
policies: [$dir/empty.yaml]
YAML

for spec in "$@"; do
    name=${spec%%=*}; bin=${spec#*=}
    out="$dir/callgrind.$name"
    case $name in
        stock*) args=("127.0.0.1:$listen" "127.0.0.1:$origin") ;;
        bare*) args=(run -c "$dir/bare.yaml") ;;
        lean*) args=(run -c "$dir/lean.yaml") ;;
        *) args=(run -c "$dir/palisade.yaml") ;;
    esac
    valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$out" "$bin" "${args[@]}" >"$dir/$name.log" 2>&1 &
    vg=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$listen/" && break; sleep 0.3; done
    h2load --h1 -n 500 -c 4 "http://127.0.0.1:$listen/" >/dev/null
    callgrind_control -z "$vg" >/dev/null
    codes=$(h2load --h1 -n "$N" -c 4 "http://127.0.0.1:$listen/" | grep 'status codes')
    callgrind_control -d "$vg" >/dev/null
    sleep 1
    kill "$vg"; wait "$vg" 2>/dev/null || true
    # The dump after zeroing holds the measured requests (all threads); the one written at exit
    # holds only what came after it.
    total=$(grep -h '^totals:' "$out"* | awk '{print $2}' | sort -n | tail -1)
    echo "$name: $((total / N)) instructions per request ($codes)"
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp "$(grep -l "^totals: $total\$" "$out"* | head -1)" "$KEEP/$name.callgrind"
    fi
    rm -f "$out"*
done
