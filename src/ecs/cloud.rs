//! The seam between a pass and ECS: the calls a pass (and its isolation check) makes, as a trait. [`EcsClient`] is the real
//! implementation (signed RPC over HTTP, retries, rate limits); `reconcile`'s unit tests use a scripted
//! fake that checks every request exactly, so the only module that writes to the cloud is tested
//! without HTTP as well as through it.

use super::api::{InterfacePage, PrefixList, RulePage};
use super::client::{CallStats, EcsClient};
use super::error::EcsError;
use crate::model::{GroupKey, GroupMeta, Policy};
use std::collections::BTreeMap;
use std::future::Future;

/// What a selector asks DescribeSecurityGroups to filter on server-side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub vpc_id: Option<String>,
    /// `Tag.N.Key` / `Tag.N.Value`: every tag must match.
    pub tags: Vec<(String, String)>,
}

/// One page of a filtered listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPage {
    /// Each group on the page, with its flags, name, VPC and tags.
    pub groups: Vec<super::api::ListedGroup>,
    /// Empty when this was the last page.
    pub next_token: Option<String>,
}

/// A call is made when its future is first polled, never when the future is built: a pass builds a
/// request and may drop it unsent (a refused account, a cancelled pass).
pub trait Cloud: Send + Sync {
    /// Type and managed flags for up to 100 ids of one region; ids absent from the map do not exist.
    fn describe_groups(
        &self,
        region: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, GroupMeta>, EcsError>> + Send;

    /// One group's InnerAccessPolicy.
    fn describe_attribute(
        &self,
        key: &GroupKey,
    ) -> impl Future<Output = Result<Policy, EcsError>> + Send;

    /// Sets one group's policy with `client_token`; the RequestId.
    fn modify_policy(
        &self,
        key: &GroupKey,
        policy: Policy,
        client_token: &str,
    ) -> impl Future<Output = Result<String, EcsError>> + Send;

    /// One page of the groups of `region` that pass `filter`.
    fn list_groups(
        &self,
        region: &str,
        filter: &GroupFilter,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<GroupPage, EcsError>> + Send;

    /// One page of a group's rules, with its policy and VPC (the isolation check).
    fn describe_rules(
        &self,
        key: &GroupKey,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<RulePage, EcsError>> + Send;

    /// One page of the network interfaces of a VPC (the isolation check's members).
    fn describe_interfaces(
        &self,
        region: &str,
        vpc_id: &str,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<InterfacePage, EcsError>> + Send;

    /// One prefix list's entries (the isolation check).
    fn describe_prefix_list(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<PrefixList, EcsError>> + Send;

    /// Call counts, for the pass's figures.
    fn stats(&self) -> &CallStats;
}

impl Cloud for EcsClient {
    fn describe_groups(
        &self,
        region: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, GroupMeta>, EcsError>> + Send {
        EcsClient::describe_groups(self, region, ids)
    }

    fn describe_attribute(
        &self,
        key: &GroupKey,
    ) -> impl Future<Output = Result<Policy, EcsError>> + Send {
        EcsClient::describe_attribute(self, key)
    }

    fn modify_policy(
        &self,
        key: &GroupKey,
        policy: Policy,
        client_token: &str,
    ) -> impl Future<Output = Result<String, EcsError>> + Send {
        EcsClient::modify_policy(self, key, policy, client_token)
    }

    fn list_groups(
        &self,
        region: &str,
        filter: &GroupFilter,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<GroupPage, EcsError>> + Send {
        EcsClient::list_groups(self, region, filter, next_token)
    }

    fn describe_rules(
        &self,
        key: &GroupKey,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<RulePage, EcsError>> + Send {
        EcsClient::describe_rules(self, key, next_token)
    }

    fn describe_interfaces(
        &self,
        region: &str,
        vpc_id: &str,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<InterfacePage, EcsError>> + Send {
        EcsClient::describe_interfaces(self, region, vpc_id, next_token)
    }

    fn describe_prefix_list(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<PrefixList, EcsError>> + Send {
        EcsClient::describe_prefix_list(self, region, id)
    }

    fn stats(&self) -> &CallStats {
        EcsClient::stats(self)
    }
}
