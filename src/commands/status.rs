//! `gemauth status`: which credential file is in effect and why, what it holds, and (with
//! `--check`) whether the server still accepts it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::adc::Credential;
use crate::cli::{StatusArgs, StatusFormat};
use crate::credentials::{self, DEFAULT_UNIVERSE};
use crate::error::Result;
use crate::store::{self, Source, TokenCache};
use crate::token::{self, Target};

pub fn run(args: StatusArgs) -> Result<()> {
    let target = token::locate(args.credential_file.as_deref())?;
    let credential = token::load(&target)?;
    // Only a metadata server that answers is a credential (this is its one cheap, local call).
    let metadata_account = match &target {
        Target::Metadata(host) => Some(crate::oauth::block_on(crate::adc::metadata_email(host))??),
        Target::File(..) => None,
    };
    let now = store::now();
    let scopes = credential.scopes(None)?;
    let cached = TokenCache::new(&credential.cache_key(&scopes)).load();
    let (file, source) = match &target {
        Target::File(path, source) => (Some(path.clone()), source_name(*source)),
        Target::Metadata(_) => (None, "metadata server"),
    };
    let mut report = json!({
        "credential_file": file.as_ref().map(|p| p.display().to_string()),
        "source": source,
        "type": credential.type_name(),
        "account": credential.identity().or(metadata_account),
        "quota_project_id": super::effective_quota_project(credential.quota_project().as_deref())?,
        "cached_token": cached.as_ref().map(|t| json!({
            "expires_at": store::rfc3339(t.expires_at),
            "expires_in": t.expires_at.saturating_sub(now),
            "fresh": t.is_fresh(now, None),
        })),
        "file_mode": file.as_deref().and_then(file_mode),
        "warnings": match &target {
            Target::File(path, source) => warnings(path, *source),
            Target::Metadata(_) => Vec::new(),
        },
    });
    describe(&credential, &target, &mut report);

    if args.check {
        match token::get_with(&token::Request {
            credential_file: file.clone(),
            ..Default::default()
        }) {
            Ok(t) => {
                report["check"] = json!({"ok": true, "expires_at": store::rfc3339(t.expires_at)});
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

/// Adds what each credential type says about itself.
fn describe(credential: &Credential, target: &Target, report: &mut Value) {
    match credential {
        Credential::User(user) => {
            report["client_id"] = json!(user.client_id);
            report["scopes"] = json!(user.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default());
            report["universe_domain"] =
                json!(user.universe_domain.as_deref().unwrap_or(DEFAULT_UNIVERSE));
            report["token_uri"] = json!(
                user.token_uri
                    .as_deref()
                    .unwrap_or(credentials::GOOGLE_TOKEN_URI)
            );
        }
        Credential::ServiceAccount { key, .. } => {
            report["client_email"] = json!(key.client_email);
            report["project_id"] = json!(key.project_id);
            report["universe_domain"] =
                json!(key.universe_domain.as_deref().unwrap_or(DEFAULT_UNIVERSE));
            report["token_uri"] = json!(
                key.token_uri
                    .as_deref()
                    .unwrap_or(credentials::GOOGLE_TOKEN_URI)
            );
        }
        Credential::Impersonated { file, source } => {
            report["impersonation_url"] = json!(file.service_account_impersonation_url);
            report["source_type"] = json!(source.type_name());
            report["delegates"] = json!(file.delegates);
        }
        Credential::External { config, .. } => {
            report["audience"] = json!(config.audience);
            report["subject_token_type"] = json!(config.subject_token_type);
            report["token_uri"] = json!(config.token_url);
            report["impersonation_url"] = json!(config.service_account_impersonation_url);
            report["universe_domain"] = json!(
                config
                    .universe_domain
                    .as_deref()
                    .unwrap_or(DEFAULT_UNIVERSE)
            );
        }
        Credential::Metadata { host } => {
            if let Target::Metadata(_) = target {
                report["metadata_host"] = json!(host);
            }
        }
    }
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
    let credential = match r["credential_file"].as_str() {
        Some(file) => format!("{file} (from {})", text(&r["source"])),
        None => format!("none (using the {})", text(&r["source"])),
    };
    line("Credential file:", credential);
    line("Type:", text(&r["type"]));
    line("Account:", text(&r["account"]));
    for (label, key) in [
        ("Client ID:", "client_id"),
        ("Client email:", "client_email"),
        ("Audience:", "audience"),
        ("Impersonates via:", "impersonation_url"),
        ("Source type:", "source_type"),
        ("Scopes:", "scopes"),
    ] {
        if let Some(v) = r.get(key) {
            line(label, text(v));
        }
    }
    line("Quota project:", text(&r["quota_project_id"]));
    for (label, key) in [
        ("Universe domain:", "universe_domain"),
        ("Token endpoint:", "token_uri"),
        ("Metadata host:", "metadata_host"),
    ] {
        if let Some(v) = r.get(key) {
            line(label, text(v));
        }
    }
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
    // Unix permissions; Windows files have access lists instead, so there is no line there.
    if !r["file_mode"].is_null() {
        line("File mode:", text(&r["file_mode"]));
    }
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
