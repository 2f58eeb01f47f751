//! Each sink's body for a batch of notifications. Pure. Every string from the cloud or the folder is
//! escaped for where it lands: JSON by serde; chat text through `crate::escape` (no control or bidi
//! character can start a line), plus each format's own markup (Slack's `& < >`, DingTalk's Markdown,
//! Lark's `<at>` tags) so a group name or a user name cannot mention `@all`, link or format.

use super::config::{Format, SinkKind};
use super::{Kind, Notification};
use crate::escape;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// At most this many notifications are listed line by line in a chat message; the rest are counted.
pub const MAX_LINES: usize = 20;

/// The JSON body `kind` sends for `batch` (the signing fields of Lark are added by the caller).
pub fn body(kind: SinkKind, format: Format, batch: &[Notification]) -> Value {
    match kind {
        SinkKind::Webhook => webhook(batch),
        SinkKind::Slack => json!({ "text": chat(batch, slack) }),
        SinkKind::Dingtalk => match format {
            Format::Rich => json!({
                "msgtype": "markdown",
                "markdown": { "title": title(batch), "text": chat(batch, markdown) },
            }),
            Format::Text => json!({ "msgtype": "text", "text": { "content": chat(batch, plain) } }),
        },
        SinkKind::Lark => match format {
            Format::Rich => lark_post(batch),
            Format::Text => {
                json!({ "msg_type": "text", "content": { "text": chat(batch, lark_text) } })
            }
        },
        SinkKind::Alertmanager => Value::Array(batch.iter().map(alert).collect()),
    }
}

/// `{"version": 1, "notifications": [...]}`, exactly the fields issue 21 fixes.
pub fn webhook(batch: &[Notification]) -> Value {
    json!({
        "version": 1,
        "notifications": batch.iter().map(|n| json!({
            "kind": n.kind.as_str(),
            "time": n.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "group": n.group.as_ref().map(|g| json!({
                "account": g.account, "region": g.region, "id": g.id, "source": g.source,
            })),
            "from": n.from,
            "to": n.to,
            "changedBy": n.changed_by.as_deref().map(crate::report::author_json),
            "reason": n.reason,
            "text": escape::text(&n.text),
        })).collect::<Vec<_>>(),
    })
}

/// "sgpolicy: 3 corrected, 1 held" — what a burst holds, by kind.
pub fn title(batch: &[Notification]) -> String {
    if let [n] = batch {
        return format!("sgpolicy: {}", n.kind.as_str());
    }
    let mut by: BTreeMap<Kind, usize> = BTreeMap::new();
    for n in batch {
        *by.entry(n.kind).or_default() += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(k, c)| format!("{c} {}", k.as_str()))
        .collect();
    format!("sgpolicy: {}", parts.join(", "))
}

/// One line per notification: kind, group, source, change, author, reason, text; each untrusted part
/// through `esc`.
fn line(n: &Notification, esc: fn(&str) -> String) -> String {
    let mut parts = vec![n.kind.as_str().to_string()];
    if let Some(g) = &n.group {
        let mut where_ = vec![g.region.as_str()];
        if !g.account.is_empty() {
            where_.insert(0, &g.account);
        }
        parts.push(format!(
            "{} ({}, {})",
            esc(&g.id),
            esc(&where_.join(" ")),
            esc(&g.source)
        ));
    }
    if let (Some(f), Some(t)) = (&n.from, &n.to) {
        parts.push(format!("{} -> {}", esc(f), esc(t)));
    }
    if let Some(a) = &n.changed_by {
        parts.push(format!(
            "by {} (event {})",
            esc(&a.to_string()),
            esc(&a.event_id)
        ));
    }
    if let Some(r) = &n.reason {
        parts.push(esc(r));
    }
    parts.push(esc(&n.text));
    parts.join(" · ")
}

fn chat(batch: &[Notification], esc: fn(&str) -> String) -> String {
    let mut out = vec![esc(&title(batch))];
    out.extend(
        batch
            .iter()
            .take(MAX_LINES)
            .map(|n| format!("- {}", line(n, esc))),
    );
    if batch.len() > MAX_LINES {
        out.push(format!("- ... and {} more", batch.len() - MAX_LINES));
    }
    out.join("\n")
}

fn plain(s: &str) -> String {
    escape::text(s).into_owned()
}

/// Slack's control characters as its docs ask: `&`, `<`, `>` as entities (so no `<!channel>`, no
/// link), after every line-breaking character is made visible.
fn slack(s: &str) -> String {
    escape::text(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// DingTalk Markdown: `escape::markdown` (HTML, `|`, backticks, newlines), with Markdown's inline
/// punctuation backslash-escaped so a name cannot make a link, an image, emphasis or a heading.
fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in escape::markdown(s).chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Lark's text messages parse `<at user_id="all">` tags: angle brackets become look-alikes.
fn lark_text(s: &str) -> String {
    escape::text(s)
        .replace('<', "\u{2039}")
        .replace('>', "\u{203a}")
}

/// A Lark `post`: a title and one paragraph per line, each a `text` element (never parsed as tags).
fn lark_post(batch: &[Notification]) -> Value {
    let mut lines: Vec<Value> = batch
        .iter()
        .take(MAX_LINES)
        .map(|n| json!([{ "tag": "text", "text": line(n, plain) }]))
        .collect();
    if batch.len() > MAX_LINES {
        lines.push(
            json!([{ "tag": "text", "text": format!("... and {} more", batch.len() - MAX_LINES) }]),
        );
    }
    json!({
        "msg_type": "post",
        "content": { "post": { "en_us": { "title": title(batch), "content": lines } } },
    })
}

/// One Alertmanager v2 alert. Its labels identify it (so a later "ended" notification resolves the
/// same alert): the alert name, and the group or the topic. `endsAt` only for an ending.
pub fn alert(n: &Notification) -> Value {
    let (name, _) = n.kind.alert();
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(name));
    labels.insert("kind".into(), json!(n.kind.as_str()));
    labels.insert(
        "severity".into(),
        json!(match n.kind {
            Kind::IsolationLost
            | Kind::IsolationRestored
            | Kind::PassFailing
            | Kind::FolderError => "critical",
            _ => "warning",
        }),
    );
    if let Some(g) = &n.group {
        labels.insert("group_id".into(), json!(g.id));
        labels.insert("region".into(), json!(g.region));
        if !g.account.is_empty() {
            labels.insert("account".into(), json!(g.account));
        }
    }
    if let Some(t) = &n.topic {
        labels.insert("topic".into(), json!(t));
    }
    if n.kind.alert().1 || n.ended {
        // The ending's kind is not the alert's identity: the raising kind's label value is.
        let raising = match n.kind {
            Kind::IsolationRestored => Kind::IsolationLost,
            Kind::EventsRecovered => Kind::EventsUnavailable,
            k => k,
        };
        labels.insert("kind".into(), json!(raising.as_str()));
        if raising == Kind::IsolationLost {
            labels.insert("severity".into(), json!("critical"));
        } else if raising == Kind::EventsUnavailable {
            labels.insert("severity".into(), json!("warning"));
        }
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(escape::text(&n.text)));
    for (k, v) in [("from", &n.from), ("to", &n.to), ("reason", &n.reason)] {
        if let Some(v) = v {
            annotations.insert(k.into(), json!(escape::text(v)));
        }
    }
    if let Some(g) = &n.group {
        annotations.insert("source".into(), json!(escape::text(&g.source)));
    }
    if let Some(a) = &n.changed_by {
        annotations.insert("changedBy".into(), json!(escape::text(&a.to_string())));
        annotations.insert("eventId".into(), json!(escape::text(&a.event_id)));
    }
    let time = n.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut alert = json!({ "labels": labels, "annotations": annotations, "startsAt": time });
    if n.resolves() {
        alert["endsAt"] = json!(time);
    }
    alert
}
