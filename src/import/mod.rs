//! `sgpolicy import`: adopting an existing estate. Lists the security groups of each region
//! (DescribeSecurityGroups, 100 a page, with the `--vpc-id` and `--tag` filters sent to the server and
//! `--name-prefix` applied to each page), reads each manageable group's policy
//! (DescribeSecurityGroupAttribute, through the client's rate limiter, `--concurrency` in flight,
//! round-robin over regions), and writes one schema-v1 file per (account, region, VPC) (`render`).
//!
//! All or nothing: the file names are known from the listing alone, so an existing file stops the
//! import before any policy is read (`write::check`), and a group whose policy cannot be read stops it
//! before anything is written. A group deleted between the listing and its read is left out.
//!
//! Cost: `Σ_region ⌈n_region / 100⌉` listing calls plus one read per manageable group
//! (docs/scale.md, "Import and coverage").

pub mod render;
pub mod write;

use crate::ecs::{Cloud, GroupFilter, ListedGroup};
use crate::model::{AccountRef, GroupKey, Mode};
use crate::reconcile::order::interleave_by_bucket;
use crate::reconcile::survey::list_all;
use crate::reconcile::Failure;
use futures::stream::{self, StreamExt};
use render::{Adopted, Estate, Found};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to import and how, as the command line says it.
#[derive(Clone, Debug)]
pub struct ImportSettings {
    /// `--region`, each once, in the order given.
    pub regions: Vec<String>,
    /// `--vpc-id` and `--tag KEY=VALUE` (all must match), filtered by ECS.
    pub filter: GroupFilter,
    /// `--name-prefix`: only groups whose name starts with it.
    pub name_prefix: Option<String>,
    /// `--role-arn` (and `--external-id`): the account to import, written as the files' `account:`.
    pub account: Option<AccountRef>,
    /// `--mode observe`: every entry gets `mode: observe`.
    pub mode: Mode,
    /// Reads in flight at once (`--concurrency`).
    pub concurrency: usize,
    /// `--out`: the folder the files go to (created if missing).
    pub out: PathBuf,
    /// `--force`: overwrite files that exist.
    pub force: bool,
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("listing the security groups of {region} failed: {failure}; nothing was written")]
    List {
        region: String,
        failure: Box<Failure>,
    },
    #[error("{} already exist{}: {}; nothing was written (pass --force to overwrite, or choose another --out)",
        if paths.len() == 1 { "a file" } else { "files" },
        if paths.len() == 1 { "s" } else { "" },
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Exists { paths: Vec<PathBuf> },
    #[error("the policy of {} group(s) could not be read ({}); nothing was written; run the import again", failed.len(), first_failure(failed))]
    Reads { failed: Vec<(GroupKey, Failure)> },
    #[error("the policy of {group} was never read (a bug: please report it); nothing was written")]
    Unread { group: GroupKey },
    #[error("{}: {source}; {}", path.display(), if *partial { "the files written by this import were removed again" } else { "nothing was written" })]
    Io {
        path: PathBuf,
        source: std::io::Error,
        /// The failure happened after some files had been written (they are removed again).
        partial: bool,
    },
}

fn first_failure(failed: &[(GroupKey, Failure)]) -> String {
    match failed.first() {
        Some((key, e)) => format!("first: {key}: {e}"),
        None => "none named".to_string(),
    }
}

/// How far an import is, for the progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// One region's listing is done: `groups` matched the filters.
    Listed { groups: usize },
    /// `read` of `total` policies have been read.
    Read { read: usize, total: usize },
}

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: Vec<PathBuf>,
    pub declared: usize,
    pub skipped: usize,
    /// Listed but gone by the time their policy was read.
    pub vanished: usize,
}

/// At most one progress line per this interval while reading.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Lists, checks the output folder, reads and writes: the whole `sgpolicy import`. `client` is the
/// account's (the chain's own, or the assumed role's).
pub async fn import<C: Cloud>(
    client: &C,
    settings: &ImportSettings,
    mut progress: impl FnMut(Progress),
) -> Result<Summary, ImportError> {
    let listed = list(client, settings, &mut progress).await?;
    let account = account_id(settings);
    let names: Vec<String> = listed
        .iter()
        .map(|(region, g)| render::file_name(&account, region, g.meta.vpc_id.as_deref()))
        .collect();
    write::check(&settings.out, &names, settings.force)?;
    let (estate, vanished) = read(client, settings, listed, &mut progress).await?;
    let files = render::files(&estate, settings.mode);
    let written = write::write_files(&settings.out, &files, settings.force)?;
    Ok(Summary {
        files: written,
        declared: files.iter().map(|f| f.declared).sum(),
        skipped: files.iter().map(|f| f.skipped).sum(),
        vanished,
    })
}

fn account_id(settings: &ImportSettings) -> String {
    settings
        .account
        .as_ref()
        .and_then(|a| a.account_id().ok())
        .unwrap_or_default()
        .to_string()
}

/// Every group of every region that passes the filters, with its region.
pub async fn list<C: Cloud>(
    client: &C,
    settings: &ImportSettings,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<(String, ListedGroup)>, ImportError> {
    // Regions are listed side by side (each has its own quota), and reported in the order given.
    let mut listings = stream::iter(&settings.regions)
        .map(|region| async move { (region, list_all(client, region, &settings.filter).await) })
        .buffered(settings.regions.len().max(1));
    let mut out = Vec::new();
    while let Some((region, listing)) = listings.next().await {
        let groups = listing.map_err(|failure| ImportError::List {
            region: region.clone(),
            failure: Box::new(failure),
        })?;
        let before = out.len();
        out.extend(
            groups
                .into_iter()
                .filter(|g| match &settings.name_prefix {
                    Some(p) => g.meta.name.as_deref().unwrap_or("").starts_with(p.as_str()),
                    None => true,
                })
                .map(|g| (region.clone(), g)),
        );
        progress(Progress::Listed {
            groups: out.len() - before,
        });
    }
    Ok(out)
}

/// Reads the policy of every manageable listed group; the others are kept with their reason.
/// Returns the estate and how many groups vanished before their read.
pub async fn read<C: Cloud>(
    client: &C,
    settings: &ImportSettings,
    listed: Vec<(String, ListedGroup)>,
    progress: &mut impl FnMut(Progress),
) -> Result<(Estate, usize), ImportError> {
    let mut groups = found(&account_id(settings), listed);
    let mut gone = read_policies(client, settings, &mut groups, progress).await?;
    let vanished = gone.len();
    gone.sort_unstable();
    for i in gone.into_iter().rev() {
        groups.remove(i);
    }
    // Every read either answered or failed above; a group still unread would be written with no
    // policy, so it is an error rather than a guess.
    if let Some(g) = groups.iter().find(|g| g.state == Adopted::Unread) {
        return Err(ImportError::Unread {
            group: g.key.clone(),
        });
    }
    Ok((
        Estate {
            account: settings.account.clone(),
            groups,
        },
        vanished,
    ))
}

/// The listed groups of `account`, each unread or skipped with its reason (ECS would refuse to
/// change it, or its id cannot be a policy file's key).
fn found(account: &str, listed: Vec<(String, ListedGroup)>) -> Vec<Found> {
    listed
        .into_iter()
        .map(|(region, g)| {
            let state = match g.meta.unmanageable_reason() {
                Some(why) => Adopted::Skipped(why),
                None => match render::id_problem(&g.id) {
                    Some(why) => Adopted::Skipped(why),
                    None => Adopted::Unread,
                },
            };
            Found {
                key: GroupKey::in_account(account, region, g.id),
                name: g.meta.name,
                vpc_id: g.meta.vpc_id,
                tags: g.tags,
                state,
            }
        })
        .collect()
}

/// Reads the policy of every unread group into it, in the order work starts, with a progress line
/// at most every [`PROGRESS_EVERY`]. Returns the indices of the groups that vanished before their
/// read; any other failed read fails the import (all or nothing), naming every such group.
async fn read_policies<C: Cloud>(
    client: &C,
    settings: &ImportSettings,
    groups: &mut [Found],
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<usize>, ImportError> {
    let to_read: Vec<(usize, GroupKey)> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.state == Adopted::Unread)
        .map(|(i, g)| (i, g.key.clone()))
        .collect();
    let total = to_read.len();
    let to_read = interleave_by_bucket(to_read, |(_, k)| (&k.account, &k.region));
    let mut reads = stream::iter(to_read)
        .map(|(i, key)| async move {
            let r = client.describe_attribute(&key).await;
            (i, key, r)
        })
        .buffer_unordered(settings.concurrency.max(1));
    let (mut done, mut failed, mut gone) = (0usize, Vec::new(), Vec::new());
    let mut shown = Instant::now();
    while let Some((i, key, r)) = reads.next().await {
        done += 1;
        match r {
            Ok(policy) => groups[i].state = Adopted::Policy(policy),
            Err(e) if e.is_not_found() => gone.push(i),
            Err(e) => failed.push((key, Failure::from(e))),
        }
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            progress(Progress::Read { read: done, total });
        }
    }
    drop(reads);
    if total > 0 {
        progress(Progress::Read { read: done, total });
    }
    if !failed.is_empty() {
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(ImportError::Reads { failed });
    }
    Ok(gone)
}

#[cfg(test)]
mod tests;
