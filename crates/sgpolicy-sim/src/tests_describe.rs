//! Tests of the two read actions: their error codes, filters, item shapes and paging.

use super::tests::{call, code, sim, Case};
use serde_json::Value;

#[tokio::test]
async fn describe_attribute_errors() {
    let s = sim();
    let a = "DescribeSecurityGroupAttribute";
    let cases: [Case; 6] = [
        (
            &[("Action", a), ("SecurityGroupId", "sg-web")],
            400,
            "MissingParameter.RegionId",
        ),
        (
            &[
                ("Action", a),
                ("RegionId", "cn-hangzhou"),
                ("SecurityGroupId", "sg/web"),
            ],
            400,
            "InvalidSecurityGroupId.Malformed",
        ),
        (
            &[
                ("Action", a),
                ("RegionId", "mars-1"),
                ("SecurityGroupId", "sg-web"),
            ],
            404,
            "InvalidRegionId.NotFound",
        ),
        (
            &[
                ("Action", a),
                ("RegionId", "cn-shanghai"),
                ("SecurityGroupId", "sg-db"),
            ],
            404,
            "InvalidSecurityGroupId.NotFound",
        ),
        (
            &[
                ("Action", a),
                ("RegionId", "cn-hangzhou"),
                ("SecurityGroupId", "sg-db"),
                ("MaxResults", "5"),
            ],
            400,
            "InvalidParameter.MaxResults",
        ),
        (
            &[("Action", a), ("RegionId", "cn-hangzhou")],
            400,
            "MissingSecurityGroupId",
        ),
    ];
    for (p, status, want) in cases {
        let (st, v) = call(&s, p).await;
        assert_eq!((st, code(&v)), (status, want), "{p:?}");
    }
    let (st, v) = call(
        &s,
        &[
            ("Action", a),
            ("RegionId", "cn-shanghai"),
            ("SecurityGroupId", "sg-web"),
            ("MaxResults", "10"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["InnerAccessPolicy"], "Drop");
    assert!(v["Permissions"]["Permission"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert!(v.get("NextToken").is_none());
}

fn ids(v: &Value) -> Vec<String> {
    v["SecurityGroups"]["SecurityGroup"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["SecurityGroupId"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn describe_groups_filters_and_shapes_items() {
    let s = sim();
    let d = "DescribeSecurityGroups";
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("SecurityGroupIds", r#"["sg-web","sg-ent","sg-missing"]"#),
        ],
    )
    .await;
    assert_eq!(ids(&v), ["sg-ent", "sg-web"]);
    let item = &v["SecurityGroups"]["SecurityGroup"][0];
    assert_eq!(
        (
            item["SecurityGroupType"].as_str(),
            item.get("InnerAccessPolicy")
        ),
        (Some("enterprise"), None)
    );
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod"),
            ("Tag.2.Key", "team"),
            ("Tag.2.Value", "b"),
        ],
    )
    .await;
    assert_eq!(ids(&v), ["sg-db"], "all tags must match");
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("Tag.1.Key", "env"),
        ],
    )
    .await;
    assert_eq!(ids(&v).len(), 3);
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("VpcId", "vpc-1"),
            ("SecurityGroupType", "normal"),
        ],
    )
    .await;
    assert_eq!(ids(&v), ["sg-db", "sg-web"]);
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("ServiceManaged", "true"),
        ],
    )
    .await;
    assert_eq!(ids(&v), ["sg-nat"]);
    assert_eq!(
        v["SecurityGroups"]["SecurityGroup"][0]["ServiceID"],
        1679259531804325u64
    );
    let many = serde_json::to_string(&(0..101).map(|i| format!("sg-{i}")).collect::<Vec<_>>())
        .unwrap_or_default();
    for bad in [many.as_str(), "sg-web", "[1,2]"] {
        let (st, v) = call(
            &s,
            &[
                ("Action", d),
                ("RegionId", "cn-hangzhou"),
                ("SecurityGroupIds", bad),
            ],
        )
        .await;
        assert_eq!((st, code(&v)), (400, "InvalidSecurityGroupIds.Malformed"));
    }
    let (st, v) = call(&s, &[("Action", d)]).await;
    assert_eq!((st, code(&v)), (400, "MissingParameter.RegionId"));
}

#[tokio::test]
async fn paging_ends_without_a_next_token() {
    let s = sim();
    let d = "DescribeSecurityGroups";
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut p = vec![
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("MaxResults", "2"),
        ];
        if let Some(t) = &token {
            p.push(("NextToken", t.as_str()));
        }
        let (st, v) = call(&s, &p).await;
        assert_eq!(st, 200);
        assert_eq!(v["TotalCount"], 5);
        seen.extend(ids(&v));
        token = v
            .get("NextToken")
            .and_then(|t| t.as_str())
            .map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["sg-db", "sg-ent", "sg-nat", "sg-web", "sg_under_1"]);
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("MaxResults", "5"),
        ],
    )
    .await;
    assert!(
        v.get("NextToken").is_none(),
        "exactly full last page has no token"
    );
    let (_, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("PageNumber", "3"),
            ("PageSize", "2"),
        ],
    )
    .await;
    assert_eq!(
        (ids(&v), v["PageNumber"].as_u64(), v.get("NextToken")),
        (vec!["sg_under_1".to_string()], Some(3), None)
    );
    let (st, v) = call(
        &s,
        &[
            ("Action", d),
            ("RegionId", "cn-hangzhou"),
            ("NextToken", "garbage!"),
        ],
    )
    .await;
    assert_eq!((st, code(&v)), (400, "InvalidParameter.NextToken"));
}
