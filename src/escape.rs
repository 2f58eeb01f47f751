//! Untrusted text made safe to print, in one place. Every printer of text that came from a file name,
//! a policy file, the cloud or an event (the text table, Markdown, GitHub annotations, the human log
//! format, error messages) escapes it here, so that none of it can add a line, forge a workflow command
//! or a log line, recolour a terminal, or break out of a Markdown list, table or code span.
//!
//! JSON needs nothing from here: serde_json escapes every control character in strings (`\n`,
//! `\u001b`), which `report`'s tests prove.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Whether `c` must never reach a terminal, a log line or a CI log raw: the C0 and C1 controls and DEL
/// (newlines, carriage returns, escape sequences, backspaces), the Unicode line and paragraph
/// separators (line breaks to some viewers), and the bidirectional overrides and isolates, which make
/// text display in another order than it is read ("Trojan Source").
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as a Rust-style escape (`\n`, `\r`, `\t`, `\u{1b}`), so
/// it stays on one line and shows what it holds. Idempotent: the output has no unsafe character left.
/// Backslashes are kept as they are (paths and messages read naturally), so the result is for people,
/// not for decoding.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// [`text`] as a `Display` wrapper, for `format!` and log fields without an intermediate `String`.
pub struct Text<'a>(pub &'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text(self.0))
    }
}

/// `value` in double quotes with every unsafe character, `"` and `\` escaped: how an error message
/// quotes a token it found, unambiguous about where the token starts and ends.
pub fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => push_char(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// Text for a Markdown table cell, list item or code span, on one line: no HTML (`<`, `>`, `&` as
/// entities), no `|` to end a cell, no backtick to end a code span, no newline to end a list item or
/// start a heading or a `::` command; other unsafe characters are dropped.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push('\''),
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// The message of a GitHub Actions workflow command (after `::`): `%`, CR and LF escaped as the
/// Actions toolkit's `escapeData` does, so the runner decodes it back; other unsafe characters as in
/// [`text`].
pub fn github_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => push_char(&mut out, c),
        }
    }
    out
}

/// A property value of a workflow command (`file=…`): [`github_data`] plus `:` and `,`, which would
/// end the value (the toolkit's `escapeProperty`).
pub fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A `fmt::Write` that writes what it is given through [`text`]: formatting arguments are escaped as
/// they are written, without an intermediate `String`.
struct Escaping<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(&text(s))
    }
}

/// The field formatter of the human log format: the message and every field value go through [`text`],
/// so a file name, a policy value or an event's `userName` holding a newline or an escape sequence
/// cannot forge a second log line (an audit line, say) or recolour the terminal. tracing-subscriber's
/// own formatter escapes ESC but not newlines. The JSON log format needs none of this (serde escapes).
/// Field names are the program's own (`group=`, `source=`); values read as the default formatter's do.
pub fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let name = field.name();
        if name.starts_with("log.") {
            return Ok(()); // the `log` crate's metadata, already shown as the target
        }
        let mut out = Escaping(w);
        if name == "message" {
            write!(out, "{value:?}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(out, "{name}={value:?}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\nb\r::error::x\u{1b}[31mred\u{7}\u{9b}c\u{202e}txt.yaml|`<b>&";

    #[test]
    fn text_keeps_everything_on_one_line_and_shows_what_was_there() {
        let t = text(HOSTILE);
        assert_eq!(
            t,
            "a\\nb\\r::error::x\\u{1b}[31mred\\u{7}\\u{9b}c\\u{202e}txt.yaml|`<b>&"
        );
        assert!(!t.chars().any(is_unsafe));
        assert_eq!(text(&t), t, "idempotent");
        assert!(matches!(text("plain: ok"), Cow::Borrowed(_)));
        assert_eq!(Text(HOSTILE).to_string(), t);
    }

    #[test]
    fn quoted_tokens_cannot_end_their_quotes() {
        assert_eq!(quoted("Drop\"\\\n\u{0}"), "\"Drop\\\"\\\\\\n\\u{0}\"");
    }

    #[test]
    fn markdown_cannot_break_out_of_a_cell_a_list_or_a_code_span() {
        assert_eq!(
            markdown(HOSTILE),
            "a b ::error::x[31mredctxt.yaml\\|'&lt;b&gt;&amp;"
        );
    }

    #[test]
    fn github_commands_cannot_be_ended_or_started_by_the_text() {
        let data = github_data(HOSTILE);
        assert!(!data.contains('\n') && !data.contains('\r'), "{data}");
        assert!(data.starts_with("a%0Ab%0D::error::x\\u{1b}[31m"), "{data}");
        assert_eq!(github_data("100%"), "100%25");
        assert_eq!(github_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    proptest::proptest! {
        #[test]
        fn no_output_ever_holds_a_character_that_could_start_a_line_or_a_sequence(s in "\\PC*|[\\x00-\\x{a0}\\x{2028}-\\x{206f}`|<>&%:,]{0,40}") {
            let t = text(&s);
            proptest::prop_assert!(!t.chars().any(is_unsafe));
            proptest::prop_assert_eq!(text(&t), t.clone());
            let q = quoted(&s);
            proptest::prop_assert!(!q.chars().any(is_unsafe));
            let md = markdown(&s);
            proptest::prop_assert!(!md.chars().any(|c| is_unsafe(c) || matches!(c, '<' | '>' | '`')));
            proptest::prop_assert!(!md.replace("\\|", "").contains('|'));
            let gh = github_property(&s);
            proptest::prop_assert!(!gh.chars().any(|c| is_unsafe(c) || matches!(c, ':' | ',')));
        }
    }
}

#[cfg(test)]
mod log_tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool, log: impl FnOnce()) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone());
        if json {
            tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), log);
        } else {
            tracing::subscriber::with_default(
                builder.fmt_fields(super::log_fields()).finish(),
                log,
            );
        }
        let bytes = out.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    const FORGED: &str = "alice\n2026-12-07T10:00:00Z  INFO sgpolicy::audit: write group=sg-x outcome=\"changed\"\u{1b}[2K\r";

    fn hostile_event() {
        let author = FORGED.to_string();
        tracing::info!(
            target: "sgpolicy::audit",
            changed_by = %author, source = "pol\nicies/a.yaml", name = ?author,
            "write {}", "by\nhand"
        );
    }

    #[test]
    fn the_human_log_format_keeps_a_hostile_field_or_message_on_its_own_line() {
        let out = logged(false, hostile_event);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out}");
        assert!(
            out.contains("write by\\nhand changed_by=alice\\n2026-12-07"),
            "{out}"
        );
        assert!(out.contains("\\u{1b}[2K\\r"), "{out}");
        assert!(
            out.contains(" source=\"pol\\nicies/a.yaml\""),
            "strings stay quoted: {out}"
        );
    }

    #[test]
    fn the_json_log_format_is_one_object_per_line_that_gives_the_text_back() {
        let out = logged(true, hostile_event);
        assert_eq!(out.lines().count(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(out.trim_end()).expect("JSON");
        assert_eq!(line["changed_by"], FORGED);
        assert_eq!(line["message"], "write by\nhand");
    }
}
