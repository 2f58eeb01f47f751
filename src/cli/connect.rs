//! The flags that say how to reach the cloud (endpoints, credentials profile, STS, concurrency, rate
//! limits, timeouts), shared by the agent and `sgpolicy import`, and their validation into
//! [`ConnectSettings`].

use super::EndpointTypeArg;
use crate::accounts::connect::ConnectSettings;
use crate::ecs::client::validate_endpoint;
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Send every API call to this endpoint instead of https://ecs.<region>.aliyuncs.com.
    #[arg(long, env = "ALIBABA_CLOUD_ENDPOINT_ECS", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Send every ActionTrail call (LookupEvents) here instead of https://actiontrail.<region>.aliyuncs.com.
    #[arg(long, env = "ALIBABA_CLOUD_ENDPOINT_ACTIONTRAIL", value_name = "URL")]
    pub actiontrail_endpoint: Option<String>,
    /// Allow a plain-http --endpoint that is not a loopback address.
    #[arg(long)]
    pub insecure_http: bool,
    /// Region endpoints to use: public (ecs.<region>.aliyuncs.com) or vpc (ecs-vpc.<region>...).
    #[arg(long, value_enum, default_value = "public")]
    pub endpoint_type: EndpointTypeArg,
    /// Credential profile: the CLI config.json profile and the credentials-file section.
    #[arg(long, env = "ALIBABA_CLOUD_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Send STS calls (AssumeRole, AssumeRoleWithOIDC) here instead of sts[.<region>].aliyuncs.com.
    #[arg(long, env = "ALIBABA_CLOUD_ENDPOINT_STS", value_name = "URL")]
    pub sts_endpoint: Option<String>,
    /// Instance metadata service address (tests only: loopback or http://100.100.100.200).
    #[arg(
        long,
        env = "SGPOLICY_METADATA_ENDPOINT",
        value_name = "URL",
        hide = true
    )]
    pub metadata_endpoint: Option<String>,
    /// API requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests per second per region and API action (set it below your Quota Center quota).
    #[arg(long, value_name = "RPS", default_value_t = crate::ecs::limit::DEFAULT_MAX_RPS)]
    pub max_rps: f64,
    /// Per-action override of --max-rps, e.g. ModifySecurityGroupPolicy=5 (repeatable).
    #[arg(long, value_name = "ACTION=RPS")]
    pub max_rps_action: Vec<String>,
    /// Timeout for one HTTP request, connection included.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub request_timeout: String,
    /// Timeout for establishing one connection.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub connect_timeout: String,
}

impl ConnectArgs {
    /// The settings to connect with and the `--pass-timeout` (`pass_timeout` is its text; `None`
    /// for no deadline), pushing every problem onto `problems`.
    pub fn validate(
        &self,
        pass_timeout: &str,
        problems: &mut Vec<String>,
    ) -> (ConnectSettings, Option<Duration>) {
        if self.concurrency == 0 || self.concurrency > 256 {
            problems.push(format!(
                "--concurrency must be between 1 and 256, got {}",
                self.concurrency
            ));
        }
        if let Some(e) = &self.endpoint {
            if let Err(msg) = validate_endpoint(e, self.insecure_http) {
                problems.push(msg.to_string());
            }
        }
        if let Some(e) = &self.sts_endpoint {
            if let Err(msg) = validate_endpoint(e, self.insecure_http) {
                problems.push(format!("--sts-endpoint: {msg}"));
            }
        }
        if let Some(e) = &self.actiontrail_endpoint {
            if let Err(msg) = validate_endpoint(e, self.insecure_http) {
                problems.push(format!("--actiontrail-endpoint: {msg}"));
            }
        }
        if let Some(e) = &self.metadata_endpoint {
            if let Err(msg) = crate::credentials::imds::validate_endpoint(e) {
                problems.push(msg.to_string());
            }
        }
        let scale = super::scale::validate(self, pass_timeout, problems);
        let settings = ConnectSettings {
            endpoint: self.endpoint.clone(),
            actiontrail_endpoint: self.actiontrail_endpoint.clone(),
            endpoint_type: self.endpoint_type.into(),
            insecure_http: self.insecure_http,
            profile: self.profile.clone().filter(|p| !p.is_empty()),
            sts_endpoint: self.sts_endpoint.clone().filter(|e| !e.is_empty()),
            metadata_endpoint: self.metadata_endpoint.clone(),
            rate_limits: scale.rate_limits,
            request_timeout: scale.request_timeout,
            connect_timeout: scale.connect_timeout,
        };
        (settings, scale.pass_timeout)
    }
}
