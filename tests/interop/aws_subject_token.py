#!/usr/bin/env python3
"""Generator of the AWS subject-token vectors in src/aws.rs (tests `google_auth_subject_tokens`).

Not run by CI. It was run once, by hand, to produce the expected strings:

    python3 -m venv /tmp/awsv && /tmp/awsv/bin/pip install google-auth requests
    /tmp/awsv/bin/python tests/interop/aws_subject_token.py

with google-auth 2.63.1. It drives google-auth's own `aws.Credentials.retrieve_subject_token`
(the code path that builds the STS subject token) with a supplier that returns fixed AWS
credentials and region, and with `google.auth._helpers.utcnow` patched to the fixed times of
google-auth's test vectors, then prints one line per case: `name<TAB>subject token`.
The keys are AWS's documented example keys, not real credentials.
"""

import datetime
from unittest import mock

import google.auth
from google.auth import aws

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
print("google-auth", google.auth.__version__)
