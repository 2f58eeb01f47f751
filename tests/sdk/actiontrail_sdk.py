"""ActionTrail through both official SDKs, unchanged: writes made with the ECS SDKs (and a console flip
through the admin path) become events that LookupEvents (2020-07-06) returns to the Tea SDK
(alibabacloud-actiontrail20200706, V3-signed) and the legacy SDK (aliyun-python-sdk-actiontrail, V1),
filtered by EventName, paged with NextToken to the end, with the record fields the reference gives.

Usage: actiontrail_sdk.py HOST:PORT [AK SECRET]   or   SIM_ENDPOINT=127.0.0.1:PORT actiontrail_sdk.py
The simulator must be seeded with tests/sdk/seed.yaml (key `testid` is RAM user `sdk-user`, key
`nolookup` lacks LookupEvents). The script sets the query delay to 0 itself and marks everything it
writes with a fresh run id, so it can run repeatedly against one simulator. Exits non-zero on any
mismatch.

Neither ActionTrail client is given a region endpoint: `endpoint="127.0.0.1:PORT"`, so the Tea client
(which sends no RegionId) queries the simulator's default region (cn-hangzhou) and the legacy client
the region it sends as RegionId.
"""
# requires: alibabacloud_actiontrail20200706 aliyunsdkactiontrail
import json
import uuid
from datetime import datetime, timedelta, timezone

from alibabacloud_actiontrail20200706 import models as at
from alibabacloud_actiontrail20200706.client import Client as TrailClient
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models
from aliyunsdkactiontrail.request.v20200706.LookupEventsRequest import LookupEventsRequest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.ModifySecurityGroupPolicyRequest import ModifySecurityGroupPolicyRequest
from darabonba.runtime import RuntimeOptions

from common import G1, G_ENT, REGION, Checks, admin, settings

ACCOUNT = "1000000000000001"
SHANGHAI = "cn-shanghai"
MODIFY = "ModifySecurityGroupPolicy"
RUN = uuid.uuid4().hex[:10]
TEA_UA = "sgpolicy-fidelity/tea-" + RUN
CONSOLE_USER = "console-" + RUN

endpoint, ak, secret = settings()
c = Checks("actiontrail alibabacloud-actiontrail20200706 + aliyun-python-sdk-actiontrail")
rt = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=10000, connect_timeout=5000)


def tea_config(ak_=ak, secret_=secret):
    return open_api_models.Config(access_key_id=ak_, access_key_secret=secret_, endpoint=endpoint,
                                  protocol="http", region_id=REGION, user_agent=TEA_UA)


def error_of(fn):
    """(HTTP status, code, request id) of the exception fn raises (Tea or legacy), or None."""
    try:
        fn()
    except ServerException as e:
        return e.get_http_status(), e.get_error_code(), e.get_request_id()
    except Exception as e:  # Tea: ClientException / ServerException / ThrottlingException
        return getattr(e, "status_code", None) or getattr(e, "statusCode", None), getattr(e, "code", None), \
            getattr(e, "request_id", None)
    return None


def send_legacy(cl, req):
    # The supported way to bypass endpoint resolution (and so never contact a real Alibaba host).
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    return json.loads(cl.do_action_with_exception(req))


ecs_tea = EcsClient(tea_config())
trail_tea = TrailClient(tea_config())
legacy = AcsClient(ak, secret, REGION, auto_retry=False)
legacy.append_user_agent("sgpolicy-fidelity", "legacy-" + RUN)
legacy_sh = AcsClient(ak, secret, SHANGHAI, auto_retry=False)


def tea_modify(gid, policy, token):
    req = ecs.ModifySecurityGroupPolicyRequest(region_id=REGION, security_group_id=gid,
                                               inner_access_policy=policy, client_token=token)
    return ecs_tea.modify_security_group_policy_with_options(req, rt).body.request_id


def legacy_modify(cl, gid, policy, token):
    m = ModifySecurityGroupPolicyRequest()
    m.set_SecurityGroupId(gid)
    m.set_InnerAccessPolicy(policy)
    m.set_ClientToken(token)
    return send_legacy(cl, m)["RequestId"]


def tea_lookup(client=trail_tea, **kw):
    attrs = [at.LookupEventsRequestLookupAttribute(key=k, value=v) for k, v in kw.pop("attrs", [])]
    req = at.LookupEventsRequest(lookup_attribute=attrs or None, **kw)
    return client.lookup_events_with_options(req, rt).body


def legacy_lookup(cl=legacy, attrs=(), **kw):
    r = LookupEventsRequest()
    if attrs:
        r.set_LookupAttributes([{"Key": k, "Value": v} for k, v in attrs])
    for k, v in kw.items():
        getattr(r, "set_" + k)(v)
    return send_legacy(cl, r)


def page_all(lookup, token_of, events_of, pages_max=50):
    """Every page of a query: (events, page sizes, the tokens seen)."""
    events, sizes, tokens, token = [], [], [], None
    while len(sizes) < pages_max:
        body = lookup(token)
        page = events_of(body)
        events += page
        sizes.append(len(page))
        token = token_of(body)
        tokens.append(token)
        if not token:
            break
    return events, sizes, tokens


def ours(events):
    """The events this run caused (by ClientToken or console actor), in the order given."""
    return [e for e in events if RUN in json.dumps(e.get("requestParameters", {}))
            or e.get("userIdentity", {}).get("userName") == CONSOLE_USER]


# --- Set up: no query delay, G1 back to Accept without an event. ---
admin(endpoint, "POST", "/_sim/actiontrail", {"queryDelaySeconds": 0})
admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept", "event": False})
admin(endpoint, "DELETE", "/_sim/calls")

# --- Writes: three with the Tea ECS SDK, one with the legacy one, one that fails, console flips. ---
tok = ["tea-%s-%d" % (RUN, i) for i in range(3)] + ["legacy-%s-3" % RUN]
rids = [tea_modify(G1, "Drop", tok[0]), tea_modify(G1, "accept", tok[1]), tea_modify(G1, "Drop", tok[2]),
        legacy_modify(legacy, G1, "Accept", tok[3])]
failed_token = "tea-%s-failed" % RUN
failed = error_of(lambda: tea_modify(G_ENT, "Drop", failed_token)) or (0, "", "")
c.eq("a write to an enterprise group fails", failed[:2], (404, "InvalidParameter.InnerAccessPolicy"))
flip = admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {
    "innerAccessPolicy": "Drop", "actor": {"userName": CONSOLE_USER, "sourceIpAddress": "203.0.113.7"}})
c.true("the console flip answers its eventId", bool(flip.get("eventId")), flip)
before_missed = len(admin(endpoint, "GET", "/_sim/events"))
admin(endpoint, "POST", "/_sim/groups/%s/%s" % (REGION, G1), {"innerAccessPolicy": "Accept", "event": False})
c.eq("a missed flip records no event", len(admin(endpoint, "GET", "/_sim/events")), before_missed)
sh_token = "legacy-%s-sh" % RUN
legacy_modify(legacy_sh, G1, "Accept", sh_token)
admin(endpoint, "POST", "/_sim/groups/%s/%s" % (SHANGHAI, G1), {"innerAccessPolicy": "Drop", "event": False})

# --- Tea SDK: EventName filter, two a page, to the end. ---
events, sizes, tokens = page_all(
    lambda t: tea_lookup(attrs=[("EventName", MODIFY)], max_results="2", next_token=t),
    lambda b: b.next_token, lambda b: b.events or [])
c.true("Tea: pages of at most 2", all(n <= 2 for n in sizes) and len(sizes) >= 3, sizes)
c.true("Tea: every page but the last hands out a NextToken", all(tokens[:-1]) and not tokens[-1], tokens)
c.eq("Tea: no event twice across pages", len({e["eventId"] for e in events}), len(events))
c.true("Tea: only ModifySecurityGroupPolicy", all(e["eventName"] == MODIFY for e in events))
c.true("Tea: newest first (BACKWARD by default)",
       [e["eventTime"] for e in events] == sorted([e["eventTime"] for e in events], reverse=True))
mine = ours(events)
c.eq("Tea: this run's events in cn-hangzhou (4 writes, 1 failed, 1 console flip)", len(mine), 6)
by_token = {e["requestParameters"].get("ClientToken"): e for e in mine}

e = by_token.get(tok[0], {})
c.eq("eventName", e.get("eventName"), MODIFY)
c.eq("eventType", e.get("eventType"), "ApiCall")
c.eq("eventRW", e.get("eventRW"), "Write")
c.eq("serviceName", e.get("serviceName"), "Ecs")
c.eq("eventVersion", e.get("eventVersion"), "1")
c.eq("eventSource", e.get("eventSource"), "ecs.cn-hangzhou.aliyuncs.com")
c.eq("acsRegion", e.get("acsRegion"), REGION)
c.eq("requestId is the one the ECS SDK got", e.get("requestId"), rids[0])
c.eq("requestParameters as sent", e.get("requestParameters"),
     {"RegionId": REGION, "SecurityGroupId": G1, "InnerAccessPolicy": "Drop", "ClientToken": tok[0]})
c.eq("resourceName / resourceType", (e.get("resourceName"), e.get("resourceType")), (G1, "ACS::ECS::SecurityGroup"))
u = e.get("userIdentity", {})
c.eq("userIdentity: RAM user, key, account",
     (u.get("type"), u.get("userName"), u.get("accessKeyId"), u.get("accountId")), ("ram-user", "sdk-user", ak, ACCOUNT))
c.true("userIdentity.principalId", bool(u.get("principalId")), u)
c.true("userAgent is the Tea SDK's", e.get("userAgent", "").startswith("AlibabaCloud") and TEA_UA in e.get("userAgent", ""),
       e.get("userAgent"))
c.eq("sourceIpAddress is the client's", e.get("sourceIpAddress"), "127.0.0.1")
c.true("eventTime is UTC, second precision", bool(datetime.strptime(e.get("eventTime", ""), "%Y-%m-%dT%H:%M:%SZ")))
c.true("no errorCode on success", "errorCode" not in e and "errorMessage" not in e, e)
c.eq("parameters keep the case they were sent in", by_token.get(tok[1], {}).get("requestParameters", {}).get(
    "InnerAccessPolicy"), "accept")
le = by_token.get(tok[3], {})
c.eq("the legacy write's RequestId", le.get("requestId"), rids[3])
c.true("the legacy write's userAgent", ("legacy-" + RUN) in le.get("userAgent", ""), le.get("userAgent"))
f = by_token.get(failed_token, {})
c.eq("a failed write is recorded with its error", f.get("errorCode"), "InvalidParameter.InnerAccessPolicy")
c.true("... and its message", bool(f.get("errorMessage")), f)
c.eq("... and the RequestId of the error", f.get("requestId"), failed[2])
con = [x for x in mine if x.get("eventType") == "ConsoleOperation"]
c.eq("one console flip recorded", len(con), 1)
con = con[0] if con else {}
c.eq("console flip: eventId answered by the admin path", con.get("eventId"), flip.get("eventId"))
c.eq("console flip: actor, address, console user agent",
     (con.get("userIdentity", {}).get("userName"), con.get("sourceIpAddress"), con.get("userAgent")),
     (CONSOLE_USER, "203.0.113.7", "ecs.console.aliyun.com"))

# Other filters, an explicit window, FORWARD.
now = datetime.now(timezone.utc)
fmt = "%Y-%m-%dT%H:%M:%SZ"
one = tea_lookup(attrs=[("EventId", e.get("eventId", "-"))])
c.eq("Tea: EventId finds exactly that event", [x["eventId"] for x in one.events or []], [e.get("eventId")])
two = tea_lookup(attrs=[("EventName", MODIFY), ("User", CONSOLE_USER)])
c.eq("Tea: two conditions (EventName and User)", [x["eventId"] for x in two.events or []], [flip.get("eventId")])
fwd = tea_lookup(attrs=[("EventName", MODIFY)], direction="FORWARD", max_results="50",
                 start_time=(now - timedelta(hours=1)).strftime(fmt), end_time=(now + timedelta(minutes=1)).strftime(fmt))
c.eq("Tea: FORWARD in a window: the same events, oldest first", [x["eventId"] for x in ours(fwd.events or [])],
     [x["eventId"] for x in reversed(mine)])

# Errors through the Tea SDK.
err = error_of(lambda: tea_lookup(start_time=now.strftime(fmt), end_time=(now - timedelta(hours=1)).strftime(fmt)))
c.eq("Tea: end before start", (err or (0, ""))[:2], (400, "InvalidParameterCombination"))
err = error_of(lambda: tea_lookup(max_results="51"))
c.eq("Tea: MaxResults over 50", (err or (0, ""))[:2], (400, "InvalidQueryParameter"))
err = error_of(lambda: tea_lookup(start_time=now.strftime(fmt)))
c.eq("Tea: StartTime without EndTime", (err or (0, ""))[:2], (400, "InvalidParameterEndTime"))
err = error_of(lambda: tea_lookup(client=TrailClient(tea_config("nolookup", "nolookupsecret"))))
c.eq("Tea: a key without the permission", (err or (0, ""))[:2], (403, "NoPermission"))
admin(endpoint, "POST", "/_sim/faults", {"throttle": {"LookupEvents": {"perMinute": 2}}})
codes = [(error_of(lambda: tea_lookup()) or (200, "ok"))[:2] for _ in range(3)]
admin(endpoint, "POST", "/_sim/faults", {})
c.eq("Tea: the quota throttles the third call", codes, [(200, "ok"), (200, "ok"), (400, "Throttling.User")])

# --- Legacy SDK: the same query, paged to the end; another region; errors. ---
levents, lsizes, ltokens = page_all(
    lambda t: legacy_lookup(attrs=[("EventName", MODIFY)], MaxResults="2", **({"NextToken": t} if t else {})),
    lambda b: b.get("NextToken"), lambda b: b.get("Events", []))
c.true("legacy: pages of at most 2, to an empty NextToken",
       all(n <= 2 for n in lsizes) and all(ltokens[:-1]) and not ltokens[-1], (lsizes, ltokens))
c.eq("legacy: the same events as Tea", [x["eventId"] for x in ours(levents)], [x["eventId"] for x in mine])
lm = {x["requestParameters"].get("ClientToken"): x for x in ours(levents)}.get(tok[0], {})
c.eq("legacy: the same record", lm, e)
sh = legacy_lookup(legacy_sh, attrs=[("EventName", MODIFY)])
c.eq("legacy: cn-shanghai holds only the cn-shanghai write of this run",
     [x["requestParameters"].get("ClientToken") for x in ours(sh.get("Events", []))], [sh_token])
c.eq("legacy: and its acsRegion", [x["acsRegion"] for x in ours(sh.get("Events", []))], [SHANGHAI])
err = error_of(lambda: legacy_lookup(StartTime=now.strftime(fmt), EndTime=now.strftime(fmt)))
c.eq("legacy: an empty time range", (err or (0, ""))[:2], (400, "InvalidParameterCombination"))
err = error_of(lambda: legacy_lookup(AcsClient("nolookup", "nolookupsecret", REGION, auto_retry=False)))
c.eq("legacy: a key without the permission", (err or (0, ""))[:2], (403, "NoPermission"))
err = error_of(lambda: legacy_lookup(NextToken="bm90IG91cnM="))
c.eq("legacy: a NextToken this query did not hand out", (err or (0, ""))[:2], (400, "InvalidQueryParameter"))

calls = [x for x in admin(endpoint, "GET", "/_sim/calls") if x["action"] == "LookupEvents"]
c.eq("LookupEvents was signed V3 by Tea and V1 by the legacy SDK", sorted({x["signature"] for x in calls}), ["V1", "V3"])
c.eq("... and logged in the region each queried", sorted({x["region"] for x in calls}), [REGION, SHANGHAI])
c.finish()
