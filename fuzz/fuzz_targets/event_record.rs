//! Any bytes as what ActionTrail or EventBridge hands the daemon: a CloudEvents envelope, a bare
//! record, or a record whose `requestParameters` is the input as a JSON string. Never a panic; what
//! is read names a group, a region and an event id, and an ignored record says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sgpolicy::events::record::{parse_envelope, parse_record, Change};

fn check(change: &Change) {
    // A policy change names its group; another write may name none (an interface, a prefix list),
    // but a group it names is never empty.
    assert!(!change.is_policy_change() || change.group_id.is_some());
    assert!(change.group_id.as_deref().is_none_or(|g| !g.is_empty()));
    assert!(!change.region.is_empty());
    // The author's name and times are kept as recorded: printing them must not panic either.
    let _ = change.author.to_string();
    let _ = format!("{change:?}");
}

fn read(v: &Value) {
    match parse_envelope(v) {
        Ok(env) => {
            assert!(!env.source.is_empty() && !env.id.is_empty());
            if let Ok(c) = env.change() {
                check(&c);
            }
        }
        Err(why) => assert!(!why.to_string().is_empty() && !why.label().is_empty()),
    }
    for region in [None, Some("cn-hangzhou")] {
        match parse_record(v, region) {
            Ok(c) => check(&c),
            Err(why) => assert!(!why.to_string().is_empty()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        read(&v);
        if let Value::Array(items) = &v {
            items.iter().for_each(read);
        }
        // The input as the record inside an envelope.
        read(&json!({"source": "acs.actiontrail", "id": "1", "data": v}));
    }
    let text = String::from_utf8_lossy(data).into_owned();
    let record = json!({
        "eventId": "e-1", "eventName": "ModifySecurityGroupPolicy", "eventType": "ApiCall",
        "acsRegion": "cn-hangzhou", "requestParameters": text,
        "userIdentity": {"type": "ram-user", "userName": text},
    });
    read(&record);
    read(&json!({"source": "acs.actiontrail", "id": text, "data": record}));
});
