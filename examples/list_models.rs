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

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let token = gemauth::get_async(&gemauth::Request::default()).await?;
    let base = std::env::var("GEMINI_API_BASE")
        .unwrap_or_else(|_| "https://generativelanguage.googleapis.com".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new()
        .get(format!("{}/v1/models", base.trim_end_matches('/')))
        .bearer_auth(token.access_token.expose());
    let project = std::env::var("GOOGLE_CLOUD_QUOTA_PROJECT")
        .ok()
        .or(token.quota_project_id);
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
