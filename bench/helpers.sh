#!/usr/bin/env bash
# Benchmark of the credential helpers (issue 15). From the repository root:
#
#   bash bench/helpers.sh                  build the release binary, then time on a cached token,
#                                          side by side in interleaved rounds:
#                                          gemauth print-access-token (the reference),
#                                          gemauth docker-credential get, docker-credential-gemauth
#                                          get, gemauth git-credential get, gemauth
#                                          kubectl-credential; and gcloud's helpers on the same
#                                          grant: docker-credential-gcloud get,
#                                          git-credential-gcloud.sh get, gke-gcloud-auth-plugin
#                                          (gcloud mode and --use_application_default_credentials)
#   options: --binary PATH (time this gemauth, no build), --rounds N (default 20)
#
# Reports each command's median and 90th percentile wall time, its ratio to print-access-token,
# and how many token requests one call made (measured apart from the timed rounds).
#
# Everything runs against bench/token_server.py on 127.0.0.1, in temporary HOME, XDG_CACHE_HOME,
# CLOUDSDK_CONFIG and DOCKER_CONFIG directories. As root (with unshare), the measurements run in
# a new network namespace that has only a loopback interface, so that nothing (gcloud included)
# can reach any other address. gcloud's helpers use the same OAuth client and refresh token as
# gemauth's credential file: gcloud through `auth activate-refresh-token` with
# CLOUDSDK_AUTH_CLIENT_ID/SECRET and CLOUDSDK_AUTH_TOKEN_HOST; gke-gcloud-auth-plugin's ADC mode
# through GOOGLE_APPLICATION_CREDENTIALS (it honours the file's token_uri). Tokens live two hours,
# so that gcloud's docker helper (which refreshes when less than 55 minutes remain) and gemauth's
# (30 minutes) serve from their caches. A missing gcloud tool is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

binary=""
rounds=20
inner=0
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$(realpath "${2:?--binary needs a path}"); shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    --inner) inner=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
case $rounds in '' | *[!0-9]*) die "--rounds needs a number" ;; esac

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
unset GOOGLE_APPLICATION_CREDENTIALS KUBECONFIG KUBERNETES_EXEC_INFO DOCKER_CONFIG RUST_LOG

if [ "$inner" = 0 ]; then
  command -v python3 >/dev/null || die "missing: python3"
  if [ -z "$binary" ]; then
    command -v cargo >/dev/null || die "missing: cargo (or pass --binary PATH)"
    say "building the release binary"
    cargo build --release --locked >&2
    binary=$(realpath "${CARGO_TARGET_DIR:-target}/release/gemauth")
  fi
  [ -x "$binary" ] || die "$binary is not an executable"
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
    say "measuring in a network namespace with loopback only"
    exec unshare -n bash "$0" --inner --binary "$binary" --rounds "$rounds"
  fi
  say "not root (or no unshare): measuring in this network namespace; only 127.0.0.1 is used"
  exec bash "$0" --inner --binary "$binary" --rounds "$rounds"
fi

# --- inside: a sandbox, the token server, the credentials ---------------------------------------
if command -v ip >/dev/null; then ip link set lo up 2>/dev/null || true; fi
sb=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$sb"
}
trap cleanup EXIT

export HOME="$sb/home" XDG_CACHE_HOME="$sb/cache" XDG_CONFIG_HOME="$sb/config"
export CLOUDSDK_CONFIG="$sb/gcloud" DOCKER_CONFIG="$sb/docker"
export CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1 CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true
export GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$CLOUDSDK_CONFIG" "$DOCKER_CONFIG" "$sb/bin"

export BENCH_CLIENT_ID=bench-client.apps.googleusercontent.com
export BENCH_CLIENT_SECRET=bench-client-secret
export BENCH_REFRESH_TOKEN=1//bench-helpers-refresh-token
export BENCH_EXPIRES_IN=7200
python3 bench/token_server.py > "$sb/port" &
server_pid=$!
for _ in $(seq 100); do [ -s "$sb/port" ] && break; sleep 0.05; done
port=$(cat "$sb/port")
[ -n "$port" ] || die "the token server did not start"
token_uri="http://127.0.0.1:$port/token"

adc="$CLOUDSDK_CONFIG/application_default_credentials.json"
cat > "$adc" <<EOF
{"type": "authorized_user", "client_id": "$BENCH_CLIENT_ID", "client_secret": "$BENCH_CLIENT_SECRET",
 "refresh_token": "$BENCH_REFRESH_TOKEN", "token_uri": "$token_uri"}
EOF
chmod 600 "$adc"
ln -s "$binary" "$sb/bin/docker-credential-gemauth"

# gcloud on the same grant (its own credential store and token cache).
gcloud_ok=0
if command -v gcloud >/dev/null; then
  export CLOUDSDK_AUTH_CLIENT_ID="$BENCH_CLIENT_ID" CLOUDSDK_AUTH_CLIENT_SECRET="$BENCH_CLIENT_SECRET"
  export CLOUDSDK_AUTH_TOKEN_HOST="$token_uri"
  if gcloud auth activate-refresh-token bench@example.com "$BENCH_REFRESH_TOKEN" >/dev/null 2>&1; then
    gcloud_ok=1
  else
    say "gcloud auth activate-refresh-token failed: gcloud's rows are skipped"
  fi
else
  say "gcloud is not installed: gcloud's rows are skipped"
fi

printf 'gcr.io\n' > "$sb/docker-input"
printf 'protocol=https\nhost=source.developers.google.com\n\n' > "$sb/git-input"
: > "$sb/empty"

# name|stdin file|command... (fields separated by |, arguments by spaces)
commands=(
  "gemauth print-access-token|$sb/empty|$binary print-access-token"
  "gemauth docker-credential get|$sb/docker-input|$binary docker-credential get"
  "docker-credential-gemauth get|$sb/docker-input|$sb/bin/docker-credential-gemauth get"
  "gemauth git-credential get|$sb/git-input|$binary git-credential get"
  "gemauth kubectl-credential|$sb/empty|$binary kubectl-credential"
)
add_if() { # add_if TOOL ROW
  if [ "$gcloud_ok" = 1 ] && command -v "$1" >/dev/null; then commands+=("$2"); else
    say "$1 is not available: skipped"; fi
}
add_if docker-credential-gcloud "docker-credential-gcloud get|$sb/docker-input|$(command -v docker-credential-gcloud) get"
add_if git-credential-gcloud.sh "git-credential-gcloud.sh get|$sb/git-input|$(command -v git-credential-gcloud.sh) get"
add_if gke-gcloud-auth-plugin "gke-gcloud-auth-plugin|$sb/empty|$(command -v gke-gcloud-auth-plugin)"
add_if gke-gcloud-auth-plugin "gke-gcloud-auth-plugin --use_application_default_credentials|$sb/empty|$(command -v gke-gcloud-auth-plugin) --use_application_default_credentials"

printf '%s\n' "${commands[@]}" > "$sb/commands"
ADC="$adc" python3 - "$sb/commands" "$rounds" "$port" <<'PY'
import json, os, random, statistics, sys, time, urllib.request

commands_file, rounds, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = []
for line in open(commands_file):
    name, stdin, argv = line.rstrip("\n").split("|", 2)
    rows.append((name, stdin, argv.split(" ")))

def stats():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:
        return json.load(r)["token_requests"]

def run(stdin, argv, env=None):
    """Wall time (ms) from just before the spawn to the end of waitpid; output discarded."""
    with open(stdin, "rb") as fin, open(os.devnull, "wb") as null:
        fa = [(os.POSIX_SPAWN_DUP2, fin.fileno(), 0), (os.POSIX_SPAWN_DUP2, null.fileno(), 1),
              (os.POSIX_SPAWN_DUP2, null.fileno(), 2)]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env or os.environ, file_actions=fa)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return (t1 - t0) * 1000

def env_for(name):
    env = dict(os.environ)
    if name.endswith("--use_application_default_credentials"):
        env["GOOGLE_APPLICATION_CREDENTIALS"] = os.environ["ADC"]
    return env

# Warm every cache, then count the token requests of single calls (outside the timed rounds).
# Commands that take less than 200 ms run 10 times per round (interleaved with the others), so
# that their medians rest on more samples.
repeat = {}
for name, stdin, argv in rows:
    repeat[name] = 10 if run(stdin, argv, env_for(name)) < 200 else 1
requests = {}
for name, stdin, argv in rows:
    before = stats()
    for _ in range(3):
        run(stdin, argv, env_for(name))
    requests[name] = (stats() - before) / 3

times = {name: [] for name, _, _ in rows}
rng = random.Random(15)
for _ in range(rounds):
    order = [row for row in rows for _ in range(repeat[row[0]])]
    rng.shuffle(order)
    for name, stdin, argv in order:
        times[name].append(run(stdin, argv, env_for(name)))

def q(values, p):
    s = sorted(values)
    pos = p * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)

ref = statistics.median(times[rows[0][0]])
print(f"\n{rounds} interleaved rounds, cached token, {os.cpu_count()} cores\n")
print("| command | calls | median | p90 | vs print-access-token | token requests per call |")
print("|---|---:|---:|---:|---:|---:|")
for name, _, _ in rows:
    m, p90 = statistics.median(times[name]), q(times[name], 0.9)
    fmt = lambda ms: f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"
    ratio = f"{m / ref:.2f}x" if m / ref < 10 else f"{m / ref:.0f}x"
    print(f"| {name} | {len(times[name])} | {fmt(m)} | {fmt(p90)} | {ratio} | {requests[name]:g} |")
PY
