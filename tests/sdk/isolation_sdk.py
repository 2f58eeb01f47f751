"""Drives the simulator's isolation calls through BOTH official ECS SDKs, unchanged.

Usage: isolation_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT isolation_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml (its cn-beijing isolation data). Exits
non-zero on any mismatch.

Each SDK (legacy `aliyunsdkecs` request classes, V1; Tea `alibabacloud_ecs20140526` Client, V3)
reads a group's rules page by page, lists the interfaces by token and by page number (and meets the
documented `SecurityGroupId` trap), reads a prefix list, then authorizes and revokes a rule and
lets an instance join and leave a group. Responses are parsed into the Tea SDK's models and their
types checked (Priority is a string, paging fields integers), and every write is checked as an
ActionTrail event. Every write is undone, so the script can run again against one simulator.
"""
import json
import random
import uuid

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.AuthorizeSecurityGroupRequest import AuthorizeSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.DescribePrefixListAttributesRequest import DescribePrefixListAttributesRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupAttributeRequest import DescribeSecurityGroupAttributeRequest
from aliyunsdkecs.request.v20140526.JoinSecurityGroupRequest import JoinSecurityGroupRequest
from aliyunsdkecs.request.v20140526.LeaveSecurityGroupRequest import LeaveSecurityGroupRequest
from aliyunsdkecs.request.v20140526.RevokeSecurityGroupRequest import RevokeSecurityGroupRequest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from darabonba.runtime import RuntimeOptions

from common import Checks, admin, settings

endpoint, ak, secret = settings()
c = Checks("isolation: both ECS SDKs")
REGION = "cn-beijing"
APP, DB = "sg-2zeiso0000000app", "sg-2zeiso00000000db"
PL = "pl-2zeoffice00000001"
ALL_ENIS = 12

legacy = AcsClient(ak, secret, REGION, auto_retry=False)
tea = Client(open_api_models.Config(access_key_id=ak, access_key_secret=secret, endpoint=endpoint,
                                    protocol="http", region_id=REGION))
rt = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=10000, connect_timeout=5000)


def send(req, cl=None):
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    return json.loads((cl or legacy).do_action_with_exception(req))


def legacy_error(req, cl=None):
    try:
        send(req, cl)
    except ServerException as e:
        return e.get_http_status(), e.get_error_code()
    return None


def tea_error(fn):
    try:
        fn()
    except Exception as e:
        return getattr(e, "status_code", None) or getattr(e, "statusCode", None), getattr(e, "code", None)
    return None


def req(cls, **kw):
    r = cls()
    for k, v in kw.items():
        getattr(r, "set_" + k)(v)
    return r


def events_named(name, since):
    return [e for e in admin(endpoint, "GET", "/_sim/events")[since:] if e["eventName"] == name]


# --- DescribeSecurityGroupAttribute: every rule, page by page ----------------------------------
def legacy_rules(direction):
    seen, token, pages = [], None, 0
    while pages < 10:
        kw = {"SecurityGroupId": APP, "Direction": direction, "MaxResults": 10}
        if token:
            kw["NextToken"] = token
        r = send(req(DescribeSecurityGroupAttributeRequest, **kw))
        pages += 1
        seen += r["Permissions"]["Permission"]
        token = r.get("NextToken")
        if not token:
            return seen, pages


def tea_rules(direction):
    seen, token, pages = [], None, 0
    while pages < 10:
        r = tea.describe_security_group_attribute_with_options(ecs.DescribeSecurityGroupAttributeRequest(
            region_id=REGION, security_group_id=APP, direction=direction, max_results=10, next_token=token), rt)
        pages += 1
        seen += r.body.permissions.permission
        token = r.body.next_token
        if not token:
            return seen, pages


rules, pages = legacy_rules("ingress")
c.eq("legacy: 12 ingress rules in 2 pages of MaxResults=10", (len(rules), pages), (12, 2))
ssh = rules[0]
c.eq("legacy: the self-referencing SSH rule", (ssh["SecurityGroupRuleId"], ssh["PortRange"], ssh["SourceGroupId"], ssh["Policy"]),
     ("sgr-2zessh000000001", "22/22", APP, "accept"))
rules, pages = tea_rules("ingress")
c.eq("Tea: 12 ingress rules in 2 pages", (len(rules), pages), (12, 2))
c.eq("Tea: rule ids distinct", len({r.security_group_rule_id for r in rules}), 12)
c.true("Tea: Priority parses as the model's string", all(isinstance(r.priority, str) for r in rules), [r.priority for r in rules])
c.eq("Tea: priorities as seeded", [r.priority for r in rules][:3], ["1", "10", "11"])
c.true("Tea: CreateTime and NicType are strings", all(isinstance(r.create_time, str) and r.nic_type == "intranet" for r in rules))
egress, _ = tea_rules("egress")
c.eq("Tea: the egress drop rule", [(r.direction, r.dest_cidr_ip, r.policy, r.priority) for r in egress],
     [("egress", "0.0.0.0/0", "Drop", "100")])
err = tea_error(lambda: tea.describe_security_group_attribute_with_options(ecs.DescribeSecurityGroupAttributeRequest(
    region_id=REGION, security_group_id=APP, max_results=5), rt))
c.eq("Tea: MaxResults below 10 is the API's error", err, (400, "InvalidParameter.MaxResults"))


# --- DescribeNetworkInterfaces: token paging, page numbers, the SecurityGroupId trap --------------
def legacy_enis(**kw):
    return send(req(DescribeNetworkInterfacesRequest, **kw))


def ids(sets):
    return [e["NetworkInterfaceId"] for e in sets["NetworkInterfaceSets"]["NetworkInterfaceSet"]]


seen, token, pages = [], None, 0
while pages < 10:
    kw = {"MaxResults": 10}
    if token:
        kw["NextToken"] = token
    r = legacy_enis(**kw)
    pages += 1
    seen += ids(r)
    token = r.get("NextToken")
    if not token:
        break
c.eq("legacy: every interface once, 2 token pages", (len(set(seen)), len(seen), pages), (ALL_ENIS, ALL_ENIS, 2))
r = legacy_enis(SecurityGroupId=APP)
c.eq("legacy: the SecurityGroupId filter finds the secondary interface only (the trap)", ids(r), ["eni-2zea00000000002"])
r = legacy_enis(NetworkInterfaceIds=["eni-2zeb00000000001", "eni-2zea00000000001"])
c.eq("legacy: NetworkInterfaceId.N", ids(r), ["eni-2zea00000000001", "eni-2zeb00000000001"])
c.eq("legacy: a key without the permission", legacy_error(req(DescribeNetworkInterfacesRequest),
                                                          AcsClient("noeni", "noenisecret", REGION, auto_retry=False)),
     (403, "Forbidden.RAM"))

seen, token, pages, body = [], None, 0, None
while pages < 10:
    r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
        region_id=REGION, vpc_id="vpc-2zeiso00000000000001", max_results=10, next_token=token), rt)
    body = r.body
    pages += 1
    seen += [e.network_interface_id for e in body.network_interface_sets.network_interface_set]
    token = body.next_token
    if not token:
        break
c.eq("Tea: a VPC's interfaces in 2 token pages", (len(set(seen)), pages), (ALL_ENIS, 2))
c.true("Tea: TotalCount is an integer", isinstance(body.total_count, int) and body.total_count == ALL_ENIS, body.total_count)
c.eq("Tea: the last page's NextToken is empty", body.next_token, "")
sizes, total = [], None
for n in (1, 2, 3):
    r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
        region_id=REGION, page_number=n, page_size=5), rt).body
    sizes.append(len(r.network_interface_sets.network_interface_set))
    total = (r.total_count, r.page_number, r.page_size)
c.eq("Tea: PageNumber/PageSize pages", sizes, [5, 5, 2])
c.true("Tea: page fields are integers", all(isinstance(x, int) for x in total), total)
r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
    region_id=REGION, network_interface_id=["eni-2zea00000000001"]), rt).body
e = r.network_interface_sets.network_interface_set[0]
c.eq("Tea: the interface's fields", (e.type, e.instance_id, e.vpc_id, e.status, e.private_ip_address),
     ("Primary", "i-2zea0000000001", "vpc-2zeiso00000000000001", "InUse", "10.0.0.1"))
c.eq("Tea: PrivateIpSets", [(p.private_ip_address, p.primary) for p in e.private_ip_sets.private_ip_set],
     [("10.0.0.1", True), ("10.0.0.9", False)])
c.eq("Tea: Ipv6Sets", [v.ipv_6address for v in e.ipv_6sets.ipv_6set], ["2408:4000::1"])
c.eq("Tea: SecurityGroupIds", e.security_group_ids.security_group_id, [APP])
r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
    region_id=REGION, security_group_id=DB), rt).body
c.eq("Tea: the trap: none of the 8 primary interfaces in the group, only the 2 secondary ones",
     [x.network_interface_id for x in r.network_interface_sets.network_interface_set], ["eni-2zea00000000002", "eni-2zec00000000001"])

# --- DescribePrefixListAttributes ---------------------------------------------------------------
r = send(req(DescribePrefixListAttributesRequest, PrefixListId=PL))
c.eq("legacy: prefix list entries", [x["Cidr"] for x in r["Entries"]["Entry"]], ["10.1.0.0/16", "192.168.0.0/24"])
r = tea.describe_prefix_list_attributes_with_options(ecs.DescribePrefixListAttributesRequest(region_id=REGION, prefix_list_id=PL), rt).body
c.eq("Tea: prefix list", (r.prefix_list_id, r.address_family, [x.cidr for x in r.entries.entry]),
     (PL, "IPv4", ["10.1.0.0/16", "192.168.0.0/24"]))
c.true("Tea: MaxEntries is an integer", isinstance(r.max_entries, int), r.max_entries)
err = tea_error(lambda: tea.describe_prefix_list_attributes_with_options(
    ecs.DescribePrefixListAttributesRequest(region_id=REGION, prefix_list_id="pl-2zegone0000000001"), rt))
c.eq("Tea: an unknown prefix list", err, (404, "InvalidPrefixListId.NotFound"))

# --- Writes: Authorize / Revoke / Join / Leave, each an ActionTrail event -----------------------
since = len(admin(endpoint, "GET", "/_sim/events"))
port = "%d/%d" % ((random.randint(20000, 60000),) * 2)
before = len(tea_rules("ingress")[0])
send(req(AuthorizeSecurityGroupRequest, SecurityGroupId=APP, IpProtocol="TCP", PortRange=port, SourceGroupId=APP,
         Priority="3", Description="legacy flat form"))
rules = tea_rules("ingress")[0]
c.eq("legacy flat Authorize adds one rule", len(rules), before + 1)
added = [r for r in rules if r.port_range == port][0]
c.eq("it reads back as sent", (added.source_group_id, added.priority, added.description), (APP, "3", "legacy flat form"))
send(req(AuthorizeSecurityGroupRequest, SecurityGroupId=APP, IpProtocol="TCP", PortRange=port, SourceGroupId=APP, Priority="3"))
c.eq("the same rule again creates nothing", len(tea_rules("ingress")[0]), before + 1)
send(req(RevokeSecurityGroupRequest, SecurityGroupId=APP, SecurityGroupRuleIds=[added.security_group_rule_id]))
c.eq("legacy Revoke by SecurityGroupRuleId.N removes it", len(tea_rules("ingress")[0]), before)

perm = ecs.AuthorizeSecurityGroupRequestPermissions(ip_protocol="UDP", port_range=port, source_cidr_ip="10.0.0.0/8",
                                                    policy="Drop", priority="1")
tea.authorize_security_group_with_options(ecs.AuthorizeSecurityGroupRequest(
    region_id=REGION, security_group_id=APP, permissions=[perm]), rt)
rules = tea_rules("ingress")[0]
c.eq("Tea Authorize (Permissions.N) adds the drop rule",
     [(r.ip_protocol, r.policy, r.priority) for r in rules if r.port_range == port], [("UDP", "Drop", "1")])
rperm = ecs.RevokeSecurityGroupRequestPermissions(ip_protocol="UDP", port_range=port, source_cidr_ip="10.0.0.0/8",
                                                  policy="Drop", priority="1")
tea.revoke_security_group_with_options(ecs.RevokeSecurityGroupRequest(
    region_id=REGION, security_group_id=APP, permissions=[rperm]), rt)
c.eq("Tea Revoke by its fields removes it", len(tea_rules("ingress")[0]), before)

send(req(JoinSecurityGroupRequest, SecurityGroupId=DB, InstanceId="i-2zeb0000000001"))
r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
    region_id=REGION, instance_id="i-2zeb0000000001"), rt).body
c.eq("legacy Join by InstanceId: the primary interface joins",
     r.network_interface_sets.network_interface_set[0].security_group_ids.security_group_id, [APP, DB])
err = legacy_error(req(JoinSecurityGroupRequest, SecurityGroupId=DB, InstanceId="i-2zeb0000000001"))
c.eq("legacy: joining twice", err, (403, "InvalidInstanceId.AlreadyExists"))
tea.leave_security_group_with_options(ecs.LeaveSecurityGroupRequest(
    region_id=REGION, security_group_id=DB, network_interface_id="eni-2zeb00000000001"), rt)
tea.join_security_group_with_options(ecs.JoinSecurityGroupRequest(
    region_id=REGION, security_group_id=APP, network_interface_id="eni-2zec00000000001"), rt)
err = tea_error(lambda: tea.join_security_group_with_options(ecs.JoinSecurityGroupRequest(
    region_id=REGION, security_group_id=APP, network_interface_id="eni-2zec00000000001"), rt))
c.eq("Tea: joining twice", err, (403, "InvalidNetworkInterfaceId.AlreadyExists"))
err = tea_error(lambda: tea.leave_security_group_with_options(ecs.LeaveSecurityGroupRequest(
    region_id=REGION, security_group_id=APP, network_interface_id="eni-2zeb00000000001"), rt))
c.eq("Tea: leaving the last group", err, (403, "InstanceLastSecurityGroup"))
send(req(LeaveSecurityGroupRequest, SecurityGroupId=APP, NetworkInterfaceId="eni-2zec00000000001"))
err = legacy_error(req(LeaveSecurityGroupRequest, SecurityGroupId=DB, NetworkInterfaceId="eni-2zec00000000001"))
c.eq("legacy: leaving the last group", err, (403, "InstanceLastSecurityGroup"))
r = tea.describe_network_interfaces_with_options(ecs.DescribeNetworkInterfacesRequest(
    region_id=REGION, network_interface_id=["eni-2zeb00000000001", "eni-2zec00000000001"]), rt).body
c.eq("every membership change undone", [x.security_group_ids.security_group_id for x in r.network_interface_sets.network_interface_set],
     [[APP], [DB]])

auth = events_named("AuthorizeSecurityGroup", since)
c.eq("two Authorize events per run (the repeat too), then the Tea one", len(auth), 3)
c.eq("the legacy flat form is recorded as sent", (auth[0]["requestParameters"].get("PortRange"), auth[0]["requestParameters"].get("SourceGroupId")),
     (port, APP))
c.eq("the Tea form is recorded as Permissions.1.*", auth[2]["requestParameters"].get("Permissions.1.Policy"), "Drop")
c.eq("its author", (auth[0]["userIdentity"]["type"], auth[0]["userIdentity"]["userName"]), ("ram-user", "sdk-user"))
c.eq("in the group's region", {e["acsRegion"] for e in auth}, {REGION})
revoke = events_named("RevokeSecurityGroup", since)
c.eq("two Revoke events", len(revoke), 2)
c.eq("Revoke by id is recorded with SecurityGroupRuleId.1", revoke[0]["requestParameters"].get("SecurityGroupRuleId.1"),
     added.security_group_rule_id)
joins, leaves = events_named("JoinSecurityGroup", since), events_named("LeaveSecurityGroup", since)
c.eq("Join events, the failed ones with their error", [j.get("errorCode") for j in joins],
     [None, "InvalidInstanceId.AlreadyExists", None, "InvalidNetworkInterfaceId.AlreadyExists"])
c.eq("Join names the instance", joins[0]["referencedResources"].get("ACS::ECS::Instance"), ["i-2zeb0000000001"])
c.eq("Leave events", [x.get("errorCode") for x in leaves], [None, "InstanceLastSecurityGroup", None, "InstanceLastSecurityGroup"])
c.eq("Leave names the interface", leaves[0]["referencedResources"].get("ACS::ECS::NetworkInterface"), ["eni-2zeb00000000001"])

calls = [x for x in admin(endpoint, "GET", "/_sim/calls") if x["region"] == REGION]
c.eq("both signature versions drove the new calls",
     {(x["action"], x["signature"]) for x in calls if x["action"] in ("DescribeNetworkInterfaces", "AuthorizeSecurityGroup", "JoinSecurityGroup")},
     {(a, s) for a in ("DescribeNetworkInterfaces", "AuthorizeSecurityGroup", "JoinSecurityGroup") for s in ("V1", "V3")})
counts = admin(endpoint, "GET", "/_sim/counts")["byAction"]
c.true("the new calls are counted by action",
       all(counts.get(a, 0) > 0 for a in ("DescribeNetworkInterfaces", "DescribePrefixListAttributes", "AuthorizeSecurityGroup",
                                           "RevokeSecurityGroup", "JoinSecurityGroup", "LeaveSecurityGroup")), counts)
c.finish()
