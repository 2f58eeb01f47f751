//! Tests of `load_folder` against real folders on disk: schema, regions, errors, merging, symlinks, revision.

use super::*;
use std::fs;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const EXAMPLE: &str = "\
region: cn-hangzhou          # optional default region for this file
groups:
  - id: sg-bp67acfmxazb4ph0001
    innerAccessPolicy: Drop  # Accept | Drop, any letter case
  - id: sg-bp67acfmxazb4ph0002
    region: cn-shanghai      # overrides the file default
    innerAccessPolicy: accept
";

pub(super) fn folder(files: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, content).expect("write");
    }
    dir
}

pub(super) fn load(dir: &Path) -> Result<Desired, Vec<LoadError>> {
    load_folder(dir, &LoadOptions::default())
}

pub(super) fn ok(dir: &Path) -> Desired {
    load(dir).unwrap_or_else(|e| panic!("expected success, got {e:#?}"))
}

/// Errors as `relative/path:line:col: message`, in the order returned.
pub(super) fn errs(dir: &Path, opts: &LoadOptions) -> Vec<String> {
    match load_folder(dir, opts) {
        Ok(d) => panic!("expected errors, got {d:#?}"),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let rel = e
                    .location
                    .path
                    .strip_prefix(dir)
                    .unwrap_or(&e.location.path);
                format!(
                    "{}:{}:{}: {}",
                    rel.display(),
                    e.location.line,
                    e.location.column,
                    e.message
                )
            })
            .collect(),
    }
}

pub(super) fn policy(d: &Desired, region: &str, id: &str) -> Option<Policy> {
    d.groups.get(&GroupKey::new(region, id)).map(|g| g.policy)
}

#[test]
fn the_documented_example_loads_with_both_regions() {
    let dir = folder(&[("team/web.yaml", EXAMPLE.as_bytes())]);
    let d = ok(dir.path());
    assert_eq!(d.files, 1);
    assert_eq!(d.groups.len(), 2);
    assert_eq!(
        policy(&d, "cn-hangzhou", "sg-bp67acfmxazb4ph0001"),
        Some(Policy::Drop)
    );
    assert_eq!(
        policy(&d, "cn-shanghai", "sg-bp67acfmxazb4ph0002"),
        Some(Policy::Accept)
    );
    let g = &d.groups[&GroupKey::new("cn-shanghai", "sg-bp67acfmxazb4ph0002")];
    assert_eq!(
        g.source,
        Location {
            path: dir.path().join("team/web.yaml").into(),
            line: 5,
            column: 5
        }
    );
    assert_eq!(d.revision.len(), 12);
    assert!(d
        .revision
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(d.revision, revision_of(&d.groups));
}

#[test]
fn policy_values_are_case_insensitive() {
    let text = "region: r1\ngroups:\n- {id: a, innerAccessPolicy: DROP}\n- {id: b, innerAccessPolicy: aCCePt}\n- {id: c, innerAccessPolicy: \"drop\"}\n";
    let d = ok(folder(&[("p.yml", text.as_bytes())]).path());
    assert_eq!(policy(&d, "r1", "a"), Some(Policy::Drop));
    assert_eq!(policy(&d, "r1", "b"), Some(Policy::Accept));
    assert_eq!(policy(&d, "r1", "c"), Some(Policy::Drop));
}

#[test]
fn the_region_flag_is_the_last_fallback() {
    let text = "groups:\n- {id: a, innerAccessPolicy: Drop}\n- {id: b, region: cn-x, innerAccessPolicy: Drop}\n";
    let dir = folder(&[("p.yaml", text.as_bytes())]);
    let opts = LoadOptions {
        default_region: Some("cn-flag".into()),
        ..LoadOptions::default()
    };
    let d = load_folder(dir.path(), &opts).expect("loads");
    assert_eq!(policy(&d, "cn-flag", "a"), Some(Policy::Drop));
    assert_eq!(policy(&d, "cn-x", "b"), Some(Policy::Drop));
    assert_eq!(policy(&d, "cn-flag", "b"), None);
    // A file region beats the flag.
    let dir = folder(&[("p.yaml", format!("region: cn-file\n{text}").as_bytes())]);
    let d = load_folder(dir.path(), &opts).expect("loads");
    assert_eq!(policy(&d, "cn-file", "a"), Some(Policy::Drop));
    // An invalid flag is one error at the folder, not one per entry.
    let bad = LoadOptions {
        default_region: Some("CN Hangzhou".into()),
        ..LoadOptions::default()
    };
    let e = errs(dir.path(), &bad);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("invalid --region"), "{e:?}");
}

#[test]
fn a_group_without_any_region_is_an_error_at_its_entry() {
    let text = "groups:\n  - id: sg-a\n    innerAccessPolicy: Drop\n";
    let e = errs(
        folder(&[("p.yaml", text.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        ["p.yaml:2:5: `sg-a` has no region: add `region:` to the entry or to the top of the file, or pass --region"]
    );
}

#[test]
fn unknown_fields_get_a_did_you_mean_hint_at_the_key() {
    let text = "region: cn-a\ngroups:\n  - id: sg-a\n    innerAcessPolicy: Drop\n";
    let e = errs(
        folder(&[("p.yaml", text.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        [
            "p.yaml:3:5: `sg-a` has no `innerAccessPolicy` (Accept or Drop)",
            "p.yaml:4:5: unknown field `innerAcessPolicy` in a group entry, did you mean `innerAccessPolicy`?",
        ]
    );
    let e = errs(
        folder(&[("p.yaml", b"region: cn-a\ngroups: []\nowner: me\n")]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        ["p.yaml:3:1: unknown field `owner` at the top of the file; expected one of `region`, `account`, `groups`, `selectors`"]
    );
}

#[test]
fn a_bad_policy_value_is_quoted_at_the_value() {
    let text = "region: cn-a\ngroups:\n  - id: sg-a\n    innerAccessPolicy: Allow\n  - id: sg-b\n    innerAccessPolicy: yes\n  - id: sg-c\n    innerAccessPolicy:\n";
    let e = errs(
        folder(&[("p.yaml", text.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        [
            "p.yaml:4:24: expected Accept or Drop, found \"Allow\"",
            "p.yaml:6:24: expected Accept or Drop, found \"yes\"",
            "p.yaml:9:1: expected Accept or Drop, found nothing",
        ]
    );
}

#[test]
fn wrong_types_are_errors() {
    let e = errs(
        folder(&[("p.yaml", b"region: cn-a\ngroups: sg-a\n")]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        ["p.yaml:2:9: expected a list of groups under `groups:`, found \"sg-a\""]
    );
    let e = errs(
        folder(&[("p.yaml", b"region: [cn-a]\ngroups:\n  - [sg-a, Drop]\n")]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(
        e,
        [
            "p.yaml:1:9: expected a string for `region`, found a list",
            "p.yaml:3:5: expected a group (a mapping with `id:` and `innerAccessPolicy:`), found a list",
        ]
    );
}

#[test]
fn conflicting_declarations_name_both_locations() {
    let dir = folder(&[
        ("a/b.yaml", b"region: cn-hangzhou\ngroups:\n  - id: other\n    innerAccessPolicy: Drop\n  - id: sg-x\n    innerAccessPolicy: Accept\n"),
        ("c.yaml", b"groups:\n  - id: sg-x\n    region: cn-hangzhou\n    innerAccessPolicy: Drop\n"),
    ]);
    let e = errs(dir.path(), &LoadOptions::default());
    let first = dir.path().join("a/b.yaml");
    assert_eq!(
        e,
        [format!(
            "c.yaml:2:5: conflict: sg-x in cn-hangzhou is declared Drop here and Accept at {}:5:5",
            first.display()
        )]
    );
}

#[test]
fn the_same_policy_twice_is_fine_and_keeps_the_first_location() {
    let dir = folder(&[
        ("a.yaml", b"groups: [{id: sg-x, region: cn-a, innerAccessPolicy: Drop}]\n"),
        ("b.yaml", b"region: cn-a\ngroups:\n- {id: sg-x, innerAccessPolicy: drop}\n- {id: sg-x, innerAccessPolicy: Drop}\n"),
    ]);
    let d = ok(dir.path());
    assert_eq!(d.files, 2);
    assert_eq!(d.groups.len(), 1);
    assert_eq!(
        *d.groups[&GroupKey::new("cn-a", "sg-x")].source.path,
        *dir.path().join("a.yaml")
    );
}

#[test]
fn every_problem_in_every_file_is_reported_in_one_run() {
    let dir = folder(&[
        ("z.yaml", b"groups:\n  - id: sg-1\n    region: cn-a\n    innerAccessPolicy: Maybe\n  - id: sg-2\n    regoin: cn-a\n    innerAccessPolicy: Drop\n"),
        ("a/broken.yaml", b"groups: [\n"),
        ("a/ok.yaml", b"groups: [{id: good, region: cn-a, innerAccessPolicy: Drop}]\n"),
        ("m.yml", b"region: cn-a\ngroups:\n  - innerAccessPolicy: Drop\n"),
    ]);
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with("a/broken.yaml:2:1: YAML syntax error"),
        "{e:#?}"
    );
    assert_eq!(e[1], "m.yml:3:5: group entry has no `id`");
    assert_eq!(
        e[2],
        "z.yaml:4:24: expected Accept or Drop, found \"Maybe\""
    );
    assert_eq!(e[3], "z.yaml:5:5: `sg-2` has no region: add `region:` to the entry or to the top of the file, or pass --region");
    assert_eq!(
        e[4],
        "z.yaml:6:5: unknown field `regoin` in a group entry, did you mean `region`?"
    );
}

#[test]
fn dot_folders_dot_files_and_other_files_are_skipped() {
    let bad = b"this: is not a policy\n".as_slice();
    let dir = folder(&[
        (
            "p.yaml",
            b"groups: [{id: a, region: r, innerAccessPolicy: Drop}]".as_slice(),
        ),
        (".git/config.yaml", bad),
        ("team/.hidden/x.yaml", bad),
        (".secret.yaml", bad),
        ("README.md", bad),
        ("notes.yaml.bak", bad),
        (
            "team/b.YML",
            b"groups: [{id: b, region: r, innerAccessPolicy: Accept}]",
        ),
    ]);
    let d = ok(dir.path());
    assert_eq!(d.files, 2);
    assert_eq!(policy(&d, "r", "b"), Some(Policy::Accept));
}

#[cfg(unix)]
#[test]
fn a_configmap_volume_is_read_through_its_symlinks_exactly_once() {
    use std::os::unix::fs::symlink;
    let dir = folder(&[(
        "..2026_11_28/a.yaml",
        b"groups: [{id: sg-cm, region: cn-a, innerAccessPolicy: Accept}]",
    )]);
    symlink("..2026_11_28", dir.path().join("..data")).expect("symlink");
    symlink("..data/a.yaml", dir.path().join("a.yaml")).expect("symlink");
    let d = ok(dir.path());
    assert_eq!(d.files, 1);
    let g = &d.groups[&GroupKey::new("cn-a", "sg-cm")];
    assert_eq!(*g.source.path, *dir.path().join("a.yaml"));
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_followed_but_loops_are_not() {
    use std::os::unix::fs::symlink;
    let dir = folder(&[
        ("p.yaml", b"groups: []"),
        (
            ".shared/s.yaml",
            b"groups: [{id: sg-s, region: cn-a, innerAccessPolicy: Drop}]",
        ),
    ]);
    symlink(dir.path().join(".shared"), dir.path().join("shared")).expect("symlink");
    symlink(".", dir.path().join("loop")).expect("symlink");
    symlink(dir.path(), dir.path().join("shared-again")).expect("symlink");
    symlink("missing.txt", dir.path().join("dangling.txt")).expect("symlink");
    let started = Instant::now();
    let d = ok(dir.path());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(d.files, 2);
    assert_eq!(
        *d.groups[&GroupKey::new("cn-a", "sg-s")].source.path,
        *dir.path().join("shared/s.yaml")
    );
    // A dangling symlink with a policy name is an error: part of the desired state is missing.
    symlink("gone.yaml", dir.path().join("gone.yaml")).expect("symlink");
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(
        e,
        ["gone.yaml:1:1: broken symlink: its target cannot be read"]
    );
}

#[test]
fn the_folder_itself_must_exist_and_be_a_folder() {
    let dir = folder(&[("f.yaml", b"")]);
    let missing = dir.path().join("nope");
    let e = load(&missing).expect_err("missing folder");
    assert_eq!(
        e[0].location,
        Location {
            path: missing.as_path().into(),
            line: 1,
            column: 1
        }
    );
    assert!(e[0].message.contains("does not exist"), "{e:?}");
    let e = load(&dir.path().join("f.yaml")).expect_err("a file");
    assert!(e[0].message.contains("not a folder"), "{e:?}");
    // An empty folder declares nothing; that is valid.
    let empty = tempfile::tempdir().expect("temp dir");
    let d = ok(empty.path());
    assert_eq!((d.files, d.groups.len()), (0, 0));
    assert_eq!(d.revision, revision_of(&BTreeMap::new()));
    let d = ok(folder(&[
        ("b.yaml", b"# nothing yet\ngroups: []\n"),
        ("c.yaml", b"groups: []\n"),
    ])
    .path());
    assert_eq!((d.files, d.groups.len()), (2, 0));
}

#[test]
fn an_empty_or_comment_only_file_fails_the_folder_like_a_parse_error() {
    let dir = folder(&[
        ("a.yaml", b""),
        ("b.yaml", b"# truncated by a bad merge\n"),
        ("c.yaml", b"groups: []\n"),
        (
            "d.yaml",
            b"groups:\n  - {id: sg-1, region: cn-a, innerAccessPolicy: Drop}\n",
        ),
    ]);
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("a.yaml:1:1: the file is empty"), "{e:?}");
    assert!(e[1].starts_with("b.yaml:1:1: the file is empty"), "{e:?}");
    assert!(e.iter().all(|m| m.contains("groups: []")), "{e:?}");
}

#[test]
fn the_revision_depends_only_on_the_desired_state() {
    let one = folder(&[("all.yaml", EXAMPLE.as_bytes())]);
    let two = folder(&[
        ("x/second.yml", b"# moved here\ngroups:\n- {innerAccessPolicy: ACCEPT, region: cn-shanghai, id: sg-bp67acfmxazb4ph0002}\n"),
        ("first.yaml", b"groups:\n  - region: cn-hangzhou\n    id: \"sg-bp67acfmxazb4ph0001\"\n    innerAccessPolicy: drop\n  - {region: cn-hangzhou, id: sg-bp67acfmxazb4ph0001, innerAccessPolicy: Drop}\n"),
    ]);
    let (a, b) = (ok(one.path()), ok(two.path()));
    assert_eq!(a.revision, b.revision);
    assert_ne!(a.files, b.files);
    let changed = folder(&[("all.yaml", EXAMPLE.replace("Drop", "Accept").as_bytes())]);
    assert_ne!(ok(changed.path()).revision, a.revision);
    let moved = folder(&[(
        "all.yaml",
        EXAMPLE.replace("cn-shanghai", "cn-beijing").as_bytes(),
    )]);
    assert_ne!(ok(moved.path()).revision, a.revision);
    assert_ne!(revision_of(&BTreeMap::new()), a.revision);
}

#[test]
fn unquoted_numbers_as_ids_are_their_text() {
    let d = ok(folder(&[("p.yaml", b"region: cn-a\ngroups:\n- {id: 12345, innerAccessPolicy: Drop}\n- {id: 0x1F, innerAccessPolicy: Accept}\n")]).path());
    assert_eq!(policy(&d, "cn-a", "12345"), Some(Policy::Drop));
    assert_eq!(policy(&d, "cn-a", "0x1F"), Some(Policy::Accept));
}

const PROD: &str = "acs:ram::2222222222222222:role/sgpolicy";

fn account_file(role: &str, external: &str, policy: &str) -> String {
    format!(
        "account:\n  roleArn: {role}\n  externalId: {external}\nregion: cn-a\ngroups:\n  - id: sg-1\n    innerAccessPolicy: {policy}\n"
    )
}

#[test]
fn the_same_group_id_in_two_accounts_is_two_groups() {
    let other = account_file(PROD, "ext-one-5150", "Accept");
    let dir = folder(&[
        (
            "own.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        ),
        ("prod.yaml", other.as_bytes()),
    ]);
    let d = ok(dir.path());
    assert_eq!(d.groups.len(), 2, "no conflict across accounts");
    let prod = GroupKey::in_account("2222222222222222", "cn-a", "sg-1");
    assert_eq!(d.groups[&prod].policy, Policy::Accept);
    assert_eq!(
        d.groups[&GroupKey::new("cn-a", "sg-1")].policy,
        Policy::Drop
    );
    assert_eq!(d.accounts["2222222222222222"].role_arn, PROD);
    assert_eq!(d.accounts.len(), 1, "the chain's own account needs no role");
    // The account is part of what the revision names: the same declarations, with the prod group
    // moved to another account, are another desired state.
    let staging = account_file(
        "acs:ram::3333333333333333:role/sgpolicy",
        "ext-one-5150",
        "Accept",
    );
    let moved = folder(&[
        (
            "own.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        ),
        ("prod.yaml", staging.as_bytes()),
    ]);
    assert_ne!(d.revision, ok(moved.path()).revision);
    // Which role reaches an account is not part of it.
    let other_role = account_file(
        "acs:ram::2222222222222222:role/another",
        "ext-two-5150",
        "Accept",
    );
    let same = folder(&[
        (
            "own.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        ),
        ("prod.yaml", other_role.as_bytes()),
    ]);
    assert_eq!(d.revision, ok(same.path()).revision);
}

#[test]
fn one_account_named_through_two_roles_or_external_ids_is_a_conflict() {
    let a = account_file(PROD, "ext-one-5150", "Drop");
    let b = account_file(
        "acs:ram::2222222222222222:role/other",
        "ext-one-5150",
        "Drop",
    );
    let e = errs(
        folder(&[("a.yaml", a.as_bytes()), ("b.yaml", b.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("b.yaml:2:12: conflict: account 2222222222222222 is assumed through acs:ram::2222222222222222:role/other here and acs:ram::2222222222222222:role/sgpolicy at "),
        "{e:?}"
    );
    let c = account_file(PROD, "ext-two-5150", "Drop");
    let e = errs(
        folder(&[("a.yaml", a.as_bytes()), ("c.yaml", c.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("is given a different externalId here"),
        "{e:?}"
    );
    assert!(
        !e[0].contains("ext-two-5150") && !e[0].contains("ext-one-5150"),
        "external ids are never printed: {e:?}"
    );
    // The same group declared differently in one account is still a conflict, and says which account.
    let d = account_file(PROD, "ext-one-5150", "Accept");
    let e = errs(
        folder(&[("a.yaml", a.as_bytes()), ("d.yaml", d.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert!(
        e[0].starts_with("d.yaml:6:5: conflict: sg-1 in cn-a of account 2222222222222222 is declared Accept here and Drop at "),
        "{e:?}"
    );
}
