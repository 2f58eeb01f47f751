//! The file-system half of `sgpolicy import`: the no-overwrite rule and writing the rendered files.
//! Without `--force` an existing file is never touched: [`check`] refuses the import before any
//! policy is read, and [`write_files`] creates each file only if it does not exist (so a file created
//! meanwhile is not overwritten either), removing what it wrote if it cannot write everything. With
//! `--force` each file is replaced atomically (written beside it, then renamed over it).

use super::render::File;
use super::ImportError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Refuses (naming every one) when any of `names` exists in `dir`, unless `force`.
pub fn check(dir: &Path, names: &[String], force: bool) -> Result<(), ImportError> {
    if force {
        return Ok(());
    }
    let mut paths: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Exists { paths })
    }
}

/// Writes every file into `dir` (created if missing); the paths written, in order.
pub fn write_files(dir: &Path, files: &[File], force: bool) -> Result<Vec<PathBuf>, ImportError> {
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    check(dir, &names, force)?;
    std::fs::create_dir_all(dir).map_err(|source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
        partial: false,
    })?;
    let mut written: Vec<PathBuf> = Vec::new();
    for f in files {
        let path = dir.join(&f.name);
        let result = if force {
            replace(dir, &path, &f.text)
        } else {
            create_new(&path, &f.text)
        };
        if let Err(source) = result {
            let created = !force;
            if created {
                for p in &written {
                    let _ = std::fs::remove_file(p);
                }
            }
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(ImportError::Exists { paths: vec![path] });
            }
            return Err(ImportError::Io {
                path,
                source,
                partial: created && !written.is_empty(),
            });
        }
        written.push(path);
    }
    Ok(written)
}

fn create_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Writes `.NAME.import-tmp` beside the file (a dot file: the loader skips it), then renames it over.
fn replace(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.import-tmp"));
    let written = create_or_truncate(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn create_or_truncate(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> File {
        File {
            name: name.into(),
            text: text.into(),
            declared: 1,
            skipped: 0,
        }
    }

    #[test]
    fn an_existing_file_stops_the_import_naming_it_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.yaml"), "mine").expect("seed file");
        let err = write_files(
            dir.path(),
            &[file("a.yaml", "new a"), file("b.yaml", "new b")],
            false,
        )
        .expect_err("refused");
        assert!(
            matches!(&err, ImportError::Exists { paths } if paths == &[dir.path().join("b.yaml")]),
            "{err}"
        );
        assert!(err.to_string().contains("b.yaml"), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(
            !dir.path().join("a.yaml").exists(),
            "nothing at all was written"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.yaml")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn force_replaces_existing_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.yaml"), "mine").expect("seed file");
        let written = write_files(
            dir.path(),
            &[file("a.yaml", "new a"), file("b.yaml", "new b")],
            true,
        )
        .expect("written");
        assert_eq!(written.len(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.yaml")).unwrap(),
            "new b"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_missing_output_folder_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("new/policies");
        write_files(&out, &[file("a.yaml", "a")], false).expect("written");
        assert_eq!(std::fs::read_to_string(out.join("a.yaml")).unwrap(), "a");
    }
}
