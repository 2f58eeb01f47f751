//! The call-count formula of docs/scale.md, checked against the simulator's log with many groups in
//! several regions:
//!
//! calls per pass = Σ_regions ceil(declared_r / 100)   DescribeSecurityGroups
//!                + found + writes × verify_reads        DescribeSecurityGroupAttribute
//!                + writes                               ModifySecurityGroupPolicy
//!
//! (verify_reads is 1 when ECS shows the new policy at once, as the simulator does.)

use crate::harness::*;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::collections::BTreeMap;

/// (region, declared groups that exist, of which drifted, missing, enterprise-and-different)
const LAYOUT: [(&str, usize, usize, usize, usize); 3] = [
    ("cn-hangzhou", 130, 13, 3, 0),
    ("cn-shanghai", 100, 10, 0, 2),
    ("ap-southeast-1", 20, 2, 0, 0),
];

fn fleet() -> (Seed, Folder) {
    let mut seed = Seed::new();
    let mut file = PolicyFile::new();
    for (region, n, drifted, missing, enterprise) in LAYOUT {
        for i in 0..n {
            let id = format!("sg-{region}-{i:04}");
            seed = seed.group(region, &id, if i < drifted { Accept } else { Drop });
            file = file.group_in_region(region, &id, Drop);
        }
        for i in 0..missing {
            file = file.group_in_region(region, &format!("sg-{region}-missing-{i}"), Drop);
        }
        for i in 0..enterprise {
            let id = format!("sg-{region}-ent-{i}");
            seed = seed.group(region, &id, Accept).enterprise();
            file = file.group_in_region(region, &id, Drop);
        }
    }
    (seed, Folder::new().file("fleet.yaml", file.yaml()))
}

fn expected(writes_done: bool) -> BTreeMap<String, u64> {
    let mut describe = 0;
    let mut found = 0;
    let mut writes = 0;
    for (_, n, drifted, missing, enterprise) in LAYOUT {
        describe += (n + missing + enterprise).div_ceil(100);
        found += n + enterprise;
        writes += if writes_done { drifted } else { 0 };
    }
    let mut m = BTreeMap::new();
    m.insert("DescribeSecurityGroups".to_string(), describe as u64);
    m.insert(
        "DescribeSecurityGroupAttribute".to_string(),
        (found + writes) as u64,
    );
    if writes > 0 {
        m.insert("ModifySecurityGroupPolicy".to_string(), writes as u64);
    }
    m
}

fn logged(sim: &Sim) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for c in sim.calls() {
        *m.entry(c.action).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_makes_exactly_the_calls_the_formula_predicts() {
    let (seed, folder) = fleet();
    let sim = Sim::start(&seed).await;

    let fast = ["--max-rps", "500", "--max-changes", "1000"];
    let dry = once(&sim, &folder, &["--dry-run", "--max-rps", "500"]).await;
    assert_eq!(
        dry.code, 1,
        "missing and enterprise groups are errors: {}",
        dry.stderr
    );
    assert_eq!(logged(&sim), expected(false), "dry run");

    let before = sim.calls().len();
    let apply = once(&sim, &folder, &fast).await;
    // Missing and enterprise groups are errors; everything else is fixed.
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert_eq!(apply.json()["summary"]["changed"], 25);
    assert_eq!(apply.json()["summary"]["errors"], 5);
    let mut apply_calls = logged(&sim);
    for (action, n) in expected(false) {
        *apply_calls.entry(action).or_default() -= n;
    }
    assert_eq!(apply_calls, expected(true), "apply");
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(apply.json()["apiCalls"].clone()).expect("apiCalls");
    assert_eq!(reported, expected(true), "the report counts the same calls");
    assert!(sim.calls().len() > before);

    // Nothing drifted any more: the second apply is the dry run's reads again, with no writes.
    let again = once(&sim, &folder, &fast).await;
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(again.json()["apiCalls"].clone()).expect("apiCalls");
    assert_eq!(reported, expected(false), "second apply");
}
