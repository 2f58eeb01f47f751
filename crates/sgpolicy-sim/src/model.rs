//! The simulator's own vocabulary: a group's InnerAccessPolicy and the account a RAM role ARN names.
//!
//! The agent has types for both (`sgpolicy::model::{Policy, AccountRef}`); these are written
//! separately, from ECS's and RAM's documented formats, and this crate cannot reach the agent's (it
//! does not depend on it). A bug in the agent's parsing therefore cannot be repeated here unnoticed.

use std::fmt;

/// The two values ECS accepts for a security group's InnerAccessPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    /// ECS ignores the letter case of the `Policy` parameter ("Ignore case." in its error message).
    pub fn parse(text: &str) -> Option<Policy> {
        [Policy::Accept, Policy::Drop]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }

    /// ECS's spelling, as its answers render the value.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "Accept",
            Policy::Drop => "Drop",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The account id inside a RAM role ARN, `acs:ram::<account id>:role/<role name>`: five
/// colon-separated fields (the fifth may itself hold colons), the third (the region) empty, a
/// non-empty all-digit account id, and a resource `role/` followed by a non-empty name. Surrounding
/// whitespace is ignored. `None` for any other shape.
pub fn role_account(arn: &str) -> Option<&str> {
    let mut fields = arn.trim().splitn(5, ':');
    let (service_ns, service, region, account, resource) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let digits = !account.is_empty() && account.chars().all(|c| c.is_ascii_digit());
    let role_name = resource.strip_prefix("role/").unwrap_or_default();
    (service_ns == "acs"
        && service == "ram"
        && region.is_empty()
        && digits
        && !role_name.is_empty())
    .then_some(account)
}

/// The role name of a RAM role ARN that [`role_account`] accepts (the part after `role/`).
pub fn role_name(arn: &str) -> Option<&str> {
    role_account(arn)?;
    arn.trim().splitn(5, ':').nth(4)?.strip_prefix("role/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_in_any_case_and_render_in_ecs_spelling() {
        for (text, want) in [
            ("Accept", Some(Policy::Accept)),
            ("aCCEPT", Some(Policy::Accept)),
            ("drop", Some(Policy::Drop)),
            ("DROP", Some(Policy::Drop)),
            ("Allow", None),
            ("", None),
            (" Drop", None),
        ] {
            assert_eq!(Policy::parse(text), want, "{text:?}");
        }
        assert_eq!(Policy::Drop.to_string(), "Drop");
        assert_eq!(Policy::Accept.as_str(), "Accept");
    }

    #[test]
    fn role_arns_name_their_account() {
        for (arn, want) in [
            (
                "acs:ram::1234567890123456:role/sgpolicy",
                Some("1234567890123456"),
            ),
            (" acs:ram::2222:role/x \n", Some("2222")),
            ("acs:ram::2222:role/a:b", Some("2222")),
            ("acs:ram::2222:role/path/name", Some("2222")),
            ("acs:ram::2222:role/", None),
            ("acs:ram::2222:user/x", None),
            ("acs:ram:::role/x", None),
            ("acs:ram::12ab:role/x", None),
            ("acs:ram:cn-hangzhou:2222:role/x", None),
            ("acs:sts::2222:role/x", None),
            ("arn:ram::2222:role/x", None),
            ("acs:ram::2222", None),
            ("acs:ram::2222:", None),
            ("", None),
        ] {
            assert_eq!(role_account(arn), want, "{arn:?}");
        }
        assert_eq!(role_name(" acs:ram::2222:role/a:b "), Some("a:b"));
        assert_eq!(role_name("acs:ram::2222:user/x"), None);
    }
}
