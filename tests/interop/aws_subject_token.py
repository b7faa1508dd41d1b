#!/usr/bin/env python3
"""Generator of the AWS subject-token vectors in src/aws/tests.rs (`GA_*` constants).

Not run by CI. It was run once, by hand, to produce the expected strings:

    python3 -m venv /tmp/awsv && /tmp/awsv/bin/pip install google-auth requests
    /tmp/awsv/bin/python tests/interop/aws_subject_token.py

with google-auth 2.63.1. It drives google-auth's own `aws.Credentials.retrieve_subject_token`
(the code path that builds the STS subject token) with a supplier that returns fixed AWS
credentials and region, and with `google.auth._helpers.utcnow` patched to the fixed times of
google-auth's test vectors, then prints one line per case: `name<TAB>subject token`.

The last case runs google-auth's default supplier (credential_source with region_url, url and
imdsv2_session_token_url, no AWS_* variables) against a fake instance-metadata server on
127.0.0.1, and also prints each request google-auth made to it (`request<TAB>METHOD<TAB>path
<TAB>metadata headers`), which the Rust plan test compares with its own sequence.
The keys are AWS's documented example keys, not real credentials.
"""

import datetime
import http.server
import json
import os
import threading
from unittest import mock

import google.auth
from google.auth import aws
from google.auth.transport import requests as ga_requests

AUDIENCE = (
    "//iam.googleapis.com/projects/123456/locations/global/"
    "workloadIdentityPools/POOL_ID/providers/PROVIDER_ID"
)
LONG_AUDIENCE = (
    "//iam.googleapis.com/projects/987654321098/locations/global/"
    "workloadIdentityPools/a-rather-long-pool-name-0123456789/providers/"
    "a-rather-long-provider-name-with-unicode-\u00e9-and-spaces %20 & ? = \" \\ end"
)
TEMPLATE = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = (
    "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/"
    "IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE"
)


class Supplier(aws.AwsSecurityCredentialsSupplier):
    def __init__(self, region, token):
        self._region = region
        self._token = token

    def get_aws_security_credentials(self, context, request):
        return aws.AwsSecurityCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, self._token)

    def get_aws_region(self, context, request):
        return self._region


CASES = [
    # name, region, session token, audience, time, regional_cred_verification_url
    ("session_token_us_east_2", "us-east-2", TOKEN, AUDIENCE, "2020-08-11T06:55:22Z", TEMPLATE),
    ("no_session_token_eu_west_1", "eu-west-1", None, AUDIENCE, "2020-08-11T06:55:22Z", TEMPLATE),
    ("long_audience_fips_ap_southeast_2", "ap-southeast-2", TOKEN, LONG_AUDIENCE,
     "2011-09-09T23:36:00Z",
     "https://sts-fips.{region}.amazonaws.com?Version=2011-06-15&Action=GetCallerIdentity"),
]

for name, region, token, audience, when, template in CASES:
    now = datetime.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
    credentials = aws.Credentials(
        audience=audience,
        subject_token_type="urn:ietf:params:aws:token-type:aws4_request",
        token_url="https://sts.googleapis.com/v1/token",
        aws_security_credentials_supplier=Supplier(region, token),
    )
    # A supplier gets google-auth's default verification URL; set the template under test.
    credentials._cred_verification_url = template
    with mock.patch("google.auth._helpers.utcnow", return_value=now):
        subject_token = credentials.retrieve_subject_token(None)
    print("{}\t{}".format(name, subject_token))

# google-auth's default supplier against a fake metadata server.
IMDSV2_TOKEN = "awsimdsv2sessiontoken"
ROLE = "gcp-aws-role"
SEEN = []


class Metadata(http.server.BaseHTTPRequestHandler):
    def _answer(self, body):
        SEEN.append((self.command, self.path, {k: v for k, v in self.headers.items()
                                               if k.lower().startswith("x-aws-ec2")}))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        self._answer(IMDSV2_TOKEN.encode())

    def do_GET(self):
        if self.path == "/latest/meta-data/placement/availability-zone":
            self._answer(b"us-east-2b")
        elif self.path == "/latest/meta-data/iam/security-credentials":
            self._answer(ROLE.encode())
        elif self.path == "/latest/meta-data/iam/security-credentials/" + ROLE:
            self._answer(json.dumps({
                "Code": "Success",
                "LastUpdated": "2020-08-11T06:40:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": SECRET_ACCESS_KEY,
                "Token": TOKEN,
                "Expiration": "2020-08-11T12:55:22Z",
            }).encode())
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(name, None)
server = http.server.HTTPServer(("127.0.0.1", 0), Metadata)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:{}".format(server.server_port)
credentials = aws.Credentials(
    audience=AUDIENCE,
    subject_token_type="urn:ietf:params:aws:token-type:aws4_request",
    token_url="https://sts.googleapis.com/v1/token",
    credential_source={
        "environment_id": "aws1",
        "region_url": base + "/latest/meta-data/placement/availability-zone",
        "url": base + "/latest/meta-data/iam/security-credentials",
        "imdsv2_session_token_url": base + "/latest/api/token",
        "regional_cred_verification_url": TEMPLATE,
    },
)
now = datetime.datetime.strptime("2020-08-11T06:55:22Z", "%Y-%m-%dT%H:%M:%SZ")
with mock.patch("google.auth._helpers.utcnow", return_value=now):
    subject_token = credentials.retrieve_subject_token(ga_requests.Request())
server.shutdown()
print("metadata_server_us_east_2b\t{}".format(subject_token))
for method, path, headers in SEEN:
    print("request\t{}\t{}\t{}".format(method, path, json.dumps(headers, sort_keys=True)))
print("google-auth", google.auth.__version__)
