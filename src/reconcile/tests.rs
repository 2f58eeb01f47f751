//! The pass against a scripted fake of the cloud (`fixtures`): every request it makes is checked
//! exactly, tokens included, without HTTP. The integration tests run the same pass over real HTTP.

use super::fixtures::{desired, ecs_error, found, normal, Answer, Request, Scripted};
use super::*;
use crate::accounts::{Unreachable, Why};
use crate::ecs::api::{DESCRIBE_ATTRIBUTE, DESCRIBE_GROUPS, MODIFY_POLICY};
use crate::ecs::{EcsError, GroupFilter};
use crate::model::{GroupKey, GroupMeta, Location, Mode, Policy::*};
use crate::token::{client_token, Attempt, TokenInput};

const HZ: &str = "cn-hangzhou";
/// 2026-11-28T04:10:05.123Z: every token below derives from it.
const NOW_MS: i64 = 1_795_839_005_123;
/// The second write of a correction, whose replay the pass detects at the fixed clock's time.
const AFTER_REPLAY: Attempt = Attempt::AfterReplay {
    detected_at_ms: NOW_MS,
};

fn sg(id: &str) -> GroupKey {
    GroupKey::new(HZ, id)
}

fn opts() -> PassOptions {
    PassOptions {
        concurrency: 1,
        verify_reads: 1,
        verify_delay: Duration::ZERO,
        clock: Clock::Fixed(NOW_MS),
        ..PassOptions::default()
    }
}

fn token(d: &Desired, key: &GroupKey, from: Policy, to: Policy, attempt: Attempt) -> String {
    client_token(&TokenInput {
        key,
        from,
        to,
        revision: &d.revision,
        observed_at: NOW_MS / 1000,
        attempt,
    })
}

fn listing(keys: &[&GroupKey]) -> Request {
    Request::DescribeGroups {
        region: keys[0].region.to_string(),
        ids: keys.iter().map(|k| k.id.to_string()).collect(),
    }
}

fn read(key: &GroupKey) -> Request {
    Request::DescribeAttribute(key.clone())
}

fn write(key: &GroupKey, policy: Policy, token: &str) -> Request {
    Request::Modify {
        key: key.clone(),
        policy,
        token: token.to_string(),
    }
}

async fn pass_on(cloud: Scripted, d: &Desired, opts: &PassOptions) -> (PassReport, Scripted) {
    let reach = Reach::of([(String::new(), Ok(cloud))]);
    let report = run_pass_on(&reach, d, opts).await;
    (report, reach_into(reach))
}

fn reach_into(reach: Reach<Scripted>) -> Scripted {
    reach
        .into_clients()
        .remove("")
        .and_then(Result::ok)
        .expect("the fake")
}

fn only(report: &PassReport) -> &GroupResult {
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    &report.results[0]
}

#[tokio::test]
async fn a_drifted_group_is_written_once_with_the_shared_token_and_verified_by_a_read() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let t = token(&d, &a, Accept, Drop, Attempt::First);
    let cloud = Scripted::new()
        .then(listing(&[&a]), found(&[(&a, normal())]))
        .then(read(&a), Answer::Policy(Accept))
        .then(write(&a, Drop, &t), Answer::RequestId("R-1"))
        .then(read(&a), Answer::Policy(Drop));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let r = only(&report);
    assert_eq!(r.outcome, Outcome::Changed);
    assert_eq!(
        (r.token.as_deref(), r.request_id.as_deref()),
        (Some(&*t), Some("R-1"))
    );
    assert!(!report.has_errors());
    assert_eq!(report.api_calls[DESCRIBE_ATTRIBUTE], 2);
    assert_eq!(report.api_calls[MODIFY_POLICY], 1);
}

#[tokio::test]
async fn a_group_in_sync_costs_one_listing_and_one_read() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&a]), found(&[(&a, normal())]))
        .then(read(&a), Answer::Policy(Drop));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    assert_eq!(only(&report).outcome, Outcome::InSync);
    assert!(!report.has_drift());
}

#[tokio::test]
async fn a_dry_run_plans_the_change_with_its_token_and_writes_nothing() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&a]), found(&[(&a, normal())]))
        .then(read(&a), Answer::Policy(Accept));
    let dry = PassOptions {
        dry_run: true,
        ..opts()
    };
    let (report, cloud) = pass_on(cloud, &d, &dry).await;
    cloud.done();
    let r = only(&report);
    assert_eq!(r.outcome, Outcome::WouldChange);
    assert_eq!(r.token, Some(token(&d, &a, Accept, Drop, Attempt::First)));
    assert!(report.has_drift());
}

#[tokio::test]
async fn a_replayed_token_is_followed_by_exactly_one_more_write_with_a_new_token() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let first = token(&d, &a, Accept, Drop, Attempt::First);
    let second = token(&d, &a, Accept, Drop, AFTER_REPLAY);
    assert_ne!(first, second);
    let cloud = Scripted::new()
        .then(listing(&[&a]), found(&[(&a, normal())]))
        .then(read(&a), Answer::Policy(Accept))
        // ECS remembers `first` from an earlier correction: success, nothing changed.
        .then(write(&a, Drop, &first), Answer::RequestId("R-OLD"))
        .then(read(&a), Answer::Policy(Accept))
        .then(write(&a, Drop, &second), Answer::RequestId("R-2"))
        .then(read(&a), Answer::Policy(Drop));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let r = only(&report);
    assert_eq!(r.outcome, Outcome::Changed);
    assert_eq!(
        (r.token.as_deref(), r.request_id.as_deref()),
        (Some(&*second), Some("R-2"))
    );
}

#[tokio::test]
async fn a_write_that_never_takes_effect_fails_after_two_writes() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let first = token(&d, &a, Accept, Drop, Attempt::First);
    let second = token(&d, &a, Accept, Drop, AFTER_REPLAY);
    let cloud = Scripted::new()
        .then(listing(&[&a]), found(&[(&a, normal())]))
        .then(read(&a), Answer::Policy(Accept))
        .then(write(&a, Drop, &first), Answer::RequestId("R-1"))
        .then(read(&a), Answer::Policy(Accept))
        .then(write(&a, Drop, &second), Answer::RequestId("R-2"))
        .then(read(&a), Answer::Policy(Accept));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let r = only(&report);
    assert_eq!(
        r.outcome,
        Outcome::Failed(Box::new(Failure::WriteNotEffective {
            writes: 2,
            to: Drop
        }))
    );
    assert!(report.has_errors());
}

#[tokio::test]
async fn a_missing_group_is_not_read_and_an_unmanageable_one_is_never_written() {
    let (gone, enterprise) = (sg("sg-gone"), sg("sg-ent"));
    let d = desired()
        .group(&gone, Drop)
        .group(&enterprise, Drop)
        .build();
    let flags = GroupMeta {
        enterprise: true,
        ..GroupMeta::default()
    };
    let cloud = Scripted::new()
        .then(
            listing(&[&enterprise, &gone]),
            found(&[(&enterprise, flags)]),
        )
        .then(read(&enterprise), Answer::Policy(Accept));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let by_id = |id: &str| {
        report
            .results
            .iter()
            .find(|r| r.entry.key.id == id)
            .expect("result")
    };
    assert_eq!(by_id("sg-gone").entry.action, Action::NotFound);
    assert!(matches!(
        by_id("sg-ent").entry.action,
        Action::Unmanageable { .. }
    ));
    assert!(report.results.iter().all(|r| r.outcome == Outcome::Error));
}

#[tokio::test]
async fn groups_known_from_an_earlier_listing_are_read_without_listing_them_again() {
    // What an earlier listing said: sg-a exists (plain), sg-ent is enterprise, sg-gone existed.
    let (a, enterprise, gone, new) = (sg("sg-a"), sg("sg-ent"), sg("sg-gone"), sg("sg-new"));
    let d = desired()
        .group(&a, Drop)
        .group(&enterprise, Drop)
        .group(&gone, Drop)
        .group(&new, Drop)
        .build();
    let flags = GroupMeta {
        enterprise: true,
        ..GroupMeta::default()
    };
    let known = [
        (&a, normal()),
        (&enterprise, flags.clone()),
        (&gone, normal()),
    ]
    .into_iter()
    .map(|(k, m)| (k.clone(), m))
    .collect();
    // Only the group nobody listed yet is listed; sg-gone was deleted since: its read says so.
    let cloud = Scripted::new()
        .then(listing(&[&new]), found(&[(&new, normal())]))
        .then(read(&a), Answer::Policy(Drop))
        .then(read(&enterprise), Answer::Policy(Accept))
        .then(
            read(&gone),
            ecs_error(DESCRIBE_ATTRIBUTE, 404, "InvalidSecurityGroupId.NotFound"),
        )
        .then(read(&new), Answer::Policy(Drop));
    let opts = PassOptions { known, ..opts() };
    let (report, cloud) = pass_on(cloud, &d, &opts).await;
    cloud.done();
    let action = |k: &GroupKey| {
        let r = report.results.iter().find(|r| r.entry.key == *k);
        r.expect("result").entry.action.clone()
    };
    assert_eq!(action(&a), Action::InSync);
    assert!(matches!(action(&enterprise), Action::Unmanageable { .. }));
    assert_eq!(action(&gone), Action::NotFound);
    assert_eq!(action(&new), Action::InSync);
    assert_eq!(report.api_calls[DESCRIBE_GROUPS], 1);
    assert_eq!(
        report.unmanageable,
        [(enterprise.clone(), flags)].into_iter().collect(),
        "the flags the daemon keeps for the next read"
    );
}

#[tokio::test]
async fn a_write_refused_for_one_group_does_not_stop_the_next() {
    let (managed, b) = (sg("sg-a"), sg("sg-b"));
    let d = desired().group(&managed, Drop).group(&b, Drop).build();
    let cloud = Scripted::new()
        .then(
            listing(&[&managed, &b]),
            found(&[(&managed, normal()), (&b, normal())]),
        )
        .then(read(&managed), Answer::Policy(Accept))
        .then(read(&b), Answer::Policy(Accept))
        .then(
            write(
                &managed,
                Drop,
                &token(&d, &managed, Accept, Drop, Attempt::First),
            ),
            ecs_error(
                MODIFY_POLICY,
                403,
                "InvalidOperation.ResourceManagedByCloudProduct",
            ),
        )
        .then(
            write(&b, Drop, &token(&d, &b, Accept, Drop, Attempt::First)),
            Answer::RequestId("R-B"),
        )
        .then(read(&b), Answer::Policy(Drop));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let (ra, rb) = (&report.results[0], &report.results[1]);
    assert_eq!(
        (ra.outcome.kind(), rb.outcome.kind()),
        (OutcomeKind::Failed, OutcomeKind::Changed)
    );
    let e = ra.failure().expect("the refusal");
    assert_eq!(e.code(), "InvalidOperation.ResourceManagedByCloudProduct");
    assert_eq!(e.request_id(), Some("R-ERR"));
    assert!(report.fatal.is_none());
}

#[tokio::test]
async fn a_fatal_error_stops_requests_to_its_account_and_the_other_account_is_corrected() {
    let own = sg("sg-own");
    let other = GroupKey::in_account("2222222222222222", HZ, "sg-other");
    let d = desired().group(&own, Drop).group(&other, Drop).build();
    // The chain's own key is refused: no further request may go to that account.
    let refused = Scripted::new().then(
        listing(&[&own]),
        ecs_error(DESCRIBE_GROUPS, 403, "Forbidden.RAM"),
    );
    let t = token(&d, &other, Accept, Drop, Attempt::First);
    let fine = Scripted::new()
        .then(listing(&[&other]), found(&[(&other, normal())]))
        .then(read(&other), Answer::Policy(Accept))
        .then(write(&other, Drop, &t), Answer::RequestId("R-1"))
        .then(read(&other), Answer::Policy(Drop));
    let reach = Reach::of([
        (String::new(), Ok(refused)),
        ("2222222222222222".to_string(), Ok(fine)),
    ]);
    let report = run_pass_on(&reach, &d, &opts()).await;
    for (_, cloud) in reach.into_clients() {
        cloud.expect("a fake").done();
    }
    let fatal = report.fatal.as_ref().expect("the fatal error");
    assert!(fatal.is_fatal_for_account());
    assert_eq!(fatal.code(), "Forbidden.RAM");
    let outcome = |k: &GroupKey| {
        report
            .results
            .iter()
            .find(|r| &r.entry.key == k)
            .map(|r| r.outcome.kind())
    };
    assert_eq!(outcome(&own), Some(OutcomeKind::Error));
    assert_eq!(outcome(&other), Some(OutcomeKind::Changed));
}

#[tokio::test]
async fn an_unreachable_account_fails_only_its_own_groups_without_a_request() {
    let own = sg("sg-own");
    let lost = GroupKey::in_account("3333333333333333", HZ, "sg-lost");
    let d = desired().group(&own, Drop).group(&lost, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&own]), found(&[(&own, normal())]))
        .then(read(&own), Answer::Policy(Drop));
    let unreachable = Unreachable {
        account: "3333333333333333".into(),
        why: Why::NoRole,
    };
    let reach = Reach::of([
        (String::new(), Ok(cloud)),
        ("3333333333333333".to_string(), Err(unreachable)),
    ]);
    let report = run_pass_on(&reach, &d, &opts()).await;
    reach_into(reach).done();
    let lost_result = report
        .results
        .iter()
        .find(|r| r.entry.key == lost)
        .expect("result");
    assert!(matches!(
        &lost_result.entry.action,
        Action::ReadFailed(f @ Failure::Account(_)) if f.is_cloud_trouble()
    ));
    assert!(
        report.fatal.is_none(),
        "unreachable is not fatal for the others"
    );
}

#[tokio::test]
async fn a_cancelled_pass_starts_no_request() {
    let a = sg("sg-a");
    let d = desired().group(&a, Drop).build();
    let cancelled = PassOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..opts()
    };
    let (report, cloud) = pass_on(Scripted::new(), &d, &cancelled).await;
    cloud.done();
    assert!(matches!(
        &only(&report).entry.action,
        Action::ReadFailed(f @ Failure::ShuttingDown { .. }) if !f.is_cloud_trouble()
    ));
}

#[tokio::test]
async fn observed_drift_is_reported_and_held_changes_are_never_written() {
    let (watched, opened) = (sg("sg-watch"), sg("sg-open"));
    let d = desired()
        .observed(&watched, Drop)
        .group(&opened, Accept)
        .build();
    let cloud = Scripted::new()
        .then(
            listing(&[&opened, &watched]),
            found(&[(&opened, normal()), (&watched, normal())]),
        )
        .then(read(&opened), Answer::Policy(Drop))
        .then(read(&watched), Answer::Policy(Accept));
    // Drop -> Accept weakens isolation: held without --allow-open.
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let outcome = |k: &GroupKey| {
        report
            .results
            .iter()
            .find(|r| &r.entry.key == k)
            .map(|r| r.outcome.clone())
    };
    assert_eq!(outcome(&watched), Some(Outcome::Observed));
    assert_eq!(outcome(&opened), Some(Outcome::Held(Hold::Open)));
}

#[tokio::test]
async fn a_selector_lists_every_page_filters_names_and_its_groups_are_reconciled() {
    let (pay, web) = (sg("sg-pay-1"), sg("sg-web-1"));
    let mut d = desired().build();
    d.selectors.push(crate::policy::Selector {
        account: String::new(),
        region: HZ.into(),
        tags: [("env".to_string(), "prod".to_string())].into(),
        vpc_id: Some("vpc-1".into()),
        name: Some("pay-*".into()),
        policy: Drop,
        mode: Mode::Enforce,
        source: Location {
            path: std::path::Path::new("sel.yaml").into(),
            line: 2,
            column: 3,
        },
    });
    let filter = GroupFilter {
        vpc_id: Some("vpc-1".into()),
        tags: vec![("env".into(), "prod".into())],
    };
    let page = |groups: &[(&GroupKey, &str)], next: Option<&str>| {
        Answer::Page(crate::ecs::GroupPage {
            groups: groups
                .iter()
                .map(|(k, name)| crate::ecs::api::ListedGroup {
                    id: k.id.to_string(),
                    meta: GroupMeta {
                        name: Some(name.to_string()),
                        ..GroupMeta::default()
                    },
                    ..Default::default()
                })
                .collect(),
            next_token: next.map(str::to_string),
        })
    };
    let list = |next: Option<&str>| Request::List {
        region: HZ.into(),
        filter: filter.clone(),
        next_token: next.map(str::to_string),
    };
    // The listing resolves the selector before anything is read; only pay-* groups are governed.
    let cloud = Scripted::new()
        .then(list(None), page(&[(&web, "web-1")], Some("p2")))
        .then(list(Some("p2")), page(&[(&pay, "pay-1")], None))
        .then(listing(&[&pay]), found(&[(&pay, normal())]))
        .then(read(&pay), Answer::Policy(Drop));
    let (report, cloud) = pass_on(cloud, &d, &opts()).await;
    cloud.done();
    let r = only(&report);
    assert_eq!(r.entry.key, pay);
    assert_eq!(r.outcome, Outcome::InSync);
    assert_eq!(r.entry.source.path.to_str(), Some("sel.yaml"));
}

/// Every group exists, in sync at `Drop`; no request is checked, so two passes may interleave. Each
/// pass's first listing waits at `meet` until the other pass has sent its own: both are in flight
/// at once, whatever the scheduler does.
#[derive(Clone)]
struct InSyncCloud {
    meet: Arc<tokio::sync::Barrier>,
    stats: Arc<CallStats>,
    tally: Option<Arc<CallStats>>,
}

impl InSyncCloud {
    fn count(&self, action: &str) {
        self.stats.record("", action, "OK");
        if let Some(t) = &self.tally {
            t.record("", action, "OK");
        }
    }
}

impl Cloud for InSyncCloud {
    fn describe_groups(
        &self,
        _region: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, GroupMeta>, EcsError>> + Send {
        let found = ids.iter().map(|id| (id.clone(), normal())).collect();
        async move {
            self.count(DESCRIBE_GROUPS);
            self.meet.wait().await;
            Ok(found)
        }
    }

    async fn describe_attribute(&self, _key: &GroupKey) -> Result<Policy, EcsError> {
        self.count(DESCRIBE_ATTRIBUTE);
        Ok(Drop)
    }

    async fn modify_policy(
        &self,
        _key: &GroupKey,
        _policy: Policy,
        _client_token: &str,
    ) -> Result<String, EcsError> {
        panic!("nothing drifted: no write")
    }

    async fn list_groups(
        &self,
        _region: &str,
        _filter: &GroupFilter,
        _next_token: Option<&str>,
    ) -> Result<crate::ecs::GroupPage, EcsError> {
        panic!("no selector: no listing")
    }

    async fn describe_rules(
        &self,
        _key: &GroupKey,
        _next_token: Option<&str>,
    ) -> Result<crate::ecs::api::RulePage, EcsError> {
        panic!("no isolation check: no rule read")
    }

    async fn describe_interfaces(
        &self,
        _region: &str,
        _vpc_id: &str,
        _next_token: Option<&str>,
    ) -> Result<crate::ecs::api::InterfacePage, EcsError> {
        panic!("no isolation check: no interface listing")
    }

    async fn describe_prefix_list(
        &self,
        _region: &str,
        _id: &str,
    ) -> Result<crate::ecs::api::PrefixList, EcsError> {
        panic!("no isolation check: no prefix list read")
    }

    fn stats(&self) -> &CallStats {
        &self.stats
    }

    fn counting_into(&self, tally: &Arc<CallStats>) -> Self {
        InSyncCloud {
            tally: Some(tally.clone()),
            ..self.clone()
        }
    }
}

#[tokio::test]
async fn two_passes_running_at_once_on_the_same_clients_each_count_only_their_own_calls() {
    let cloud = InSyncCloud {
        meet: Arc::new(tokio::sync::Barrier::new(2)),
        stats: Arc::default(),
        tally: None,
    };
    let reach = Reach::of([(String::new(), Ok(cloud.clone()))]);
    let main = desired()
        .group(&sg("sg-a"), Drop)
        .group(&sg("sg-b"), Drop)
        .group(&sg("sg-c"), Drop)
        .build();
    let targeted = desired()
        .group(&GroupKey::new("cn-shanghai", "sg-t"), Drop)
        .build();
    let opts = opts();
    let (main, targeted) = tokio::join!(
        run_pass_on(&reach, &main, &opts),
        run_pass_on(&reach, &targeted, &opts),
    );
    let calls = |n_list: u64, n_read: u64| {
        BTreeMap::from([
            (DESCRIBE_GROUPS.to_string(), n_list),
            (DESCRIBE_ATTRIBUTE.to_string(), n_read),
        ])
    };
    assert_eq!(main.api_calls, calls(1, 3), "the main pass's own calls");
    assert_eq!(
        targeted.api_calls,
        calls(1, 1),
        "the targeted pass's own calls"
    );
    assert_eq!(
        cloud.stats.total(DESCRIBE_ATTRIBUTE),
        4,
        "the shared counts (metrics) still see every call"
    );
}

#[test]
fn a_poisoned_lock_never_loses_an_accounts_fatal_error() {
    let state = Arc::new(PassState::default());
    let poisoner = state.clone();
    let _ = std::thread::spawn(move || {
        let _held = poisoner.fatal.lock();
        panic!("a task panics while holding the pass's lock");
    })
    .join();
    assert!(state.fatal.is_poisoned());
    let refused = Failure::Ecs(EcsError::Api(crate::ecs::ApiError {
        action: DESCRIBE_ATTRIBUTE,
        status: Some(403),
        code: "Forbidden.RAM".into(),
        message: "no permission".into(),
        request_id: None,
        retry_after_ms: None,
    }));
    let _ = state.note::<(), _>("", Err(refused.clone()));
    assert_eq!(state.fatal(), Some(refused.clone()), "the report shows it");
    assert_eq!(
        state.guard("", MODIFY_POLICY),
        Err(refused),
        "and no further request goes to that account"
    );
}
