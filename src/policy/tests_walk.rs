//! Tests of the folder walk against hostile folders: symlinks leading out of the folder, link farms,
//! cycles and the stated limits (entries, files, total size, time).

use super::tests::{errs, folder, ok};
use super::walk::{Limits, LIMITS};
use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

const GROUP: &[u8] = b"groups: [{id: sg-a, region: cn-a, innerAccessPolicy: Drop}]\n";

fn load_within(dir: &Path, limits: &Limits) -> Vec<String> {
    match load_folder_within(dir, &LoadOptions::default(), limits, &|_, _| true) {
        Ok(d) => panic!("expected errors, got {d:#?}"),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn a_link_to_the_root_of_the_file_system_is_an_error_naming_the_link_and_nothing_is_walked() {
    let dir = folder(&[("p.yaml", GROUP)]);
    symlink("/", dir.path().join("r")).expect("symlink");
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(
        e,
        [format!(
            "r:1:1: symlink to \"/\", outside the policy folder {}: not followed (a link may only point inside the folder)",
            dir.path().canonicalize().expect("real path").display()
        )]
    );
}

#[test]
fn a_policy_file_linked_from_outside_the_folder_is_never_read() {
    let outside = folder(&[("secret.yaml", b"password: hunter2-SECRET-VALUE\n")]);
    let dir = folder(&[("p.yaml", GROUP)]);
    symlink(
        outside.path().join("secret.yaml"),
        dir.path().join("creds.yaml"),
    )
    .expect("symlink");
    // A link through a relative path that climbs out is the same thing.
    symlink(
        "../../../../../../../../../etc/hostname",
        dir.path().join("host.yml"),
    )
    .expect("symlink");
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("creds.yaml:1:1: symlink to "), "{e:?}");
    assert!(
        e[0].contains("secret.yaml\", outside the policy folder"),
        "{e:?}"
    );
    assert!(e[1].starts_with("host.yml:1:1: symlink to "), "{e:?}");
    assert!(e.iter().all(|m| !m.contains("hunter2")), "{e:?}");
}

#[test]
fn links_inside_the_folder_keep_working_and_a_link_farm_is_walked_once_per_folder() {
    let dir = folder(&[(".shared/s.yaml", GROUP), ("d0/x.txt", b"")]);
    symlink(".shared", dir.path().join("shared")).expect("symlink");
    symlink(dir.path(), dir.path().join("root-again")).expect("symlink");
    // d0/{a,b} -> d1, d1/{a,b} -> d2, ...: followed naively that is 2^20 folders.
    for i in 0..20 {
        fs::create_dir_all(dir.path().join(format!("d{}", i + 1))).expect("mkdir");
        for l in ["a", "b"] {
            symlink(
                format!("../d{}", i + 1),
                dir.path().join(format!("d{i}/{l}")),
            )
            .expect("symlink");
        }
    }
    let d = ok(dir.path());
    assert_eq!(d.files, 1);
    assert_eq!(
        *d.groups[&GroupKey::new("cn-a", "sg-a")].source.path,
        *dir.path().join("shared/s.yaml")
    );
}

#[test]
fn a_folder_past_a_stated_limit_is_an_error_that_names_the_limit() {
    let dir = folder(&[
        ("a.yaml", GROUP),
        ("b/c.yaml", b"groups: []\n"),
        ("d.txt", b"x"),
    ]);
    let e = load_within(dir.path(), &Limits { files: 1, ..LIMITS });
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("more than 1 policy files"), "{e:?}");
    let e = load_within(
        dir.path(),
        &Limits {
            entries: 3,
            ..LIMITS
        },
    );
    assert!(e[0].contains("more than 3 entries"), "{e:?}");
    let e = load_within(
        dir.path(),
        &Limits {
            total_bytes: 70,
            ..LIMITS
        },
    );
    assert!(e[0].contains("more than 70 bytes of policy files"), "{e:?}");
    let e = load_within(
        dir.path(),
        &Limits {
            time: Duration::ZERO,
            ..LIMITS
        },
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("reading the policy folder took longer than 0s"),
        "{e:?}"
    );
    assert!(load_folder_within(dir.path(), &LoadOptions::default(), &LIMITS, &|_, _| true).is_ok());
    fs::create_dir_all(dir.path().join("b/c")).expect("mkdir");
    let e = load_within(dir.path(), &Limits { depth: 1, ..LIMITS });
    assert_eq!(e, ["folders nested more than 1 levels deep are not read"]);
}
