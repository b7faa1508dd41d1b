#!/usr/bin/env python3
"""google-auth for Python against `gemauth metadata-server`, through the library's own
metadata-server code: detection, google.auth.default(), Compute Engine credentials (default and
explicit scopes) and fetch_id_token. Run by hand (see README.md): it expects the server's fake
source, whose access tokens are ya29.token-N and whose ID tokens are unsigned JWTs.

Environment: GCE_METADATA_HOST and GCE_METADATA_IP name the server; GOOGLE_APPLICATION_CREDENTIALS
must be unset and CLOUDSDK_CONFIG an empty directory, so that the metadata server is what
google.auth.default() finds.
"""

import json
import os
import sys

import google.auth
import google.auth.compute_engine
import google.auth.transport.requests
from google.auth import jwt
from google.auth.compute_engine import _metadata
from google.oauth2 import id_token

# What the server is expected to serve: the by-hand run's fake source by default; the integration
# test (tests/it/metadata_server.rs) sets these for the real binary and its fake Google.
EMAIL = os.environ.get("EXPECT_EMAIL", "robot@my-project.iam.gserviceaccount.com")
PROJECT = os.environ.get("EXPECT_PROJECT", "interop-project")
TOKEN_PREFIX = os.environ.get("EXPECT_TOKEN_PREFIX", "ya29.token-")
AUDIENCE = "https://service.example.run.app"


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        sys.exit(1)


def main():
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        sys.exit("unset GOOGLE_APPLICATION_CREDENTIALS first")
    request = google.auth.transport.requests.Request()

    check(_metadata.ping(request), "ping (GCE_METADATA_IP) finds the server")
    check(_metadata.is_on_gce(request), "is_on_gce")

    credentials, project = google.auth.default()
    check(
        isinstance(credentials, google.auth.compute_engine.Credentials),
        "google.auth.default() gives Compute Engine credentials: %r" % type(credentials),
    )
    check(project == PROJECT, "project from project/project-id: %r" % project)

    credentials.refresh(request)
    check(credentials.token.startswith(TOKEN_PREFIX), "access token: %s" % credentials.token)
    check(credentials.expiry is not None, "expiry: %s" % credentials.expiry)
    check(credentials.service_account_email == EMAIL, "email: %s" % credentials.service_account_email)
    check(credentials.valid, "the token is valid for google-auth")
    first = credentials.token

    again, _ = google.auth.default()
    again.refresh(request)
    check(again.token == first, "a second client gets the cached token")

    scoped = google.auth.compute_engine.Credentials(
        scopes=["https://www.googleapis.com/auth/devstorage.read_only"]
    )
    scoped.refresh(request)
    check(scoped.token != first, "explicit scopes get their own token: %s" % scoped.token)

    token = id_token.fetch_id_token(request, AUDIENCE)
    claims = jwt.decode(token, verify=False)
    check(claims["aud"] == AUDIENCE, "fetch_id_token: aud %s" % claims["aud"])

    info = _metadata.get_service_account_info(request)
    check(info["email"] == EMAIL and info["aliases"] == ["default"], "service account info: %s" % json.dumps(info))
    check(_metadata.get_universe_domain(request) == "googleapis.com", "universe domain")
    print("token=" + first)
    print("all checks passed")


if __name__ == "__main__":
    main()
