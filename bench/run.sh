#!/usr/bin/env bash
# gemauth benchmark (issue 7). From the repository root:
#
#   bash bench/run.sh              build the release binary (static, as shipped), then measure
#                                  side by side:
#                                  1. cached `print-access-token` vs Python google-auth vs `cat`
#                                  2. forced refresh vs a bare `curl` POST of the same request,
#                                     over https (as Google serves tokens) and over plain http
#                                  3. 50 concurrent calls on an expired cache (wall, token requests)
#                                  4. peak memory (GNU time) and binary size
#                                  and show what the cached path does (strace, perf, callgrind)
#   bash bench/run.sh --profiles   also build 5 variants (dynamically linked as `cargo install`
#                                  makes it, static but not position-independent, Cargo's
#                                  default profile, unwinding, opt-level s; one
#                                  target dir each under /tmp, ~5 minutes each on 2 cores the
#                                  first time) and compare their size, cached path, refresh and
#                                  50 concurrent calls
#   options: --quick (a quarter of the rounds), --strict (exit 1 when a target fails)
#
# Everything runs against token endpoints on 127.0.0.1 (bench/token_server.py; the https one with
# a certificate from a CA made for the run) in temporary HOME/XDG_CACHE_HOME/CLOUDSDK_CONFIG
# directories; nothing else is contacted. The timed comparisons are
# interleaved rounds in one run (bench/harness.py), reported as medians and ratios.
#
# Environment: CARGO_TARGET_DIR is honoured for the main build; GEMAUTH_BENCH_VENV (default
# /tmp/gemauth-bench-venv) is the virtual environment for google-auth; GEMAUTH_BENCH_PROFILE_DIR
# (default /tmp/gemauth-bench-profiles) holds the target dirs of the profile variants.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

profiles=0
harness_args=()
for arg in "$@"; do
  case $arg in
    --profiles) profiles=1 ;;
    --quick) harness_args+=(--quick) ;;
    --strict) harness_args+=(--strict) ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

# Calls go to 127.0.0.1 only: no proxy may see them.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

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
command -v openssl >/dev/null || needed+=(openssl)  # the https token endpoint's certificates
[ -x /usr/bin/time ] || needed+=(time)        # GNU time, for peak memory (%M)
command -v strip >/dev/null || needed+=(binutils)
command -v python3 >/dev/null || needed+=(python3)
python3 -m venv --help >/dev/null 2>&1 || needed+=(python3-venv)
[ ${#needed[@]} -eq 0 ] || apt_install "${needed[@]}"

# Optional, for the "what the cached path does" section; missing ones are skipped with a note.
optional=()
command -v strace >/dev/null || optional+=(strace)
command -v valgrind >/dev/null || optional+=(valgrind)
if [ ${#optional[@]} -gt 0 ]; then
  (apt_install "${optional[@]}") || say "continuing without ${optional[*]} (analysis partly skipped)"
fi

# google-auth (and the quickstart's other imports) in a virtual environment, never system-wide.
venv=${GEMAUTH_BENCH_VENV:-/tmp/gemauth-bench-venv}
if ! "$venv/bin/python" -c 'import google.oauth2.credentials, google_auth_oauthlib, requests' 2>/dev/null; then
  say "installing google-auth, google-auth-oauthlib and requests in $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create a virtual environment in $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check google-auth google-auth-oauthlib requests ||
    die "pip could not install google-auth into $venv"
fi
py=$venv/bin/python

# --- builds ---------------------------------------------------------------------------------------
# Builds the gemauth binary (with whatever CARGO_* variables the caller sets) and prints its path.
# --locked: measure the dependency set in Cargo.lock, and never rewrite it.
#
# `build static` is the release binary as README's "Install" section builds it: on Linux with glibc,
# statically linked. `-C target-feature=+crt-static` goes to the binary crate only, hence `cargo
# rustc` (through RUSTFLAGS it would also reach the proc-macro crates, which cannot be static).
# `build dynamic` is what `cargo build --release` and `cargo install` make.
host=$(rustc -vV | sed -n 's/^host: //p')
# `build static-nopie` is the static binary without position independence (no ASLR for its code),
# measured for what position independence costs at start-up.
build() { # static|static-nopie|dynamic
  local cmd=(cargo build --release --locked --bin gemauth --message-format=json-render-diagnostics)
  if [ "$1" != dynamic ] && [[ $host == *-linux-gnu ]]; then
    cmd=(cargo rustc --release --locked --bin gemauth --message-format=json-render-diagnostics
      -- -C target-feature=+crt-static)
    [ "$1" = static-nopie ] && cmd+=(-C relocation-model=static)
  fi
  "${cmd[@]}" |
    "$py" -c '
import json, sys
exe = None
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "gemauth" \
            and "bin" in msg["target"]["kind"] and msg.get("executable"):
        exe = msg["executable"]
if not exe:
    sys.exit("cargo reported no gemauth executable")
print(exe)'
}

say "release build (target dir: ${CARGO_TARGET_DIR:-cargo default})"
gemauth=$(build static) || die "the release build failed"

# Release-profile variants, each in its own target dir (they share no artifacts anyway).
# "current" is the main build: Cargo.toml's [profile.release] (lto, 1 codegen unit, strip, abort),
# statically linked as shipped.
variants=("current=$gemauth")
symbols=()
if [ $profiles = 1 ]; then
  pdir=${GEMAUTH_BENCH_PROFILE_DIR:-/tmp/gemauth-bench-profiles}
  build_variant() { # NAME static|dynamic VAR=VALUE...
    local name=$1 how=$2
    shift 2
    say "building profile variant '$name' ($how): $*"
    local exe
    exe=$(export CARGO_TARGET_DIR="$pdir/$name" "$@" && build "$how") ||
      die "the build of variant $name failed"
    variants+=("$name=$exe")
  }
  # What `cargo install` makes: the same profile, dynamically linked.
  build_variant dynamic dynamic
  # The same static binary, but not position-independent.
  build_variant static-nopie static-nopie
  # Cargo's defaults for release: thin-local LTO, 16 codegen units, unwinding, debug info
  # stripped but symbols kept (so this one also gives callgrind its function names).
  build_variant default static CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_PROFILE_RELEASE_PANIC=unwind
  build_variant unwind static CARGO_PROFILE_RELEASE_PANIC=unwind
  build_variant opt-s static CARGO_PROFILE_RELEASE_OPT_LEVEL=s
  symbols=(--symbols "${variants[3]#*=}")
fi

# --- measurements ------------------------------------------------------------------------------
# The harness runs as a child we wait for, so that INT or TERM sent to this script reaches it:
# it then stops its token server and child processes and removes its temporary directory.
child=
stop() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" || true
  fi
  exit 130
}
trap stop INT TERM
harness() {
  "$py" bench/harness.py "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return $rc
}

status=0
harness main --gemauth "$gemauth" --python "$py" "${symbols[@]}" "${harness_args[@]}" || status=$?
if [ $profiles = 1 ] && [ $status -ne 130 ]; then
  quick=()
  for a in "${harness_args[@]}"; do [ "$a" = --quick ] && quick=(--quick); done
  harness profiles --python "$py" "${quick[@]}" "${variants[@]}" || status=$?
fi
exit $status
