//! The file watcher: a thin adapter over `notify` that only says "something on the way to, or under,
//! the policy folder changed". Passes re-read the whole folder, so no event is ever trusted for what it
//! says; missing one is repaired by the resync interval.
//!
//! Watched, so the real ways folders change are all seen:
//! - the folder itself, recursively (editor temp-file + rename, `git checkout` of many files);
//! - every ancestor of the folder path, non-recursively, with only events naming a path component
//!   forwarded: git-sync swapping its link (`root/repo -> .worktrees/<sha>`, also when the folder is a
//!   subfolder of the link), the folder being removed, replaced or re-created;
//! - a Kubernetes ConfigMap volume's `..data` link swap happens inside the folder, so it is covered by
//!   the recursive watch.
//!
//! inotify watches inodes, not paths: after a swap the old watches point at the old worktree. So
//! [`FolderWatch::rearm`] (called at the start of every pass) compares each watched path's current
//! inode with the one it watched and re-establishes what changed.

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Which file a path resolves to right now (following symlinks).
type Identity = (u64, u64);

fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether an event can matter for `target`: anything under it, or a component of its path being
/// created, removed or renamed. Reads (open, close without writing) never matter: passes read the
/// folder themselves. Nor do writes to the content of a file that is not a policy file (a log file,
/// say): only its appearing, disappearing or being renamed can change what a pass reads. This is also
/// what keeps a log written next to, or inside, the folder from feeding itself.
pub fn is_relevant(event: &notify::Event, target: &Path) -> bool {
    if event.need_rescan() {
        return true;
    }
    let (structural, content) = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Data(_)) => (false, true),
        EventKind::Access(_) => return false,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
            (true, false)
        }
        _ => (false, false),
    };
    event.paths.iter().any(|p| {
        (p.starts_with(target) && (!content || crate::policy::is_policy_name(p)))
            || (structural && target.starts_with(p))
    })
}

/// A logging directive the binary adds to a `RUST_LOG` that does not name `notify` itself. notify logs every
/// raw inotify event at trace level, before any filter of ours sees it; with `RUST_LOG=trace` and the
/// log written into a watched folder, each line would be an event logged as another line, without end.
pub const QUIET_NOTIFY: &str = "notify=warn";

pub struct FolderWatch {
    target: PathBuf,
    watcher: RecommendedWatcher,
    /// Path → (mode, inode it was watched at).
    armed: BTreeMap<PathBuf, (RecursiveMode, Identity)>,
}

impl FolderWatch {
    /// Watches `target` (made absolute) and its ancestors; `on_change` runs on the watcher's thread for
    /// every relevant event and must not block.
    pub fn new(
        target: &Path,
        on_change: impl Fn() + Send + 'static,
    ) -> Result<FolderWatch, notify::Error> {
        let target = std::path::absolute(target).map_err(notify::Error::io)?;
        let filter_target = target.clone();
        // Nothing is logged per raw event (a log file in a watched folder would feed itself): the
        // pass a relevant event starts says why it ran.
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if is_relevant(&event, &filter_target) {
                    on_change();
                }
            }
            Err(e) => {
                // Typically the inotify watch limit; the pass that follows re-reads everything.
                tracing::warn!("file watcher: {e}");
                on_change();
            }
        };
        // Links are not followed: a link inside the folder to `/` would otherwise have the watcher
        // walk and watch the whole file system. Links inside the folder point at folders that are
        // inside it and watched anyway; the walk refuses the others.
        let config = notify::Config::default().with_follow_symlinks(false);
        let watcher = RecommendedWatcher::new(handler, config)?;
        let mut w = FolderWatch {
            target,
            watcher,
            armed: BTreeMap::new(),
        };
        w.rearm();
        Ok(w)
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the folder itself is currently being watched (false while it does not exist).
    pub fn watching_folder(&self) -> bool {
        self.armed.contains_key(&self.target)
    }

    /// Brings the watches in line with the filesystem as it is now; cheap when nothing moved.
    pub fn rearm(&mut self) {
        let mut wanted: Vec<(PathBuf, RecursiveMode)> = self
            .target
            .ancestors()
            .skip(1)
            .map(|a| (a.to_path_buf(), RecursiveMode::NonRecursive))
            .collect();
        wanted.push((self.target.clone(), RecursiveMode::Recursive));
        for (path, mode) in wanted {
            let now = identity(&path);
            let current = self.armed.get(&path).map(|(_, id)| *id);
            if now.is_some() && now == current {
                continue;
            }
            if current.is_some() {
                // The old inode may already be gone (inotify then dropped the watch itself).
                let _ = self.watcher.unwatch(&path);
                self.armed.remove(&path);
            }
            let Some(id) = now else { continue };
            match self.watcher.watch(&path, mode) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), recursive = (mode == RecursiveMode::Recursive), "watching");
                    self.armed.insert(path, (mode, id));
                }
                Err(e) => tracing::warn!(path = %path.display(), "cannot watch: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RenameMode};
    use notify::Event;

    fn ev(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_events_on_the_way_to_or_under_the_folder_count() {
        let t = Path::new("/git/repo/policies");
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(
            is_relevant(&ev(rename, "/git/repo"), t),
            "git-sync link swap"
        );
        assert!(is_relevant(&ev(rename, "/git/repo/policies/a.yaml"), t));
        assert!(is_relevant(
            &ev(EventKind::Create(CreateKind::Folder), "/git/repo/policies"),
            t
        ));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(is_relevant(&ev(write, "/git/repo/policies/sub/b.yml"), t));
        assert!(
            !is_relevant(&ev(write, "/git/repo"), t),
            "metadata of an ancestor"
        );
        assert!(!is_relevant(
            &ev(EventKind::Create(CreateKind::File), "/git/other"),
            t
        ));
        assert!(!is_relevant(
            &ev(
                EventKind::Create(CreateKind::File),
                "/git/repo/policies-old"
            ),
            t
        ));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(
            !is_relevant(&ev(open, "/git/repo/policies/a.yaml"), t),
            "our own reads"
        );
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(is_relevant(&ev(closed, "/git/repo/policies/a.yaml"), t));
    }

    #[test]
    fn writes_to_a_file_that_is_not_a_policy_file_never_count() {
        let t = Path::new("/var/run/policies");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        for kind in [write, closed] {
            assert!(
                !is_relevant(&ev(kind, "/var/run/daemon.log"), t),
                "next to it"
            );
            assert!(
                !is_relevant(&ev(kind, "/var/run/policies/daemon.log"), t),
                "inside it"
            );
            assert!(is_relevant(&ev(kind, "/var/run/policies/team/a.YML"), t));
        }
        // A file or folder of any name appearing or going can change what a pass reads.
        let created = EventKind::Create(CreateKind::Any);
        assert!(is_relevant(&ev(created, "/var/run/policies/team"), t));
        let removed = EventKind::Remove(notify::event::RemoveKind::Any);
        assert!(is_relevant(&ev(removed, "/var/run/policies/old"), t));
    }
}
