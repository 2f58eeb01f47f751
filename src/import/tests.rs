//! `import` against the scripted fake: the exact requests (listing pages, then one read per
//! manageable group), the filters, and the all-or-nothing rule.

use super::*;
use crate::ecs::api::ListedGroup;
use crate::model::Policy;
use crate::reconcile::fixtures::{ecs_error, listed, Answer, Request, Scripted};

const HZ: &str = "cn-hangzhou";

/// A listed group tagged `env=prod`.
fn group(id: &str, name: &str, vpc: &str) -> ListedGroup {
    listed(id, name, vpc, &[("env", "prod")])
}

fn page(groups: Vec<ListedGroup>, next: Option<&str>) -> Answer {
    Answer::Page(crate::ecs::GroupPage {
        groups,
        next_token: next.map(str::to_string),
    })
}

fn filter() -> GroupFilter {
    GroupFilter {
        vpc_id: None,
        tags: vec![("env".into(), "prod".into())],
    }
}

fn list(next: Option<&str>) -> Request {
    Request::List {
        region: HZ.into(),
        filter: filter(),
        next_token: next.map(str::to_string),
    }
}

fn read(id: &str) -> Request {
    Request::DescribeAttribute(GroupKey::new(HZ, id))
}

fn settings(out: &std::path::Path) -> ImportSettings {
    ImportSettings {
        regions: vec![HZ.into()],
        filter: filter(),
        name_prefix: Some("web".into()),
        account: None,
        mode: Mode::Observe,
        concurrency: 1,
        out: out.to_path_buf(),
        force: false,
    }
}

#[tokio::test]
async fn import_pages_through_the_listing_reads_each_manageable_group_once_and_writes_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut enterprise = group("sg-e", "web-ledger", "vpc-1");
    enterprise.meta.enterprise = true;
    let cloud = Scripted::new()
        .then(
            list(None),
            page(
                vec![
                    group("sg-b", "web-b", "vpc-1"),
                    group("sg-x", "db-x", "vpc-1"),
                ],
                Some("p2"),
            ),
        )
        .then(
            list(Some("p2")),
            page(
                vec![
                    group("sg-a", "web-a", "vpc-2"),
                    enterprise,
                    group("sg-gone", "web-gone", "vpc-1"),
                ],
                None,
            ),
        )
        .then(read("sg-b"), Answer::Policy(Policy::Drop))
        .then(read("sg-a"), Answer::Policy(Policy::Accept))
        .then(
            read("sg-gone"),
            ecs_error(
                "DescribeSecurityGroupAttribute",
                404,
                "InvalidSecurityGroupId.NotFound",
            ),
        );
    let mut seen = Vec::new();
    let summary = import(&cloud, &settings(dir.path()), |p| seen.push(p))
        .await
        .expect("imported");
    cloud.done();
    assert_eq!(
        (summary.declared, summary.skipped, summary.vanished),
        (2, 1, 1)
    );
    assert_eq!(
        summary.files,
        [
            dir.path().join("cn-hangzhou.vpc-1.yaml"),
            dir.path().join("cn-hangzhou.vpc-2.yaml")
        ]
    );
    let vpc1 = std::fs::read_to_string(dir.path().join("cn-hangzhou.vpc-1.yaml")).unwrap();
    assert!(
        vpc1.contains("  - id: sg-b\n    innerAccessPolicy: Drop\n    mode: observe\n"),
        "{vpc1}"
    );
    assert!(
        vpc1.contains("#   sg-e · web-ledger · env=prod · enterprise-level"),
        "{vpc1}"
    );
    assert!(!vpc1.contains("sg-x"), "the name prefix filters db-x out");
    assert!(
        !vpc1.contains("sg-gone"),
        "a group gone before its read is left out"
    );
    assert_eq!(seen.first(), Some(&Progress::Listed { groups: 4 }));
    assert_eq!(seen.last(), Some(&Progress::Read { read: 3, total: 3 }));
}

#[tokio::test]
async fn an_existing_file_stops_the_import_before_any_policy_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cn-hangzhou.vpc-1.yaml"), "mine").unwrap();
    let cloud = Scripted::new().then(
        list(None),
        page(vec![group("sg-a", "web-a", "vpc-1")], None),
    );
    let err = import(&cloud, &settings(dir.path()), |_| {})
        .await
        .expect_err("refused");
    cloud.done();
    assert!(matches!(err, ImportError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("cn-hangzhou.vpc-1.yaml"), "{err}");
}

#[tokio::test]
async fn a_policy_that_cannot_be_read_writes_nothing_and_names_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Scripted::new()
        .then(
            list(None),
            page(
                vec![
                    group("sg-a", "web-a", "vpc-1"),
                    group("sg-b", "web-b", "vpc-2"),
                ],
                None,
            ),
        )
        .then(read("sg-a"), Answer::Policy(Policy::Drop))
        .then(
            read("sg-b"),
            ecs_error("DescribeSecurityGroupAttribute", 403, "Forbidden.RAM"),
        );
    let err = import(&cloud, &settings(dir.path()), |_| {})
        .await
        .expect_err("refused");
    cloud.done();
    assert!(err.to_string().contains("cn-hangzhou/sg-b"), "{err}");
    assert!(err.to_string().contains("Forbidden.RAM"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn a_failed_listing_names_its_region() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Scripted::new().then(
        list(None),
        ecs_error("DescribeSecurityGroups", 503, "ServiceUnavailable"),
    );
    let err = import(&cloud, &settings(dir.path()), |_| {})
        .await
        .expect_err("refused");
    cloud.done();
    assert!(
        err.to_string()
            .starts_with("listing the security groups of cn-hangzhou failed"),
        "{err}"
    );
}
