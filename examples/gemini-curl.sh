#!/usr/bin/env bash
# Lists the Gemini models your account can use, with a token from gemauth.
#
#   gemauth login --client-id-file client_secret.json   # once
#   examples/gemini-curl.sh MY_PROJECT
#
# GEMINI_API_BASE overrides the API's base URL (e.g. a local test server).
set -euo pipefail
project="${1:?usage: $0 PROJECT_ID (the project billed for quota)}"
base="${GEMINI_API_BASE:-https://generativelanguage.googleapis.com}"
token="$(gemauth print-access-token)"
curl --fail-with-body -sS "$base/v1/models" \
  -H "Authorization: Bearer $token" \
  -H "x-goog-user-project: $project" \
  -H 'Content-Type: application/json'
