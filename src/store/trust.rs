//! Whether gemauth's cache directory can be trusted, decided once per process when it is chosen,
//! as ssh judges its own files: the directory and its `tokens/` and `locks/` must be the user's
//! own and writable by no one else; otherwise nothing is cached and nothing is locked, and one
//! warning says why. Also whether an opened cache or lock file is the user's own.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{cache_dir, create_private_dir};
use crate::env::Env;

/// The subdirectories of the cache directory that gemauth uses: token entries and lock files.
/// (On Windows `gemauth curl` also writes its short-lived header files in the directory itself.)
pub(super) const SUBDIRS: [&str; 2] = ["tokens", "locks"];

/// The cache directory chosen for this process: usable, or none with the reason as a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheChoice {
    /// A directory that passed the checks (none: nothing is cached, and there are no locks).
    pub(crate) dir: Option<PathBuf>,
    /// Why there is no cache, for the user (one line).
    pub(crate) warning: Option<String>,
}

/// The process's cache directory, checked on first use and remembered: every cache and lock of
/// the process goes through this one decision.
pub(crate) fn process_cache() -> &'static CacheChoice {
    static CHOICE: OnceLock<CacheChoice> = OnceLock::new();
    CHOICE.get_or_init(|| choose(cache_dir(&Env::Process).as_deref()))
}

/// Checks the cache directory `place` (none: the platform has no cache directory for this
/// user), creating it and its subdirectories 0700 where missing.
pub(crate) fn choose(place: Option<&Path>) -> CacheChoice {
    let Some(place) = place else {
        return unusable(
            "there is no cache directory (HOME is not set; set XDG_CACHE_HOME, or LOCALAPPDATA on \
             Windows)"
                .to_string(),
        );
    };
    let mut dirs = vec![place.to_path_buf()];
    dirs.extend(SUBDIRS.iter().map(|sub| place.join(sub)));
    for dir in &dirs {
        if let Err(e) = create_private_dir(dir) {
            return unusable(e.to_string());
        }
        if let Err(problem) = check_dir(dir) {
            return unusable(problem);
        }
    }
    tracing::debug!(dir = %place.display(), "cache directory checked");
    CacheChoice {
        dir: Some(place.to_path_buf()),
        warning: None,
    }
}

fn unusable(problem: String) -> CacheChoice {
    tracing::debug!(problem, "no token cache");
    CacheChoice {
        dir: None,
        warning: Some(format!(
            "not using a token cache: {problem}; every call gets a new token"
        )),
    }
}

/// What is wrong with a directory for gemauth's cache: not a directory, not the user's own, or
/// writable by others (its group included). Links are followed, as ssh does: a cache directory
/// that is a link to a directory of the user's own is fine.
fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(format!(
                "{} is owned by another user (uid {}), not by you (uid {me}); remove it or set \
                 XDG_CACHE_HOME to a directory of your own",
                dir.display(),
                meta.uid()
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(format!(
                "{} is writable by other users (mode {mode:03o}); run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Why an opened cache entry or lock file is not gemauth's own: another user's file (Unix), or a
/// reparse point such as a symbolic link (Windows, where it is opened as itself, not followed).
pub(super) fn not_own_file(meta: &fs::Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Some("owned by another user");
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Some("a reparse point (a link)");
        }
    }
    let _ = meta;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_created_private_and_used() {
        let base = tempfile::tempdir().unwrap();
        let place = base.path().join("cache").join("gemauth");
        let choice = choose(Some(&place));
        assert_eq!(choice.dir.as_deref(), Some(place.as_path()));
        assert_eq!(choice.warning, None);
        for sub in SUBDIRS {
            assert!(place.join(sub).is_dir());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for dir in [place.clone(), place.join("tokens"), place.join("locks")] {
                let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{}", dir.display());
            }
        }
        // Checked again, as the next process does: still fine.
        assert_eq!(choose(Some(&place)), choice);
    }

    #[test]
    fn no_place_or_a_file_in_its_place_means_no_cache_and_one_warning() {
        let none = choose(None);
        assert_eq!(none.dir, None);
        assert!(none.warning.unwrap().contains("no cache directory"));
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("file");
        fs::write(&file, "").unwrap();
        let choice = choose(Some(&file.join("gemauth")));
        assert_eq!(choice.dir, None);
        let warning = choice.warning.unwrap();
        assert!(
            warning.starts_with("not using a token cache: "),
            "{warning}"
        );
        assert!(warning.contains(&file.display().to_string()), "{warning}");
        assert!(!warning.contains('\n'));
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_may_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let place = base.path().join("gemauth");
        assert!(choose(Some(&place)).dir.is_some());
        for (dir, mode) in [
            (place.clone(), 0o777),
            (place.join("tokens"), 0o770),
            (place.join("locks"), 0o702),
        ] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let choice = choose(Some(&place));
            assert_eq!(choice.dir, None, "{}", dir.display());
            let warning = choice.warning.unwrap();
            assert!(
                warning.contains(&format!("{} is writable by other users", dir.display())),
                "{warning}"
            );
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        }
        // Read and search for others is no one's business but the user's.
        fs::set_permissions(&place, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(choose(Some(&place)).dir.is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_subdirectory_that_is_a_file_or_a_link_elsewhere_is_judged_by_what_it_names() {
        let base = tempfile::tempdir().unwrap();
        let place = base.path().join("gemauth");
        fs::create_dir(&place).unwrap();
        fs::write(place.join("locks"), "").unwrap();
        let choice = choose(Some(&place));
        assert_eq!(choice.dir, None);
        assert!(choice.warning.unwrap().contains("locks"));
        // A link to a private directory of the user's own is fine (a cache moved elsewhere).
        fs::remove_file(place.join("locks")).unwrap();
        let elsewhere = base.path().join("elsewhere");
        create_private_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, place.join("locks")).unwrap();
        assert!(choose(Some(&place)).dir.is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_of_another_user_is_not_used() {
        use std::os::unix::fs::MetadataExt;
        // `/` belongs to root: another user's, unless the tests run as root; then a directory
        // given to `nobody` stands for it.
        let me = rustix::process::geteuid().as_raw();
        let base = tempfile::tempdir().unwrap();
        let (place, owner) = if me == 0 {
            let place = base.path().join("gemauth");
            fs::create_dir(&place).unwrap();
            std::os::unix::fs::chown(&place, Some(65534), Some(65534)).unwrap();
            (place, 65534)
        } else {
            (PathBuf::from("/"), fs::metadata("/").unwrap().uid())
        };
        let problem = check_dir(&place).unwrap_err();
        assert!(
            problem.contains(&format!("is owned by another user (uid {owner})")),
            "{problem}"
        );
        assert!(not_own_file(&fs::metadata(&place).unwrap()).is_some());
        assert!(not_own_file(&fs::metadata(base.path()).unwrap()).is_none());
    }
}
