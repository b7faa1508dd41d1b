//! Private files written atomically: temp file, fsync, rename, directory fsync; private
//! directories; removal of what killed writers left behind.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory, written and
/// fsynced, renamed over the target, then the directory fsynced. A missing parent directory is
/// created with mode 0700. Readers see the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            action,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".gemauth-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(io("cannot create a temporary file in", &dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("cannot write", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .map_err(io("cannot replace", path))?;
    sync_dir(&dir);
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "wrote file atomically");
    remove_stale_temp_files(&dir);
    Ok(())
}

/// Rewrites a credential file in place: loads it as a JSON object (checked like every loader
/// does), lets `edit` change it, and writes it back atomically, pretty-printed. The caller holds
/// the credential lock.
pub fn update_credential_json(
    path: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> Result<()>,
) -> Result<()> {
    let mut map = crate::credentials::load_json_object(path)?;
    edit(&mut map)?;
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map))
        .map_err(|e| Error::Internal(format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Temp files older than this were left by a writer that was killed before its rename.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes gemauth temp files that a killed writer left behind (never a young one: another
/// process may be writing it right now).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".gemauth-") && name.ends_with(".tmp")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if stale {
            tracing::debug!(file = %entry.path().display(), "removing a stale temp file");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as is.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::Io {
        action: "cannot create directory",
        path: dir.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; failure here cannot be acted upon, the data is already safe.
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "cannot remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_creates_private_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("creds.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic(&path, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn stale_temp_files_of_killed_writers_are_removed_and_young_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".gemauth-killed.tmp");
        let young = dir.path().join(".gemauth-writing.tmp");
        let other = dir.path().join("unrelated.tmp");
        for p in [&stale, &young, &other] {
            fs::write(p, b"partial").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(old)
            .unwrap();
        write_atomic(&dir.path().join("creds.json"), b"{}").unwrap();
        assert!(!stale.exists());
        assert!(young.exists());
        assert!(other.exists());
    }
}
