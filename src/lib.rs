//! sgpolicy keeps the InnerAccessPolicy of Alibaba Cloud ECS security groups equal to what a folder of
//! YAML files (usually a Git checkout) declares.
//!
//! # Layout
//!
//! The pure core — no I/O, no clock, no environment; time and credentials are arguments:
//! - [`model`]: shared vocabulary (policy values, group keys, file locations).
//! - [`policy`]: desired state: the file schema, loading a folder, conflicts, the revision digest.
//! - [`plan`]: `plan(desired, observed)` decides what each group needs.
//! - [`token`]: the deterministic ClientToken derivation and its guarantees.
//! - [`ecs::sign`]: RPC signature V1.
//!
//! The edges:
//! - [`ecs`]: the cloud boundary: typed calls, errors and their classification, the HTTP client.
//! - [`reconcile`]: one pass: load → observe → plan → apply → verify → report. The only writer.
//! - [`report`]: renders plans and results for humans (text, Markdown for PR comments) and machines (JSON).
//! - [`rails`]: safety rails between plan and writes (`--max-changes`, `--allow-open`); pure.
//! - [`selectors`]: turns tag/VPC/name selectors into groups at pass time (DescribeSecurityGroups).
//! - [`validate`]: `sgpolicy validate` and `sgpolicy schema`: offline checks for pre-commit and CI.
//! - [`schedule`]: the order a pass starts work in (round-robin over regions) and its deadline.
//! - [`cli`]: raw arguments → validated configuration.
//! - [`connect`]: configuration → credential chain → ECS clients (one-shot and daemon alike).
//! - [`clients`]: one ECS client per account: the chain's own, and one per role a policy file names.
//! - [`daemon`]: the long-lived mode: triggers (file changes, interval, SIGHUP), one pass at a time,
//!   last good state, incremental passes, fights, audit trail, shutdown. [`watch`]: the file watcher.
//!   [`metrics`] and [`health`]: Prometheus metrics, `/healthz` and `/readyz`.
//!
//! The built-in ECS simulator (the test double, and a demo for users without an account) is a crate
//! of its own, `sgpolicy-sim` (`crates/sgpolicy-sim`), that does not depend on this one; `sgpolicy
//! sim` serves it.

pub mod accounts;
pub mod cli;
pub mod credentials;
pub mod daemon;
pub mod ecs;
pub mod model;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod report;
pub mod token;
