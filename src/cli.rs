//! Command-line syntax: the clap structures for every subcommand, and `parse` (the program's
//! name `docker-credential-gemauth` selects the Docker helper; usage errors get a `hint:`).

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
        "Example:\n  gemauth login --client-id-file client_secret.json\n  curl -H \"Authorization: Bearer $(gemauth print-access-token)\" \\\n       -H \"x-goog-user-project: $(gemauth print-quota-project)\" \\\n       https://generativelanguage.googleapis.com/v1/models\n\n",
        "Exit codes:\n  0  success\n  1  error (network, server, file system, login not completed)\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ),
    propagate_version = true
)]
// The parsed command line, public for the binary only; clap would turn doc comments into help text.
#[allow(missing_docs)]
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

    /// Print an OpenID Connect ID token on stdout, for Cloud Run, Cloud Functions and IAP
    #[command(after_help = concat!(
        "Examples:\n  curl -H \"Authorization: Bearer $(gemauth print-identity-token --audiences https://SERVICE-HASH.a.run.app)\" \\\n       https://SERVICE-HASH.a.run.app\n  gemauth print-identity-token --audiences https://SERVICE-HASH.a.run.app --format json\n  gemauth print-identity-token   # a user login's own ID token (audience: its OAuth client ID)\n\n",
        "Every credential type works: a service account key, impersonation, workload identity\n",
        "federation with impersonation, the metadata server, and a user login (whose token is for its\n",
        "OAuth client only; impersonate a service account to choose the audience).\n\n",
        "Exit codes:\n  0  success\n  1  error (network, server, file system)\n  2  usage error (no --audiences, or an ID token this credential cannot have)\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    PrintIdentityToken(Deferred<PrintIdentityTokenArgs>),

    /// Revoke the grant at the server and remove the local credential
    #[command(visible_alias = "logout", after_help = concat!(
        "Examples:\n  gemauth revoke   # or: gemauth logout\n  gemauth revoke --force   # remove the local file even if the server cannot be reached\n\n",
        "Exit codes:\n  0  success, or nothing stored\n  1  error (the credential file was kept)\n  2  usage error\n  3  the credential file is unreadable"
    ))]
    Revoke(Deferred<RevokeArgs>),

    /// Show which credentials are in effect, and why (no network unless --check)
    #[command(after_help = concat!(
        "Examples:\n  gemauth status\n  gemauth status --check   # a doctor: token, quota project, Gemini API, clock, proxy/TLS\n  gemauth status --format json --check\n\n",
        "Exit codes:\n  0  usable credentials found (and, with --check, every check passed)\n  1  error (network, server), or a --check diagnosis failed\n  2  usage error\n  3  no usable credentials (not signed in: the report says where it looked), or the server rejected them"
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
        "Every argument after gemauth's own options goes to curl. The headers reach curl through a pipe\n",
        "(on Windows a private temporary file, removed when curl ends), never on the command line. A URL\n",
        "that would send the token over plain http to another machine is refused before anything is sent.\n",
        "curl's exit code is passed through; gemauth's own failures use its codes (1 error, 2 usage error\n",
        "or plain http to another host, 3 credentials missing or rejected)."
    ))]
    Curl(Deferred<CurlArgs>),

    /// Docker credential helper for Google registries (also run as `docker-credential-gemauth`)
    #[command(after_help = concat!(
        "Examples:\n  echo us-central1-docker.pkg.dev | gemauth docker-credential get\n  gemauth configure-docker us-central1-docker.pkg.dev   # then docker runs docker-credential-gemauth\n\n",
        "`get` reads a registry on stdin and prints {\"ServerURL\",\"Username\",\"Secret\"}; for a registry that is\n",
        "not Google's (nor named for gemauth in credHelpers), or a server URL that is not a registry host,\n",
        "it prints Docker's \"credentials not found\" answer and exits 1. `list` prints the registries configured for gemauth; `store` and `erase`\n",
        "store nothing.\n\n",
        "Exit codes:\n  0  success\n  1  error, or no credentials for that registry\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    DockerCredential(Deferred<DockerCredentialArgs>),

    /// Make Docker use gemauth for Google registries (credHelpers in Docker's config.json)
    #[command(after_help = concat!(
        "Examples:\n  gemauth configure-docker\n  gemauth configure-docker us-central1-docker.pkg.dev,europe-docker.pkg.dev\n\n",
        "Without a list, gcloud's default set: gcr.io, us.gcr.io, eu.gcr.io, asia.gcr.io, marketplace.gcr.io.\n",
        "Writes $DOCKER_CONFIG/config.json (default ~/.docker/config.json), keeping every other entry, and\n",
        "creates the docker-credential-gemauth link next to gemauth (or prints the command to create it).\n\n",
        "Exit codes:\n  0  success (also when nothing had to change)\n  1  error (config.json unreadable or malformed: left untouched)\n  2  usage error"
    ))]
    ConfigureDocker(Deferred<ConfigureDockerArgs>),

    /// Git credential helper (gitcredentials(7)) for Google-hosted repositories
    #[command(after_help = concat!(
        "Example:\n  git config --global credential.https://source.developers.google.com.helper '!gemauth git-credential'\n\n",
        "`get` answers only for source.developers.google.com, *.googlesource.com, *.sourcemanager.dev and\n",
        "the hosts named with --host, over https; for any other host it prints nothing, so that git asks\n",
        "its next helper. A Google token is never sent to another host. `store` and `erase` do nothing.\n\n",
        "Exit codes:\n  0  success, or nothing to say for that host\n  1  error\n  2  usage error\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    GitCredential(Deferred<GitCredentialArgs>),

    /// kubectl exec credential plugin for GKE (prints an ExecCredential)
    #[command(after_help = concat!(
        "Example kubeconfig user:\n  users:\n  - name: gke\n    user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1beta1\n        command: gemauth\n        args: [kubectl-credential]\n        interactiveMode: Never\n        provideClusterInfo: false\n\n",
        "Exit codes:\n  0  success\n  1  error\n  2  usage error (also a malformed KUBERNETES_EXEC_INFO)\n  3  credentials missing, unreadable or rejected: run `gemauth login`"
    ))]
    KubectlCredential(Deferred<KubectlCredentialArgs>),

    /// Serve tokens to containers and local programs as a GCE metadata server (GCE_METADATA_HOST)
    #[command(after_help = concat!(
        "Examples:\n  gemauth metadata-server   # on 127.0.0.1:8169\n  GCE_METADATA_HOST=127.0.0.1:8169 python3 app.py   # google.auth.default() gets gemauth's token\n",
        "  gemauth metadata-server --listen 172.17.0.1:8169   # docker0's address, then:\n",
        "  docker run -e GCE_METADATA_HOST=172.17.0.1:8169 -e GCE_METADATA_IP=172.17.0.1:8169 IMAGE\n",
        "  GCE_METADATA_ROOT=127.0.0.1:8169 gcloud auth print-access-token\n\n",
        "Requests without `Metadata-Flavor: Google`, or with X-Forwarded-For, get 403. Any address other\n",
        "than loopback must be named with --listen: every process that can reach it gets your tokens.\n",
        "The credential file is read again as needed: a new login or a revoke needs no restart.\n\n",
        "Exit codes:\n  0  stopped by SIGINT or SIGTERM\n  1  error\n  2  usage error (also: the address is in use)\n  3  credentials unreadable"
    ))]
    MetadataServer(Deferred<MetadataServerArgs>),

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  mkdir -p ~/.local/share/bash-completion/completions && gemauth completions bash > ~/.local/share/bash-completion/completions/gemauth\n  mkdir -p ~/.zfunc && gemauth completions zsh > ~/.zfunc/_gemauth\n  mkdir -p ~/.config/fish/completions && gemauth completions fish > ~/.config/fish/completions/gemauth.fish"
    )]
    Completions(Deferred<CompletionsArgs>),

    /// Print a man page (roff), or write them all to a directory
    #[command(after_help = concat!(
        "Examples:\n  gemauth man --dir ~/.local/share/man/man1   # every page; `man gemauth-login` then finds it\n",
        "  gemauth man --dir ~/.cargo/share/man/man1   # next to a `cargo install`ed gemauth\n",
        "  gemauth man login | man -l -\n\n",
        "man finds DIR/share/man for every DIR/bin on PATH (man-db, macOS); elsewhere add the directory\n",
        "above man1 to MANPATH."
    ))]
    Man(Deferred<ManArgs>),
}

#[derive(Debug, Args)]
pub struct MetadataServerArgs {
    /// Address to listen on: ADDR:PORT, or a PORT on 127.0.0.1 (0 picks a free one). Any address
    /// other than loopback gives tokens to every process and machine that can reach it
    #[arg(long, value_name = "ADDR:PORT", default_value_t = default_listen(), value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,

    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Comma-separated scopes of a token requested without ?scopes= [default: cloud-platform]
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,

    /// Serve tokens of this service account, impersonated with the credential (which needs
    /// roles/iam.serviceAccountTokenCreator on it)
    #[arg(long, value_name = "SA_EMAIL")]
    pub impersonate_service_account: Option<String>,

    /// Project ID served at project/project-id [default: the credential's project]
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,

    /// Project number served at project/numeric-project-id [default: looked up in Cloud
    /// Resource Manager with the token; gcloud needs it to detect the server]
    #[arg(long, value_name = "NUMBER")]
    pub numeric_project_id: Option<u64>,

    /// Also answer requests whose Host is NAME (besides IP addresses, localhost and *.internal
    /// names such as host.docker.internal); repeatable
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,

    /// Once listening, print GCE_METADATA_HOST=…, GCE_METADATA_IP=… and GCE_METADATA_ROOT=…
    /// lines on stdout (a file for `docker run --env-file` or `set -a; . FILE`)
    #[arg(long)]
    pub print_env: bool,
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, crate::mds::DEFAULT_PORT))
}

/// `--listen`: `ADDR:PORT`, `[V6]:PORT`, `localhost:PORT` or a bare `PORT` (on 127.0.0.1).
fn parse_listen(value: &str) -> std::result::Result<std::net::SocketAddr, String> {
    let value = value.trim();
    if let Ok(port) = value.parse::<u16>() {
        return Ok(std::net::SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            port,
        )));
    }
    if let Some(port) = value.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("{port:?} is not a port number"));
    }
    value.parse::<std::net::SocketAddr>().map_err(|_| {
        "expected ADDR:PORT with an IP address (127.0.0.1:8169, 0.0.0.0:8169, [::1]:8169) \
         or a port"
            .to_string()
    })
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (e.g. login) [default: the gemauth(1) page]
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    pub subcommand: Option<String>,

    /// Write every page (gemauth.1, gemauth-login.1, …) into DIR, created if needed
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// OAuth client JSON of type "Desktop app", downloaded from the Google Cloud console
    #[arg(long, value_name = "FILE", required_unless_present = "login_config")]
    pub client_id_file: Option<PathBuf>,

    /// Workforce identity federation login configuration (from `gcloud iam workforce-pools
    /// create-login-config`): sign in through your identity provider and write an
    /// external_account_authorized_user file
    #[arg(
        long,
        value_name = "FILE",
        env = "CLOUDSDK_AUTH_LOGIN_CONFIG_FILE",
        hide_env_values = true,
        conflicts_with_all = ["client_id_file", "scopes", "impersonate_service_account"]
    )]
    pub login_config: Option<PathBuf>,

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

    /// Write an impersonated_service_account file (as gcloud does) whose source is this login:
    /// tokens are then the service account's. Comma-separated: the last account is
    /// impersonated, those before it are the delegation chain
    #[arg(long, value_name = "SA[,…]")]
    pub impersonate_service_account: Option<String>,
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

    /// Act as this service account through the credential found (no file changes); the
    /// credential needs roles/iam.serviceAccountTokenCreator on it. Comma-separated: the last is
    /// impersonated, those before it are the delegation chain
    #[arg(long, value_name = "SA[,…]")]
    pub impersonate_service_account: Option<String>,

    /// Lifetime in seconds of an impersonated service account's token: up to 3600, or up to
    /// 43200 where the organization policy allows it
    /// (constraints/iam.allowServiceAccountCredentialLifetimeExtension) [default: 3600]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=43_200))]
    pub lifetime: Option<u64>,
}

/// How `print-identity-token` prints the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdTokenFormat {
    /// The token alone
    Token,
    /// {"id_token", "expires_at", "audience", "email"}
    Json,
}

#[derive(Debug, Args)]
pub struct PrintIdentityTokenArgs {
    /// The service the token is for: its URL (Cloud Run, Cloud Functions) or, for IAP, its OAuth
    /// client ID. Required, except with a user login, whose token is for its own OAuth client
    #[arg(long, value_name = "AUD")]
    pub audiences: Option<String>,

    /// Put the service account's email in the token (email and email_verified claims); for
    /// impersonation and the metadata server (a key's tokens come with it anyway)
    #[arg(long)]
    pub include_email: bool,

    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = IdTokenFormat::Token)]
    pub format: IdTokenFormat,

    /// Act as this service account through the credential found (no file changes): an ID token
    /// for any audience, even from a user login; the credential needs
    /// roles/iam.serviceAccountOpenIdTokenCreator on it. Comma-separated: the last is
    /// impersonated, those before it are the delegation chain
    #[arg(long, value_name = "SA[,…]")]
    pub impersonate_service_account: Option<String>,
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

/// What Docker asks its credential helper to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DockerAction {
    /// Read a registry on stdin, print its credentials
    Get,
    /// Print the registries configured for gemauth
    List,
    /// Read stdin and store nothing (tokens are not stored)
    Store,
    /// Read stdin and erase nothing
    Erase,
    /// Print the version
    Version,
}

#[derive(Debug, Args)]
pub struct DockerCredentialArgs {
    /// The docker-credential-helpers action
    #[arg(value_enum)]
    pub action: DockerAction,

    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Seconds the token handed to Docker must still be valid for (a push can take long)
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub min_lifetime: u64,
}

#[derive(Debug, Args)]
pub struct ConfigureDockerArgs {
    /// Comma-separated registries, e.g. us-central1-docker.pkg.dev
    /// [default: gcr.io,us.gcr.io,eu.gcr.io,asia.gcr.io,marketplace.gcr.io]
    #[arg(value_name = "REGISTRY,…")]
    pub registries: Option<String>,
}

#[derive(Debug, Args)]
pub struct GitCredentialArgs {
    /// The gitcredentials(7) action: get, store or erase (others are ignored, as git asks)
    #[arg(value_name = "ACTION")]
    pub action: String,

    /// Another host to answer for, e.g. git.example.com, *.example.com or 127.0.0.1:8080
    /// (repeatable); without a port any port matches
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Comma-separated scopes (see `print-access-token --scopes`)
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,
}

#[derive(Debug, Args)]
pub struct KubectlCredentialArgs {
    /// Credential file to use [default: $GOOGLE_APPLICATION_CREDENTIALS, else the ADC file]
    #[arg(long, value_name = "PATH")]
    pub credential_file: Option<PathBuf>,

    /// Comma-separated scopes, for service accounts, impersonation, federation and the metadata
    /// server [default: cloud-platform]; for a user login they must have been granted
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,
}

/// The name under which the binary acts as `gemauth docker-credential` (Docker runs
/// `docker-credential-` followed by the helper's name in credHelpers).
pub(crate) const DOCKER_HELPER_NAME: &str = "docker-credential-gemauth";

/// The command line as gemauth parses it: invoked as `docker-credential-gemauth ACTION`, it is
/// `gemauth docker-credential ACTION`; under any other name, unchanged.
fn with_docker_helper_name(mut args: Vec<OsString>) -> Vec<OsString> {
    let invoked_as_helper = args.first().is_some_and(|arg0| {
        std::path::Path::new(arg0)
            .file_stem()
            .is_some_and(|stem| stem == DOCKER_HELPER_NAME)
    });
    if invoked_as_helper {
        args[0] = "gemauth".into();
        args.insert(1, "docker-credential".into());
    }
    args
}

/// Parses the command line. On a usage error prints clap's message and a `hint:` line naming the
/// next command, and exits with 2; `--help` and `--version` print on stdout and exit with 0.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Cli {
    use clap::CommandFactory;
    let args = with_docker_helper_name(args.into_iter().collect());
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
            std::process::exit(i32::from(crate::exit::EXIT_USAGE))
        }
    }
}

/// The `hint:` after a usage error.
fn usage_hint(subcommand: Option<&str>, kind: clap::error::ErrorKind) -> String {
    use clap::error::ErrorKind;
    match (subcommand, kind) {
        (Some("login"), ErrorKind::MissingRequiredArgument) => "download your Desktop OAuth \
            client's JSON from the Google Cloud console (Google Auth Platform → Clients), then run \
            `gemauth login --client-id-file client_secret.json`"
            .into(),
        (Some("login"), ErrorKind::ArgumentConflict) => "--login-config (which \
            CLOUDSDK_AUTH_LOGIN_CONFIG_FILE sets too) signs in through a workforce pool and takes \
            neither --client-id-file nor --scopes: give one kind of login (unset \
            CLOUDSDK_AUTH_LOGIN_CONFIG_FILE to sign in with a Google account)"
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
    fn the_docker_helper_name_selects_docker_credential() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_docker_helper_name(args(&["/usr/local/bin/docker-credential-gemauth", "get"])),
            args(&["gemauth", "docker-credential", "get"])
        );
        for unchanged in [
            &["gemauth", "get"][..],
            &["/opt/gemauth-static", "status"],
            &["docker-credential-gemauth-old", "get"],
            &["docker-credential-gcloud", "get"],
        ] {
            assert_eq!(with_docker_helper_name(args(unchanged)), args(unchanged));
        }
        let cli = Cli::try_parse_from(with_docker_helper_name(args(&[
            "docker-credential-gemauth",
            "list",
        ])))
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::DockerCredential(Deferred(DockerCredentialArgs {
                action: DockerAction::List,
                ..
            }))
        ));
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
        for other in [["--client-id-file", "c.json"], ["--scopes", "openid"]] {
            let err = Cli::try_parse_from(
                ["gemauth", "login", "--login-config", "l.json"]
                    .into_iter()
                    .chain(other),
            )
            .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        }
    }
}
