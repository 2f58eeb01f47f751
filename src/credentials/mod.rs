//! The credential chain, link by link, exactly as Alibaba's SDKs find credentials: the environment,
//! RRSA/OIDC, the `aliyun` CLI's profiles, the shared INI file and the instance metadata service; STS
//! for roles; and the background refresh of temporary credentials. The credential *types* the signer
//! needs (`Credentials`, `Secret`, `CredentialSource`) live in `ecs::credentials`, so this folder
//! depends on `ecs` and never the other way round.

pub mod chain;
pub mod imds;
pub mod profile;
pub mod refresh;
pub mod sts;

#[cfg(test)]
pub(crate) mod testing;
