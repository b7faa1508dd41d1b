"""The Python google-auth way to get an access token from a cached token.json, as in the Gemini
API OAuth quickstart (`load_creds()`), for comparison with `gemauth print-access-token`.

  python py_token.py minimal    TOKEN_JSON   import google.oauth2.credentials only
  python py_token.py quickstart TOKEN_JSON   also the quickstart's other imports
                                             (google.auth.transport.requests, google_auth_oauthlib)

Both load the file with Credentials.from_authorized_user_file, check that the token is valid (the
file holds a token that expires in 2099, so no refresh and no network) and print it.
"""

import os.path
import sys

SCOPES = ["https://www.googleapis.com/auth/generative-language.retriever"]

mode, path = sys.argv[1], sys.argv[2]

if mode == "quickstart":
    # The quickstart's imports: needed there for the refresh and login branches, paid on every
    # call even when the cached token is valid.
    from google.auth.transport.requests import Request  # noqa: F401
    from google_auth_oauthlib.flow import InstalledAppFlow  # noqa: F401
elif mode != "minimal":
    sys.exit(f"unknown mode {mode!r}")

from google.oauth2.credentials import Credentials  # noqa: E402

creds = None
if os.path.exists(path):
    creds = Credentials.from_authorized_user_file(path, SCOPES)
if not creds or not creds.valid:
    # The quickstart would refresh or log in here; the benchmark's token.json is always valid.
    sys.exit("token.json is missing or not valid")
print(creds.token)
