//! `external_account`: workload and workforce identity federation: parsing, cache key,
//! identity, status details, the subject-token sources (file, URL, executable), the STS token
//! exchange (RFC 8693) and, when the file names one, the service account impersonated through
//! IAM Credentials. AWS sources (`environment_id: "aws1"`) fetch what `aws` plans and sign the
//! subject token with it.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::aws;
use super::impersonated::{Iam, impersonated_email};
use super::{CLOUD_PLATFORM, Credential, FileProblem, IdTokenSupport, Issued, Minted, Want};
use crate::context::Context;
use crate::error::{Error, Rejecter, Result};
use crate::oauth::{self, ErrorBody, HttpRequest};
use crate::rules::{self, endpoint_name, sanitize};
use crate::secret::Secret;
use crate::store::{self, CachedToken};

/// Environment variable that must be `1` for executable-sourced external accounts.
pub(crate) const ENV_ALLOW_EXECUTABLES: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Where an `external_account` file reads its subject token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct CredentialSource {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: Option<Secret<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    pub executable: Option<ExecutableSource>,
    #[serde(default)]
    pub format: Option<SubjectTokenFormat>,
    #[serde(default)]
    pub environment_id: Option<String>,
    /// AWS: the availability-zone URL of the instance metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_url: Option<String>,
    /// AWS: the STS `GetCallerIdentity` URL template signed into the subject token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_cred_verification_url: Option<String>,
    /// AWS: the IMDSv2 session token URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imdsv2_session_token_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ExecutableSource {
    pub command: String,
    #[serde(default)]
    pub timeout_millis: Option<u64>,
    #[serde(default)]
    pub output_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct SubjectTokenFormat {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
}

/// An `external_account` (workload or workforce identity federation) file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: String,
    pub credential_source: CredentialSource,
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationOptions>,
    #[serde(default)]
    pub workforce_pool_user_project: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret<String>>,
    #[serde(default)]
    pub universe_domain: Option<String>,
    /// For an AWS source, which AWS identity and region the environment selects (a digest of
    /// `AWS_ACCESS_KEY_ID`, `AWS_REGION` and `AWS_DEFAULT_REGION`), set when the file is loaded
    /// for a token: part of the cache key, so that other AWS keys never get this token. Never
    /// read from the file.
    #[serde(skip_deserializing, default, skip_serializing_if = "Option::is_none")]
    pub aws_environment: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ImpersonationOptions {
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
}

/// What `status` shows of an external account.
#[derive(Debug, Serialize)]
pub(crate) struct ExternalDetails {
    pub(crate) audience: String,
    pub(crate) subject_token_type: String,
    pub(crate) token_uri: String,
    pub(crate) impersonation_url: Option<String>,
    pub(crate) universe_domain: String,
}

/// Parses an `external_account` file.
pub(super) fn parse(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let config: ExternalAccount = problem.typed(map)?;
    problem.nonempty("audience", &config.audience)?;
    problem.nonempty("subject_token_type", &config.subject_token_type)?;
    problem.nonempty("token_url", &config.token_url)?;
    rules::endpoint("token_url", &config.token_url)?;
    if let Some(url) = &config.service_account_impersonation_url {
        rules::endpoint("service_account_impersonation_url", url)?;
    }
    // What can be known of the source without reading it is checked now, before the endpoint
    // rule and before anything runs or is sent.
    config
        .credential_source
        .check()
        .map_err(|p| problem.error(p))?;
    Ok(Credential::External {
        config: Box::new(config),
        path: problem.path.to_path_buf(),
    })
}

impl CredentialSource {
    /// The source's own rules, as a one-line problem naming the field: an AWS source's fields,
    /// else one kind of source gemauth reads, a known format, a valid URL.
    fn check(&self) -> std::result::Result<(), String> {
        match self.aws() {
            Some(aws) => aws.map(|_| ()),
            None => self
                .check_non_aws()
                .map_err(|p| format!("credential_source: {p}")),
        }
    }

    /// The AWS source, checked, when `environment_id` names one (it takes precedence over
    /// `file`, `url` and `executable`, as in google-auth).
    fn aws(&self) -> Option<std::result::Result<aws::CredentialSource, String>> {
        let environment_id = self.environment_id.as_deref()?;
        Some(
            aws::CredentialSource::new(
                environment_id,
                self.regional_cred_verification_url.as_deref(),
                self.region_url.as_deref(),
                self.url.as_deref(),
                self.imdsv2_session_token_url.as_deref(),
            )
            .map_err(|e| e.to_string()),
        )
    }

    fn check_non_aws(&self) -> std::result::Result<(), String> {
        if self.file.is_none() && self.url.is_none() && self.executable.is_none() {
            return Err("names no file, url or executable".into());
        }
        if let Some(url) = &self.url {
            Url::parse(url).map_err(|e| format!("url is not a valid URL ({e})"))?;
        }
        match self.format.as_ref().and_then(|f| f.kind.as_deref()) {
            None | Some("text") => Ok(()),
            Some("json") => self
                .format
                .as_ref()
                .and_then(|f| f.subject_token_field_name.as_ref())
                .map(|_| ())
                .ok_or_else(|| "format json needs subject_token_field_name".into()),
            Some(_) => Err("format.type is neither text nor json".into()),
        }
    }
}

fn source_problem(path: &Path, problem: String) -> Error {
    Error::CredentialFile {
        path: path.to_path_buf(),
        problem,
    }
}

impl ExternalAccount {
    /// Sets the lifetime asked of IAM for the impersonated token (`--lifetime`), as the file's
    /// `service_account_impersonation.token_lifetime_seconds` would.
    pub(crate) fn set_impersonation_lifetime(&mut self, secs: u64) {
        self.service_account_impersonation = Some(ImpersonationOptions {
            token_lifetime_seconds: Some(secs),
        });
    }

    /// Notes the AWS identity and region the environment selects (see `aws_environment`).
    pub(super) fn bind_environment(&mut self, env: &crate::env::Env) {
        if self.credential_source.environment_id.is_some() {
            let var = |name: &str| env.var(name).unwrap_or_default();
            self.aws_environment = Some(crate::store::hex_digest(&[
                &var("AWS_ACCESS_KEY_ID"),
                &var("AWS_REGION"),
                &var("AWS_DEFAULT_REGION"),
            ]));
        }
    }

    /// The parts of the cache key: everything in the file decides the token (its source,
    /// audience, pools, client).
    pub(super) fn key_parts(&self) -> Vec<String> {
        vec![
            "external_account".into(),
            serde_json::to_string(self).unwrap_or_default(),
        ]
    }

    /// The endpoints that receive the subject token (and the client secret), and Google's STS
    /// token.
    pub(super) fn secret_endpoints(&self) -> Vec<super::SecretEndpoint> {
        let universe = self.universe_domain.as_deref();
        let mut all = vec![super::SecretEndpoint::new(
            "token_url",
            &self.token_url,
            universe,
            "https://sts.{}/v1/token",
        )];
        if let Some(url) = &self.service_account_impersonation_url {
            all.push(super::SecretEndpoint::new(
                "service_account_impersonation_url",
                url,
                universe,
                "https://iamcredentials.{}/",
            ));
        }
        all
    }

    /// The service account impersonated, else the federation audience (pool and provider).
    pub(super) fn identity(&self) -> String {
        self.service_account_impersonation_url
            .as_deref()
            .and_then(impersonated_email)
            .unwrap_or_else(|| self.audience.clone())
    }

    /// What `status` shows.
    pub(super) fn details(&self) -> ExternalDetails {
        ExternalDetails {
            audience: self.audience.clone(),
            subject_token_type: self.subject_token_type.clone(),
            token_uri: self.token_url.clone(),
            impersonation_url: self.service_account_impersonation_url.clone(),
            universe_domain: rules::universe_domain(self.universe_domain.as_deref()).to_string(),
        }
    }

    /// ID tokens need a service account to impersonate: the Security Token Service issues
    /// access tokens only.
    pub(super) fn id_tokens(&self) -> IdTokenSupport {
        if self.service_account_impersonation_url.is_some() {
            return IdTokenSupport::AnyAudience { email_option: true };
        }
        IdTokenSupport::Unavailable {
            status: "no: external_account without service account impersonation",
            problem: "an external_account credential without service account impersonation \
                cannot have ID tokens: the Security Token Service issues access tokens only",
            hint: "add service account impersonation to the configuration \
                (`gcloud iam workload-identity-pools create-cred-config … \
                --service-account=SA_EMAIL`) and let the federated identity use that account \
                (roles/iam.workloadIdentityUser)",
        }
    }

    /// Exchanges the subject token at the STS endpoint, then impersonates the service account
    /// when the file names one.
    pub(super) async fn mint(&self, path: &Path, ctx: &Context, want: &Want) -> Result<Minted> {
        let Some(url) = &self.service_account_impersonation_url else {
            let Want::Access { scopes } = want else {
                return Err(self.id_tokens().unavailable());
            };
            return Ok(Minted::issued(Issued::Access(
                self.sts_token(ctx, path, scopes).await?,
            )));
        };
        let sts = self
            .sts_token(ctx, path, &[CLOUD_PLATFORM.to_string()])
            .await?;
        let lifetime = self
            .service_account_impersonation
            .as_ref()
            .and_then(|o| o.token_lifetime_seconds)
            .unwrap_or(rules::HOUR_SECS);
        let call = Iam {
            url,
            delegates: &[],
            lifetime_secs: lifetime,
            principal: Some(&self.audience),
        };
        let sts_token = Issued::Access(sts);
        Ok(Minted::issued(
            call.generate(ctx, sts_token.access_token()?, want).await?,
        ))
    }

    /// Reads the subject token and exchanges it at the STS endpoint (RFC 8693) for a federated
    /// access token with `scopes` (the source of an impersonation asks for `cloud-platform`).
    async fn sts_token(
        &self,
        ctx: &Context,
        path: &Path,
        scopes: &[String],
    ) -> Result<CachedToken> {
        let subject_token = subject_token(ctx, self, path).await?;
        let token_url = rules::endpoint("token_url", &self.token_url)?;
        let impersonating = self.service_account_impersonation_url.is_some();
        let sts_scope = scopes.join(" ");
        let authenticated = self.client_id.is_some() && self.client_secret.is_some();
        let options = self
            .workforce_pool_user_project
            .as_ref()
            .filter(|_| !authenticated && !impersonating)
            .map(|project| json!({"userProject": project}).to_string());
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", &self.audience),
            ("scope", &sts_scope),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", subject_token.as_str()),
            ("subject_token_type", &self.subject_token_type),
        ];
        if let Some(options) = &options {
            form.push(("options", options));
        }
        let mut request = HttpRequest::form(&token_url, &form);
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) {
            request = request.basic(id, secret.expose());
        }
        let (status, body) = ctx.http()?.send(&request).await?;
        // An AWS subject token carries the session token: masked on its own too.
        let inner = match self.credential_source.environment_id {
            Some(_) => aws::subject_token_secrets(&subject_token),
            None => Vec::new(),
        };
        let sent =
            oauth::Sent::of(&request).and(oauth::Sent::secrets(inner.iter().map(String::as_str)));
        let response =
            oauth::parse_token_response(&endpoint_name(&token_url), status, &body, &sent).map_err(
                |e| {
                    e.rejected_by(Rejecter::Federation {
                        audience: self.audience.clone(),
                    })
                },
            )?;
        Ok(response.cached_at(ctx.now(), scopes.to_vec()))
    }
}

/// Reads the subject token from the file's `credential_source`.
async fn subject_token(ctx: &Context, config: &ExternalAccount, path: &Path) -> Result<String> {
    let source: &CredentialSource = &config.credential_source;
    if let Some(aws) = source.aws() {
        let aws = aws.map_err(|p| source_problem(path, p))?;
        return Ok(aws_subject_token(ctx, config, &aws, path)
            .await?
            .into_inner());
    }
    source.check().map_err(|p| source_problem(path, p))?;
    let bad = |problem: String| source_problem(path, format!("credential_source: {problem}"));
    let raw = if let Some(file) = &source.file {
        let bytes = store::read_bounded(std::path::Path::new(file)).map_err(|problem| {
            bad(format!(
                "cannot read the subject token file {file}: it {problem}"
            ))
        })?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else if let Some(url) = &source.url {
        let url = Url::parse(url).map_err(|e| bad(format!("url is not a valid URL ({e})")))?;
        let headers = source.headers.as_ref().map(Secret::expose);
        let request = headers
            .into_iter()
            .flatten()
            .fold(HttpRequest::get(&url), |r, (k, v)| r.header(k, v));
        let (status, body) = ctx.http()?.send(&request).await?;
        let endpoint = endpoint_name(&url);
        oauth::success(
            &endpoint,
            status,
            &body,
            ErrorBody::Plain("is not a subject token"),
            &oauth::Sent::of(&request),
        )?;
        String::from_utf8_lossy(&body).into_owned()
    } else if let Some(executable) = &source.executable {
        return executable_token(ctx, config, executable, path).await;
    } else {
        return Err(bad("names no file, url or executable".into()));
    };
    let token = match source.format.as_ref().and_then(|f| f.kind.as_deref()) {
        None | Some("text") => raw.trim().to_string(),
        Some("json") => {
            let field = source
                .format
                .as_ref()
                .and_then(|f| f.subject_token_field_name.as_deref())
                .ok_or_else(|| bad("format json needs subject_token_field_name".into()))?;
            let value: Value = serde_json::from_str(&raw)
                .map_err(|_| bad("the subject token source is not JSON".into()))?;
            value
                .get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(format!(
                        "the subject token JSON has no string field {field:?}"
                    ))
                })?
                .to_string()
        }
        Some(_) => return Err(bad("format.type is neither text nor json".into())),
    };
    if token.is_empty() {
        return Err(bad("the subject token is empty".into()));
    }
    Ok(token)
}

/// The AWS subject token: the region and the credentials from the environment or the instance
/// metadata (IMDSv2 session token, availability zone, role name, role credentials, in
/// google-auth's order), then the `GetCallerIdentity` request signed with them, serialized as
/// google-auth does.
async fn aws_subject_token(
    ctx: &Context,
    config: &ExternalAccount,
    source: &aws::CredentialSource,
    path: &Path,
) -> Result<Secret<String>> {
    let bad = |e: aws::AwsError| source_problem(path, e.to_string());
    let plan = aws::plan(source, |name| ctx.env.var(name)).map_err(bad)?;
    let session = match plan.imdsv2_request() {
        Some(request) => {
            Some(aws::parse_imdsv2_token(&aws_metadata(ctx, &request, path).await?).map_err(bad)?)
        }
        None => None,
    };
    let region = match (&plan.region, plan.region_request(session.as_ref())) {
        (_, Some(request)) => {
            aws::parse_region_answer(&aws_metadata(ctx, &request, path).await?).map_err(bad)?
        }
        (aws::RegionFrom::Env(region), None) => region.clone(),
        (aws::RegionFrom::Metadata(_), None) => {
            return Err(Error::Internal("no AWS region request planned".into()));
        }
    };
    let credentials = match (&plan.credentials, plan.role_name_request(session.as_ref())) {
        (_, Some(request)) => {
            let role =
                aws::parse_role_name(&aws_metadata(ctx, &request, path).await?).map_err(bad)?;
            let request = plan
                .role_credentials_request(&role, session.as_ref())
                .ok_or_else(|| Error::Internal("no AWS role credentials request planned".into()))?;
            aws::parse_role_credentials(&aws_metadata(ctx, &request, path).await?).map_err(bad)?
        }
        (aws::CredentialsFrom::Env(credentials), None) => credentials.clone(),
        (aws::CredentialsFrom::Metadata(_), None) => {
            return Err(Error::Internal("no AWS role name request planned".into()));
        }
    };
    let now = UNIX_EPOCH + Duration::from_secs(ctx.now());
    aws::subject_token(
        &plan.verification_url,
        &region,
        &credentials,
        &config.audience,
        now,
    )
    .map_err(bad)
}

/// One instance-metadata request (no body, the metadata client's short connect timeout, no
/// redirects, a bounded answer). An answer other than 200 is an error naming the URL and the
/// status, not the body (a hostile server could echo the IMDSv2 session token).
async fn aws_metadata(
    ctx: &Context,
    request: &aws::MetadataRequest,
    path: &Path,
) -> Result<Vec<u8>> {
    let mut http = match request.method {
        aws::Method::Get => HttpRequest::get(&request.url),
        aws::Method::Put => HttpRequest::put(&request.url),
    };
    for (name, value) in &request.headers {
        http = http.header(name, value.expose());
    }
    let (status, body) = ctx.metadata_http()?.send(&http).await?;
    if status != 200 {
        return Err(source_problem(
            path,
            format!(
                "credential_source: the AWS instance metadata at {} answered HTTP {status} \
                (on EC2 the instance needs an IAM role and a reachable metadata service; \
                elsewhere set AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                endpoint_name(&request.url)
            ),
        ));
    }
    Ok(body)
}

/// Runs an executable source (only with `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`, as
/// google-auth requires) and reads its version-1 JSON answer.
async fn executable_token(
    ctx: &Context,
    config: &ExternalAccount,
    executable: &ExecutableSource,
    path: &Path,
) -> Result<String> {
    let bad =
        |problem: String| source_problem(path, format!("credential_source.executable: {problem}"));
    if ctx.env.var(ENV_ALLOW_EXECUTABLES).as_deref() != Some("1") {
        return Err(Error::ExecutablesNotAllowed);
    }
    // A still-valid answer saved by an earlier run is used as is.
    // (as in google-auth, a saved answer counts only with an expiration_time still ahead).
    if let Some(output_file) = &executable.output_file
        && let Ok(saved) = store::read_bounded(std::path::Path::new(output_file))
        && serde_json::from_slice::<Value>(&saved)
            .is_ok_and(|v| v["expiration_time"].as_u64().is_some_and(|t| t > ctx.now()))
        && let Ok(token) = parse_executable_output(&saved, config, ctx.now())
    {
        return Ok(token);
    }
    let words = shell_words::split(&executable.command)
        .map_err(|e| bad(format!("cannot parse command ({e})")))?;
    let (program, args) = words
        .split_first()
        .ok_or_else(|| bad("command is empty".into()))?;
    let timeout = Duration::from_millis(
        executable
            .timeout_millis
            .unwrap_or(30_000)
            .clamp(5_000, 120_000),
    );
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", &config.audience)
        .env(
            "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE",
            &config.subject_token_type,
        )
        .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    if let Some(email) = config
        .service_account_impersonation_url
        .as_deref()
        .and_then(impersonated_email)
    {
        command.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
    }
    if let Some(output_file) = &executable.output_file {
        command.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", output_file);
    }
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| {
            bad(format!(
                "{program:?} did not answer within {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(|e| bad(format!("cannot run {program:?} ({e})")))?;
    if !output.status.success() {
        return Err(bad(format!("{program:?} failed ({})", output.status)));
    }
    parse_executable_output(&output.stdout, config, ctx.now()).map_err(bad)
}

fn parse_executable_output(
    bytes: &[u8],
    config: &ExternalAccount,
    now: u64,
) -> std::result::Result<String, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| "its output is not JSON".to_string())?;
    if v["version"] != json!(1) {
        return Err("its output is not version 1".into());
    }
    if v["success"] != json!(true) {
        return Err(format!(
            "it reported failure: {} {}",
            sanitize(v["code"].as_str().unwrap_or_default()),
            sanitize(v["message"].as_str().unwrap_or_default())
        ));
    }
    if let Some(expires) = v["expiration_time"].as_u64()
        && expires <= now
    {
        return Err("its token has expired".into());
    }
    let token_type = v["token_type"]
        .as_str()
        .unwrap_or(&config.subject_token_type);
    let field = if token_type.ends_with(":saml2") {
        "saml_response"
    } else {
        "id_token"
    };
    v[field]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("its output has no {field}"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::testing::{Fake, NOW, context, jwt, path as path_of, run, token_answer};

    const IMPERSONATION: &str = "http://127.0.0.1:1/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken";
    const AUDIENCE: &str = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/prov";

    /// An external account reading its subject token from a file in `dir`.
    fn external(dir: &Path, extra: Value) -> (ExternalAccount, PathBuf) {
        let subject = dir.join("subject.txt");
        std::fs::write(&subject, "subject-jwt\n").unwrap();
        let mut file = json!({"type": "external_account", "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "http://127.0.0.1:1/v1/token",
            "credential_source": {"file": subject}});
        if let (Value::Object(file), Value::Object(extra)) = (&mut file, extra) {
            file.extend(extra);
        }
        match parse_credential_file(Path::new("ext.json"), file.to_string().as_bytes()) {
            Ok(Credential::External { config, path }) => (*config, path),
            other => panic!("not an external account: {other:?}"),
        }
    }

    #[test]
    fn the_subject_token_is_exchanged_at_the_sts_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = external(
            dir.path(),
            json!({"client_id": "cid", "client_secret": "csecret", "workforce_pool_user_project": "my-project"}),
        );
        let fake = Fake::default();
        let ctx = context(fake.http(|_| token_answer("ya29.sts")), &[], None);
        let minted = run(config.mint(&path, &ctx, &Want::access(vec!["s1".into()]))).unwrap();
        let Ok(Issued::Access(token)) = minted.issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.sts");
        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].form["grant_type"], TOKEN_EXCHANGE);
        assert_eq!(seen[0].form["audience"], AUDIENCE);
        assert_eq!(seen[0].form["scope"], "s1");
        assert_eq!(seen[0].form["subject_token"], "subject-jwt");
        assert_eq!(seen[0].basic, Some(("cid".into(), "csecret".into())));
        // An authenticated client makes the user project unnecessary.
        assert!(!seen[0].form.contains_key("options"));
    }

    #[test]
    fn a_named_service_account_is_impersonated_after_the_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = external(
            dir.path(),
            json!({"service_account_impersonation_url": IMPERSONATION,
                "service_account_impersonation": {"token_lifetime_seconds": 600}}),
        );
        let fake = Fake::default();
        let http = fake.http(|request| match path_of(request) {
            "/v1/token" => token_answer("ya29.sts"),
            _ => Ok((
                200,
                json!({"accessToken": "ya29.sa", "expireTime": "2027-01-15T08:10:00Z"}).to_string(),
            )),
        });
        let ctx = context(http, &[], None);
        let minted = run(config.mint(&path, &ctx, &Want::access(vec!["s1".into()]))).unwrap();
        let Ok(Issued::Access(token)) = minted.issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.sa");
        assert_eq!(token.expires_at, NOW + 600);
        let seen = fake.seen();
        assert_eq!(seen[0].form["scope"], CLOUD_PLATFORM);
        assert_eq!(seen[1].bearer.as_deref(), Some("ya29.sts"));
        assert_eq!(seen[1].json.as_ref().unwrap()["lifetime"], "600s");
        assert_eq!(config.identity(), "sa@p.iam.gserviceaccount.com");

        let id = jwt(&json!({"aud": "https://svc", "exp": NOW + 60}));
        let answer = json!({ "token": id }).to_string();
        let http = Fake::default().http(move |request| match path_of(request) {
            "/v1/token" => token_answer("ya29.sts"),
            _ => Ok((200, answer.clone())),
        });
        let want = Want::Id {
            audience: "https://svc".into(),
            include_email: false,
        };
        let minted = run(config.mint(&path, &context(http, &[], None), &want)).unwrap();
        assert!(matches!(minted.issued, Ok(Issued::Id { .. })));
    }

    #[test]
    fn a_refused_subject_token_points_at_the_pool_and_provider() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = external(dir.path(), json!({}));
        let http = Fake::default().http(|_| {
            Ok((
                400,
                r#"{"error":"invalid_grant","error_description":"bad issuer"}"#.into(),
            ))
        });
        let e = run(config.mint(&path, &context(http, &[], None), &Want::access(Vec::new())))
            .unwrap_err();
        let (hint, _) = crate::testing::hint(e);
        assert!(
            hint.contains("pool and provider") && hint.contains(AUDIENCE),
            "{hint}"
        );
        assert!(!hint.contains("gemauth login"), "{hint}");
    }

    #[test]
    fn executables_run_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = external(
            dir.path(),
            json!({"credential_source": {"executable": {"command": "/bin/false"}}}),
        );
        let fake = Fake::default();
        let e = run(config.mint(
            &path,
            &context(fake.http(|_| token_answer("x")), &[], None),
            &Want::access(Vec::new()),
        ))
        .unwrap_err();
        assert!(matches!(e, Error::ExecutablesNotAllowed), "{e:?}");
        assert!(fake.seen().is_empty());
    }

    #[test]
    fn without_impersonation_there_are_no_id_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = external(dir.path(), json!({}));
        assert!(matches!(
            config.id_tokens(),
            IdTokenSupport::Unavailable { .. }
        ));
        let want = Want::Id {
            audience: "a".into(),
            include_email: false,
        };
        let fake = Fake::default();
        let e = run(config.mint(
            &path,
            &context(fake.http(|_| token_answer("x")), &[], None),
            &want,
        ))
        .unwrap_err();
        assert!(matches!(e, Error::IdTokenRequest { .. }), "{e:?}");
        assert_eq!(config.identity(), AUDIENCE);
    }

    #[test]
    fn subject_tokens_are_read_as_the_format_says() {
        let dir = tempfile::tempdir().unwrap();
        let json_file = dir.path().join("subject.json");
        std::fs::write(&json_file, r#"{"access_token": "from-json"}"#).unwrap();
        let (config, path) = external(
            dir.path(),
            json!({"credential_source": {"file": json_file,
                "format": {"type": "json", "subject_token_field_name": "access_token"}}}),
        );
        let fake = Fake::default();
        let ctx = context(fake.http(|_| token_answer("x")), &[], None);
        run(config.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap();
        assert_eq!(fake.seen()[0].form["subject_token"], "from-json");

        let url_config = external(
            dir.path(),
            json!({"credential_source": {"url": "http://127.0.0.1:1/subject",
                "headers": {"Metadata": "True"}}}),
        );
        let fake = Fake::default();
        let http = fake.http(|request| match path_of(request) {
            "/subject" => Ok((200, "from-url".into())),
            _ => token_answer("x"),
        });
        run(url_config.0.mint(
            &url_config.1,
            &context(http, &[], None),
            &Want::access(Vec::new()),
        ))
        .unwrap();
        let seen = fake.seen();
        assert_eq!(
            seen[0].headers,
            [("Metadata".to_string(), "True".to_string())]
        );
        assert_eq!(seen[1].form["subject_token"], "from-url");
        assert!(!format!("{:?}", url_config.0).contains("True"));
    }

    /// An AWS external account whose metadata URLs are on `base`, with the IMDSv2 token URL.
    fn aws_account(base: &str) -> (ExternalAccount, PathBuf) {
        use crate::credentials::aws::tests as v;
        let file = json!({"type": "external_account", "audience": v::AUDIENCE,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": "http://127.0.0.1:1/v1/token",
            "credential_source": {"environment_id": "aws1",
                "region_url": format!("{base}/latest/meta-data/placement/availability-zone"),
                "url": format!("{base}/latest/meta-data/iam/security-credentials"),
                "imdsv2_session_token_url": format!("{base}/latest/api/token"),
                "regional_cred_verification_url": v::TEMPLATE}});
        match parse_credential_file(Path::new("aws.json"), file.to_string().as_bytes()) {
            Ok(Credential::External { config, path }) => (*config, path),
            other => panic!("not an external account: {other:?}"),
        }
    }

    /// 2020-08-11T06:55:22Z, the time of google-auth's vectors.
    const AWS_VECTOR_TIME: u64 = 1_597_128_922;

    #[test]
    fn aws_sources_read_the_instance_metadata_and_send_google_auths_subject_token() {
        use crate::credentials::aws::tests as v;
        use crate::oauth::Method;
        let (config, path) = aws_account("http://169.254.169.254");
        let fake = Fake::default();
        let http = fake.http(|request| match path_of(request) {
            "/latest/api/token" => Ok((200, "awsimdsv2sessiontoken".into())),
            "/latest/meta-data/placement/availability-zone" => Ok((200, "us-east-2b".into())),
            "/latest/meta-data/iam/security-credentials" => Ok((200, "gcp-aws-role".into())),
            "/latest/meta-data/iam/security-credentials/gcp-aws-role" => {
                Ok((200, v::credentials_json("")))
            }
            _ => token_answer("ya29.aws"),
        });
        let ctx = Context::fixed(&[], AWS_VECTOR_TIME, None, http);
        run(config.mint(&path, &ctx, &Want::access(vec!["s1".into()]))).unwrap();
        let seen = fake.seen();
        type Request<'a> = (Method, &'a str, &'a [(String, String)]);
        let requests: Vec<Request> = seen
            .iter()
            .map(|s| (s.method, s.url.as_str(), s.headers.as_slice()))
            .collect();
        let token = [(
            "X-aws-ec2-metadata-token".to_string(),
            "awsimdsv2sessiontoken".to_string(),
        )];
        assert_eq!(
            requests,
            [
                (
                    Method::Put,
                    "http://169.254.169.254/latest/api/token",
                    &[(
                        "X-aws-ec2-metadata-token-ttl-seconds".to_string(),
                        "300".to_string()
                    )][..]
                ),
                (
                    Method::Get,
                    "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                    &token[..]
                ),
                (
                    Method::Get,
                    "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                    &token[..]
                ),
                (
                    Method::Get,
                    "http://169.254.169.254/latest/meta-data/iam/security-credentials/gcp-aws-role",
                    &token[..]
                ),
                (Method::Post, "http://127.0.0.1:1/v1/token", &[][..]),
            ]
        );
        let sts = &seen[4];
        assert_eq!(sts.form["subject_token"], v::GA_METADATA_SERVER_US_EAST_2B);
        assert_eq!(
            sts.form["subject_token_type"],
            "urn:ietf:params:aws:token-type:aws4_request"
        );
        assert_eq!(sts.form["audience"], v::AUDIENCE);
    }

    #[test]
    fn aws_credentials_and_region_from_the_environment_need_no_metadata() {
        use crate::credentials::aws::tests as v;
        let (config, path) = aws_account("http://169.254.169.254");
        let fake = Fake::default();
        let http = fake.http(|_| token_answer("ya29.aws"));
        let vars = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", v::ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", v::SECRET_ACCESS_KEY),
        ];
        let ctx = Context::fixed(&vars, AWS_VECTOR_TIME, None, http);
        run(config.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 1, "only the STS exchange: {seen:?}");
        assert_eq!(
            seen[0].form["subject_token"],
            v::GA_NO_SESSION_TOKEN_EU_WEST_1
        );
    }

    #[test]
    fn an_aws_metadata_refusal_names_the_url_and_status_not_the_body() {
        let (config, path) = aws_account("http://169.254.169.254");
        let fake = Fake::default();
        let http = fake.http(|request| match path_of(request) {
            "/latest/api/token" => Ok((200, "awsimdsv2sessiontoken".into())),
            _ => Ok((404, "echo awsimdsv2sessiontoken".into())),
        });
        let ctx = Context::fixed(&[], AWS_VECTOR_TIME, None, http);
        let e = run(config.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("169.254.169.254/latest/meta-data/placement/availability-zone")
                && shown.contains("404"),
            "{shown}"
        );
        assert!(!shown.contains("awsimdsv2sessiontoken"), "{shown}");
        // Only the two metadata requests: nothing reached STS.
        assert_eq!(fake.seen().len(), 2);

        let (config, path) = aws_account("http://169.254.169.254");
        let http = Fake::default().http(|request| match path_of(request) {
            "/latest/api/token" => Ok((200, "awsimdsv2sessiontoken".into())),
            "/latest/meta-data/placement/availability-zone" => Ok((200, "not a zone!".into())),
            _ => token_answer("x"),
        });
        let ctx = Context::fixed(&[], AWS_VECTOR_TIME, None, http);
        let e = run(config.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap_err();
        assert!(e.to_string().contains("aws.json"), "{e}");
        assert!(e.to_string().contains("availability zone"), "{e}");
    }

    /// The cache key of `config` with these environment variables.
    fn key_with(config: &ExternalAccount, path: &Path, vars: &[(&str, &str)]) -> String {
        let mut credential = Credential::External {
            config: Box::new(config.clone()),
            path: path.to_path_buf(),
        };
        let env = crate::env::Env::Fixed(
            vars.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        );
        credential.bind_environment(&env);
        credential.cache_key(&[])
    }

    #[test]
    fn other_aws_keys_or_regions_get_other_cache_entries() {
        let (config, path) = aws_account("http://169.254.169.254");
        let key = |vars: &[(&str, &str)]| key_with(&config, &path, vars);
        let role = key(&[]);
        let alice = key(&[("AWS_ACCESS_KEY_ID", "AKIAALICE")]);
        let bob = key(&[("AWS_ACCESS_KEY_ID", "AKIABOB")]);
        let bob_eu = key(&[
            ("AWS_ACCESS_KEY_ID", "AKIABOB"),
            ("AWS_REGION", "eu-west-1"),
        ]);
        assert_eq!(role, key(&[]));
        assert!(
            role != alice && alice != bob && bob != bob_eu,
            "keys must differ"
        );
        // A file source's key does not depend on AWS variables.
        let dir = tempfile::tempdir().unwrap();
        let (file_config, file_path) = external(dir.path(), json!({}));
        assert_eq!(
            key_with(&file_config, &file_path, &[]),
            key_with(
                &file_config,
                &file_path,
                &[("AWS_ACCESS_KEY_ID", "AKIABOB")]
            )
        );
    }

    #[test]
    fn an_echoed_aws_session_token_is_masked() {
        use crate::credentials::aws::tests as v;
        let (config, path) = aws_account("http://169.254.169.254");
        let echo = format!(
            r#"{{"error":"invalid_grant","error_description":"bad token {}"}}"#,
            v::TOKEN
        );
        let http = Fake::default().http(move |_| Ok((400, echo.clone())));
        let vars = [
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", v::ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", v::SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", v::TOKEN),
        ];
        let ctx = Context::fixed(&vars, AWS_VECTOR_TIME, None, http);
        let e = run(config.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("bad token"), "{shown}");
        assert!(!shown.contains(&v::TOKEN[..40]), "{shown}");
    }
}
