//! `gemauth login`: run the installed-app flow and save an `authorized_user` credential file,
//! or, with a workforce login configuration (`--login-config`), gcloud's workforce identity
//! federation flow and an `external_account_authorized_user` file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oauth2::AuthorizationCode;
use serde_json::Map;

use super::report::{Error, Result};
use crate::cli::LoginArgs;
use crate::credentials::{
    self, AUTHORIZED_USER, AuthorizedUser, ClientConfig, Credential, DEFAULT_UNIVERSE, LoginConfig,
    LoginConfigProblem, Scopes,
};
use crate::env::Env;
use crate::flow::{self, Notice, Outcome};
use crate::oauth::{self, Http, TokenResponse};
use crate::rules;
use crate::store::{self, CredentialLock, TokenCache};

/// What a login signs in with.
enum Kind {
    /// A Google account, through this OAuth client file.
    Client(PathBuf),
    /// A workforce identity federation user, through this login configuration.
    Workforce(PathBuf),
}

/// Which login the flags ask for (clap makes them exclusive, and `--login-config` defaults to
/// `CLOUDSDK_AUTH_LOGIN_CONFIG_FILE`, gcloud's `auth/login_config_file` property).
fn kind(args: &LoginArgs) -> Result<Kind> {
    match (&args.login_config, &args.client_id_file) {
        (Some(config), _) => Ok(Kind::Workforce(config.clone())),
        (None, Some(client)) => Ok(Kind::Client(client.clone())),
        (None, None) => Err(crate::Error::Usage(
            "gemauth login needs --client-id-file FILE (a Google account, with your OAuth client) \
             or --login-config FILE (a workforce identity federation login)"
                .into(),
        )
        .into()),
    }
}

pub(crate) fn run(args: LoginArgs) -> Result<()> {
    match kind(&args)? {
        Kind::Client(client_file) => run_client(&args, &client_file),
        Kind::Workforce(config_file) => run_workforce(&args, &config_file),
    }
}

/// The credential file to write, checked before the user signs in.
fn destination(args: &LoginArgs) -> Result<PathBuf> {
    if let Some(project) = &args.quota_project {
        credentials::validate_project_id(project)?;
    }
    let path = match &args.credential_file {
        Some(p) => p.clone(),
        None => store::well_known_path(&Env::Process)?,
    };
    if path.is_dir() {
        return Err(crate::Error::Usage(format!(
            "{} is a directory; --credential-file needs a file path",
            path.display()
        ))
        .into());
    }
    check_destination(&path)?;
    Ok(path)
}

/// Binds the loopback listener and returns it with its port.
fn listen(args: &LoginArgs) -> Result<(std::net::TcpListener, u16)> {
    let listener = flow::bind(args.port)?;
    let port = listener
        .local_addr()
        .map_err(|e| crate::Error::Internal(format!("cannot read the listener's address: {e}")))?
        .port();
    tracing::debug!(port, "loopback listener bound on 127.0.0.1");
    Ok((listener, port))
}

/// Waits for the browser's (or the pasted) answer: the authorization code.
async fn wait_for_code(
    listener: std::net::TcpListener,
    request: &flow::AuthorizationRequest,
    args: &LoginArgs,
    kind: &Kind,
) -> Result<AuthorizationCode> {
    let options = flow::Options {
        timeout: Duration::from_secs(args.timeout),
        no_browser: args.no_browser,
        port_fixed: args.port.is_some(),
    };
    let outcome = flow::authorize(listener, request, options, &mut tell)
        .await
        .map_err(|e| match e {
            flow::Error::LoginTimeout {
                secs, stdin_closed, ..
            } => flow::Error::LoginTimeout {
                secs,
                stdin_closed,
                rerun: Some(rerun_command(args, kind, stdin_closed)),
            },
            other => other,
        })?;
    match outcome {
        Outcome::Code(code) => Ok(code),
        Outcome::Denied { error, description } => {
            Err(Error::AuthorizationDenied { error, description })
        }
    }
}

fn run_client(args: &LoginArgs, client_file: &Path) -> Result<()> {
    // Everything that can be checked locally is checked before the listener opens.
    let client = credentials::load_client_config(client_file)?;
    client.check_endpoints(client_file, &Env::Process)?;
    let scopes = credentials::resolve_scopes(args.scopes.as_deref())?;
    let impersonate = args
        .impersonate_service_account
        .as_deref()
        .map(credentials::parse_service_accounts)
        .transpose()?;
    if impersonate.is_some() && !scopes.iter().any(|s| s == credentials::CLOUD_PLATFORM) {
        return Err(crate::Error::Usage(
            "--impersonate-service-account needs the cloud-platform scope (IAM Credentials \
             accepts no other): add cloud-platform to --scopes"
                .into(),
        )
        .into());
    }
    let path = destination(args)?;
    let (listener, port) = listen(args)?;
    let request = flow::authorization_request(&client, &scopes, flow::redirect_uri(port))?;
    let kind = Kind::Client(client_file.to_path_buf());
    let tokens = crate::oauth::block_on(async {
        let code = wait_for_code(listener, &request, args, &kind).await?;
        let http = Http::new()?;
        oauth::exchange_code(
            &http,
            &client.token_uri,
            &client.client_id,
            &client.client_secret,
            &code,
            &request.verifier,
            &request.redirect_uri,
        )
        .await
        .map_err(|e| exchange_refused(e, &kind))
    })??;

    save(args, &client, &scopes, &path, tokens, impersonate)
}

/// `gemauth login --login-config FILE`: gcloud's workforce identity federation login (`gcloud
/// auth application-default login --login-config`), which writes an
/// `external_account_authorized_user` file.
fn run_workforce(args: &LoginArgs, config_file: &Path) -> Result<()> {
    let config =
        credentials::load_login_config(config_file, &Env::Process).map_err(
            |problem| match problem {
                LoginConfigProblem::Invalid(problem) => Error::LoginConfigFile {
                    path: config_file.to_path_buf(),
                    problem,
                },
                LoginConfigProblem::Untrusted { field, host } => Error::LoginConfigEndpoint {
                    path: config_file.to_path_buf(),
                    field,
                    host,
                },
            },
        )?;
    let path = destination(args)?;
    let (listener, port) = listen(args)?;
    let request =
        flow::workforce_authorization_request(&config, flow::workforce_redirect_uri(port))?;
    let kind = Kind::Workforce(config_file.to_path_buf());
    let tokens = crate::oauth::block_on(async {
        let code = wait_for_code(listener, &request, args, &kind).await?;
        let http = Http::new()?;
        config
            .exchange_code(
                &http,
                code.secret(),
                request.verifier.secret(),
                &request.redirect_uri,
            )
            .await
            .map_err(|e| exchange_refused(e, &kind))
    })??;
    let refresh_token = tokens.refresh_token.clone().ok_or(Error::NoRefreshToken {
        endpoint: rules::endpoint_name(&config.token_url),
        workforce: true,
    })?;
    let mut file = config.credential(refresh_token);
    file.quota_project_id = args.quota_project.clone();
    let granted = tokens.granted_for(&LoginConfig::scopes());
    let credential = Credential::ExternalUser(Box::new(file.clone()));
    let saved = Saved {
        bytes: file.to_json(),
        account: credential.identity(),
        granted,
        missing: Vec::new(),
        quota_project: file.quota_project_id.clone(),
        impersonating: None,
    };
    write_login(args, &path, &credential, &tokens, saved)
}

/// At login a refusal is about the client or the code, not a stored credential.
fn exchange_refused(e: crate::Error, kind: &Kind) -> Error {
    match (e, kind) {
        (
            crate::Error::Rejected {
                endpoint,
                error,
                description,
                ..
            },
            Kind::Client(_),
        ) => Error::ExchangeRejected {
            endpoint,
            error,
            description,
        },
        (
            crate::Error::Rejected {
                endpoint,
                error,
                description,
                ..
            },
            Kind::Workforce(_),
        ) => Error::WorkforceExchangeRejected {
            endpoint,
            error,
            description,
        },
        (other, _) => other.into(),
    }
}

/// The command that runs this login again: the same client file or login configuration and
/// flags (not `--timeout`, which the hint talks about), with `--no-browser` when the answer has
/// to be pasted.
fn rerun_command(args: &LoginArgs, kind: &Kind, paste: bool) -> String {
    let quote = |path: &std::path::Path| shell_words::quote(&path.to_string_lossy()).into_owned();
    let mut words = match kind {
        Kind::Client(file) => vec!["gemauth login --client-id-file".to_string(), quote(file)],
        Kind::Workforce(file) => vec!["gemauth login --login-config".to_string(), quote(file)],
    };
    if args.no_browser || paste {
        words.push("--no-browser".into());
    }
    if let Some(scopes) = &args.scopes {
        words.extend(["--scopes".into(), shell_words::quote(scopes).into_owned()]);
    }
    if let Some(port) = args.port {
        words.extend(["--port".into(), port.to_string()]);
    }
    if let Some(path) = &args.credential_file {
        words.extend(["--credential-file".into(), quote(path)]);
    }
    if let Some(project) = &args.quota_project {
        words.extend([
            "--quota-project".into(),
            shell_words::quote(project).into_owned(),
        ]);
    }
    if let Some(accounts) = &args.impersonate_service_account {
        words.extend([
            "--impersonate-service-account".into(),
            shell_words::quote(accounts).into_owned(),
        ]);
    }
    words.join(" ")
}

/// Checks, before the user signs in, that the credential file can be written: its nearest
/// existing directory is a directory and accepts a new file (tried with a temporary file, removed
/// at once; the directories still missing are created only when the login succeeds).
fn check_destination(path: &std::path::Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut existing = parent;
    let meta = loop {
        match std::fs::metadata(existing) {
            Ok(meta) => break meta,
            Err(_) => match existing.parent() {
                Some(up) if !up.as_os_str().is_empty() => existing = up,
                _ => return Ok(()),
            },
        }
    };
    if !meta.is_dir() {
        return Err(Error::ToolConfig {
            path: existing.to_path_buf(),
            problem: format!(
                "is not a directory, so the credential file {} cannot be created",
                path.display()
            ),
        });
    }
    tempfile::Builder::new()
        .prefix(".gemauth-write-check-")
        .tempfile_in(existing)
        .map(drop)
        .map_err(|e| crate::Error::Io {
            action: "cannot save the credential file: cannot create a file in",
            path: existing.to_path_buf(),
            // The kind alone ("permission denied"): the message names the temporary file.
            source: std::io::Error::from(e.kind()),
        })
        .map_err(Error::from)
}

/// Writes the credential file (under the credential lock) and seeds the token cache.
fn save(
    args: &LoginArgs,
    client: &ClientConfig,
    requested: &[String],
    path: &std::path::Path,
    tokens: TokenResponse,
    impersonate: Option<(String, Vec<String>)>,
) -> Result<()> {
    let refresh_token = tokens.refresh_token.clone().ok_or(Error::NoRefreshToken {
        endpoint: client.token_uri.to_string(),
        workforce: false,
    })?;
    let granted = tokens.granted_for(requested);
    let account = tokens.email();
    let user = AuthorizedUser {
        kind: AUTHORIZED_USER.to_string(),
        client_id: client.client_id.clone(),
        client_secret: client.client_secret.clone(),
        refresh_token,
        quota_project_id: args.quota_project.clone().or(client
            .project_id
            .clone()
            .filter(|p| credentials::validate_project_id(p).is_ok())),
        universe_domain: Some(DEFAULT_UNIVERSE.to_string()),
        account: account.clone(),
        scopes: Some(Scopes::List(granted.clone())),
        token_uri: Some(client.token_uri.to_string()),
        revoke_uri: Some(client.revoke_uri.to_string()),
        extra: Map::new(),
    };

    let missing = credentials::missing_scopes(requested, &granted)
        .into_iter()
        .map(str::to_string)
        .collect();
    // With `--impersonate-service-account`, gcloud's impersonated_service_account file whose
    // source is this login; its quota project is only the one given.
    let (bytes, quota_project) = match &impersonate {
        None => (user.to_json(), user.quota_project_id.clone()),
        Some((account, delegates)) => (
            credentials::login_file(
                &user,
                account,
                delegates,
                args.quota_project.as_deref(),
                &Env::Process,
            )?,
            args.quota_project.clone(),
        ),
    };
    let saved = Saved {
        bytes,
        account,
        granted,
        missing,
        quota_project,
        impersonating: impersonate,
    };
    write_login(
        args,
        path,
        &Credential::User(Box::new(user)),
        &tokens,
        saved,
    )
}

/// What a login writes and says.
struct Saved {
    /// The credential file's bytes.
    bytes: Vec<u8>,
    /// Who signed in, when known.
    account: Option<String>,
    granted: Vec<String>,
    /// Scopes asked for and not granted.
    missing: Vec<String>,
    quota_project: Option<String>,
    /// The service account the file impersonates, and its delegation chain
    /// (`--impersonate-service-account`): the login's own token is then not cached.
    impersonating: Option<(String, Vec<String>)>,
}

/// Writes the credential file (under the credential lock), records when the login happened,
/// seeds the token cache with the login's token and says what was saved.
fn write_login(
    args: &LoginArgs,
    path: &Path,
    credential: &Credential,
    tokens: &TokenResponse,
    saved: Saved,
) -> Result<()> {
    {
        let _lock = CredentialLock::acquire(path)?;
        store::write_atomic(path, &saved.bytes)?;
    }
    // When the login happened, for `status --check` (a Testing app's refresh token lasts 7 days).
    let ctx = crate::context::Context::from_process();
    if let Some(warning) = store::record_login(ctx.cache_dir.as_deref(), path, ctx.now()) {
        eprintln!("warning: {warning}");
    }
    // The login's own token is the one to cache, unless the file is an impersonation.
    if saved.impersonating.is_none()
        && let Some(warning) = TokenCache::new(&credential.cache_key(&[]))
            .store(&tokens.to_cached(saved.granted.clone()))
    {
        eprintln!("warning: {warning}");
    }

    eprintln!("Credentials saved to {}", path.display());
    if let Some(account) = &saved.account {
        eprintln!("Account: {account}");
    }
    eprintln!("Scopes granted: {}", saved.granted.join(" "));
    if !saved.missing.is_empty() {
        eprintln!(
            "warning: these requested scopes were not granted: {}",
            saved.missing.join(" ")
        );
    }
    if let Some((account, delegates)) = &saved.impersonating {
        eprintln!("Impersonating: {account}");
        if !delegates.is_empty() {
            eprintln!("Delegation chain: {}", delegates.join(", "));
        }
        if !saved
            .granted
            .iter()
            .any(|s| s == credentials::CLOUD_PLATFORM)
        {
            eprintln!(
                "warning: the cloud-platform scope was not granted: the impersonation will fail"
            );
        }
    }
    if let Some(project) = &saved.quota_project {
        eprintln!("Quota project: {project}");
    }
    if args.credential_file.is_none() {
        super::warn_if_shadowed_by_env();
        if let Some(note) = store::cloudsdk_config_note(&Env::Process) {
            eprintln!("note: {note}");
        }
    }
    eprintln!("Print an access token with: gemauth print-access-token");
    Ok(())
}

/// Words what the flow reports while it waits, on stderr.
fn tell(notice: Notice) {
    use std::io::Write;
    match notice {
        Notice::Url {
            url,
            browser: false,
        } => eprintln!("To sign in, open this URL in a browser on any device:\n\n    {url}\n"),
        Notice::Url { url, browser: true } => eprintln!(
            "Sign in to Google in your browser. If it does not open, visit this URL:\n\n    {url}\n"
        ),
        Notice::Waiting { timeout } => eprintln!(
            "Waiting for the browser to finish the sign-in (up to {} s)…",
            timeout.as_secs()
        ),
        Notice::BrowserFailed {
            reason,
            started: false,
        } => eprintln!("note: could not open a browser ({reason}); switching to paste mode."),
        Notice::BrowserFailed {
            reason,
            started: true,
        } => eprintln!("note: the browser did not start ({reason}); switching to paste mode."),
        Notice::PasteInstructions { port, redirect_uri } => {
            eprintln!("After you approve, the browser is sent to {redirect_uri}?state=…&code=…");
            eprintln!(
                "On another device that page will not load: copy the whole address from the browser's address bar and paste it here."
            );
            eprintln!("Or forward the port before approving, and the sign-in finishes by itself:");
            eprintln!("    ssh -L {port}:127.0.0.1:{port} <this-host>");
        }
        Notice::Prompt => {
            eprint!("Paste the address (or the code): ");
            let _ = std::io::stderr().flush();
        }
        Notice::PastedFromPipe | Notice::RedirectWhilePrompting => eprintln!(),
        Notice::BadPaste {
            reason,
            attempt,
            max,
        } => eprintln!("That did not work: {reason} (attempt {attempt} of {max})."),
        Notice::StdinClosed { port } => eprintln!(
            "\nnote: standard input is closed; still waiting for the browser to reach http://127.0.0.1:{port}/"
        ),
    }
}
