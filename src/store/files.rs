//! Local files: bounded reads of what gemauth is given (regular files only, never blocking on a
//! FIFO or device), and private files written atomically (temp file with its space reserved,
//! fsync, rename, directory fsync); private directories; removal of what killed writers left.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest local file gemauth reads (credentials, client secrets, cache entries), as for HTTP
/// bodies.
pub(super) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a whole local file that gemauth was given. Opening never blocks (a FIFO with no writer
/// or a device is refused at once), only a regular file is read (checked on the opened handle,
/// after symlinks), and at most [`MAX_FILE_BYTES`]. The error is the problem, for the caller to
/// put after the file's name.
pub(crate) fn read_bounded(path: &Path) -> std::result::Result<Vec<u8>, String> {
    read_bounded_as(path, Links::Follow)
}

/// Whether opening a file follows a symbolic link at its last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Links {
    /// Files the user names (a credential file may well be a link).
    Follow,
    /// gemauth's own cache entries and lock files: a link there is refused (`O_NOFOLLOW`; on
    /// Windows a reparse point is opened as itself and refused), and so is another user's file.
    Refuse,
}

/// Options that open the last component itself, never what a link there names: `O_NOFOLLOW` on
/// Unix (the open fails), `FILE_FLAG_OPEN_REPARSE_POINT` on Windows (the link itself is opened,
/// for [`super::trust::not_own_file`] to refuse).
pub(super) fn no_follow(options: &mut fs::OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let _ = options;
}

/// Whether an open that refused to follow links failed because the last component is a link.
pub(super) fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// [`read_bounded`], following links at the last component or not.
pub(super) fn read_bounded_as(path: &Path, links: Links) -> std::result::Result<Vec<u8>, String> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if links == Links::Refuse {
            libc::O_NOFOLLOW
        } else {
            0
        };
        options.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    #[cfg(not(unix))]
    if links == Links::Refuse {
        no_follow(&mut options);
    }
    let file = options.open(path).map_err(|e| {
        // Windows refuses to open a directory as a file ("access denied"): say what it is.
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => "is a directory, not a file".to_string(),
            _ if links == Links::Refuse && is_link(path) => {
                "is a symbolic link (not followed)".to_string()
            }
            _ => open_problem(&e),
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if links == Links::Refuse
        && let Some(why) = super::trust::not_own_file(&meta)
    {
        return Err(format!("is not gemauth's own file (it is {why})"));
    }
    if meta.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file (it is {})",
            file_kind(&meta)
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> String {
    format!(
        "is larger than {} KiB, too large for a credential",
        MAX_FILE_BYTES / 1024
    )
}

fn open_problem(e: &std::io::Error) -> String {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return "is a symbolic link loop (too many levels of symbolic links)".into();
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied)".into(),
        _ => format!("cannot be read ({e})"),
    }
}

/// What a non-regular file is, in words.
fn file_kind(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a regular file"
}

/// Whether something is at `path`: a broken file (a symlink loop, no permission) counts as
/// present, so that reading it reports the real problem instead of "does not exist".
pub(crate) fn is_present(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Space set aside, before anything is sent to a server, for a file that may have to be
/// rewritten with the answer: a private temp file beside it, filled to the size needed. Writing
/// into it later needs no new space, so a full disk is found before a refresh token is spent.
/// Dropping an unused reservation removes its temp file.
pub(crate) struct Reservation {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl Reservation {
    /// Reserves `size` bytes for a new version of `path`. A full disk (or quota) gives
    /// [`Error::NoSpace`] naming `path`.
    pub(crate) fn new(path: &Path, size: u64) -> Result<Self> {
        let dir = parent_dir(path);
        create_private_dir(&dir)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".gemauth-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o600));
        }
        let no_space = |source: std::io::Error| {
            use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
            match source.kind() {
                StorageFull | QuotaExceeded | FileTooLarge => Error::NoSpace {
                    path: path.to_path_buf(),
                    source,
                },
                _ => Error::Io {
                    action: "cannot write beside",
                    path: path.to_path_buf(),
                    source,
                },
            }
        };
        let mut tmp = builder.tempfile_in(&dir).map_err(no_space)?;
        // Real blocks, not a sparse file: local file systems allocate (or refuse, ENOSPC) at
        // write time, so no fsync is needed to know; the commit makes the content durable.
        let zeros = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).min(1 << 20)];
        tmp.write_all(&zeros).map_err(no_space)?;
        Ok(Reservation {
            tmp,
            target: path.to_path_buf(),
            dir,
        })
    }

    /// Writes `bytes` into the reserved file and renames it over the target.
    pub(crate) fn commit(mut self, bytes: &[u8]) -> Result<()> {
        let path = self.target.clone();
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let file = self.tmp.as_file_mut();
        file.rewind()
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.set_len(bytes.len() as u64))
            .and_then(|()| file.sync_all())
            .map_err(io("cannot write"))?;
        // Kept (on Windows: no longer marked temporary) and closed, then renamed by std, which
        // on Windows replaces a target that others have open (POSIX semantics) where tempfile's
        // MoveFileEx cannot.
        let (file, tmp_path) = self
            .tmp
            .keep()
            .map_err(|e| e.error)
            .map_err(io("cannot write"))?;
        drop(file);
        if let Err(e) = replace(&tmp_path, &self.target) {
            let _ = fs::remove_file(&tmp_path);
            return Err(io("cannot replace")(e));
        }
        sync_dir(&self.dir);
        tracing::debug!(path = %self.target.display(), bytes = bytes.len(), "wrote file atomically");
        remove_stale_temp_files(&self.dir);
        Ok(())
    }
}

/// Renames `from` over `to`. On Windows a file that another program holds open without sharing
/// its deletion (as many programs open files, and virus scanners do for a moment) cannot be
/// replaced until it is closed, so an access or sharing error is retried for up to two seconds.
fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match fs::rename(from, to) {
            Err(e)
                if cfg!(windows)
                    && matches!(
                        e.raw_os_error(),
                        Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION)
                    )
                    && std::time::Instant::now() < deadline =>
            {
                tracing::debug!(path = %to.display(), "the file is in use; retrying the replace");
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory, written and
/// fsynced, renamed over the target, then the directory fsynced. A missing parent directory is
/// created with mode 0700. Readers see the old file or the new one, never a partial one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Reservation::new(path, bytes.len() as u64)?.commit(bytes)
}

/// Writes a credential file's JSON object back atomically, pretty-printed, into `into` when
/// space was reserved for it before. The caller holds the credential lock.
pub(crate) fn write_json_object(
    path: &Path,
    map: serde_json::Map<String, serde_json::Value>,
    into: Option<Reservation>,
) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map))
        .map_err(|e| Error::Internal(format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    match into {
        Some(reservation) => reservation.commit(&bytes),
        None => write_atomic(path, &bytes),
    }
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
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
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
    if let Ok(d) = fs::File::open(dir) {
        // Makes the rename durable; failure here cannot be acted upon, the data is already safe.
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
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
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        fs::File::options()
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
