//! The cloud boundary: everything that knows ECS speaks RPC over HTTP lives here.

pub mod accounts;
pub mod api;
pub mod chain;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod imds;
pub mod limit;
pub mod profile;
pub mod redact;
pub mod refresh;
pub mod sign;
pub mod sts;

pub use client::{ClientConfig, EcsClient};
pub use credentials::Credentials;
pub use error::{ApiError, ErrorClass};
