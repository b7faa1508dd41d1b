//! `gemauth git-credential`: the gitcredentials(7) helper protocol for Google-hosted Git
//! repositories. A token goes only to Google's Git hosts and the hosts named with `--host`.

use std::collections::HashMap;

use super::report::Result;
use crate::cli::GitCredentialArgs;

use super::helpers::{self, is_loopback, split_port};

/// The user name sent with the token (as the password) to Google's Git hosts.
pub(crate) const USERNAME: &str = "oauth2accesstoken";
/// `*.googlesource.com` takes any user name that begins with `git-`, as gcloud sends.
pub(crate) const GOOGLESOURCE_USERNAME: &str = "git-account";

const TOOL: &str = "git";

pub(crate) fn credential(args: GitCredentialArgs) -> Result<()> {
    let allowed = args
        .hosts
        .iter()
        .map(|h| HostPattern::parse(h))
        .collect::<Result<Vec<_>>>()?;
    match args.action.as_str() {
        "get" => get(&args, &allowed),
        // Tokens are obtained on demand: nothing to store or erase. Other actions are ignored,
        // as gitcredentials(7) asks of helpers.
        action => {
            tracing::debug!(action, "nothing to do");
            helpers::read_lines(TOOL).map(drop)
        }
    }
}

fn get(args: &GitCredentialArgs, allowed: &[HostPattern]) -> Result<()> {
    let request = parse_request(&helpers::read_lines(TOOL)?)?;
    let protocol = request.get("protocol").map(String::as_str).unwrap_or("");
    let Some(host) = request.get("host") else {
        tracing::debug!("no host in the request: no credentials");
        return Ok(());
    };
    let Some(username) = username_for(protocol, host, allowed) else {
        tracing::debug!(
            protocol,
            host = %crate::error::sanitize(host),
            "not a Google Git host over https, nor named with --host: no credentials"
        );
        return Ok(());
    };
    let token = helpers::token(args.credential_file.clone(), args.scopes.as_deref(), None)?;
    super::print_stdout(&format!(
        "username={username}\npassword={}\npassword_expiry_utc={}",
        token.access_token.expose(),
        token.expires_at
    ))
}

/// The request's attributes: `key=value` lines (the last value of a key wins; `key[]` lists
/// are kept as their last value, which nothing here reads).
fn parse_request(lines: &[String]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for line in lines {
        let Some((key, value)) = line.split_once('=') else {
            return Err(helpers::input_error(
                TOOL,
                format!(
                    "expected key=value lines, got {:?}",
                    crate::error::sanitize(&line.chars().take(100).collect::<String>())
                ),
            ));
        };
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// The user name to send with a token to `host` over `protocol`, or `None` when no token may
/// go there: Google's Git hosts over https, the `--host` ones over https (or plain http on
/// this machine only).
fn username_for(protocol: &str, host: &str, allowed: &[HostPattern]) -> Option<&'static str> {
    let host = host.to_ascii_lowercase();
    let name = split_port(&host)?;
    let named = allowed.iter().any(|p| p.matches(&host, name));
    let https = protocol == "https";
    if !(https || (protocol == "http" && named && is_loopback(name))) {
        return None;
    }
    if name == "googlesource.com" || name.ends_with(".googlesource.com") {
        return Some(GOOGLESOURCE_USERNAME);
    }
    let google = name == "source.developers.google.com" || name.ends_with(".sourcemanager.dev");
    (google || named).then_some(USERNAME)
}

/// A `--host` value: `name`, `name:port` or `*.suffix`.
#[derive(Debug)]
struct HostPattern {
    text: String,
}

impl HostPattern {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim().to_ascii_lowercase();
        let body = text.strip_prefix("*.").unwrap_or(&text);
        if split_port(body).is_none() || (text.starts_with("*.") && body.contains(':')) {
            return Err(crate::error::Error::Usage(format!(
                "--host {:?} is not a host name (e.g. git.example.com, *.example.com, 127.0.0.1:8080)",
                crate::error::sanitize(&text)
            ))
            .into());
        }
        Ok(HostPattern { text })
    }

    /// `host_port` as git sends it (lower case), and its host alone.
    fn matches(&self, host_port: &str, name: &str) -> bool {
        if let Some(suffix) = self.text.strip_prefix("*.") {
            return name
                .strip_suffix(suffix)
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1);
        }
        self.text == host_port || self.text == name
    }
}

/// For `status`: git's `credential.*.helper` entries that run gemauth (from every scope git
/// reads here; nothing when git is not installed).
pub(crate) fn configured() -> Vec<String> {
    let output = std::process::Command::new("git")
        .args([
            "config",
            "--null",
            "--get-regexp",
            r"^credential\..*helper$",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .split('\0')
        .filter_map(|entry| entry.split_once('\n'))
        .filter(|(_, value)| value.contains("gemauth"))
        .map(|(key, value)| format!("git: {key} = {}", crate::error::sanitize(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(hosts: &[&str]) -> Vec<HostPattern> {
        hosts
            .iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect()
    }

    #[test]
    fn google_hosts_get_a_token_over_https_only() {
        let none = patterns(&[]);
        for (protocol, host, expected) in [
            ("https", "source.developers.google.com", Some(USERNAME)),
            ("https", "SOURCE.developers.google.com", Some(USERNAME)),
            ("https", "us-central1-git.sourcemanager.dev", Some(USERNAME)),
            (
                "https",
                "chromium.googlesource.com",
                Some(GOOGLESOURCE_USERNAME),
            ),
            ("https", "googlesource.com", Some(GOOGLESOURCE_USERNAME)),
            ("http", "source.developers.google.com", None),
            ("", "source.developers.google.com", None),
            ("https", "github.com", None),
            ("https", "source.developers.google.com.evil.com", None),
            ("https", "evilgooglesource.com", None),
            ("https", "sourcemanager.dev.evil.com", None),
            ("https", "127.0.0.1:8080", None),
        ] {
            assert_eq!(
                username_for(protocol, host, &none),
                expected,
                "{protocol}://{host}"
            );
        }
    }

    #[test]
    fn named_hosts_match_by_name_port_or_suffix() {
        let named = patterns(&["127.0.0.1", "git.example.com:8443", "*.corp.example"]);
        for (protocol, host, expected) in [
            ("http", "127.0.0.1:8080", Some(USERNAME)),
            ("https", "127.0.0.1", Some(USERNAME)),
            ("https", "git.example.com:8443", Some(USERNAME)),
            ("https", "git.example.com", None),
            ("https", "git.example.com:443", None),
            ("http", "git.example.com:8443", None),
            ("https", "a.corp.example", Some(USERNAME)),
            ("https", "a.b.corp.example:99", Some(USERNAME)),
            ("https", "corp.example", None),
            ("https", "xcorp.example", None),
            ("http", "127.0.0.2", None),
        ] {
            assert_eq!(
                username_for(protocol, host, &named),
                expected,
                "{protocol}://{host}"
            );
        }
        for bad in ["", "a b", "*.", "*.x:80", "x:y", "https://x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_are_key_value_lines() {
        let lines: Vec<String> = ["protocol=https", "host=a", "wwwauth[]=Basic realm=\"x\""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let request = parse_request(&lines).unwrap();
        assert_eq!(request["host"], "a");
        assert_eq!(request["wwwauth[]"], "Basic realm=\"x\"");
        assert!(parse_request(&["garbage".to_string()]).is_err());
    }
}
