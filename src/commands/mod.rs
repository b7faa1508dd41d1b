//! One module per subcommand; `run` dispatches the parsed command line to it.

pub(crate) mod curl;
pub(crate) mod docker;
pub(crate) mod docs;
pub(crate) mod doctor;
pub(crate) mod git;
pub(crate) mod helpers;
pub(crate) mod kubectl;
pub(crate) mod login;
pub(crate) mod metadata_server;
pub(crate) mod print_access_token;
pub(crate) mod print_identity_token;
pub(crate) mod quota_project;
pub(crate) mod report;
pub(crate) mod revoke;
pub(crate) mod status;

use std::io::Write;

use crate::cli::{Cli, Command};
use report::Result;

/// Runs one parsed command line and returns the process's exit code: an error is reported on
/// stderr (`error:` and `hint:` lines) and mapped to its documented code.
pub fn run(cli: Cli) -> u8 {
    dispatch(cli).unwrap_or_else(|err| report::report(&err))
}

/// Runs one command; the exit code is non-zero only when a command passes another program's
/// code through, as `curl` does.
fn dispatch(cli: Cli) -> Result<u8> {
    crate::logging::init(cli.verbose);
    match cli.command {
        Command::Login(args) => login::run(args.0)?,
        Command::PrintAccessToken(args) => print_access_token::run(args.0)?,
        Command::PrintIdentityToken(args) => print_identity_token::run(args.0)?,
        Command::Revoke(args) => revoke::run(args.0)?,
        Command::Status(args) => status::run(args.0)?,
        Command::SetQuotaProject(args) => quota_project::set(args.0)?,
        Command::PrintQuotaProject(args) => quota_project::print(args.0)?,
        Command::Curl(args) => return curl::run(args.0),
        Command::DockerCredential(args) => return docker::credential(args.0),
        Command::ConfigureDocker(args) => docker::configure(args.0)?,
        Command::GitCredential(args) => git::credential(args.0)?,
        Command::KubectlCredential(args) => kubectl::credential(args.0)?,
        Command::Completions(args) => docs::completions(args.0)?,
        Command::Man(args) => docs::man(args.0)?,
        Command::MetadataServer(args) => metadata_server::run_command(&args.0)?,
    }
    Ok(report::EXIT_OK)
}

/// Writes the requested value, and a newline, on stdout.
pub(crate) fn print_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| crate::Error::Internal(format!("cannot write to stdout: {e}")).into())
}

/// The quota project in effect: `GOOGLE_CLOUD_QUOTA_PROJECT` (as Google's libraries honour it),
/// else the credential file's `quota_project_id` (checked when the file was loaded). Both end up
/// in an HTTP header, so the variable must hold a project ID too.
pub(crate) fn effective_quota_project(from_file: Option<&str>) -> crate::Result<Option<String>> {
    match crate::env::Env::Process.var(ENV_QUOTA_PROJECT) {
        Some(v) if !v.trim().is_empty() => {
            crate::credentials::validate_project_id(v.trim()).map_err(|_| {
                crate::Error::Usage(format!(
                    "{ENV_QUOTA_PROJECT}={:?} is not a Google Cloud project ID",
                    crate::error::sanitize(&v)
                ))
            })?;
            Ok(Some(v.trim().to_string()))
        }
        _ => Ok(from_file.filter(|p| !p.is_empty()).map(str::to_string)),
    }
}

/// Prints the library's warnings on stderr.
pub(crate) fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// Warns when `GOOGLE_APPLICATION_CREDENTIALS` will make programs use another file than the ADC
/// file a command just wrote.
pub(crate) fn warn_if_shadowed_by_env() {
    if let Some(env) = crate::store::credentials_env(&crate::env::Env::Process) {
        eprintln!(
            "warning: {} is set to {}; programs will use that file instead of this one",
            crate::store::ENV_CREDENTIALS,
            env.display()
        );
    }
}

/// Environment variable that overrides the quota project, as in Google's client libraries.
pub(crate) const ENV_QUOTA_PROJECT: &str = "GOOGLE_CLOUD_QUOTA_PROJECT";
