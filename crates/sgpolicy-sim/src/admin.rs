//! Unsigned admin paths under `/_sim/` for tests, demos and the benchmark: the call log and call
//! counts, groups, their rules and members (interfaces joining and leaving, as a console user
//! would: `console`), faults, ActionTrail events and settings, and EventBridge targets and
//! deliveries.
//!
//! They live outside `/`, so they can never be used to skip signature checks on the ECS API itself.

use super::faults::FaultConfig;
use super::respond::admin_json;
use super::Simulator;
use crate::model::Policy;
use crate::push::EventBridgeConfig;
use crate::trail::{ConsoleActor, TrailConfig};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/calls", get(get_calls).delete(clear_calls))
        .route("/_sim/counts", get(get_counts))
        .route("/_sim/groups", get(get_groups).post(add_group))
        .route("/_sim/groups/{region}/{id}", post(flip_group))
        .route("/_sim/groups/{region}/{id}/rules", post(add_rule))
        .route(
            "/_sim/groups/{region}/{id}/rules/{rule}",
            delete(remove_rule),
        )
        .route("/_sim/enis", get(get_enis).post(add_eni))
        .route(
            "/_sim/enis/{region}/{eni}/groups/{group}",
            post(join_group).delete(leave_group),
        )
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/events", get(get_events).delete(clear_events))
        .route("/_sim/actiontrail", get(get_trail).post(set_trail))
        .route("/_sim/eventbridge", get(get_bus).post(set_bus))
        .route("/_sim/eventbridge/deliveries", get(get_deliveries))
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

/// `POST /_sim/groups` with a seed group (`{"id", "region", "innerAccessPolicy", ...}`, the seed's
/// fields): creates it; 400 for a bad group, 409 for one that exists.
async fn add_group(State(sim): State<Simulator>, body: Bytes) -> Response {
    let group = match serde_json::from_slice::<crate::SeedGroup>(&body) {
        Ok(g) => g,
        Err(e) => return admin_json(400, json!({"error": format!("bad group: {e}")})),
    };
    let (region, id) = (group.region.clone(), group.id.clone());
    match sim.add_group(group) {
        Ok(true) => admin_json(201, json!({"region": region, "id": id})),
        Ok(false) => admin_json(
            409,
            json!({"error": format!("group {region}/{id} exists already")}),
        ),
        Err(e) => admin_json(400, json!({"error": format!("{e:#}")})),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Flip {
    inner_access_policy: String,
    /// Whether ActionTrail records the flip (default true); `false` is a missed event.
    #[serde(default = "yes")]
    event: bool,
    /// Who did it, as the `ConsoleOperation` event names them.
    #[serde(default)]
    actor: ConsoleActor,
}

fn yes() -> bool {
    true
}

/// `?account=<id>` on paths that address a group; the default account when absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InAccount {
    account: Option<String>,
}

/// `POST /_sim/groups/{region}/{id}[?account=<id>]` `{"innerAccessPolicy":"Drop"}`: a console
/// user's change, which ActionTrail records as a `ConsoleOperation` by `"actor"` (answered with its
/// `eventId`); with `"event": false` it records nothing (a missed event).
async fn flip_group(
    State(sim): State<Simulator>,
    Path((region, id)): Path<(String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    let account = q
        .account
        .unwrap_or_else(|| super::DEFAULT_ACCOUNT.to_string());
    let flip = match serde_json::from_slice::<Flip>(&body) {
        Ok(f) => f,
        Err(e) => return admin_json(400, json!({"error": format!("bad body: {e}")})),
    };
    let Some(policy) = Policy::parse(&flip.inner_access_policy) else {
        return admin_json(
            400,
            json!({"error": "innerAccessPolicy must be Accept or Drop"}),
        );
    };
    let done = match flip.event {
        true => sim
            .flip_in_console_in(&account, &region, &id, policy, &flip.actor)
            .map(Some),
        false => sim
            .set_policy_in(&account, &region, &id, policy)
            .then_some(None),
    };
    if let Some(event_id) = done {
        let mut body = json!({"account": account, "region": region, "id": id, "innerAccessPolicy": policy.as_str()});
        if let Some(e) = event_id {
            body["eventId"] = json!(e);
        }
        admin_json(200, body)
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

/// `GET /_sim/events`: every ActionTrail event, oldest first (any account or region, query delay
/// or not).
async fn get_events(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.events()))
}

async fn clear_events(State(sim): State<Simulator>) -> Response {
    let n = sim.state().trail.clear();
    admin_json(200, json!({"cleared": n}))
}

async fn get_trail(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.actiontrail()))
}

/// Replaces the ActionTrail settings; `{}` restores the defaults.
async fn set_trail(State(sim): State<Simulator>, body: Bytes) -> Response {
    let cfg = match serde_json::from_slice::<TrailConfig>(&body) {
        Ok(c) => c,
        Err(e) => {
            return admin_json(
                400,
                json!({"error": format!("bad actiontrail config: {e}")}),
            )
        }
    };
    match sim.set_actiontrail(cfg) {
        Ok(()) => admin_json(200, json!(sim.actiontrail())),
        Err(e) => admin_json(
            400,
            json!({"error": format!("bad actiontrail config: {e:#}")}),
        ),
    }
}

/// The targets, tokens redacted.
async fn get_bus(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.eventbridge().redacted()))
}

/// Replaces the EventBridge targets; `{}` removes them all.
async fn set_bus(State(sim): State<Simulator>, body: Bytes) -> Response {
    let cfg = match serde_json::from_slice::<EventBridgeConfig>(&body) {
        Ok(c) => c,
        Err(e) => {
            return admin_json(
                400,
                json!({"error": format!("bad eventbridge config: {e}")}),
            )
        }
    };
    match sim.set_eventbridge(cfg) {
        Ok(()) => admin_json(200, json!(sim.eventbridge().redacted())),
        Err(e) => admin_json(
            400,
            json!({"error": format!("bad eventbridge config: {e:#}")}),
        ),
    }
}

async fn get_deliveries(State(sim): State<Simulator>) -> Response {
    admin_json(200, json!(sim.deliveries()))
}

/// Whether and as whom a console change is recorded: `{"event": false}` records nothing (a
/// missed event); `actor` as for a flip. An empty body is the defaults.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Recorded {
    #[serde(default = "yes")]
    event: bool,
    #[serde(default)]
    actor: ConsoleActor,
}

/// The body of `POST /_sim/groups/{region}/{id}/rules`: the rule in the seed's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    rule: crate::rules::SeedRule,
    #[serde(default = "yes")]
    event: bool,
    #[serde(default)]
    actor: ConsoleActor,
}

fn recorded(body: &[u8]) -> Result<Recorded, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Recorded {
            event: true,
            actor: ConsoleActor::default(),
        });
    }
    serde_json::from_slice(body).map_err(|e| format!("bad body: {e}"))
}

fn account_of(q: InAccount) -> String {
    q.account
        .unwrap_or_else(|| super::DEFAULT_ACCOUNT.to_string())
}

/// The answer to a console change: its rule and event, or why it was refused.
fn changed(status: u16, done: Result<crate::console::Change, crate::console::Refused>) -> Response {
    use crate::console::Refused;
    match done {
        Ok(c) => {
            let mut body = json!({});
            if let Some(r) = c.rule_id {
                body["ruleId"] = json!(r);
            }
            if let Some(e) = c.event_id {
                body["eventId"] = json!(e);
            }
            admin_json(status, body)
        }
        Err(e) => {
            let status = match e {
                Refused::NotFound(_) => 404,
                Refused::Conflict(_) => 409,
                Refused::Invalid(_) => 400,
            };
            admin_json(status, json!({"error": e.to_string()}))
        }
    }
}

/// `POST /_sim/groups/{region}/{id}/rules[?account=]` `{"rule": {...}}`: adds a rule (201, with
/// its `ruleId` and the `AuthorizeSecurityGroup[Egress]` console event's `eventId`).
async fn add_rule(
    State(sim): State<Simulator>,
    Path((region, id)): Path<(String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    let new = match serde_json::from_slice::<NewRule>(&body) {
        Ok(n) => n,
        Err(e) => return admin_json(400, json!({"error": format!("bad body: {e}")})),
    };
    let actor = new.event.then_some(&new.actor);
    changed(
        201,
        sim.add_rule(&account_of(q), &region, &id, &new.rule, actor),
    )
}

/// `DELETE /_sim/groups/{region}/{id}/rules/{rule}[?account=]`: removes a rule
/// (`RevokeSecurityGroup[Egress]`).
async fn remove_rule(
    State(sim): State<Simulator>,
    Path((region, id, rule)): Path<(String, String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    let r = match recorded(&body) {
        Ok(r) => r,
        Err(e) => return admin_json(400, json!({"error": e})),
    };
    let actor = r.event.then_some(&r.actor);
    changed(
        200,
        sim.remove_rule(&account_of(q), &region, &id, &rule, actor),
    )
}

/// `POST /_sim/enis/{region}/{eni}/groups/{group}[?account=]`: the interface joins the group.
async fn join_group(
    State(sim): State<Simulator>,
    Path((region, eni, group)): Path<(String, String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    membership(sim, (region, eni, group), q, &body, true)
}

/// `DELETE /_sim/enis/{region}/{eni}/groups/{group}[?account=]`: the interface leaves the group.
async fn leave_group(
    State(sim): State<Simulator>,
    Path((region, eni, group)): Path<(String, String, String)>,
    Query(q): Query<InAccount>,
    body: Bytes,
) -> Response {
    membership(sim, (region, eni, group), q, &body, false)
}

fn membership(
    sim: Simulator,
    (region, eni, group): (String, String, String),
    q: InAccount,
    body: &[u8],
    join: bool,
) -> Response {
    let r = match recorded(body) {
        Ok(r) => r,
        Err(e) => return admin_json(400, json!({"error": e})),
    };
    let actor = r.event.then_some(&r.actor);
    changed(
        200,
        sim.set_membership(&account_of(q), &region, &eni, &group, join, actor),
    )
}

/// `GET /_sim/enis`: every interface with its groups.
async fn get_enis(State(sim): State<Simulator>) -> Response {
    let st = sim.state();
    let enis: Vec<_> = st
        .net
        .all()
        .map(|e| {
            json!({
                "account": e.account,
                "region": e.region,
                "NetworkInterfaceId": e.id,
                "VpcId": e.vpc_id,
                "InstanceId": e.instance_id,
                "Type": e.kind(),
                "SecurityGroupIds": e.groups,
            })
        })
        .collect();
    admin_json(200, json!(enis))
}

/// `POST /_sim/enis` with a seed interface: adds it (201); 409 if its id is taken, 400 if bad.
async fn add_eni(State(sim): State<Simulator>, body: Bytes) -> Response {
    let eni = match serde_json::from_slice::<crate::net::SeedEni>(&body) {
        Ok(e) => e,
        Err(e) => return admin_json(400, json!({"error": format!("bad interface: {e}")})),
    };
    let (region, id) = (eni.region.clone(), eni.id.clone());
    match sim.add_interface(eni) {
        Ok(true) => admin_json(201, json!({"region": region, "NetworkInterfaceId": id})),
        Ok(false) => admin_json(
            409,
            json!({"error": format!("interface {region}/{id} exists already")}),
        ),
        Err(e) => admin_json(400, json!({"error": format!("{e:#}")})),
    }
}
