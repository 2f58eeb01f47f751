//! Finding and reading the policy files of a folder: recursion, symlinks, dot entries, size limits, UTF-8.
//!
//! Entries are visited in byte-wise sorted name order, so the result never depends on the filesystem.
//! Names starting with a dot (files and folders, e.g. `.git`, Kubernetes' `..data`) are skipped below the
//! root, but symlinks are followed: a ConfigMap volume's `a.yaml -> ..data/a.yaml` is read as `a.yaml`.
//! The same underlying file reached by several paths is read once, under the first path in sorted order.
//! A symlinked folder that leads back to one of its own ancestors is not entered again (loop guard).
//! `.yaml`/`.yml` are matched case-insensitively. A dangling symlink with a policy file name, a policy
//! name that is not a regular file (e.g. a FIFO, which could block forever) and unreadable folders are
//! errors, because silently ignoring part of the desired state could undo a change someone made.

use super::yaml::Pos;
use super::LoadError;
use crate::model::Location;
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Deepest folder nesting followed below the root.
pub(crate) const MAX_DIR_DEPTH: usize = 32;

fn error_at(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError {
        location: Location {
            path: path.into(),
            line: 1,
            column: 1,
        },
        message: message.into(),
    }
}

pub(crate) fn is_policy_name(name: &Path) -> bool {
    name.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// All policy files under `dir`, in sorted order, as paths under `dir`. Problems go to `errors`.
pub(crate) fn policy_files(dir: &Path, errors: &mut Vec<LoadError>) -> Vec<PathBuf> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errors.push(error_at(dir, "policy folder does not exist"));
            return Vec::new();
        }
        Err(e) => {
            errors.push(error_at(dir, format!("cannot read policy folder: {e}")));
            return Vec::new();
        }
        Ok(m) if !m.is_dir() => {
            errors.push(error_at(dir, "policy folder path is not a folder"));
            return Vec::new();
        }
        Ok(_) => {}
    }
    let mut walker = Walker {
        files: Vec::new(),
        seen: HashSet::new(),
        errors,
    };
    let mut ancestors = vec![fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())];
    walker.walk(dir, &mut ancestors);
    walker.files
}

struct Walker<'e> {
    files: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    errors: &'e mut Vec<LoadError>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, ancestors: &mut Vec<PathBuf>) {
        let entries = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.errors
                    .push(error_at(dir, format!("cannot read folder: {e}")));
                return;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => self
                    .errors
                    .push(error_at(dir, format!("cannot read folder: {e}"))),
            }
        }
        names.sort();
        for name in names {
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = dir.join(&name);
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    let dangling = fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
                    if is_policy_name(&path) {
                        let what = if dangling {
                            "broken symlink: its target cannot be read".to_string()
                        } else {
                            format!("cannot read file: {e}")
                        };
                        self.errors.push(error_at(&path, what));
                    } else if !dangling {
                        self.errors
                            .push(error_at(&path, format!("cannot read: {e}")));
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                let real = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if ancestors.contains(&real) {
                    continue; // a symlink back to an ancestor: following it would never end
                }
                if ancestors.len() > MAX_DIR_DEPTH {
                    self.errors.push(error_at(
                        &path,
                        format!(
                            "folders nested more than {MAX_DIR_DEPTH} levels deep are not read"
                        ),
                    ));
                    continue;
                }
                ancestors.push(real);
                self.walk(&path, ancestors);
                ancestors.pop();
            } else if is_policy_name(&path) {
                if !meta.is_file() {
                    self.errors.push(error_at(
                        &path,
                        "not a regular file; policy files must be files",
                    ));
                    continue;
                }
                let real = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if self.seen.insert(real) {
                    self.files.push(path);
                }
            }
        }
    }
}

/// Reads one policy file, refusing files larger than `max_bytes` (checked before and while reading).
pub(crate) fn read_policy_file(path: &Path, max_bytes: u64) -> Result<String, LoadError> {
    let too_big = |size: u64| {
        error_at(
            path,
            format!("file is {size} bytes, more than the limit of {max_bytes} bytes for one policy file"),
        )
    };
    let mut file =
        fs::File::open(path).map_err(|e| error_at(path, format!("cannot open file: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| error_at(path, format!("cannot read file: {e}")))?
        .len();
    if size > max_bytes {
        return Err(too_big(size));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| error_at(path, format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64)); // it grew while we were reading
    }
    decode(bytes).map_err(|(pos, message)| LoadError {
        location: Location {
            path: path.into(),
            line: pos.line,
            column: pos.column,
        },
        message,
    })
}

/// UTF-8 text without a byte-order mark, or the position of the first invalid byte.
pub(crate) fn decode(mut bytes: Vec<u8>) -> Result<String, (Pos, String)> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let byte = bytes.get(bad).copied().unwrap_or(0);
        let valid = String::from_utf8_lossy(bytes.get(..bad).unwrap_or_default());
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (
            Pos { line, column },
            format!("not valid UTF-8 (byte 0x{byte:02x}); policy files must be UTF-8 text"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_strips_bom_and_locates_bad_bytes() {
        assert_eq!(decode(b"\xEF\xBB\xBFa: 1".to_vec()), Ok("a: 1".to_string()));
        let (pos, msg) = decode(b"a: 1\nbb: \xff\xfe".to_vec()).expect_err("invalid");
        assert_eq!(pos, Pos { line: 2, column: 5 });
        assert!(msg.contains("not valid UTF-8 (byte 0xff)"), "{msg}");
        let (pos, _) = decode(b"\xc3".to_vec()).expect_err("truncated");
        assert_eq!(pos, Pos::START);
    }

    #[test]
    fn policy_names() {
        assert!(is_policy_name(Path::new("a.yaml")));
        assert!(is_policy_name(Path::new("x/a.YML")));
        assert!(!is_policy_name(Path::new("a.yaml.bak")));
        assert!(!is_policy_name(Path::new("yaml")));
        assert!(!is_policy_name(Path::new("a.json")));
    }
}
