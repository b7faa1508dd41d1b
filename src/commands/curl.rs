//! `gemauth curl`: run curl with the Authorization header (and `x-goog-user-project`) added, and
//! pass its exit code through.

use std::io::Write;

use super::report::{Error, Result};
use crate::cli::CurlArgs;
use crate::{store, token};

/// Environment variable naming the curl program [default: `curl` on PATH].
pub const ENV_CURL: &str = "GEMAUTH_CURL";

pub fn run(args: CurlArgs) -> Result<u8> {
    let token = token::get(args.credential_file.as_deref(), None)?;
    super::print_warnings(&token.warnings);
    let mut headers = format!("Authorization: Bearer {}\n", token.access_token.expose());
    if let Some(project) = super::effective_quota_project(token.quota_project_id.as_deref())? {
        headers.push_str(&format!("x-goog-user-project: {project}\n"));
    }
    // The token goes to curl in a private file (`-H @file`), never on its command line where
    // other users could read it. The file lives in gemauth's private cache directory, next to the
    // cached token it copies, and is removed when curl exits.
    let dir = store::cache_dir(&crate::env::Env::Process).unwrap_or_else(std::env::temp_dir);
    store::create_private_dir(&dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".curl-headers-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder
        .tempfile_in(&dir)
        .map_err(|source| crate::Error::Io {
            action: "cannot create a temporary file in",
            path: dir.clone(),
            source,
        })?;
    file.write_all(headers.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|source| crate::Error::Io {
            action: "cannot write",
            path: file.path().to_path_buf(),
            source,
        })?;

    let program = std::env::var_os(ENV_CURL)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "curl".into());
    let mut header_arg = std::ffi::OsString::from("@");
    header_arg.push(file.path());
    let status = std::process::Command::new(&program)
        .arg("-H")
        .arg(header_arg)
        .args(&args.args)
        .status()
        .map_err(|e| Error::CurlNotStarted {
            program: program.to_string_lossy().into_owned(),
            reason: e.to_string(),
        })?;
    drop(file);
    Ok(exit_code_of(status))
}

fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}
