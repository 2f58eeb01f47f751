//! The credential chain, link by link, exactly as Alibaba's SDKs find credentials: the environment,
//! RRSA/OIDC, the `aliyun` CLI's profiles, the shared INI file and the instance metadata service; STS
//! for roles; and the background refresh of temporary credentials. The credential *types* the signer
//! needs (`Credentials`, `Secret`, `CredentialSource`) live in `ecs::credentials`, so this folder
//! depends on `ecs` and never the other way round.
//!
//! Failures are typed: each part has its own error (`profile::ProfileError`, `sts::StsError`,
//! `imds::ImdsError`), and a link, a fetch or a session fails with [`Error`], whose [`ErrorKind`]
//! says whether the user must fix something, a service refused, could not be reached, or answered
//! with something unusable.

pub mod chain;
mod error;
pub mod imds;
pub mod profile;
pub mod refresh;
pub mod sts;

pub use error::{Error, ErrorKind};

#[cfg(test)]
pub(crate) mod testing;
