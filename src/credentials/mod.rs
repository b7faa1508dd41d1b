//! The credential model: the closed set of Application Default Credentials types
//! ([`Credential`]), the one type table, the parse dispatcher and its shared helpers, cache-key
//! composition, and what every command asks of a credential (identity, scopes, status details,
//! minting, ID-token support, the rotating field, who refused it). Each type lives in its own
//! file: `user.rs`, `service_account.rs`, `impersonated.rs`, `external.rs`, `external_user.rs`,
//! `metadata.rs`; `client.rs` reads the OAuth client file `gemauth login` signs in with, and
//! `login_config.rs` the workforce login configuration of `gemauth login --login-config`.

mod aws;
mod client;
mod external;
mod external_user;
mod impersonated;
mod login_config;
mod metadata;
mod service_account;
mod user;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::Context;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::rules::{self, sanitize};
use crate::secret::Secret;
use crate::store::{self, CachedToken};

/// The AWS instance-metadata answer parsers, for the fuzz targets and property tests.
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use aws::parse_aws_metadata_answer;
/// The client file's parser, for the fuzz targets and property tests.
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use client::parse_client_config;
pub(crate) use client::{ClientConfig, load_client_config};
pub(crate) use external::ExternalAccount;
pub(crate) use external_user::{EXTERNAL_AUTHORIZED_USER, ExternalAuthorizedUser};
pub(crate) use impersonated::{
    Acting, ImpersonatedServiceAccount, login_file, parse_service_accounts,
};
/// The login configuration's parser, for the fuzz targets and property tests.
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use login_config::parse_login_config;
pub(crate) use login_config::{
    LoginConfig, LoginConfigProblem, WORKFORCE_CLIENT_ID, load_login_config,
};
pub(crate) use metadata::Metadata;
pub(crate) use service_account::ServiceAccount;
pub(crate) use user::{AUTHORIZED_USER, AuthorizedUser, Scopes};

pub(crate) use crate::rules::{
    CLOUD_PLATFORM, DEFAULT_UNIVERSE, missing_scopes, resolve_scopes, validate_project_id,
};
pub(crate) use metadata::host as metadata_host;
pub(crate) use metadata::{ENV_METADATA_HOST, ENV_NO_GCE_CHECK, gce_check_disabled};

const IMPERSONATED: &str = "impersonated_service_account";

/// The credential types, by the `type` name Google's libraries use for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialType {
    AuthorizedUser,
    ServiceAccount,
    Impersonated,
    External,
    ExternalUser,
    /// Not a file: the metadata server of a Google Cloud machine.
    Metadata,
}

/// Parses one type's JSON object (its `type` already read).
type Parser = fn(Map<String, Value>, FileProblem) -> Result<Credential>;

/// The one type table: each type's `type` name and its parser (none: not read from a file).
const TYPES: [(CredentialType, &str, Option<Parser>); 6] = [
    (
        CredentialType::AuthorizedUser,
        AUTHORIZED_USER,
        Some(user::parse),
    ),
    (
        CredentialType::ServiceAccount,
        "service_account",
        Some(service_account::parse),
    ),
    (
        CredentialType::Impersonated,
        IMPERSONATED,
        Some(impersonated::parse),
    ),
    (
        CredentialType::External,
        "external_account",
        Some(external::parse),
    ),
    (
        CredentialType::ExternalUser,
        EXTERNAL_AUTHORIZED_USER,
        Some(external_user::parse),
    ),
    (CredentialType::Metadata, "metadata_server", None),
];

impl CredentialType {
    /// The `type` name.
    pub(crate) fn name(self) -> &'static str {
        TYPES
            .iter()
            .find(|(t, ..)| *t == self)
            .map_or("", |(_, name, _)| name)
    }
}

/// A credential: what a credential file holds (or the metadata server), ready to mint tokens.
#[derive(Debug)]
pub(crate) enum Credential {
    User(Box<AuthorizedUser>),
    ServiceAccount {
        key: Box<ServiceAccount>,
        /// The key file, named in errors about the key.
        path: PathBuf,
    },
    Impersonated {
        file: Box<ImpersonatedServiceAccount>,
        source: Box<Credential>,
    },
    External {
        config: Box<ExternalAccount>,
        /// The configuration file, named in errors about its source.
        path: PathBuf,
    },
    ExternalUser(Box<ExternalAuthorizedUser>),
    Metadata {
        host: String,
    },
}

/// What a token is wanted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// An access token with these scopes (empty: the credential's own, for a user).
    Access { scopes: Vec<String> },
    /// An ID token for this audience (empty: the OAuth client's, for a user), with the email
    /// claims where the type takes the option.
    Id {
        audience: String,
        include_email: bool,
    },
}

impl Want {
    /// An access token with these scopes.
    pub(crate) fn access(scopes: Vec<String>) -> Self {
        Want::Access { scopes }
    }
}

/// A token fresh from a server.
#[derive(Debug)]
pub(crate) enum Issued {
    /// An access token, as it will be cached.
    Access(CachedToken),
    /// An ID token, and the endpoint that issued it (named in errors about its claims).
    Id {
        endpoint: String,
        token: Secret<String>,
    },
}

impl Issued {
    /// The access token, for a call that needs one (an impersonation's source).
    pub(crate) fn access_token(&self) -> Result<&Secret<String>> {
        match self {
            Issued::Access(CachedToken {
                access_token: Some(token),
                ..
            }) => Ok(token),
            _ => Err(Error::Internal("an access token was expected".into())),
        }
    }
}

/// What one mint brought. The token is a `Result` because a refresh token can be rotated
/// before a later step fails (an impersonation whose source was refreshed): the rotated one
/// must be saved either way.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) issued: Result<Issued>,
    /// A user's new refresh token, when the server rotated it.
    pub(crate) rotated: Option<Secret<String>>,
    /// The access token that came with an ID token (a user's refresh grant), for the cache.
    pub(crate) access: Option<CachedToken>,
}

impl Minted {
    /// A token and nothing else.
    fn issued(issued: Issued) -> Self {
        Minted {
            issued: Ok(issued),
            rotated: None,
            access: None,
        }
    }
}

/// Whether, and how, a credential type gets ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdTokenSupport {
    /// Only for the OAuth client it signed in with (a user; its audience is the client ID),
    /// when the login granted `openid`.
    OwnClient { client_id: String, openid: bool },
    /// For any audience; `email_option` says whether the email claims can be asked for.
    AnyAudience { email_option: bool },
    /// None: what `status` says, the error's problem and its hint.
    Unavailable {
        status: &'static str,
        problem: &'static str,
        hint: &'static str,
    },
}

impl IdTokenSupport {
    /// What `status` says.
    pub(crate) fn describe(&self) -> String {
        match self {
            IdTokenSupport::OwnClient { openid: false, .. } => {
                "no: the login did not grant the openid scope".into()
            }
            IdTokenSupport::OwnClient { .. } => {
                "yes, for the OAuth client (audience: its client ID)".into()
            }
            IdTokenSupport::AnyAudience { .. } => "yes, for any audience (--audiences)".into(),
            IdTokenSupport::Unavailable { status, .. } => (*status).into(),
        }
    }

    /// The error for a credential that cannot have ID tokens.
    pub(crate) fn unavailable(&self) -> Error {
        match self {
            IdTokenSupport::Unavailable { problem, hint, .. } => Error::IdTokenRequest {
                problem: (*problem).into(),
                hint: (*hint).into(),
            },
            _ => Error::Internal("this credential can have ID tokens".into()),
        }
    }
}

/// What each credential type says about itself in `status` (flattened into its JSON).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Details {
    User(user::UserDetails),
    ServiceAccount(service_account::ServiceAccountDetails),
    Impersonated(impersonated::ImpersonatedDetails),
    External(external::ExternalDetails),
    ExternalUser(external_user::ExternalUserDetails),
    Metadata(metadata::MetadataDetails),
}

/// A boxed future of a mint (impersonation mints its source first: recursion).
type MintFuture<'a> = Pin<Box<dyn Future<Output = Result<Minted>> + Send + 'a>>;

impl Credential {
    /// The credential's type.
    pub(crate) fn kind(&self) -> CredentialType {
        match self {
            Credential::User(_) => CredentialType::AuthorizedUser,
            Credential::ServiceAccount { .. } => CredentialType::ServiceAccount,
            Credential::Impersonated { .. } => CredentialType::Impersonated,
            Credential::External { .. } => CredentialType::External,
            Credential::ExternalUser(_) => CredentialType::ExternalUser,
            Credential::Metadata { .. } => CredentialType::Metadata,
        }
    }

    /// The credential's `type`, as Google's libraries name it.
    pub(crate) fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// Who the tokens act as, when the file says: the account's email, the service account, or
    /// the federation audience.
    pub(crate) fn identity(&self) -> Option<String> {
        match self {
            Credential::User(user) => user.account.clone(),
            Credential::ServiceAccount { key, .. } => Some(key.client_email.clone()),
            Credential::Impersonated { file, .. } => file.identity(),
            Credential::External { config, .. } => Some(config.identity()),
            Credential::ExternalUser(user) => user.identity(),
            Credential::Metadata { .. } => None,
        }
    }

    /// The project billed for quota, as the file names it.
    pub(crate) fn quota_project(&self) -> Option<String> {
        match self {
            Credential::User(user) => user.quota_project_id.clone(),
            Credential::ServiceAccount { key, .. } => key.quota_project_id.clone(),
            Credential::Impersonated { file, .. } => file.quota_project_id.clone(),
            Credential::External { config, .. } => config.quota_project_id.clone(),
            Credential::ExternalUser(user) => user.quota_project_id.clone(),
            Credential::Metadata { .. } => None,
        }
    }

    /// Notes what the environment decides about the token beyond the file (an AWS source's
    /// keys and region), for the cache key.
    pub(crate) fn bind_environment(&mut self, env: &Env) {
        match self {
            Credential::External { config, .. } => config.bind_environment(env),
            Credential::Impersonated { source, .. } => source.bind_environment(env),
            _ => {}
        }
    }

    /// The universe domain the credential names (none: Google's, `googleapis.com`).
    pub(crate) fn universe_domain(&self) -> Option<String> {
        match self {
            Credential::User(user) => user.universe_domain.clone(),
            Credential::ServiceAccount { key, .. } => key.universe_domain.clone(),
            Credential::Impersonated { source, .. } => source.universe_domain(),
            Credential::External { config, .. } => config.universe_domain.clone(),
            Credential::ExternalUser(user) => user.universe_domain.clone(),
            Credential::Metadata { .. } => None,
        }
    }

    /// The scopes to request: for a user, those asked for must have been granted at login (and
    /// the token carries all granted ones); for a workforce user, the login's; for every other
    /// type, those asked for, by default `cloud-platform`.
    pub(crate) fn scopes(&self, requested: Option<&[String]>) -> Result<Vec<String>> {
        match (self, requested) {
            (Credential::User(user), requested) => user.scopes(requested),
            // A workforce user's token carries the scopes of the login (google-auth cannot
            // change them either).
            (Credential::ExternalUser(_), _) => Ok(Vec::new()),
            (_, Some(requested)) => Ok(requested.to_vec()),
            (_, None) => Ok(vec![CLOUD_PLATFORM.to_string()]),
        }
    }

    /// The cache key: everything that decides which token this credential gets for `scopes`,
    /// so that another credential or another login never sees it.
    pub(crate) fn cache_key(&self, scopes: &[String]) -> String {
        let mut parts: Vec<String> = match self {
            Credential::User(user) => user.key_parts(),
            Credential::ServiceAccount { key, .. } => key.key_parts(),
            Credential::Impersonated { file, source } => file.key_parts(source),
            Credential::External { config, .. } => config.key_parts(),
            Credential::ExternalUser(user) => user.key_parts(),
            Credential::Metadata { host } => vec!["metadata".into(), host.clone()],
        };
        parts.extend(scopes.iter().cloned());
        store::hex_digest(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The cache key of an ID token for `audience` (empty for a user credential, whose ID token's
    /// audience is its OAuth client): the credential's own key, with a marker that keeps ID token
    /// entries apart from access token entries, the audience and whether the email is included.
    pub(crate) fn id_token_cache_key(&self, audience: &str, include_email: bool) -> String {
        let email = if include_email { "email" } else { "" };
        store::hex_digest(&["id_token", &self.cache_key(&[]), audience, email])
    }

    /// The cache key of what `want` asks for.
    pub(crate) fn key_for(&self, want: &Want) -> String {
        match want {
            Want::Access { scopes } => self.cache_key(scopes),
            Want::Id {
                audience,
                include_email,
            } => self.id_token_cache_key(audience, *include_email),
        }
    }

    /// What `status` shows of the credential.
    pub(crate) fn details(&self) -> Details {
        match self {
            Credential::User(user) => Details::User(user.details()),
            Credential::ServiceAccount { key, .. } => Details::ServiceAccount(key.details()),
            Credential::Impersonated { file, source } => {
                Details::Impersonated(file.details(source))
            }
            Credential::External { config, .. } => Details::External(config.details()),
            Credential::ExternalUser(user) => Details::ExternalUser(user.details()),
            Credential::Metadata { host } => Details::Metadata(Metadata { host }.details()),
        }
    }

    /// Whether, and how, the credential gets ID tokens.
    pub(crate) fn id_tokens(&self) -> IdTokenSupport {
        match self {
            Credential::User(user) => user.id_tokens(),
            Credential::ServiceAccount { .. } => ServiceAccount::id_tokens(),
            Credential::Impersonated { .. } => ImpersonatedServiceAccount::id_tokens(),
            Credential::External { config, .. } => config.id_tokens(),
            Credential::ExternalUser(_) => ExternalAuthorizedUser::id_tokens(),
            Credential::Metadata { .. } => Metadata::id_tokens(),
        }
    }

    /// The field (a path of keys) of the credential file that holds a refresh token the server
    /// may rotate.
    pub(crate) fn rotating_field(&self) -> Option<Vec<&'static str>> {
        match self {
            Credential::User(_) => Some(vec![user::ROTATING_FIELD]),
            Credential::Impersonated { file, source } if file.per_call => source.rotating_field(),
            Credential::ExternalUser(_) => Some(vec![external_user::ROTATING_FIELD]),
            Credential::Impersonated { source, .. } => {
                let mut field = source.rotating_field()?;
                field.insert(0, "source_credentials");
                Some(field)
            }
            _ => None,
        }
    }

    /// Obtains a new token from the server, as `want` asks.
    pub(crate) fn mint<'a>(&'a self, ctx: &'a Context, want: &'a Want) -> MintFuture<'a> {
        Box::pin(async move {
            match self {
                Credential::User(user) => user.mint(ctx, want).await,
                Credential::ServiceAccount { key, path } => key.mint(path, ctx, want).await,
                Credential::Impersonated { file, source } => file.mint(source, ctx, want).await,
                Credential::External { config, path } => config.mint(path, ctx, want).await,
                Credential::ExternalUser(user) => user.mint(ctx, want).await,
                Credential::Metadata { host } => Metadata { host }.mint(ctx, want).await,
            }
        })
    }
}

/// An endpoint a credential file names that receives secrets: what the endpoint rule checks
/// and what `status` shows when it is not Google's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretEndpoint {
    /// The field, with its enclosing one for a nested source (`source_credentials.token_uri`).
    pub(crate) field: String,
    /// The URL as the file has it.
    pub(crate) url: String,
    /// The universe domain of the credential that names it.
    pub(crate) universe_domain: Option<String>,
    /// Google's default for the field: the whole URL, or its prefix when it ends with `/`.
    pub(crate) default: String,
}

impl SecretEndpoint {
    /// An endpoint of a credential in `universe_domain`; `default` is Google's, with `{}` for
    /// the universe's domain.
    fn new(field: &str, url: &str, universe_domain: Option<&str>, default: &str) -> Self {
        let universe = rules::universe_domain(universe_domain);
        SecretEndpoint {
            field: field.to_string(),
            url: url.to_string(),
            universe_domain: universe_domain.map(str::to_string),
            default: default.replace("{}", universe),
        }
    }

    /// Whether the file names something else than Google's default for the field.
    pub(crate) fn is_custom(&self) -> bool {
        let url = self.url.trim();
        if self.default.ends_with('/') {
            !url.starts_with(&self.default)
        } else {
            url != self.default
        }
    }

    /// The URL as shown: without a user name, a password, a query or control characters.
    pub(crate) fn shown(&self) -> String {
        match url::Url::parse(self.url.trim()) {
            Ok(url) => sanitize(&rules::endpoint_name(&url)),
            Err(_) => sanitize(&self.url),
        }
    }

    /// Applies the endpoint rule; the error names the file, the field and the host.
    fn check(&self, path: &Path, client_file: bool, trusted: &rules::TrustedHosts) -> Result<()> {
        let refused = |host: String| Error::UntrustedEndpoint {
            path: path.to_path_buf(),
            client_file,
            field: self.field.clone(),
            host,
        };
        let url = url::Url::parse(self.url.trim()).map_err(|_| refused(sanitize(&self.url)))?;
        rules::may_receive_secrets(&url, self.universe_domain.as_deref(), trusted).map_err(refused)
    }
}

/// Applies the endpoint rule to every endpoint of a file, with the hosts the environment
/// trusts ([`rules::ENV_TRUSTED_HOSTS`]).
pub(crate) fn check_endpoints(
    endpoints: &[SecretEndpoint],
    path: &Path,
    client_file: bool,
    env: &Env,
) -> Result<()> {
    let trusted = rules::TrustedHosts::parse(env.var(rules::ENV_TRUSTED_HOSTS).as_deref());
    endpoints
        .iter()
        .try_for_each(|e| e.check(path, client_file, &trusted))
}

impl Credential {
    /// Every endpoint the file names that receives a secret (none for the metadata server,
    /// whose host comes from the environment).
    pub(crate) fn secret_endpoints(&self) -> Vec<SecretEndpoint> {
        match self {
            Credential::User(user) => user.secret_endpoints(),
            Credential::ServiceAccount { key, .. } => key.secret_endpoints(),
            Credential::Impersonated { file, source } => {
                let mut all = file.secret_endpoints();
                for mut e in source.secret_endpoints() {
                    e.field = format!("source_credentials.{}", e.field);
                    all.push(e);
                }
                all
            }
            Credential::External { config, .. } => config.secret_endpoints(),
            Credential::ExternalUser(user) => user.secret_endpoints(),
            Credential::Metadata { .. } => Vec::new(),
        }
    }

    /// Refuses a credential whose file would send a secret to a host that is not Google's, this
    /// machine or trusted by the environment; before any network traffic.
    pub(crate) fn check_endpoints(&self, path: &Path, env: &Env) -> Result<()> {
        check_endpoints(&self.secret_endpoints(), path, false, env)
    }

    /// The endpoints that are not Google's default, field -> URL (as shown).
    pub(crate) fn custom_endpoints(&self) -> BTreeMap<String, String> {
        self.secret_endpoints()
            .into_iter()
            .filter(SecretEndpoint::is_custom)
            .map(|e| (e.field.clone(), e.shown()))
            .collect()
    }
}

/// Parses a credential file's bytes; `path` is used only in error messages.
// Public for the fuzz targets only, which ignore what it returns.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
#[cfg_attr(feature = "fuzzing", allow(private_interfaces))]
pub fn parse_credential_file(path: &Path, bytes: &[u8]) -> Result<Credential> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::CredentialFile {
        path: path.to_path_buf(),
        problem: format!("is not valid JSON ({e})"),
    })?;
    parse_value(path, value, None)
}

/// Builds the errors about one credential file (or its nested `source_credentials`).
#[derive(Clone, Copy)]
struct FileProblem<'a> {
    path: &'a Path,
    within: Option<&'a str>,
}

impl FileProblem<'_> {
    fn error(self, problem: String) -> Error {
        Error::CredentialFile {
            path: self.path.to_path_buf(),
            problem: match self.within {
                Some(field) => format!("{field}: {problem}"),
                None => problem,
            },
        }
    }

    fn nonempty(self, name: &str, value: &str) -> Result<()> {
        if value.trim().is_empty() {
            return Err(self.error(format!("\"{name}\" is empty")));
        }
        Ok(())
    }

    /// Reads the map as `T`; an error names the field and never quotes its value.
    fn typed<T: serde::de::DeserializeOwned>(self, map: Map<String, Value>) -> Result<T> {
        serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
            let field = e.path().to_string();
            self.error(field_problem(&field, &e.into_inner().to_string()))
        })
    }

    fn cannot_impersonate_from(self, kind: &str) -> Error {
        self.error(format!(
            "type {:?} cannot be impersonated from",
            sanitize(kind)
        ))
    }
}

/// What is wrong with a field, from serde's message, without the value serde quotes in it
/// (`invalid type: string "Authorization: Bearer …", expected a map` becomes `headers: invalid
/// type: expected a map, found a string`): a field may hold a secret, whatever its type should have been.
pub(crate) fn field_problem(field: &str, serde_message: &str) -> String {
    let field = sanitize(field);
    let named = |what: String| match field.as_str() {
        "" | "." => what,
        _ => format!("{field}: {what}"),
    };
    // serde's own wording; the expectation comes last and is the program's, never the file's.
    let expected = |rest: &str| {
        rest.rsplit_once(", expected ")
            .map(|(_, e)| sanitize(e))
            .unwrap_or_else(|| "another kind of value".into())
    };
    let found = |rest: &str| {
        const KINDS: [(&str, &str); 11] = [
            ("string", "a string"),
            ("integer", "a number"),
            ("floating point", "a number"),
            ("boolean", "a boolean"),
            ("null", "null"),
            ("unit", "null"),
            ("map", "an object"),
            ("sequence", "a list"),
            ("char", "a character"),
            ("byte array", "bytes"),
            ("newtype", "a value"),
        ];
        KINDS
            .iter()
            .find(|(k, _)| rest.starts_with(k))
            .map_or("another kind of value", |(_, name)| name)
    };
    if let Some(rest) = serde_message.strip_prefix("invalid type: ") {
        return named(format!(
            "invalid type: expected {}, found {}",
            expected(rest),
            found(rest)
        ));
    }
    if let Some(rest) = serde_message.strip_prefix("invalid value: ") {
        return named(format!("invalid value, expected {}", expected(rest)));
    }
    if let Some(rest) = serde_message.strip_prefix("unknown variant ") {
        return named(format!("unknown value, expected {}", expected(rest)));
    }
    if let Some(rest) = serde_message.strip_prefix("invalid length ") {
        return named(format!(
            "wrong number of items, expected {}",
            expected(rest)
        ));
    }
    // Names of fields, not values: `missing field `refresh_token``, `duplicate field …`.
    if serde_message.starts_with("missing field ") || serde_message.starts_with("duplicate field ")
    {
        return sanitize(serde_message);
    }
    if serde_message.starts_with("data did not match any variant") {
        return named("is not in any of the accepted forms".into());
    }
    named("has a value of the wrong kind".into())
}

/// Parses one credential from its JSON; `within` names the enclosing field for a nested source
/// (`source_credentials`), which is parsed here once, from the same value.
fn parse_value(path: &Path, value: Value, within: Option<&str>) -> Result<Credential> {
    let problem = FileProblem { path, within };
    let Value::Object(map) = value else {
        return Err(problem.error("is not a JSON object".into()));
    };
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(problem.error("\"type\" is not a string".into())),
        // google-auth's `token.json` has no type; from_authorized_user_info reads it as a user.
        None if within.is_none()
            && user::TOKEN_JSON_FIELDS.iter().all(|f| map.contains_key(*f)) =>
        {
            AUTHORIZED_USER.to_string()
        }
        None => return Err(problem.error(no_type_problem(&map, within))),
    };
    // The quota project ends up in an HTTP header: it must be a project ID.
    if let Some(Value::String(project)) = map.get("quota_project_id")
        && !project.is_empty()
        && validate_project_id(project).is_err()
    {
        // Named, not quoted: a field's value is never echoed.
        return Err(problem.error(
            "quota_project_id is not a Google Cloud project ID (lowercase letters, digits and \
             hyphens, starting with a letter)"
                .into(),
        ));
    }
    let parser = TYPES
        .iter()
        .find(|(_, name, _)| *name == kind)
        .and_then(|(_, _, parser)| *parser);
    match (parser, within) {
        (Some(parse), _) => parse(map, problem),
        (None, Some(_)) => Err(problem.cannot_impersonate_from(&kind)),
        (None, None) => Err(Error::UnsupportedCredentialType {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Why a file without `type` was not read; a file that looks like a google-auth `token.json`
/// is told what it lacks.
fn no_type_problem(map: &Map<String, Value>, within: Option<&str>) -> String {
    let fields = user::TOKEN_JSON_FIELDS;
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !map.contains_key(*f))
        .collect();
    let looks_like_token_json = missing.len() < fields.len() || map.contains_key("token");
    // The quickstart's client_secret.json where a credential belongs (an easy mix-up).
    let oauth_client = ["installed", "web"]
        .iter()
        .any(|k| map.get(*k).is_some_and(Value::is_object));
    if within.is_none() && oauth_client {
        "is an OAuth client file (client_secret.json), not a credential: sign in with it, \
         `gemauth login --client-id-file FILE`, and use the credential file that writes"
            .into()
    } else if within.is_none() && looks_like_token_json {
        format!(
            "has no \"type\" field, and is not a google-auth token.json either (it lacks {})",
            missing.join(", ")
        )
    } else {
        "has no \"type\" field".into()
    }
}

/// Reads a whole credential or client file (bounded, regular files only, never blocking),
/// refusing an empty one.
fn read_regular_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let bytes = store::read_bounded(path)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    Ok(bytes)
}

/// Reads a credential file's bytes, with errors that name the file.
pub(crate) fn read_credential_file(path: &Path) -> Result<Vec<u8>> {
    read_regular_file(path).map_err(|problem| Error::CredentialFile {
        path: path.to_path_buf(),
        problem,
    })
}

/// Reads and parses a credential file.
pub(crate) fn load_credential_file(path: &Path) -> Result<Credential> {
    parse_credential_file(path, &read_credential_file(path)?)
}

/// Reads a credential file as a JSON object, after checking it like every loader does, so that
/// a rewrite keeps every field, known or not.
pub(crate) fn load_json_object(path: &Path) -> Result<Map<String, Value>> {
    let bytes = read_credential_file(path)?;
    parse_credential_file(path, &bytes)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::CredentialFile {
            path: path.to_path_buf(),
            problem: "is not a JSON object".into(),
        }),
    }
}

/// Rewrites a credential file in place: loads it as a JSON object (checked like every loader
/// does), lets `edit` change it, and writes it back atomically into `into` when space was
/// reserved for it before. The caller holds the credential lock.
pub(crate) fn update_json_object(
    path: &Path,
    into: Option<store::Reservation>,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<()>,
) -> Result<()> {
    let mut map = load_json_object(path)?;
    edit(&mut map)?;
    store::write_json_object(path, map, into)
}

/// Loads a credential `gemauth revoke` can revoke (an `authorized_user` or an
/// `external_account_authorized_user` file), refusing other credential types and endpoints the
/// rule refuses.
pub(crate) fn load_revocable(path: &Path, env: &Env) -> Result<Credential> {
    match load_credential_file(path)? {
        credential @ (Credential::User(_) | Credential::ExternalUser(_)) => {
            credential.check_endpoints(path, env)?;
            Ok(credential)
        }
        // An impersonation whose source is a user's login (`gemauth login
        // --impersonate-service-account`, gcloud's too): revoking it revokes the login, as
        // gcloud's `application-default revoke` does.
        Credential::Impersonated { source, .. } if matches!(*source, Credential::User(_)) => {
            let Credential::User(user) = *source else {
                return Err(Error::Internal("the source is not a user".into()));
            };
            let endpoints: Vec<SecretEndpoint> = user
                .secret_endpoints()
                .into_iter()
                .map(|mut e| {
                    e.field = format!("source_credentials.{}", e.field);
                    e
                })
                .collect();
            check_endpoints(&endpoints, path, false, env)?;
            Ok(Credential::User(user))
        }
        other => Err(Error::UnsupportedCredentialType {
            path: path.to_path_buf(),
            kind: other.type_name().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: &Value) -> Result<Credential> {
        parse_credential_file(Path::new("c.json"), value.to_string().as_bytes())
    }

    #[test]
    fn id_token_keys_differ_from_access_token_keys_and_by_audience() {
        let user = parse(&json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "s", "refresh_token": "r"}))
        .unwrap();
        let keys = [
            user.cache_key(&[]),
            user.id_token_cache_key("", false),
            user.id_token_cache_key("https://a", false),
            user.id_token_cache_key("https://a", true),
            user.id_token_cache_key("https://b", false),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_type_table_names_every_type_and_refuses_others() {
        for (kind, name, _) in TYPES {
            assert_eq!(kind.name(), name);
        }
        let e = parse(&json!({"type": "metadata_server"})).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedCredentialType { .. }),
            "{e:?}"
        );
        let e = parse(&json!({"type": "gdch_service_account"})).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedCredentialType { .. }),
            "{e:?}"
        );
        let e = parse(
            &json!({"type": "authorized_user", "client_id": "id", "client_secret": "s",
            "refresh_token": "r", "quota_project_id": "Bad Project"}),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("not a Google Cloud project ID"),
            "{e}"
        );
    }

    #[test]
    fn the_endpoint_rule_names_the_field_of_a_nested_source_and_status_lists_custom_ones() {
        let env = Env::Fixed(Default::default());
        let imp = parse(&json!({"type": "impersonated_service_account",
            "service_account_impersonation_url":
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "authorized_user", "client_id": "id",
                "client_secret": "s", "refresh_token": "r",
                "token_uri": "https://oauth2.evil.example/token?x=1"}}))
        .unwrap();
        let e = imp
            .check_endpoints(Path::new("imp.json"), &env)
            .unwrap_err();
        assert!(
            matches!(&e, Error::UntrustedEndpoint { field, host, client_file: false, .. }
                if field == "source_credentials.token_uri" && host == "oauth2.evil.example"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("credential file imp.json: "),
            "{e}"
        );
        assert_eq!(
            imp.custom_endpoints(),
            BTreeMap::from([(
                "source_credentials.token_uri".to_string(),
                "https://oauth2.evil.example/token".to_string()
            )])
        );
        let trusted = Env::Fixed(
            [(
                rules::ENV_TRUSTED_HOSTS.to_string(),
                "oauth2.evil.example".to_string(),
            )]
            .into(),
        );
        assert!(imp.check_endpoints(Path::new("imp.json"), &trusted).is_ok());

        let user = parse(&json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "s", "refresh_token": "r",
            "token_uri": "https://oauth2.evil.example/token"}))
        .unwrap();
        assert!(user.check_endpoints(Path::new("u.json"), &trusted).is_ok());
        let google = parse(&json!({"type": "service_account", "client_email": "e@x",
            "private_key": "k", "token_uri": "https://oauth2.googleapis.com/token"}))
        .unwrap();
        assert!(google.custom_endpoints().is_empty());
        assert!(google.check_endpoints(Path::new("sa.json"), &env).is_ok());
    }

    #[test]
    fn a_field_error_names_the_field_and_never_quotes_its_value() {
        let file = json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"url": "https://x/", "headers": "Authorization: Bearer planted-1, expected x"}});
        let e = parse(&file).unwrap_err().to_string();
        assert!(!e.contains("planted"), "{e}");
        assert!(
            e.ends_with("credential_source.headers: invalid type: expected a map, found a string"),
            "{e}"
        );
        let nested = json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/x:generateAccessToken",
            "source_credentials": {"type": "authorized_user", "client_id": "id",
                "client_secret": ["planted-2"], "refresh_token": "r"}});
        let e = parse(&nested).unwrap_err().to_string();
        assert!(!e.contains("planted"), "{e}");
        assert!(
            e.contains(
                "source_credentials: client_secret: invalid type: expected a string, found a list"
            ),
            "{e}"
        );
        for (message, want) in [
            (
                "invalid value: string \"planted\", expected a date",
                "f: invalid value, expected a date",
            ),
            (
                "unknown variant `planted`, expected `a` or `b`",
                "f: unknown value, expected `a` or `b`",
            ),
            (
                "invalid type: integer `123456`, expected a string",
                "f: invalid type: expected a string, found a number",
            ),
            (
                "missing field `refresh_token`",
                "missing field `refresh_token`",
            ),
            ("custom planted message", "f: has a value of the wrong kind"),
        ] {
            assert_eq!(field_problem("f", message), want);
        }
    }

    #[test]
    fn debug_output_of_every_credential_type_is_redacted() {
        let files = [
            json!({"type": "impersonated_service_account",
                "service_account_impersonation_url": "https://iam.example.com/x:generateAccessToken",
                "source_credentials": {"type": "authorized_user", "client_id": "id",
                    "client_secret": "planted-secret", "refresh_token": "planted-refresh"}}),
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                "token_url": "https://sts.example.com/", "client_id": "c", "client_secret": "planted-secret",
                "credential_source": {"url": "https://x/", "headers": {"Authorization": "Bearer planted-header"}}}),
            json!({"type": "service_account", "client_email": "e@x", "private_key": "planted-key"}),
            json!({"type": "authorized_user", "client_id": "id", "client_secret": "planted-secret",
                "refresh_token": "planted-refresh", "token": "planted-token"}),
        ];
        for file in files {
            let credential = parse(&file).unwrap();
            let text = format!("{credential:?}");
            assert!(!text.contains("planted"), "{text}");
        }
    }
}
