//! Pure rules, with no I/O and no dependency on the rest of the crate: Google's endpoints and
//! defaults, which endpoints may be used, scopes, universe domains, project IDs, what counts as a
//! usable token, and the cleaning of text that came from outside.

use url::Url;

/// Google's OAuth 2.0 token endpoint, used when a credential file names none (gcloud's files).
pub(crate) const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google's OAuth 2.0 revocation endpoint (RFC 7009).
pub(crate) const GOOGLE_REVOKE_URI: &str = "https://oauth2.googleapis.com/revoke";
/// The universe (domain) of Google's public cloud.
pub(crate) const DEFAULT_UNIVERSE: &str = "googleapis.com";
/// The scope used when a caller names none (and for the source of an impersonation).
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The prefix of Google's scope URLs; short scope names are completed with it.
const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
/// Scopes requested when `--scopes` is not given.
pub(crate) const DEFAULT_SCOPES: &[&str] = &[
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/generative-language.retriever",
];
/// Longest lifetime gemauth believes of any token (a week); Google's last an hour.
pub(crate) const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Lifetime of Google's access tokens, and the default asked of IAM Credentials.
pub(crate) const HOUR_SECS: u64 = 3600;

/// An endpoint that may not be used, and why; shown without any user name or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointRefused {
    /// The field that named it (`token_uri`, …).
    pub(crate) name: &'static str,
    /// The URL as shown (credentials and query stripped, control characters removed); empty
    /// when the text is not a URL.
    pub(crate) url: String,
    /// Why it was refused.
    pub(crate) reason: String,
}

/// Input that breaks a rule (a scope, a project ID): the one-line reason, for a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) String);

/// The one endpoint policy: https, or plain http on a loopback host (emulators and tests); no
/// user name or password in the URL.
pub(crate) fn endpoint(name: &'static str, raw: &str) -> Result<Url, EndpointRefused> {
    // The URL is shown in the error without any user name, password or query it carries; text
    // that is not a URL is not shown at all (it could be anything, a secret pasted there too).
    let shown = match Url::parse(raw) {
        Ok(u) => sanitize(&endpoint_name(&u)),
        Err(_) => String::new(),
    };
    let refused = |reason: &str| EndpointRefused {
        name,
        url: shown.clone(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw).map_err(|e| refused(&format!("not a valid URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("it must not carry a user name or password"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(refused(
            "plain http is only allowed for 127.0.0.1, [::1] and localhost",
        )),
        _ => Err(refused("it must be an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The token endpoint of a file that may name one (`token_uri`): the file's, else Google's.
pub(crate) fn token_uri(from_file: Option<&str>) -> Result<Url, EndpointRefused> {
    endpoint("token_uri", from_file.unwrap_or(GOOGLE_TOKEN_URI))
}

/// The revocation endpoint of a file that may name one (`revoke_uri`): the file's, else Google's.
pub(crate) fn revoke_uri(from_file: Option<&str>) -> Result<Url, EndpointRefused> {
    endpoint("revoke_uri", from_file.unwrap_or(GOOGLE_REVOKE_URI))
}

/// The universe domain a file names, else Google's public cloud.
pub(crate) fn universe_domain(from_file: Option<&str>) -> &str {
    from_file.unwrap_or(DEFAULT_UNIVERSE)
}

/// Names an endpoint in messages and logs: without its query string (which could carry
/// anything) and without any user name or password.
pub(crate) fn endpoint_name(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Environment variable: hosts, besides Google's, that may receive secrets (exact names,
/// separated by commas or spaces), for an organisation's own endpoints and proxies.
pub(crate) const ENV_TRUSTED_HOSTS: &str = "GEMAUTH_TRUSTED_HOSTS";
/// The host of Google's authorization page (`auth_uri`; older files name its token and
/// revocation endpoints too).
pub(crate) const GOOGLE_ACCOUNTS_HOST: &str = "accounts.google.com";

/// The hosts listed in [`ENV_TRUSTED_HOSTS`]: exact names (lowercase, without a final dot); a
/// listed domain does not trust the hosts under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedHosts(Vec<String>);

impl TrustedHosts {
    /// Reads the variable's value (none: no host is trusted beyond Google's).
    pub(crate) fn parse(value: Option<&str>) -> Self {
        let hosts = value
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(normal_host)
            .filter(|h| !h.is_empty())
            .collect();
        TrustedHosts(hosts)
    }

    fn contains(&self, host: &str) -> bool {
        self.0.iter().any(|h| h == host)
    }
}

/// A host as compared: lowercase, without brackets around an IPv6 address or a final dot.
fn normal_host(host: &str) -> String {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// A universe domain that can vouch for the hosts under it: a DNS name of at least two labels
/// of letters, digits and hyphens, not an IP address (so that `com` or `1.2.3.4` trusts
/// nothing).
fn universe_suffix(universe_domain: Option<&str>) -> Option<String> {
    let domain = normal_host(universe_domain?);
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    valid.then_some(domain)
}

fn equal_or_under(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
}

/// The one rule for where a secret (a refresh token, a client secret, a code, a verifier, an
/// assertion, a subject token, a bearer token) may be sent: an https host equal to or under
/// `googleapis.com`, or under the credential's universe domain when it names one,
/// `accounts.google.com` (Google's authorization page, and the endpoints older files name), a
/// loopback address (127.0.0.0/8, ::1, localhost; the only hosts where plain http is allowed), or
/// a host listed exactly in [`ENV_TRUSTED_HOSTS`]. Anything else is refused with its host (as
/// shown: lowercase, no user name or password).
pub(crate) fn may_receive_secrets(
    url: &Url,
    universe_domain: Option<&str>,
    trusted: &TrustedHosts,
) -> Result<(), String> {
    let host = normal_host(url.host_str().unwrap_or_default());
    let refused = || Err(sanitize(&host));
    if !url.username().is_empty() || url.password().is_some() || host.is_empty() {
        return refused();
    }
    let loopback = is_loopback(url);
    let allowed = match url.scheme() {
        "http" => loopback,
        "https" => {
            loopback
                || equal_or_under(&host, DEFAULT_UNIVERSE)
                || host == GOOGLE_ACCOUNTS_HOST
                || universe_suffix(universe_domain).is_some_and(|u| equal_or_under(&host, &u))
                || trusted.contains(&host)
        }
        _ => false,
    };
    if allowed { Ok(()) } else { refused() }
}

/// Expands `--scopes` (comma-separated; short names get Google's prefix) into full scope URLs;
/// none means the default scopes.
pub(crate) fn resolve_scopes(spec: Option<&str>) -> Result<Vec<String>, Invalid> {
    let Some(spec) = spec else {
        return Ok(DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    };
    let mut scopes: Vec<String> = Vec::new();
    for part in spec
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let full = expand_scope(part)?;
        if !scopes.contains(&full) {
            scopes.push(full);
        }
    }
    if scopes.is_empty() {
        return Err(Invalid("--scopes names no scope".into()));
    }
    Ok(scopes)
}

fn expand_scope(scope: &str) -> Result<String, Invalid> {
    if scope.contains("://") {
        return match Url::parse(scope) {
            Ok(u) if u.scheme() == "https" => Ok(scope.to_string()),
            _ => Err(Invalid(format!("scope {scope:?} is not an https URL"))),
        };
    }
    if matches!(scope, "openid" | "email" | "profile") {
        return Ok(scope.to_string());
    }
    let valid = scope
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    if !valid || scope.starts_with('/') {
        return Err(Invalid(format!(
            "scope {scope:?} is neither a URL nor a short name like cloud-platform"
        )));
    }
    Ok(format!("{SCOPE_PREFIX}{scope}"))
}

/// True when `granted` covers `requested`, treating Google's aliases (`email` and
/// `…/auth/userinfo.email`, `profile` and `…/auth/userinfo.profile`) as the same scope.
pub(crate) fn scope_granted(requested: &str, granted: &[String]) -> bool {
    let canon = |s: &str| -> String {
        match s {
            "email" => format!("{SCOPE_PREFIX}userinfo.email"),
            "profile" => format!("{SCOPE_PREFIX}userinfo.profile"),
            other => other.to_string(),
        }
    };
    let want = canon(requested);
    granted.iter().any(|g| canon(g) == want)
}

/// The requested scopes that `granted` does not cover.
pub(crate) fn missing_scopes<'a>(requested: &'a [String], granted: &[String]) -> Vec<&'a str> {
    requested
        .iter()
        .filter(|s| !scope_granted(s, granted))
        .map(String::as_str)
        .collect()
}

/// Checks a project ID: lowercase letters, digits and hyphens (and the `domain.com:` prefix of
/// older projects), 6 to 63 characters in all, starting with a letter.
pub(crate) fn validate_project_id(project: &str) -> Result<(), Invalid> {
    let id = project.rsplit(':').next().unwrap_or_default();
    let valid = (6..=63).contains(&project.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(Invalid(format!(
            "{project:?} is not a Google Cloud project ID (lowercase letters, digits and hyphens, starting with a letter)"
        )))
    }
}

/// True for a usable token: non-empty visible ASCII without spaces (RFC 6750's b64token and the
/// tokens real servers issue), so that it cannot break a header or a line.
pub(crate) fn plausible_access_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64 * 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Invisible formatting characters (zero-width ones, bidirectional overrides, the byte order
/// mark), which could hide or reorder what a terminal shows.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Removes control characters (including newlines and ANSI escapes) and invisible formatting
/// characters from text that came from outside, and caps its length, so that a server cannot
/// forge lines, hide text or flood the terminal.
pub(crate) fn sanitize(text: &str) -> String {
    const MAX: usize = 500;
    let mut out = String::with_capacity(text.len().min(MAX));
    for (n, c) in text
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .enumerate()
    {
        if n == MAX {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scope_names_expand_and_duplicates_collapse() {
        let s = resolve_scopes(Some("cloud-platform, openid,cloud-platform,email")).unwrap();
        assert_eq!(
            s,
            vec![
                "https://www.googleapis.com/auth/cloud-platform",
                "openid",
                "email"
            ]
        );
        assert_eq!(resolve_scopes(None).unwrap().len(), 4);
        assert!(resolve_scopes(Some(",")).is_err());
        assert!(resolve_scopes(Some("http://x.example/a")).is_err());
        assert!(resolve_scopes(Some("bad scope!")).is_err());
    }

    #[test]
    fn endpoints_must_be_https_unless_loopback() {
        assert!(endpoint("token_uri", "https://oauth2.googleapis.com/token").is_ok());
        assert!(endpoint("token_uri", "http://127.0.0.1:8080/token").is_ok());
        assert!(endpoint("token_uri", "http://[::1]:8080/token").is_ok());
        assert!(endpoint("token_uri", "http://localhost/token").is_ok());
        assert!(endpoint("token_uri", "http://evil.example/token").is_err());
        assert!(endpoint("token_uri", "http://127.0.0.1.evil.example/token").is_err());
        assert!(endpoint("token_uri", "ftp://127.0.0.1/token").is_err());
        let e = endpoint("token_uri", "not a URL: TOPSECRET").unwrap_err();
        assert_eq!(e.url, "");
        let e = endpoint("token_uri", "https://user:TOPSECRET@example.com/").unwrap_err();
        assert!(
            !e.url.contains("TOPSECRET") && !e.url.contains("user:"),
            "{e:?}"
        );
        assert_eq!(token_uri(None).unwrap().as_str(), GOOGLE_TOKEN_URI);
        assert_eq!(revoke_uri(None).unwrap().as_str(), GOOGLE_REVOKE_URI);
        assert_eq!(universe_domain(None), DEFAULT_UNIVERSE);
    }

    fn allowed(url: &str, universe: Option<&str>, trusted: &str) -> Result<(), String> {
        let url = Url::parse(url).unwrap();
        may_receive_secrets(&url, universe, &TrustedHosts::parse(Some(trusted)))
    }

    #[test]
    fn secrets_go_only_to_google_this_machine_and_trusted_hosts() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "https://googleapis.com/x",
            "https://OAUTH2.GoogleAPIs.com./token",
            "https://sts.googleapis.com/v1/token",
            "https://iamcredentials.googleapis.com/v1/x:generateAccessToken",
            "https://accounts.google.com/o/oauth2/auth",
            "http://127.0.0.1:8080/token",
            "http://127.9.8.7/token",
            "http://[::1]:1/token",
            "http://localhost/token",
            "https://localhost/token",
        ] {
            assert_eq!(allowed(ok, None, ""), Ok(()), "{ok}");
        }
        for (bad, host) in [
            ("https://oauth2.evil.example/token", "oauth2.evil.example"),
            (
                "https://oauth2.googleapis.com.evil.example/t",
                "oauth2.googleapis.com.evil.example",
            ),
            ("https://evilgoogleapis.com/revoke", "evilgoogleapis.com"),
            ("https://google.com/x", "google.com"),
            (
                "https://mail.accounts.google.com/x",
                "mail.accounts.google.com",
            ),
            (
                "http://oauth2.googleapis.com/token",
                "oauth2.googleapis.com",
            ),
            (
                "https://oauth2.googleapis.com@evil.example/",
                "evil.example",
            ),
            (
                "https://u:p@oauth2.googleapis.com/",
                "oauth2.googleapis.com",
            ),
            ("ftp://127.0.0.1/x", "127.0.0.1"),
            ("https://10.0.0.1/x", "10.0.0.1"),
        ] {
            assert_eq!(allowed(bad, None, ""), Err(host.to_string()), "{bad}");
        }
        // Listed exactly, whatever the separators and case; a listed domain is not its hosts.
        let list = " proxy.corp.example,OAUTH2.evil.example  other.example ";
        assert_eq!(allowed("https://oauth2.evil.example/t", None, list), Ok(()));
        assert!(allowed("https://x.oauth2.evil.example/t", None, list).is_err());
        assert!(allowed("https://oauth2.evil.example/t", None, "evil.example").is_err());
        assert!(allowed("http://oauth2.evil.example/t", None, list).is_err());
        assert_eq!(
            allowed("https://[2001:db8::1]/t", None, "[2001:db8::1]"),
            Ok(())
        );
        // The universe domain vouches for itself and its hosts, a bare suffix or IP for none.
        let universe = Some("universe.example");
        assert_eq!(
            allowed("https://oauth2.universe.example/t", universe, ""),
            Ok(())
        );
        assert!(allowed("https://oauth2.universe.example.evil/t", universe, "").is_err());
        assert!(allowed("https://xuniverse.example/t", universe, "").is_err());
        assert!(allowed("https://evil.com/t", Some("com"), "").is_err());
        assert!(allowed("https://1.2.3.4/t", Some("2.3.4"), "").is_err());
        assert!(allowed("https://a.evil.com/t", Some(".com"), "").is_err());
    }

    proptest::proptest! {
        /// No host outside the allowed set passes, however it is dressed up: prefixes and
        /// suffixes around Google's names, any scheme, any trusted list that does not name it.
        #[test]
        fn no_host_outside_the_allowed_set_passes(
            before in "[a-z0-9.-]{0,12}",
            core in proptest::sample::select(vec![
                "googleapis.com", "accounts.google.com", "google.com", "localhost",
                "127.0.0.1", "universe.example", "evil.example", "",
            ]),
            after in "[a-z0-9.-]{0,12}",
            scheme in proptest::sample::select(vec!["https", "http", "ftp", "wss"]),
            universe in proptest::option::of(proptest::sample::select(vec![
                "universe.example", "example", "googleapis.com", "com",
            ])),
            trusted in "[a-z.,]{0,20}",
        ) {
            let raw = format!("{scheme}://{before}{core}{after}/path");
            let Ok(url) = Url::parse(&raw) else { return Ok(()) };
            let list = TrustedHosts::parse(Some(&trusted));
            if may_receive_secrets(&url, universe, &list).is_ok() {
                let host = normal_host(url.host_str().unwrap_or_default());
                let labels: Vec<&str> = host.split('.').collect();
                let ends_with = |domain: &str| {
                    let want: Vec<&str> = domain.split('.').collect();
                    labels.len() >= want.len() && labels[labels.len() - want.len()..] == want[..]
                };
                let loopback = host == "localhost"
                    || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                let google = ends_with("googleapis.com") || host == "accounts.google.com";
                let universe_ok = universe
                    .filter(|u| u.contains('.'))
                    .is_some_and(ends_with);
                let listed = trusted
                    .split([',', ' '])
                    .any(|t| !t.is_empty() && t.trim_end_matches('.') == host);
                proptest::prop_assert!(
                    loopback || (scheme == "https" && (google || universe_ok || listed)),
                    "{raw} passed"
                );
            }
        }
    }

    #[test]
    fn endpoint_names_carry_no_user_name_password_or_query() {
        let url = Url::parse("http://reader:pw@127.0.0.1:9/token?x=secret#f").unwrap();
        assert_eq!(endpoint_name(&url), "http://127.0.0.1:9/token");
    }

    #[test]
    fn project_ids_are_checked() {
        for ok in ["my-project-123", "abcdef", "example.com:my-project"] {
            assert!(validate_project_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "short",
            "My-Project",
            "1project",
            "project-",
            "has space x",
            "a;rm -rf",
            "bad\nX-Evil: 1",
        ] {
            assert!(validate_project_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_aliases_count_as_granted() {
        let granted = vec!["https://www.googleapis.com/auth/userinfo.email".to_string()];
        assert!(scope_granted("email", &granted));
        assert!(!scope_granted("openid", &granted));
        let requested = vec!["email".to_string(), "openid".to_string()];
        assert_eq!(missing_scopes(&requested, &granted), vec!["openid"]);
    }

    #[test]
    fn sanitize_strips_control_characters_and_caps_length() {
        assert_eq!(sanitize("bad\n\x1b[31mred\r\tx"), "bad[31mredx");
        assert_eq!(sanitize(&"a".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(plausible_access_token("ya29.a-b_c"));
        for bad in ["", "a b", "a\nb", "é"] {
            assert!(!plausible_access_token(bad), "{bad:?}");
        }
    }
}
