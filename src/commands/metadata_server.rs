//! `gemauth metadata-server`: serves Google's metadata-server endpoints on a local address, so
//! that programs in containers, sandboxes and emulators get tokens from gemauth without a
//! credential file ever entering them.

use std::net::{IpAddr, SocketAddr};

use super::report::Result;
use crate::Error;
use crate::cli::MetadataServerArgs;
use crate::mds::{self, Config, TokenSource};

/// The server's settings from the command line.
pub(crate) fn config(args: &MetadataServerArgs) -> Result<Config> {
    // Without --scopes, cloud-platform (as on GCE), not the scopes of a login.
    let scopes = match args.scopes.as_deref() {
        Some(scopes) => crate::credentials::resolve_scopes(Some(scopes))?,
        None => vec![crate::credentials::CLOUD_PLATFORM.to_string()],
    };
    let mut config = Config::new(scopes);
    if let Some(project) = &args.project {
        crate::credentials::validate_project_id(project).map_err(|_| {
            Error::Usage(format!(
                "--project {:?} is not a Google Cloud project ID",
                crate::error::sanitize(project)
            ))
        })?;
        config.project_id = Some(project.clone());
    }
    for host in &args.allow_hosts {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(Error::Usage(format!(
                "--allow-host {:?} is not a host name",
                crate::error::sanitize(host)
            ))
            .into());
        }
        config.allowed_hosts.push(host.to_ascii_lowercase());
    }
    Ok(config)
}

/// `gemauth metadata-server`: serves tokens from gemauth's pipeline for the credential the
/// arguments name (or discovery finds) until SIGINT or SIGTERM.
pub(crate) fn run_command(args: &MetadataServerArgs) -> Result<()> {
    let config = config(args)?;
    let source = mds::pipeline_source::PipelineSource::new(
        args.credential_file.clone(),
        config.default_scopes.clone(),
        args.project.clone(),
        args.numeric_project_id,
        args.impersonate_service_account.as_deref(),
    )?;
    run(args, source)
}

/// Runs the server with `source` until SIGINT or SIGTERM (Ctrl-C on Windows). The caller builds
/// `source` from the same arguments (credential file, impersonation).
pub(crate) fn run<S: TokenSource>(args: &MetadataServerArgs, source: S) -> Result<()> {
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // Installed before the server announces itself, so that a supervisor's early SIGTERM
        // is a clean stop.
        let signals = Signals::install()?;
        let server = mds::bind(args.listen, config, source).await?;
        let addr = server.local_addr()?;
        if let Err(reason) = server.warm_up().await {
            eprintln!(
                "warning: no token yet ({}); clients get 503 until that changes, and a new \
                 `gemauth login` is picked up without a restart",
                crate::error::sanitize(&reason)
            );
        }
        for warning in server.source_warnings() {
            eprintln!("warning: {}", crate::error::sanitize(&warning));
        }
        announce(addr, args.print_env)?;
        server.serve(signals.wait()).await?;
        eprintln!("gemauth metadata-server: stopped");
        Ok(())
    })
}

/// The address clients should use: the bound one, or loopback for an unspecified address.
fn client_address(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", addr.port()),
        _ => addr.to_string(),
    }
}

/// The variables Google's clients read: GCE_METADATA_HOST (google-auth for Python and Node, Go,
/// Java, Rust), GCE_METADATA_IP (the detection request of google-auth and Node), and
/// GCE_METADATA_ROOT (gcloud).
fn env_lines(addr: SocketAddr) -> Vec<String> {
    let host = client_address(addr);
    ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"]
        .iter()
        .map(|name| format!("{name}={host}"))
        .collect()
}

/// The start-up lines on stderr (and the variables on stdout with --print-env).
fn announce(addr: SocketAddr, print_env: bool) -> Result<()> {
    eprintln!("gemauth metadata-server: listening on http://{addr} (stop with Ctrl-C)");
    eprintln!("  export {}", env_lines(addr).join(" "));
    if addr.ip().is_unspecified() {
        eprintln!(
            "  (from a container use this machine's address as the container sees it, e.g. \
             host.docker.internal:{})",
            addr.port()
        );
    }
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, not on loopback: every process and machine that can \
             reach this address gets Google access tokens for your account. Limit it with a \
             firewall, or listen on 127.0.0.1 (the default)"
        );
    }
    if print_env {
        super::print_stdout(&env_lines(addr).join("\n"))?;
    }
    Ok(())
}

/// SIGINT and SIGTERM (Ctrl-C on other systems), registered up front.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind| {
                signal(kind)
                    .map_err(|e| Error::Internal(format!("cannot install the signal handler: {e}")))
            };
            Ok(Signals {
                interrupt: register(SignalKind::interrupt())?,
                terminate: register(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let Signals {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                // No console to stop it from: run until the process is killed.
                std::future::pending::<()>().await;
            }
        }
        eprintln!("gemauth metadata-server: stopping");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use clap::Parser;

    use super::*;
    use crate::mds::source::{AccessToken, IdToken, IdTokenRequest, Identity, SourceError};
    use crate::secret::Secret;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: MetadataServerArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<MetadataServerArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("mds").chain(args.iter().copied())).map(|c| c.args)
    }

    struct NoSource;

    impl TokenSource for NoSource {
        async fn access_token(
            &self,
            _: &[String],
        ) -> std::result::Result<AccessToken, SourceError> {
            Ok(AccessToken {
                token: Secret::new("t".into()),
                expires_at: SystemTime::now() + Duration::from_secs(3600),
                scopes: vec![],
            })
        }
        async fn id_token(&self, _: &IdTokenRequest) -> std::result::Result<IdToken, SourceError> {
            Err(SourceError::BadRequest("no ID tokens".into()))
        }
        async fn identity(&self) -> std::result::Result<Identity, SourceError> {
            Ok(Identity::default())
        }
    }

    #[test]
    fn listen_defaults_to_loopback_on_the_documented_port() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:8169".parse().unwrap());
        assert_eq!(
            parse(&["--listen", "9000"]).unwrap().listen,
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            parse(&["--listen", "localhost:0"]).unwrap().listen,
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse(&["--listen", "0.0.0.0:8169"]).unwrap().listen,
            "0.0.0.0:8169".parse().unwrap()
        );
        assert_eq!(
            parse(&["--listen", "[::1]:1"]).unwrap().listen,
            "[::1]:1".parse().unwrap()
        );
        for bad in ["example.com:80", "127.0.0.1", "localhost:x", "99999"] {
            assert!(parse(&["--listen", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_configuration_checks_its_inputs() {
        let args = parse(&[
            "--scopes",
            "cloud-platform,devstorage.read_only",
            "--project",
            "my-project-1",
        ])
        .unwrap();
        let built = config(&args).unwrap();
        assert_eq!(
            built.default_scopes,
            [
                "https://www.googleapis.com/auth/cloud-platform",
                "https://www.googleapis.com/auth/devstorage.read_only"
            ]
        );
        assert_eq!(built.project_id.as_deref(), Some("my-project-1"));
        for bad in [
            &["--project", "Bad Project"][..],
            &["--allow-host", "evil.com/x"],
            &["--allow-host", ""],
            &["--scopes", ","],
        ] {
            let args = parse(bad).unwrap();
            assert!(
                matches!(
                    config(&args),
                    Err(super::super::report::Error::Lib(Error::Usage(_)))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            config(&parse(&[]).unwrap()).unwrap().default_scopes,
            ["https://www.googleapis.com/auth/cloud-platform"]
        );
        let args = parse(&["--allow-host", "MDS.lan"]).unwrap();
        assert_eq!(config(&args).unwrap().allowed_hosts, ["mds.lan"]);
    }

    #[test]
    fn the_env_names_an_address_clients_can_reach() {
        assert_eq!(
            env_lines("127.0.0.1:8169".parse().unwrap()),
            [
                "GCE_METADATA_HOST=127.0.0.1:8169",
                "GCE_METADATA_IP=127.0.0.1:8169",
                "GCE_METADATA_ROOT=127.0.0.1:8169"
            ]
        );
        assert_eq!(client_address("0.0.0.0:1".parse().unwrap()), "127.0.0.1:1");
        assert_eq!(client_address("[::]:1".parse().unwrap()), "[::1]:1");
        assert_eq!(client_address("[::1]:1".parse().unwrap()), "[::1]:1");
    }

    #[test]
    fn run_reports_an_address_in_use_as_a_usage_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let args = parse(&["--listen", &port.to_string()]).unwrap();
        let err = run(&args, NoSource).unwrap_err();
        assert!(
            matches!(err, super::super::report::Error::Lib(Error::Usage(_))),
            "{err:?}"
        );
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
