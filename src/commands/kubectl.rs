//! `gemauth kubectl-credential`: kubectl's exec credential plugin for GKE, printing an
//! ExecCredential as `gke-gcloud-auth-plugin` does.

use serde::Serialize;

use crate::cli::KubectlCredentialArgs;
use crate::error::{Error, Result};

use super::helpers;

/// The variable in which kubectl describes the request (an ExecCredential).
pub(crate) const ENV_EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";
/// The API group of ExecCredential.
const API_GROUP: &str = "client.authentication.k8s.io/";
/// The version answered when kubectl does not say which it wants.
pub(crate) const DEFAULT_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredential<'a> {
    kind: &'static str,
    api_version: &'a str,
    spec: Spec,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Spec {
    /// gemauth never prompts.
    interactive: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    token: &'a str,
    expiration_timestamp: String,
}

pub(crate) fn credential(args: KubectlCredentialArgs) -> super::report::Result<()> {
    let api_version = api_version(std::env::var(ENV_EXEC_INFO).ok().as_deref())?;
    let token = helpers::token(args.credential_file, args.scopes.as_deref(), None)?;
    let credential = ExecCredential {
        kind: "ExecCredential",
        api_version: &api_version,
        spec: Spec { interactive: false },
        status: Status {
            token: token.access_token.expose(),
            expiration_timestamp: crate::store::rfc3339(token.expires_at),
        },
    };
    let text = serde_json::to_string(&credential)
        .map_err(|e| Error::Internal(format!("cannot serialize: {e}")))?;
    super::print_stdout(&text)
}

/// The ExecCredential version kubectl asked for in `KUBERNETES_EXEC_INFO`, else v1beta1.
fn api_version(exec_info: Option<&str>) -> Result<String> {
    let Some(info) = exec_info.filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_API_VERSION.to_string());
    };
    let bad = |problem: &str| Error::Usage(format!("{ENV_EXEC_INFO} {problem}"));
    let value: serde_json::Value =
        serde_json::from_str(info).map_err(|_| bad("is not valid JSON"))?;
    match value.get("apiVersion") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_API_VERSION.to_string()),
        Some(serde_json::Value::String(v))
            if v.strip_prefix(API_GROUP).is_some_and(|version| {
                !version.is_empty() && version.chars().all(|c| c.is_ascii_alphanumeric())
            }) =>
        {
            Ok(v.clone())
        }
        Some(other) => Err(bad(&format!(
            "names apiVersion {:?}, not a version of {API_GROUP}ExecCredential",
            crate::error::sanitize(&other.to_string().chars().take(100).collect::<String>())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_kubectl_else_v1beta1() {
        assert_eq!(api_version(None).unwrap(), DEFAULT_API_VERSION);
        assert_eq!(api_version(Some("")).unwrap(), DEFAULT_API_VERSION);
        assert_eq!(
            api_version(Some(
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#
            ))
            .unwrap(),
            "client.authentication.k8s.io/v1"
        );
        assert_eq!(api_version(Some("{}")).unwrap(), DEFAULT_API_VERSION);
        for bad in [
            "not json",
            r#"{"apiVersion":"v1"}"#,
            r#"{"apiVersion":"client.authentication.k8s.io/"}"#,
            r#"{"apiVersion":"client.authentication.k8s.io/v1\"}"}"#,
            r#"{"apiVersion":3}"#,
        ] {
            let err = api_version(Some(bad)).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
        }
    }
}
