//! Finding and reading the policy files of a folder: recursion, symlinks, dot entries, size limits, UTF-8.
//!
//! Entries are visited in byte-wise sorted name order, so the result never depends on the filesystem.
//! Names starting with a dot (files and folders, e.g. `.git`, Kubernetes' `..data`) are skipped below the
//! root, but symlinks are followed: a ConfigMap volume's `a.yaml -> ..data/a.yaml` is read as `a.yaml`.
//!
//! The walk stays inside the folder. A symlink is followed only when its fully resolved target lies
//! inside the resolved root (so ConfigMap `..data` links and a git-sync `current -> rev` root keep
//! working); a link to a folder or with a policy name that leads anywhere else is an error naming the
//! link and its target, and nothing behind it is read: someone with write access to the repository
//! must not be able to make sgpolicy walk `/` or echo `/proc/self/environ` into an error message. A
//! link with another name that leads out is not followed either (it would not be read anyway).
//!
//! Every folder is entered once, by its real path (the first path in sorted order): a link back to an
//! ancestor and a "link farm" of folders linking to each other cost one visit each, never a loop or
//! an exponential walk. The same file reached by several paths is read once, under the first path.
//! `.yaml`/`.yml` are matched case-insensitively. A dangling symlink with a policy file name, a policy
//! name that is not a regular file (e.g. a FIFO, which could block forever) and unreadable folders are
//! errors, because silently ignoring part of the desired state could undo a change someone made.
//! A read beyond one of the [`Limits`] stops with an error saying which limit, never a hang.

use super::yaml::Pos;
use super::LoadError;
use crate::escape;
use crate::model::Location;
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Deepest folder nesting followed below the root. Policy repositories nest a few levels (team,
/// account, region); a deeper tree is a mistake or an attack.
pub const MAX_DIR_DEPTH: usize = 32;
/// Most directory entries of any name (files, folders, links) looked at in one read: bounds the work
/// a folder full of unrelated files can cause (a checked-in `node_modules`).
pub const MAX_ENTRIES: usize = 100_000;
/// Most policy files in one folder: ten times the largest estate measured in docs/scale.md.
pub const MAX_FILES: usize = 10_000;
/// Most bytes of all policy files together (or `--max-file-bytes`, if that is larger): bounds the
/// memory a read takes.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Longest one read of the folder (walk, read and parse) may take, checked before every entry and
/// file. A folder of 10,000 files validated in 1.9 s (0.5 s of CPU, debug build); past the budget the
/// read stops with an error instead of dragging a pass on (a slow network file system), and the daemon
/// keeps its last good state. A single system call that never returns cannot be interrupted from here.
pub const TIME_BUDGET: Duration = Duration::from_secs(30);

/// The limits of one read of the folder; [`LIMITS`] are the stated ones, tests shrink them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub depth: usize,
    pub entries: usize,
    pub files: usize,
    pub total_bytes: u64,
    pub time: Duration,
}

/// The stated limits (README "Policy folder limits").
pub(crate) const LIMITS: Limits = Limits {
    depth: MAX_DIR_DEPTH,
    entries: MAX_ENTRIES,
    files: MAX_FILES,
    total_bytes: MAX_TOTAL_BYTES,
    time: TIME_BUDGET,
};

/// What one read of the folder has used of its [`Limits`]; once one is exceeded, the read stops.
pub(crate) struct Budget {
    limits: Limits,
    started: Instant,
    entries: usize,
    bytes: u64,
    exceeded: bool,
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            limits: *limits,
            started: Instant::now(),
            entries: 0,
            bytes: 0,
            exceeded: false,
        }
    }

    /// Whether a limit was exceeded: nothing more is read.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    fn stop(&mut self, at: &Path, message: String) -> LoadError {
        self.exceeded = true;
        error_at(at, message)
    }

    /// An error once the time budget is spent.
    pub(crate) fn check_time(&mut self, at: &Path) -> Result<(), LoadError> {
        let limit = self.limits.time;
        if self.started.elapsed() >= limit {
            let secs = limit.as_secs();
            return Err(self.stop(
                at,
                format!(
                    "reading the policy folder took longer than {secs}s (the limit) and stopped here; \
                     is the folder on a slow or hung file system?"
                ),
            ));
        }
        Ok(())
    }

    fn count_entry(&mut self, at: &Path) -> Result<(), LoadError> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            let n = self.limits.entries;
            return Err(self.stop(
                at,
                format!(
                    "the policy folder has more than {n} entries (files, folders and links of any name); \
                     not read (keep unrelated files out of it)"
                ),
            ));
        }
        self.check_time(at)
    }

    fn count_bytes(&mut self, size: u64, at: &Path) -> Result<(), LoadError> {
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.total_bytes {
            let n = self.limits.total_bytes;
            return Err(self.stop(
                at,
                format!("more than {n} bytes of policy files in the folder together (the limit); not read"),
            ));
        }
        Ok(())
    }
}

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

/// One policy file found: the path it is named by under the folder, and the real path it is read
/// from (the one checked to lie inside the folder).
pub(crate) struct Found {
    pub path: PathBuf,
    pub real: PathBuf,
}

/// All policy files under `dir`, in sorted order, as paths under `dir`. Problems go to `errors`.
pub(crate) fn policy_files(
    dir: &Path,
    budget: &mut Budget,
    errors: &mut Vec<LoadError>,
) -> Vec<Found> {
    let root = match fs::metadata(dir).and_then(|m| Ok((m, fs::canonicalize(dir)?))) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errors.push(error_at(dir, "policy folder does not exist"));
            return Vec::new();
        }
        Err(e) => {
            errors.push(error_at(dir, format!("cannot read policy folder: {e}")));
            return Vec::new();
        }
        Ok((m, _)) if !m.is_dir() => {
            errors.push(error_at(dir, "policy folder path is not a folder"));
            return Vec::new();
        }
        Ok((_, root)) => root,
    };
    let mut walker = Walker {
        files: Vec::new(),
        seen_files: HashSet::new(),
        seen_dirs: HashSet::from([root.clone()]),
        root,
        budget,
        errors,
    };
    walker.walk(dir, 0);
    walker.files
}

struct Walker<'a> {
    /// The folder's real path: every link must resolve under it.
    root: PathBuf,
    files: Vec<Found>,
    seen_files: HashSet<PathBuf>,
    seen_dirs: HashSet<PathBuf>,
    budget: &'a mut Budget,
    errors: &'a mut Vec<LoadError>,
}

/// What one entry of a folder turned out to be.
enum Entry {
    Folder(PathBuf),
    PolicyFile(PathBuf),
    Skip,
}

impl Walker<'_> {
    /// The names in `dir`, sorted, each counted against the budget; `None` once it is exceeded.
    fn names(&mut self, dir: &Path) -> Option<Vec<std::ffi::OsString>> {
        let entries = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.errors
                    .push(error_at(dir, format!("cannot read folder: {e}")));
                return Some(Vec::new());
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
            if let Err(e) = self.budget.count_entry(dir) {
                self.errors.push(e);
                return None;
            }
        }
        names.sort();
        Some(names)
    }

    fn walk(&mut self, dir: &Path, depth: usize) {
        let Some(names) = self.names(dir) else { return };
        for name in names {
            if self.budget.exceeded() {
                return;
            }
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = dir.join(&name);
            match self.classify(&path) {
                Entry::Skip => {}
                Entry::Folder(real) => {
                    if !self.seen_dirs.insert(real) {
                        continue; // entered already (a link back to an ancestor, or a second path)
                    }
                    let max = self.budget.limits.depth;
                    if depth >= max {
                        self.errors.push(error_at(
                            &path,
                            format!("folders nested more than {max} levels deep are not read"),
                        ));
                        continue;
                    }
                    self.walk(&path, depth + 1);
                }
                Entry::PolicyFile(real) => {
                    if !self.seen_files.insert(real.clone()) {
                        continue;
                    }
                    if self.files.len() >= self.budget.limits.files {
                        let n = self.budget.limits.files;
                        let e = self.budget.stop(
                            &path,
                            format!(
                                "more than {n} policy files in the folder (the limit); not read"
                            ),
                        );
                        self.errors.push(e);
                        return;
                    }
                    self.files.push(Found { path, real });
                }
            }
        }
    }

    /// Looks at one entry without reading any content: a link is resolved and checked against the
    /// root before anything behind it is even opened.
    fn classify(&mut self, path: &Path) -> Entry {
        let policy_name = is_policy_name(path);
        let is_link = match fs::symlink_metadata(path) {
            Ok(m) if !m.is_symlink() && !m.is_dir() && !policy_name => return Entry::Skip,
            Ok(m) => m.is_symlink(),
            Err(_) => false,
        };
        let real = fs::canonicalize(path);
        let meta = fs::metadata(path);
        let (real, meta) = match (real, meta) {
            (Ok(real), Ok(meta)) => (real, meta),
            (_, Err(e)) | (Err(e), _) => {
                if policy_name {
                    let what = if is_link {
                        "broken symlink: its target cannot be read".to_string()
                    } else {
                        format!("cannot read file: {e}")
                    };
                    self.errors.push(error_at(path, what));
                } else if !is_link {
                    self.errors
                        .push(error_at(path, format!("cannot read: {e}")));
                }
                return Entry::Skip;
            }
        };
        if !real.starts_with(&self.root) {
            if meta.is_dir() || policy_name {
                let target = fs::read_link(path).unwrap_or_else(|_| real.clone());
                self.errors.push(error_at(
                    path,
                    format!(
                        "symlink to {}, outside the policy folder {}: not followed (a link may only \
                         point inside the folder)",
                        escape::quoted(&target.to_string_lossy()),
                        escape::text(&self.root.to_string_lossy())
                    ),
                ));
            }
            return Entry::Skip;
        }
        if meta.is_dir() {
            Entry::Folder(real)
        } else if !policy_name {
            Entry::Skip
        } else if !meta.is_file() {
            self.errors.push(error_at(
                path,
                "not a regular file; policy files must be files",
            ));
            Entry::Skip
        } else {
            Entry::PolicyFile(real)
        }
    }
}

/// Reads one policy file found by the walk (from its checked real path), refusing files larger than
/// `max_bytes` (checked before and while reading) and counting its bytes against the folder's budget.
pub(crate) fn read_policy_file(
    found: &Found,
    max_bytes: u64,
    budget: &mut Budget,
) -> Result<String, LoadError> {
    let path = found.path.as_path();
    budget.check_time(path)?;
    let too_big = |size: u64| {
        error_at(
            path,
            format!("file is {size} bytes, more than the limit of {max_bytes} bytes for one policy file"),
        )
    };
    let mut file = fs::File::open(&found.real)
        .map_err(|e| error_at(path, format!("cannot open file: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| error_at(path, format!("cannot read file: {e}")))?
        .len();
    if size > max_bytes {
        return Err(too_big(size));
    }
    budget.count_bytes(size, path)?;
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

/// UTF-8 text without a byte-order mark, or the position of the first invalid byte or of the first
/// character YAML forbids.
pub(crate) fn decode(mut bytes: Vec<u8>) -> Result<String, (Pos, String)> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let byte = bytes.get(bad).copied().unwrap_or(0);
        let valid = String::from_utf8_lossy(bytes.get(..bad).unwrap_or_default());
        (
            position_after(&valid),
            format!("not valid UTF-8 (byte 0x{byte:02x}); policy files must be UTF-8 text"),
        )
    })?;
    match text.char_indices().find(|(_, c)| !yaml_printable(*c)) {
        None => Ok(text),
        Some((at, c)) => Err((
            position_after(text.get(..at).unwrap_or_default()),
            format!(
                "character U+{:04X}{} is not allowed in YAML; policy files must be printable text",
                c as u32,
                if c == '\0' { " (NUL)" } else { "" }
            ),
        )),
    }
}

/// Where the character after `before` sits: 1-based line and column (in characters).
fn position_after(before: &str) -> Pos {
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, column }
}

/// YAML 1.2's printable set (§5.1, `c-printable`): tab, LF, CR, visible ASCII, NEL and the rest of
/// Unicode except the C1 controls, surrogates (which a Rust string cannot hold) and U+FFFE/U+FFFF.
/// yaml-rust2 takes a NUL for the end of the input, so without this check the groups after a NUL would
/// silently vanish and `Drop\0Accept` would read as `Drop`.
fn yaml_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}'
        | '\u{10000}'..='\u{10ffff}')
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
