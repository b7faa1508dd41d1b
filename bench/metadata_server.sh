#!/usr/bin/env bash
# The metadata server under load: `gemauth metadata-server`'s token endpoint against nginx serving
# a static file of the same size, in one run, with wrk at 64 connections. From the repository root:
#
#   bash bench/metadata_server.sh      build the release binary and measure (about 75 seconds)
#   options: --binary PATH (measure that gemauth), --strict (exit 1 when a target is missed),
#            --secs N (seconds per wrk round, 4 rounds; default 15)
#
# Everything listens on 127.0.0.1 only: bench/token_server.py (plain HTTP) is the token endpoint of
# an authorized_user credential in a temporary HOME; the server refreshes through gemauth's
# pipeline and its cache. Rounds alternate gemauth and nginx (gemauth, nginx, gemauth, nginx), so a
# noisy neighbour hits both alike. Every process started here is stopped on exit; wrk rounds are
# bounded by --secs. Targets (issue 23): throughput >= 0.7x nginx's, p99 <= 2 ms, peak RSS <= 16
# MiB, one token request per token lifetime (3599 s here: one in the whole run).
#
# Needs wrk and nginx (as root on Debian it installs them: `apt-get install wrk nginx-light`),
# python3 and cargo. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

binary= strict=0 secs=15
while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -gt 1 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --strict) strict=1; shift ;;
    --secs) [ $# -gt 1 ] || die "--secs needs a number"; secs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
case $secs in '' | *[!0-9]*) die "--secs takes a whole number of seconds" ;; esac

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
  CLOUDSDK_CONFIG="$work/gcloud" "$binary" metadata-server --listen 127.0.0.1:0 \
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
mkdir -p "$work/www" "$work/nginx"
cp "$work/www-token" "$work/www/token"
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
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx.err" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$nginx_port$path" -o /dev/null 2>/dev/null && break; sleep 0.05; done
cmp -s "$work/www-token" <(curl -fsS "http://127.0.0.1:$nginx_port$path") ||
  die "nginx does not serve the file: $(cat "$work/nginx.err" "$work/nginx/error.log" 2>/dev/null)"

# One wrk round: requests per second and p99 in ms, on stdout.
round() {
  local url=$1 out
  out=$(wrk -t2 -c64 -d"${secs}s" --timeout 5s --latency -H 'Metadata-Flavor: Google' "$url")
  printf '%s\n' "$out" >>"$work/wrk.log"
  grep -q 'Non-2xx' <<<"$out" && die "non-2xx answers under load: $out"
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
print(rps, float(m.group(1)) * scale)
PY
}

start=$(date +%s)
say "wrk -t2 -c64, $secs s per round, 4 rounds, body $size bytes"
read -r g1 gp1 < <(round "http://$mds_addr$path")
read -r n1 np1 < <(round "http://127.0.0.1:$nginx_port$path")
read -r g2 gp2 < <(round "http://$mds_addr$path")
read -r n2 np2 < <(round "http://127.0.0.1:$nginx_port$path")
elapsed=$(( $(date +%s) - start ))
rss_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$mds_pid/status")
requests=$(curl -fsS "http://127.0.0.1:$token_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_requests"])')

python3 - "$g1" "$gp1" "$n1" "$np1" "$g2" "$gp2" "$n2" "$np2" "$rss_kib" "$requests" "$elapsed" "$strict" "$size" <<'PY'
import sys
g1, gp1, n1, np1, g2, gp2, n2, np2 = map(float, sys.argv[1:9])
rss_kib, requests, elapsed, strict, size = map(int, sys.argv[9:14])
g, n = (g1 + g2) / 2, (n1 + n2) / 2
gp, np_ = max(gp1, gp2), max(np1, np2)
rss = rss_kib / 1024
rows = [
    ("throughput >= 0.7x nginx", f"{g:,.0f} req/s vs {n:,.0f} ({g / n:.2f}x)", g / n >= 0.7),
    ("p99 latency <= 2 ms", f"{gp:.2f} ms (nginx {np_:.2f} ms)", gp <= 2.0),
    ("peak RSS <= 16 MiB", f"{rss:.1f} MiB", rss <= 16),
    (f"one token request per token lifetime ({elapsed} s run, 3599 s tokens)",
     f"{requests} request(s)", requests == 1),
]
print(f"body {size} bytes; rounds: gemauth {g1:,.0f} / {g2:,.0f} req/s, nginx {n1:,.0f} / {n2:,.0f} req/s")
print("| target | result | met |")
print("| --- | --- | --- |")
for name, value, ok in rows:
    print(f"| {name} | {value} | {'yes' if ok else 'NO'} |")
sys.exit(1 if strict and not all(ok for _, _, ok in rows) else 0)
PY
