//! `gemauth status`: which credential file is in effect and why, what it holds, and (with
//! `--check`) whether the server still accepts it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::{StatusArgs, StatusFormat};
use crate::credentials::{self, CredentialKind, DEFAULT_UNIVERSE, read_regular_file};
use crate::error::{Error, Result};
use crate::store::{self, Source, TokenCache};
use crate::token;

pub fn run(args: StatusArgs) -> Result<()> {
    let (path, source) = store::discover(args.credential_file.as_deref())?;
    let bytes = read_regular_file(&path).map_err(|problem| Error::CredentialFile {
        path: path.clone(),
        problem,
    })?;
    let user = match credentials::parse_credential_file(&path, &bytes)? {
        CredentialKind::AuthorizedUser(user) => user,
        CredentialKind::Other(kind) => {
            return Err(Error::UnsupportedCredentialType { path, kind });
        }
    };
    let now = store::now();
    let cached = TokenCache::for_user(&user).load();
    let mut report = json!({
        "credential_file": path.display().to_string(),
        "source": source_name(source),
        "type": user.kind,
        "account": user.account,
        "client_id": user.client_id,
        "scopes": user.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        "quota_project_id": super::effective_quota_project(user.quota_project_id.as_deref()),
        "universe_domain": user.universe_domain.as_deref().unwrap_or(DEFAULT_UNIVERSE),
        "token_uri": user.token_uri.as_deref().unwrap_or(credentials::GOOGLE_TOKEN_URI),
        "cached_token": cached.as_ref().map(|t| json!({
            "expires_at": rfc3339(t.expires_at),
            "expires_in": t.expires_at.saturating_sub(now),
            "fresh": t.is_fresh(now, None),
        })),
        "file_mode": file_mode(&path),
        "warnings": warnings(&path, source),
    });

    if args.check {
        match token::for_file(&path, None) {
            Ok(t) => {
                report["check"] = json!({"ok": true, "expires_at": rfc3339(t.expires_at)});
            }
            Err(e) => {
                report["check"] = json!({"ok": false});
                // Failure: the report goes to stderr with the error; stdout stays empty.
                eprint!("{}", render(&report, args.format));
                return Err(e);
            }
        }
    }
    super::print_stdout(render(&report, args.format).trim_end())
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Flag => "--credential-file",
        Source::Environment => store::ENV_CREDENTIALS,
        Source::WellKnown
            if std::env::var_os(store::ENV_CLOUDSDK_CONFIG).is_some_and(|v| !v.is_empty()) =>
        {
            store::ENV_CLOUDSDK_CONFIG
        }
        Source::WellKnown => "default location",
    }
}

fn rfc3339(unix: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn file_mode(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn warnings(path: &Path, source: Source) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(mode) = file_mode(path)
        && u32::from_str_radix(&mode, 8).is_ok_and(|m| m & 0o077 != 0)
    {
        out.push(format!(
            "the file is readable by other users (mode {mode}); run `chmod 600 {}`",
            path.display()
        ));
    }
    let login_file: Option<PathBuf> = store::well_known_path().ok();
    if source == Source::Environment
        && let Some(login_file) = login_file.filter(|p| p.exists() && p != path)
    {
        out.push(format!(
            "{} shadows the file `gemauth login` wrote ({})",
            store::ENV_CREDENTIALS,
            login_file.display()
        ));
    }
    out
}

fn render(report: &Value, format: StatusFormat) -> String {
    match format {
        StatusFormat::Json => format!("{report}\n"),
        StatusFormat::Text => render_text(report),
    }
}

fn render_text(r: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".to_string(),
        Value::Array(items) if items.is_empty() => "(none)".to_string(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<17}{value}\n"));
    line(
        "Credential file:",
        format!(
            "{} (from {})",
            text(&r["credential_file"]),
            text(&r["source"])
        ),
    );
    line("Type:", text(&r["type"]));
    line("Account:", text(&r["account"]));
    line("Client ID:", text(&r["client_id"]));
    line("Scopes:", text(&r["scopes"]));
    line("Quota project:", text(&r["quota_project_id"]));
    line("Universe domain:", text(&r["universe_domain"]));
    line("Token endpoint:", text(&r["token_uri"]));
    let cached = &r["cached_token"];
    line(
        "Cached token:",
        if cached.is_null() {
            "none".to_string()
        } else if cached["fresh"] == true {
            format!(
                "valid until {} ({} min left)",
                text(&cached["expires_at"]),
                cached["expires_in"].as_u64().unwrap_or(0) / 60
            )
        } else {
            format!(
                "stale (expires {}); the next use refreshes it",
                text(&cached["expires_at"])
            )
        },
    );
    line("File mode:", text(&r["file_mode"]));
    if let Some(check) = r.get("check") {
        line(
            "Check:",
            if check["ok"] == true {
                format!("ok, a token valid until {}", text(&check["expires_at"]))
            } else {
                "FAILED".to_string()
            },
        );
    }
    for warning in r["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", text(warning)));
    }
    out
}
