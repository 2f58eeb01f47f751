"""Prints the V3 (ACS3-HMAC-SHA256) test vectors used by crates/sgpolicy-sim/src/auth_v3.rs, computed by the Tea SDK itself.

Usage: .venv/bin/python tests/sdk/v3_vectors.py
Uses alibabacloud_tea_openapi.utils.Utils.get_authorization (the function the SDK signs every V3 request
with) and darabonba.core.DaraCore.compose_url (how the SDK writes the query on the wire), on fixed
inputs, so the Rust unit tests check the simulator against the SDK's own canonicaliser.
"""
import hashlib

from alibabacloud_tea_openapi.utils import Utils
from darabonba.core import DaraCore
from darabonba.request import DaraRequest


def vector(name, query, extra_headers, body=b"", secret="testsecret", ak="testid"):
    r = DaraRequest()
    r.method = "POST"
    r.pathname = "/"
    r.protocol = "http"
    r.query = query
    payload = hashlib.sha256(body).hexdigest()
    r.headers = {
        "host": "127.0.0.1:8080",
        "x-acs-version": "2014-05-26",
        "x-acs-action": "DescribeSecurityGroups",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11 TeaDSL/2",
        "x-acs-date": "2026-11-28T04:30:00Z",
        "x-acs-signature-nonce": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "accept": "application/json",
    }
    r.headers.update(extra_headers)
    r.headers["x-acs-content-sha256"] = payload
    auth = Utils.get_authorization(r, "ACS3-HMAC-SHA256", payload, ak, secret)
    url = DaraCore.compose_url(r)
    print("== %s" % name)
    print("wire query: %s" % url.split("?", 1)[1] if "?" in url else "wire query: ")
    for k, v in r.headers.items():
        print("header: %s: %s" % (k, v))
    print("Authorization: %s" % auth)


vector(
    "describe",
    {
        "RegionId": "cn-hangzhou",
        "SecurityGroupIds": '["sg-1","sg-2"]',
        "Tag.1.Key": "env",
        "Tag.1.Value": "prod a*b~c/é+",
        "NextToken": "",
        "MaxResults": "10",
    },
    {},
)
vector(
    "sts",
    {"RegionId": "cn-hangzhou", "SecurityGroupId": "sg-bp67acfmxazb4ph0001"},
    {"x-acs-accesskey-id": "stsid", "x-acs-security-token": "sts-token-123"},
    secret="stssecret",
    ak="stsid",
)
vector(
    "form body",
    {"RegionId": "cn-hangzhou"},
    {"content-type": "application/x-www-form-urlencoded"},
    body=b"SecurityGroupId=sg-bp67acfmxazb4ph0001&InnerAccessPolicy=Drop",
)
