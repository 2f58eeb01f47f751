//! Tests of `load_folder` against hostile policy files: size limits, alias bombs, deep nesting, bad
//! bytes, several documents, error floods, and property tests that arbitrary input never panics.

use super::tests::{errs, folder};
use super::*;
use std::time::{Duration, Instant};

#[test]
fn files_over_the_size_limit_are_refused() {
    let mut text = String::from("groups:\n");
    while text.len() <= 2048 {
        text.push_str("  - {id: sg-a, region: cn-a, innerAccessPolicy: Drop}\n");
    }
    let dir = folder(&[("big.yaml", text.as_bytes())]);
    let opts = LoadOptions {
        max_file_bytes: 2048,
        ..LoadOptions::default()
    };
    let e = errs(dir.path(), &opts);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("big.yaml:1:1: file is "), "{e:?}");
    assert!(e[0].contains("limit of 2048 bytes"), "{e:?}");
    let roomy = LoadOptions {
        max_file_bytes: 1 << 20,
        ..LoadOptions::default()
    };
    assert!(load_folder(dir.path(), &roomy).is_ok());
}

#[test]
fn alias_bombs_are_rejected_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut prev = "a";
    for name in names {
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    bomb.push_str("groups: *j\n");
    let dir = folder(&[("bomb.yaml", bomb.as_bytes())]);
    let started = Instant::now();
    let e = errs(dir.path(), &LoadOptions::default());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("bomb.yaml:1:7: YAML anchors and aliases"),
        "{e:?}"
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let flow = format!("groups: {}", "[".repeat(100_000));
    let block: String = (0..20_000)
        .map(|i| format!("{}- \n", " ".repeat(i)))
        .collect();
    let maps: String = (0..5_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let dir = folder(&[
        ("a.yaml", flow.as_bytes()),
        ("b.yaml", block.as_bytes()),
        ("c.yaml", maps.as_bytes()),
    ]);
    let opts = LoadOptions {
        max_file_bytes: 1 << 30,
        ..LoadOptions::default()
    };
    let e = errs(dir.path(), &opts);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e.iter()
            .all(|m| m.contains("nested more than 64") || m.contains("recursion limit")),
        "{e:#?}"
    );
}

#[test]
fn non_utf8_bytes_are_an_error_with_a_position() {
    let dir = folder(&[(
        "p.yaml",
        b"region: cn-a\ngroups: [{id: \xc0\xaf, innerAccessPolicy: Drop}]\n",
    )]);
    let e = errs(dir.path(), &LoadOptions::default());
    assert_eq!(
        e,
        ["p.yaml:2:15: not valid UTF-8 (byte 0xc0); policy files must be UTF-8 text"]
    );
}

#[test]
fn several_documents_in_one_file_are_an_error() {
    let text = b"groups: [{id: a, region: r, innerAccessPolicy: Drop}]\n---\ngroups: [{id: b, region: r, innerAccessPolicy: Drop}]\n";
    let e = errs(folder(&[("p.yaml", text)]).path(), &LoadOptions::default());
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("p.yaml:2:1: a policy file holds one YAML document"),
        "{e:?}"
    );
}

#[test]
fn a_flood_of_errors_in_one_file_is_capped() {
    let text: String = (0..500).map(|i| format!("bad{i}: 1\n")).collect();
    let e = errs(
        folder(&[("p.yaml", text.as_bytes())]).path(),
        &LoadOptions::default(),
    );
    assert_eq!(e.len(), MAX_ERRORS_PER_FILE + 1);
    assert!(
        e.iter()
            .any(|m| m.ends_with("400 more errors in this file not shown")),
        "{e:?}"
    );
}

fn load_text(bytes: &[u8]) -> Result<Desired, Vec<LoadError>> {
    let dir = folder(&[("p.yaml", bytes)]);
    let opts = LoadOptions {
        default_region: Some("cn-a".into()),
        ..LoadOptions::default()
    };
    load_folder(dir.path(), &opts)
}

fn assert_sane(result: &Result<Desired, Vec<LoadError>>) {
    if let Err(errors) = result {
        assert!(!errors.is_empty());
        for e in errors {
            assert!(e.location.line >= 1 && e.location.column >= 1, "{e}");
            assert!(
                !e.message.contains("internal error"),
                "the parser panicked: {e}"
            );
            assert!(e.location.path.ends_with("p.yaml"), "{e}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        assert_sane(&load_text(&bytes));
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-zA-Z:\\-\\[\\]{},&*!|>'\" #\n]|groups|region|id|innerAccessPolicy|Drop|---){0,80}") {
        assert_sane(&load_text(text.as_bytes()));
    }

    #[test]
    fn valid_files_round_trip(entries in proptest::collection::vec(("[a-z0-9][a-z0-9_-]{0,20}", proptest::prelude::any::<bool>()), 0..20)) {
        let mut text = String::from(if entries.is_empty() { "groups: []\n" } else { "groups:\n" });
        let mut expected = BTreeMap::new();
        for (id, accept) in &entries {
            let p = if *accept { Policy::Accept } else { Policy::Drop };
            text.push_str(&format!("  - id: \"{id}\"\n    innerAccessPolicy: {p}\n"));
            expected.entry(id.clone()).or_insert(p);
        }
        let conflicts = entries.iter().any(|(id, a)| expected[id] != if *a { Policy::Accept } else { Policy::Drop });
        match load_text(text.as_bytes()) {
            Ok(d) => {
                proptest::prop_assert!(!conflicts);
                let got: BTreeMap<String, Policy> = d.groups.values().map(|g| (g.key.id.to_string(), g.policy)).collect();
                proptest::prop_assert_eq!(got, expected);
            }
            Err(e) => proptest::prop_assert!(conflicts && e.iter().all(|e| e.message.starts_with("conflict:")), "{:?}", e),
        }
    }
}

#[test]
fn a_nul_byte_is_an_error_at_its_position_not_the_end_of_the_file() {
    let text = b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop\0Accept}\n";
    let e = errs(folder(&[("p.yaml", text)]).path(), &LoadOptions::default());
    assert_eq!(
        e,
        ["p.yaml:3:39: character U+0000 (NUL) is not allowed in YAML; policy files must be printable text"]
    );
    // Groups after a NUL never vanish silently: the file is refused as a whole.
    let text = b"region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n\0\n  - {id: sg-2, innerAccessPolicy: Drop}\n";
    let e = errs(folder(&[("p.yaml", text)]).path(), &LoadOptions::default());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:4:1: character U+0000 (NUL)"),
        "{e:?}"
    );
}

#[test]
fn every_character_yaml_forbids_is_refused_and_the_ones_it_allows_are_not() {
    for bad in [
        '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}', '\u{fffe}',
        '\u{ffff}',
    ] {
        let text = format!("region: cn-a\ngroups: []\n# a comment {bad}\n");
        let e = errs(
            folder(&[("p.yaml", text.as_bytes())]).path(),
            &LoadOptions::default(),
        );
        let code = format!("U+{:04X}", bad as u32);
        assert_eq!(e.len(), 1, "{code}: {e:?}");
        assert!(
            e[0].starts_with(&format!("p.yaml:3:13: character {code}")),
            "{e:?}"
        );
        assert!(
            !e[0].contains(bad),
            "the character itself is never printed: {e:?}"
        );
    }
    // Tab, CR LF, NEL, non-breaking space and the astral planes are printable for YAML.
    let text = "region: cn-a\r\ngroups: []\t# \u{85} \u{a0} é 😀\r\n";
    assert!(load_folder(
        folder(&[("p.yaml", text.as_bytes())]).path(),
        &LoadOptions::default()
    )
    .is_ok());
}

#[test]
fn one_files_bytes_refuse_a_nul_too() {
    let e = parse_file_bytes(
        Path::new("m.yaml"),
        b"groups: [{id: a, region: r, innerAccessPolicy: Drop\0}]",
        None,
    )
    .expect_err("NUL");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].location.line, e[0].location.column), (1, 52));
}
