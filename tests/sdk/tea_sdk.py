"""Drives a running sgpolicy simulator through the Tea SDK (alibabacloud-ecs20140526), unchanged.

Usage: tea_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT tea_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml. Exits non-zero on any mismatch.

The clients use the SDK's DEFAULT configuration: alibabacloud-tea-openapi >= 0.4 then signs with V3
(ACS3-HMAC-SHA256 in an `Authorization` header, `x-acs-*` headers, Action/Version in `x-acs-action` /
`x-acs-version`). One check also runs with `signature_algorithm='v2'`, which sends RPC signature V1
(`Signature` parameter), the form sgpolicy itself uses.
"""
import json
import uuid

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from darabonba.runtime import RuntimeOptions

from common import G1, G_ENT, G_NAT, REGION, Checks, admin, settings

endpoint, ak, secret = settings()
c = Checks("tea alibabacloud-ecs20140526")


def client(secret_=secret, ak_=ak, token=None, **extra):
    """A client configured as a user would: endpoint, protocol, region and credentials, nothing else."""
    cfg = open_api_models.Config(
        access_key_id=ak_,
        access_key_secret=secret_,
        security_token=token,
        endpoint=endpoint,
        protocol="http",
        region_id=REGION,
        **extra,
    )
    return Client(cfg)


cl = client()
rt = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=10000, connect_timeout=5000)


def error_of(fn):
    try:
        fn()
    except Exception as e:  # the Tea SDK raises ClientException/ServerException with .code and .status_code
        return getattr(e, "status_code", None) or getattr(e, "statusCode", None), getattr(e, "code", None), str(e)
    return None


def ids(resp):
    return [g.security_group_id for g in resp.body.security_groups.security_group]


def groups(**kw):
    return cl.describe_security_groups_with_options(ecs.DescribeSecurityGroupsRequest(region_id=REGION, **kw), rt)


def attr(gid=G1):
    req = ecs.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=gid, max_results=10)
    return cl.describe_security_group_attribute_with_options(req, rt)


def modify(gid, policy, token=None):
    req = ecs.ModifySecurityGroupPolicyRequest(
        region_id=REGION, security_group_id=gid, inner_access_policy=policy, client_token=token
    )
    return cl.modify_security_group_policy_with_options(req, rt)


admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept"})
admin(endpoint, "DELETE", "/_sim/calls")

r = groups(security_group_ids=json.dumps([G1, G_ENT, "sg-missing"]))
c.eq("DescribeSecurityGroups by SecurityGroupIds", sorted(ids(r)), sorted([G1, G_ENT]))
ent = [g for g in r.body.security_groups.security_group if g.security_group_id == G_ENT][0]
c.eq("enterprise type reported", ent.security_group_type, "enterprise")
tags = [ecs.DescribeSecurityGroupsRequestTag(key="env", value="prod"), ecs.DescribeSecurityGroupsRequestTag(key="team", value="web")]
c.eq("Tag filters must all match", ids(groups(tag=tags)), [G1])
nat = groups(service_managed=True)
c.eq("ServiceManaged filter", ids(nat), [G_NAT])
c.eq("ServiceID parsed by the SDK model", nat.body.security_groups.security_group[0].service_id, 1679259531804325)

seen, token, pages = [], None, 0
while True:
    r = groups(max_results=2, next_token=token)
    pages += 1
    seen += ids(r)
    token = r.body.next_token
    if not token or pages > 10:
        break
c.eq("MaxResults/NextToken paging visits every group once", len(seen), 5)
c.eq("paging takes 3 pages and ends without NextToken", (pages, token), (3, None))
c.eq("TotalCount", r.body.total_count, 5)

a = attr()
c.eq("DescribeSecurityGroupAttribute policy", a.body.inner_access_policy, "Accept")
c.eq("HTTP 200", a.status_code, 200)

tok = "tea-" + str(uuid.uuid4())
first = modify(G1, "drop", tok)
c.true("Modify returns a RequestId", bool(first.body.request_id))
c.eq("re-read shows the change", attr().body.inner_access_policy, "Drop")
admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept"})
again = modify(G1, "Drop", tok)
c.eq("replayed token returns the first RequestId", again.body.request_id, first.body.request_id)
c.eq("replay changes nothing", attr().body.inner_access_policy, "Accept")
err = error_of(lambda: modify(G1, "Accept", tok)) or (0, "", "")
c.eq("same token, other parameters", err[:2], (400, "IdempotentParameterMismatch"))

err = error_of(lambda: attr("sg-doesnotexist")) or (0, "", "")
c.eq("NotFound surfaced with its code", err[:2], (404, "InvalidSecurityGroupId.NotFound"))
err = error_of(lambda: modify(G_NAT, "Drop")) or (0, "", "")
c.eq("managed group refused", err[:2], (403, "InvalidOperation.ResourceManagedByCloudProduct"))
err = error_of(lambda: modify(G_ENT, "Drop")) or (0, "", "")
c.eq("enterprise group refused", err[:2], (404, "InvalidParameter.InnerAccessPolicy"))

bad = client(secret_=secret + "x")
err = error_of(lambda: bad.describe_security_groups_with_options(ecs.DescribeSecurityGroupsRequest(region_id=REGION), rt)) or (0, "", "")
c.eq("wrong secret: SignatureDoesNotMatch", err[:2], (400, "SignatureDoesNotMatch"))
c.true("message carries the V3 server string to sign", "server string to sign is:ACS3-HMAC-SHA256" in err[2], err[2])

sts_ok = client(ak_="stsid", secret_="stssecret", token="sts-token-123")
c.eq("STS key with its token", ids(sts_ok.describe_security_groups_with_options(
    ecs.DescribeSecurityGroupsRequest(region_id=REGION, security_group_ids=json.dumps([G1])), rt)), [G1])
sts_bad = client(ak_="stsid", secret_="stssecret", token="wrong")
err = error_of(lambda: sts_bad.describe_security_groups_with_options(ecs.DescribeSecurityGroupsRequest(region_id=REGION), rt)) or (0, "", "")
c.eq("STS key with a wrong token", err[:2], (400, "InvalidSecurityToken.MismatchWithAccessKey"))

# The older signing path (RPC signature V1) still works when a user opts into it.
v2 = client(signature_algorithm="v2")
c.eq("signature_algorithm='v2' (RPC V1) also works", ids(v2.describe_security_groups_with_options(
    ecs.DescribeSecurityGroupsRequest(region_id=REGION, security_group_ids=json.dumps([G1])), rt)), [G1])

calls = admin(endpoint, "GET", "/_sim/calls")
c.true("every call arrived as POST", all(x["method"] == "POST" for x in calls))
c.eq("default config signs V3; only the v2 client signed V1",
     sorted(set((x["signature"], x["access_key_id"]) for x in calls)),
     sorted([("V1", ak), ("V3", ak), ("V3", "stsid")]))
c.eq("exactly one V1 call", len([x for x in calls if x["signature"] == "V1"]), 1)
c.eq("call log: one effective write, one replay",
     [(x["effective"], x["replayed"]) for x in calls if x["action"] == "ModifySecurityGroupPolicy" and x["status"] == 200],
     [(True, False), (False, True)])
c.finish()
