"""Shared helpers for the SDK conformance scripts: endpoint/credentials from argv or env, checks, admin."""
import json
import os
import sys
import urllib.request

REGION = "cn-hangzhou"
G1 = "sg-bp67acfmxazb4ph0001"  # web, prod, Accept at seed time
G_ENT = "sg-bp67acfmxazb4ph0004"
G_NAT = "sg-bp67acfmxazb4ph0005"


def settings():
    """(endpoint 'host:port', access key id, secret) from argv[1..3] or SIM_ENDPOINT/SIM_AK/SIM_SECRET."""
    args = sys.argv[1:]
    endpoint = args[0] if len(args) > 0 else os.environ.get("SIM_ENDPOINT", "")
    ak = args[1] if len(args) > 1 else os.environ.get("SIM_AK", "testid")
    secret = args[2] if len(args) > 2 else os.environ.get("SIM_SECRET", "testsecret")
    endpoint = endpoint.replace("http://", "").rstrip("/")
    if not endpoint:
        sys.exit("usage: script.py HOST:PORT [AK SECRET]   (or set SIM_ENDPOINT)")
    if not (endpoint.startswith("127.0.0.1:") or endpoint.startswith("localhost:") or endpoint.startswith("[::1]:")):
        sys.exit("refusing a non-loopback endpoint: %s" % endpoint)
    return endpoint, ak, secret


class Checks:
    """Counts passed/failed checks and prints `N passed, M failed` at the end."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
            print("ok   %s" % what)
        else:
            self.failed += 1
            print("FAIL %s: got %r, want %r" % (what, got, want))

    def true(self, what, cond, detail=""):
        self.eq(what + (" (%s)" % detail if detail and not cond else ""), bool(cond), True)

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def admin(endpoint, method, path, body=None):
    """Calls an unsigned /_sim/ admin path and returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://%s%s" % (endpoint, path), data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())
