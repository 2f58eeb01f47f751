//! The one-shot run (`--once`, `--dry-run`, `plan`): load the folder, keep this shard's buckets,
//! connect, run one pass (`reconcile::run_pass`, the function the daemon's passes run too), survey
//! coverage when asked, and log the audit line of every write. The binary only prints the report
//! and maps it to an exit status.

use crate::accounts::connect::{self, ConnectError, ConnectSettings};
use crate::policy::{self, LoadError, LoadOptions};
use crate::reconcile::{self, PassOptions, PassReport};
use crate::shard::Shard;
use std::path::Path;

/// Everything a one-shot run needs, validated by the command-line layer.
pub struct Once<'a> {
    pub policies: &'a Path,
    pub load: &'a LoadOptions,
    pub connect: &'a ConnectSettings,
    pub pass: &'a PassOptions,
    pub shard: Shard,
    /// `--report-ungoverned`: `Some(fail_on_ungoverned)` to survey coverage after the pass.
    pub coverage: Option<bool>,
}

/// Why a one-shot run sent no request.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    /// The folder cannot be fully understood: every problem, located.
    #[error("{} problem(s) in the policy folder", .0.len())]
    Folder(Vec<LoadError>),
    /// No client could be made (credentials, endpoint, roles).
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Runs one pass as the flags say; the report, or why nothing was sent.
pub async fn run(once: Once<'_>) -> Result<PassReport, OnceError> {
    let desired = policy::load_folder(once.policies, once.load).map_err(OnceError::Folder)?;
    // Every replica validates the whole folder (above); this one works on its own buckets only.
    if !once.shard.is_sole() {
        let whole = once.shard.assignment(&desired);
        tracing::info!(
            shard = once.shard.index(),
            shards = once.shard.count(),
            buckets = whole.owned_buckets,
            buckets_total = whole.total_buckets,
            groups = whole.owned_groups,
            groups_total = desired.groups.len(),
            "{} owns {} of {} (account, region) buckets",
            once.shard,
            whole.owned_buckets,
            whole.total_buckets
        );
    }
    let desired = once.shard.restrict(desired);
    let (clients, _credentials) = connect::connect(once.connect).await?;
    let mut report = reconcile::run_pass(&clients, &desired, once.pass).await;
    if let Some(required) = once.coverage {
        let concurrency = once.pass.concurrency;
        reconcile::survey::add_to(&mut report, &clients, &desired, concurrency, required).await;
    }
    let commit = policy::commit::commit_of(once.policies);
    crate::report::audit::log_writes(&report, commit.as_deref());
    Ok(report)
}
