//! The groups of one bucket a load does not keep (another shard owns it), held compactly: what
//! finding duplicates and conflicts across the whole folder, counting its groups and digesting its
//! revision need, and nothing more.
//!
//! A kept group costs a `DesiredGroup` in the merge map and later in the sorted map (about 190 bytes
//! with its shared strings at load, measured with the benchmark in docs/scale.md). A group held here
//! costs its id's bytes in the bucket's text plus a 20-byte [`Row`]: about 35 bytes for an id like
//! `sg-bp1fg655nh68xyz9i5wr`. The rows are sorted by id once the whole folder is read, so equal ids
//! meet (a duplicate found as the kept map finds it, against the first declaration), and the bucket is
//! then digested and dropped before the next one is sorted.

use super::merge::{self, Revision};
use super::LoadError;
use crate::model::{Bucket, Location, Mode, Policy};
use std::path::Path;
use std::sync::Arc;

/// One bucket's groups that are not kept, in declaration order until [`Others::settle`].
#[derive(Debug, Default)]
pub(crate) struct Others {
    /// Every id pushed, one after another.
    ids: String,
    rows: Vec<Row>,
}

/// One declaration: where its id is in [`Others::ids`], what it declares and where (the file by its
/// index in the load's list of paths). Line and column fit: a load reads no file of `u32::MAX`
/// bytes or more (`super::load_folder`).
#[derive(Clone, Copy, Debug)]
struct Row {
    at: u32,
    file: u32,
    line: u32,
    column: u32,
    len: u16,
    drop: bool,
    observe: bool,
}

/// A declaration too large to hold compactly: an offset past `u32::MAX` (never within the loader's
/// byte limits) or an id longer than `u16::MAX` bytes (ids are at most 100 characters).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl Others {
    /// Holds one declaration of `id` at `line`:`column` of file number `file`.
    pub(crate) fn push(
        &mut self,
        id: &str,
        policy: Policy,
        mode: Mode,
        file: u32,
        (line, column): (usize, usize),
    ) -> Result<(), TooLarge> {
        let row = Row {
            at: u32::try_from(self.ids.len()).map_err(|_| TooLarge)?,
            file,
            line: u32::try_from(line).map_err(|_| TooLarge)?,
            column: u32::try_from(column).map_err(|_| TooLarge)?,
            len: u16::try_from(id.len()).map_err(|_| TooLarge)?,
            drop: policy == Policy::Drop,
            observe: mode == Mode::Observe,
        };
        self.ids.push_str(id);
        self.rows.push(row);
        Ok(())
    }

    fn id(&self, row: &Row) -> &str {
        let at = row.at as usize;
        &self.ids[at..at + usize::from(row.len)]
    }

    /// Sorts the bucket's declarations by id, reports each conflict with the first declaration of
    /// its id exactly as the kept map would have (`merge::conflict`), digests the first declaration
    /// of every id into `revision`, and returns how many distinct groups the bucket declares.
    pub(crate) fn settle(
        mut self,
        bucket: &Bucket,
        paths: &[Arc<Path>],
        revision: &mut Revision,
        conflicts: &mut dyn FnMut(LoadError),
    ) -> usize {
        let mut rows = std::mem::take(&mut self.rows);
        // Stable: among equal ids the first declared stays first, as in the kept map.
        rows.sort_by(|a, b| self.id(a).cmp(self.id(b)));
        let mut distinct = 0;
        let mut first: Option<&Row> = None;
        for row in &rows {
            let id = self.id(row);
            match first {
                Some(f) if self.id(f) == id => {
                    let later = (policy_of(row), mode_of(row));
                    let earlier = (policy_of(f), mode_of(f), location(paths, f));
                    if let Some(message) = merge::conflict(bucket, id, later, earlier) {
                        conflicts(LoadError {
                            location: location(paths, row),
                            message,
                        });
                    }
                }
                _ => {
                    first = Some(row);
                    distinct += 1;
                    revision.group(
                        &bucket.account,
                        &bucket.region,
                        id,
                        policy_of(row),
                        mode_of(row),
                    );
                }
            }
        }
        distinct
    }
}

fn policy_of(row: &Row) -> Policy {
    if row.drop {
        Policy::Drop
    } else {
        Policy::Accept
    }
}

fn mode_of(row: &Row) -> Mode {
    if row.observe {
        Mode::Observe
    } else {
        Mode::Enforce
    }
}

fn location(paths: &[Arc<Path>], row: &Row) -> Location {
    Location {
        path: paths[row.file as usize].clone(),
        line: row.line as usize,
        column: row.column as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_held_for_another_shard_costs_twenty_bytes_besides_its_id() {
        assert_eq!(std::mem::size_of::<Row>(), 20);
        let mut others = Others::default();
        others
            .push(
                "sg-bp1fg655nh68xyz9i5wr",
                Policy::Drop,
                Mode::Enforce,
                0,
                (3, 5),
            )
            .unwrap();
        assert_eq!(others.ids.len(), 23);
        assert_eq!(
            others
                .push(&"x".repeat(70_000), Policy::Drop, Mode::Enforce, 0, (1, 1))
                .map_err(|_| ()),
            Err(()),
            "an id past u16::MAX bytes is refused, not cut"
        );
    }
}
