//! Command-line syntax: the clap structures for every subcommand, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (network, server, file system, login not completed)
  2  usage error
  3  credentials missing, unreadable or rejected: run `gemauth login`";

#[derive(Debug, Parser)]
#[command(
    name = "gemauth",
    version,
    about = "Fast OAuth credentials for Google APIs (Gemini included): sign in once, then print access tokens",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// Log what gemauth does on stderr (-vv for more); RUST_LOG overrides. Secrets are never logged
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with a Desktop OAuth client and save Application Default Credentials
    #[command(after_help = concat!(
        "Example:\n  gemauth login --client-id-file client_secret.json\n  gemauth login --client-id-file client_secret.json --scopes cloud-platform,generative-language.retriever\n  gemauth login --client-id-file client_secret.json --no-browser --port 8085   # over SSH\n\n",
        "Exit codes:\n  0  success\n  1  error (login not completed, network, server, file system)\n  2  usage error"
    ))]
    Login(LoginArgs),

    /// Print a valid access token on stdout (cached, or refreshed when needed)
    #[command(after_help = concat!(
        "Example:\n  curl -H \"Authorization: Bearer $(gemauth print-access-token)\" \\\n       -H \"x-goog-user-project: MY_PROJECT\" https://generativelanguage.googleapis.com/v1/models\n\n",
        "Exit codes:\n  0  success\n  1  error (network, server, file system)\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    PrintAccessToken(PrintAccessTokenArgs),

    /// Revoke the grant at the server and remove the local credential
    #[command(after_help = concat!(
        "Example:\n  gemauth revoke\n  gemauth revoke --force   # remove the local file even if the server cannot be reached\n\n",
        "Exit codes:\n  0  success, or nothing stored\n  1  error (the credential file was kept)\n  2  usage error\n  3  the credential file is unreadable"
    ))]
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// OAuth client JSON of type "Desktop app", downloaded from the Google Cloud console
    #[arg(long, value_name = "FILE")]
    pub client_id_file: PathBuf,

    /// Comma-separated scopes; short names get the https://www.googleapis.com/auth/ prefix
    /// [default: openid,userinfo.email,cloud-platform,generative-language.retriever]
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,

    /// Port of the loopback listener on 127.0.0.1 [default: a free port]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Seconds to wait for the sign-in to finish in the browser
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// Where to write the credential file [default: the Application Default Credentials file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Open no browser: print the URL and read the redirect address (or code) pasted on stdin;
    /// for SSH sessions, containers and CI
    #[arg(long)]
    pub no_browser: bool,

    /// Project billed for API quota (written as quota_project_id) [default: the client's project]
    #[arg(long, value_name = "ID")]
    pub quota_project: Option<String>,
}

#[derive(Debug, Args)]
pub struct PrintAccessTokenArgs {
    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Credential file to revoke [default: the Application Default Credentials file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Remove the local credential even when the server cannot revoke it
    #[arg(long)]
    pub force: bool,
}
