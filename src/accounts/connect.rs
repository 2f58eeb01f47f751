//! From a validated [`Config`] to a working ECS client: the credential chain with the configured
//! profile and endpoints, then the client. Shared by the one-shot run and the daemon so both find
//! credentials the same way.

use crate::cli::Config;
use crate::accounts::Clients;
use crate::accounts::sessions::Accounts;
use crate::credentials::chain::{self, ChainError, ChainOptions, Resolved};
use crate::ecs::{ClientConfig, EcsClient};

/// Why no client could be made.
#[derive(Debug)]
pub enum ConnectError {
    /// No link of the credential chain produced credentials (the error lists them all).
    Credentials(ChainError),
    /// The client could not be built from the configuration.
    Client(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Credentials(e) => e.fmt(f),
            ConnectError::Client(e) => f.write_str(e),
        }
    }
}

/// The chain's options for this configuration, on top of the process environment.
pub fn chain_options(config: &Config) -> ChainOptions {
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
pub async fn connect(config: &Config) -> Result<(Clients, Resolved), ConnectError> {
    let options = chain_options(config);
    let credentials = chain::resolve(&options)
        .await
        .map_err(ConnectError::Credentials)?;
    let client_config = ClientConfig {
        endpoint: config.endpoint.clone(),
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
        Accounts::new(credentials.source.clone(), &options).map_err(ConnectError::Client)?;
    Ok((Clients::new(client, accounts), credentials))
}
