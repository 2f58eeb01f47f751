"""Many accounts through the official SDKs: the credentials SDK's RamRoleArn provider assumes a seeded
role at the simulator's STS, then the ECS SDKs (Tea, V3-signed; legacy, V1) use those temporary
credentials and see exactly the role's account.

Usage: sts_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT sts_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml (role acs:ram::2222222222222222:role/sgpolicy with
externalId ext-sdk-5150, and G1's id again in that account, Drop). Exits non-zero on any mismatch.

The provider always builds `https://` URLs; giving it `sts_endpoint="http://HOST:PORT"` is the one
way Tea's URL composer accepts a plain-HTTP endpoint. Nothing else is patched.
"""
import json

from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.exceptions import CredentialException
from alibabacloud_credentials.provider.ram_role_arn import RamRoleArnCredentialsProvider
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupAttributeRequest import DescribeSecurityGroupAttributeRequest
from darabonba.runtime import RuntimeOptions

from common import G1, G_ENT, REGION, Checks, admin, settings

ACCOUNT_B = "2222222222222222"
ROLE_B = "acs:ram::%s:role/sgpolicy" % ACCOUNT_B
EXTERNAL_ID = "ext-sdk-5150"
G_B = G1  # the same id in account B, Drop at seed time (Accept in the default account)

endpoint, ak, secret = settings()
c = Checks("sts alibabacloud-credentials RamRoleArn")
rt = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=10000, connect_timeout=5000)


def provider(external_id=EXTERNAL_ID, role=ROLE_B):
    return RamRoleArnCredentialsProvider(
        access_key_id=ak,
        access_key_secret=secret,
        role_arn=role,
        role_session_name="sdk-session",
        external_id=external_id,
        sts_endpoint="http://" + endpoint,
    )


def error_of(fn):
    try:
        fn()
    except Exception as e:  # Tea: .status_code/.code; credentials: CredentialException with the body
        return getattr(e, "status_code", None) or getattr(e, "statusCode", None), getattr(e, "code", None), str(e)
    return None


admin(endpoint, "DELETE", "/_sim/calls")

p = provider()
creds = p.get_credentials()
c.true("temporary key issued", creds.get_access_key_id().startswith("STS."), creds.get_access_key_id())
c.true("with a security token", bool(creds.get_security_token()))

# Tea ECS client (V3 signature by default) fed by the provider itself, as an application would.
cl = Client(open_api_models.Config(
    credential=CredentialClient(provider=p), endpoint=endpoint, protocol="http", region_id=REGION))


def attr(gid):
    req = ecs.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=gid, max_results=10)
    return cl.describe_security_group_attribute_with_options(req, rt)


c.eq("the role's account's group is readable", attr(G_B).body.inner_access_policy, "Drop")
err = error_of(lambda: attr(G_ENT)) or (0, "", "")
c.eq("a default-account group is NotFound for the role", err[:2], (404, "InvalidSecurityGroupId.NotFound"))
listed = cl.describe_security_groups_with_options(ecs.DescribeSecurityGroupsRequest(region_id=REGION), rt)
c.eq("DescribeSecurityGroups lists the role's account only",
     [g.security_group_id for g in listed.body.security_groups.security_group], [G_B])

# The legacy SDK (V1 signature, SecurityToken parameter) with the same temporary credentials.
legacy = AcsClient(region_id=REGION, credential=StsTokenCredential(
    creds.get_access_key_id(), creds.get_access_key_secret(), creds.get_security_token()), auto_retry=False)
req = DescribeSecurityGroupAttributeRequest()
req.set_SecurityGroupId(G_B)
req.set_endpoint(endpoint)
req.set_protocol_type("http")
c.eq("legacy SDK reads the role's group", json.loads(legacy.do_action_with_exception(req))["InnerAccessPolicy"], "Drop")
req = DescribeSecurityGroupAttributeRequest()
req.set_SecurityGroupId(G_ENT)
req.set_endpoint(endpoint)
req.set_protocol_type("http")
try:
    legacy.do_action_with_exception(req)
    c.eq("legacy SDK: default-account group NotFound", None, "InvalidSecurityGroupId.NotFound")
except ServerException as e:
    c.eq("legacy SDK: default-account group NotFound", e.get_error_code(), "InvalidSecurityGroupId.NotFound")

err = error_of(lambda: provider(external_id="wrong-id").get_credentials()) or (0, "", "")
c.true("wrong ExternalId refused with 403 NoPermission", "http_code: 403" in err[2] and "NoPermission" in err[2], err[2])
c.true("the refusal does not echo the external id", EXTERNAL_ID not in err[2] and "wrong-id" not in err[2], err[2])
err = error_of(lambda: provider(role="acs:ram::%s:role/missing" % ACCOUNT_B).get_credentials()) or (0, "", "")
c.true("unknown role: 404 EntityNotExist.Role", "http_code: 404" in err[2] and "EntityNotExist.Role" in err[2], err[2])

calls = admin(endpoint, "GET", "/_sim/calls")
assumes = [x for x in calls if x["action"] == "AssumeRole"]
c.true("AssumeRole calls are logged with the caller's account",
       assumes and all(x["account"] == "1000000000000001" and x["access_key_id"] == ak for x in assumes), assumes)
ecs_calls = [x for x in calls if x["action"] != "AssumeRole"]
c.true("every ECS call ran in the role's account",
       ecs_calls and all(x["account"] == ACCOUNT_B for x in ecs_calls), ecs_calls)
c.eq("the official provider sends V1 GET, the Tea client V3",
     sorted({(x["action"], x["signature"]) for x in calls if x["status"] == 200}),
     [("AssumeRole", "V1"), ("DescribeSecurityGroupAttribute", "V1"),
      ("DescribeSecurityGroupAttribute", "V3"), ("DescribeSecurityGroups", "V3")])

c.finish()
