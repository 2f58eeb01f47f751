//! `--notify-config` YAML into sink specs, every problem located at its line and column like policy
//! files (the same spanned YAML tree with its limits for hostile input). Pure: the caller reads the
//! file and the secret files it names.

use super::{Kind, Notification};
use crate::ecs::credentials::Secret;
use crate::policy::glob_match;
use crate::policy::yaml::{self, Node, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a sink sends, each with its body and signature (`render`, `sign`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Webhook,
    Slack,
    Dingtalk,
    Lark,
    Alertmanager,
}

impl SinkKind {
    const NAMES: [(&'static str, SinkKind); 5] = [
        ("webhook", SinkKind::Webhook),
        ("slack", SinkKind::Slack),
        ("dingtalk", SinkKind::Dingtalk),
        ("lark", SinkKind::Lark),
        ("alertmanager", SinkKind::Alertmanager),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("webhook")
    }
}

/// The message style of the chat sinks that offer two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// DingTalk `markdown`, Lark `post`, Slack mrkdwn.
    Rich,
    /// DingTalk and Lark `text`.
    Text,
}

/// Which notifications a sink takes: kinds, and globs over the group id and the declaring file.
/// A notification about no group (an event source, the folder) passes the group and file filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub kinds: Option<BTreeSet<Kind>>,
    pub groups: Vec<String>,
    pub files: Vec<String>,
}

impl Filter {
    pub fn accepts(&self, n: &Notification) -> bool {
        if let Some(kinds) = &self.kinds {
            if !kinds.contains(&n.kind) {
                return false;
            }
        }
        let Some(g) = &n.group else { return true };
        let file = g
            .source
            .rsplit_once(':')
            .map_or(g.source.as_str(), |(f, _)| f);
        (self.groups.is_empty() || self.groups.iter().any(|p| glob_match(p, &g.id)))
            && (self.files.is_empty() || self.files.iter().any(|p| glob_match(p, file)))
    }
}

/// One `sinks:` entry, checked. The URL is a `Secret` (Slack's and DingTalk's carry their token), so
/// neither `Debug` nor a log line shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSpec {
    pub kind: SinkKind,
    /// `name:`, or `<kind>-<n>` (1-based): the `sink` label of the metrics and log lines.
    pub name: String,
    pub url: Secret,
    pub secret_file: Option<PathBuf>,
    pub filter: Filter,
    pub remind: Option<Duration>,
    pub coalesce: Duration,
    pub format: Format,
}

impl SinkSpec {
    /// A sink of `kind` posting to `url`, with the defaults a YAML entry gets.
    pub fn new(kind: SinkKind, name: impl Into<String>, url: impl Into<String>) -> Self {
        SinkSpec {
            kind,
            name: name.into(),
            url: Secret::new(url),
            secret_file: None,
            filter: Filter::default(),
            remind: None,
            coalesce: DEFAULT_COALESCE,
            format: Format::Rich,
        }
    }
}

/// How long a sink waits after the first notification of a burst for the rest of it.
pub const DEFAULT_COALESCE: Duration = Duration::from_secs(2);
/// Shortest `remind:`, so a typo cannot page a team every second.
pub const MIN_REMIND: Duration = Duration::from_secs(60);

/// A problem in the file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

const KEYS: [&str; 10] = [
    "kind",
    "name",
    "url",
    "secretFile",
    "kinds",
    "groups",
    "files",
    "remind",
    "coalesce",
    "format",
];

/// The sinks of a notify config, or every problem found.
pub fn parse(text: &str) -> Result<Vec<SinkSpec>, Vec<ConfigError>> {
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(vec![ConfigError {
                line: 1,
                column: 1,
                message: "the file is empty; expected `sinks:` with a list of sinks".into(),
            }])
        }
        Err(e) => {
            return Err(vec![ConfigError {
                line: e.pos.line,
                column: e.pos.column,
                message: e.message,
            }])
        }
    };
    let mut errs = Vec::new();
    let Some(items) = sink_items(&root, &mut errs) else {
        return Err(errs);
    };
    let out = sinks(items, &mut errs);
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn at(node: &Node, message: String) -> ConfigError {
    ConfigError {
        line: node.pos.line,
        column: node.pos.column,
        message,
    }
}

/// The entries of the top-level `sinks:` list; `None` when there is no list to read.
fn sink_items<'a>(root: &'a Node, errs: &mut Vec<ConfigError>) -> Option<&'a [Node]> {
    let Value::Map(top) = &root.value else {
        errs.push(at(
            root,
            format!("expected a mapping with `sinks:`, found {}", root.kind()),
        ));
        return None;
    };
    let mut sinks_node = None;
    for (k, v) in top {
        match k.as_str() {
            Some("sinks") => sinks_node = Some(v),
            other => errs.push(at(
                k,
                format!(
                    "unknown key {}; the only top-level key is `sinks`",
                    show(other)
                ),
            )),
        }
    }
    let Some(list) = sinks_node else {
        errs.push(at(root, "missing `sinks:`".into()));
        return None;
    };
    let Value::Seq(items) = &list.value else {
        errs.push(at(
            list,
            format!("`sinks` must be a list, found {}", list.kind()),
        ));
        return None;
    };
    if items.is_empty() {
        errs.push(at(
            list,
            "`sinks` is empty; remove --notify-config to send nothing".into(),
        ));
    }
    Some(items)
}

/// Every entry read into its spec, numbered from 1 for the default names, names unique.
fn sinks(items: &[Node], errs: &mut Vec<ConfigError>) -> Vec<SinkSpec> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(spec) = sink(item, i + 1, errs) {
            if !names.insert(spec.name.clone()) {
                errs.push(at(
                    item,
                    format!(
                        "a second sink is named {:?}; names must be unique",
                        spec.name
                    ),
                ));
            }
            out.push(spec);
        }
    }
    out
}

fn show(s: Option<&str>) -> String {
    match s {
        Some(s) => crate::escape::quoted(&yaml::clip(s)),
        None => "(not text)".into(),
    }
}

/// One sink entry's keys, read by type; each reader records what is wrong at the value's position.
struct Fields<'a> {
    entries: &'a [(Node, Node)],
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Every key that is not one of `KEYS`, with a suggestion when it is a near miss.
    fn unknown_keys(&self, errs: &mut Vec<ConfigError>) {
        for (k, _) in self.entries {
            if k.as_str().is_some_and(|k| KEYS.contains(&k)) {
                continue;
            }
            let hint = k
                .as_str()
                .and_then(|k| KEYS.iter().find(|c| strsim::levenshtein(c, k) <= 2))
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            errs.push(at(
                k,
                format!(
                    "unknown key {} in a sink{hint}; expected one of {}",
                    show(k.as_str()),
                    KEYS.join(", ")
                ),
            ));
        }
    }

    /// `key` as non-blank text with its node, `None` when absent or not text (then recorded).
    fn text(&self, key: &str, errs: &mut Vec<ConfigError>) -> Option<(String, &'a Node)> {
        let v = self.get(key)?;
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some((s.to_string(), v)),
            _ => {
                errs.push(at(v, format!("`{key}` must be text, found {}", v.kind())));
                None
            }
        }
    }

    /// `key` as a non-empty list of non-empty text entries; empty when absent.
    fn list(&self, key: &str, errs: &mut Vec<ConfigError>) -> Vec<(String, &'a Node)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let Value::Seq(items) = &v.value else {
            errs.push(at(v, format!("`{key}` must be a list, found {}", v.kind())));
            return Vec::new();
        };
        if items.is_empty() {
            errs.push(at(
                v,
                format!("`{key}` is empty; leave it out to take everything"),
            ));
        }
        items
            .iter()
            .filter_map(|i| match i.as_str() {
                Some(s) if !s.is_empty() => Some((s.to_string(), i)),
                _ => {
                    errs.push(at(
                        i,
                        format!("an entry of `{key}` must be text, found {}", i.kind()),
                    ));
                    None
                }
            })
            .collect()
    }

    /// `key` as a humantime duration (`30s`, `15m`, `1h`).
    fn duration(&self, key: &str, errs: &mut Vec<ConfigError>) -> Option<Duration> {
        let (s, node) = self.text(key, errs)?;
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(_) => {
                errs.push(at(
                    node,
                    format!(
                        "`{key}` must be a duration like 30s, 15m or 1h, found {}",
                        show(Some(&s))
                    ),
                ));
                None
            }
        }
    }

    /// A required text field: absent is recorded at the sink entry with `missing`.
    fn required(
        &self,
        item: &Node,
        key: &str,
        missing: &str,
        errs: &mut Vec<ConfigError>,
    ) -> Option<(String, &'a Node)> {
        let found = self.text(key, errs);
        if found.is_none() && self.get(key).is_none() {
            errs.push(at(item, missing.into()));
        }
        found
    }
}

fn sink(item: &Node, n: usize, errs: &mut Vec<ConfigError>) -> Option<SinkSpec> {
    let Value::Map(entries) = &item.value else {
        errs.push(at(
            item,
            format!(
                "a sink must be a mapping like {{kind: slack, url: ...}}, found {}",
                item.kind()
            ),
        ));
        return None;
    };
    let before = errs.len();
    let fields = Fields { entries };
    fields.unknown_keys(errs);
    let kind = sink_kind(&fields, item, errs);
    let url = sink_url(&fields, item, errs);
    let name = fields.text("name", errs).map(|(s, _)| s);
    let secret_file = fields
        .text("secretFile", errs)
        .map(|(s, _)| PathBuf::from(s));
    let filter = sink_filter(&fields, errs);
    let remind = remind(&fields, errs);
    let coalesce = coalesce(&fields, errs);
    let format = message_format(&fields, kind, errs);
    if errs.len() > before {
        return None;
    }
    let kind = kind?;
    let mut spec = SinkSpec::new(
        kind,
        name.unwrap_or_else(|| format!("{}-{n}", kind.as_str())),
        url?,
    );
    spec.secret_file = secret_file;
    spec.filter = filter;
    spec.remind = remind;
    spec.coalesce = coalesce;
    spec.format = format;
    Some(spec)
}

fn sink_kind(fields: &Fields, item: &Node, errs: &mut Vec<ConfigError>) -> Option<SinkKind> {
    let missing = "a sink needs `kind:` (webhook, slack, dingtalk, lark or alertmanager)";
    let (k, node) = fields.required(item, "kind", missing, errs)?;
    match SinkKind::NAMES.iter().find(|(name, _)| *name == k) {
        Some((_, kind)) => Some(*kind),
        None => {
            errs.push(at(
                node,
                format!(
                    "unknown sink kind {}; expected webhook, slack, dingtalk, lark or alertmanager",
                    show(Some(&k))
                ),
            ));
            None
        }
    }
}

fn sink_url(fields: &Fields, item: &Node, errs: &mut Vec<ConfigError>) -> Option<String> {
    let (u, node) = fields.required(item, "url", "a sink needs `url:`", errs)?;
    match url::Url::parse(&u) {
        // The URL is not quoted back: its path or query often is the sink's token.
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Some(u),
        _ => {
            errs.push(at(
                node,
                "`url` must be an http:// or https:// URL with a host".into(),
            ));
            None
        }
    }
}

/// `kinds:`, `groups:` and `files:`; each left out takes everything.
fn sink_filter(fields: &Fields, errs: &mut Vec<ConfigError>) -> Filter {
    let mut filter = Filter::default();
    if fields.get("kinds").is_some() {
        let mut kinds = BTreeSet::new();
        for (k, node) in fields.list("kinds", errs) {
            match Kind::parse(&k) {
                Some(kind) => {
                    kinds.insert(kind);
                }
                None => errs.push(at(
                    node,
                    format!(
                        "unknown notification kind {}; expected one of {}",
                        show(Some(&k)),
                        Kind::ALL.map(Kind::as_str).join(", ")
                    ),
                )),
            }
        }
        filter.kinds = Some(kinds);
    }
    let texts = |key: &str, errs: &mut Vec<ConfigError>| -> Vec<String> {
        fields.list(key, errs).into_iter().map(|(s, _)| s).collect()
    };
    filter.groups = texts("groups", errs);
    filter.files = texts("files", errs);
    filter
}

fn remind(fields: &Fields, errs: &mut Vec<ConfigError>) -> Option<Duration> {
    let remind = fields.duration("remind", errs);
    if let (Some(r), Some(node)) = (remind, fields.get("remind")) {
        if r < MIN_REMIND {
            errs.push(at(node, "`remind` must be at least 1m".into()));
        }
    }
    remind
}

fn coalesce(fields: &Fields, errs: &mut Vec<ConfigError>) -> Duration {
    let coalesce = fields
        .duration("coalesce", errs)
        .unwrap_or(DEFAULT_COALESCE);
    if coalesce > Duration::from_secs(600) {
        if let Some(node) = fields.get("coalesce") {
            errs.push(at(node, "`coalesce` must be at most 10m".into()));
        }
    }
    coalesce
}

/// `format:`, which only DingTalk and Lark take.
fn message_format(fields: &Fields, kind: Option<SinkKind>, errs: &mut Vec<ConfigError>) -> Format {
    let Some((f, node)) = fields.text("format", errs) else {
        return Format::Rich;
    };
    match (kind, f.as_str()) {
        (Some(SinkKind::Dingtalk), "markdown") | (Some(SinkKind::Lark), "post") => Format::Rich,
        (Some(SinkKind::Dingtalk | SinkKind::Lark), "text") => Format::Text,
        _ => {
            errs.push(at(
                node,
                format!(
                    "`format` {} does not apply here: dingtalk takes markdown or text, lark post or text",
                    show(Some(&f))
                ),
            ));
            Format::Rich
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_full_sink_entry_reads_into_its_spec_with_defaults_for_what_is_left_out() {
        let sinks = parse(
            "sinks:\n  - kind: dingtalk\n    url: https://oapi.dingtalk.com/robot/send?access_token=t\n    secretFile: ding.secret\n    kinds: [corrected, held]\n    groups: ['sg-prod-*']\n    remind: 1h\n    format: text\n  - kind: slack\n    url: https://hooks.slack.com/services/T/B/x\n",
        )
        .unwrap();
        assert_eq!(sinks.len(), 2);
        let d = &sinks[0];
        assert_eq!(
            (d.kind, d.name.as_str()),
            (SinkKind::Dingtalk, "dingtalk-1")
        );
        assert_eq!(d.secret_file, Some(PathBuf::from("ding.secret")));
        assert_eq!(d.filter.kinds, Some([Kind::Corrected, Kind::Held].into()));
        assert_eq!(d.remind, Some(Duration::from_secs(3600)));
        assert_eq!(d.format, Format::Text);
        assert_eq!(
            (sinks[1].name.as_str(), sinks[1].coalesce),
            ("slack-2", DEFAULT_COALESCE)
        );
        assert_eq!(sinks[1].filter, Filter::default());
    }

    #[test]
    fn every_problem_is_reported_at_its_line_and_column_and_a_url_is_never_quoted_back() {
        let errs = errors(
            "sinks:\n  - kind: teams\n    url: https://x.example/hook?token=SECRETTOKEN\n  - kind: slack\n    url: ftp://SECRETTOKEN@x\n    kindz: [held]\n    remind: soon\n  - kind: webhook\n    url: https://x.example\n    kinds: [corected]\n",
        );
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs[0].starts_with("2:11: unknown sink kind \"teams\""),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("5:10: `url` must be an http")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("6:5: unknown key \"kindz\"") && e.contains("did you mean")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("7:13: `remind` must be a duration")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("10:13: unknown notification kind \"corected\"")),
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.contains("SECRETTOKEN")), "{errs:?}");
    }

    #[test]
    fn empty_files_missing_fields_and_yaml_errors_are_located() {
        assert_eq!(
            errors("# nothing\n"),
            ["1:1: the file is empty; expected `sinks:` with a list of sinks"]
        );
        assert_eq!(
            errors("sinks:\n  - {kind: slack}\n"),
            ["2:5: a sink needs `url:`"]
        );
        assert!(
            errors("sinks: [\n")[0].starts_with("2:1:"),
            "{:?}",
            errors("sinks: [\n")
        );
        assert_eq!(
            errors("sinks: []\n"),
            ["1:8: `sinks` is empty; remove --notify-config to send nothing"]
        );
        let dup = "sinks:\n  - {kind: slack, url: 'https://a', name: a}\n  - {kind: slack, url: 'https://b', name: a}\n";
        assert_eq!(
            errors(dup),
            ["3:5: a second sink is named \"a\"; names must be unique"]
        );
    }
}
