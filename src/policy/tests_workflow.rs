//! Tests of the workflow additions to schema v1 through `load_folder`: `mode`, `selectors`, revisions.

use super::tests::{errs, folder, ok};
use super::*;

#[test]
fn mode_defaults_to_enforce_and_observe_is_kept() {
    let d = ok(folder(&[(
        "p.yaml",
        b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n  - {id: sg-2, innerAccessPolicy: Drop, mode: OBSERVE}\n",
    )])
    .path());
    assert_eq!(d.groups[&GroupKey::new("cn-a", "sg-1")].mode, Mode::Enforce);
    assert_eq!(d.groups[&GroupKey::new("cn-a", "sg-2")].mode, Mode::Observe);
}

#[test]
fn the_same_group_with_different_modes_is_a_conflict() {
    let dir = folder(&[
        (
            "a.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        ),
        (
            "b.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop, mode: observe}\n",
        ),
    ]);
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "b.yaml:3:5: conflict: sg-1 in cn-a is declared with mode observe here and enforce at "
        ),
        "{e:?}"
    );
}

#[test]
fn revision_changes_with_mode_and_selectors_but_not_for_enforce_only_folders() {
    let plain = ok(folder(&[(
        "p.yaml",
        b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
    )])
    .path());
    let explicit_enforce = ok(folder(&[(
        "p.yaml",
        b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop, mode: enforce}\n",
    )])
    .path());
    assert_eq!(
        plain.revision, explicit_enforce.revision,
        "older revisions keep their value"
    );
    let observed = ok(folder(&[(
        "p.yaml",
        b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop, mode: observe}\n",
    )])
    .path());
    assert_ne!(plain.revision, observed.revision);
    let selector = b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\nselectors:\n  - match: {tags: {env: prod}}\n    innerAccessPolicy: Drop\n";
    let with_selector = ok(folder(&[("p.yaml", selector)]).path());
    assert_eq!(with_selector.selectors.len(), 1);
    assert_ne!(plain.revision, with_selector.revision);
    // The same selector in another file, formatted differently, names the same desired state.
    let moved = ok(folder(&[
        (
            "p.yaml",
            b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        ),
        (
            "q.yml",
            b"selectors: [{region: cn-a, innerAccessPolicy: drop, match: {tags: {env: prod}}}]\n",
        ),
    ])
    .path());
    assert_eq!(moved.revision, with_selector.revision);
}

#[test]
fn a_file_with_only_selectors_is_valid_and_uses_the_region_flag() {
    let dir = folder(&[(
        "s.yaml",
        b"selectors:\n  - match: {name: \"pay-*\"}\n    innerAccessPolicy: Drop\n",
    )]);
    let e = errs(dir.path(), &LoadOptions::default());
    assert!(e[0].contains("selector has no region"), "{e:?}");
    let d = load_folder(
        dir.path(),
        &LoadOptions {
            default_region: Some("cn-b".into()),
            ..LoadOptions::default()
        },
    )
    .expect("valid with --region");
    assert!(d.groups.is_empty());
    assert_eq!(d.selectors[0].region, "cn-b");
    assert_eq!(d.selectors[0].source.line, 2);
}
