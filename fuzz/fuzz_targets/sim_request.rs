//! The simulator's request parsing and pipeline on arbitrary input. The first byte picks the mode:
//! raw (any query and form body, almost always refused by the signature check), or signed (arbitrary
//! business parameters, correctly signed by the agent's signer, so the handlers see them). In signed
//! mode the simulator's independent canonicaliser must agree with the agent's: never
//! `SignatureDoesNotMatch`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgpolicy::ecs::sign::{encode, sign};
use sgpolicy_sim::{Seed, Simulator};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn sim() -> &'static Simulator {
    static SIM: OnceLock<Simulator> = OnceLock::new();
    SIM.get_or_init(|| {
        let seed = Seed::from_yaml(
            "accessKeys:\n  - {id: testid, secret: testsecret}\nsecurityGroups:\n  - {id: sg-a, region: cn-hangzhou, innerAccessPolicy: Accept}\n  - {id: sg-b, region: cn-hangzhou, innerAccessPolicy: Drop, type: enterprise}\n  - {id: sg-c, region: cn-hangzhou, innerAccessPolicy: Drop, serviceManaged: true}\n",
        )
        .expect("seed");
        Simulator::new(seed)
    })
}

static NONCE: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sim = sim();
    match mode % 3 {
        0 => {
            let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let (q, b) = rest.split_at(split);
            let _ = sim.handle_raw("POST", q, b, true);
            let _ = sim.handle_raw("GET", rest, b"", false);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let business: Vec<(&str, &str)> = text
                .split('\n')
                .filter_map(|l| l.split_once('\t'))
                .filter(|(k, _)| {
                    !matches!(
                        *k,
                        "Signature"
                            | "SignatureNonce"
                            | "Timestamp"
                            | "AccessKeyId"
                            | "SignatureMethod"
                            | "SignatureVersion"
                            | "Format"
                            | "Version"
                            | "SecurityToken"
                    )
                })
                .collect();
            let nonce = format!("fuzz-{}", NONCE.fetch_add(1, Ordering::Relaxed));
            let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let mut params: Vec<(&str, &str)> = vec![
                ("Format", "JSON"),
                ("Version", "2014-05-26"),
                ("AccessKeyId", "testid"),
                ("SignatureMethod", "HMAC-SHA1"),
                ("SignatureVersion", "1.0"),
                ("SignatureNonce", &nonce),
                ("Timestamp", &ts),
            ];
            // Later duplicates win on the server, so send each name once.
            for (k, v) in &business {
                if !params.iter().any(|(n, _)| n == k) {
                    params.push((k, v));
                }
            }
            let method = if mode % 3 == 1 { "GET" } else { "POST" };
            let sig = sign(method, params.iter().copied(), "testsecret");
            let mut query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            query.push(format!("Signature={}", encode(&sig)));
            let (status, code) = sim.handle_raw(method, query.join("&").as_bytes(), b"", false);
            assert_ne!(
                code.as_deref(),
                Some("SignatureDoesNotMatch"),
                "status {status}, params {params:?}"
            );
        }
    }
});
