//! Where credentials are: gcloud's config directory, the well-known ADC file, discovery in the
//! order of `google.auth.default()`, gemauth's cache directory, and exposure warnings; every
//! variable is read from the [`Env`] given.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{Error, Result};

/// File name of the Application Default Credentials file inside gcloud's config directory.
pub(super) const ADC_FILE_NAME: &str = "application_default_credentials.json";
/// Environment variable that points client libraries at a credential file.
pub(crate) const ENV_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// Environment variable that relocates gcloud's config directory.
pub(crate) const ENV_CLOUDSDK_CONFIG: &str = "CLOUDSDK_CONFIG";

/// gcloud's configuration directory, where gcloud and Google's client libraries look:
/// `$CLOUDSDK_CONFIG`, else `~/.config/gcloud` (macOS included); on Windows
/// `%APPDATA%\gcloud`, or `%SystemDrive%\gcloud` when `APPDATA` is not set.
fn gcloud_config_dir(env: &Env) -> Result<PathBuf> {
    if let Some(dir) = env.path(ENV_CLOUDSDK_CONFIG) {
        return Ok(dir);
    }
    if cfg!(windows) {
        return Ok(match env.path("APPDATA") {
            Some(appdata) => appdata.join("gcloud"),
            None => {
                let drive = env.var_os("SystemDrive").filter(|v| !v.is_empty());
                let mut root = drive.unwrap_or_else(|| "C:".into());
                root.push("\\");
                PathBuf::from(root).join("gcloud")
            }
        });
    }
    env.home_dir()
        .map(|h| h.join(".config").join("gcloud"))
        .ok_or_else(|| {
            Error::Usage("cannot find the home directory; pass --credential-file PATH".into())
        })
}

/// The well-known Application Default Credentials file that `login` writes by default.
pub(crate) fn well_known_path(env: &Env) -> Result<PathBuf> {
    Ok(gcloud_config_dir(env)?.join(ADC_FILE_NAME))
}

/// The file named by `GOOGLE_APPLICATION_CREDENTIALS`, when that variable is set.
pub(crate) fn credentials_env(env: &Env) -> Option<PathBuf> {
    env.path(ENV_CREDENTIALS)
}

/// Why a credential file was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Environment,
    WellKnown,
}

/// Finds the credential file the way `google.auth.default()` does: the flag, then
/// `GOOGLE_APPLICATION_CREDENTIALS`, then the well-known file.
pub(crate) fn discover(env: &Env, flag: Option<&Path>) -> Result<(PathBuf, Source)> {
    let (path, source) = if let Some(p) = flag {
        (p.to_path_buf(), Source::Flag)
    } else if let Some(p) = credentials_env(env) {
        (p, Source::Environment)
    } else {
        tracing::debug!("{ENV_CREDENTIALS} is not set; looking for the well-known file");
        let p = well_known_path(env)?;
        if !super::is_present(&p) {
            tracing::debug!(path = %p.display(), "no credential file at the well-known path");
            return Err(Error::NoCredentials { searched: p });
        }
        (p, Source::WellKnown)
    };
    tracing::debug!(path = %path.display(), ?source, "credential file chosen");
    if !super::is_present(&path) {
        let problem = match source {
            Source::Environment => format!("does not exist (named by {ENV_CREDENTIALS})"),
            _ => "does not exist".to_string(),
        };
        return Err(Error::CredentialFile { path, problem });
    }
    Ok((path, source))
}

/// A note for when `CLOUDSDK_CONFIG` moves the well-known file: not every library honours it.
pub(crate) fn cloudsdk_config_note(env: &Env) -> Option<String> {
    let dir = env.path(ENV_CLOUDSDK_CONFIG)?;
    let default = env.home_dir().map(|h| h.join(".config").join("gcloud"));
    if default.as_deref() == Some(dir.as_path()) {
        return None;
    }
    Some(format!(
        "{ENV_CLOUDSDK_CONFIG} is set to {}: gcloud and Google's Python, Java and Node libraries \
         look there, but the Rust libraries google-cloud-auth and gcp_auth and Go's \
         golang.org/x/oauth2/google look in ~/.config/gcloud only (point them at the file with \
         {ENV_CREDENTIALS})",
        dir.display()
    ))
}

/// A warning when a credential file can be read by other users (Unix permissions).
pub(crate) fn exposed_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is readable by other users (mode {mode:03o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// gemauth's directory in the platform's cache directory: `$XDG_CACHE_HOME/gemauth` or
/// `~/.cache/gemauth` on Linux, `~/Library/Caches/gemauth` on macOS, `%LOCALAPPDATA%\gemauth`
/// on Windows (the variable is read first, as `APPDATA` is for gcloud's directory).
pub(crate) fn cache_dir(env: &Env) -> Option<PathBuf> {
    if cfg!(windows)
        && let Some(local) = env.path("LOCALAPPDATA")
    {
        return Some(local.join("gemauth"));
    }
    dirs::cache_dir().map(|d| d.join("gemauth"))
}
