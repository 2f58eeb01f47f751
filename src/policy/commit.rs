//! The Git commit behind the policy folder, for the audit trail and the revision metric: read by hand
//! (no libgit2), best effort, never an error.
//!
//! - git-sync publishes each commit as a worktree named after it and swaps a link to it
//!   (`root/repo -> .worktrees/<sha>`; older versions `rev-<sha>`): the first symlink on the folder's
//!   path whose target is named like a commit gives it.
//! - A Git checkout: the nearest `.git` (a folder, or a file `gitdir: ...` for worktrees) above the
//!   folder; `HEAD` is either a commit or `ref: refs/...`, resolved through the ref file or
//!   `packed-refs` (in the common dir for linked worktrees).

use std::fs;
use std::path::{Path, PathBuf};

fn is_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit of the folder at `path`, if it can be told.
pub fn commit_of(path: &Path) -> Option<String> {
    let path = std::path::absolute(path).ok()?;
    from_link(&path).or_else(|| from_checkout(&path))
}

fn from_link(path: &Path) -> Option<String> {
    // Resolve component by component, so a link anywhere on the path is seen.
    let mut current = PathBuf::new();
    for component in path.components() {
        current.push(component);
        if let Ok(target) = fs::read_link(&current) {
            let name = target.file_name()?.to_str()?;
            let name = name.strip_prefix("rev-").unwrap_or(name);
            if is_commit(name) {
                return Some(name.to_ascii_lowercase());
            }
            let parent = current.parent().map(Path::to_path_buf).unwrap_or_default();
            current = parent.join(target);
        }
    }
    None
}

fn from_checkout(path: &Path) -> Option<String> {
    let start = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dot_git = start
        .ancestors()
        .map(|a| a.join(".git"))
        .find(|g| g.exists())?;
    let git_dir = if dot_git.is_file() {
        let text = fs::read_to_string(&dot_git).ok()?;
        let rel = text.trim().strip_prefix("gitdir:")?.trim();
        dot_git.parent()?.join(rel)
    } else {
        dot_git
    };
    let head = fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    if is_commit(head) {
        return Some(head.to_ascii_lowercase());
    }
    let reference = head.strip_prefix("ref:")?.trim();
    if reference.split('/').any(|c| c == ".." || c.is_empty()) {
        return None;
    }
    let common = fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    for dir in [&git_dir, &common] {
        if let Ok(text) = fs::read_to_string(dir.join(reference)) {
            let sha = text.trim();
            if is_commit(sha) {
                return Some(sha.to_ascii_lowercase());
            }
        }
    }
    let packed = fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (sha, name) = line.split_once(' ')?;
        (name.trim() == reference && is_commit(sha)).then(|| sha.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "155a8b6b2c1f8e0c7d3e4f5a6b7c8d9e0f1a2b3c";
    const B: &str = "9f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";

    #[test]
    fn a_git_sync_link_names_the_commit_also_for_a_subfolder() {
        let root = tempfile::tempdir().unwrap();
        let wt = root.path().join(".worktrees").join(A).join("policies");
        fs::create_dir_all(&wt).unwrap();
        std::os::unix::fs::symlink(Path::new(".worktrees").join(A), root.path().join("repo"))
            .unwrap();
        assert_eq!(commit_of(&root.path().join("repo")).as_deref(), Some(A));
        assert_eq!(
            commit_of(&root.path().join("repo/policies")).as_deref(),
            Some(A)
        );
    }

    #[test]
    fn a_checkout_resolves_head_through_refs_and_packed_refs() {
        let root = tempfile::tempdir().unwrap();
        let git = root.path().join(".git");
        fs::create_dir_all(git.join("refs/heads")).unwrap();
        fs::create_dir_all(root.path().join("policies")).unwrap();
        fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{B} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(commit_of(&root.path().join("policies")).as_deref(), Some(B));
        fs::write(git.join("refs/heads/main"), format!("{A}\n")).unwrap();
        assert_eq!(commit_of(&root.path().join("policies")).as_deref(), Some(A));
        fs::write(git.join("HEAD"), format!("{B}\n")).unwrap();
        assert_eq!(
            commit_of(&root.path().join("policies")).as_deref(),
            Some(B),
            "detached HEAD"
        );
    }

    #[test]
    fn a_plain_folder_has_no_commit() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(commit_of(root.path()), None);
    }
}
