#!/usr/bin/env bash
# gemauth benchmark: the README's performance table and its targets. From the repository root:
#
#   bash bench/run.sh             build the release binary as `cargo install` does and measure, side
#                                 by side in one run (bench/README.md says what and how)
#   options: --quick (a quarter of the rounds), --strict (exit 1 when a target is missed),
#            --binary PATH (measure that gemauth instead, e.g. the static musl build; the targets
#            are for the one `cargo install` builds)
#
# Every command runs in a private network namespace where oauth2.googleapis.com is 127.0.0.1 (a
# bind-mounted /etc/hosts) and bench/token_server.py answers on port 443 with a certificate from
# a CA made for the run; nothing else is reachable. Needs root, or unprivileged user namespaces.
#
# Environment: CARGO_TARGET_DIR is honoured; GEMAUTH_BENCH_VENV (default /tmp/gemauth-bench-venv)
# is the virtual environment for Python google-auth.
set -euo pipefail
cd "$(dirname "$0")/.."

# The measurement suites, modules in bench/ run in this order in the same sandbox (see
# bench/harness.py). A new set of rows is one more module named here.
suites=(core)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

harness_args=()
binary=
while [ $# -gt 0 ]; do
  arg=$1
  shift
  case $arg in
    --quick | --strict) harness_args+=("$arg") ;;
    --binary)
      [ $# -gt 0 ] || die "--binary needs a path"
      binary=$1
      shift
      ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

# --- tools -------------------------------------------------------------------------------------
# Installs Debian packages when we can (root with apt-get), else names what is missing and stops.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing missing Debian packages: $*"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >/dev/null ||
      die "apt-get install $* failed"
  else
    die "missing: $* (install these packages, or run as root on Debian/Ubuntu to let this script do it)"
  fi
}

command -v cargo >/dev/null || die "missing: cargo (install a Rust toolchain, e.g. with rustup)"
needed=()
command -v curl >/dev/null || needed+=(curl)
command -v openssl >/dev/null || needed+=(openssl)      # the run's CA and certificate
[ -x /usr/bin/time ] || needed+=(time)                  # GNU time, for peak memory (%M)
command -v unshare >/dev/null || needed+=(util-linux)   # the private namespaces
command -v ip >/dev/null || needed+=(iproute2)          # to bring up their loopback device
command -v python3 >/dev/null || needed+=(python3)
python3 -m venv --help >/dev/null 2>&1 || needed+=(python3-venv)
[ ${#needed[@]} -eq 0 ] || apt_install "${needed[@]}"
# gcloud (Debian/Ubuntu package google-cloud-cli, from Google's apt repository) is measured when
# present; without it its row and target say "not measured".
command -v gcloud >/dev/null || say "gcloud not found: install google-cloud-cli to measure it"

# Python google-auth (and the quickstart's other imports) in a virtual environment, never
# system-wide; installed before entering the namespace, which has no network.
venv=${GEMAUTH_BENCH_VENV:-/tmp/gemauth-bench-venv}
if ! "$venv/bin/python" -c 'import google.oauth2.credentials, google_auth_oauthlib, requests' 2>/dev/null; then
  say "installing google-auth, google-auth-oauthlib and requests in $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create a virtual environment in $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check google-auth google-auth-oauthlib requests ||
    die "pip could not install google-auth into $venv"
fi
py=$venv/bin/python

# --- build ---------------------------------------------------------------------------------------
# The plain, dynamically linked release binary, as `cargo install --locked` builds it.
if [ -n "$binary" ]; then
  [ -f "$binary" ] && [ -x "$binary" ] || die "no gemauth binary at $binary"
  gemauth=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
else
  say "release build: cargo build --release --locked"
  cargo build --release --locked --bin gemauth || die "the release build failed"
  target_dir=${CARGO_TARGET_DIR:-target}
  gemauth=$(cd "$target_dir/release" && pwd)/gemauth
fi
[ -x "$gemauth" ] || die "no gemauth binary at $gemauth"

# --- measure, inside the namespace ---------------------------------------------------------------
work=$(mktemp -d /tmp/gemauth-bench-hosts.XXXXXX)
printf '127.0.0.1 localhost\n::1 localhost\n127.0.0.1 oauth2.googleapis.com\n' >"$work/hosts"
ns=(unshare --net --mount --propagation private)
[ "$(id -u)" = 0 ] || ns+=(--map-root-user)

# The harness runs as a child we wait for, so that INT or TERM sent to this script reaches it: it
# then stops its token server and removes its temporary directory.
child=
stop() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" || true
  fi
  rm -rf "$work"
  exit 130
}
trap stop INT TERM
"${ns[@]}" -- sh -c 'ip link set lo up && mount --bind "$1" /etc/hosts && shift && exec "$@"' sh \
  "$work/hosts" "$py" bench/harness.py --gemauth "$gemauth" --python "$py" \
  ${harness_args[@]+"${harness_args[@]}"} "${suites[@]}" &
child=$!
status=0
wait "$child" || status=$?
rm -rf "$work"
exit $status
