//! One policy file's bytes to its declared groups (or every problem in it), without the filesystem:
//! what `load_folder` does per file, exposed for fuzzing and for callers that already hold the text.

use super::merge;
use super::schema::{self, Fallback};
use super::walk::decode;
use super::{yaml, DesiredGroup, LoadError, Selector};
use crate::model::Location;
use std::collections::HashMap;
use std::path::Path;

/// The groups and selectors one file declares.
pub type FileDecl = (Vec<DesiredGroup>, Vec<Selector>);

/// Parses and validates one file as if it were found at `path`, merging its entries the way a folder
/// load does (so duplicate and conflicting entries within the file are reported too). Never panics.
pub fn parse_file_bytes(
    path: &Path,
    bytes: &[u8],
    default_region: Option<&str>,
) -> Result<FileDecl, Vec<LoadError>> {
    let text = decode(bytes.to_vec()).map_err(|(pos, message)| {
        vec![LoadError {
            location: Location {
                path: path.into(),
                line: pos.line,
                column: pos.column,
            },
            message,
        }]
    })?;
    let tree = yaml::parse(&text).map_err(|e| {
        vec![LoadError {
            location: schema::location(path, e.pos),
            message: e.message,
        }]
    })?;
    let fallback = match default_region {
        None => Fallback::None,
        Some(r) if schema::region_problem(r).is_none() => Fallback::Region(r),
        Some(_) => Fallback::Invalid,
    };
    let decls = schema::groups_of_file(tree.as_ref(), path, fallback);
    let mut errors = decls.errors;
    let mut groups = HashMap::new();
    for group in decls.groups {
        merge::add(&mut groups, group, &mut errors);
    }
    if errors.is_empty() {
        Ok((
            merge::sorted(groups).into_values().collect(),
            decls.selectors,
        ))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_files_bytes_parse_like_a_folder_of_one_file() {
        let p = Path::new("mem.yaml");
        let ok = parse_file_bytes(
            p,
            b"region: cn-hangzhou\ngroups:\n  - {id: sg-1, innerAccessPolicy: drop}\n",
            None,
        )
        .expect("valid");
        assert_eq!(ok.0.len(), 1);
        assert_eq!(ok.0[0].key.region, "cn-hangzhou");
        let errs = parse_file_bytes(
            p,
            b"groups:\n  - {id: sg-1, innerAccessPolicy: drop}\n",
            None,
        )
        .unwrap_err();
        assert!(
            errs[0].to_string().starts_with("mem.yaml:2:"),
            "{}",
            errs[0]
        );
        assert!(parse_file_bytes(
            p,
            b"groups:\n  - {id: sg-1, innerAccessPolicy: drop}\n",
            Some("cn-beijing")
        )
        .is_ok());
        assert!(parse_file_bytes(p, b"\xff\xfe", None).is_err());
        let conflict = b"region: r-1\ngroups:\n  - {id: a, innerAccessPolicy: Drop}\n  - {id: a, innerAccessPolicy: Accept}\n";
        assert!(parse_file_bytes(p, conflict, None).is_err());
    }
}
