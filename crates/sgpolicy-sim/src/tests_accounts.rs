//! Accounts and STS on the simulator: a key sees only its own account's groups and tokens, and
//! `AssumeRole` hands out keys of the role's account that expire.

use super::tests::{call_as, code, Key};
use super::*;

const OTHER: &str = "2222222222222222";

const SEED: &str = r#"
accessKeys:
  - {id: testid, secret: testsecret}
  - {id: prodkey, secret: prodsecret, account: "2222222222222222"}
roles:
  - {arn: "acs:ram::2222222222222222:role/sgpolicy", externalId: ext-77}
  - {arn: "acs:ram::3333333333333333:role/open"}
securityGroups:
  - {id: sg-1, region: cn-hangzhou, innerAccessPolicy: Accept}
  - {id: sg-own, region: cn-hangzhou, innerAccessPolicy: Accept}
  - {id: sg-1, region: cn-hangzhou, innerAccessPolicy: Drop, account: "2222222222222222"}
"#;

fn sim() -> Simulator {
    Simulator::new(Seed::from_yaml(SEED).expect("seed"))
}

const OWN: Key = ("testid", "testsecret", None);
const PROD: Key = ("prodkey", "prodsecret", None);

fn read(id: &'static str) -> [(&'static str, &'static str); 3] {
    [
        ("Action", "DescribeSecurityGroupAttribute"),
        ("RegionId", "cn-hangzhou"),
        ("SecurityGroupId", id),
    ]
}

fn write(
    id: &'static str,
    policy: &'static str,
    token: &'static str,
) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Action", "ModifySecurityGroupPolicy"),
        ("RegionId", "cn-hangzhou"),
        ("SecurityGroupId", id),
        ("InnerAccessPolicy", policy),
        ("ClientToken", token),
    ]
}

#[tokio::test]
async fn a_key_sees_and_changes_only_its_own_accounts_groups() {
    let s = sim();
    let (st, v) = call_as(&s, OWN, &read("sg-1")).await;
    assert_eq!((st, v["InnerAccessPolicy"].as_str()), (200, Some("Accept")));
    let (st, v) = call_as(&s, PROD, &read("sg-1")).await;
    assert_eq!(
        (st, v["InnerAccessPolicy"].as_str()),
        (200, Some("Drop")),
        "same id, other account"
    );
    let (st, v) = call_as(&s, PROD, &read("sg-own")).await;
    assert_eq!((st, code(&v)), (404, "InvalidSecurityGroupId.NotFound"));
    let (st, v) = call_as(&s, PROD, &write("sg-own", "Drop", "t-1")).await;
    assert_eq!((st, code(&v)), (404, "InvalidSecurityGroupId.NotFound"));
    assert_eq!(s.policy_of("cn-hangzhou", "sg-own"), Some(Policy::Accept));

    // Listing: only the caller's groups.
    let list = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
    ];
    let (_, v) = call_as(&s, PROD, &list).await;
    assert_eq!(v["TotalCount"], 1, "{v}");
    let (_, v) = call_as(&s, OWN, &list).await;
    assert_eq!(v["TotalCount"], 2, "{v}");

    // The same ClientToken in two accounts is two operations, each applied in its own account.
    let (st, _) = call_as(&s, PROD, &write("sg-1", "Accept", "same-token")).await;
    assert_eq!(st, 200);
    let (st, v) = call_as(&s, OWN, &write("sg-1", "Drop", "same-token")).await;
    assert_eq!(
        st, 200,
        "no IdempotentParameterMismatch across accounts: {v}"
    );
    assert_eq!(
        s.policy_of_in(OTHER, "cn-hangzhou", "sg-1"),
        Some(Policy::Accept)
    );
    assert_eq!(s.policy_of("cn-hangzhou", "sg-1"), Some(Policy::Drop));
    let accounts: Vec<String> = s.calls().iter().map(|c| c.account.clone()).collect();
    assert!(
        accounts.contains(&OTHER.to_string()) && accounts.contains(&DEFAULT_ACCOUNT.to_string())
    );
}

fn assume(arn: &'static str, external: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut p = vec![
        ("Action", "AssumeRole"),
        ("Version", "2015-04-01"),
        ("RoleArn", arn),
        ("RoleSessionName", "sgpolicy-test"),
    ];
    if let Some(e) = external {
        p.push(("ExternalId", e));
    }
    p
}

#[tokio::test]
async fn assume_role_hands_out_expiring_keys_of_the_roles_account() {
    let s = sim();
    let (st, v) = call_as(
        &s,
        OWN,
        &assume("acs:ram::2222222222222222:role/sgpolicy", Some("ext-77")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let c = &v["Credentials"];
    let (id, secret, token) = (
        c["AccessKeyId"].as_str().expect("id").to_string(),
        c["AccessKeySecret"].as_str().expect("secret").to_string(),
        c["SecurityToken"].as_str().expect("token").to_string(),
    );
    assert!(id.starts_with("STS."), "{id}");
    let expiration = chrono::DateTime::parse_from_rfc3339(c["Expiration"].as_str().expect("exp"))
        .expect("ISO 8601");
    let left = expiration.timestamp() - chrono::Utc::now().timestamp();
    assert!((3590..=3600).contains(&left), "default 3600 s, got {left}");
    assert_eq!(
        v["AssumedRoleUser"]["Arn"],
        "acs:ram::2222222222222222:role/sgpolicy/sgpolicy-test"
    );
    assert!(v["RequestId"].is_string());

    // The session reads the role's account, not the caller's, and needs its token.
    let session = (id.as_str(), secret.as_str(), Some(token.as_str()));
    let (st, v) = call_as(&s, session, &read("sg-1")).await;
    assert_eq!(
        (st, v["InnerAccessPolicy"].as_str()),
        (200, Some("Drop")),
        "{v}"
    );
    let (st, v) = call_as(&s, session, &read("sg-own")).await;
    assert_eq!((st, code(&v)), (404, "InvalidSecurityGroupId.NotFound"));
    let (st, v) = call_as(&s, (id.as_str(), secret.as_str(), None), &read("sg-1")).await;
    assert_eq!((st, code(&v)), (400, "MissingSecurityToken"), "{v}");

    // Expired sessions are refused.
    s.state().keys.get_mut(&id).expect("session").expires_at = Some(0);
    let (st, v) = call_as(&s, session, &read("sg-1")).await;
    assert_eq!((st, code(&v)), (400, "InvalidSecurityToken.Expired"), "{v}");
}

#[tokio::test]
async fn assume_role_refuses_unknown_roles_and_wrong_external_ids() {
    let s = sim();
    let arn = "acs:ram::2222222222222222:role/sgpolicy";
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: [Case; 6] = [
        (assume(arn, None), 403, "NoPermission"),
        (assume(arn, Some("ext-78")), 403, "NoPermission"),
        (
            assume("acs:ram::2222222222222222:role/nope", None),
            404,
            "EntityNotExist.Role",
        ),
        (
            assume("arn:aws:iam::1:role/x", None),
            400,
            "InvalidParameter.RoleArn",
        ),
        (
            [
                assume("acs:ram::3333333333333333:role/open", None),
                vec![("DurationSeconds", "600")],
            ]
            .concat(),
            400,
            "InvalidParameter.DurationSeconds",
        ),
        (
            [
                assume("acs:ram::3333333333333333:role/open", None),
                vec![("Version", "2014-05-26")],
            ]
            .concat(),
            400,
            "InvalidVersion",
        ),
    ];
    for (params, status, want) in cases {
        let (st, v) = call_as(&s, OWN, &params).await;
        assert_eq!((st, code(&v)), (status, want), "{params:?}: {v}");
        assert!(
            !v.to_string().contains("ext-7"),
            "the external id is never echoed: {v}"
        );
    }
    // A role without an external id needs none; the issued key belongs to its account.
    let (st, v) = call_as(
        &s,
        OWN,
        &assume("acs:ram::3333333333333333:role/open", Some("anything")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["Credentials"]["AccessKeyId"].as_str().expect("id");
    assert_eq!(s.state().keys[id].account, "3333333333333333");
    // Every AssumeRole is logged with the caller's account.
    let logged: Vec<_> = s
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole")
        .collect();
    assert_eq!(logged.len(), 7);
    assert!(logged
        .iter()
        .all(|c| c.account == DEFAULT_ACCOUNT && c.access_key_id == "testid"));
}

#[tokio::test]
async fn expired_sessions_are_forgotten_when_new_ones_are_issued() {
    let s = sim();
    let arn = "acs:ram::3333333333333333:role/open";
    let (_, v) = call_as(&s, OWN, &assume(arn, None)).await;
    let first = v["Credentials"]["AccessKeyId"]
        .as_str()
        .expect("id")
        .to_string();
    s.state().keys.get_mut(&first).expect("session").expires_at = Some(0);
    let (_, v) = call_as(&s, OWN, &assume(arn, None)).await;
    let second = v["Credentials"]["AccessKeyId"]
        .as_str()
        .expect("id")
        .to_string();
    let st = s.state();
    assert!(!st.keys.contains_key(&first), "expired session kept");
    assert!(st.keys.contains_key(&second) && st.keys.contains_key("testid"));
}
