//! The cloud boundary: everything that knows ECS (and ActionTrail) speaks RPC over HTTP lives here.

pub mod api;
pub mod client;
pub mod cloud;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod limit;
pub mod redact;
pub mod sign;
pub mod trail;

pub use api::ListedGroup;
pub use client::{ClientConfig, EcsClient};
pub use cloud::{Cloud, GroupFilter, GroupPage};
pub use credentials::Credentials;
pub use error::{ApiError, EcsError, ErrorClass};
