"""Writes and reads google-auth `token.json` files, as the Gemini OAuth quickstart's
`load_creds()` does (`Credentials.to_json()`, `Credentials.from_authorized_user_file()`), for
tests/it/token_json.rs. Prints JSON on stdout.

usage: token_json.py write TOKEN_URI CLIENT_ID CLIENT_SECRET REFRESH_TOKEN TOKEN EXPIRES_IN SCOPE...
       token_json.py load FILE
"""
import datetime
import json
import sys

from google.oauth2.credentials import Credentials


def write(token_uri, client_id, client_secret, refresh_token, token, expires_in, *scopes):
    # google-auth keeps expiry as a naive UTC datetime.
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    creds = Credentials(
        token=token,
        refresh_token=refresh_token,
        token_uri=token_uri,
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(scopes),
        expiry=now + datetime.timedelta(seconds=int(expires_in)),
    )
    print(creds.to_json())


def load(path):
    creds = Credentials.from_authorized_user_file(path)
    print(
        json.dumps(
            {
                "client_id": creds.client_id,
                "refresh_token": creds.refresh_token,
                "token": creds.token,
                "scopes": creds.scopes,
                "quota_project_id": creds.quota_project_id,
            }
        )
    )


if __name__ == "__main__":
    {"write": write, "load": load}[sys.argv[1]](*sys.argv[2:])
