//! The signer's canonicaliser on arbitrary parameters: the encoding round-trips, keeps only unreserved
//! characters and upper-case escapes, the canonical query is sorted and the signature is base64 of a
//! 20-byte digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgpolicy::ecs::sign::{encode, signature, CanonicalQuery, StringToSign};

fn check_encoding(s: &str) {
    let e = encode(s);
    let bytes = e.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = &bytes[i + 1..i + 3];
                assert!(
                    hex.iter()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                    "{e}"
                );
                i += 3;
            }
            b => {
                assert!(b.is_ascii_alphanumeric() || b"-_.~".contains(&b), "{e}");
                i += 1;
            }
        }
    }
    let back = percent_encoding::percent_decode_str(&e)
        .decode_utf8()
        .expect("utf-8 round trip");
    assert_eq!(back, s);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Parameters separated by newlines, name and value by the first tab.
    let params: Vec<(&str, &str)> = text
        .split('\n')
        .map(|line| line.split_once('\t').unwrap_or((line, "")))
        .collect();
    for (n, v) in &params {
        check_encoding(n);
        check_encoding(v);
    }
    let canonical = CanonicalQuery::new(params.iter().copied());
    let pairs: Vec<&str> = canonical
        .as_str()
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    let names: Vec<&str> = pairs
        .iter()
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "canonical query is sorted by encoded name");
    assert!(!names.contains(&"Signature"));
    for method in ["GET", "post"] {
        let sts = StringToSign::new(method, &canonical);
        assert!(sts
            .as_str()
            .starts_with(&format!("{}&%2F&", method.to_ascii_uppercase())));
        let sig = signature(&sts, &text);
        assert_eq!(sig.len(), 28, "base64 of 20 bytes");
    }
});
