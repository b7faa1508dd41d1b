//! Command-line syntax: the clap structures for every subcommand, and nothing else.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{
    ArgMatches, Args, Command as ClapCommand, FromArgMatches, Parser, Subcommand, ValueEnum,
};

#[derive(Debug, Parser)]
#[command(
    name = "gemauth",
    // The version and the target triple the binary was built for (from build.rs).
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GEMAUTH_TARGET"), ")"),
    about = "Fast OAuth credentials for Google APIs (Gemini included): sign in once, then print access tokens",
    after_help = concat!(
        "Example:\n  gemauth login --client-id-file client_secret.json\n  curl -H \"Authorization: Bearer $(gemauth print-access-token)\" https://generativelanguage.googleapis.com/v1/models\n\n",
        "Exit codes:\n  0  success\n  1  error (network, server, file system, login not completed)\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ),
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
        "Examples:\n  gemauth login --client-id-file client_secret.json\n  gemauth login --client-id-file client_secret.json --scopes cloud-platform,generative-language.retriever\n  gemauth login --client-id-file client_secret.json --no-browser --port 8085   # over SSH\n\n",
        "Exit codes:\n  0  success\n  1  error (login not completed, network, server, file system)\n  2  usage error"
    ))]
    Login(Deferred<LoginArgs>),

    /// Print a valid access token on stdout (cached, or refreshed when needed)
    #[command(after_help = concat!(
        "Examples:\n  curl -H \"Authorization: Bearer $(gemauth print-access-token)\" \\\n       -H \"x-goog-user-project: MY_PROJECT\" https://generativelanguage.googleapis.com/v1/models\n  gemauth print-access-token --format json\n  curl -H \"$(gemauth print-access-token --format header)\" https://generativelanguage.googleapis.com/v1/models\n\n",
        "Exit codes:\n  0  success\n  1  error (network, server, file system)\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    PrintAccessToken(Deferred<PrintAccessTokenArgs>),

    /// Revoke the grant at the server and remove the local credential
    #[command(after_help = concat!(
        "Examples:\n  gemauth revoke\n  gemauth revoke --force   # remove the local file even if the server cannot be reached\n\n",
        "Exit codes:\n  0  success, or nothing stored\n  1  error (the credential file was kept)\n  2  usage error\n  3  the credential file is unreadable"
    ))]
    Revoke(Deferred<RevokeArgs>),

    /// Show which credentials are in effect, and why (no network unless --check)
    #[command(after_help = concat!(
        "Examples:\n  gemauth status\n  gemauth status --format json --check\n\n",
        "Exit codes:\n  0  usable credentials found (and, with --check, accepted by the server)\n  1  error (network, server)\n  2  usage error\n  3  no usable credentials, or the server rejected them"
    ))]
    Status(Deferred<StatusArgs>),

    /// Set the project billed for API quota (quota_project_id) in the credential file
    #[command(after_help = concat!(
        "Example:\n  gemauth set-quota-project my-project-123\n\n",
        "Exit codes:\n  0  success\n  1  error\n  2  usage error (not a project ID)\n  3  no usable credential file: run `gemauth login`"
    ))]
    SetQuotaProject(Deferred<SetQuotaProjectArgs>),

    /// Print the project billed for API quota (quota_project_id) on stdout
    #[command(after_help = concat!(
        "Example:\n  curl -H \"x-goog-user-project: $(gemauth print-quota-project)\" …\n\n",
        "Exit codes:\n  0  success\n  1  no quota project set\n  2  usage error\n  3  no usable credential file: run `gemauth login`"
    ))]
    PrintQuotaProject(Deferred<CredentialFileArgs>),

    /// Run curl with the Authorization header (and x-goog-user-project) added
    #[command(after_help = concat!(
        "Example:\n  gemauth curl -sS https://generativelanguage.googleapis.com/v1/models\n\n",
        "Every argument after gemauth's own options goes to curl. The headers are passed in a private\n",
        "temporary file, never on the command line. curl's exit code is passed through; gemauth's own\n",
        "failures use its codes (1 error, 3 credentials missing or rejected)."
    ))]
    Curl(Deferred<CurlArgs>),

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  gemauth completions bash > ~/.local/share/bash-completion/completions/gemauth\n  gemauth completions zsh > \"${fpath[1]}/_gemauth\"\n  gemauth completions fish > ~/.config/fish/completions/gemauth.fish"
    )]
    Completions(Deferred<CompletionsArgs>),

    /// Print the man page (roff)
    #[command(after_help = "Example:\n  gemauth man > ~/.local/share/man/man1/gemauth.1")]
    Man,
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

/// How `print-access-token` prints the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The token alone
    Token,
    /// {"access_token", "expires_at", "token_type", "scopes", "quota_project_id"}
    Json,
    /// `Authorization: Bearer TOKEN`
    Header,
}

#[derive(Debug, Args)]
pub struct PrintAccessTokenArgs {
    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = TokenFormat::Token)]
    pub format: TokenFormat,

    /// Seconds a cached token must still be valid for, else it is refreshed
    /// [default: 300, or half the token's lifetime when shorter]
    #[arg(long, value_name = "SECS")]
    pub min_lifetime: Option<u64>,

    /// Comma-separated scopes, for service accounts, impersonation, federation and the metadata
    /// server [default: cloud-platform]; for a user login they must have been granted
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,
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

/// How `status` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Credential file to describe [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,

    /// Also check with the server that the credential works (uses the cache, or refreshes)
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct SetQuotaProjectArgs {
    /// Google Cloud project ID, e.g. my-project-123
    #[arg(value_name = "PROJECT")]
    pub project: String,

    /// Credential file to change [default: the Application Default Credentials file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CredentialFileArgs {
    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CurlArgs {
    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Arguments for curl (URL, options…)
    #[arg(
        value_name = "CURL ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses the command line. On a usage error prints clap's message and a `hint:` line naming the
/// next command, and exits with 2; `--help` and `--version` print on stdout and exit with 0.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Cli {
    use clap::CommandFactory;
    let args: Vec<OsString> = args.into_iter().collect();
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(&args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches))
        .map_err(|e| e.format(&mut command));
    let subcommand = args.iter().skip(1).find_map(|arg| {
        let arg = arg.to_str()?;
        command
            .find_subcommand(arg)
            .map(|s| s.get_name().to_string())
    });
    // Dropping clap's command tree costs a twelfth of a cached `print-access-token`, and the
    // process ends right after: leave it to the exit.
    std::mem::forget(command);
    match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let text = text.trim_end();
            let text = text
                .strip_suffix("For more information, try '--help'.")
                .unwrap_or(text)
                .trim_end();
            eprintln!("{text}");
            eprintln!("hint: {}", usage_hint(subcommand.as_deref(), e.kind()));
            std::process::exit(i32::from(crate::error::EXIT_USAGE))
        }
    }
}

/// The `hint:` after a usage error.
fn usage_hint(subcommand: Option<&str>, kind: clap::error::ErrorKind) -> String {
    use clap::error::ErrorKind;
    match (subcommand, kind) {
        (Some("login"), ErrorKind::MissingRequiredArgument) => "download your Desktop OAuth \
            client's JSON from the Google Cloud console (APIs & Services > Credentials), then run \
            `gemauth login --client-id-file client_secret.json`"
            .into(),
        (Some(sub), _) => format!("run `gemauth {sub} --help` for its options"),
        (None, _) => "run `gemauth --help` for the list of commands".into(),
    }
}

/// A subcommand's arguments, built by clap only when that subcommand is the one being parsed
/// (`Command::defer`): `gemauth print-access-token` builds none of `login`'s options. The
/// subcommand names, their one-line help and the global options are built as before.
#[derive(Debug)]
pub struct Deferred<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Self)
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

impl<T: Args> Args for Deferred<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }

    fn augment_args(cmd: ClapCommand) -> ClapCommand {
        cmd.defer(T::augment_args)
    }

    fn augment_args_for_update(cmd: ClapCommand) -> ClapCommand {
        cmd.defer(T::augment_args_for_update)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_definition_is_consistent_with_every_subcommand_built() {
        // debug_assert builds every subcommand, deferred options included.
        Cli::command().debug_assert();
    }

    #[test]
    fn a_deferred_subcommand_parses_its_options_and_the_global_ones() {
        let cli = Cli::try_parse_from([
            "gemauth",
            "print-access-token",
            "-v",
            "--format",
            "json",
            "--min-lifetime",
            "60",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 1);
        let Command::PrintAccessToken(Deferred(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.format, TokenFormat::Json);
        assert_eq!(args.min_lifetime, Some(60));
        assert_eq!(args.credential_file, None);

        let err = Cli::try_parse_from(["gemauth", "print-access-token", "--client-id-file", "x"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let err = Cli::try_parse_from(["gemauth", "login"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
