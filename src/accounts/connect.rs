//! From [`ConnectSettings`] to working ECS clients: the credential chain with the configured profile
//! and endpoints, then the clients. Shared by the one-shot run and the daemon so both find credentials
//! the same way.

use crate::accounts::sessions::Accounts;
use crate::accounts::Clients;
use crate::credentials::chain::{self, ChainError, ChainOptions, Resolved};
use crate::credentials::sts::StsError;
use crate::ecs::client::ClientError;
use crate::ecs::endpoint::EndpointType;
use crate::ecs::limit::RateLimits;
use crate::ecs::{ClientConfig, EcsClient};
use std::time::Duration;

/// How to reach the cloud, as the command line configured it.
#[derive(Clone, Debug)]
pub struct ConnectSettings {
    /// `--endpoint`: every ECS call to this URL instead of the regional endpoint.
    pub endpoint: Option<String>,
    /// `--actiontrail-endpoint`: every ActionTrail call to this URL instead of the regional one.
    pub actiontrail_endpoint: Option<String>,
    pub endpoint_type: EndpointType,
    /// `--insecure-http`: allow plain `http://` to a host that is not a loopback address.
    pub insecure_http: bool,
    pub profile: Option<String>,
    pub sts_endpoint: Option<String>,
    pub metadata_endpoint: Option<String>,
    pub rate_limits: RateLimits,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No link of the credential chain produced credentials (the error lists them all).
    #[error(transparent)]
    Credentials(ChainError),
    /// The client could not be built from the configuration.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The STS client for assuming roles could not be built from the configuration.
    #[error(transparent)]
    Sessions(StsError),
}

/// The chain's options for this configuration, on top of the process environment.
pub fn chain_options(config: &ConnectSettings) -> ChainOptions {
    ChainOptions {
        profile: config.profile.clone(),
        sts_endpoint: config.sts_endpoint.clone(),
        endpoint_type: config.endpoint_type,
        metadata_endpoint: config.metadata_endpoint.clone(),
        allow_insecure_http: config.insecure_http,
        ..ChainOptions::from_process_env()
    }
}

/// Resolves credentials (temporary ones keep refreshing in the background for as long as the
/// returned [`Resolved`] or the clients live) and builds the ECS clients: the chain's own, and on
/// demand one per account a policy file names, assumed through STS with the chain's credentials.
/// Keep the `Resolved` to report refresh health (`Resolved::status`) in metrics.
pub async fn connect(config: &ConnectSettings) -> Result<(Clients, Resolved), ConnectError> {
    let options = chain_options(config);
    let credentials = chain::resolve(&options)
        .await
        .map_err(ConnectError::Credentials)?;
    let client_config = ClientConfig {
        endpoint: config.endpoint.clone(),
        actiontrail_endpoint: config.actiontrail_endpoint.clone(),
        endpoint_type: config.endpoint_type,
        allow_insecure_http: config.insecure_http,
        rate_limits: config.rate_limits.clone(),
        request_timeout: config.request_timeout,
        connect_timeout: config.connect_timeout,
        ..ClientConfig::default()
    };
    let client =
        EcsClient::new(client_config, credentials.source.clone()).map_err(ConnectError::Client)?;
    let accounts =
        Accounts::new(credentials.source.clone(), &options).map_err(ConnectError::Sessions)?;
    Ok((Clients::new(client, accounts), credentials))
}
