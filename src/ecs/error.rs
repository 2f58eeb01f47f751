//! What went wrong talking to ECS, and what the caller should do about it: retry, give up on this group,
//! or stop the whole pass.

use std::fmt;

/// How a failure affects the pass. The reconciler branches on this, never on raw codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth another attempt with the same ClientToken and a fresh nonce.
    Retryable,
    /// Only this group is affected; every other group carries on.
    PerGroup,
    /// Every further call would fail the same way (credentials, signature, permission): stop the pass.
    Fatal,
}

/// An ECS error answer, or a transport failure (then `status` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub action: &'static str,
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// `x-acs-retry-after`, when a gateway sent one.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn transport(action: &'static str, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            action,
            status: None,
            code: code.to_string(),
            message: message.into(),
            request_id: None,
            retry_after_ms: None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        classify(self.status, &self.code)
    }

    pub fn is_throttling(&self) -> bool {
        self.code.contains("Throttling")
    }

    /// The caller lacks the RAM permission (`Forbidden*`, `NoPermission*`, or any other 403 that is
    /// not throttling): never retried, and only a grant changes it.
    pub fn is_permission_denied(&self) -> bool {
        !self.is_throttling()
            && (self.code.starts_with("Forbidden")
                || self.code.starts_with("NoPermission")
                || self.status == Some(403))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.code)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [RequestId {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// What a call through [`crate::ecs::EcsClient`] can fail with. Only [`EcsError::Api`] is an answer
/// from (or a failed exchange with) ECS; the other two are local conditions found before any request,
/// so they are never retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    /// ECS answered with an error, or the exchange failed in transport.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No endpoint URL can be made for this region.
    #[error("resolve: InvalidEndpoint: region {region:?}: {reason}")]
    InvalidEndpoint { region: String, reason: String },
    /// The credential source has no usable credentials right now (a refresh failed past expiry).
    #[error("{action}: CredentialsUnavailable (HTTP 401): {reason}")]
    CredentialsUnavailable {
        action: &'static str,
        reason: String,
    },
}

impl EcsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            EcsError::Api(e) => e.class(),
            EcsError::InvalidEndpoint { .. } => ErrorClass::PerGroup,
            EcsError::CredentialsUnavailable { .. } => ErrorClass::Fatal,
        }
    }

    /// The code shown in reports and audit lines (`error_code`).
    pub fn code(&self) -> &str {
        match self {
            EcsError::Api(e) => &e.code,
            EcsError::InvalidEndpoint { .. } => "InvalidEndpoint",
            EcsError::CredentialsUnavailable { .. } => "CredentialsUnavailable",
        }
    }

    /// The call that failed.
    pub fn action(&self) -> &'static str {
        match self {
            EcsError::Api(e) => e.action,
            EcsError::InvalidEndpoint { .. } => "resolve",
            EcsError::CredentialsUnavailable { action, .. } => action,
        }
    }

    /// The message alone, without action and code (the audit line's `error`).
    pub fn message(&self) -> &str {
        match self {
            EcsError::Api(e) => &e.message,
            EcsError::InvalidEndpoint { reason, .. }
            | EcsError::CredentialsUnavailable { reason, .. } => reason,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            EcsError::Api(e) => e.request_id.as_deref(),
            _ => None,
        }
    }

    /// ECS says the group does not exist (in this region).
    pub fn is_not_found(&self) -> bool {
        matches!(self, EcsError::Api(e) if e.code == "InvalidSecurityGroupId.NotFound")
    }
}

/// The classification table. Codes decide first (throttling comes with 400, 403 or 429; some 403s are
/// per-group), the HTTP status only for codes we have never seen.
pub fn classify(status: Option<u16>, code: &str) -> ErrorClass {
    const RETRYABLE: &[&str] = &[
        "ServiceUnavailable",
        "InternalError",
        "LastTokenProcessing",
        "IdempotentProcessing",
        "OperationConflict",
        "SignatureNonceUsed",
        "UnknownError",
    ];
    const PER_GROUP: &[&str] = &[
        "InvalidSecurityGroupId.NotFound",
        "InvalidSecurityGroupId.Malformed",
        "InvalidOperation.ResourceManagedByCloudProduct",
        "InvalidParameter.InnerAccessPolicy",
        "InvalidPolicy.Malformed",
        "IdempotentParameterMismatch",
        "InvalidRegionId.NotFound",
        "InvalidRegionId.Malformed",
        "MissingParamter.RegionId",
        "MissingParameter.RegionId",
    ];
    const FATAL_PREFIXES: &[&str] = &[
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidAccessKeySecret",
        "InvalidSecurityToken",
        "Forbidden",
        "NoPermission",
        "IllegalTimestamp",
        "MissingTimestamp",
        "InvalidTimeStamp",
        "InvalidAction",
        "UnsupportedHTTPMethod",
    ];
    if status.is_none() || code.contains("Throttling") || RETRYABLE.contains(&code) {
        return ErrorClass::Retryable;
    }
    if PER_GROUP.contains(&code) {
        return ErrorClass::PerGroup;
    }
    if FATAL_PREFIXES.iter().any(|p| code.starts_with(p)) {
        return ErrorClass::Fatal;
    }
    match status {
        Some(s) if s >= 500 => ErrorClass::Retryable,
        Some(401) | Some(403) => ErrorClass::Fatal,
        _ => ErrorClass::PerGroup,
    }
}

/// The innermost cause of a reqwest error, without the URL: reqwest's own `Display` includes it, and a
/// URL may carry a signed query or a token. Shared by every HTTP caller (ECS, STS, metadata).
pub(crate) fn transport_cause(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match last {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_and_statuses() {
        for (status, code) in [
            (None, "Transport"),
            (Some(500), "InternalError"),
            (Some(503), "ServiceUnavailable"),
            (Some(502), "BadGateway"),
            (Some(400), "Throttling.User"),
            (Some(403), "Throttling.Api"),
            (Some(429), "Throttling"),
            (Some(400), "Rejected.Throttling"),
            (Some(400), "Throttling.QuotaExceeded"),
            (Some(403), "LastTokenProcessing"),
            (Some(403), "IdempotentProcessing"),
        ] {
            assert_eq!(classify(status, code), ErrorClass::Retryable, "{code}");
        }
    }

    #[test]
    fn per_group_codes() {
        for (status, code) in [
            (404, "InvalidSecurityGroupId.NotFound"),
            (400, "InvalidSecurityGroupId.Malformed"),
            (403, "InvalidOperation.ResourceManagedByCloudProduct"),
            (404, "InvalidParameter.InnerAccessPolicy"),
            (400, "IdempotentParameterMismatch"),
            (400, "MissingParamter.RegionId"),
            (400, "SomethingNew"),
        ] {
            assert_eq!(classify(Some(status), code), ErrorClass::PerGroup, "{code}");
        }
    }

    #[test]
    fn fatal_codes_stop_the_pass() {
        for (status, code) in [
            (400, "SignatureDoesNotMatch"),
            (404, "InvalidAccessKeyId.NotFound"),
            (403, "Forbidden.RAM"),
            (403, "Forbidden.AccessKeyDisabled"),
            (400, "InvalidTimeStamp.Expired"),
            (403, "SomethingForbiddenNew"),
            (403, "NoPermission"),
            (400, "NoPermission.Something"),
        ] {
            assert_eq!(classify(Some(status), code), ErrorClass::Fatal, "{code}");
        }
    }

    #[test]
    fn permission_errors_are_forbidden_and_no_permission_but_not_throttling() {
        let e = |status, code: &str| ApiError {
            status: Some(status),
            ..ApiError::transport("LookupEvents", code, "")
        };
        assert!(e(403, "NoPermission").is_permission_denied());
        assert!(e(400, "Forbidden.RAM").is_permission_denied());
        assert!(e(403, "SomethingNew").is_permission_denied());
        assert!(!e(403, "Throttling.Api").is_permission_denied());
        assert!(!e(503, "ServiceUnavailable").is_permission_denied());
        assert!(!ApiError::transport("LookupEvents", "Transport", "x").is_permission_denied());
    }

    #[test]
    fn display_carries_status_code_message_and_request_id() {
        let e = ApiError {
            action: "ModifySecurityGroupPolicy",
            status: Some(404),
            code: "InvalidSecurityGroupId.NotFound".into(),
            message: "The specified SecurityGroupId does not exist.".into(),
            request_id: Some("CEF72CEB".into()),
            retry_after_ms: None,
        };
        assert_eq!(
            e.to_string(),
            "ModifySecurityGroupPolicy: InvalidSecurityGroupId.NotFound (HTTP 404): The specified SecurityGroupId does not exist. [RequestId CEF72CEB]"
        );
    }
}
