//! Google's Desktop OAuth client file (`client_secret.json`, the `installed` kind), which
//! `gemauth login` signs in with.

use std::path::Path;

use serde_json::Value;
use url::Url;

use super::read_regular_file;
use crate::error::{Error, Result};
use crate::rules;
use crate::secret::Secret;

/// A Desktop ("installed") OAuth client as downloaded from the Google Cloud console.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub project_id: Option<String>,
    pub auth_uri: Url,
    pub token_uri: Url,
    pub revoke_uri: Url,
}

/// Reads and validates a client secret file. Nothing is written and no network is used.
pub(crate) fn load_client_config(path: &Path) -> Result<ClientConfig> {
    let problem = |p: String| Error::ClientSecretFile {
        path: path.to_path_buf(),
        problem: p,
    };
    let bytes = read_regular_file(path).map_err(problem)?;
    parse_client_config(path, &bytes)
}

/// Parses a client secret file's bytes; `path` is used only in error messages.
// Public for the fuzz targets only, which ignore what it returns.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
#[cfg_attr(feature = "fuzzing", allow(private_interfaces))]
pub fn parse_client_config(path: &Path, bytes: &[u8]) -> Result<ClientConfig> {
    let problem = |p: String| Error::ClientSecretFile {
        path: path.to_path_buf(),
        problem: p,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| problem(format!("is not valid JSON ({e})")))?;
    let Value::Object(top) = value else {
        return Err(problem(
            "is not an OAuth client file (expected a JSON object)".into(),
        ));
    };
    let installed = match (top.get("installed"), top.get("web")) {
        (Some(Value::Object(o)), _) => o,
        (Some(_), _) => return Err(problem("\"installed\" is not a JSON object".into())),
        (None, Some(_)) => {
            return Err(problem(
                "is for a \"Web application\" OAuth client; gemauth needs a \"Desktop app\" client"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(problem(
                "is not a Desktop OAuth client file (no \"installed\" object)".into(),
            ));
        }
    };
    let field = |name: &str| -> Result<String> {
        match installed.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(problem(format!("\"installed.{name}\" is empty"))),
            Some(_) => Err(problem(format!("\"installed.{name}\" is not a string"))),
            None => Err(problem(format!("\"installed.{name}\" is missing"))),
        }
    };
    let optional = |name: &str| -> Result<Option<String>> {
        match installed.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => field(name).map(Some),
        }
    };
    let client_id = field("client_id")?;
    let client_secret = Secret::new(field("client_secret")?);
    let auth_uri = rules::endpoint("auth_uri", &field("auth_uri")?)?;
    let token_uri = rules::endpoint("token_uri", &field("token_uri")?)?;
    let revoke_uri = rules::endpoint(
        "revoke_uri",
        &optional("revoke_uri")?.unwrap_or_else(|| rules::GOOGLE_REVOKE_URI.to_string()),
    )?;
    Ok(ClientConfig {
        client_id,
        client_secret,
        project_id: optional("project_id")?,
        auth_uri,
        token_uri,
        revoke_uri,
    })
}

impl ClientConfig {
    /// Refuses a client file whose endpoints would receive the code, the verifier or the
    /// client secret on a host the endpoint rule refuses; before the browser opens.
    pub(crate) fn check_endpoints(&self, path: &Path, env: &crate::env::Env) -> Result<()> {
        let endpoints = [
            ("auth_uri", &self.auth_uri, "https://accounts.google.com/"),
            ("token_uri", &self.token_uri, rules::GOOGLE_TOKEN_URI),
            ("revoke_uri", &self.revoke_uri, rules::GOOGLE_REVOKE_URI),
        ]
        .map(|(field, url, default)| {
            super::SecretEndpoint::new(field, url.as_str(), None, default)
        });
        super::check_endpoints(&endpoints, path, true, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_desktop_client_is_read_and_its_secret_redacted() {
        let file = serde_json::json!({"installed": {"client_id": "id.apps", "client_secret": "planted-secret",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token"}});
        let client =
            parse_client_config(Path::new("client.json"), file.to_string().as_bytes()).unwrap();
        assert_eq!(client.client_secret.expose(), "planted-secret");
        assert_eq!(client.revoke_uri.as_str(), rules::GOOGLE_REVOKE_URI);
        assert!(!format!("{client:?}").contains("planted"));
        let web = serde_json::json!({"web": {}});
        let e = parse_client_config(Path::new("c.json"), web.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("Web application"), "{e}");
    }
}
