//! sgpolicy keeps the InnerAccessPolicy of Alibaba Cloud ECS security groups equal to what a folder of
//! YAML files (usually a Git checkout) declares.
//!
//! # Layout
//!
//! Data flows one way: load → observe → plan → gate → apply → verify → report; triggers only start
//! passes. Each module imports only the ones below it (ARCHITECTURE.md has the picture, and
//! `scripts/layers.py` checks it).
//!
//! The pure core — no I/O, no clock, no environment; time and credentials are arguments:
//! - [`model`]: shared vocabulary (policy values, group keys, accounts, group flags, file locations).
//! - [`policy`]: desired state: the file schema, loading a folder, conflicts, the revision digest.
//! - [`plan`]: `entry(desired, observed)` decides what each group needs.
//! - [`token`]: the deterministic ClientToken derivation and its guarantees.
//! - [`shard`]: which (account, region) buckets a replica owns (rendezvous hashing), for sharded
//!   deployments.
//! - [`escape`]: untrusted text (file names, policy values, cloud names, event fields) made safe for
//!   each output: text, Markdown, GitHub annotations, logs.
//!
//! The cloud:
//! - [`ecs`]: the boundary: the signer, typed calls and errors, the HTTP client with retries and rate
//!   limits, and the [`ecs::Cloud`] seam a pass talks through.
//! - [`credentials`]: the credential chain (environment, OIDC, profiles, metadata, STS, refresh).
//! - [`accounts`]: one ECS client per account, roles assumed once, sessions cached.
//!
//! The work:
//! - [`reconcile`]: one pass (observe → plan → gate → apply → verify), its work order, deadline, safety
//!   rails and selector resolution; typed failures. The only writer.
//! - [`isolation`]: the isolation check: the pure model (does `Drop` really keep members apart?) and
//!   the reads it needs (rules, network interfaces, prefix lists).
//! - [`report`]: text, JSON, Markdown for pull requests, and the audit trail.
//! - [`adopt`]: `sgpolicy import`: policy files written from the live state of existing groups.
//! - [`once`]: the one-shot run: load, this shard's buckets, connect, one pass, coverage, audit
//!   lines; the binary prints and picks the exit status.
//! - [`daemon`]: the long-lived mode: triggers (file changes, interval, SIGHUP, retry), one pass at a
//!   time, last good state, fights, metrics and health endpoints, shutdown.
//! - [`cli`]: raw arguments → validated settings, the `validate` and `schema` commands, exit codes.
//!   Nothing else imports it.
//!
//! The built-in ECS simulator (the test double, and a demo for users without an account) is a crate
//! of its own, `sgpolicy-sim` (`crates/sgpolicy-sim`), that does not depend on this one; `sgpolicy
//! sim` serves it.

pub mod accounts;
pub mod adopt;
pub mod cli;
pub mod credentials;
pub mod daemon;
pub mod ecs;
pub mod escape;
pub mod events;
pub mod isolation;
pub mod model;
pub mod once;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod report;
pub mod shard;
pub mod token;
