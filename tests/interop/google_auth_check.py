"""Loads a credential file written by `gemauth login` with Google's own Python google-auth,
both through google.auth.default() (via CLOUDSDK_CONFIG) and from_authorized_user_file(), then
refreshes it. Prints a JSON summary for the Rust test to assert on.

usage: google_auth_check.py CREDENTIAL_FILE TOKEN_ENDPOINT
"""
import json
import sys

import google.oauth2.credentials as oauth2_credentials

# google-auth ignores `token_uri` in authorized_user files and always refreshes at Google's
# endpoint (from_authorized_user_info passes _GOOGLE_OAUTH2_TOKEN_ENDPOINT, "always overrides").
# Tests never reach the internet, so point that constant at the local fake server.
oauth2_credentials._GOOGLE_OAUTH2_TOKEN_ENDPOINT = sys.argv[2]

import google.auth  # noqa: E402
from google.auth.transport.requests import Request  # noqa: E402

default_creds, _project = google.auth.default()
file_creds = oauth2_credentials.Credentials.from_authorized_user_file(sys.argv[1])
file_creds.refresh(Request())

print(
    json.dumps(
        {
            "default_class": type(default_creds).__module__ + "." + type(default_creds).__name__,
            "default_client_id": default_creds.client_id,
            "default_account": default_creds.account,
            "default_quota_project": default_creds.quota_project_id,
            "default_scopes": default_creds.scopes,
            "default_universe": default_creds.universe_domain,
            "file_refresh_token": file_creds.refresh_token,
            "token_after_refresh": file_creds.token,
            "valid_after_refresh": file_creds.valid,
        }
    )
)
