//! Which host each service is reached at: region endpoints, the VPC variants, and overrides.
//!
//! ECS: `https://ecs.<region>.aliyuncs.com`, or `https://ecs-vpc.<region>.aliyuncs.com` from inside a
//! VPC (`--endpoint-type vpc`). STS follows the official credential SDKs: `sts.aliyuncs.com` unless a
//! region is given (`ALIBABA_CLOUD_STS_REGION` or a profile's `sts_region`), then
//! `sts[-vpc].<region>.aliyuncs.com`, the `-vpc` form when `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`
//! (or `--endpoint-type vpc`). ActionTrail: `https://actiontrail.<region>.aliyuncs.com` (the same
//! host from a VPC). An explicit URL (`--endpoint`, `--sts-endpoint`, `--actiontrail-endpoint`) wins
//! over all of it.

/// Public internet endpoints or the VPC-internal ones.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum EndpointType {
    #[default]
    Public,
    Vpc,
}

/// The ECS RPC endpoint for `region`.
pub fn ecs_url(region: &str, kind: EndpointType) -> String {
    match kind {
        EndpointType::Public => format!("https://ecs.{region}.aliyuncs.com/"),
        EndpointType::Vpc => format!("https://ecs-vpc.{region}.aliyuncs.com/"),
    }
}

/// The ActionTrail RPC endpoint for `region` (events are stored, and queried, per region).
pub fn actiontrail_url(region: &str) -> String {
    format!("https://actiontrail.{region}.aliyuncs.com/")
}

/// The STS endpoint the official SDKs would pick for these settings.
pub fn sts_url(region: Option<&str>, vpc: bool) -> String {
    match region.filter(|r| !r.is_empty()) {
        Some(r) if vpc => format!("https://sts-vpc.{r}.aliyuncs.com/"),
        Some(r) => format!("https://sts.{r}.aliyuncs.com/"),
        None => "https://sts.aliyuncs.com/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_endpoints() {
        assert_eq!(
            ecs_url("cn-hangzhou", EndpointType::Public),
            "https://ecs.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            ecs_url("cn-hangzhou", EndpointType::Vpc),
            "https://ecs-vpc.cn-hangzhou.aliyuncs.com/"
        );
    }

    #[test]
    fn actiontrail_endpoints_are_per_region() {
        assert_eq!(
            actiontrail_url("cn-shanghai"),
            "https://actiontrail.cn-shanghai.aliyuncs.com/"
        );
    }

    #[test]
    fn sts_endpoints_follow_the_sdk() {
        assert_eq!(sts_url(None, false), "https://sts.aliyuncs.com/");
        // Without a region the SDK uses the central endpoint even when VPC is asked for.
        assert_eq!(sts_url(None, true), "https://sts.aliyuncs.com/");
        assert_eq!(sts_url(Some(""), true), "https://sts.aliyuncs.com/");
        assert_eq!(
            sts_url(Some("cn-shanghai"), false),
            "https://sts.cn-shanghai.aliyuncs.com/"
        );
        assert_eq!(
            sts_url(Some("cn-shanghai"), true),
            "https://sts-vpc.cn-shanghai.aliyuncs.com/"
        );
    }
}
