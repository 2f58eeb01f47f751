//! The deterministic ClientToken: what makes retries, restarts and a second replica harmless.
//!
//! `token = "sgpolicy-" rev12 "-" to "-" window "-" generation "-" hash16`, for example
//! `sgpolicy-3f2a9c1b7d4e-drop-202611280410-0-9c0d5e1f2a3b4c5d` (60 characters), where
//! `hash16` is the first 16 hex digits of SHA-256 over every input below, NUL-separated.
//!
//! Inputs and the guarantee each one buys:
//! - account (only when the group's file names one), region, group id, from, to: one token per intended
//!   change of one group. ECS remembers tokens per account, but the account is hashed anyway so that the
//!   same group id in two accounts never shares a token in our own logs and fight tracking. A retry of that change
//!   computes the same inputs, so it sends the same token (guarantee 1).
//! - no access key, host name or random value: two replicas (even signing with different keys of the
//!   same account) that see the same drift send the same token and ECS applies it once (guarantee 2).
//! - the policy revision: a new commit that asks for the same change gets a new token, and an auditor
//!   reading ActionTrail sees which revision asked (guarantee 4, with the `sgpolicy-` prefix).
//! - the observation window (UTC, [`WINDOW_SECS`] long, shown as its start `YYYYMMDDhhmm`): drift that
//!   recurs later is a new episode with a new token, so ECS's memory of old tokens cannot turn the
//!   correction into a silent no-op (guarantee 3).
//! - the attempt: a correction first sends the token above ([`Attempt::First`]), which every replica
//!   derives alike. ECS remembers tokens for a long time, so when the same drift recurs within one
//!   window (a console flipped back minutes after the last correction, or a Git edit back to an earlier
//!   state, whose revision is the earlier one), that token is a replay: ECS answers success and changes
//!   nothing. Nothing a replica can read from ECS changes with each flip, so once verification has
//!   *proved* the replay, the second and last write of the correction ([`Attempt::AfterReplay`]) adds
//!   the moment the replay was detected, to the millisecond: a token no earlier correction can have
//!   used. Two replicas that both reach this step send different tokens, both setting the same value
//!   (one extra, harmless call); every retry of that write still resends its token (guarantee 1). So a
//!   correction costs at most [`MAX_WRITES_PER_CORRECTION`] writes, however often the drift recurs.
//!
//! Two replicas observing on either side of a window boundary send different tokens; both writes then
//! set the same value, which ModifySecurityGroupPolicy treats as a no-op, so the cost is one extra call.

use crate::model::{Account, GroupKey, Policy};
use sha2::{Digest, Sha256};

/// Length of an observation window. Long enough that replicas on a common resync schedule agree; short
/// enough that a correction re-applied after a console flip is never blocked for long.
pub const WINDOW_SECS: i64 = 600;

/// Writes one correction may send: the shared token, then (only after a proven replay) a new one.
pub const MAX_WRITES_PER_CORRECTION: u32 = 2;

/// Which write of one correction a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The token every replica observing this drift in this window derives.
    First,
    /// Verification proved the first token a replay of an earlier correction; `detected_at_ms` (Unix
    /// milliseconds) makes this one new.
    AfterReplay { detected_at_ms: i64 },
}

impl Attempt {
    /// The digit shown in the token: 0 for the first write, 1 after a replay.
    fn digit(self) -> u32 {
        match self {
            Attempt::First => 0,
            Attempt::AfterReplay { .. } => 1,
        }
    }
}

/// Everything the token depends on. Time is an argument: this module reads no clock.
#[derive(Clone, Debug)]
pub struct TokenInput<'a> {
    pub key: &'a GroupKey,
    pub from: Policy,
    pub to: Policy,
    pub revision: &'a str,
    /// When the drift was observed, in Unix seconds.
    pub observed_at: i64,
    pub attempt: Attempt,
}

pub fn client_token(input: &TokenInput<'_>) -> String {
    let window_start = input.observed_at.div_euclid(WINDOW_SECS) * WINDOW_SECS;
    let mut hasher = Sha256::new();
    if let Account::Named(account) = input.key.owner() {
        // Before the version tag, so tokens of the chain's own account keep their documented value.
        hasher.update(b"account\0");
        hasher.update(account.as_bytes());
        hasher.update([0u8]);
    }
    for part in [
        "sgpolicy-token-v1",
        &input.key.region,
        &input.key.id,
        input.from.as_str(),
        input.to.as_str(),
        input.revision,
        &window_start.to_string(),
        &input.attempt.digit().to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    if let Attempt::AfterReplay { detected_at_ms } = input.attempt {
        hasher.update(detected_at_ms.to_string().as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let rev: String = input
        .revision
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let window = chrono::DateTime::from_timestamp(window_start, 0)
        .map(|t| t.format("%Y%m%d%H%M").to_string())
        .unwrap_or_else(|| "000000000000".to_string());
    format!(
        "sgpolicy-{rev}-{}-{window}-{}-{hash}",
        input.to.as_str().to_ascii_lowercase(),
        input.attempt.digit()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GroupKey {
        GroupKey::new("cn-hangzhou", "sg-bp67acfmxazb4ph0001")
    }

    fn input(k: &GroupKey, observed_at: i64, attempt: Attempt) -> TokenInput<'_> {
        TokenInput {
            key: k,
            from: Policy::Accept,
            to: Policy::Drop,
            revision: "3f2a9c1b7d4e",
            observed_at,
            attempt,
        }
    }

    const FIRST: Attempt = Attempt::First;

    fn after_replay(ms: i64) -> Attempt {
        Attempt::AfterReplay { detected_at_ms: ms }
    }

    // 2026-11-28T04:10:00Z
    const T0: i64 = 1_795_839_000;

    #[test]
    fn every_retry_of_one_change_sends_the_same_token() {
        let k = key();
        let first = client_token(&input(&k, T0 + 5, FIRST));
        for _ in 0..3 {
            assert_eq!(client_token(&input(&k, T0 + 5, FIRST)), first);
        }
    }

    #[test]
    fn two_replicas_observing_the_same_drift_moments_apart_agree() {
        let k = key();
        // Different processes observe a few minutes apart inside one window; nothing about the
        // process (keys, host, randomness) is an input, so they must agree.
        assert_eq!(
            client_token(&input(&k, T0 + 1, FIRST)),
            client_token(&input(&k, T0 + WINDOW_SECS - 1, FIRST))
        );
    }

    #[test]
    fn drift_recurring_in_a_later_window_gets_a_new_token() {
        let k = key();
        assert_ne!(
            client_token(&input(&k, T0, FIRST)),
            client_token(&input(&k, T0 + WINDOW_SECS, FIRST))
        );
    }

    #[test]
    fn a_proven_replay_gets_a_token_no_earlier_correction_can_have_used() {
        let k = key();
        let first = client_token(&input(&k, T0, FIRST));
        // Ten flips corrected within one window: every write after a replay has its own token.
        let mut seen = std::collections::BTreeSet::from([first.clone()]);
        for flip in 0..10 {
            let t = client_token(&input(
                &k,
                T0 + 30 * flip,
                after_replay(T0 * 1000 + 30_000 * flip + 7),
            ));
            assert!(t.contains("-202611280410-1-"), "{t}");
            assert!(seen.insert(t), "flip {flip} reused a token");
        }
        // A retry of one such write (same inputs) resends its token.
        let at = after_replay(T0 * 1000 + 5);
        assert_eq!(
            client_token(&input(&k, T0, at)),
            client_token(&input(&k, T0, at))
        );
    }

    #[test]
    fn token_differs_per_group_direction_and_revision() {
        let a = key();
        let b = GroupKey::new("cn-hangzhou", "sg-bp67acfmxazb4ph0002");
        let c = GroupKey::new("cn-shanghai", "sg-bp67acfmxazb4ph0001");
        let base = client_token(&input(&a, T0, FIRST));
        assert_ne!(base, client_token(&input(&b, T0, FIRST)));
        assert_ne!(base, client_token(&input(&c, T0, FIRST)));
        let mut other_rev = input(&a, T0, FIRST);
        other_rev.revision = "000000000000";
        assert_ne!(base, client_token(&other_rev));
        let mut reverse = input(&a, T0, FIRST);
        reverse.from = Policy::Drop;
        reverse.to = Policy::Accept;
        assert_ne!(base, client_token(&reverse));
    }

    #[test]
    fn the_hash_is_sha256_over_the_documented_inputs_and_the_account_prefixes_them() {
        let k = key();
        let parts = [
            "sgpolicy-token-v1",
            "cn-hangzhou",
            "sg-bp67acfmxazb4ph0001",
            "Accept",
            "Drop",
            "3f2a9c1b7d4e",
            "1795839000",
            "0",
        ]
        .map(|p| format!("{p}\0"))
        .concat();
        let hex = |bytes: &[u8]| -> String {
            Sha256::digest(bytes)[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let expected = format!(
            "sgpolicy-3f2a9c1b7d4e-drop-202611280410-0-{}",
            hex(parts.as_bytes())
        );
        assert_eq!(client_token(&input(&k, T0, FIRST)), expected);
        // The same group id and region in another account is another group: another token.
        let other =
            GroupKey::in_account("2222222222222222", "cn-hangzhou", "sg-bp67acfmxazb4ph0001");
        let with_account = format!("account\0{}\0{parts}", other.account);
        assert_eq!(
            client_token(&input(&other, T0, FIRST)),
            format!(
                "sgpolicy-3f2a9c1b7d4e-drop-202611280410-0-{}",
                hex(with_account.as_bytes())
            )
        );
    }

    #[test]
    fn token_is_short_ascii_and_names_sgpolicy_and_the_revision() {
        let k = GroupKey::new("ap-southeast-1", "sg-".to_string() + &"x".repeat(97));
        let mut i = input(&k, T0, after_replay(i64::MAX));
        i.to = Policy::Accept;
        let t = client_token(&i);
        assert!(t.len() <= 64, "{t} is {} long", t.len());
        assert!(t.is_ascii());
        assert!(t.starts_with("sgpolicy-3f2a9c1b7d4e-accept-202611280410-"));
    }

    #[test]
    fn hostile_revision_text_cannot_break_the_format() {
        let k = key();
        let mut i = input(&k, T0, FIRST);
        let rev = "é&=/ 💥".repeat(20);
        i.revision = &rev;
        let t = client_token(&i);
        assert!(t.len() <= 64 && t.is_ascii(), "{t}");
    }
}
