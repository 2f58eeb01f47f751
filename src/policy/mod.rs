//! Desired state: the policy file schema, loading a folder, conflicts, and the revision digest.
//!
//! [`load_folder`] reads every `*.yaml`/`*.yml` file under a folder (see `walk` for which files),
//! parses each into a spanned tree (`yaml`), validates it against schema v1 (`schema`), and merges all
//! declarations (`merge`). Every problem of every file is collected and returned at once, sorted by
//! location; if there is any, there is no desired state, so a pass can never act on half a folder.
//! Besides groups by id (each `enforce` or `observe`), files may declare `selectors` (`selector`); they
//! are kept as declarations here and turned into groups at pass time by `crate::reconcile::selectors`.
//!
//! Decisions:
//! - A folder with no policy files at all is valid and declares zero groups (`files == 0`). Declaring
//!   nothing never causes a write (sgpolicy only changes groups that are declared), so this is safe, and it
//!   lets a new repository or an empty ConfigMap start cleanly; callers can warn on `files == 0`.
//! - YAML anchors and aliases are rejected, so alias bombs cannot expand; nesting is capped at 64 levels
//!   and a file at 200,000 nodes and `max_file_bytes` bytes.
//! - One YAML document per file: a second `---` document is an error (split it into its own file).
//! - An invalid `--region` value is reported once, at the folder.

mod bytes;
pub mod commit;
pub mod json_schema;
mod merge;
mod others;
mod schema;
mod selector;
mod walk;
pub(crate) mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_keep;
#[cfg(test)]
mod tests_walk;
#[cfg(test)]
mod tests_workflow;

pub use bytes::parse_file_bytes;
pub use merge::revision_of;
pub use selector::{glob_match, Selector};
pub(crate) use walk::is_policy_name;
pub use walk::{MAX_DIR_DEPTH, MAX_ENTRIES, MAX_FILES, MAX_TOTAL_BYTES, TIME_BUDGET};

use crate::model::{AccountRef, Bucket, GroupKey, Location, Mode, Note, Policy};
use schema::Fallback;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Most errors reported for one file; a hostile file could otherwise produce one per node.
const MAX_ERRORS_PER_FILE: usize = 100;

/// One group's declared policy and the place in the folder that declared it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredGroup {
    pub key: GroupKey,
    pub policy: Policy,
    pub source: Location,
    /// `observe`: drift is planned and reported but never written.
    pub mode: Mode,
}

/// Everything the policy folder asks for, plus the digest that names this exact desired state.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub groups: BTreeMap<GroupKey, DesiredGroup>,
    pub revision: String,
    pub files: usize,
    /// Declarations by tag/VPC/name, turned into `groups` at pass time by `crate::reconcile::selectors`.
    pub selectors: Vec<Selector>,
    /// What that resolution found worth saying (matched nothing, conflicts); empty after loading.
    pub notes: Vec<Note>,
    /// The role to assume for each account id that a file names (`GroupKey::account`). Groups with
    /// an empty account use the credential chain's own identity and have no entry here.
    pub accounts: BTreeMap<String, AccountRef>,
}

/// A problem with the folder, rendered `path:line:column: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub location: Location,
    pub message: String,
}

/// Both parts escaped (`crate::escape::text`): a message quotes tokens from the file, and wherever
/// the error is printed (stderr, logs, `/readyz`) it stays one line.
impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.location,
            crate::escape::Text(&self.message)
        )
    }
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub default_region: Option<String>,
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_region: None,
            max_file_bytes: 1024 * 1024,
        }
    }
}

/// Loads the desired state from every policy file under `dir`, or returns every problem found.
/// A folder that breaks one of the stated limits (`walk`'s `MAX_*` and [`TIME_BUDGET`]) is an error
/// saying which, returned as soon as it is found.
pub fn load_folder(dir: &Path, opts: &LoadOptions) -> Result<Desired, Vec<LoadError>> {
    load_folder_keeping(dir, opts, &|_, _| true).map(|loaded| loaded.desired)
}

/// What [`load_folder_keeping`] returns: the part of the desired state it kept, and the census of
/// the whole folder.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The groups and selectors of the kept buckets; the revision, file count and accounts of the
    /// whole folder.
    pub desired: Desired,
    pub census: Census,
}

/// Every (account, region) bucket the whole folder names (by groups or selectors) and how many groups
/// it declares there by id: the same on every replica of one revision, whatever each one keeps, so a
/// shard can say what it owns out of what (`crate::shard::Shard::assignment`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub buckets: BTreeMap<Bucket, usize>,
}

impl Census {
    /// The census of a whole desired state.
    pub fn of(desired: &Desired) -> Census {
        let mut census = Census::default();
        for key in desired.groups.keys() {
            *census.buckets.entry(key.bucket()).or_default() += 1;
        }
        for s in &desired.selectors {
            let bucket = Bucket {
                account: s.account.as_str().into(),
                region: s.region.as_str().into(),
            };
            census.buckets.entry(bucket).or_default();
        }
        census
    }

    /// Groups declared by id in the whole folder.
    pub fn groups(&self) -> usize {
        self.buckets.values().sum()
    }
}

/// [`load_folder`] for one shard: validates and digests the whole folder (the same errors, at the same
/// `file:line:column`, and the same revision as [`load_folder`]) but keeps only the groups and
/// selectors of the (account, region) buckets `keep` accepts. The others are never held as groups:
/// each file's are set aside compactly as it is merged (`others`: about 35 bytes a group) and, once
/// the whole folder is read, checked for duplicates, counted and digested bucket by bucket. So the
/// memory a replica keeps grows with the groups it owns, and its peak with the whole folder only by
/// those few bytes a group.
pub fn load_folder_keeping(
    dir: &Path,
    opts: &LoadOptions,
    keep: &dyn Fn(&str, &str) -> bool,
) -> Result<Loaded, Vec<LoadError>> {
    // Lines and columns are held as u32 (`others`): no file of 4 GiB or more is read.
    let opts = &LoadOptions {
        max_file_bytes: opts.max_file_bytes.min(u64::from(u32::MAX) - 1),
        ..opts.clone()
    };
    // A folder may always hold one file of the largest size `--max-file-bytes` allows.
    let limits = walk::Limits {
        total_bytes: walk::LIMITS.total_bytes.max(opts.max_file_bytes),
        ..walk::LIMITS
    };
    load_folder_within(dir, opts, &limits, keep)
}

fn load_folder_within(
    dir: &Path,
    opts: &LoadOptions,
    limits: &walk::Limits,
    keep: &dyn Fn(&str, &str) -> bool,
) -> Result<Loaded, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut budget = walk::Budget::new(limits);
    let fallback = fallback_region(dir, opts, &mut errors);
    let files = walk::policy_files(dir, &mut budget, &mut errors);
    let mut merger = merge::Merger::new(keep);
    let mut accounts = BTreeMap::new();
    // Each file's errors, capped per file once the conflicts found at the end have joined them.
    let mut per_file = PerFile::default();
    for found in &files {
        if budget.exceeded() {
            break;
        }
        let tree = match read_tree(found, opts, &mut budget) {
            Ok(tree) => tree,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let decls = schema::groups_of_file(tree.as_ref(), &found.path, fallback);
        drop(tree);
        let mut file_errors = decls.errors;
        merger.add_selectors(decls.selectors);
        if let Some((account, at)) = decls.account {
            merge::add_account(&mut accounts, account, at, &mut file_errors);
        }
        for group in decls.groups {
            merger.add(group, &mut file_errors);
        }
        file_errors.into_iter().for_each(|e| per_file.push(e));
    }
    let merged = merger.finish(&mut |e| per_file.push(e));
    let errors = per_file.listed(errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Loaded {
        desired: Desired {
            revision: merged.revision,
            groups: merged.groups,
            files: files.len(),
            selectors: merged.selectors,
            notes: Vec::new(),
            accounts: accounts
                .into_iter()
                .map(|(id, (account, _))| (id, account))
                .collect(),
        },
        census: merged.census,
    })
}

/// The errors of each file, by its path, each file's capped ([`Capped`]).
#[derive(Default)]
struct PerFile(HashMap<Arc<Path>, Capped>);

impl PerFile {
    fn push(&mut self, e: LoadError) {
        self.0.entry(e.location.path.clone()).or_default().push(e);
    }

    /// Every error, `errors` (the folder's own) and each file's, [`in_order`], duplicates dropped, a
    /// file's "more errors" line after the last of its errors shown.
    fn listed(self, mut errors: Vec<LoadError>) -> Vec<LoadError> {
        let mut summaries = Vec::new();
        for capped in self.0.into_values() {
            let (kept, summary) = capped.into_errors();
            errors.extend(kept);
            summaries.extend(summary);
        }
        errors.sort_by(in_order);
        errors.dedup();
        for summary in summaries {
            let at = errors.partition_point(|e| e.location <= summary.location);
            errors.insert(at, summary);
        }
        errors
    }
}

/// Reads and parses one policy file into its YAML tree (`None`: no document).
fn read_tree(
    found: &walk::Found,
    opts: &LoadOptions,
    budget: &mut walk::Budget,
) -> Result<Option<yaml::Node>, LoadError> {
    let text = walk::read_policy_file(found, opts.max_file_bytes, budget)?;
    yaml::parse(&text).map_err(|e| LoadError {
        location: schema::location(&found.path, e.pos),
        message: e.message,
    })
}

/// The region of files that name none (`--region`); an invalid one is an error of the folder.
fn fallback_region<'a>(
    dir: &Path,
    opts: &'a LoadOptions,
    errors: &mut Vec<LoadError>,
) -> Fallback<'a> {
    match opts.default_region.as_deref() {
        None => Fallback::None,
        Some(region) => match schema::region_problem(region) {
            None => Fallback::Region(region),
            Some(problem) => {
                errors.push(LoadError {
                    location: schema::location(dir, yaml::Pos::START),
                    message: format!("invalid --region: {problem}"),
                });
                Fallback::Invalid
            }
        },
    }
}

/// The order errors are listed in: by location, then by message, so the list is the same whatever
/// order they were found in (a shard finds the conflicts of the groups it does not keep last).
fn in_order(a: &LoadError, b: &LoadError) -> std::cmp::Ordering {
    (&a.location, &a.message).cmp(&(&b.location, &b.message))
}

/// One file's errors, at most [`MAX_ERRORS_PER_FILE`] of them (the first [`in_order`]) and a line
/// saying how many more there are: a hostile or broken file cannot flood the output, nor the memory
/// while the folder is read (at most twice the cap is held).
#[derive(Debug, Default)]
struct Capped {
    kept: Vec<LoadError>,
    more: usize,
}

impl Capped {
    fn push(&mut self, e: LoadError) {
        self.kept.push(e);
        if self.kept.len() >= 2 * MAX_ERRORS_PER_FILE {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.kept.len() > MAX_ERRORS_PER_FILE {
            self.kept.sort_by(in_order);
            self.more += self.kept.len() - MAX_ERRORS_PER_FILE;
            self.kept.truncate(MAX_ERRORS_PER_FILE);
        }
    }

    /// The errors shown, and the line saying how many more there are, if any (placed after them).
    fn into_errors(mut self) -> (Vec<LoadError>, Option<LoadError>) {
        self.trim();
        let summary = match self.kept.last() {
            Some(last) if self.more > 0 => Some(LoadError {
                location: last.location.clone(),
                message: format!("{} more errors in this file not shown", self.more),
            }),
            _ => None,
        };
        (self.kept, summary)
    }
}
