//! `gemauth docker-credential` (also run as `docker-credential-gemauth`) and `gemauth
//! configure-docker`: Docker's credential-helper protocol for Google registries, and the
//! `credHelpers` entries of Docker's config.json that make Docker use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::report::{EXIT_ERROR, EXIT_OK, Error, Result};
use crate::cli::{ConfigureDockerArgs, DOCKER_HELPER_NAME, DockerAction, DockerCredentialArgs};

use super::helpers::{self, is_loopback, split_port};

/// The user name Google's registries take with an access token as the password.
pub(crate) const USERNAME: &str = "oauth2accesstoken";
/// The helper's name in `credHelpers`: Docker runs `docker-credential-` followed by it.
pub(crate) const HELPER: &str = "gemauth";
/// The answer that tells Docker "no credentials here" (docker-credential-helpers' message, on
/// stdout with a non-zero exit): Docker then goes on without credentials.
pub(crate) const NOT_FOUND: &str = "credentials not found in native keychain";
/// What `configure-docker` sets up without a list: gcloud's default set.
pub(crate) const DEFAULT_REGISTRIES: [&str; 5] = [
    "gcr.io",
    "us.gcr.io",
    "eu.gcr.io",
    "asia.gcr.io",
    "marketplace.gcr.io",
];

const TOOL: &str = "docker";
/// The largest Docker config file gemauth reads (Docker's own are a few KiB).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// `{"ServerURL", "Username", "Secret"}`, in the order Docker's own helpers print them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    username: &'a str,
    secret: &'a str,
}

/// Runs one action of the docker-credential-helpers protocol; returns the exit code.
pub(crate) fn credential(args: DockerCredentialArgs) -> Result<u8> {
    match args.action {
        DockerAction::Get => get(&args),
        DockerAction::List => {
            let list: BTreeMap<String, &str> = configured_registries()?
                .into_iter()
                .map(|registry| (format!("https://{registry}"), USERNAME))
                .collect();
            super::print_stdout(&json(&list)?)?;
            Ok(EXIT_OK)
        }
        DockerAction::Store | DockerAction::Erase => {
            // Tokens are obtained on demand: there is nothing to store or erase.
            helpers::read_all(TOOL)?;
            Ok(EXIT_OK)
        }
        DockerAction::Version => {
            super::print_stdout(&format!(
                "{DOCKER_HELPER_NAME} (gemauth) {}",
                env!("CARGO_PKG_VERSION")
            ))?;
            Ok(EXIT_OK)
        }
    }
}

fn get(args: &DockerCredentialArgs) -> Result<u8> {
    let input = helpers::read_all(TOOL)?;
    let server_url = input.trim();
    // A server URL that is not a registry host (`https://gcr.io@evil.com`) is not gemauth's:
    // Docker's "not found" answer lets Docker go on without credentials, as for any other
    // registry that is not Google's.
    let registry = match Registry::parse(server_url) {
        Ok(registry) => registry,
        Err(e) => {
            tracing::debug!("{e}: no credentials");
            super::print_stdout(NOT_FOUND)?;
            return Ok(EXIT_ERROR);
        }
    };
    if !registry.may_get_token()? {
        tracing::debug!(
            registry = %registry.host_port,
            "not a Google registry, nor configured for gemauth in credHelpers: no credentials"
        );
        super::print_stdout(NOT_FOUND)?;
        return Ok(EXIT_ERROR);
    }
    let token = helpers::token(args.credential_file.clone(), None, Some(args.min_lifetime))?;
    let credentials = Credentials {
        server_url,
        username: USERNAME,
        secret: token.access_token.expose(),
    };
    super::print_stdout(&json(&credentials)?)?;
    Ok(EXIT_OK)
}

fn json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| crate::Error::Internal(format!("cannot serialize: {e}")).into())
}

/// A registry as Docker names it to its helper: `gcr.io`, `https://gcr.io`,
/// `https://index.docker.io/v1/`, `localhost:5000`.
#[derive(Debug, PartialEq, Eq)]
struct Registry {
    /// Lower-case host, with the port when one was given.
    host_port: String,
    /// Lower-case host alone.
    host: String,
    /// `http://` was given explicitly.
    plain_http: bool,
}

impl Registry {
    fn parse(server_url: &str) -> Result<Self> {
        let bad = |problem: &str| {
            helpers::input_error(
                TOOL,
                format!(
                    "{problem}: {:?}",
                    crate::error::sanitize(&server_url.chars().take(200).collect::<String>())
                ),
            )
        };
        let lower = server_url.trim().to_ascii_lowercase();
        let (rest, plain_http) = if let Some(rest) = lower.strip_prefix("https://") {
            (rest, false)
        } else if let Some(rest) = lower.strip_prefix("http://") {
            (rest, true)
        } else {
            (lower.as_str(), false)
        };
        let host_port = rest.split('/').next().unwrap_or_default();
        if host_port.is_empty() {
            return Err(bad("no registry host"));
        }
        let host = split_port(host_port).ok_or_else(|| bad("not a registry host"))?;
        Ok(Registry {
            host_port: host_port.to_string(),
            host: host.to_string(),
            plain_http,
        })
    }

    /// Google's registries: Container Registry (`gcr.io`, `*.gcr.io`) and Artifact Registry
    /// (`*.pkg.dev`).
    fn is_google(&self) -> bool {
        self.host == "gcr.io" || self.host.ends_with(".gcr.io") || self.host.ends_with(".pkg.dev")
    }

    /// A token goes to Google's registries over https, and to a registry the user named for
    /// gemauth in `credHelpers` (over plain http only on this machine).
    fn may_get_token(&self) -> Result<bool> {
        let loopback = is_loopback(&self.host);
        if self.plain_http && !loopback {
            return Ok(false);
        }
        if self.is_google() {
            return Ok(true);
        }
        let Some(config) = load_config(&config_path()?)? else {
            return Ok(false);
        };
        Ok(cred_helpers(&config)?
            .iter()
            .any(|(key, helper)| helper == HELPER && normalized_key(key) == self.host_port))
    }
}

/// A `credHelpers` key as a registry: without scheme or path, lower case.
fn normalized_key(key: &str) -> String {
    let lower = key.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    rest.split('/').next().unwrap_or_default().to_string()
}

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn config_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    dirs::home_dir()
        .map(|home| home.join(".docker").join("config.json"))
        .ok_or_else(|| {
            crate::Error::Usage(
                "cannot find the home directory; set DOCKER_CONFIG to Docker's config directory"
                    .into(),
            )
            .into()
        })
}

/// The config file's top-level object; `None` when there is no file.
fn load_config(path: &Path) -> Result<Option<Map<String, Value>>> {
    if !crate::store::is_present(path) {
        return Ok(None);
    }
    let problem = |problem: String| Error::ToolConfig {
        path: path.to_path_buf(),
        problem,
    };
    // Checked here to name Docker's file in the message; read_bounded keeps its own bound.
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > MAX_CONFIG_BYTES) {
        return Err(problem(format!(
            "Docker's config file is too large (more than {} KiB)",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    // Bounded and never blocking, like every file gemauth reads (a FIFO is refused at once).
    let bytes = crate::store::read_bounded(path).map_err(problem)?;
    // An empty file is what some tools create: it holds no settings.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(problem("is not a JSON object".into())),
        Err(e) => Err(problem(format!("is not valid JSON ({e})"))),
    }
}

/// The `credHelpers` entries (registry, helper name).
fn cred_helpers(config: &Map<String, Value>) -> Result<Vec<(String, String)>> {
    match config.get("credHelpers") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()),
        Some(_) => Err(Error::ToolConfig {
            path: config_path()?,
            problem: "\"credHelpers\" is not a JSON object".into(),
        }),
    }
}

/// The registries whose `credHelpers` entry names gemauth, as written there (scheme removed).
fn configured_registries() -> Result<Vec<String>> {
    let path = config_path()?;
    let Some(config) = load_config(&path)? else {
        tracing::debug!(config = %path.display(), "no Docker config file");
        return Ok(Vec::new());
    };
    let registries: Vec<String> = cred_helpers(&config)?
        .into_iter()
        .filter(|(_, helper)| helper == HELPER)
        .map(|(key, _)| normalized_key(&key))
        .collect();
    tracing::debug!(config = %path.display(), count = registries.len(), "registries configured for gemauth");
    Ok(registries)
}

/// For `status`: where Docker is set up to use gemauth.
pub(crate) fn configured() -> Vec<String> {
    let Ok(path) = config_path() else {
        return Vec::new();
    };
    let Ok(Some(config)) = load_config(&path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if config.get("credsStore").and_then(Value::as_str) == Some(HELPER) {
        out.push(format!(
            "docker: credsStore in {} (Google registries only)",
            path.display()
        ));
    }
    let registries: Vec<String> = cred_helpers(&config)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, helper)| helper == HELPER)
        .map(|(key, _)| key)
        .collect();
    if !registries.is_empty() {
        out.push(format!(
            "docker: credHelpers in {} for {}",
            path.display(),
            registries.join(", ")
        ));
    }
    out
}

/// `gemauth configure-docker [REGISTRY,…]`.
pub(crate) fn configure(args: ConfigureDockerArgs) -> Result<()> {
    let registries = match args.registries.as_deref() {
        None => DEFAULT_REGISTRIES.iter().map(|r| r.to_string()).collect(),
        Some(list) => parse_registry_list(list)?,
    };
    let path = config_path()?;
    // Write through a symbolic link (a config file kept with one's dotfiles), not over it.
    let target = match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(&path).map_err(|source| crate::Error::Io {
                action: "cannot resolve the link",
                path: path.clone(),
                source,
            })?
        }
        _ => path.clone(),
    };
    let mut config = load_config(&target)?.unwrap_or_default();
    let helpers = config
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(Map::new()));
    if helpers.is_null() {
        *helpers = Value::Object(Map::new());
    }
    let Value::Object(helpers) = helpers else {
        return Err(Error::ToolConfig {
            path: target,
            problem: "\"credHelpers\" is not a JSON object".into(),
        });
    };
    let mut changed = Vec::new();
    for registry in &registries {
        match helpers.get(registry).and_then(Value::as_str) {
            Some(HELPER) => {}
            Some(other) => {
                eprintln!("{registry}: replacing the credential helper {other:?} with {HELPER:?}");
                changed.push(registry.clone());
            }
            None => changed.push(registry.clone()),
        }
        helpers.insert(registry.clone(), Value::String(HELPER.into()));
    }
    if changed.is_empty() {
        eprintln!(
            "Docker already uses gemauth for {} ({}).",
            registries.join(", "),
            path.display()
        );
    } else {
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        Value::Object(config)
            .serialize(&mut serializer)
            .map_err(|e| crate::Error::Internal(format!("cannot serialize: {e}")))?;
        bytes.push(b'\n');
        crate::store::write_atomic(&target, &bytes)?;
        eprintln!(
            "Docker now uses gemauth for {} ({}).",
            changed.join(", "),
            path.display()
        );
    }
    ensure_helper_link();
    Ok(())
}

/// Splits and checks `REGISTRY,…`: host names with an optional port (a scheme is dropped).
fn parse_registry_list(list: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let lower = item.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .unwrap_or(&lower);
        let key = rest.strip_suffix('/').unwrap_or(rest).to_string();
        if key.contains('/') || split_port(&key).is_none() {
            return Err(crate::Error::Usage(format!(
                "{:?} is not a registry host (e.g. us-central1-docker.pkg.dev)",
                crate::error::sanitize(item)
            ))
            .into());
        }
        if !out.contains(&key) {
            out.push(key);
        }
    }
    if out.is_empty() {
        return Err(crate::Error::Usage(
            "no registry given (e.g. us-central1-docker.pkg.dev)".into(),
        )
        .into());
    }
    Ok(out)
}

/// Makes sure Docker can run `docker-credential-gemauth`: a link to this executable next to it,
/// or the command that creates one; and a warning when that directory is not on PATH.
fn ensure_helper_link() {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!(
                "warning: cannot find the gemauth executable ({e}); create the link yourself:\n  ln -s \"$(command -v gemauth)\" DIR_ON_PATH/{DOCKER_HELPER_NAME}"
            );
            return;
        }
    };
    let Some(dir) = exe.parent() else {
        return;
    };
    let link = dir.join(DOCKER_HELPER_NAME);
    let command = format!(
        "ln -s {} {}",
        shell_words::quote(&exe.to_string_lossy()),
        shell_words::quote(&link.to_string_lossy())
    );
    match std::fs::symlink_metadata(&link) {
        Ok(_) if same_file(&link, &exe) => {
            tracing::debug!(link = %link.display(), "the Docker helper link is in place");
        }
        Ok(_) => {
            eprintln!(
                "warning: {} exists and is not this gemauth; left alone. To use this one instead:\n  rm {} && {command}",
                link.display(),
                shell_words::quote(&link.to_string_lossy())
            );
        }
        Err(_) => match make_link(&exe, &link) {
            Ok(()) => eprintln!("Created {} -> {}", link.display(), exe.display()),
            Err(e) => eprintln!(
                "warning: cannot create {} ({e}); create it with:\n  {command}\n(or link it into another directory on PATH)",
                link.display()
            ),
        },
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| same_file(&d.join(DOCKER_HELPER_NAME), &exe))
    });
    if !on_path {
        eprintln!(
            "warning: Docker runs {DOCKER_HELPER_NAME} from PATH, and {} is not on PATH: add it, or link {DOCKER_HELPER_NAME} into a directory that is",
            dir.display()
        );
    }
}

#[cfg(unix)]
fn make_link(exe: &Path, link: &Path) -> std::io::Result<()> {
    // A relative target: the link keeps working when the directory is moved.
    let target = exe
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.to_path_buf());
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_link(exe: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::hard_link(exe, link).or_else(|_| std::fs::copy(exe, link).map(|_| ()))
}

/// Whether two paths (links followed) are the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_parsed_as_docker_names_them() {
        let r = Registry::parse("https://us-central1-docker.pkg.dev").unwrap();
        assert_eq!(r.host_port, "us-central1-docker.pkg.dev");
        assert!(r.is_google() && !r.plain_http);
        let r = Registry::parse("GCR.io\n").unwrap();
        assert_eq!((r.host.as_str(), r.is_google()), ("gcr.io", true));
        let r = Registry::parse("https://index.docker.io/v1/").unwrap();
        assert_eq!(r.host_port, "index.docker.io");
        assert!(!r.is_google());
        let r = Registry::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            (r.host_port.as_str(), r.host.as_str()),
            ("127.0.0.1:5000", "127.0.0.1")
        );
        assert!(r.plain_http);
        let r = Registry::parse("[::1]:5000").unwrap();
        assert_eq!(r.host, "::1");
        assert!(is_loopback(&r.host));
        for bad in [
            "",
            "https://",
            "a b",
            "host:port",
            "gcr.io:99999",
            "x\u{1b}y",
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn look_alike_hosts_are_not_google_registries() {
        for host in [
            "gcr.io.evil.com",
            "evilgcr.io",
            "pkg.dev.example.com",
            "xpkg.dev",
        ] {
            assert!(!Registry::parse(host).unwrap().is_google(), "{host}");
        }
        for host in [
            "asia.gcr.io",
            "europe-docker.pkg.dev",
            "docker.us-east1.rep.pkg.dev",
        ] {
            assert!(Registry::parse(host).unwrap().is_google(), "{host}");
        }
    }

    #[test]
    fn registry_lists_are_checked() {
        assert_eq!(
            parse_registry_list("us-docker.pkg.dev, https://eu.gcr.io,us-docker.pkg.dev").unwrap(),
            ["us-docker.pkg.dev", "eu.gcr.io"]
        );
        for bad in ["", ",", "gcr.io/path", "https://gcr.io/v2/", "a b", "x:y"] {
            assert!(parse_registry_list(bad).is_err(), "{bad:?}");
        }
    }
}
