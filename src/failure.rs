//! Why a group could not be reconciled in this pass, as a type: the caller branches on the variant
//! (is it fatal for the account, is the cloud in trouble, was a write sent), never on a code string.
//! `code()` and `Display` keep the words reports, audit lines and docs have always shown.

use crate::accounts::{Unreachable, ASSUME_ROLE};
use crate::ecs::api::MODIFY_POLICY;
use crate::ecs::{EcsError, ErrorClass};
use crate::model::{Account, Policy};

/// Displayed as `action: code: message`, the shape ECS errors have always been shown in; the local
/// conditions' words are written once, in [`Failure::message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// ECS (or its transport) failed the call; see `EcsError` for the classification.
    Ecs(EcsError),
    /// The group's account could not be reached (its role could not be assumed).
    Account(Unreachable),
    /// The daemon is shutting down: the request was never started.
    ShuttingDown { action: &'static str },
    /// `--pass-timeout` passed before this group was done.
    DeadlineExceeded { action: &'static str },
    /// A selector's listing kept returning a next page; stopped as a guard against a looping
    /// NextToken.
    TooManyPages { pages: usize },
    /// ECS acknowledged every write of the correction, yet the group still differs.
    WriteNotEffective { writes: u32, to: Policy },
    /// The pass ended (deadline, shutdown, a fatal error of its account) before this group's read
    /// was made or answered; planned as a read failure that blames the cloud, so the daemon retries.
    NotObserved,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Ecs(e) => e.fmt(f),
            Failure::Account(u) => u.fmt(f),
            // Shown alone, as reports have always shown it: no call failed.
            Failure::NotObserved => f.write_str(&self.message()),
            _ => write!(f, "{}: {}: {}", self.action(), self.code(), self.message()),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Ecs(e) => e.source(),
            Failure::Account(u) => u.source(),
            _ => None,
        }
    }
}

impl From<EcsError> for Failure {
    fn from(e: EcsError) -> Failure {
        Failure::Ecs(e)
    }
}

impl From<Unreachable> for Failure {
    fn from(u: Unreachable) -> Failure {
        Failure::Account(u)
    }
}

const DEADLINE_MESSAGE: &str =
    "the pass deadline (--pass-timeout) passed before this group was done; the next pass will retry it";

impl Failure {
    /// The code shown as `error_code` in reports and audit lines.
    pub fn code(&self) -> &str {
        match self {
            Failure::Ecs(e) => e.code(),
            Failure::Account(_) => crate::accounts::ACCOUNT_UNAVAILABLE,
            Failure::ShuttingDown { .. } => "ShuttingDown",
            Failure::DeadlineExceeded { .. } => "PassDeadlineExceeded",
            Failure::TooManyPages { .. } => "TooManyPages",
            Failure::WriteNotEffective { .. } => "WriteNotEffective",
            Failure::NotObserved => "NotObserved",
        }
    }

    /// The call that failed.
    pub fn action(&self) -> &'static str {
        match self {
            Failure::Ecs(e) => e.action(),
            Failure::Account(_) => ASSUME_ROLE,
            Failure::ShuttingDown { action } | Failure::DeadlineExceeded { action } => action,
            Failure::TooManyPages { .. } => crate::ecs::api::DESCRIBE_GROUPS,
            Failure::WriteNotEffective { .. } => MODIFY_POLICY,
            Failure::NotObserved => crate::ecs::api::DESCRIBE_ATTRIBUTE,
        }
    }

    /// The message alone, without action and code (the audit line's `error`).
    pub fn message(&self) -> String {
        match self {
            Failure::Ecs(e) => e.message().to_string(),
            Failure::Account(u) => u.message(),
            Failure::ShuttingDown { .. } => "not started: sgpolicy is shutting down".to_string(),
            Failure::DeadlineExceeded { .. } => DEADLINE_MESSAGE.to_string(),
            Failure::TooManyPages { pages } => format!("stopped listing after {pages} pages"),
            Failure::WriteNotEffective { writes, to } => {
                format!("ECS acknowledged {writes} writes but the group is still not {to}")
            }
            Failure::NotObserved => "the group was not read in this pass".to_string(),
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            Failure::Ecs(e) => e.request_id(),
            _ => None,
        }
    }

    /// Every further request to this account would fail the same way (signature, key, permission).
    pub fn is_fatal_for_account(&self) -> bool {
        matches!(self, Failure::Ecs(e) if e.class() == ErrorClass::Fatal)
    }

    /// Whether the failure says the cloud (or the way to it), not this one group, is in trouble: the
    /// daemon then reports itself unready and retries the pass with backoff.
    pub fn is_cloud_trouble(&self) -> bool {
        match self {
            Failure::Ecs(e) => e.class() != ErrorClass::PerGroup,
            Failure::Account(_) | Failure::DeadlineExceeded { .. } => true,
            Failure::TooManyPages { .. } | Failure::WriteNotEffective { .. } => true,
            Failure::NotObserved => true,
            Failure::ShuttingDown { .. } => false,
        }
    }

    /// Whether a ModifySecurityGroupPolicy request went out (and so belongs in the audit trail).
    pub fn after_a_write_was_sent(&self) -> bool {
        self.action() == MODIFY_POLICY && !matches!(self, Failure::ShuttingDown { .. })
    }

    /// The same failure saying which account it is about; the report shows one fatal error only.
    pub fn in_account(self, account: &str) -> Failure {
        match self {
            Failure::Ecs(EcsError::Api(mut e)) if Account::of(account) != Account::Own => {
                e.message = format!("account {account}: {}", e.message);
                Failure::Ecs(EcsError::Api(e))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Why;
    use crate::ecs::ApiError;

    fn api(status: Option<u16>, code: &str) -> Failure {
        Failure::Ecs(EcsError::Api(ApiError {
            action: MODIFY_POLICY,
            status,
            code: code.into(),
            message: "m".into(),
            request_id: Some("R1".into()),
            retry_after_ms: None,
        }))
    }

    #[test]
    fn local_conditions_keep_their_documented_words_and_codes() {
        let cases = [
            (
                Failure::ShuttingDown { action: MODIFY_POLICY },
                "ShuttingDown",
                "ModifySecurityGroupPolicy: ShuttingDown: not started: sgpolicy is shutting down",
            ),
            (
                Failure::DeadlineExceeded { action: "DescribeSecurityGroupAttribute" },
                "PassDeadlineExceeded",
                "DescribeSecurityGroupAttribute: PassDeadlineExceeded: the pass deadline (--pass-timeout) passed before this group was done; the next pass will retry it",
            ),
            (
                Failure::WriteNotEffective { writes: 2, to: Policy::Drop },
                "WriteNotEffective",
                "ModifySecurityGroupPolicy: WriteNotEffective: ECS acknowledged 2 writes but the group is still not Drop",
            ),
            (
                Failure::Account(Unreachable { account: "2222".into(), why: Why::NoRole }),
                "AccountUnavailable",
                "AssumeRole: AccountUnavailable: account 2222: no file names a role for it",
            ),
            (
                Failure::NotObserved,
                "NotObserved",
                "the group was not read in this pass",
            ),
        ];
        for (f, code, text) in cases {
            assert_eq!(f.code(), code);
            assert_eq!(f.to_string(), text);
            assert!(text.ends_with(&f.message()), "{text} / {}", f.message());
        }
    }

    #[test]
    fn classification_is_by_variant() {
        assert!(api(Some(403), "Forbidden.RAM").is_fatal_for_account());
        assert!(!api(Some(404), "InvalidSecurityGroupId.NotFound").is_fatal_for_account());
        assert!(!Failure::DeadlineExceeded {
            action: MODIFY_POLICY
        }
        .is_fatal_for_account());
        // A pass cut short by a shutdown is not the cloud's fault; a deadline or an account is.
        assert!(!Failure::ShuttingDown {
            action: MODIFY_POLICY
        }
        .is_cloud_trouble());
        assert!(Failure::DeadlineExceeded {
            action: MODIFY_POLICY
        }
        .is_cloud_trouble());
        assert!(!api(Some(404), "InvalidSecurityGroupId.NotFound").is_cloud_trouble());
        assert!(api(Some(503), "ServiceUnavailable").is_cloud_trouble());
        // A write was sent unless the shutdown stopped it first.
        assert!(api(Some(500), "InternalError").after_a_write_was_sent());
        assert!(!Failure::ShuttingDown {
            action: MODIFY_POLICY
        }
        .after_a_write_was_sent());
    }

    #[test]
    fn a_fatal_error_names_its_account() {
        let f = api(Some(403), "Forbidden.RAM").in_account("2222");
        assert_eq!(f.message(), "account 2222: m");
        assert_eq!(api(Some(403), "X").in_account("").message(), "m");
    }
}
