#!/usr/bin/env bash
# The comparison in docs/performance.md ("One core against one core"):
# every scenario RUNS times (default 3) against switchboard and against the
# Node ws peer, alternating, a fresh server per run, then each figure's
# median. Loopback only; every run is bounded. Needs a release build and,
# for the Node column, `npm install --prefix bench/node-peer` (without
# node_modules there, only switchboard is measured).
#
#   cargo build --release && bench/compare.sh [RUNS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
bench=target/release/switchboard-bench
servers=(switchboard)
[ -d bench/node-peer/node_modules/ws ] && servers+=(node)
pid=

# Starts server $1 on a free port, on CPU 0 when $2 is "pin"; sets $pid, $port.
start() {
    port=$((20000 + RANDOM % 20000))
    local pin=()
    [ "$2" = pin ] && pin=(taskset -c 0)
    case $1 in
    switchboard)
        rm -rf "$out/data"
        "${pin[@]}" target/release/switchboard --listen "127.0.0.1:$port" --log-level error \
            --max-queued-bytes 67108864 --max-connections 20000 --data-dir "$out/data" \
            >"$out/server.log" 2>&1 &
        ;;
    node) "${pin[@]}" node bench/node-peer/server.js "$port" >"$out/server.log" 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.1
    done
    echo "compare: $1 did not start:" >&2
    cat "$out/server.log" >&2
    exit 1
}
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT

# scenario NAME pin|free|bench BENCH-ARGS...: the runs, one output file
# each. pin: the server on CPU 0, the bench on CPU 1 (`--pin`); free: both
# left to the scheduler; bench: only the bench on CPU 1, the server free.
scenario() {
    local name=$1 pin=$2
    shift 2
    local flag=() wrap=()
    [ "$pin" = pin ] && flag=(--pin)
    [ "$pin" = bench ] && wrap=(taskset -c 1)
    for run in $(seq "$runs"); do
        for server in "${servers[@]}"; do
            start "$server" "$pin"
            timeout 300 "${wrap[@]}" "$bench" "$@" "${flag[@]}" --server-pid "$pid" \
                --url "ws://127.0.0.1:$port/ws/concierge" >"$out/$name-$server-$run.txt" 2>&1 || true
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            pid=
        done
    done
}

# median NAME SERVER REGEX: over the runs, the median of the last number
# in what REGEX matches.
median() {
    cat "$out/$1-$2"-*.txt | grep -oE "$3" |
        awk '{ for (i = NF; i > 0; i--) if ($i ~ /^[0-9.]+$/) { print $i; break } }' |
        sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

scenario flat1000 pin fanout --subscribers 1000 --messages 300
scenario flat50 pin fanout --subscribers 50 --messages 20000
scenario rate1000 pin fanout --subscribers 1000 --messages 300 --rate 50
scenario rate50 pin fanout --subscribers 50 --messages 5000 --rate 1000
scenario unpinned1000 free fanout --subscribers 1000 --messages 300 --rate 50
scenario loose1000 bench fanout --subscribers 1000 --messages 300 --rate 50
scenario idle free idle --connections 3000
scenario churn pin churn --seconds 3

echo "medians of $runs runs (outputs in $out):"
for server in "${servers[@]}"; do
    echo "== $server"
    for name in flat1000 flat50 rate1000 rate50 unpinned1000 loose1000; do
        echo "$name: $(median $name "$server" '[0-9]+ msg/s delivered') deliveries/s," \
            "p99 $(median $name "$server" 'p99 [0-9.]+') ms"
    done
    echo "idle: $(median idle "$server" '[0-9.]+ KiB RSS') KiB per connection," \
        "CPU during the hold $(median idle "$server" 'hold: CPU [0-9.]+') s"
    echo "churn: $(median churn "$server" '[0-9.]+ connections/s') connections/s," \
        "handshake p99 $(median churn "$server" 'p99 [0-9.]+') ms"
done
