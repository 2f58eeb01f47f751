//! Unsigned admin paths under `/_sim/` for tests and demos: the call log and call counts, groups, and
//! faults.
//!
//! They live outside `/`, so they can never be used to skip signature checks on the ECS API itself.

use super::faults::FaultConfig;
use super::respond::admin_json;
use super::Simulator;
use crate::model::Policy;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/calls", get(get_calls).delete(clear_calls))
        .route("/_sim/counts", get(get_counts))
        .route("/_sim/groups", get(get_groups))
        .route("/_sim/groups/{region}/{id}", post(flip_group))
        .route("/_sim/faults", get(get_faults).post(set_faults))
}

/// Every unknown path, in JSON like the rest.
pub async fn not_found() -> Response {
    admin_json(
        404,
        json!({"error": "not found: the ECS API is at / and admin paths under /_sim/"}),
    )
}

async fn get_calls(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.calls()))
}

/// `GET /_sim/counts`: `{"total", "byAction", "byFault", "effective", "replayed"}` since start.
async fn get_counts(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.call_counts()))
}

async fn clear_calls(State(sim): State<Simulator>) -> Response {
    let n = sim.state().clear_calls();
    admin_json(200, json!({"cleared": n}))
}

async fn get_groups(State(sim): State<Simulator>) -> Response {
    let st = sim.state();
    let groups: Vec<_> = st
        .groups
        .values()
        .map(|g| {
            json!({
                "account": g.account,
                "region": g.region,
                "id": g.id,
                "innerAccessPolicy": g.policy.as_str(),
                "type": g.kind.as_str(),
                "serviceManaged": g.service_managed,
                "vpcId": g.vpc_id,
                "name": g.name,
                "tags": g.tags,
            })
        })
        .collect();
    admin_json(200, json!(groups))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Flip {
    inner_access_policy: String,
}

/// `?account=<id>` on paths that address a group; the default account when absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InAccount {
    account: Option<String>,
}

/// `POST /_sim/groups/{region}/{id}[?account=<id>]` `{"innerAccessPolicy":"Drop"}`: a console
/// user's change.
async fn flip_group(
    State(sim): State<Simulator>,
    Path((region, id)): Path<(String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    let account = q
        .account
        .unwrap_or_else(|| super::DEFAULT_ACCOUNT.to_string());
    let policy = match serde_json::from_slice::<Flip>(&body) {
        Ok(f) => Policy::parse(&f.inner_access_policy),
        Err(e) => return admin_json(400, json!({"error": format!("bad body: {e}")})),
    };
    let Some(policy) = policy else {
        return admin_json(
            400,
            json!({"error": "innerAccessPolicy must be Accept or Drop"}),
        );
    };
    if sim.set_policy_in(&account, &region, &id, policy) {
        admin_json(
            200,
            json!({"account": account, "region": region, "id": id, "innerAccessPolicy": policy.as_str()}),
        )
    } else {
        admin_json(
            404,
            json!({"error": format!("no group {id} in {region} of account {account}")}),
        )
    }
}

async fn get_faults(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.faults().current()))
}

/// Replaces the whole fault configuration; `{}` clears it.
async fn set_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(cfg) => {
            sim.set_faults(cfg);
            admin_json(200, json!(sim.faults().current()))
        }
        Err(e) => admin_json(400, json!({"error": format!("bad fault config: {e}")})),
    }
}
