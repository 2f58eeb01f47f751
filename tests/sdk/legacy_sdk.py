"""Drives a running sgpolicy simulator through the legacy SDK (aliyun-python-sdk-core + -ecs), unchanged.

Usage: legacy_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT legacy_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml. Exits non-zero on any mismatch.
"""
import json
import uuid

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupAttributeRequest import DescribeSecurityGroupAttributeRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkecs.request.v20140526.ModifySecurityGroupPolicyRequest import ModifySecurityGroupPolicyRequest

from common import G1, G_ENT, G_NAT, REGION, Checks, admin, settings

endpoint, ak, secret = settings()
c = Checks("legacy aliyun-python-sdk-core")
client = AcsClient(ak, secret, REGION, auto_retry=False)


def send(req, cl=None):
    # The supported way to bypass endpoint resolution (and so never contact a real Alibaba host).
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    return json.loads((cl or client).do_action_with_exception(req))


def error_of(req, cl=None):
    try:
        send(req, cl)
    except ServerException as e:
        return e.get_http_status(), e.get_error_code(), e.get_error_msg()
    return None


def groups(**kw):
    r = DescribeSecurityGroupsRequest()
    for k, v in kw.items():
        getattr(r, "set_" + k)(v)
    return send(r)


def ids(resp):
    return [g["SecurityGroupId"] for g in resp["SecurityGroups"]["SecurityGroup"]]


admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept"})
admin(endpoint, "DELETE", "/_sim/calls")

r = groups(SecurityGroupIds=json.dumps([G1, G_ENT, "sg-missing"]))
c.eq("DescribeSecurityGroups by SecurityGroupIds", sorted(ids(r)), sorted([G1, G_ENT]))
ent = [g for g in r["SecurityGroups"]["SecurityGroup"] if g["SecurityGroupId"] == G_ENT][0]
c.eq("enterprise type reported", ent["SecurityGroupType"], "enterprise")
c.true("no InnerAccessPolicy in DescribeSecurityGroups items", "InnerAccessPolicy" not in ent)
r = groups(Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "web"}])
c.eq("Tag filters must all match", ids(r), [G1])
r = groups(ServiceManaged=True)
c.eq("ServiceManaged filter", ids(r), [G_NAT])

seen, token, pages = [], None, 0
while True:
    kw = {"MaxResults": 2}
    if token:
        kw["NextToken"] = token
    r = groups(**kw)
    pages += 1
    seen += ids(r)
    token = r.get("NextToken")
    if not token or pages > 10:
        break
c.eq("MaxResults/NextToken paging visits every group once", len(seen), 5)
c.eq("paging takes 3 pages and ends without NextToken", (pages, token), (3, None))

a = DescribeSecurityGroupAttributeRequest()
a.set_SecurityGroupId(G1)
a.set_MaxResults(10)
r = send(a)
c.eq("DescribeSecurityGroupAttribute policy", r["InnerAccessPolicy"], "Accept")
c.true("RequestId is an upper-case UUID", len(r["RequestId"]) == 36 and r["RequestId"] == r["RequestId"].upper())

tok = "legacy-" + str(uuid.uuid4())
m = ModifySecurityGroupPolicyRequest()
m.set_SecurityGroupId(G1)
m.set_InnerAccessPolicy("Drop")
m.set_ClientToken(tok)
first = send(m)
c.eq("Modify answers only RequestId", list(first.keys()), ["RequestId"])
c.eq("re-read shows the change", send(a)["InnerAccessPolicy"], "Drop")
admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept"})
again = send(m)
c.eq("replayed token returns the first RequestId", again["RequestId"], first["RequestId"])
c.eq("replay changes nothing", send(a)["InnerAccessPolicy"], "Accept")
m2 = ModifySecurityGroupPolicyRequest()
m2.set_SecurityGroupId(G1)
m2.set_InnerAccessPolicy("Accept")
m2.set_ClientToken(tok)
c.eq("same token, other parameters", (error_of(m2) or (0, ""))[:2], (400, "IdempotentParameterMismatch"))

nf = DescribeSecurityGroupAttributeRequest()
nf.set_SecurityGroupId("sg-doesnotexist")
c.eq("NotFound surfaced with its code", (error_of(nf) or (0, ""))[:2], (404, "InvalidSecurityGroupId.NotFound"))
mm = ModifySecurityGroupPolicyRequest()
mm.set_SecurityGroupId(G_NAT)
mm.set_InnerAccessPolicy("Drop")
c.eq("managed group refused", (error_of(mm) or (0, ""))[:2], (403, "InvalidOperation.ResourceManagedByCloudProduct"))
me = ModifySecurityGroupPolicyRequest()
me.set_SecurityGroupId(G_ENT)
me.set_InnerAccessPolicy("Drop")
c.eq("enterprise group refused", (error_of(me) or (0, ""))[:2], (404, "InvalidParameter.InnerAccessPolicy"))

# The legacy SDK compares the server's string to sign with its own; equal means the secret is wrong.
bad = AcsClient(ak, secret + "x", REGION, auto_retry=False)
err = error_of(DescribeSecurityGroupsRequest(), bad) or (0, "", "")
c.eq("wrong secret: SignatureDoesNotMatch rewritten by the SDK", err[:2], (400, "InvalidAccessKeySecret"))

sts = AcsClient("stsid", "stssecret", REGION, auto_retry=False)
c.eq("STS key without its token", (error_of(DescribeSecurityGroupsRequest(), sts) or (0, ""))[:2], (400, "MissingSecurityToken"))

calls = admin(endpoint, "GET", "/_sim/calls")
c.true("every call arrived as POST with params in the query", all(x["method"] == "POST" for x in calls))
c.true("the legacy core SDK signs RPC V1", all(x["signature"] == "V1" for x in calls))
c.eq("call log: one effective write, one replay",
     [(x["effective"], x["replayed"]) for x in calls if x["action"] == "ModifySecurityGroupPolicy" and x["status"] == 200],
     [(True, False), (False, True)])
c.finish()
