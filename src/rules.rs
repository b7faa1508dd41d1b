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
    /// The URL as shown (credentials stripped, control characters removed).
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
    // The URL is shown in the error without any user name or password it carries.
    let shown = match Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => sanitize(raw),
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

/// Names an endpoint in messages without its query string (which could carry anything).
pub(crate) fn endpoint_name(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
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

/// Removes control characters (including newlines and ANSI escapes) from text that came from
/// outside, and caps its length, so that a server cannot forge lines or flood the terminal.
pub(crate) fn sanitize(text: &str) -> String {
    const MAX: usize = 500;
    let mut out = String::with_capacity(text.len().min(MAX));
    for (n, c) in text.chars().filter(|c| !c.is_control()).enumerate() {
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
        let e = endpoint("token_uri", "https://user:TOPSECRET@example.com/").unwrap_err();
        assert!(
            !e.url.contains("TOPSECRET") && !e.url.contains("user:"),
            "{e:?}"
        );
        assert_eq!(token_uri(None).unwrap().as_str(), GOOGLE_TOKEN_URI);
        assert_eq!(revoke_uri(None).unwrap().as_str(), GOOGLE_REVOKE_URI);
        assert_eq!(universe_domain(None), DEFAULT_UNIVERSE);
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
