//! The one-shot run (`--once`, `--dry-run`, `plan`): load the folder keeping this shard's buckets,
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
    // Every replica validates and digests the whole folder, and keeps its own buckets only.
    let keep = once.shard.keeps();
    let loaded =
        policy::load_folder_keeping(once.policies, once.load, &keep).map_err(OnceError::Folder)?;
    if !once.shard.is_sole() {
        let whole = once.shard.assignment(&loaded.census);
        tracing::info!(
            shard = once.shard.index(),
            shards = once.shard.count(),
            buckets = whole.owned_buckets,
            buckets_total = whole.total_buckets,
            groups = whole.owned_groups,
            groups_total = loaded.census.groups(),
            "{} owns {} of {} (account, region) buckets",
            once.shard,
            whole.owned_buckets,
            whole.total_buckets
        );
    }
    let desired = loaded.desired;
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
