//! ActionTrail on the simulator: which calls become events and what they say, LookupEvents'
//! filters, order, paging, scoping and errors, the query delay, and console flips with and without
//! an event.

use super::tests::{admin_post, call_as, call_with, code, send, Case, Key};
use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use serde_json::{json, Value};

const OTHER: &str = "2222222222222222";

const SEED: &str = r#"
accessKeys:
  - {id: testid, secret: testsecret, userName: alice}
  - {id: rootkey, secret: rootsecret}
  - {id: nolookup, secret: nolookupsecret, deniedActions: [LookupEvents]}
  - {id: prodkey, secret: prodsecret, account: "2222222222222222", userName: bob, principalId: "276000000000001"}
  - {id: stsid, secret: stssecret, securityToken: the-token, userName: "ops:night"}
roles:
  - {arn: "acs:ram::2222222222222222:role/sgpolicy"}
securityGroups:
  - {id: sg-web, region: cn-hangzhou, innerAccessPolicy: Accept}
  - {id: sg-db, region: cn-hangzhou, innerAccessPolicy: Drop}
  - {id: sg-ent, region: cn-hangzhou, innerAccessPolicy: Accept, type: enterprise}
  - {id: sg-web, region: cn-shanghai, innerAccessPolicy: Drop}
  - {id: sg-1, region: cn-hangzhou, innerAccessPolicy: Drop, account: "2222222222222222"}
actionTrail: {queryDelaySeconds: 0}
"#;

fn sim() -> Simulator {
    Simulator::new(Seed::from_yaml(SEED).expect("seed"))
}

const ALICE: Key = ("testid", "testsecret", None);
const ROOT: Key = ("rootkey", "rootsecret", None);
const DENIED: Key = ("nolookup", "nolookupsecret", None);
const BOB: Key = ("prodkey", "prodsecret", None);
const STS: Key = ("stsid", "stssecret", Some("the-token"));

fn modify<'a>(
    region: &'a str,
    id: &'a str,
    policy: &'a str,
    token: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Action", "ModifySecurityGroupPolicy"),
        ("RegionId", region),
        ("SecurityGroupId", id),
        ("InnerAccessPolicy", policy),
        ("ClientToken", token),
    ]
}

/// LookupEvents parameters: the action and its version plus `extra`.
fn lookup<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![("Action", "LookupEvents"), ("Version", "2020-07-06")];
    p.extend_from_slice(extra);
    p
}

fn event_ids(v: &Value) -> Vec<String> {
    v["Events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["eventId"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn tokens(v: &Value) -> Vec<String> {
    v["Events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    e["requestParameters"]["ClientToken"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_write_that_reaches_ecs_is_an_event_with_the_callers_identity() {
    let s = sim();
    let ua = [("user-agent", "AlibabaCloud (Linux; x86_64) sim-test/1")];
    let (st, v) = call_with(
        &s,
        ALICE,
        &ua,
        &modify("cn-hangzhou", "sg-web", "drop", "tok-1"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let rid = v["RequestId"].as_str().expect("rid").to_string();
    let events = s.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["eventName"], "ModifySecurityGroupPolicy");
    assert_eq!(e["eventType"], "ApiCall");
    assert_eq!(e["eventRW"], "Write");
    assert_eq!(e["eventVersion"], "1");
    assert_eq!(e["serviceName"], "Ecs");
    assert_eq!(e["eventSource"], "ecs.cn-hangzhou.aliyuncs.com");
    assert_eq!(e["acsRegion"], "cn-hangzhou");
    assert_eq!(e["requestId"], json!(rid), "the RequestId the caller saw");
    assert_eq!(
        e["requestParameters"],
        json!({"RegionId": "cn-hangzhou", "SecurityGroupId": "sg-web", "InnerAccessPolicy": "drop", "ClientToken": "tok-1"})
    );
    assert_eq!(e["resourceName"], "sg-web");
    assert_eq!(e["resourceType"], "ACS::ECS::SecurityGroup");
    assert_eq!(e["userIdentity"]["type"], "ram-user");
    assert_eq!(e["userIdentity"]["userName"], "alice");
    assert_eq!(e["userIdentity"]["accessKeyId"], "testid");
    assert_eq!(e["userIdentity"]["accountId"], DEFAULT_ACCOUNT);
    assert!(e["userIdentity"]["principalId"]
        .as_str()
        .is_some_and(|p| p.len() == 16));
    assert_eq!(e["userAgent"], "AlibabaCloud (Linux; x86_64) sim-test/1");
    assert_eq!(e["sourceIpAddress"], "127.0.0.1");
    assert!(e.get("errorCode").is_none(), "{e}");
    let t = e["eventTime"].as_str().expect("time");
    assert!(auth::parse_timestamp(t).is_some(), "{t}");

    // A replay is a call too: a second event, repeating the first call's RequestId.
    let (st, v) = call_as(&s, ALICE, &modify("cn-hangzhou", "sg-web", "Drop", "tok-1")).await;
    assert_eq!((st, v["RequestId"].as_str()), (200, Some(rid.as_str())));
    // A failed write is recorded with its error; it changed nothing.
    let (st, v) = call_as(&s, ROOT, &modify("cn-hangzhou", "sg-ent", "Drop", "tok-2")).await;
    assert_eq!((st, code(&v)), (404, "InvalidParameter.InnerAccessPolicy"));
    let failed_rid = v["RequestId"].as_str().expect("rid").to_string();
    // Reads, throttled and unauthenticated writes never reach ECS's trail.
    call_as(
        &s,
        ALICE,
        &[
            ("Action", "DescribeSecurityGroupAttribute"),
            ("RegionId", "cn-hangzhou"),
            ("SecurityGroupId", "sg-web"),
        ],
    )
    .await;
    s.set_faults(
        serde_json::from_str(r#"{"throttle":{"ModifySecurityGroupPolicy":{"perMinute":0}}}"#)
            .expect("cfg"),
    );
    let (st, v) = call_as(
        &s,
        ALICE,
        &modify("cn-hangzhou", "sg-db", "Accept", "tok-3"),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "Throttling.User"));
    s.set_faults(FaultConfig::default());
    let (st, _) = call_as(
        &s,
        ("testid", "wrong", None),
        &modify("cn-hangzhou", "sg-db", "Accept", "tok-4"),
    )
    .await;
    assert_eq!(st, 400);

    let events = s.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[1]["requestId"], json!(rid));
    assert_ne!(events[1]["eventId"], events[0]["eventId"]);
    let f = &events[2];
    assert_eq!(f["errorCode"], "InvalidParameter.InnerAccessPolicy");
    assert!(f["errorMessage"]
        .as_str()
        .is_some_and(|m| m.contains("enterprise")));
    assert_eq!(f["requestId"], json!(failed_rid));
    assert_eq!(
        f["userIdentity"],
        json!({"type": "root-account", "principalId": DEFAULT_ACCOUNT, "accountId": DEFAULT_ACCOUNT, "accessKeyId": "rootkey", "userName": "root"})
    );
}

#[tokio::test]
async fn sts_callers_are_assumed_roles_with_a_session_context() {
    let s = sim();
    let (st, _) = call_as(&s, STS, &modify("cn-hangzhou", "sg-db", "Accept", "s-1")).await;
    assert_eq!(st, 200);
    let (st, v) = call_as(
        &s,
        ALICE,
        &[
            ("Action", "AssumeRole"),
            ("Version", "2015-04-01"),
            ("RoleArn", "acs:ram::2222222222222222:role/sgpolicy"),
            ("RoleSessionName", "agent-7"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let c = &v["Credentials"];
    let (id, secret, token) = (
        c["AccessKeyId"].as_str().expect("id").to_string(),
        c["AccessKeySecret"].as_str().expect("secret").to_string(),
        c["SecurityToken"].as_str().expect("token").to_string(),
    );
    let assumed_id = v["AssumedRoleUser"]["AssumedRoleId"]
        .as_str()
        .expect("role id")
        .to_string();
    let session = (id.as_str(), secret.as_str(), Some(token.as_str()));
    let (st, _) = call_as(&s, session, &modify("cn-hangzhou", "sg-1", "Accept", "s-2")).await;
    assert_eq!(st, 200);
    let events = s.events();
    assert_eq!(events.len(), 2, "AssumeRole itself is not recorded");
    let seeded = &events[0]["userIdentity"];
    assert_eq!(seeded["type"], "assumed-role");
    assert_eq!(seeded["userName"], "ops:night");
    assert!(seeded["principalId"]
        .as_str()
        .is_some_and(|p| p.ends_with(":night")));
    let u = &events[1]["userIdentity"];
    assert_eq!(u["type"], "assumed-role");
    assert_eq!(u["accountId"], OTHER, "the role's account");
    assert_eq!(u["accessKeyId"], json!(id));
    assert_eq!(u["userName"], "sgpolicy:agent-7");
    assert_eq!(
        u["principalId"],
        json!(assumed_id),
        "the AssumedRoleId STS handed out"
    );
    assert_eq!(
        u["sessionContext"]["attributes"]["mfaAuthenticated"],
        "false"
    );
    assert!(u["sessionContext"]["attributes"]["creationDate"]
        .as_str()
        .and_then(auth::parse_timestamp)
        .is_some());
    // A second session of the same role has the same role id.
    let (_, v2) = call_as(
        &s,
        ALICE,
        &[
            ("Action", "AssumeRole"),
            ("Version", "2015-04-01"),
            ("RoleArn", "acs:ram::2222222222222222:role/sgpolicy"),
            ("RoleSessionName", "agent-7"),
        ],
    )
    .await;
    assert_eq!(v2["AssumedRoleUser"]["AssumedRoleId"], json!(assumed_id));
}

/// Five writes by alice (tokens w-0..w-4, alternating groups) and one by root.
async fn five_writes(s: &Simulator) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (group, policy) = match i % 2 {
            0 => ("sg-web", if i % 4 == 0 { "Drop" } else { "Accept" }),
            _ => ("sg-db", if i % 4 == 1 { "Accept" } else { "Drop" }),
        };
        let token = format!("w-{i}");
        let (st, v) = call_as(s, ALICE, &modify("cn-hangzhou", group, policy, &token)).await;
        assert_eq!(st, 200, "{v}");
        ids.push(
            s.events()
                .last()
                .map(|e| e["eventId"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default(),
        );
    }
    let (st, _) = call_as(s, ROOT, &modify("cn-hangzhou", "sg-web", "Accept", "r-0")).await;
    assert_eq!(st, 200);
    ids
}

/// LookupEvents with one condition, as alice.
async fn by(s: &Simulator, key: &str, value: String) -> Value {
    let p = [
        ("LookupAttribute.1.Key", key),
        ("LookupAttribute.1.Value", value.as_str()),
    ];
    call_as(s, ALICE, &lookup(&p)).await.1
}

#[tokio::test]
async fn lookup_events_filters_orders_and_pages_to_the_end() {
    let s = sim();
    five_writes(&s).await;
    s.flip_in_console(
        "cn-hangzhou",
        "sg-db",
        Policy::Drop,
        &ConsoleActor::default(),
    )
    .expect("group");

    // Everything, newest first by default.
    let (st, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Events"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["NextToken"], "", "one page: no next token");
    assert_eq!(v["Events"][0]["eventType"], "ConsoleOperation");
    assert!(v["RequestId"].is_string() && v["StartTime"].is_string() && v["EndTime"].is_string());

    // EventName + User, two per page, newest first: w-4 w-3 | w-2 w-1 | w-0.
    let q = [
        ("LookupAttribute.1.Key", "EventName"),
        ("LookupAttribute.1.Value", "ModifySecurityGroupPolicy"),
        ("LookupAttribute.2.Key", "User"),
        ("LookupAttribute.2.Value", "alice"),
        ("MaxResults", "2"),
    ];
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut p = lookup(&q);
        if !token.is_empty() {
            p.push(("NextToken", &token));
        }
        let (st, v) = call_as(&s, ALICE, &p).await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        seen.extend(tokens(&v));
        token = v["NextToken"]
            .as_str()
            .expect("NextToken is always there")
            .to_string();
        if token.is_empty() || pages > 5 {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["w-4", "w-3", "w-2", "w-1", "w-0"]);

    // FORWARD: oldest first.
    let (_, v) = call_as(
        &s,
        ALICE,
        &lookup(&[
            ("Direction", "FORWARD"),
            ("LookupAttribute.1.Key", "EventAccessKeyId"),
            ("LookupAttribute.1.Value", "testid"),
        ]),
    )
    .await;
    assert_eq!(tokens(&v), ["w-0", "w-1", "w-2", "w-3", "w-4"]);

    // One resource; one event by id; the console flip by type of resource and user.
    let v = by(&s, "ResourceName", "sg-web".into()).await;
    assert_eq!(tokens(&v), ["r-0", "w-4", "w-2", "w-0"]);
    let all = s.events();
    let third = all[2]["eventId"].as_str().expect("id").to_string();
    let v = by(&s, "EventId", third.clone()).await;
    assert_eq!(event_ids(&v), [third]);
    let v = by(&s, "User", "console-user".into()).await;
    assert_eq!(v["Events"][0]["eventType"], "ConsoleOperation");
    assert_eq!(v["Events"].as_array().map(Vec::len), Some(1));
    for (k, val, n) in [
        ("ServiceName", "Ecs", 7),
        ("EventRW", "Write", 7),
        ("EventRW", "Read", 0),
        ("ResourceType", "ACS::ECS::SecurityGroup", 7),
        ("EventName", "DescribeSecurityGroups", 0),
    ] {
        let v = by(&s, k, val.into()).await;
        assert_eq!(v["Events"].as_array().map(Vec::len), Some(n), "{k}={val}");
    }

    // A window that ends before the writes holds none of them.
    let (st, v) = call_as(
        &s,
        ALICE,
        &lookup(&[
            ("StartTime", "2020-10-08T11:00:00Z"),
            ("EndTime", "2020-10-15T11:00:00Z"),
        ]),
    )
    .await;
    assert_eq!((st, v["Events"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(
        (v["StartTime"].as_str(), v["EndTime"].as_str()),
        (Some("2020-10-08T11:00:00Z"), Some("2020-10-15T11:00:00Z"))
    );
}

#[tokio::test]
async fn lookup_events_refuses_bad_parameters_with_actiontrails_codes() {
    let s = sim();
    five_writes(&s).await;
    let (_, first) = call_as(&s, ALICE, &lookup(&[("MaxResults", "1")])).await;
    let other_query_token = first["NextToken"].as_str().expect("token").to_string();
    let cases: &[Case] = &[
        (
            &[("StartTime", "2026-01-01T00:00:00Z")],
            400,
            "InvalidParameterEndTime",
        ),
        (
            &[("EndTime", "2026-01-01T00:00:00Z")],
            400,
            "InvalidParameterStartTime",
        ),
        (
            &[
                ("StartTime", "2026-01-01 00:00:00"),
                ("EndTime", "2026-01-02T00:00:00Z"),
            ],
            400,
            "InvalidParameterStartTime",
        ),
        (
            &[
                ("StartTime", "2026-01-01T00:00:00Z"),
                ("EndTime", "tomorrow"),
            ],
            400,
            "InvalidParameterEndTime",
        ),
        (
            &[
                ("StartTime", "2026-01-02T00:00:00Z"),
                ("EndTime", "2026-01-01T00:00:00Z"),
            ],
            400,
            "InvalidParameterCombination",
        ),
        (
            &[
                ("StartTime", "2026-01-01T00:00:00Z"),
                ("EndTime", "2026-01-01T00:00:00Z"),
            ],
            400,
            "InvalidParameterCombination",
        ),
        (
            &[
                ("StartTime", "2026-01-01T00:00:00Z"),
                ("EndTime", "2026-02-01T00:00:00Z"),
            ],
            400,
            "InvalidParameterCombination",
        ),
        (
            &[
                ("StartTime", "2026-01-01T00:00:00Z"),
                ("EndTime", "2026-01-31T00:00:00Z"),
            ],
            200,
            "",
        ),
        (&[("MaxResults", "51")], 400, "InvalidQueryParameter"),
        (&[("MaxResults", "-1")], 400, "InvalidQueryParameter"),
        (&[("MaxResults", "ten")], 400, "InvalidQueryParameter"),
        (&[("MaxResults", "50")], 200, ""),
        (&[("MaxResults", "0")], 200, ""),
        (&[("Direction", "forward")], 400, "InvalidQueryParameter"),
        (
            &[
                ("LookupAttribute.3.Key", "EventName"),
                ("LookupAttribute.3.Value", "x"),
            ],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[
                ("LookupAttribute.1.Key", "Colour"),
                ("LookupAttribute.1.Value", "x"),
            ],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[("LookupAttribute.1.Key", "EventName")],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[("LookupAttribute.1.Value", "ModifySecurityGroupPolicy")],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[("LookupAttribute.1.Kee", "EventName")],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[("NextToken", "not-a-token")],
            400,
            "InvalidQueryParameter",
        ),
        (
            &[
                ("NextToken", other_query_token.as_str()),
                ("Direction", "FORWARD"),
            ],
            400,
            "InvalidQueryParameter",
        ),
        (&[("NextToken", other_query_token.as_str())], 200, ""),
    ];
    for (extra, status, want) in cases {
        let (st, v) = call_as(&s, ALICE, &lookup(extra)).await;
        assert_eq!((st, code(&v)), (*status, *want), "{extra:?}: {v}");
        if *status != 200 {
            assert_eq!(v["HostId"], "actiontrail.cn-hangzhou.aliyuncs.com");
            assert!(v["Recommend"]
                .as_str()
                .is_some_and(|r| r.contains("product=Actiontrail")));
        }
    }
    // Bob's account cannot continue alice's query.
    let (st, v) = call_as(
        &s,
        BOB,
        &lookup(&[("NextToken", other_query_token.as_str())]),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "InvalidQueryParameter"));

    // Judged by ActionTrail's version, not ECS's.
    let (st, v) = call_as(
        &s,
        ALICE,
        &[("Action", "LookupEvents"), ("Version", "2014-05-26")],
    )
    .await;
    assert_eq!((st, code(&v)), (400, "InvalidVersion"));
    // A key without the permission.
    let (st, v) = call_as(&s, DENIED, &lookup(&[])).await;
    assert_eq!((st, code(&v)), (403, "NoPermission"), "{v}");
    assert!(v["Message"]
        .as_str()
        .is_some_and(|m| m.contains("actiontrail:LookupEvents")));
    let (st, _) = call_as(&s, DENIED, &modify("cn-hangzhou", "sg-db", "Drop", "d-1")).await;
    assert_eq!(st, 200, "only LookupEvents is denied");

    // The documented quota (2 a second per account and region) as a fault; a minute window here
    // so the test does not depend on timing.
    s.set_faults(
        serde_json::from_str(r#"{"throttle":{"LookupEvents":{"perMinute":2}}}"#).expect("cfg"),
    );
    assert_eq!(call_as(&s, ALICE, &lookup(&[])).await.0, 200);
    assert_eq!(call_as(&s, ALICE, &lookup(&[])).await.0, 200);
    let (st, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!((st, code(&v)), (400, "Throttling.User"));
    assert_eq!(
        call_as(&s, ALICE, &lookup(&[("RegionId", "cn-shanghai")]))
            .await
            .0,
        200,
        "another region has its own quota"
    );
    assert_eq!(
        call_as(&s, BOB, &lookup(&[])).await.0,
        200,
        "another account too"
    );
    let c = s.call_counts();
    assert_eq!(c.of_action("ModifySecurityGroupPolicy"), 7, "{c:?}");
    assert_eq!(
        c.of_action("LookupEvents") + 7,
        c.total,
        "counted by name: {c:?}"
    );
}

#[tokio::test]
async fn events_are_visible_only_in_their_account_and_region() {
    let s = sim();
    five_writes(&s).await;
    let (st, _) = call_as(
        &s,
        ALICE,
        &modify("cn-shanghai", "sg-web", "Accept", "sh-1"),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call_as(&s, BOB, &modify("cn-hangzhou", "sg-1", "Accept", "b-1")).await;
    assert_eq!(st, 200);

    // No Host region, no RegionId: the default region (cn-hangzhou).
    let (_, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!(tokens(&v), ["r-0", "w-4", "w-3", "w-2", "w-1", "w-0"]);
    // RegionId, as the legacy SDK sends it.
    let (_, v) = call_as(&s, ALICE, &lookup(&[("RegionId", "cn-shanghai")])).await;
    assert_eq!(tokens(&v), ["sh-1"]);
    // The endpoint's region wins over RegionId.
    let host = [("host", "actiontrail.cn-shanghai.aliyuncs.com")];
    let (_, v) = call_with(&s, ALICE, &host, &lookup(&[("RegionId", "cn-hangzhou")])).await;
    assert_eq!(tokens(&v), ["sh-1"]);
    let c = s.calls();
    assert_eq!(
        c.last().map(|c| c.region.as_str()),
        Some("cn-shanghai"),
        "logged in the endpoint's region"
    );
    // Bob sees his account's event only, and his identity.
    let (_, v) = call_as(&s, BOB, &lookup(&[])).await;
    assert_eq!(tokens(&v), ["b-1"]);
    assert_eq!(
        v["Events"][0]["userIdentity"],
        json!({"type": "ram-user", "userName": "bob", "principalId": "276000000000001", "accountId": OTHER, "accessKeyId": "prodkey"})
    );
}

#[tokio::test]
async fn the_query_delay_hides_fresh_events_until_it_has_passed() {
    assert_eq!(
        Seed::from_yaml("")
            .expect("seed")
            .action_trail
            .query_delay_seconds,
        600,
        "the reference's ten minutes by default"
    );
    let s = sim();
    let post = admin_post;
    let (st, v) = send(
        &s,
        post("/_sim/actiontrail", r#"{"queryDelaySeconds": 3600}"#),
    )
    .await;
    assert_eq!((st, v["queryDelaySeconds"].as_u64()), (200, Some(3600)));
    assert_eq!(v["defaultRegion"], "cn-hangzhou");
    five_writes(&s).await;
    assert_eq!(s.events().len(), 6, "recorded at once");
    let (_, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!(
        v["Events"].as_array().map(Vec::len),
        Some(0),
        "not queryable yet"
    );
    let (st, _) = send(&s, post("/_sim/actiontrail", r#"{"queryDelaySeconds": 0}"#)).await;
    assert_eq!(st, 200);
    let (_, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!(v["Events"].as_array().map(Vec::len), Some(6));
    // Settings are checked.
    for bad in [
        r#"{"queryDelay": 1}"#,
        r#"{"defaultRegion": ""}"#,
        r#"{"queryDelaySeconds": -1}"#,
    ] {
        assert_eq!(
            send(&s, post("/_sim/actiontrail", bad)).await.0,
            400,
            "{bad}"
        );
    }
    let (st, v) = send(
        &s,
        post("/_sim/actiontrail", r#"{"defaultRegion": "cn-shanghai"}"#),
    )
    .await;
    assert_eq!(
        (st, v["queryDelaySeconds"].as_u64()),
        (200, Some(600)),
        "posting replaces the whole setting"
    );
}

#[tokio::test]
async fn console_flips_record_a_console_operation_unless_the_event_is_missed() {
    let s = sim();
    let post = admin_post;
    let (st, v) = send(
        &s,
        post(
            "/_sim/groups/cn-hangzhou/sg-web",
            r#"{"innerAccessPolicy": "Drop", "actor": {"userName": "mallory", "sourceIpAddress": "203.0.113.9"}}"#,
        ),
    )
    .await;
    assert_eq!(
        (st, v["innerAccessPolicy"].as_str()),
        (200, Some("Drop")),
        "{v}"
    );
    let event_id = v["eventId"].as_str().expect("eventId").to_string();
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
    let (st, v) = send(
        &s,
        post(
            "/_sim/groups/cn-hangzhou/sg-1?account=2222222222222222",
            r#"{"innerAccessPolicy": "Accept", "actor": {"type": "root-account", "userAgent": "Mozilla/5.0", "accessKeyId": "TMP.x"}}"#,
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // A missed event: the group changes, ActionTrail never hears of it.
    let (st, v) = send(
        &s,
        post(
            "/_sim/groups/cn-hangzhou/sg-db",
            r#"{"innerAccessPolicy": "Accept", "event": false}"#,
        ),
    )
    .await;
    assert_eq!((st, v.get("eventId")), (200, None));
    assert_eq!(s.policy_of("cn-hangzhou", "sg-db"), Some(Policy::Accept));
    assert!(
        s.set_policy("cn-hangzhou", "sg-db", Policy::Drop),
        "the Rust flip records nothing either"
    );

    let events = s.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let e = &events[0];
    assert_eq!(e["eventId"], json!(event_id));
    assert_eq!(e["eventType"], "ConsoleOperation");
    assert_eq!(e["eventName"], "ModifySecurityGroupPolicy");
    assert_eq!(e["acsRegion"], "cn-hangzhou");
    assert_eq!(e["userAgent"], "ecs.console.aliyun.com");
    assert_eq!(e["sourceIpAddress"], "203.0.113.9");
    assert_eq!(
        e["requestParameters"],
        json!({"RegionId": "cn-hangzhou", "SecurityGroupId": "sg-web", "InnerAccessPolicy": "Drop"})
    );
    assert_eq!(e["userIdentity"]["type"], "ram-user");
    assert_eq!(e["userIdentity"]["userName"], "mallory");
    assert_eq!(e["userIdentity"]["accountId"], DEFAULT_ACCOUNT);
    assert!(e["userIdentity"].get("accessKeyId").is_none());
    let r = &events[1];
    assert_eq!(
        r["userIdentity"],
        json!({"type": "root-account", "userName": "root", "principalId": OTHER, "accountId": OTHER, "accessKeyId": "TMP.x"})
    );
    assert_eq!(r["userAgent"], "Mozilla/5.0");
    // Queryable in its own account only.
    let (_, v) = call_as(&s, ALICE, &lookup(&[])).await;
    assert_eq!(event_ids(&v), [event_id]);

    for bad in [
        r#"{"innerAccessPolicy": "Drop", "actor": {"name": "x"}}"#,
        r#"{"innerAccessPolicy": "Drop", "actor": {"type": "robot"}}"#,
        r#"{"innerAccessPolicy": "Drop", "event": "yes"}"#,
    ] {
        assert_eq!(
            send(&s, post("/_sim/groups/cn-hangzhou/sg-web", bad))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        send(
            &s,
            post(
                "/_sim/groups/cn-hangzhou/sg-none",
                r#"{"innerAccessPolicy": "Drop"}"#
            )
        )
        .await
        .0,
        404
    );
    assert_eq!(s.events().len(), 2, "refused flips record nothing");

    let get = |uri: &str| {
        HttpRequest::get(uri.to_string())
            .body(Body::empty())
            .expect("req")
    };
    let (_, v) = send(&s, get("/_sim/events")).await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (_, v) = send(
        &s,
        HttpRequest::delete("/_sim/events")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(v["cleared"], 2);
    assert!(s.events().is_empty());
}
