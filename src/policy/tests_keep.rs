//! Tests of `load_folder_keeping`, the shard's load: it keeps only the buckets it is asked to, yet
//! reports what a whole load reports (revision, census, every error at its place), and the loads of
//! all parts of a partition together are the whole load.

use super::tests::folder;
use super::*;

/// Which buckets a load keeps.
type Keep = dyn Fn(&str, &str) -> bool;

const PROD: &str = "acs:ram::2222222222222222:role/sgpolicy";

/// Four buckets of groups (the chain's cn-a, cn-b, cn-c and the prod account's cn-a), one more named
/// only by a selector (prod's cn-d), a bucket spread over two files and a file spread over two
/// buckets, a group declared twice alike, and an observed group.
fn estate() -> tempfile::TempDir {
    let many: String = (0..40)
        .map(|i| format!("  - {{id: sg-c{i:02}, innerAccessPolicy: Drop}}\n"))
        .collect();
    let many = format!("region: cn-c\ngroups:\n{many}");
    let prod = format!(
        "account: {{roleArn: \"{PROD}\"}}\nregion: cn-a\ngroups:\n  - {{id: sg-1, innerAccessPolicy: Accept}}\n  - {{id: sg-9, innerAccessPolicy: Drop, mode: observe}}\nselectors:\n  - {{region: cn-d, match: {{tags: {{env: prod}}}}, innerAccessPolicy: Drop}}\n"
    );
    folder(&[
        (
            "own.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n  - {id: sg-2, innerAccessPolicy: Accept}\n  - {id: sg-3, region: cn-b, innerAccessPolicy: Drop}\nselectors:\n  - {match: {name: \"pay-*\"}, innerAccessPolicy: Drop}\n",
        ),
        ("prod.yaml", prod.as_bytes()),
        (
            "more/own-b.yaml",
            b"region: cn-b\ngroups:\n  - {id: sg-4, innerAccessPolicy: Accept}\n  - {id: sg-3, innerAccessPolicy: Drop}\n",
        ),
        ("z.yaml", many.as_bytes()),
    ])
}

/// Every bucket the estate names, in key order.
fn buckets() -> Vec<(&'static str, &'static str)> {
    let prod = "2222222222222222";
    vec![
        ("", "cn-a"),
        ("", "cn-b"),
        ("", "cn-c"),
        (prod, "cn-a"),
        (prod, "cn-d"),
    ]
}

/// Part `k` of `n`: the buckets whose place in [`buckets`] is `k` modulo `n` (an unknown bucket in
/// part 0), so every bucket is in exactly one part, as with shards.
fn part(k: usize, n: usize) -> impl Fn(&str, &str) -> bool {
    move |account: &str, region: &str| {
        let at = buckets()
            .iter()
            .position(|b| *b == (account, region))
            .unwrap_or(0);
        at % n == k
    }
}

fn load_part(dir: &Path, keep: &dyn Fn(&str, &str) -> bool) -> Result<Loaded, Vec<LoadError>> {
    load_folder_keeping(dir, &LoadOptions::default(), keep)
}

fn texts(errors: &[LoadError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn a_part_keeps_only_its_buckets_yet_names_the_whole_folders_revision_files_accounts_and_census() {
    let dir = estate();
    let whole = load_folder(dir.path(), &LoadOptions::default()).expect("the estate loads");
    assert_eq!(
        whole.groups.len(),
        3 + 2 + 1 + 40,
        "sg-3 declared twice is one group"
    );
    for n in 1..=5 {
        for k in 0..n {
            let keep = part(k, n);
            let loaded = load_part(dir.path(), &keep).expect("the estate loads in part");
            let d = &loaded.desired;
            assert!(
                d.groups.keys().all(|g| keep(&g.account, &g.region)),
                "part {k} of {n} holds a group of another part"
            );
            assert!(d.selectors.iter().all(|s| keep(&s.account, &s.region)));
            assert_eq!(d.revision, whole.revision, "part {k} of {n}");
            assert_eq!((d.files, &d.accounts), (whole.files, &whole.accounts));
            assert_eq!(loaded.census, Census::of(&whole), "part {k} of {n}");
        }
    }
    let none = load_part(dir.path(), &|_, _| false).expect("loads");
    assert!(none.desired.groups.is_empty() && none.desired.selectors.is_empty());
    assert_eq!(none.desired.revision, whole.revision);
    assert_eq!(none.census.groups(), whole.groups.len());
    assert_eq!(
        none.census.buckets.len(),
        5,
        "a selector's bucket counts, with 0 groups"
    );
}

#[test]
fn the_parts_of_a_partition_together_are_the_whole_load() {
    let dir = estate();
    let whole = load_folder(dir.path(), &LoadOptions::default()).expect("the estate loads");
    for n in 1..=5 {
        let mut groups = BTreeMap::new();
        let mut selectors = Vec::new();
        for k in 0..n {
            let d = load_part(dir.path(), &part(k, n)).expect("loads").desired;
            for (key, g) in d.groups {
                assert!(
                    groups.insert(key, g).is_none(),
                    "a group in two parts of {n}"
                );
            }
            selectors.extend(d.selectors);
        }
        assert_eq!(
            groups, whole.groups,
            "{n} parts: the same groups, from the same places"
        );
        let mut all = whole.selectors.clone();
        selectors.sort_by(|a, b| a.source.cmp(&b.source));
        all.sort_by(|a, b| a.source.cmp(&b.source));
        assert_eq!(selectors, all, "{n} parts");
    }
}

/// Conflicts across files in every bucket (policy, mode, one file with more than the per-file cap of
/// them), schema errors beside them, and a file that does not parse.
fn broken() -> tempfile::TempDir {
    let drop: String = (0..150)
        .map(|i| format!("  - {{id: sg-{i:03}, innerAccessPolicy: Drop}}\n"))
        .collect();
    let accept: String = (0..150)
        .map(|i| format!("  - {{id: sg-{i:03}, innerAccessPolicy: Accept}}\n"))
        .collect();
    let first = format!("region: cn-c\ngroups:\n{drop}");
    let second =
        format!("region: cn-c\ngroups:\n{accept}  - {{id: sg-x, innerAccesPolicy: Drop}}\n");
    let prod = format!("account: {{roleArn: \"{PROD}\"}}\nregion: cn-a\ngroups:\n  - {{id: sg-1, innerAccessPolicy: Accept}}\n");
    let prod_again = format!("account: {{roleArn: \"{PROD}\"}}\nregion: cn-a\ngroups:\n  - {{id: sg-1, innerAccessPolicy: Drop}}\n");
    folder(&[
        (
            "a.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n  - {id: sg-2, innerAccessPolicy: Drop}\n  - {id: sg-3, region: cn-b, innerAccessPolicy: Drop}\n",
        ),
        (
            "b.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Accept}\n  - {id: sg-2, innerAccessPolicy: Drop, mode: observe}\n  - {id: sg-2, innerAccessPolicy: Drop}\n  - {id: sg-5}\n  - {id: sg-3, region: cn-b, innerAccessPolicy: Accept}\n",
        ),
        ("c1.yaml", first.as_bytes()),
        ("c2.yaml", second.as_bytes()),
        ("prod.yaml", prod.as_bytes()),
        ("prod-again.yaml", prod_again.as_bytes()),
        ("zz.yaml", b"groups: [{id: sg-1\n"),
    ])
}

#[test]
fn a_part_reports_every_error_of_the_whole_folder_at_the_same_place_in_the_same_order() {
    let dir = broken();
    let whole = texts(&load_folder(dir.path(), &LoadOptions::default()).unwrap_err());
    let c2 = whole.iter().filter(|e| e.contains("c2.yaml")).count();
    assert_eq!(
        c2, 101,
        "100 of the 152 errors of c2.yaml and a line saying so: {whole:#?}"
    );
    let last_of_c2 = whole.iter().rposition(|e| e.contains("c2.yaml")).unwrap();
    assert!(
        whole[last_of_c2].ends_with("c2.yaml:102:5: 52 more errors in this file not shown"),
        "{whole:#?}"
    );
    for wanted in [
        "b.yaml:3:5: conflict: sg-1 in cn-a is declared Accept here and Drop at ",
        "b.yaml:4:5: conflict: sg-2 in cn-a is declared with mode observe here and enforce at ",
        "b.yaml:7:5: conflict: sg-3 in cn-b is declared Accept here and Drop at ",
        "prod.yaml:4:5: conflict: sg-1 in cn-a of account 2222222222222222 is declared Accept here and Drop at ",
    ] {
        assert!(
            whole.iter().any(|e| e.contains(wanted)),
            "{wanted} in {whole:#?}"
        );
    }
    let mut keeps: Vec<Box<Keep>> = vec![Box::new(|_, _| false), Box::new(|_, _| true)];
    for n in 2..=4 {
        keeps.extend((0..n).map(|k| Box::new(part(k, n)) as Box<Keep>));
    }
    for (i, keep) in keeps.iter().enumerate() {
        let errors = load_part(dir.path(), keep.as_ref()).unwrap_err();
        assert_eq!(texts(&errors), whole, "keep #{i}");
    }
}

#[test]
fn the_errors_are_listed_by_place_then_message_and_each_file_is_capped_alike() {
    let mut capped = Capped::default();
    let at = |line| Location {
        path: Path::new("f.yaml").into(),
        line,
        column: 1,
    };
    // Found in reverse, more than twice the cap: trimmed on the way, the first 100 kept.
    for line in (1..=250).rev() {
        capped.push(LoadError {
            location: at(line),
            message: "bad".into(),
        });
    }
    let (mut errors, more) = capped.into_errors();
    errors.sort_by(in_order);
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0].location.line, 1);
    assert_eq!(errors[99].location.line, 100);
    assert_eq!(
        more.map(|e| e.to_string()).as_deref(),
        Some("f.yaml:100:1: 150 more errors in this file not shown")
    );
}
