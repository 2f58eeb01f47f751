//! STS `AssumeRole` (Version 2015-04-01) on the simulator's own endpoint, so a many-account setup runs
//! end to end without a cloud: the caller signs with any key the simulator knows, names a seeded
//! role, and gets temporary credentials that belong to the role's account.

use super::auth::{Credential, Params};
use super::handlers::Outcome;
use super::respond::ApiError;
use super::state::State;
use crate::model::{role_account, role_name};
use crate::trail::{role_id, Identity};
use serde_json::json;

pub const ACTION: &str = "AssumeRole";
pub const VERSION: &str = "2015-04-01";
const DEFAULT_DURATION: i64 = 3600;
const MIN_DURATION: i64 = 900;
const MAX_DURATION: i64 = 43_200;

fn random_text(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// Issues a session for `RoleArn`. Errors are STS's: `InvalidParameter.RoleArn` (400),
/// `EntityNotExist.Role` (404), `NoPermission` (403, also for a missing or wrong `ExternalId`, whose
/// value is never echoed), `InvalidParameter.DurationSeconds` (400).
pub fn assume_role(
    state: &mut State,
    p: &Params,
    request_id: &str,
    now: i64,
) -> Result<Outcome, ApiError> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let arn = get("RoleArn").ok_or_else(|| {
        ApiError::new(
            400,
            "MissingParameter.RoleArn",
            "The parameter RoleArn is required.",
        )
    })?;
    let account = role_account(arn).map(str::to_string).ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is wrongly formed.",
        )
    })?;
    let session = get("RoleSessionName").unwrap_or("session");
    if session.len() < 2
        || session.len() > 64
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@=,".contains(&b))
    {
        return Err(ApiError::new(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    let duration = match get("DurationSeconds") {
        None => DEFAULT_DURATION,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (MIN_DURATION..=MAX_DURATION).contains(d))
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidParameter.DurationSeconds",
                    format!("The Min/Max value of DurationSeconds is {MIN_DURATION}/{MAX_DURATION} seconds."),
                )
            })?,
    };
    let role = state.roles.iter().find(|r| r.arn == arn).ok_or_else(|| {
        ApiError::new(
            404,
            "EntityNotExist.Role",
            format!("The role not exists: {arn}."),
        )
    })?;
    let external_ok = match (&role.external_id, get("ExternalId")) {
        (None, _) => true,
        (Some(want), Some(given)) => super::auth::constant_time_eq(want, given),
        (Some(_), None) => false,
    };
    if !external_ok {
        return Err(ApiError::new(
            403,
            "NoPermission",
            "You are not authorized to do this action. You should be authorized by RAM.",
        ));
    }
    let denied = role.denied_actions.clone();
    let name = role_name(arn).unwrap_or("role");
    // Stable per role, as a real role's id is; ActionTrail's principalId for the session repeats it.
    let assumed_role_id = format!("{}:{session}", role_id(&account, name));
    let identity = Identity::assumed_role(&account, name, session, now);
    let key_id = format!("STS.{}", random_text(24));
    let secret = random_text(40);
    let token = format!("CAIS{}", random_text(120));
    let expires_at = now + duration;
    let expiration = chrono::DateTime::from_timestamp(expires_at, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let body = json!({
        "AssumedRoleUser": {
            "Arn": format!("{arn}/{session}"),
            "AssumedRoleId": assumed_role_id,
        },
        "Credentials": {
            "AccessKeyId": key_id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": expiration,
        },
    });
    state.add_session(
        key_id,
        Credential {
            secret,
            security_token: Some(token),
            account,
            expires_at: Some(expires_at),
            identity,
            denied,
        },
        now,
    );
    Ok(Outcome {
        body,
        request_id: request_id.to_string(),
        effective: false,
        replayed: false,
    })
}
