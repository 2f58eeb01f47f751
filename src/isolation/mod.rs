//! The isolation check (issue 19): does a group declared `Drop` really keep its members apart?
//! `model` is the pure analysis, `ranges` its CIDR and port arithmetic, `read` the calls that gather
//! what the model needs (rules, members, prefix lists) through the [`crate::ecs::Cloud`] seam.
//!
//! The check works on a set of groups, so the daemon can run it for the groups an event names (a
//! targeted check) as well as for every declared group after a pass.

pub mod model;
pub mod ranges;
pub mod read;

#[cfg(test)]
mod tests;

pub use model::{Depends, Path, PathKind, Status, Unknown, Verdict};
