//! The JSON Schema of a policy file, built from the same field tables the loader validates against
//! (`schema::TOP_FIELDS`, `ENTRY_FIELDS`, `selector::SELECTOR_FIELDS`, `MATCH_FIELDS`) and the same
//! limits, so a field added to the loader without a schema entry fails a test instead of drifting.
//!
//! Editors use it for completion (`# yaml-language-server: $schema=…`); CI validates the examples with
//! an independent validator. The loader stays the authority: a few rules (one document per file,
//! conflicts between files, regions needed from `--region`) cannot be said in JSON Schema.

use super::schema::{ACCOUNT_FIELDS, ENTRY_FIELDS, MAX_ID_LEN, MAX_REGION_LEN, TOP_FIELDS};
use super::selector::{MATCH_FIELDS, MAX_PATTERN_LEN, MAX_TAGS, MAX_TAG_LEN, SELECTOR_FIELDS};
use serde_json::{json, Map, Value};

/// The schema's `$id`, which `sgpolicy import` names in every file's `$schema` line.
pub const SCHEMA_ID: &str = "https://sgpolicy.invalid/schema/policy-v1.json";

/// Where the committed copy lives, relative to the repository root.
pub const COMMITTED_PATH: &str = "deploy/schema/policy.schema.json";

/// Letter-case-insensitive alternatives, spelled out because JSON Schema regexes have no `(?i)`.
fn any_case(words: &[&str]) -> String {
    let alts: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
                .collect::<String>()
        })
        .collect();
    format!("^({})$", alts.join("|"))
}

fn region() -> Value {
    json!({
        "type": "string",
        "description": "Alibaba Cloud region id, like cn-hangzhou.",
        "pattern": "^[a-z0-9-]+$",
        "minLength": 1,
        "maxLength": MAX_REGION_LEN,
    })
}

fn policy() -> Value {
    json!({
        "type": "string",
        "description": "The InnerAccessPolicy to keep: Accept (members talk to each other) or Drop (isolated). Any letter case.",
        "pattern": any_case(&["accept", "drop"]),
        "examples": ["Accept", "Drop"],
    })
}

fn mode() -> Value {
    json!({
        "type": "string",
        "description": "enforce (default): drift is corrected. observe: drift is planned and reported, never written.",
        "pattern": any_case(&["enforce", "observe"]),
        "examples": ["enforce", "observe"],
        "default": "enforce",
    })
}

fn short_string(description: &str, max: usize) -> Value {
    json!({"type": "string", "description": description, "minLength": 1, "maxLength": max})
}

/// The schema of one field of one table; `None` for a name this module does not know.
fn property(table: &str, field: &str) -> Option<Value> {
    Some(match (table, field) {
        ("top", "region") => {
            let mut r = region();
            r["description"] = json!("Default region for every group and selector in this file.");
            r
        }
        ("top", "account") => json!({"$ref": "#/definitions/account"}),
        ("account", "roleArn") => json!({
            "type": "string",
            "description": "The RAM role sgpolicy assumes (STS AssumeRole, with the credential chain's identity) to govern this file's groups in that account.",
            "pattern": "^acs:ram::[0-9]+:role/.+$",
            "examples": ["acs:ram::1234567890123456:role/sgpolicy"],
        }),
        ("account", "externalId") => json!({
            "type": "string",
            "description": "ExternalId the role's trust policy requires, if any. Confidential: never printed.",
        }),
        ("top", "groups") => json!({
            "type": "array",
            "description": "Security groups declared by id.",
            "items": {"$ref": "#/definitions/group"},
        }),
        ("top", "selectors") => json!({
            "type": "array",
            "description": "Policies for every group matching tags, a VPC and/or a name glob, resolved at each pass. An explicit id always wins.",
            "items": {"$ref": "#/definitions/selector"},
        }),
        ("group", "id") => json!({
            "type": ["string", "integer"],
            "description": "Security group id, like sg-bp67acfmxazb4ph0001.",
            "pattern": "^[A-Za-z0-9_-]+$",
            "minLength": 1,
            "maxLength": MAX_ID_LEN,
        }),
        ("group" | "selector", "region") => region(),
        ("group" | "selector", "innerAccessPolicy") => policy(),
        ("group" | "selector", "mode") => mode(),
        ("selector", "match") => json!({"$ref": "#/definitions/match"}),
        ("match", "tags") => json!({
            "type": "object",
            "description": "Tags that must all be present with these values.",
            "maxProperties": MAX_TAGS,
            "propertyNames": {"minLength": 1, "maxLength": MAX_TAG_LEN},
            "additionalProperties": short_string("Tag value.", MAX_TAG_LEN),
        }),
        ("match", "vpcId") => short_string("Only groups of this VPC.", MAX_TAG_LEN),
        ("match", "name") => short_string(
            "Glob on SecurityGroupName: * matches any run of characters, ? exactly one.",
            MAX_PATTERN_LEN,
        ),
        _ => return None,
    })
}

/// An object whose properties are exactly `fields`, in the loader's order.
fn object(table: &str, fields: &[&str], required: &[&str], description: &str) -> Value {
    let mut props = Map::new();
    for f in fields {
        // A field without a schema entry is caught by `every_loader_field_has_a_schema`.
        props.insert(
            (*f).to_string(),
            property(table, f).unwrap_or_else(|| json!({})),
        );
    }
    json!({
        "type": "object",
        "description": description,
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// The whole schema, in draft-07 (what yaml-language-server and most editors support).
pub fn policy_file_schema() -> Value {
    let mut top = object(
        "top",
        TOP_FIELDS,
        &[],
        "One sgpolicy policy file (schema v1).",
    );
    // A file that declares nothing says `groups: []`; an empty file is what truncation looks like.
    top["anyOf"] = json!([{"required": ["groups"]}, {"required": ["selectors"]}]);
    let mut m = object(
        "match",
        MATCH_FIELDS,
        &[],
        "What a group must have to be selected; at least one of tags, vpcId, name.",
    );
    m["minProperties"] = json!(1);
    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "sgpolicy policy file",
        "definitions": {
            "group": object("group", ENTRY_FIELDS, &["id", "innerAccessPolicy"], "A security group declared by id."),
            "selector": object("selector", SELECTOR_FIELDS, &["match", "innerAccessPolicy"], "A policy for every group that matches."),
            "match": m,
            "account": object("account", ACCOUNT_FIELDS, &["roleArn"], "The account this file governs; without it, the credential chain's own."),
        },
    });
    if let (Some(r), Some(t)) = (root.as_object_mut(), top.as_object()) {
        for (k, v) in t {
            r.insert(k.clone(), v.clone());
        }
    }
    root
}

/// The schema as committed: pretty JSON with a trailing newline.
pub fn rendered() -> String {
    let mut s = serde_json::to_string_pretty(&policy_file_schema()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loader_field_has_a_schema() {
        for (table, fields) in [
            ("top", TOP_FIELDS),
            ("account", ACCOUNT_FIELDS),
            ("group", ENTRY_FIELDS),
            ("selector", SELECTOR_FIELDS),
            ("match", MATCH_FIELDS),
        ] {
            for f in fields {
                assert!(
                    property(table, f).is_some(),
                    "{table}.{f} has no schema entry"
                );
            }
        }
    }

    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered(),
            "{} is stale: run `cargo run -- schema > {COMMITTED_PATH}`",
            path.display()
        );
    }

    #[test]
    fn the_case_insensitive_pattern_spells_every_case() {
        assert_eq!(any_case(&["ab"]), "^([Aa][Bb])$");
        let s = policy_file_schema();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(
            s["definitions"]["group"]["required"],
            json!(["id", "innerAccessPolicy"])
        );
        assert_eq!(
            s["definitions"]["group"]["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<Vec<_>>()),
            Some({
                let mut fields: Vec<String> = ENTRY_FIELDS.iter().map(|s| s.to_string()).collect();
                fields.sort();
                fields
            })
        );
    }
}
