//! `--notify-config FILE`: the file read, checked by `notify::config` (every problem at its
//! `file:line:column`), and the secret files its sinks name read relative to it. Any problem joins the
//! other argument problems, so a bad file exits 64 before any request. A secret's content and a
//! sink's URL are never part of a message: they are tokens.

use crate::ecs::credentials::Secret;
use crate::escape;
use crate::notify::{config, NotifySettings, SinkSettings};
use std::path::Path;

/// Larger than any sane sink list; a bigger file is a mistake (or hostile), not a config.
const MAX_BYTES: u64 = 1 << 20;
/// A signing secret or token is one short line.
const MAX_SECRET: usize = 4096;

/// The settings `path` describes, or every problem with it.
pub fn load(path: &Path) -> Result<NotifySettings, Vec<String>> {
    let shown = escape::text(&path.display().to_string()).into_owned();
    let flag = |msg: String| vec![format!("--notify-config {shown}: {msg}")];
    let meta = std::fs::metadata(path).map_err(|e| flag(e.to_string()))?;
    if !meta.is_file() {
        return Err(flag("not a regular file".into()));
    }
    if meta.len() > MAX_BYTES {
        return Err(flag(format!("larger than {MAX_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| flag(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| flag("not UTF-8 text".into()))?;
    let specs = config::parse(&text).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{shown}:{e}"))
            .collect::<Vec<_>>()
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let mut sinks = Vec::new();
    for spec in specs {
        let secret = match &spec.secret_file {
            None => None,
            Some(f) => match read_secret(&base.join(f)) {
                Ok(s) => Some(s),
                Err(why) => {
                    problems.push(format!(
                        "{shown}: sink {}: secretFile {}: {why}",
                        escape::quoted(&spec.name),
                        escape::quoted(&f.display().to_string())
                    ));
                    None
                }
            },
        };
        sinks.push(SinkSettings { spec, secret });
    }
    if problems.is_empty() {
        Ok(NotifySettings {
            sinks,
            ..NotifySettings::default()
        })
    } else {
        Err(problems)
    }
}

fn read_secret(path: &Path) -> Result<Secret, String> {
    let bytes = std::fs::read(path).map_err(|e| e.kind().to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err("empty; put the sink's signing secret in it".into());
    }
    if secret.len() > MAX_SECRET || secret.chars().any(char::is_control) {
        return Err(format!(
            "the secret must be one line of at most {MAX_SECRET} printable characters"
        ));
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn secrets_are_read_from_the_files_the_config_names_beside_it() {
        let dir = folder(&[
            ("notify.yaml", "sinks:\n  - kind: dingtalk\n    url: http://127.0.0.1:1/robot/send?access_token=t\n    secretFile: ding.secret\n"),
            ("ding.secret", "SECabc\n"),
        ]);
        let s = load(&dir.path().join("notify.yaml")).unwrap();
        assert_eq!(
            s.sinks[0].secret.as_ref().map(Secret::expose),
            Some("SECabc")
        );
        assert!(!format!("{s:?}").contains("SECabc"));
        assert!(!format!("{s:?}").contains("access_token"), "{s:?}");
    }

    #[test]
    fn the_flag_belongs_to_the_daemon_and_a_good_file_reaches_its_settings() {
        let dir = folder(&[(
            "n.yaml",
            "sinks:\n  - {kind: slack, url: 'http://127.0.0.1:1/x'}\n",
        )]);
        let args = crate::cli::daemon::DaemonArgs {
            notify_config: Some(dir.path().join("n.yaml")),
            fight_threshold: 3,
            ..Default::default()
        };
        let mut problems = Vec::new();
        args.validate(true, &mut problems);
        assert_eq!(
            problems,
            ["--notify-config only applies to the daemon mode (without --once)"]
        );
        let mut problems = Vec::new();
        let settings = args.validate(false, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.notify.sinks[0].spec.name, "slack-1");
    }

    #[test]
    fn a_bad_file_names_itself_with_line_and_column_and_a_missing_secret_never_shows_a_secret() {
        let dir = folder(&[
            ("bad.yaml", "sinks:\n  - kind: slack\n    url: nope\n"),
            ("nosecret.yaml", "sinks:\n  - kind: webhook\n    url: https://h.example/x?token=TOKEN\n    secretFile: missing\n"),
        ]);
        let errs = load(&dir.path().join("bad.yaml")).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .ends_with("bad.yaml:3:10: `url` must be an http:// or https:// URL with a host"),
            "{errs:?}"
        );
        let errs = load(&dir.path().join("nosecret.yaml")).unwrap_err();
        assert!(
            errs[0].contains("sink \"webhook-1\": secretFile \"missing\": entity not found"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("TOKEN"));
        let errs = load(&dir.path().join("absent.yaml")).unwrap_err();
        assert!(errs[0].starts_with("--notify-config "), "{errs:?}");
    }
}
