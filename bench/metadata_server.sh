#!/usr/bin/env bash
# The metadata server under load: `gemauth metadata-server`'s token endpoint against nginx serving
# a static file of the same size, in one run, with wrk at 64 connections. From the repository root:
#
#   bash bench/metadata_server.sh      build the release binary and measure (about 70 seconds)
#   options: --binary PATH (measure that gemauth), --strict (exit 1 when a target is missed),
#            --secs N (seconds per wrk round; default 8), --pairs N (rounds of each; default 4)
#
# Everything listens on 127.0.0.1 only: bench/token_server.py (plain HTTP) is the token endpoint of
# an authorized_user credential in a temporary HOME; the server refreshes through gemauth's
# pipeline and its cache. Rounds come in pairs, one of each server next to the other (each pair
# starting with the other one), so that a noisy neighbour hits both alike; the throughput ratio is
# the median of the pairs' ratios, latencies the medians of the rounds. Every process started here is stopped on exit; wrk rounds are
# bounded by --secs. Targets (issue 23): throughput >= 0.7x nginx's, p99 <= 2 ms, peak RSS <= 16
# MiB, one token request per token lifetime (3599 s here: one in the whole run).
#
# Needs wrk and nginx (as root on Debian it installs them: `apt-get install wrk nginx-light`),
# python3 and cargo. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

binary= strict=0 secs=8 pairs=4
while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -gt 1 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --strict) strict=1; shift ;;
    --secs) [ $# -gt 1 ] || die "--secs needs a number"; secs=$2; shift 2 ;;
    --pairs) [ $# -gt 1 ] || die "--pairs needs a number"; pairs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
case $secs in '' | *[!0-9]*) die "--secs takes a whole number of seconds" ;; esac
case $pairs in '' | *[!0-9]* | 0) die "--pairs takes a positive whole number" ;; esac

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null
  else
    die "missing: ${missing[*]}"
  fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "$binary" ]; then
  say "building the release binary (cargo build --release --locked)"
  cargo build --release --locked --quiet
  binary="${CARGO_TARGET_DIR:-$PWD/target}/release/gemauth"
fi
[ -x "$binary" ] || die "$binary is not an executable"

# With two or more cores and taskset, the server under test runs on CPU 0 and wrk (one thread) on
# CPU 1, so that the load generator does not take the server's core; otherwise nothing is pinned.
server_cpu=() client_cpu=() wrk_threads=2
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1) wrk_threads=1
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The token endpoint.
export BENCH_CLIENT_ID=bench.apps.googleusercontent.com BENCH_CLIENT_SECRET=bench-secret
export BENCH_REFRESH_TOKEN=1//bench-refresh BENCH_EXPIRES_IN=3599
python3 bench/token_server.py >"$work/token-port" 2>"$work/token.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/token-port" ] && break; sleep 0.05; done
token_port=$(head -1 "$work/token-port")
[ -n "$token_port" ] || die "the token server did not start: $(cat "$work/token.log")"

# The credential, in a home of its own.
mkdir -p "$work/home" "$work/cache" "$work/gcloud"
cat >"$work/gcloud/application_default_credentials.json" <<EOF
{"type": "authorized_user", "client_id": "$BENCH_CLIENT_ID", "client_secret": "$BENCH_CLIENT_SECRET",
 "refresh_token": "$BENCH_REFRESH_TOKEN", "token_uri": "http://127.0.0.1:$token_port/token"}
EOF
chmod 600 "$work/gcloud/application_default_credentials.json"

env -u GOOGLE_APPLICATION_CREDENTIALS HOME="$work/home" XDG_CACHE_HOME="$work/cache" \
  CLOUDSDK_CONFIG="$work/gcloud" ${server_cpu[@]+"${server_cpu[@]}"} "$binary" metadata-server --listen 127.0.0.1:0 \
  --scopes cloud-platform 2>"$work/mds.log" &
mds_pid=$!
pids+=("$mds_pid")
for _ in $(seq 200); do grep -q 'listening on http://' "$work/mds.log" && break; sleep 0.05; done
mds_addr=$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$work/mds.log" | head -1)
[ -n "$mds_addr" ] || die "the metadata server did not start: $(cat "$work/mds.log")"
path=/computeMetadata/v1/instance/service-accounts/default/token
curl -fsS -H 'Metadata-Flavor: Google' "http://$mds_addr$path" >"$work/www-token" ||
  die "no token from the metadata server: $(cat "$work/mds.log")"
size=$(wc -c <"$work/www-token")

# nginx: the same number of bytes, as a static file, with one worker (the metadata server runs on
# one thread), access log off.
# nginx's worker runs as an unprivileged user when started as root: it may enter the run's
# directory and read the file (a bench token), nothing else there.
mkdir -p "$work/www" "$work/nginx"
cp "$work/www-token" "$work/www/token"
chmod 711 "$work"
chmod 755 "$work/www"
chmod 644 "$work/www/token"
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$nginx_port;
    location = $path { default_type application/json; alias $work/www/token; }
  }
}
EOF
${server_cpu[@]+"${server_cpu[@]}"} "$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx.err" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$nginx_port$path" -o /dev/null 2>/dev/null && break; sleep 0.05; done
cmp -s "$work/www-token" <(curl -fsS "http://127.0.0.1:$nginx_port$path") ||
  die "nginx does not serve the file: $(cat "$work/nginx.err" "$work/nginx/error.log" 2>/dev/null | tail -3)"

# One wrk round: requests per second, p50 and p99 in ms, on stdout.
round() {
  local url=$1 out
  out=$(${client_cpu[@]+"${client_cpu[@]}"} wrk -t"$wrk_threads" -c64 -d"${secs}s" --timeout 5s --latency -H 'Metadata-Flavor: Google' "$url")
  printf '%s\n' "$out" >>"$work/wrk.log"
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
def ms(pct):
    m = re.search(pct + r"%\s+([\d.]+)(us|ms|s)\b", out)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
print(rps, ms("50"), ms("99"))
PY
}

start=$(date +%s)
say "wrk -t$wrk_threads -c64, $pairs pairs of $secs s rounds, body $size bytes${client_cpu[*]:+ (server on CPU 0, wrk on CPU 1)}"
: >"$work/rounds"
for i in $(seq "$pairs"); do
  # Each pair in turn starts with the other server.
  if [ $((i % 2)) = 1 ]; then
    echo "gemauth $(round "http://$mds_addr$path")" >>"$work/rounds"
    echo "nginx $(round "http://127.0.0.1:$nginx_port$path")" >>"$work/rounds"
  else
    echo "nginx $(round "http://127.0.0.1:$nginx_port$path")" >>"$work/rounds"
    echo "gemauth $(round "http://$mds_addr$path")" >>"$work/rounds"
  fi
done
elapsed=$(( $(date +%s) - start ))
if grep -q 'Non-2xx' "$work/wrk.log"; then
  die "non-2xx answers under load: $(grep -B2 -A2 'Non-2xx' "$work/wrk.log" | head -20)"
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
rss_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$mds_pid/status")
requests=$(curl -fsS "http://127.0.0.1:$token_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_requests"])')

python3 - "$work/rounds" "$rss_kib" "$requests" "$elapsed" "$strict" "$size" "$load" <<'PY'
import statistics, sys
rounds = [line.split() for line in open(sys.argv[1])]
rss_kib, requests, elapsed, strict, size = map(int, sys.argv[2:7])
load = sys.argv[7]
g = [tuple(map(float, r[1:])) for r in rounds if r[0] == "gemauth"]
n = [tuple(map(float, r[1:])) for r in rounds if r[0] == "nginx"]
# Per pair: the ratio of the two rounds run next to each other; the median of those.
ratio = statistics.median(a[0] / b[0] for a, b in zip(g, n))
g_rps, n_rps = statistics.median(x[0] for x in g), statistics.median(x[0] for x in n)
g50, n50 = statistics.median(x[1] for x in g), statistics.median(x[1] for x in n)
g99, n99 = statistics.median(x[2] for x in g), statistics.median(x[2] for x in n)
rss = rss_kib / 1024
rows = [
    ("throughput >= 0.7x nginx", f"{g_rps:,.0f} req/s vs {n_rps:,.0f}: {ratio:.2f}x (median of the pairs)", ratio >= 0.7),
    ("p99 latency <= 2 ms", f"{g99:.2f} ms, p50 {g50:.2f} ms (nginx: {n99:.2f} ms, p50 {n50:.2f} ms)", g99 <= 2.0),
    ("peak RSS <= 16 MiB", f"{rss:.1f} MiB", rss <= 16),
    (f"one token request per token lifetime ({elapsed} s run, 3599 s tokens)",
     f"{requests} request(s)", requests == 1),
]
print(f"load average {load}; body {size} bytes")
print("pairs (req/s): " + ", ".join(f"{a[0]:,.0f}/{b[0]:,.0f}" for a, b in zip(g, n)))
print("| target | result | met |")
print("| --- | --- | --- |")
for name, value, ok in rows:
    print(f"| {name} | {value} | {'yes' if ok else 'NO'} |")
sys.exit(1 if strict and not all(ok for _, _, ok in rows) else 0)
PY
