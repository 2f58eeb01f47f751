//! Loading the policy folder for a pass: a consistent read (never a mix of two versions of a swapped
//! folder), and keeping the last good state in force when the folder is broken.

use super::{Runner, State};
use crate::daemon::health::FolderStatus;
use crate::policy::{self, Desired, LoadError, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A folder that keeps changing while it is read is read again at most this many times.
const LOAD_ATTEMPTS: usize = 3;

/// What the folder resolves to: a git-sync or ConfigMap swap during a read changes it.
fn folder_identity(dir: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    (
        std::fs::canonicalize(dir).ok(),
        std::fs::canonicalize(dir.join("..data")).ok(),
    )
}

fn load_consistent(dir: &Path, opts: &LoadOptions) -> Result<Desired, Vec<LoadError>> {
    for _ in 0..LOAD_ATTEMPTS {
        let before = folder_identity(dir);
        let result = policy::load_folder(dir, opts);
        if folder_identity(dir) == before {
            return result;
        }
    }
    Err(vec![LoadError {
        location: crate::model::Location {
            path: dir.into(),
            line: 1,
            column: 1,
        },
        message: "the policy folder was swapped while it was being read; reading it again on the next change"
            .to_string(),
    }])
}

impl Runner {
    pub(super) async fn load(&self) -> Result<Desired, Vec<LoadError>> {
        let dir = self.setup.policies.clone();
        let opts = self.setup.load.clone();
        match tokio::task::spawn_blocking(move || load_consistent(&dir, &opts)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(vec![LoadError {
                location: crate::model::Location {
                    path: self.setup.policies.as_path().into(),
                    line: 1,
                    column: 1,
                },
                message: format!("reading the policy folder was interrupted: {e}"),
            }]),
        }
    }

    /// Takes in a load result; returns whether the folder loaded cleanly.
    pub(super) fn take_folder(
        &self,
        st: &mut State,
        loaded: Result<Desired, Vec<LoadError>>,
        commit: Option<String>,
    ) -> bool {
        let dir = self.setup.policies.display();
        match loaded {
            Ok(d) => {
                let new_revision = st
                    .last_good
                    .as_ref()
                    .map_or(true, |g| g.revision != d.revision);
                if new_revision || st.commit != commit || !st.last_errors.is_empty() {
                    tracing::info!(
                        revision = %d.revision, commit = commit.as_deref().unwrap_or(""),
                        groups = d.groups.len(), files = d.files,
                        "policy folder {dir} loaded"
                    );
                    if d.files == 0 {
                        tracing::warn!(
                            "policy folder {dir} has no policy files: no group is managed"
                        );
                    }
                    self.metrics.set_revision(&d.revision, commit.as_deref());
                }
                self.metrics.load_errors.set(0);
                self.health.folder_problem(None);
                self.health.folder(
                    FolderStatus::Loaded {
                        revision: d.revision.clone(),
                    },
                    0,
                );
                // Validated and named as a whole; this replica keeps only its buckets.
                self.metrics
                    .shard
                    .set_assignment(self.setup.shard.assignment(&d));
                st.last_good = Some(Arc::new(self.setup.shard.restrict(d)));
                st.commit = commit;
                st.last_errors.clear();
                true
            }
            Err(errors) => {
                let n = errors.len();
                if errors == st.last_errors {
                    tracing::warn!("policy folder {dir} still has {n} problem(s) (listed earlier)");
                } else {
                    for e in &errors {
                        tracing::error!(target: "sgpolicy::policy", "{e}");
                    }
                }
                self.metrics.load_errors.set(n as i64);
                self.health
                    .folder_problem(errors.first().map(ToString::to_string));
                self.metrics.load_failures.inc();
                match &st.last_good {
                    Some(g) => {
                        tracing::error!(
                            "{n} problem(s) in policy folder {dir}: nothing from this version is applied; \
                             the last good revision {} stays in force", g.revision
                        );
                        self.health.folder(
                            FolderStatus::Degraded {
                                revision: g.revision.clone(),
                                errors: n,
                            },
                            n,
                        );
                    }
                    None => {
                        tracing::error!(
                            "{n} problem(s) in policy folder {dir} and no earlier version loaded: \
                             nothing is enforced until it is fixed"
                        );
                        self.health.folder(FolderStatus::NotLoaded, n);
                    }
                }
                st.last_errors = errors;
                false
            }
        }
    }
}
