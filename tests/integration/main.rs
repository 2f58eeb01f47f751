//! One integration-test binary: the real `sgpolicy` binary and its real HTTP client against the
//! simulator over loopback, with policy folders written to temporary directories.

mod accounts;
mod adopt;
mod builders;
mod calls;
mod credentials;
mod daemon;
mod fakes;
mod faults;
mod harness;
mod hostile;
mod isolation;
mod once;
mod sdk;
mod sdk_credentials;
mod shards;
mod workflow;
