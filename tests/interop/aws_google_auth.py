#!/usr/bin/env python3
"""Prints the AWS subject token google-auth's `aws.Credentials` would send to STS.

Usage: aws_google_auth.py EXTERNAL_ACCOUNT_FILE AMZ_DATE

It loads the external_account file (AWS source) with google-auth's own loader, fixes
google-auth's clock at AMZ_DATE (YYYYMMDDTHHMMSSZ, the time gemauth signed at) and calls
`retrieve_subject_token`, which reads the region and the role credentials from the metadata
URLs in the file (tests/it/aws_sources.rs serves them). Run by
`google_auth_sends_the_same_aws_subject_token`.
"""

import datetime
import json
import sys
from unittest import mock

from google.auth import aws
from google.auth.transport import requests as ga_requests

path, amz_date = sys.argv[1], sys.argv[2]
with open(path) as f:
    info = json.load(f)
credentials = aws.Credentials.from_info(info)
now = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
with mock.patch("google.auth._helpers.utcnow", return_value=now):
    print(credentials.retrieve_subject_token(ga_requests.Request()))
