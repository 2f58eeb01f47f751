//! The vocabulary every layer shares: what a group is called, what its policy can be, and where in the
//! policy folder a declaration came from. Kept free of I/O so the pure core can depend on it.

use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The two values ECS accepts for InnerAccessPolicy. Parsed case-insensitively because both the API and
/// the policy files accept any letter case; always rendered in ECS's canonical spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        if s.eq_ignore_ascii_case("accept") {
            Some(Policy::Accept)
        } else if s.eq_ignore_ascii_case("drop") {
            Some(Policy::Drop)
        } else {
            None
        }
    }

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

/// A security group id is only unique within its account and region, so every map in the program
/// (plan, tokens, fights, reports) is keyed by all three. `account` is the 16-digit id of the account a
/// policy file names with `account: {roleArn}`, and empty for the credential chain's own account: the
/// single-account setup stays unchanged in every output.
///
/// The three parts are [`SharedStr`]s: a pass holds several copies of every key (the desired state,
/// the plan, the result), and cloning one costs three reference counts instead of three allocations;
/// the loader hands every group of a file the same `account` and `region`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub account: SharedStr,
    pub region: SharedStr,
    pub id: SharedStr,
}

/// An immutable string whose clones share one allocation. Reads like a `&str` (`Deref`, `as_str`,
/// comparisons with `str` and `String`), prints and serialises as the text, and orders and hashes as
/// the text, so it can stand in for `String` in keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(s.into())
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(s.into())
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> Self {
        SharedStr(s.as_str().into())
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl GroupKey {
    /// A group of the credential chain's own account.
    pub fn new(region: impl Into<SharedStr>, id: impl Into<SharedStr>) -> Self {
        GroupKey::in_account("", region, id)
    }

    /// A group of `account` (empty: the chain's own account).
    pub fn in_account(
        account: impl Into<SharedStr>,
        region: impl Into<SharedStr>,
        id: impl Into<SharedStr>,
    ) -> Self {
        GroupKey {
            account: account.into(),
            region: region.into(),
            id: id.into(),
        }
    }
}

/// Whose account a group, selector or bucket is in. Keys store the account as its id text (empty for
/// the chain's own, which is also how JSON and metrics show it: no `account` at all); every decision
/// that depends on whose account it is reads it through this enum, never by testing for `""`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account<'a> {
    /// The credential chain's own account (files without `account:`).
    Own,
    /// An account a policy file names through a role, by its 16-digit id.
    Named(&'a str),
}

impl<'a> Account<'a> {
    /// The account an id text stands for: empty is the chain's own.
    pub fn of(id: &'a str) -> Account<'a> {
        match id {
            "" => Account::Own,
            id => Account::Named(id),
        }
    }

    /// The id of a named account; `None` for the chain's own.
    pub fn named(self) -> Option<&'a str> {
        match self {
            Account::Own => None,
            Account::Named(id) => Some(id),
        }
    }
}

/// An (account, region) pair: the unit of ECS quotas (and so of rate limiting, listing and work
/// order). `account` is empty for the chain's own account, as in [`GroupKey`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub account: SharedStr,
    pub region: SharedStr,
}

impl GroupKey {
    /// The (account, region) bucket the group lives in.
    pub fn bucket(&self) -> Bucket {
        Bucket {
            account: self.account.clone(),
            region: self.region.clone(),
        }
    }

    /// Whose account the group is in.
    pub fn owner(&self) -> Account<'_> {
        Account::of(&self.account)
    }

    /// Where the group lives, for a report column: `cn-hangzhou`, or `2222222222222222/cn-hangzhou`
    /// for a group of a named account.
    pub fn place(&self) -> String {
        match self.owner() {
            Account::Own => self.region.to_string(),
            Account::Named(account) => format!("{account}/{}", self.region),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.place(), self.id)
    }
}

/// The account a policy file governs, named by the RAM role sgpolicy assumes there (`account:
/// {roleArn, externalId}`). Lives in the pure core because the policy loader validates it and the
/// reconciler needs it to pick credentials.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountRef {
    pub role_arn: String,
    /// Shown to STS as `ExternalId`; treated as confidential (never printed).
    pub external_id: Option<String>,
}

impl fmt::Debug for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRef")
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A role ARN that is not `acs:ram::<account id>:role/<role name>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("roleArn {arn:?} is not acs:ram::<account id>:role/<role name>")]
pub struct BadRoleArn {
    pub arn: String,
}

impl AccountRef {
    /// Checks the ARN shape `acs:ram::<account id>:role/<name>`.
    pub fn new(role_arn: &str, external_id: Option<&str>) -> Result<AccountRef, BadRoleArn> {
        let r = AccountRef {
            role_arn: role_arn.trim().to_string(),
            external_id: external_id
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        };
        r.account_id()?;
        Ok(r)
    }

    /// The account id inside the role ARN: the account part of every [`GroupKey`] of the file.
    pub fn account_id(&self) -> Result<&str, BadRoleArn> {
        let bad = || BadRoleArn {
            arn: self.role_arn.clone(),
        };
        let rest = self.role_arn.strip_prefix("acs:ram::").ok_or_else(bad)?;
        let (id, role) = rest.split_once(':').ok_or_else(bad)?;
        let name = role.strip_prefix("role/").ok_or_else(bad)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
            return Err(bad());
        }
        Ok(id)
    }
}

/// Where a declaration (or a problem) sits in the policy folder. Lines and columns are 1-based, the way
/// editors and `path:line:col` jump-to-error conventions count them.
///
/// The path is shared: every declaration of a file points at one copy of its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub path: Arc<Path>,
    pub line: usize,
    pub column: usize,
}

/// `path:line:column`, the path escaped (`crate::escape::text`): a file name is untrusted text, and a
/// newline in it must not start a new line wherever a location is printed.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.to_string_lossy();
        write!(
            f,
            "{}:{}:{}",
            crate::escape::Text(&path),
            self.line,
            self.column
        )
    }
}

/// Whether sgpolicy may write a declared group (`enforce`, the default) or only plan and report its
/// drift (`observe`): the way to roll sgpolicy out onto an existing estate one team at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        if s.eq_ignore_ascii_case("enforce") {
            Some(Mode::Enforce)
        } else if s.eq_ignore_ascii_case("observe") {
            Some(Mode::Observe)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pass-level message that belongs to no single group result: a selector that matched nothing, two
/// selectors disagreeing about a group, a safety rail that held the writes back. `Error` notes make the
/// pass exit 1; warnings do not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub level: NoteLevel,
    pub message: String,
    /// The policy-file places the note is about (both selectors of a conflict, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteLevel {
    Warning,
    Error,
}

/// What DescribeSecurityGroups tells us that DescribeSecurityGroupAttribute does not: whether the
/// group can be modified at all.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupMeta {
    pub enterprise: bool,
    pub service_managed: bool,
    pub service_id: Option<String>,
    pub name: Option<String>,
    pub vpc_id: Option<String>,
}

impl GroupMeta {
    /// Why ECS would refuse a write, if it would.
    pub fn unmanageable_reason(&self) -> Option<String> {
        if self.enterprise {
            Some("enterprise-level security groups have no modifiable InnerAccessPolicy".into())
        } else if self.service_managed {
            Some(match &self.service_id {
                Some(id) => format!("managed by cloud service {id}"),
                None => "managed by a cloud service".into(),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_account_id_is_the_chains_own_and_any_other_is_named() {
        assert_eq!(Account::of(""), Account::Own);
        assert_eq!(Account::of("2222"), Account::Named("2222"));
        assert_eq!(GroupKey::new("cn-a", "sg-1").owner().named(), None);
        let named = GroupKey::in_account("2222", "cn-a", "sg-1");
        assert_eq!(named.owner().named(), Some("2222"));
        assert_eq!(named.place(), "2222/cn-a");
        assert_eq!(GroupKey::new("cn-a", "sg-1").place(), "cn-a");
    }

    #[test]
    fn shared_strings_behave_like_the_strings_they_replaced() {
        let a = GroupKey::in_account("", "cn-b", "sg-1");
        let b = GroupKey::in_account("", "cn-a", "sg-2");
        let c = GroupKey::in_account("1", "cn-a", "sg-0");
        let mut keys = vec![c.clone(), a.clone(), b.clone()];
        keys.sort();
        assert_eq!(
            keys,
            [b.clone(), a.clone(), c.clone()],
            "ordered by account, region, id"
        );
        assert_eq!(a.region, "cn-b");
        assert_eq!(a.region, *"cn-b");
        assert_eq!(a.region, String::from("cn-b"));
        assert_eq!(
            format!("{} {:?}", a.id, a.id),
            format!("{} {:?}", "sg-1", "sg-1")
        );
        assert_eq!(a.to_string(), "cn-b/sg-1");
        assert_eq!(c.to_string(), "1/cn-a/sg-0");
        assert_eq!(
            serde_json::to_string(&[&a, &c]).unwrap(),
            r#"[{"region":"cn-b","id":"sg-1"},{"account":"1","region":"cn-a","id":"sg-0"}]"#
        );
        let set: std::collections::HashSet<SharedStr> = [a.region.clone()].into();
        assert!(set.contains("cn-b"), "hashes as its text");
        let clone = a.clone();
        assert!(
            std::ptr::eq(clone.id.as_str(), a.id.as_str()),
            "a clone shares the text"
        );
    }
}
