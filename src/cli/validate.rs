//! `sgpolicy validate [DIR]` and `sgpolicy schema`: the offline checks for pre-commit hooks and the
//! first CI step. No credentials, no network: only the policy loader runs, so every problem it would
//! refuse a pass for is reported here first, in the form the caller's tooling reads.

use crate::escape;
use crate::model::Location;
use crate::policy::{self, LoadError, LoadOptions};
use std::fmt::Write;
use std::path::Path;

/// How `validate` prints problems.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `path:line:col: message`, the compiler convention editors and terminals jump from.
    Text,
    /// GitHub Actions workflow commands: `::error file=…,line=…,col=…::message`.
    Github,
}

/// What a validation found, already rendered; `ok` decides the exit status (0 or 1).
pub struct Outcome {
    pub ok: bool,
    pub output: String,
}

/// Loads `dir` exactly as a pass would and renders the result.
pub fn validate(dir: &Path, opts: &LoadOptions, format: Format) -> Outcome {
    match policy::load_folder(dir, opts) {
        Ok(d) => {
            let mut output = String::new();
            if d.files == 0 {
                let warning = format!(
                    "no policy files (*.yaml, *.yml) under {}",
                    escape::text(&dir.to_string_lossy())
                );
                match format {
                    Format::Text => {
                        let _ = writeln!(output, "warning: {warning}");
                    }
                    Format::Github => {
                        let _ = writeln!(output, "::warning::{}", escape::github_data(&warning));
                    }
                }
            }
            let _ = writeln!(
                output,
                "valid: {} file(s), {} group(s), {} selector(s), revision {}",
                d.files,
                d.groups.len(),
                d.selectors.len(),
                d.revision
            );
            Outcome { ok: true, output }
        }
        Err(errors) => {
            let mut output = String::new();
            for e in &errors {
                output.push_str(&render(e, format));
                output.push('\n');
            }
            let _ = writeln!(
                output,
                "invalid: {} problem(s) in {}",
                errors.len(),
                escape::text(&dir.to_string_lossy())
            );
            Outcome { ok: false, output }
        }
    }
}

fn render(e: &LoadError, format: Format) -> String {
    match format {
        Format::Text => escape::text(&e.to_string()).into_owned(),
        Format::Github => github_error(&e.location, &e.message),
    }
}

/// One GitHub Actions `error` command. Property values escape `%`, CR, LF, `:` and `,`; the message
/// escapes `%`, CR and LF (as the Actions toolkit's `issueCommand` does); both escape other control
/// characters (`crate::escape`).
pub fn github_error(at: &Location, message: &str) -> String {
    format!(
        "::error file={},line={},col={}::{}",
        escape::github_property(&at.path.to_string_lossy()),
        at.line,
        at.column,
        escape::github_data(message)
    )
}

/// `sgpolicy validate`: prints to stdout, returns the exit status.
pub fn run_cli(args: &crate::cli::ValidateArgs) -> i32 {
    let opts = LoadOptions {
        default_region: args.region.clone(),
        max_file_bytes: args.max_file_bytes,
    };
    let format = match args.output {
        crate::cli::ValidateFormat::Text => Format::Text,
        crate::cli::ValidateFormat::Github => Format::Github,
    };
    let outcome = validate(&args.dir, &opts, format);
    print!("{}", outcome.output);
    if outcome.ok {
        crate::cli::exit::OK
    } else {
        crate::cli::exit::ERROR
    }
}

/// `sgpolicy schema`: the JSON Schema on stdout.
pub fn print_schema() -> i32 {
    print!("{}", policy::json_schema::rendered());
    crate::cli::exit::OK
}

/// Writes the JSON result for `--report FILE` (whole file replaced via a temporary sibling, so a
/// reader never sees half a report).
pub fn write_report(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    use anyhow::Context;
    crate::report::write_file(path, value)
        .with_context(|| format!("writing the report to {}", path.display()))
}

/// `{"version": 1, "errors": [{path, line, column, message}]}`: what a folder that failed to load
/// reports in JSON, on stdout and in `--report` files alike.
pub fn load_errors_json(errors: &[LoadError]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| {
            serde_json::json!({
                "path": e.location.path.display().to_string(),
                "line": e.location.line,
                "column": e.location.column,
                "message": e.message,
            })
        })
        .collect();
    serde_json::json!({"version": crate::report::JSON_VERSION, "errors": list})
}

/// A pass whose folder failed to load: the Markdown comment (when that is the output) and the
/// `--report` file still say why, since CI posts or archives them whatever the exit code.
pub fn report_load_errors(errors: &[LoadError], markdown: bool, report: Option<&Path>) {
    if markdown {
        let mut out = format!(
            "### sgpolicy plan\n\n❌ **The policy folder has {} problem(s); nothing was planned or written.**\n\n",
            errors.len()
        );
        for e in errors.iter().take(200) {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                escape::markdown(&e.location.to_string()),
                escape::markdown(&e.message)
            );
        }
        if errors.len() > 200 {
            let _ = writeln!(out, "- … and {} more", errors.len() - 200);
        }
        print!("{out}");
    }
    if let Some(path) = report {
        if let Err(e) = write_report(path, &load_errors_json(errors)) {
            eprintln!("error: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_annotations_escape_what_would_break_the_command() {
        let at = Location {
            path: std::path::Path::new("pol,icies/a:b.yaml").into(),
            line: 3,
            column: 7,
        };
        assert_eq!(
            github_error(&at, "100% wrong\nreally"),
            "::error file=pol%2Cicies/a%3Ab.yaml,line=3,col=7::100%25 wrong%0Areally"
        );
    }

    #[test]
    fn a_valid_folder_says_what_it_declares_and_an_invalid_one_lists_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.yaml"),
            "region: cn-a\ngroups:\n  - {id: sg-1, innerAccessPolicy: Drop}\n",
        )
        .expect("write");
        let out = validate(dir.path(), &LoadOptions::default(), Format::Text);
        assert!(out.ok);
        assert!(
            out.output
                .starts_with("valid: 1 file(s), 1 group(s), 0 selector(s), revision "),
            "{}",
            out.output
        );
        std::fs::write(
            dir.path().join("b.yaml"),
            "groups:\n  - {id: sg-2, policy: Drop}\n",
        )
        .expect("write");
        let out = validate(dir.path(), &LoadOptions::default(), Format::Github);
        assert!(!out.ok);
        let lines: Vec<&str> = out.output.lines().collect();
        assert!(lines.len() >= 3, "{}", out.output);
        assert!(lines[0].starts_with("::error file="), "{}", out.output);
        assert!(lines[0].contains("b.yaml,line=2,col="), "{}", out.output);
        assert!(lines.last().is_some_and(|l| l.starts_with("invalid: ")));
    }
}
