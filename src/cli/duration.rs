//! The one duration grammar of every duration flag (`--interval`, `--debounce`, `--shutdown-grace`,
//! `--fight-window`, `--fight-hold`, `--pass-timeout`, `--request-timeout`, `--connect-timeout`).
//!
//! It accepts everything either of the two earlier parsers accepted: a bare number of seconds (`30`,
//! `2.5`), a decimal with one unit (`1500ms`, `90s`, `1.5h`), and humantime's phrases (`1h 30m`,
//! `2min`, `1day`).

use std::time::Duration;

/// Why a text is not a duration; the caller prefixes the flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration like 30s, 2m, 1h 30m or 1500ms")]
pub struct BadDuration {
    pub text: String,
}

/// Parses one duration in the grammar above.
pub fn parse(text: &str) -> Result<Duration, BadDuration> {
    let t = text.trim();
    let bad = || BadDuration {
        text: text.to_string(),
    };
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "" | "s" => Some(1.0),
        "ms" => Some(0.001),
        "m" => Some(60.0),
        "h" => Some(3600.0),
        _ => None,
    };
    match (num.parse::<f64>(), scale) {
        (Ok(value), Some(scale)) => Duration::try_from_secs_f64(value * scale).map_err(|_| bad()),
        _ => humantime::parse_duration(t).map_err(|_| bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn both_earlier_grammars_are_accepted() {
        let secs = Duration::from_secs;
        for (text, want) in [
            ("30", secs(30)),
            ("2.5", Duration::from_millis(2500)),
            ("1500ms", Duration::from_millis(1500)),
            ("300ms", Duration::from_millis(300)),
            ("90s", secs(90)),
            ("30m", secs(1800)),
            ("1.5h", secs(5400)),
            ("1h", secs(3600)),
            ("1h 30m", secs(5400)),
            ("1h30m", secs(5400)),
            ("2min", secs(120)),
            ("1day", secs(86400)),
            (" 5s ", secs(5)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_text_quoted() {
        for bad in [
            "",
            "s",
            "5x",
            "-1s",
            "1e9h",
            "1..2s",
            "5 minutes-ish",
            "1e400",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(
                e.to_string()
                    .starts_with(&format!("{bad:?} is not a duration")),
                "{e}"
            );
        }
    }
}
