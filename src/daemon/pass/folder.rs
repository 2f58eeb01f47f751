//! Loading the policy folder for a pass: a consistent read (never a mix of two versions of a swapped
//! folder), and keeping the last good state in force when the folder is broken.

use super::{Runner, State};
use crate::accounts::Fleet;
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

impl<F: Fleet> Runner<F> {
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

    /// Takes in a load result ([`Folder::take`], pure) and says what happened: log lines, metrics,
    /// readiness. Returns whether the folder loaded cleanly.
    pub(super) fn take_folder(
        &self,
        st: &mut State,
        loaded: Result<Desired, Vec<LoadError>>,
        commit: Option<String>,
    ) -> bool {
        let loaded = loaded.map(|d| {
            // Validated and named as a whole; this replica keeps only its buckets.
            self.metrics
                .shard
                .set_assignment(self.setup.shard.assignment(&d));
            self.setup.shard.restrict(d)
        });
        let taken = st.folder.take(loaded, commit);
        match (&taken, &st.folder) {
            (Taken::Loaded { news }, Folder::Loaded { desired: d, commit }) => {
                self.loaded(d, commit.as_deref(), *news);
                true
            }
            (Taken::Failed { repeated }, folder) => {
                self.failed(folder, *repeated);
                false
            }
            (Taken::Loaded { .. }, _) => unreachable!("a folder that loaded is Loaded"),
        }
    }

    fn loaded(&self, d: &Desired, commit: Option<&str>, news: bool) {
        let dir = self.setup.policies.display();
        if news {
            tracing::info!(
                revision = %d.revision, commit = commit.unwrap_or(""),
                groups = d.groups.len(), files = d.files,
                "policy folder {dir} loaded"
            );
            if d.files == 0 {
                tracing::warn!("policy folder {dir} has no policy files: no group is managed");
            }
            self.metrics.set_revision(&d.revision, commit);
        }
        self.metrics.load_errors.set(0);
        self.health.folder_problem(None);
        self.health.folder(
            FolderStatus::Loaded {
                revision: d.revision.clone(),
            },
            0,
        );
    }

    fn failed(&self, folder: &Folder, repeated: bool) {
        let dir = self.setup.policies.display();
        let errors = folder.errors();
        let n = errors.len();
        if repeated {
            tracing::warn!("policy folder {dir} still has {n} problem(s) (listed earlier)");
        } else {
            for e in errors {
                tracing::error!(target: "sgpolicy::policy", "{e}");
            }
            if let Some(first) = errors.first() {
                let kept = folder.in_force().map(|g| g.revision.as_str());
                self.tell.folder_error(&first.to_string(), n, kept);
            }
        }
        self.metrics.load_errors.set(n as i64);
        self.metrics.load_failures.inc();
        self.health
            .folder_problem(errors.first().map(ToString::to_string));
        match folder.in_force() {
            Some(g) => {
                tracing::error!(
                    "{n} problem(s) in policy folder {dir}: nothing from this version is applied; \
                     the last good revision {} stays in force",
                    g.revision
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
    }
}

/// The policy folder as the daemon holds it.
#[derive(Debug)]
pub(super) enum Folder {
    /// Nothing loaded yet; the problems of the last attempt (none before the first).
    NotLoaded { errors: Vec<LoadError> },
    Loaded {
        desired: Arc<Desired>,
        commit: Option<String>,
    },
    /// The folder broke after it had loaded: the last good state stays in force.
    Degraded {
        last_good: Arc<Desired>,
        commit: Option<String>,
        errors: Vec<LoadError>,
    },
}

/// What taking in a load result did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Loaded; `news` when it is worth announcing (a new revision or commit, or a recovery).
    Loaded { news: bool },
    /// It did not load; `repeated` when the problems are the ones already reported.
    Failed { repeated: bool },
}

impl Folder {
    /// The desired state being enforced, if any.
    pub(super) fn in_force(&self) -> Option<&Arc<Desired>> {
        match self {
            Folder::NotLoaded { .. } => None,
            Folder::Loaded { desired, .. } => Some(desired),
            Folder::Degraded { last_good, .. } => Some(last_good),
        }
    }

    /// The Git commit behind the desired state in force.
    pub(super) fn commit(&self) -> Option<&str> {
        match self {
            Folder::NotLoaded { .. } => None,
            Folder::Loaded { commit, .. } | Folder::Degraded { commit, .. } => commit.as_deref(),
        }
    }

    fn errors(&self) -> &[LoadError] {
        match self {
            Folder::Loaded { .. } => &[],
            Folder::NotLoaded { errors } | Folder::Degraded { errors, .. } => errors,
        }
    }

    /// The transition for one load result (pure).
    pub(super) fn take(
        &mut self,
        loaded: Result<Desired, Vec<LoadError>>,
        commit: Option<String>,
    ) -> Taken {
        let previous = std::mem::replace(self, Folder::NotLoaded { errors: Vec::new() });
        match loaded {
            Ok(d) => {
                let news = match &previous {
                    Folder::Loaded {
                        desired,
                        commit: was,
                    } => desired.revision != d.revision || *was != commit,
                    Folder::NotLoaded { .. } | Folder::Degraded { .. } => true,
                };
                *self = Folder::Loaded {
                    desired: Arc::new(d),
                    commit,
                };
                Taken::Loaded { news }
            }
            Err(errors) => {
                let repeated = previous.errors() == errors.as_slice();
                *self = match previous {
                    Folder::NotLoaded { .. } => Folder::NotLoaded { errors },
                    Folder::Loaded { desired, commit } => Folder::Degraded {
                        last_good: desired,
                        commit,
                        errors,
                    },
                    Folder::Degraded {
                        last_good, commit, ..
                    } => Folder::Degraded {
                        last_good,
                        commit,
                        errors,
                    },
                };
                Taken::Failed { repeated }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Location;

    fn version(revision: &str) -> Result<Desired, Vec<LoadError>> {
        Ok(Desired {
            revision: revision.into(),
            ..Desired::default()
        })
    }

    fn broken(line: usize) -> Result<Desired, Vec<LoadError>> {
        Err(vec![LoadError {
            location: Location {
                path: Path::new("prod.yaml").into(),
                line,
                column: 1,
            },
            message: "expected a mapping".into(),
        }])
    }

    fn revision_in_force(f: &Folder) -> Option<&str> {
        f.in_force().map(|d| d.revision.as_str())
    }

    #[test]
    fn a_folder_broken_from_the_start_enforces_nothing_and_reports_its_problems_once() {
        let mut f = Folder::NotLoaded { errors: Vec::new() };
        assert_eq!(f.take(broken(3), None), Taken::Failed { repeated: false });
        assert_eq!(f.take(broken(3), None), Taken::Failed { repeated: true });
        assert_eq!(f.take(broken(4), None), Taken::Failed { repeated: false });
        assert!(matches!(f, Folder::NotLoaded { .. }));
        assert_eq!(revision_in_force(&f), None);
        assert_eq!(f.take(version("r1"), None), Taken::Loaded { news: true });
        assert_eq!(revision_in_force(&f), Some("r1"));
    }

    #[test]
    fn a_folder_that_breaks_keeps_its_last_good_state_until_it_is_fixed() {
        let mut f = Folder::NotLoaded { errors: Vec::new() };
        f.take(version("r1"), Some("c1".into()));
        assert_eq!(
            f.take(broken(3), Some("c2".into())),
            Taken::Failed { repeated: false }
        );
        assert!(matches!(f, Folder::Degraded { .. }));
        assert_eq!(revision_in_force(&f), Some("r1"));
        assert_eq!(f.commit(), Some("c1"), "the commit of what is enforced");
        assert_eq!(f.take(broken(3), None), Taken::Failed { repeated: true });
        // Recovered, even to the same revision: worth saying.
        assert_eq!(
            f.take(version("r1"), Some("c1".into())),
            Taken::Loaded { news: true }
        );
        assert!(matches!(f, Folder::Loaded { .. }));
    }

    #[test]
    fn reloading_the_same_revision_and_commit_is_no_news_but_a_new_commit_is() {
        let mut f = Folder::NotLoaded { errors: Vec::new() };
        assert_eq!(
            f.take(version("r1"), Some("c1".into())),
            Taken::Loaded { news: true }
        );
        assert_eq!(
            f.take(version("r1"), Some("c1".into())),
            Taken::Loaded { news: false }
        );
        assert_eq!(
            f.take(version("r1"), Some("c2".into())),
            Taken::Loaded { news: true }
        );
        assert_eq!(
            f.take(version("r2"), Some("c2".into())),
            Taken::Loaded { news: true }
        );
    }
}
