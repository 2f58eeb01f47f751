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
mod schema;
mod selector;
mod walk;
pub(crate) mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_walk;
#[cfg(test)]
mod tests_workflow;

pub use bytes::parse_file_bytes;
pub use merge::revision_of;
pub use selector::{glob_match, Selector};
pub(crate) use walk::is_policy_name;
pub use walk::{MAX_DIR_DEPTH, MAX_ENTRIES, MAX_FILES, MAX_TOTAL_BYTES, TIME_BUDGET};

use crate::model::{AccountRef, GroupKey, Location, Mode, Note, Policy};
use schema::Fallback;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
    // A folder may always hold one file of the largest size `--max-file-bytes` allows.
    let limits = walk::Limits {
        total_bytes: walk::LIMITS.total_bytes.max(opts.max_file_bytes),
        ..walk::LIMITS
    };
    load_folder_within(dir, opts, &limits)
}

fn load_folder_within(
    dir: &Path,
    opts: &LoadOptions,
    limits: &walk::Limits,
) -> Result<Desired, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut budget = walk::Budget::new(limits);
    let fallback = fallback_region(dir, opts, &mut errors);
    let files = walk::policy_files(dir, &mut budget, &mut errors);
    let mut groups = HashMap::new();
    let mut selectors = Vec::new();
    let mut accounts = BTreeMap::new();
    for found in &files {
        if budget.exceeded() {
            break;
        }
        let path = &found.path;
        let tree = match read_tree(found, opts, &mut budget) {
            Ok(tree) => tree,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let decls = schema::groups_of_file(tree.as_ref(), path, fallback);
        let mut file_errors = decls.errors;
        selectors.extend(decls.selectors);
        if let Some((account, at)) = decls.account {
            merge::add_account(&mut accounts, account, at, &mut file_errors);
        }
        for group in decls.groups {
            merge::add(&mut groups, group, &mut file_errors);
        }
        errors.extend(capped(file_errors));
    }
    if errors.is_empty() {
        let groups = merge::sorted(groups);
        Ok(Desired {
            revision: merge::revision_with_selectors(&groups, &selectors),
            groups,
            files: files.len(),
            selectors,
            notes: Vec::new(),
            accounts: accounts
                .into_iter()
                .map(|(id, (account, _))| (id, account))
                .collect(),
        })
    } else {
        errors.sort_by(|a, b| a.location.cmp(&b.location));
        errors.dedup();
        Err(errors)
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

/// One file's errors, at most [`MAX_ERRORS_PER_FILE`] of them (the first by location) and a line
/// saying how many more there are: a hostile or broken file cannot flood the output.
fn capped(mut file_errors: Vec<LoadError>) -> Vec<LoadError> {
    if file_errors.len() > MAX_ERRORS_PER_FILE {
        file_errors.sort_by(|a, b| a.location.cmp(&b.location));
        let rest = file_errors.len() - MAX_ERRORS_PER_FILE;
        file_errors.truncate(MAX_ERRORS_PER_FILE);
        if let Some(last) = file_errors.last().map(|e| e.location.clone()) {
            file_errors.push(LoadError {
                location: last,
                message: format!("{rest} more errors in this file not shown"),
            });
        }
    }
    file_errors
}
