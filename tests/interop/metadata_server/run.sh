#!/bin/sh
# Real Google clients against the metadata server with the fake token source of the unit tests
# (src/mds/tests.rs, `interop_server`): google-auth for Python, google-auth-library for Node,
# gcloud. Run by hand from the repository root (CI runs the same clients against the real binary:
# tests/it/metadata_server.rs). See README.md.
set -eu
PORT=${PORT:-18169}
ADDR=127.0.0.1:$PORT
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

GEMAUTH_MDS_INTEROP_ADDR=$ADDR GEMAUTH_MDS_INTEROP_SECS=${SECS:-90} \
  cargo test --locked --lib mds::tests::interop_server -- --ignored --nocapture >"$WORK/server.log" 2>&1 &
SERVER=$!
i=0
until curl -fsS -H 'Metadata-Flavor: Google' "http://$ADDR/" >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { cat "$WORK/server.log"; exit 1; }; sleep 0.5
done

# Isolated: no credential file, no gcloud configuration, so the metadata server is what is found.
mkdir -p "$WORK/home"
export HOME="$WORK/home" CLOUDSDK_CONFIG="$WORK/home/gcloud"
export GCE_METADATA_HOST=$ADDR GCE_METADATA_IP=$ADDR GCE_METADATA_ROOT=$ADDR
unset GOOGLE_APPLICATION_CREDENTIALS || true

echo "== google-auth (Python)"
python3 "$HERE/google_auth_check.py"

echo "== google-auth-library (Node): needs NODE_MODULES=dir with google-auth-library installed"
if [ -n "${NODE_MODULES:-}" ]; then
  cp "$HERE/google_auth_check.mjs" "$NODE_MODULES/../google_auth_check.mjs"
  node "$NODE_MODULES/../google_auth_check.mjs"
else
  echo "skipped: NODE_MODULES not set"
fi

echo "== gcloud (GCE_METADATA_ROOT)"
if command -v gcloud >/dev/null; then
  account=$(gcloud auth list --format='value(account)')
  [ "$account" = robot@my-project.iam.gserviceaccount.com ] || { echo "FAIL account $account"; exit 1; }
  token=$(gcloud auth print-access-token)
  case $token in ya29.token-*) echo "ok   gcloud auth print-access-token: $token" ;; *) echo "FAIL $token"; exit 1 ;; esac
  gcloud auth print-identity-token --audiences=https://service.example.run.app >/dev/null
  echo "ok   gcloud auth print-identity-token"
else
  echo "skipped: gcloud not installed"
fi

wait "$SERVER" || true
grep '^interop: ' "$WORK/server.log"
