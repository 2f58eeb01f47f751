//! The coverage section of every output (`--report-ungoverned`): per (account, region) the sentence
//! "14 groups in cn-hangzhou are governed by no policy file", then the groups. JSON lists them as
//! `ungoverned: [{id, region, account, name, vpcId}]`.

use crate::escape;
use crate::reconcile::coverage::{place, sentence, Coverage};
use serde_json::{json, Value};
use std::fmt::Write;

/// One line per (account, region) surveyed (a failed listing is a note instead), each followed by its
/// ungoverned groups: id, name, VPC.
pub fn text(c: &Coverage) -> String {
    let mut out = String::new();
    for b in &c.buckets {
        let Ok(groups) = &b.result else { continue };
        let _ = writeln!(
            out,
            "{} (of {} listed){}",
            escape::text(&sentence(groups.len(), &place(&b.bucket))),
            b.listed,
            if groups.is_empty() { "" } else { ":" }
        );
        // Ids, names and VPCs come from the cloud: escaped before they are measured and printed.
        let rows: Vec<[String; 3]> = groups
            .iter()
            .map(|g| {
                [
                    Some(g.key.id.as_str()),
                    g.name.as_deref(),
                    g.vpc_id.as_deref(),
                ]
                .map(|v| escape::text(v.unwrap_or("-")).into_owned())
            })
            .collect();
        let width = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        let name_width = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
        for [id, name, vpc] in &rows {
            let line = format!("    {id:<width$}  {name:<name_width$}  {vpc}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if !c.buckets.is_empty() {
        out.push('\n');
    }
    out
}

/// The `ungoverned` array: every ungoverned group, by (account, region, id).
pub fn json(c: &Coverage) -> Value {
    c.ungoverned()
        .map(|g| {
            json!({
                "id": g.key.id,
                "region": g.key.region,
                "account": g.key.owner().named(),
                "name": g.name,
                "vpcId": g.vpc_id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GroupKey;
    use crate::reconcile::coverage::{BucketCoverage, Ungoverned};

    fn coverage() -> Coverage {
        let g = |account: &str, id: &str, name: Option<&str>| Ungoverned {
            key: GroupKey::in_account(account, "cn-hangzhou", id),
            name: name.map(str::to_string),
            vpc_id: Some("vpc-1".into()),
        };
        Coverage {
            buckets: vec![
                BucketCoverage {
                    bucket: GroupKey::new("cn-hangzhou", "").bucket(),
                    listed: 5,
                    result: Ok(vec![g("", "sg-a", Some("web")), g("", "sg-bb", None)]),
                },
                BucketCoverage {
                    bucket: GroupKey::in_account("2222", "cn-hangzhou", "").bucket(),
                    listed: 1,
                    result: Ok(vec![]),
                },
            ],
            required: false,
        }
    }

    #[test]
    fn the_text_section_says_how_many_per_place_and_lists_each_group() {
        assert_eq!(
            text(&coverage()),
            "2 groups in cn-hangzhou are governed by no policy file (of 5 listed):\n\
             \x20   sg-a   web  vpc-1\n\
             \x20   sg-bb  -    vpc-1\n\
             0 groups in 2222/cn-hangzhou are governed by no policy file (of 1 listed)\n\n"
        );
    }

    #[test]
    fn the_json_entries_name_id_region_account_name_and_vpc() {
        assert_eq!(
            json(&coverage()),
            json!([
                {"id": "sg-a", "region": "cn-hangzhou", "account": null, "name": "web", "vpcId": "vpc-1"},
                {"id": "sg-bb", "region": "cn-hangzhou", "account": null, "name": null, "vpcId": "vpc-1"},
            ])
        );
    }
}
