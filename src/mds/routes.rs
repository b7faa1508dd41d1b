//! The metadata paths the client libraries use and their exact formats, as GCE serves them:
//! directory listings (one entry a line, sub-directories with a trailing `/`), `?recursive=true`
//! JSON, `?alt=json|text`, 301 to the trailing-slash form of a directory, 404 for anything else.

use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode, header};
use serde_json::{Value as Json, json};

use super::refresh::{Cache, Failure};
use super::source::{IdTokenFormat, IdTokenRequest, Identity, SourceError, TokenSource};

/// `Content-Type` of GCE's text answers (values and listings).
const TEXT: &str = "application/text";
const JSON: &str = "application/json";
/// `Content-Type` of the server's own error messages.
const PLAIN: &str = "text/plain; charset=utf-8";

/// Most query parameters a request may carry.
const MAX_PARAMS: usize = 16;
/// Most scopes a token request may name, and the longest scope.
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_LEN: usize = 256;

pub(super) type Body = Full<Bytes>;

/// What the routes need.
pub(super) struct Routes<S> {
    pub cache: Arc<Cache<S>>,
    /// Scopes of `token` without `?scopes=` (sorted, no duplicates).
    pub default_scopes: Vec<String>,
    /// `--project`: overrides the source's project ID.
    pub project_id: Option<String>,
}

/// `?alt=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alt {
    Json,
    Text,
}

#[derive(Debug, Default)]
struct Query {
    recursive: bool,
    alt: Option<Alt>,
    params: Vec<(String, String)>,
}

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    /// `/`
    Root,
    /// `/computeMetadata/`
    ComputeMetadata,
    /// `/computeMetadata/v1/`
    V1,
    Instance,
    ServiceAccounts,
    Account(String),
    AccountLeaf(String, Leaf),
    Project,
    ProjectId,
    NumericProjectId,
    Universe,
    UniverseDomain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Aliases,
    Email,
    Identity,
    Scopes,
    Token,
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(
            self,
            Node::Root
                | Node::ComputeMetadata
                | Node::V1
                | Node::Instance
                | Node::ServiceAccounts
                | Node::Account(_)
                | Node::Project
                | Node::Universe
        )
    }
}

/// Maps a decoded path (segments without the trailing slash) to a node.
fn resolve(segments: &[String]) -> Option<Node> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        [] => Node::Root,
        ["computeMetadata"] => Node::ComputeMetadata,
        ["computeMetadata", "v1", rest @ ..] => match rest {
            [] => Node::V1,
            ["instance"] => Node::Instance,
            ["instance", "service-accounts"] => Node::ServiceAccounts,
            ["instance", "service-accounts", account] => Node::Account(account.to_string()),
            ["instance", "service-accounts", account, leaf] => {
                let leaf = match *leaf {
                    "aliases" => Leaf::Aliases,
                    "email" => Leaf::Email,
                    "identity" => Leaf::Identity,
                    "scopes" => Leaf::Scopes,
                    "token" => Leaf::Token,
                    _ => return None,
                };
                Node::AccountLeaf(account.to_string(), leaf)
            }
            ["project"] => Node::Project,
            ["project", "project-id"] => Node::ProjectId,
            ["project", "numeric-project-id"] => Node::NumericProjectId,
            ["universe"] => Node::Universe,
            ["universe", "universe-domain"] => Node::UniverseDomain,
            _ => return None,
        },
        _ => return None,
    })
}

/// Splits and percent-decodes a path; `None` for an empty segment (`//`) or a segment that
/// decodes to something no metadata key contains.
fn segments(path: &str) -> Option<(Vec<String>, bool)> {
    let rest = path.strip_prefix('/')?;
    let trailing = rest.ends_with('/') || rest.is_empty();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some((Vec::new(), true));
    }
    let mut out = Vec::new();
    for raw in rest.split('/') {
        let seg = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned();
        if seg.is_empty() || seg.contains('/') || seg.chars().any(char::is_control) {
            return None;
        }
        out.push(seg);
    }
    Some((out, trailing))
}

fn parse_query(query: Option<&str>) -> Result<Query, String> {
    let mut q = Query::default();
    let Some(query) = query else {
        return Ok(q);
    };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if q.params.len() == MAX_PARAMS {
            return Err("Too many query parameters.".into());
        }
        q.params.push((k.into_owned(), v.into_owned()));
    }
    if let Some(v) = q.get("recursive") {
        q.recursive = match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" | "" => false,
            _ => return Err("Invalid value for recursive: use true or false.".into()),
        };
    }
    if let Some(v) = q.get("alt") {
        q.alt = Some(match v.to_ascii_lowercase().as_str() {
            "json" => Alt::Json,
            "text" => Alt::Text,
            _ => return Err("Invalid value for alt: use json or text.".into()),
        });
    }
    if q.get("wait_for_change")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err("wait_for_change is not supported by this metadata server \
                    (gemauth metadata-server); its values change only with the credential."
            .into());
    }
    Ok(q)
}

impl<S: TokenSource> Routes<S> {
    /// Answers one checked GET request.
    pub(super) async fn answer(&self, path: &str, query: Option<&str>) -> Response<Body> {
        let Some((segs, trailing)) = segments(path) else {
            return not_found();
        };
        let Some(node) = resolve(&segs) else {
            return not_found();
        };
        if node.is_dir() && !trailing {
            return redirect(path, query);
        }
        if !node.is_dir() && trailing {
            return not_found();
        }
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
        };
        match self.serve(node, &q).await {
            Ok(response) => response,
            Err(failure) => failure_response(&failure),
        }
    }

    async fn serve(&self, node: Node, q: &Query) -> Result<Response<Body>, Failure> {
        if node.is_dir() {
            if q.recursive {
                if q.alt == Some(Alt::Text) {
                    return Ok(error(
                        StatusCode::BAD_REQUEST,
                        "recursive=true with alt=text is not supported by this metadata \
                         server: leave out alt (JSON).",
                    ));
                }
                let tree = self.tree(&node).await?;
                return Ok(json_response(&tree));
            }
            let entries = self.listing(&node).await?;
            return Ok(match q.alt {
                Some(Alt::Json) => json_response(&json!(entries)),
                _ => text(entries.iter().map(|e| format!("{e}\n")).collect()),
            });
        }
        match node {
            Node::AccountLeaf(account, leaf) => self.account_leaf(&account, leaf, q).await,
            Node::ProjectId => {
                let identity = self.identity().await?;
                Ok(match identity.project_id {
                    Some(id) => value(q, json!(id), id),
                    None => not_found(),
                })
            }
            Node::NumericProjectId => {
                let identity = self.identity().await?;
                Ok(match identity.numeric_project_id {
                    Some(n) => value(q, json!(n), n.to_string()),
                    None => not_found(),
                })
            }
            Node::UniverseDomain => {
                let identity = self.identity().await?;
                Ok(match identity.universe_domain {
                    Some(d) => value(q, json!(d), d),
                    None => not_found(),
                })
            }
            _ => Ok(not_found()),
        }
    }

    /// The identity, with `--project` applied.
    async fn identity(&self) -> Result<Identity, Failure> {
        let mut identity = self.cache.identity().await?;
        if let Some(project) = &self.project_id
            && identity.project_id.as_ref() != Some(project)
        {
            // Another project's number would be wrong for this one.
            identity.project_id = Some(project.clone());
            identity.numeric_project_id = None;
        }
        Ok(identity)
    }

    /// The account a path names: `default` or the account's email; `None` for another account.
    async fn account(&self, name: &str) -> Result<Option<Identity>, Failure> {
        let identity = self.identity().await?;
        let matches = name == "default"
            || identity
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(name));
        Ok(matches.then_some(identity))
    }

    async fn account_leaf(
        &self,
        account: &str,
        leaf: Leaf,
        q: &Query,
    ) -> Result<Response<Body>, Failure> {
        // Tokens for `default` need no identity lookup: that is every client's common path.
        if account != "default" && self.account(account).await?.is_none() {
            return Ok(not_found());
        }
        match leaf {
            Leaf::Token => self.token(q).await,
            Leaf::Identity => self.id_token(q).await,
            Leaf::Email => {
                let email = email_of(&self.identity().await?);
                Ok(value(q, json!(email), email))
            }
            Leaf::Aliases => Ok(lines(q, &["default".to_string()])),
            Leaf::Scopes => Ok(lines(q, &self.scopes())),
        }
    }

    /// The scopes of the default token: what the cached token carries when the source said so,
    /// else the configured ones.
    fn scopes(&self) -> Vec<String> {
        self.cache
            .peek_access_scopes(&self.default_scopes)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.default_scopes.clone())
    }

    async fn token(&self, q: &Query) -> Result<Response<Body>, Failure> {
        let scopes = match q.get("scopes") {
            Some(spec) => match normalize_scopes(spec) {
                Ok(s) if s.is_empty() => self.default_scopes.clone(),
                Ok(s) => s,
                Err(reason) => return Ok(error(StatusCode::BAD_REQUEST, &reason)),
            },
            None => self.default_scopes.clone(),
        };
        let token = self.cache.access_token(scopes).await?;
        let expires_in = seconds_left(token.expires_at);
        let body = json!({
            "access_token": token.token.expose(),
            "expires_in": expires_in,
            "token_type": "Bearer",
        });
        Ok(json_response(&body))
    }

    async fn id_token(&self, q: &Query) -> Result<Response<Body>, Failure> {
        let audience = q.get("audience").unwrap_or_default();
        if audience.is_empty() {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "non-empty audience parameter required",
            ));
        }
        let format = match q.get("format").map(str::to_ascii_lowercase).as_deref() {
            None | Some("standard") => IdTokenFormat::Standard,
            Some("full") => IdTokenFormat::Full,
            Some(_) => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "Invalid value for format: use standard or full.",
                ));
            }
        };
        let licenses = match q.get("licenses").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "Invalid value for licenses: use TRUE or FALSE.",
                ));
            }
        };
        let request = IdTokenRequest {
            audience: audience.to_string(),
            format,
            licenses,
        };
        let token = self.cache.id_token(request).await?;
        let jwt = token.token.expose().clone();
        Ok(value(q, json!(jwt), jwt))
    }

    /// A directory's entries, sub-directories with a trailing slash.
    async fn listing(&self, node: &Node) -> Result<Vec<String>, Failure> {
        let entries: Vec<String> = match node {
            Node::Root => vec!["computeMetadata/".into()],
            Node::ComputeMetadata => vec!["v1/".into()],
            Node::V1 => vec!["instance/".into(), "project/".into(), "universe/".into()],
            Node::Instance => vec!["service-accounts/".into()],
            Node::ServiceAccounts => {
                let identity = self.identity().await?;
                let mut entries = vec!["default/".to_string()];
                entries.extend(identity.email.map(|e| format!("{e}/")));
                entries
            }
            Node::Account(name) => {
                if name != "default" && self.account(name).await?.is_none() {
                    return Err(Failure::NotFound);
                }
                ["aliases", "email", "identity", "scopes", "token"]
                    .map(String::from)
                    .to_vec()
            }
            Node::Project => {
                let identity = self.identity().await?;
                let mut entries = Vec::new();
                if identity.numeric_project_id.is_some() {
                    entries.push("numeric-project-id".to_string());
                }
                if identity.project_id.is_some() {
                    entries.push("project-id".to_string());
                }
                entries
            }
            Node::Universe => {
                let identity = self.identity().await?;
                identity
                    .universe_domain
                    .map(|_| "universe-domain".to_string())
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(entries)
    }

    /// A directory as `?recursive=true` JSON (keys in GCE's camelCase; tokens are never part of
    /// it).
    async fn tree(&self, node: &Node) -> Result<Json, Failure> {
        Ok(match node {
            Node::Root => json!({ "computeMetadata": { "v1": self.v1().await? } }),
            Node::ComputeMetadata => json!({ "v1": self.v1().await? }),
            Node::V1 => self.v1().await?,
            Node::Instance => self.instance().await?,
            Node::ServiceAccounts => self.service_accounts().await?,
            Node::Account(name) => match self.account(name).await? {
                Some(identity) => self.account_json(&identity),
                None => return Err(Failure::NotFound),
            },
            Node::Project => project_json(&self.identity().await?),
            Node::Universe => universe_json(&self.identity().await?),
            _ => return Err(Failure::NotFound),
        })
    }

    async fn v1(&self) -> Result<Json, Failure> {
        let identity = self.identity().await?;
        Ok(json!({
            "instance": self.instance().await?,
            "project": project_json(&identity),
            "universe": universe_json(&identity),
        }))
    }

    async fn instance(&self) -> Result<Json, Failure> {
        Ok(json!({ "serviceAccounts": self.service_accounts().await? }))
    }

    async fn service_accounts(&self) -> Result<Json, Failure> {
        let identity = self.identity().await?;
        let account = self.account_json(&identity);
        let mut map = serde_json::Map::new();
        map.insert("default".into(), account.clone());
        if let Some(email) = identity.email {
            map.insert(email, account);
        }
        Ok(Json::Object(map))
    }

    fn account_json(&self, identity: &Identity) -> Json {
        json!({
            "aliases": ["default"],
            "email": email_of(identity),
            "scopes": self.scopes(),
        })
    }
}

fn project_json(identity: &Identity) -> Json {
    let mut map = serde_json::Map::new();
    if let Some(n) = identity.numeric_project_id {
        map.insert("numericProjectId".into(), json!(n));
    }
    if let Some(id) = &identity.project_id {
        map.insert("projectId".into(), json!(id));
    }
    Json::Object(map)
}

fn universe_json(identity: &Identity) -> Json {
    let mut map = serde_json::Map::new();
    if let Some(domain) = &identity.universe_domain {
        map.insert("universeDomain".into(), json!(domain));
    }
    Json::Object(map)
}

/// The account's email, or the alias `default` when the source does not know it.
fn email_of(identity: &Identity) -> String {
    identity.email.clone().unwrap_or_else(|| "default".into())
}

/// `?scopes=a,b`: trimmed, without empties and duplicates, sorted (one cache key per set).
fn normalize_scopes(spec: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if scope.len() > MAX_SCOPE_LEN || !scope.chars().all(|c| c.is_ascii_graphic()) {
            return Err("Invalid scope in the scopes parameter.".into());
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if scopes.len() > MAX_SCOPES {
        return Err(format!("At most {MAX_SCOPES} scopes may be requested."));
    }
    scopes.sort();
    Ok(scopes)
}

/// Whole seconds until `expires_at` (what GCE's `expires_in` is).
fn seconds_left(expires_at: SystemTime) -> u64 {
    expires_at
        .duration_since(SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A single value: text as is, or JSON with `alt=json`.
fn value(q: &Query, as_json: Json, as_text: String) -> Response<Body> {
    match q.alt {
        Some(Alt::Json) => json_response(&as_json),
        _ => text(as_text),
    }
}

/// A list value (`scopes`, `aliases`): one a line, or a JSON array with `alt=json`.
fn lines(q: &Query, items: &[String]) -> Response<Body> {
    match q.alt {
        Some(Alt::Json) => json_response(&json!(items)),
        _ => text(items.iter().map(|i| format!("{i}\n")).collect()),
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn text(body: String) -> Response<Body> {
    respond(StatusCode::OK, TEXT, body)
}

fn json_response(value: &Json) -> Response<Body> {
    respond(StatusCode::OK, JSON, value.to_string())
}

/// An error answer with a one-line reason.
pub(super) fn error(status: StatusCode, reason: &str) -> Response<Body> {
    respond(
        status,
        PLAIN,
        format!("{}\n", crate::error::sanitize(reason)),
    )
}

fn not_found() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "Not found: no such metadata key.")
}

/// 301 to the directory's trailing-slash form, keeping the query (as GCE does; gsutil and Node's
/// `instance` detection request rely on it). A relative Location: the Host header is not echoed.
fn redirect(path: &str, query: Option<&str>) -> Response<Body> {
    let location = match query {
        Some(q) => format!("{path}/?{q}"),
        None => format!("{path}/"),
    };
    let mut response = respond(StatusCode::MOVED_PERMANENTLY, PLAIN, format!("{path}/\n"));
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn failure_response(failure: &Failure) -> Response<Body> {
    let status = match failure {
        Failure::NotFound => return not_found(),
        // The source's own sentence, as it wrote it.
        Failure::Source(SourceError::BadRequest(reason)) => {
            return error(StatusCode::BAD_REQUEST, reason);
        }
        Failure::Source(_) | Failure::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let text = failure.to_string();
    let mut chars = text.chars();
    let mut sentence: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .collect();
    sentence.push_str(chars.as_str());
    if matches!(failure, Failure::Timeout(_)) {
        sentence.push_str("; try again.");
    }
    error(status, &sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str) -> Option<(Node, bool)> {
        let (segs, trailing) = segments(path)?;
        resolve(&segs).map(|n| (n, trailing))
    }

    #[test]
    fn paths_resolve_as_on_gce() {
        assert_eq!(node("/"), Some((Node::Root, true)));
        assert_eq!(node("/computeMetadata/v1"), Some((Node::V1, false)));
        assert_eq!(
            node(
                "/computeMetadata/v1/instance/service-accounts/sa%40p.iam.gserviceaccount.com/token"
            ),
            Some((
                Node::AccountLeaf("sa@p.iam.gserviceaccount.com".into(), Leaf::Token),
                false
            ))
        );
        assert_eq!(node("/computeMetadata/v1//instance/"), None);
        assert_eq!(
            node("/computeMetadata/v1/instance/service-accounts/a%2Fb/"),
            None
        );
        assert_eq!(node("/computeMetadata/v1/instance/zone"), None);
        assert_eq!(node("/computeMetadata/v2/"), None);
        assert_eq!(node("relative"), None);
    }

    #[test]
    fn scopes_are_normalized_and_bounded() {
        assert_eq!(
            normalize_scopes(" b , a,,b ").unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(normalize_scopes(",").unwrap(), Vec::<String>::new());
        assert!(normalize_scopes("a b").is_err());
        assert!(normalize_scopes(&"x".repeat(300)).is_err());
        let many: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        assert!(normalize_scopes(&many.join(",")).is_err());
    }

    #[test]
    fn queries_are_validated() {
        assert!(parse_query(Some("recursive=TRUE")).unwrap().recursive);
        assert_eq!(parse_query(Some("alt=json")).unwrap().alt, Some(Alt::Json));
        assert!(parse_query(Some("alt=xml")).is_err());
        assert!(parse_query(Some("recursive=maybe")).is_err());
        assert!(parse_query(Some("wait_for_change=true")).is_err());
        let many = (0..20)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(parse_query(Some(&many)).is_err());
    }
}
