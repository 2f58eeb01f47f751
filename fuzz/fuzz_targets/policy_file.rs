//! Any bytes as one policy file: never a panic, and every error is located inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.yaml");
    for region in [None, Some("cn-hangzhou")] {
        match sgpolicy::policy::parse_file_bytes(path, data, region) {
            Ok((groups, selectors)) => {
                for g in groups {
                    assert!(!g.key.id.is_empty() && !g.key.region.is_empty());
                }
                for s in selectors {
                    assert!(!s.region.is_empty());
                }
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                for e in errors {
                    assert!(e.location.line >= 1, "{e}");
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
});
