//! Tests of the writes that change who can reach whom (Authorize/Revoke, Join/Leave) through the
//! signed API and through the console admin paths: their effects, errors, and the ActionTrail
//! events and EventBridge pushes they leave.

use super::tests::{admin_post, call, code, send};
use super::tests_net::net_sim;
use super::tests_push::receiver;
use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use serde_json::{json, Value};

const HZ: &str = "cn-hangzhou";

fn ports(s: &Simulator, group: &str) -> Vec<String> {
    s.rules_of(DEFAULT_ACCOUNT, HZ, group)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["Direction"].as_str().unwrap_or_default(),
                r["PortRange"].as_str().unwrap_or_default(),
                r["Policy"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn last_call_effective(s: &Simulator) -> bool {
    s.calls().last().is_some_and(|c| c.effective)
}

#[tokio::test]
async fn authorize_adds_ingress_rules_in_either_form_once() {
    let s = net_sim(0, 0);
    let auth = "AuthorizeSecurityGroup";
    let two = [
        ("Action", auth),
        ("RegionId", HZ),
        ("SecurityGroupId", "sg-db"),
        ("Permissions.1.IpProtocol", "TCP"),
        ("Permissions.1.PortRange", "3306/3306"),
        ("Permissions.1.SourceGroupId", "sg-web"),
        ("Permissions.2.IpProtocol", "ALL"),
        ("Permissions.2.PortRange", "-1/-1"),
        ("Permissions.2.SourceCidrIp", "10.0.0.0/8"),
        ("Permissions.2.Policy", "Drop"),
        ("Permissions.2.Priority", "2"),
    ];
    let (st, v) = call(&s, &two).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["RequestId"].is_string());
    assert_eq!(
        ports(&s, "sg-db"),
        ["ingress 3306/3306 accept", "ingress -1/-1 Drop"]
    );
    assert!(last_call_effective(&s));
    let (st, _) = call(&s, &two).await;
    assert_eq!(st, 200, "an identical rule again succeeds");
    assert_eq!(ports(&s, "sg-db").len(), 2, "and creates nothing");
    assert!(!last_call_effective(&s));
    let flat = [
        ("Action", auth),
        ("RegionId", HZ),
        ("SecurityGroupId", "sg-db"),
        ("IpProtocol", "UDP"),
        ("PortRange", "53/53"),
        ("SourcePrefixListId", "pl-office"),
    ];
    let (st, v) = call(&s, &flat).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ports(&s, "sg-db")[2], "ingress 53/53 accept");
    let rules = s.rules_of(DEFAULT_ACCOUNT, HZ, "sg-db").unwrap_or_default();
    let ids: std::collections::BTreeSet<_> = rules
        .iter()
        .map(|r| r["SecurityGroupRuleId"].to_string())
        .collect();
    assert_eq!(ids.len(), 3, "each rule gets its own id: {rules:?}");
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut p = vec![
            ("Action", auth),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-db"),
        ];
        p.extend_from_slice(extra);
        p
    };
    for (p, status, want) in [
        (
            base(&[
                ("IpProtocol", "TCP"),
                ("PortRange", "1/2"),
                ("SourceCidrIp", "10.0.0.0/8"),
                ("Permissions.1.IpProtocol", "TCP"),
            ]),
            400,
            "InvalidParameter.Conflict",
        ),
        (
            base(&[
                ("IpProtocol", "SCTP"),
                ("PortRange", "1/2"),
                ("SourceCidrIp", "10.0.0.0/8"),
            ]),
            400,
            "InvalidIpProtocol.Malformed",
        ),
        (
            base(&[
                ("IpProtocol", "TCP"),
                ("PortRange", "-1/-1"),
                ("SourceCidrIp", "10.0.0.0/8"),
            ]),
            400,
            "InvalidPortRange.Malformed",
        ),
        (
            base(&[
                ("IpProtocol", "TCP"),
                ("PortRange", "1/2"),
                ("SourceGroupId", "sg-gone"),
            ]),
            404,
            "InvalidSecurityGroupId.NotFound",
        ),
        (
            base(&[
                ("IpProtocol", "TCP"),
                ("PortRange", "1/2"),
                ("SourcePrefixListId", "pl-gone"),
            ]),
            404,
            "InvalidPrefixListId.NotFound",
        ),
        (
            base(&[
                ("IpProtocol", "TCP"),
                ("PortRange", "1/2"),
                ("DestCidrIp", "10.0.0.0/8"),
            ]),
            400,
            "InvalidParameter.Conflict",
        ),
        (base(&[]), 400, "MissingParameter"),
        (
            vec![
                ("Action", auth),
                ("RegionId", HZ),
                ("SecurityGroupId", "sg-nope"),
                ("IpProtocol", "ALL"),
                ("PortRange", "-1/-1"),
                ("SourceCidrIp", "10.0.0.0/8"),
            ],
            404,
            "InvalidSecurityGroupId.NotFound",
        ),
    ] {
        let (st, v) = call(&s, &p).await;
        assert_eq!((st, code(&v)), (status, want), "{p:?}");
    }
    assert_eq!(
        ports(&s, "sg-db").len(),
        3,
        "no refused call changed anything"
    );
    // Up to the documented 200 rules per group, not one more.
    for i in 0..197 {
        let port = format!("{0}/{0}", 2000 + i);
        let (st, v) = call(
            &s,
            &[
                ("Action", auth),
                ("RegionId", HZ),
                ("SecurityGroupId", "sg-db"),
                ("IpProtocol", "TCP"),
                ("PortRange", &port),
                ("SourceCidrIp", "10.0.0.0/8"),
            ],
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = call(
        &s,
        &[
            ("Action", auth),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-db"),
            ("IpProtocol", "TCP"),
            ("PortRange", "9/9"),
            ("SourceCidrIp", "10.0.0.0/8"),
        ],
    )
    .await;
    assert_eq!((st, code(&v)), (400, "AuthorizationLimitExceed"));
}

#[tokio::test]
async fn revoke_removes_the_named_ingress_rule_by_fields_or_by_id() {
    let s = net_sim(0, 0);
    let rev = "RevokeSecurityGroup";
    let before = ports(&s, "sg-web");
    let (st, v) = call(
        &s,
        &[
            ("Action", rev),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceGroupId", "sg-web"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(last_call_effective(&s));
    let after = ports(&s, "sg-web");
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(&"ingress 22/22 accept".to_string()));
    let (st, _) = call(
        &s,
        &[
            ("Action", rev),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceGroupId", "sg-web"),
        ],
    )
    .await;
    assert_eq!(
        (st, last_call_effective(&s)),
        (200, false),
        "a rule that is not there: success, nothing changed"
    );
    let (st, v) = call(
        &s,
        &[
            ("Action", rev),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            ("Permissions.1.IpProtocol", "ALL"),
            ("Permissions.1.PortRange", "-1/-1"),
            ("Permissions.1.SourcePrefixListId", "pl-office"),
            ("Permissions.1.Policy", "drop"),
            ("Permissions.1.Priority", "5"),
        ],
    )
    .await;
    assert_eq!((st, last_call_effective(&s)), (200, true), "{v}");
    let rules = s
        .rules_of(DEFAULT_ACCOUNT, HZ, "sg-web")
        .unwrap_or_default();
    let ingress = rules
        .iter()
        .find(|r| r["Direction"] == "ingress")
        .expect("one left");
    let egress = rules
        .iter()
        .find(|r| r["Direction"] == "egress")
        .expect("egress untouched");
    let id = ingress["SecurityGroupRuleId"].as_str().unwrap_or_default();
    let (st, v) = call(
        &s,
        &[
            ("Action", rev),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            (
                "SecurityGroupRuleId.1",
                egress["SecurityGroupRuleId"].as_str().unwrap_or_default(),
            ),
        ],
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (404, "InvalidSecurityGroupRuleId.NotFound"),
        "Revoke is for ingress rules"
    );
    let (st, v) = call(
        &s,
        &[
            ("Action", rev),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            ("SecurityGroupRuleId.1", id),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ports(&s, "sg-web").len(), 2, "{:?}", ports(&s, "sg-web"));
}

#[tokio::test]
async fn join_and_leave_act_on_an_instances_primary_interface_or_a_named_one() {
    let s = net_sim(0, 0);
    let groups = |eni: &str| s.groups_of(DEFAULT_ACCOUNT, HZ, eni).unwrap_or_default();
    let (st, v) = call(
        &s,
        &[
            ("Action", "JoinSecurityGroup"),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-db"),
            ("InstanceId", "i-a"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        groups("eni-a1"),
        ["sg-web", "sg-db"],
        "the instance's primary interface"
    );
    assert_eq!(
        groups("eni-a2"),
        ["sg-web", "sg-db"],
        "its secondary one is unchanged"
    );
    // Without RegionId the central endpoint finds the group's region.
    let (st, v) = call(
        &s,
        &[
            ("Action", "LeaveSecurityGroup"),
            ("SecurityGroupId", "sg-web"),
            ("NetworkInterfaceId", "eni-a2"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(groups("eni-a2"), ["sg-db"]);
    let j = |extra: &[(&'static str, &'static str)], action: &'static str| {
        let mut p = vec![("Action", action), ("RegionId", HZ)];
        p.extend_from_slice(extra);
        p
    };
    for (p, status, want) in [
        (
            j(
                &[("SecurityGroupId", "sg-db"), ("InstanceId", "i-a")],
                "JoinSecurityGroup",
            ),
            403,
            "InvalidInstanceId.AlreadyExists",
        ),
        (
            j(
                &[("SecurityGroupId", "sg-other"), ("InstanceId", "i-a")],
                "JoinSecurityGroup",
            ),
            400,
            "InvalidInstanceId.Mismatch",
        ),
        (
            j(
                &[("SecurityGroupId", "sg-db"), ("InstanceId", "i-nope")],
                "JoinSecurityGroup",
            ),
            404,
            "InvalidInstanceId.NotFound",
        ),
        (
            j(
                &[
                    ("SecurityGroupId", "sg-db"),
                    ("NetworkInterfaceId", "eni-nope"),
                ],
                "JoinSecurityGroup",
            ),
            404,
            "InvalidNetworkInterfaceId.NotFound",
        ),
        (
            j(
                &[
                    ("SecurityGroupId", "sg-db"),
                    ("InstanceId", "i-a"),
                    ("NetworkInterfaceId", "eni-a1"),
                ],
                "JoinSecurityGroup",
            ),
            400,
            "InvalidParameter.Conflict",
        ),
        (
            j(&[("SecurityGroupId", "sg-db")], "JoinSecurityGroup"),
            400,
            "MissingParameter",
        ),
        (
            j(
                &[
                    ("SecurityGroupId", "sg-web"),
                    ("NetworkInterfaceId", "eni-a2"),
                ],
                "LeaveSecurityGroup",
            ),
            404,
            "InvalidSecurityGroupAssociation.NotFound",
        ),
        (
            j(
                &[
                    ("SecurityGroupId", "sg-db"),
                    ("NetworkInterfaceId", "eni-c1"),
                ],
                "LeaveSecurityGroup",
            ),
            403,
            "InstanceLastSecurityGroup",
        ),
        (
            j(
                &[
                    ("SecurityGroupId", "sg-nope"),
                    ("NetworkInterfaceId", "eni-c1"),
                ],
                "LeaveSecurityGroup",
            ),
            404,
            "InvalidSecurityGroupId.NotFound",
        ),
    ] {
        let (st, v) = call(&s, &p).await;
        assert_eq!((st, code(&v)), (status, want), "{p:?}");
    }
    assert_eq!(
        (groups("eni-a1"), groups("eni-c1")),
        (
            vec!["sg-web".to_string(), "sg-db".into()],
            vec!["sg-db".to_string()]
        )
    );
}

#[tokio::test]
async fn every_write_is_an_actiontrail_event_with_its_author_and_is_pushed() {
    let (r, base) = receiver().await;
    let s = net_sim(0, 0);
    s.set_eventbridge(
        serde_json::from_value(json!({"targets": [{"url": format!("{base}/isolation"), "eventNames": ["AuthorizeSecurityGroup", "JoinSecurityGroup", "LeaveSecurityGroup"]}]}))
            .expect("config"),
    )
    .expect("valid");
    let writes: [&[(&str, &str)]; 4] = [
        &[
            ("Action", "AuthorizeSecurityGroup"),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-db"),
            ("Permissions.1.IpProtocol", "TCP"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.1.SourceGroupId", "sg-db"),
        ],
        &[
            ("Action", "RevokeSecurityGroup"),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-web"),
            ("SecurityGroupRuleId.1", "sgr-ssh"),
        ],
        &[
            ("Action", "JoinSecurityGroup"),
            ("SecurityGroupId", "sg-db"),
            ("InstanceId", "i-b"),
        ],
        &[
            ("Action", "LeaveSecurityGroup"),
            ("RegionId", HZ),
            ("SecurityGroupId", "sg-db"),
            ("NetworkInterfaceId", "eni-c1"),
        ],
    ];
    for p in writes {
        call(&s, p).await;
    }
    let (_, read) = call(
        &s,
        &[("Action", "DescribeNetworkInterfaces"), ("RegionId", HZ)],
    )
    .await;
    assert!(read["TotalCount"].is_u64());
    let events = s.events();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventName"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "AuthorizeSecurityGroup",
            "RevokeSecurityGroup",
            "JoinSecurityGroup",
            "LeaveSecurityGroup"
        ],
        "reads leave none"
    );
    let auth = &events[0];
    assert_eq!(auth["eventType"], "ApiCall");
    assert_eq!(
        auth["requestParameters"]["Permissions.1.SourceGroupId"], "sg-db",
        "as sent: {auth}"
    );
    assert_eq!(auth["requestParameters"]["SecurityGroupId"], "sg-db");
    assert_eq!(
        (
            &auth["userIdentity"]["type"],
            &auth["userIdentity"]["userName"]
        ),
        (&"ram-user".into(), &"alice".into())
    );
    assert_eq!(auth["resourceName"], "sg-db");
    assert!(auth.get("errorCode").is_none());
    assert_eq!(
        auth["requestId"],
        s.calls()[0].request_id,
        "the RequestId the caller saw"
    );
    let join = &events[2];
    assert_eq!(
        join["acsRegion"], HZ,
        "a Join without RegionId is recorded in its group's region"
    );
    assert_eq!(
        join["referencedResources"]["ACS::ECS::Instance"],
        json!(["i-b"])
    );
    assert_eq!(
        join["referencedResources"]["ACS::ECS::SecurityGroup"],
        json!(["sg-db"])
    );
    let leave = &events[3];
    assert_eq!(
        leave["errorCode"], "InstanceLastSecurityGroup",
        "a failed write is recorded with its error"
    );
    assert_eq!(
        leave["referencedResources"]["ACS::ECS::NetworkInterface"],
        json!(["eni-c1"])
    );
    s.deliveries_settled().await;
    let pushed: Vec<String> = r
        .got()
        .iter()
        .map(|g| {
            g.body["data"]["eventName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        pushed,
        [
            "AuthorizeSecurityGroup",
            "JoinSecurityGroup",
            "LeaveSecurityGroup"
        ],
        "the target's eventNames filter"
    );
    assert!(r.got().iter().all(|g| g.path == "/isolation"));
    assert_eq!(
        r.got()[0].body["data"],
        events[0],
        "the pushed record is the stored one"
    );
}

#[tokio::test]
async fn console_changes_through_the_admin_paths_are_console_events_unless_missed() {
    let s = net_sim(0, 0);
    let rule = r#"{"rule": {"Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22", "SourceGroupId": "sg-db"}, "actor": {"userName": "bob"}}"#;
    let (st, v) = send(&s, admin_post("/_sim/groups/cn-hangzhou/sg-db/rules", rule)).await;
    assert_eq!(st, 201, "{v}");
    let id = v["ruleId"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("sgr-"));
    let ev = s.events().last().cloned().unwrap_or(Value::Null);
    assert_eq!(
        (&ev["eventId"], &ev["eventType"], &ev["eventName"]),
        (
            &v["eventId"],
            &"ConsoleOperation".into(),
            &"AuthorizeSecurityGroup".into()
        )
    );
    assert_eq!(ev["userIdentity"]["userName"], "bob");
    assert_eq!(
        ev["requestParameters"]["Permissions.1.SourceGroupId"],
        "sg-db"
    );
    let (st, _) = send(&s, admin_post("/_sim/groups/cn-hangzhou/sg-db/rules", rule)).await;
    assert_eq!(st, 409, "the same rule twice");
    let egress = r#"{"rule": {"Direction": "egress", "IpProtocol": "ALL", "PortRange": "-1/-1", "DestGroupId": "sg-db", "Policy": "Drop"}}"#;
    let (st, v) = send(
        &s,
        admin_post("/_sim/groups/cn-hangzhou/sg-db/rules", egress),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        s.events().last().map(|e| e["eventName"].clone()),
        Some("AuthorizeSecurityGroupEgress".into())
    );
    let n = s.events().len();
    let del = HttpRequest::delete(format!("/_sim/groups/cn-hangzhou/sg-db/rules/{id}"))
        .body(Body::from(r#"{"event": false}"#))
        .expect("req");
    let (st, v) = send(&s, del).await;
    assert_eq!((st, v.get("eventId")), (200, None), "{v}");
    assert_eq!(s.events().len(), n, "a missed event");
    assert_eq!(ports(&s, "sg-db"), ["egress -1/-1 Drop"]);
    let (st, v) = send(
        &s,
        admin_post("/_sim/enis/cn-hangzhou/eni-c1/groups/sg-web", ""),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        s.events().last().map(|e| (
            e["eventName"].clone(),
            e["referencedResources"]["ACS::ECS::NetworkInterface"].clone()
        )),
        Some(("JoinSecurityGroup".into(), json!(["eni-c1"])))
    );
    let (st, _) = send(
        &s,
        admin_post("/_sim/enis/cn-hangzhou/eni-c1/groups/sg-other", ""),
    )
    .await;
    assert_eq!(st, 400, "another VPC's group");
    let leave = |eni: &str, g: &str| {
        HttpRequest::delete(format!("/_sim/enis/cn-hangzhou/{eni}/groups/{g}"))
            .body(Body::empty())
            .expect("req")
    };
    let (st, _) = send(&s, leave("eni-c1", "sg-db")).await;
    assert_eq!(st, 200);
    let (st, _) = send(&s, leave("eni-c1", "sg-web")).await;
    assert_eq!(st, 400, "never without a group");
    let (st, _) = send(&s, leave("eni-nope", "sg-web")).await;
    assert_eq!(st, 404);
    let eni = r#"{"NetworkInterfaceId": "eni-new", "region": "cn-hangzhou", "VpcId": "vpc-1", "InstanceId": "i-new", "Type": "Primary", "PrivateIpAddress": "10.0.0.50", "SecurityGroupIds": ["sg-web"]}"#;
    let (st, v) = send(&s, admin_post("/_sim/enis", eni)).await;
    assert_eq!(st, 201, "{v}");
    let (st, _) = send(&s, admin_post("/_sim/enis", eni)).await;
    assert_eq!(st, 409);
    let (_, v) = call(
        &s,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("RegionId", HZ),
            ("InstanceId", "i-new"),
        ],
    )
    .await;
    assert_eq!(
        v["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]["NetworkInterfaceId"],
        "eni-new"
    );
    let (st, v) = send(
        &s,
        HttpRequest::get("/_sim/enis")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((st, v.as_array().map(Vec::len)), (200, Some(6)));
}

#[tokio::test]
async fn malformed_parameters_to_the_new_calls_are_client_errors_never_a_crash() {
    let s = net_sim(0, 0);
    let odd: &[(&str, &str)] = &[
        ("Permissions.0.IpProtocol", "TCP"),
        ("Permissions.x", "y"),
        ("Permissions.101.IpProtocol", "TCP"),
        ("Permissions.1", "TCP"),
        ("Permissions.1.Priority", "one"),
        ("Permissions.1.PortRange", "65535/1"),
        ("SecurityGroupRuleId.0", "sgr-1"),
        ("NetworkInterfaceId.999999999999", "eni-a1"),
        ("PrivateIpAddress.-1", "10.0.0.1"),
        ("MaxResults", "99999999999999999999999"),
        ("PageSize", "0"),
        ("PageNumber", "0"),
        ("NextToken", "c2ltLXBhZ2U6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"),
        ("Direction", "sideways"),
        ("Type", "Tertiary"),
        ("InstanceId", "i-\u{0}"),
        ("SourceCidrIp", "10.0.0.0/99"),
        ("Priority", "-1"),
    ];
    for action in [
        "DescribeSecurityGroupAttribute",
        "DescribeNetworkInterfaces",
        "DescribePrefixListAttributes",
        "AuthorizeSecurityGroup",
        "RevokeSecurityGroup",
        "JoinSecurityGroup",
        "LeaveSecurityGroup",
    ] {
        for bad in odd {
            let p = [
                ("Action", action),
                ("RegionId", HZ),
                ("SecurityGroupId", "sg-web"),
                ("PrefixListId", "pl-office"),
                *bad,
            ];
            let (st, v) = call(&s, &p).await;
            assert!(
                st == 200 || (400..500).contains(&st),
                "{action} {bad:?}: {st} {v}"
            );
            if st != 200 {
                assert!(
                    !code(&v).is_empty(),
                    "{action} {bad:?}: an error names its code: {v}"
                );
            }
        }
    }
    assert_eq!(
        ports(&s, "sg-web").len(),
        5,
        "no malformed write changed the rules"
    );
}
