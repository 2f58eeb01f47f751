"""Many accounts through the official SDKs: STS AssumeRole at the simulator, then ECS with the session.

Usage: accounts_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT accounts_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml (its `roles:` and the group of account
2222222222222222). AssumeRole is sent two ways, as the official SDKs send it: through the Tea OpenAPI
client (what alibabacloud-sts20150401 is generated on; V3 signature by default) and through the legacy
core SDK's CommonRequest (RPC signature V1). The session must then see its own account's group of the
same id with that account's policy, and not the default account's other groups.
"""
import json

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from darabonba.runtime import RuntimeOptions

from common import G1, G_ENT, REGION, Checks, settings

endpoint, ak, secret = settings()
c = Checks("accounts: STS AssumeRole + ECS")
ROLE = "acs:ram::2222222222222222:role/sgpolicy"
rt = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=10000, connect_timeout=5000)


def tea_assume(external_id, session="sdk-session"):
    """AssumeRole exactly as alibabacloud_sts20150401.Client.assume_role_with_options builds it."""
    cfg = open_api_models.Config(access_key_id=ak, access_key_secret=secret, endpoint=endpoint, protocol="http")
    query = {"RoleArn": ROLE, "RoleSessionName": session, "DurationSeconds": "3600"}
    if external_id is not None:
        query["ExternalId"] = external_id
    params = open_api_models.Params(
        action="AssumeRole", version="2015-04-01", protocol="HTTPS", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    req = open_api_models.OpenApiRequest(query=query)
    return OpenApiClient(cfg).call_api(params, req, rt)["body"]


def legacy_assume(external_id):
    client = AcsClient(ak, secret, REGION, auto_retry=False)
    r = CommonRequest(domain=endpoint, version="2015-04-01", action_name="AssumeRole")
    r.set_protocol_type("http")
    r.set_method("POST")
    r.add_query_param("RoleArn", ROLE)
    r.add_query_param("RoleSessionName", "legacy-session")
    r.add_query_param("ExternalId", external_id)
    return json.loads(client.do_action_with_exception(r))


def ecs_client(creds):
    cfg = open_api_models.Config(
        access_key_id=creds["AccessKeyId"], access_key_secret=creds["AccessKeySecret"],
        security_token=creds["SecurityToken"], endpoint=endpoint, protocol="http", region_id=REGION,
    )
    return EcsClient(cfg)


def error_code(fn):
    try:
        fn()
    except ServerException as e:
        return e.get_error_code()
    except Exception as e:  # Tea SDK exceptions carry .code
        return getattr(e, "code", repr(e))
    return None


body = tea_assume("ext-sdk-5150")
creds = body["Credentials"]
c.true("Tea AssumeRole returns an STS key", creds["AccessKeyId"].startswith("STS."), creds["AccessKeyId"])
c.eq("AssumedRoleUser.Arn", body["AssumedRoleUser"]["Arn"], ROLE + "/sdk-session")
c.true("Expiration is ISO 8601 UTC", creds["Expiration"].endswith("Z") and "T" in creds["Expiration"])

prod = ecs_client(creds)
attr = prod.describe_security_group_attribute_with_options(
    ecs.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=G1, max_results=10), rt)
c.eq("the session reads its own account's group of the same id", attr.body.inner_access_policy, "Drop")
listing = prod.describe_security_groups_with_options(ecs.DescribeSecurityGroupsRequest(region_id=REGION), rt)
c.eq("the session lists only its account's groups",
     [g.security_group_id for g in listing.body.security_groups.security_group], [G1])
c.eq("another account's group is not found", error_code(lambda: prod.describe_security_group_attribute_with_options(
    ecs.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=G_ENT), rt)),
    "InvalidSecurityGroupId.NotFound")
prod.modify_security_group_policy_with_options(ecs.ModifySecurityGroupPolicyRequest(
    region_id=REGION, security_group_id=G1, inner_access_policy="Accept", client_token="sdk-accounts-1"), rt)
again = prod.describe_security_group_attribute_with_options(
    ecs.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=G1), rt)
c.eq("the session's write lands in its account", again.body.inner_access_policy, "Accept")

no_token = dict(creds, SecurityToken="")
c.eq("the session key without its token is refused", error_code(
    lambda: ecs_client(no_token).describe_security_groups_with_options(
        ecs.DescribeSecurityGroupsRequest(region_id=REGION), rt)), "MissingSecurityToken")

legacy = legacy_assume("ext-sdk-5150")["Credentials"]
c.true("legacy CommonRequest AssumeRole (signature V1)", legacy["AccessKeyId"].startswith("STS."))
c.eq("wrong ExternalId", error_code(lambda: legacy_assume("wrong")), "NoPermission")
c.eq("missing ExternalId", error_code(lambda: tea_assume(None)), "NoPermission")
c.finish()
