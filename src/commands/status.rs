//! `gemauth status`: which credential file is in effect and why, what it holds, and (with
//! `--check`) whether the server still accepts it. One typed [`Report`] is rendered as text or
//! JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::report::Result;
use crate::cli::{StatusArgs, StatusFormat};
use crate::context::{Context, Env};
use crate::credentials::{Credential, Details, Metadata, Want};
use crate::pipeline::{self, Target};
use crate::store::{self, Source, TokenCache, TokenKind};

/// What `status` reports; the JSON output is this, field for field.
#[derive(Serialize)]
struct Report {
    credential_file: Option<String>,
    source: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The file has no `type` field (a google-auth `token.json`); its type was inferred.
    type_inferred: bool,
    account: Option<String>,
    quota_project_id: Option<String>,
    cached_token: Option<CachedReport>,
    file_mode: Option<String>,
    /// The credential helpers (Docker, Git) configured to run gemauth.
    helpers: Vec<String>,
    /// Whether, and how, `print-identity-token` works with this credential.
    id_tokens: String,
    warnings: Vec<String>,
    /// Things worth knowing that are not problems (where other libraries look).
    notes: Vec<String>,
    #[serde(flatten)]
    details: Details,
    /// Every endpoint the file names (that receives secrets) which is not Google's default:
    /// field -> URL.
    custom_endpoints: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<CheckReport>,
    /// The diagnoses of `--check`, one per way the quickstart fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<super::doctor::Check>,
}

#[derive(Serialize)]
struct CachedReport {
    expires_at: String,
    expires_in: u64,
    fresh: bool,
}

#[derive(Serialize)]
struct CheckReport {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

pub(crate) fn run(args: StatusArgs) -> Result<()> {
    let ctx = Context::from_process();
    let target = match pipeline::locate(&ctx, args.credential_file.as_deref()) {
        Err(e @ crate::Error::NoCredentials { .. }) => return not_signed_in(&ctx, &args, e),
        other => other?,
    };
    // Status sends nothing: a file the endpoint rule refuses is shown, with a warning.
    let credential = pipeline::inspect(&target)?;
    // Only a metadata server that answers is a credential (this is its one cheap, local call).
    let metadata_account = match &target {
        Target::Metadata(host) => match crate::oauth::block_on(Metadata { host }.email(&ctx))? {
            Err(e @ crate::Error::NoMetadataServer { .. }) => {
                return not_signed_in(&ctx, &args, e);
            }
            other => Some(other?),
        },
        Target::File(..) => None,
    };
    let now = ctx.now();
    let want = Want::access(credential.scopes(None)?);
    // The cache entry, or the access token a google-auth token.json saved, whichever lasts longer.
    let cached = TokenCache::in_dir(ctx.cache_dir.as_deref(), &credential.key_for(&want))
        .load(TokenKind::Access, now)
        .into_iter()
        .chain(pipeline::saved_token(&credential, now))
        .max_by_key(|t| t.expires_at);
    let (file, source) = match &target {
        Target::File(path, source) => (Some(path.clone()), source_name(*source, &ctx.env)),
        Target::Metadata(_) => (None, "metadata server"),
    };
    let mut report = Report {
        credential_file: file.as_ref().map(|p| p.display().to_string()),
        source,
        kind: credential.type_name(),
        type_inferred: matches!(&credential, Credential::User(user) if user.is_token_json()),
        account: credential
            .identity()
            .or(metadata_account)
            .filter(|a| !a.trim().is_empty()),
        quota_project_id: super::effective_quota_project(credential.quota_project().as_deref())?,
        cached_token: cached.map(|t| CachedReport {
            expires_at: store::rfc3339(t.expires_at),
            expires_in: t.expires_at.saturating_sub(now),
            fresh: t.is_fresh(now, None),
        }),
        file_mode: file.as_deref().and_then(file_mode),
        id_tokens: credential.id_tokens().describe(),
        // Docker's `credHelpers` (and `credsStore`), then git's `credential.*.helper` entries.
        helpers: [super::docker::configured(), super::git::configured()].concat(),
        warnings: match &target {
            Target::File(path, source) => {
                let mut all = warnings(path, *source);
                if let Err(e) = credential.check_endpoints(path, &ctx.env) {
                    all.push(format!("{e}: gemauth refuses to use this file"));
                }
                all
            }
            Target::Metadata(_) => Vec::new(),
        },
        notes: match &target {
            Target::File(_, Source::WellKnown) => {
                store::cloudsdk_config_note(&ctx.env).into_iter().collect()
            }
            _ => Vec::new(),
        },
        details: credential.details(),
        custom_endpoints: credential.custom_endpoints(),
        check: None,
        checks: Vec::new(),
    };

    if args.check {
        let login = login_command(&target, &credential);
        let diagnosis = super::doctor::diagnose(
            &ctx,
            file.as_deref(),
            &credential,
            report.quota_project_id.as_deref(),
            &login,
        );
        let failed = diagnosis.failed();
        report.check = Some(CheckReport {
            ok: failed == 0,
            expires_at: diagnosis.expires_at.map(store::rfc3339),
        });
        let total = diagnosis.checks.len();
        report.checks = diagnosis.checks;
        if failed > 0 {
            // Failure: the report goes to stderr with the error; stdout stays empty.
            eprint!("{}", render(&report, args.format));
            return Err(match diagnosis.token_error {
                Some(e) => e.into(),
                None => super::report::Error::ChecksFailed { failed, total },
            });
        }
    }
    super::print_stdout(render(&report, args.format).trim_end())
}

/// The login that writes this credential again, as hints name it.
fn login_command(target: &Target, credential: &Credential) -> String {
    let login = match credential {
        Credential::ExternalUser(_) => super::report::LOGIN_WORKFORCE,
        _ => "gemauth login --client-id-file client_secret.json",
    };
    match target {
        Target::File(path, Source::Flag | Source::Environment) => {
            let path = path.to_string_lossy();
            format!("{login} --credential-file {}", shell_words::quote(&path))
        }
        _ => login.to_string(),
    }
}

/// What `status` reports when there is no credential: where it looked, in order, and what to run.
#[derive(Serialize)]
struct NotSignedIn {
    signed_in: bool,
    /// Each place, in the order Google's libraries look, and what was there.
    searched: Vec<Searched>,
    /// The command that signs in.
    sign_in: &'static str,
}

#[derive(Serialize)]
struct Searched {
    place: String,
    found: String,
}

/// Reports "not signed in" on stdout (text or JSON) and returns the error, for its `error:` and
/// `hint:` lines and its exit code (3).
fn not_signed_in(ctx: &Context, args: &StatusArgs, error: crate::Error) -> Result<()> {
    use crate::credentials::{ENV_METADATA_HOST, ENV_NO_GCE_CHECK, gce_check_disabled};
    let mut searched = vec![Searched {
        place: store::ENV_CREDENTIALS.to_string(),
        found: "not set".into(),
    }];
    let well_known = match &error {
        crate::Error::NoCredentials { searched }
        | crate::Error::NoMetadataServer { searched, .. } => Some(searched.clone()),
        _ => None,
    };
    if let Some(path) = well_known.filter(|p| !p.as_os_str().is_empty()) {
        searched.push(Searched {
            place: path.display().to_string(),
            found: "does not exist".into(),
        });
    }
    let metadata = match &error {
        crate::Error::NoMetadataServer { endpoint, .. } => format!("no answer at {endpoint}"),
        _ if gce_check_disabled(&ctx.env) => {
            format!("not asked ({ENV_NO_GCE_CHECK} is set)")
        }
        _ => format!("not on Google Cloud ({ENV_METADATA_HOST} is not set)"),
    };
    searched.push(Searched {
        place: "the metadata server".into(),
        found: metadata,
    });
    let report = NotSignedIn {
        signed_in: false,
        searched,
        sign_in: "gemauth login --client-id-file client_secret.json",
    };
    let out = match args.format {
        StatusFormat::Json => serde_json::to_string(&report)
            .map_err(|e| crate::Error::Internal(format!("cannot write the report: {e}")))?,
        StatusFormat::Text => {
            let mut text = Text(String::new());
            text.line("Credentials:", "none (not signed in)".into());
            for (n, s) in report.searched.iter().enumerate() {
                let label = if n == 0 { "Looked in:" } else { "" };
                text.line(label, format!("{}. {}: {}", n + 1, s.place, s.found));
            }
            text.line("Sign in with:", report.sign_in.into());
            text.0.trim_end().to_string()
        }
    };
    super::print_stdout(&out)?;
    Err(error.into())
}

fn source_name(source: Source, env: &Env) -> &'static str {
    match source {
        Source::Flag => "--credential-file",
        Source::Environment => store::ENV_CREDENTIALS,
        Source::WellKnown if env.path(store::ENV_CLOUDSDK_CONFIG).is_some() => {
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
    let login_file: Option<PathBuf> = store::well_known_path(&Env::Process).ok();
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

fn render(report: &Report, format: StatusFormat) -> String {
    match format {
        StatusFormat::Json => match serde_json::to_string(report) {
            Ok(json) => format!("{json}\n"),
            Err(e) => format!("{{\"error\":{:?}}}\n", e.to_string()),
        },
        StatusFormat::Text => render_text(report),
    }
}

/// An optional value, or `(none)`.
fn or_none(value: Option<&str>) -> String {
    value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("(none)")
        .to_string()
}

/// The text report being written: `Label:` and value lines, with control characters (escape
/// sequences a hostile file could hold) removed from what came from outside.
struct Text(String);

impl Text {
    fn line(&mut self, label: &str, value: String) {
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        self.0.push_str(&format!("{label:<16} {value}\n"));
    }
}

fn render_text(r: &Report) -> String {
    let mut text = Text(String::new());
    identity_lines(r, &mut text);
    detail_lines(r, &mut text);
    state_lines(r, &mut text);
    for warning in &r.warnings {
        text.0.push_str(&format!("warning: {warning}\n"));
    }
    for note in &r.notes {
        text.0.push_str(&format!("note: {note}\n"));
    }
    text.0
}

/// Where the credential is, its type and who it acts as.
fn identity_lines(r: &Report, text: &mut Text) {
    text.line(
        "Credential file:",
        match &r.credential_file {
            Some(file) => format!("{file} (from {})", r.source),
            None => format!("none (using the {})", r.source),
        },
    );
    text.line(
        "Type:",
        if r.type_inferred {
            format!("{} (google-auth token.json, no type field)", r.kind)
        } else {
            r.kind.to_string()
        },
    );
    text.line("Account:", or_none(r.account.as_deref()));
}

/// What the credential type says about itself, and its quota project.
fn detail_lines(r: &Report, text: &mut Text) {
    match &r.details {
        Details::User(user) => {
            text.line("Client ID:", user.client_id.clone());
            text.line("Scopes:", or_none(Some(&user.scopes.join(" "))));
        }
        // The account is the client email: shown once.
        Details::ServiceAccount(_) | Details::Metadata(_) => {}
        Details::Impersonated(impersonated) => {
            text.line(
                "Impersonates via:",
                r.mark(IMPERSONATION, &impersonated.impersonation_url),
            );
            text.line("Source type:", impersonated.source_type.to_string());
        }
        Details::ExternalUser(user) => {
            text.line("Audience:", or_none(user.audience.as_deref()));
            text.line("Workforce pool:", or_none(user.workforce_pool.as_deref()));
            text.line("Provider:", or_none(user.provider.as_deref()));
            text.line("Client ID:", user.client_id.clone());
        }
        Details::External(external) => {
            text.line("Audience:", external.audience.clone());
            text.line(
                "Impersonates via:",
                match &external.impersonation_url {
                    Some(url) => r.mark(IMPERSONATION, url),
                    None => or_none(None),
                },
            );
        }
    }
    text.line("Quota project:", or_none(r.quota_project_id.as_deref()));
    let endpoint = |text: &mut Text, universe_domain: &str, field: &str, token_uri: &str| {
        text.line("Universe domain:", universe_domain.to_string());
        text.line("Token endpoint:", r.mark(field, token_uri));
    };
    match &r.details {
        Details::User(d) => endpoint(text, &d.universe_domain, "token_uri", &d.token_uri),
        Details::ServiceAccount(d) => endpoint(text, &d.universe_domain, "token_uri", &d.token_uri),
        Details::External(d) => endpoint(text, &d.universe_domain, "token_url", &d.token_uri),
        Details::ExternalUser(d) => endpoint(text, &d.universe_domain, "token_url", &d.token_url),
        Details::Metadata(d) => text.line("Metadata host:", d.metadata_host.clone()),
        Details::Impersonated(_) => {}
    }
    // The other endpoints that are not Google's default (a revoke_uri, a source's token_uri).
    let shown = ["token_uri", "token_url", IMPERSONATION];
    for (field, url) in &r.custom_endpoints {
        if !shown.contains(&field.as_str()) {
            text.line("Endpoint:", format!("{field} {url}{NOT_DEFAULT}"));
        }
    }
}

/// The field of an impersonation's IAM Credentials URL.
const IMPERSONATION: &str = "service_account_impersonation_url";
/// What marks an endpoint that is not Google's default.
const NOT_DEFAULT: &str = " (not Google's default)";

impl Report {
    /// An endpoint as shown on its line: marked when the file names one that is not Google's
    /// default for `field`.
    fn mark(&self, field: &str, url: &str) -> String {
        match self.custom_endpoints.get(field) {
            Some(shown) => format!("{shown}{NOT_DEFAULT}"),
            None => url.to_string(),
        }
    }
}

/// The cached token, file mode, ID tokens, helpers and the check.
fn state_lines(r: &Report, text: &mut Text) {
    text.line(
        "Cached token:",
        match &r.cached_token {
            None => "none".to_string(),
            Some(t) if t.fresh => format!(
                "valid until {} ({} min left)",
                t.expires_at,
                t.expires_in / 60
            ),
            Some(t) => format!(
                "stale (expires {}); the next use refreshes it",
                t.expires_at
            ),
        },
    );
    // Unix permissions; Windows files have access lists instead, so there is no line there.
    if let Some(mode) = &r.file_mode {
        text.line("File mode:", mode.clone());
    }
    text.line("ID tokens:", r.id_tokens.clone());
    match r.helpers.split_first() {
        None => text.line(
            "Helpers:",
            "none configured (see `gemauth configure-docker`, docs/helpers.md)".to_string(),
        ),
        Some((first, rest)) => {
            text.line("Helpers:", first.clone());
            for helper in rest {
                text.line("", helper.clone());
            }
        }
    }
    if let Some(check) = &r.check {
        text.line(
            "Check:",
            match (&check.ok, &check.expires_at) {
                (true, Some(at)) => format!("ok, a token valid until {at}"),
                _ => "FAILED".to_string(),
            },
        );
    }
    for (n, check) in r.checks.iter().enumerate() {
        text.line(if n == 0 { "Checks:" } else { "" }, check.line());
    }
}
