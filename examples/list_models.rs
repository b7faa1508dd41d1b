//! Lists the Gemini models your account can use, with an access token from gemauth's library
//! API: the same credential discovery, cache, lock and refresh as `gemauth print-access-token`.
//!
//! ```sh
//! gemauth login --client-id-file client_secret.json   # once
//! cargo run --example list_models
//! ```
//!
//! `GEMINI_API_BASE` overrides the API's base URL (a local server in the tests);
//! `GOOGLE_CLOUD_QUOTA_PROJECT` or the credential's `quota_project_id` names the billed project.
//!
//! Exit codes as `gemauth`'s: 3 when the credentials are missing or refused (with a hint), 1 for
//! any other failure.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let token = match gemauth::get_async(&gemauth::Request::default()).await {
        Ok(token) => token,
        Err(e) => {
            let (code, hint) = advice(&e);
            eprintln!("error: {e}");
            eprintln!("hint: {hint}");
            return ExitCode::from(code);
        }
    };
    match list(&token).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code and the next step for a failure to get a token.
fn advice(e: &gemauth::Error) -> (u8, &'static str) {
    match e {
        gemauth::Error::NoCredentials { .. } | gemauth::Error::NoMetadataServer { .. } => (
            3,
            "run `gemauth login --client-id-file client_secret.json` to sign in",
        ),
        gemauth::Error::Rejected { .. }
        | gemauth::Error::ReauthRequired { .. }
        | gemauth::Error::CredentialFile { .. } => (
            3,
            "run `gemauth status --check`: it says why the credential was refused and what to do",
        ),
        e if e.is_retryable() => (1, "try again in a moment"),
        _ => (1, "run `gemauth status --check` for a diagnosis"),
    }
}

/// Prints the names of the models the token may use.
async fn list(token: &gemauth::Token) -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("GEMINI_API_BASE")
        .unwrap_or_else(|_| "https://generativelanguage.googleapis.com".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new()
        .get(format!("{}/v1/models", base.trim_end_matches('/')))
        .bearer_auth(token.access_token.expose());
    let project = std::env::var("GOOGLE_CLOUD_QUOTA_PROJECT")
        .ok()
        .or(token.quota_project_id.clone());
    if let Some(project) = project {
        request = request.header("x-goog-user-project", project);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    if !status.is_success() {
        return Err(format!("the API answered HTTP {status}: {body}").into());
    }
    for model in body["models"].as_array().into_iter().flatten() {
        if let Some(name) = model["name"].as_str() {
            println!("{name}");
        }
    }
    Ok(())
}
