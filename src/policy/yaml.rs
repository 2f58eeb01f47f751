//! A small spanned YAML tree built from yaml-rust2's event stream, with hard limits for hostile input.
//!
//! Policy files only need scalars, lists and mappings, each with the 1-based line and column where it
//! starts, so that every later error can point at the exact node. The builder is iterative (an explicit
//! stack, never recursion), refuses anchors and aliases outright (so an alias bomb cannot expand), caps
//! nesting depth and the total node count, and accepts exactly one YAML document per file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of lists/mappings accepted; a policy file needs three levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes (scalars + collections) accepted in one file; ~28k group entries.
pub(crate) const MAX_NODES: usize = 200_000;

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(m: &Marker) -> Pos {
        // yaml-rust2 0.10 counts lines from 1 and columns from 0.
        Pos {
            line: m.line().max(1),
            column: m.col().saturating_add(1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `plain` is true for unquoted scalars, which is what makes `~`, `null` and an empty value "nothing".
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// The text of a scalar that is not null, or `None`.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How this node reads in an error message ("found a list").
    pub(crate) fn kind(&self) -> String {
        match &self.value {
            _ if self.is_null() => "nothing".to_string(),
            Value::Scalar { text, .. } => format!("{:?}", clip(text)),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// At most 40 characters of `s`, for quoting user text in a message without flooding it.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}...", s.get(..cut).unwrap_or_default()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl SyntaxError {
    fn at(m: &Marker, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: Pos::from_marker(m),
            message: message.into(),
        }
    }
}

const ANCHORS: &str =
    "YAML anchors and aliases (`&name`, `*name`) are not supported in policy files";

/// Parses one YAML document into a tree; `Ok(None)` for a file with no document (empty or only comments).
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    // yaml-rust2 is not known to panic, but a panic on hostile bytes must never take the process down.
    match catch_unwind(AssertUnwindSafe(|| build(text))) {
        Ok(result) => result,
        Err(_) => Err(SyntaxError {
            pos: Pos::START,
            message:
                "the YAML parser failed on this file (internal error); please check its syntax"
                    .to_string(),
        }),
    }
}

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

fn build(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            pos: Pos::from_marker(e.marker()),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = Pos::from_marker(&mark);
        let finished = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError::at(
                        &mark,
                        "a policy file holds one YAML document; split the documents after `---` into separate files",
                    ));
                }
                continue;
            }
            Event::Alias(_) => return Err(SyntaxError::at(&mark, ANCHORS)),
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor != 0 =>
            {
                return Err(SyntaxError::at(&mark, ANCHORS));
            }
            Event::Scalar(text, style, _, _) => {
                count(&mut nodes, &mark)?;
                Node {
                    pos,
                    value: Value::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                count(&mut nodes, &mark)?;
                let seq = matches!(event, Event::SequenceStart(..));
                open(&mut stack, seq, pos, &mark)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => close(&mut stack, &mark)?,
        };
        attach(&mut stack, &mut root, finished, &mark)?;
    }
    Ok(root)
}

/// Opens a sequence (`seq`) or a mapping at `pos`, refusing to nest deeper than `MAX_DEPTH`.
fn open(stack: &mut Vec<Frame>, seq: bool, pos: Pos, mark: &Marker) -> Result<(), SyntaxError> {
    if stack.len() >= MAX_DEPTH {
        return Err(SyntaxError::at(
            mark,
            format!("nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    stack.push(if seq {
        Frame::Seq(pos, Vec::new())
    } else {
        Frame::Map(pos, Vec::new(), None)
    });
    Ok(())
}

/// Closes the innermost sequence or mapping into its node.
fn close(stack: &mut Vec<Frame>, mark: &Marker) -> Result<Node, SyntaxError> {
    match stack.pop() {
        Some(Frame::Seq(pos, items)) => Ok(Node {
            pos,
            value: Value::Seq(items),
        }),
        Some(Frame::Map(pos, entries, None)) => Ok(Node {
            pos,
            value: Value::Map(entries),
        }),
        Some(Frame::Map(_, _, Some(_))) | None => Err(SyntaxError::at(
            mark,
            "YAML syntax error: unbalanced structure",
        )),
    }
}

/// Puts a finished node where it belongs: the root, the next item of a sequence, or a mapping's
/// key or value.
fn attach(
    stack: &mut [Frame],
    root: &mut Option<Node>,
    finished: Node,
    mark: &Marker,
) -> Result<(), SyntaxError> {
    match stack.last_mut() {
        None if root.is_none() => *root = Some(finished),
        None => {
            return Err(SyntaxError::at(
                mark,
                "YAML syntax error: more than one root node",
            ))
        }
        Some(Frame::Seq(_, items)) => items.push(finished),
        Some(Frame::Map(map_pos, entries, pending)) => match pending.take() {
            None => {
                // A block mapping's start event is marked after its first key; the key is where it starts.
                *map_pos = (*map_pos).min(finished.pos);
                *pending = Some(finished);
            }
            Some(key) => entries.push((key, finished)),
        },
    }
    Ok(())
}

fn count(nodes: &mut usize, mark: &Marker) -> Result<(), SyntaxError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(SyntaxError::at(
            mark,
            format!("too many YAML nodes (more than {MAX_NODES}) in one policy file"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        n.as_str().unwrap_or("<not a string>")
    }

    #[test]
    fn positions_are_one_based_and_block_mappings_start_at_their_first_key() {
        let root = parse("region: x\ngroups:\n  - id: a\n    innerAccessPolicy: Drop\n")
            .expect("valid")
            .expect("a document");
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
        let Value::Map(top) = &root.value else {
            panic!("expected a map, got {root:?}")
        };
        assert_eq!(scalar(&top[0].1), "x");
        assert_eq!(top[0].1.pos, Pos { line: 1, column: 9 });
        let Value::Seq(items) = &top[1].1.value else {
            panic!("expected a list")
        };
        assert_eq!(items[0].pos, Pos { line: 3, column: 5 });
        let Value::Map(entry) = &items[0].value else {
            panic!("expected a map")
        };
        assert_eq!(entry[1].0.pos, Pos { line: 4, column: 5 });
        assert_eq!(
            entry[1].1.pos,
            Pos {
                line: 4,
                column: 24
            }
        );
    }

    #[test]
    fn empty_and_comment_only_files_have_no_document() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("# nothing here\n\n# at all\n"), Ok(None));
    }

    #[test]
    fn null_and_quoted_scalars() {
        let root = parse("a: ~\nb: \"~\"\nc:\nd: 12345\n")
            .expect("ok")
            .expect("doc");
        let Value::Map(m) = &root.value else {
            panic!("expected a map")
        };
        assert!(m[0].1.is_null());
        assert!(!m[1].1.is_null());
        assert!(m[2].1.is_null());
        assert_eq!(m[3].1.as_str(), Some("12345"));
        assert_eq!(m[2].1.kind(), "nothing");
        assert_eq!(m[1].1.kind(), "\"~\"");
        let long = parse(&format!("k: \"{}\\n\"", "é".repeat(50)))
            .expect("ok")
            .expect("doc");
        let Value::Map(m) = &long.value else {
            panic!("expected a map")
        };
        assert_eq!(
            m[0].1.kind(),
            format!("{:?}", format!("{}...", "é".repeat(40)))
        );
    }

    #[test]
    fn anchors_aliases_and_multiple_documents_are_refused() {
        let e = parse("a: &x 1\nb: *x\n").expect_err("anchor");
        assert!(e.message.contains("anchors and aliases"), "{e:?}");
        assert_eq!(e.pos.line, 1);
        let e = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert!(e.message.contains("one YAML document"), "{e:?}");
        // A single explicit document marker is fine.
        assert!(parse("---\na: 1\n").expect("ok").is_some());
    }

    #[test]
    fn depth_and_syntax_errors_are_positioned() {
        let deep = format!("a: {}", "[".repeat(MAX_DEPTH + 5));
        let e = parse(&deep).expect_err("too deep");
        assert!(e.message.contains("nested more than"), "{e:?}");
        let e = parse("a: 1\nb: {\n").expect_err("syntax");
        assert!(e.message.starts_with("YAML syntax error"), "{e:?}");
        assert_eq!(e.pos.line, 3);
    }
}
