//! The answer to an authorization request: what a redirect's query means ([`Callback`], from
//! [`parse_callback`], shared by the listener and paste mode) and how the login ends ([`Outcome`]).

use std::collections::HashMap;

use oauth2::AuthorizationCode;

use crate::error::sanitize;

/// The final result of a login attempt.
pub(crate) enum Outcome {
    Code(AuthorizationCode),
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// What one request to the loopback listener means.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub enum Callback {
    /// The redirect carrying the authorization code.
    Code(String),
    /// The redirect carrying an error (e.g. the user denied access).
    Denied {
        /// The `error` parameter (`access_denied`, …).
        error: String,
        /// The `error_description` parameter, when given.
        description: Option<String>,
    },
    /// Anything else: the listener answers with an error and keeps waiting.
    Ignored {
        /// The HTTP status of the listener's answer.
        status: u16,
        /// Why the request was not the callback.
        reason: &'static str,
    },
}

/// Interprets a request target (`/?code=…&state=…`) against the expected `state`. Only the
/// callback path `/` with exactly one matching `state` can end the login.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub fn parse_callback(target: &str, expected_state: &str) -> Callback {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/" {
        return Callback::Ignored {
            status: 404,
            reason: "This address is not part of the sign-in.",
        };
    }
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let single = |name: &str| -> std::result::Result<Option<&str>, ()> {
        match params.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(()),
        }
    };
    let stale = Callback::Ignored {
        status: 400,
        reason: "This sign-in response does not belong to the login that is waiting (missing or wrong state). Return to the terminal.",
    };
    match single("state") {
        Ok(Some(s)) if constant_time_eq(s.as_bytes(), expected_state.as_bytes()) => {}
        _ => return stale,
    }
    match (single("code"), single("error")) {
        (Err(()), _) | (_, Err(())) => Callback::Ignored {
            status: 400,
            reason: "The sign-in response repeats a parameter.",
        },
        (_, Ok(Some(error))) => Callback::Denied {
            error: sanitize(error),
            description: single("error_description")
                .ok()
                .flatten()
                .map(sanitize)
                .filter(|d| !d.is_empty()),
        },
        (Ok(Some(code)), Ok(None)) if !code.is_empty() => Callback::Code(code.to_string()),
        _ => Callback::Ignored {
            status: 400,
            reason: "The sign-in response carries no authorization code.",
        },
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_state_on_the_callback_path_counts() {
        assert_eq!(
            parse_callback("/?state=s1&code=4%2F0Ab&iss=https://x", "s1"),
            Callback::Code("4/0Ab".into())
        );
        assert!(matches!(
            parse_callback("/?state=s2&code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/favicon.ico", "s1"),
            Callback::Ignored { status: 404, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&state=s1&code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&code=c&code=d", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&code=", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert_eq!(
            parse_callback(
                "/?state=s1&error=access_denied&error_description=no%0A",
                "s1"
            ),
            Callback::Denied {
                error: "access_denied".into(),
                description: Some("no".into())
            }
        );
    }
}
