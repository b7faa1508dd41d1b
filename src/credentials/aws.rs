//! AWS for `external_account` credentials with `credential_source.environment_id: "aws1"`, as
//! pure functions: the credential source's fields, which instance-metadata requests to make,
//! parsers of their answers, AWS Signature Version 4 and the STS subject token (the signed
//! `GetCallerIdentity` request serialized as google-auth does). No I/O: the caller fetches.
//!
//! The external-account credential drives it (see [`Plan`] for the order of requests):
//! `CredentialSource::new` → `plan(env)` → the metadata requests it lists, each answer given to
//! its parser → `subject_token`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode, utf8_percent_encode};
use ring::hmac;
use sha2::{Digest, Sha256};
use url::Url;

use crate::secret::Secret;

/// google-auth's verification URL when a file gives none (only its programmatic suppliers use
/// it; a file must name one).
pub(crate) const DEFAULT_REGIONAL_CRED_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
/// The `subject_token_type` of AWS subject tokens.
#[cfg(test)]
pub(crate) const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
/// The IMDSv2 header carrying the session token on metadata GETs.
pub(crate) const IMDSV2_TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// The IMDSv2 header asking for a session token's lifetime on the PUT.
pub(crate) const IMDSV2_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// The lifetime asked for (google-auth's: the token is used at once).
pub(crate) const IMDSV2_TTL_SECONDS: &str = "300";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";
const DATE_HEADER: &str = "x-amz-date";
const TARGET_RESOURCE_HEADER: &str = "x-goog-cloud-target-resource";

/// Largest metadata answers accepted: the availability zone and role name are a few dozen
/// bytes, the role credentials about 1.5 KiB (a session token is up to about 1 KiB).
const MAX_SMALL_ANSWER: usize = 1024;
const MAX_CREDENTIALS_ANSWER: usize = 64 * 1024;
/// Largest session token, IMDSv2 token or secret key taken from the environment or an answer.
const MAX_SECRET_LEN: usize = 16 * 1024;

/// A one-line error about AWS input. It names the field or answer and never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsError(String);

impl AwsError {
    fn new(message: impl Into<String>) -> Self {
        AwsError(message.into())
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AwsError {}

type Result<T> = std::result::Result<T, AwsError>;

/// AWS security credentials. `Debug` shows the access key id (an identifier, as AWS prints it)
/// but not the secret key or session token.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// Where credentials were read, to name their fields in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    Env,
    /// The instance role's credentials answer: `AccessKeyId`, `SecretAccessKey`, `Token`.
    Metadata,
}

impl Origin {
    fn names(self) -> [&'static str; 3] {
        match self {
            Origin::Env => [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
            Origin::Metadata => [
                "the AWS role credentials answer: AccessKeyId",
                "the AWS role credentials answer: SecretAccessKey",
                "the AWS role credentials answer: Token",
            ],
        }
    }
}

impl AwsCredentials {
    /// Checks credentials; an empty session token is none. Errors name the field, not its value.
    pub(crate) fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        origin: Origin,
    ) -> Result<Self> {
        let [id_name, secret_name, token_name] = origin.names();
        let id = access_key_id.trim();
        if id.is_empty() {
            return Err(AwsError::new(format!("{id_name} is empty")));
        }
        if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AwsError::new(format!(
                "{id_name} is not an AWS access key id (letters and digits, at most 128)"
            )));
        }
        if secret_access_key.is_empty() {
            return Err(AwsError::new(format!("{secret_name} is empty")));
        }
        if secret_access_key.len() > MAX_SECRET_LEN {
            return Err(AwsError::new(format!(
                "{secret_name} is too long (at most 16 KiB)"
            )));
        }
        let session_token = match session_token {
            Some(t) if t.is_empty() => None,
            Some(t) => {
                if !is_header_value(&t) {
                    return Err(AwsError::new(format!(
                        "{token_name} is not a valid HTTP header value (printable ASCII without spaces, at most 16 KiB)"
                    )));
                }
                Some(Secret::new(t))
            }
            None => None,
        };
        Ok(AwsCredentials {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret_access_key),
            session_token,
        })
    }
}

/// Printable ASCII without surrounding spaces, bounded: safe as an HTTP header value.
fn is_header_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SECRET_LEN && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// An AWS region name (`us-east-2`, `us-gov-west-1`): lowercase letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region(String);

impl Region {
    /// Checks a region name; `what` names its origin in errors. The name is shown: it is no
    /// secret, and a region is what a user must see to fix it.
    pub(crate) fn new(name: &str, what: &str) -> Result<Self> {
        let name = name.trim();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--")
            && name.bytes().any(|b| b.is_ascii_digit());
        if ok {
            Ok(Region(name.to_string()))
        } else {
            Err(AwsError::new(format!(
                "{what}: {:?} is not an AWS region name such as us-east-2",
                shown(name)
            )))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An answer's text for an error message, only when it is a short plain word (an availability
/// zone, a role name, a status code): a hostile metadata server could echo the IMDSv2 token.
fn shown_answer(s: &str) -> String {
    if s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        format!("{s:?} ")
    } else {
        String::new()
    }
}

/// A short, printable rendering of untrusted non-secret text for an error message.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The credential source and the plan of metadata requests.

/// The AWS fields of `credential_source`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialSource {
    /// `regional_cred_verification_url`, with its `{region}` placeholder.
    pub verification_url: String,
    pub region_url: Option<Url>,
    pub url: Option<Url>,
    pub imdsv2_session_token_url: Option<Url>,
}

impl CredentialSource {
    /// Checks the fields as google-auth does: `environment_id` is `aws` followed by a version
    /// number, and the version is 1; `regional_cred_verification_url` is required and is an
    /// https URL once `{region}` is replaced. The metadata URLs are http or https URLs with a
    /// host and no user name or password. Like google-auth today (its 2022 check that they
    /// name 169.254.169.254 or [fd00:ec2::254] was reverted), any host is accepted: they
    /// receive only the short-lived IMDSv2 session token, never a credential.
    pub(crate) fn new(
        environment_id: &str,
        regional_cred_verification_url: Option<&str>,
        region_url: Option<&str>,
        url: Option<&str>,
        imdsv2_session_token_url: Option<&str>,
    ) -> Result<Self> {
        let version = environment_id
            .strip_prefix("aws")
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                AwsError::new(format!(
                    "credential_source.environment_id {:?} is not an AWS environment (expected \"aws1\")",
                    shown(environment_id)
                ))
            })?;
        if version.trim_start_matches('0') != "1" {
            return Err(AwsError::new(format!(
                "credential_source.environment_id: AWS version {version} is not supported (only \"aws1\")"
            )));
        }
        let verification_url = regional_cred_verification_url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AwsError::new(format!(
                    "credential_source.regional_cred_verification_url is missing (google's default is {DEFAULT_REGIONAL_CRED_VERIFICATION_URL})"
                ))
            })?;
        let example = verification_url.replace("{region}", "us-east-1");
        match Url::parse(&example) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
                if !u.username().is_empty() || u.password().is_some() {
                    return Err(AwsError::new(
                        "credential_source.regional_cred_verification_url must not carry a user name or password",
                    ));
                }
            }
            _ => {
                return Err(AwsError::new(
                    "credential_source.regional_cred_verification_url is not an https URL with a host",
                ));
            }
        }
        Ok(CredentialSource {
            verification_url: verification_url.to_string(),
            region_url: metadata_url("credential_source.region_url", region_url)?,
            url: metadata_url("credential_source.url", url)?,
            imdsv2_session_token_url: metadata_url(
                "credential_source.imdsv2_session_token_url",
                imdsv2_session_token_url,
            )?,
        })
    }
}

fn metadata_url(field: &str, raw: Option<&str>) -> Result<Option<Url>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let url = Url::parse(raw).map_err(|e| AwsError::new(format!("{field} is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AwsError::new(format!(
            "{field} must not carry a user name or password"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(AwsError::new(format!(
            "{field} must be an http or https URL with a host, such as http://169.254.169.254/latest/meta-data/…"
        )));
    }
    Ok(Some(url))
}

/// Where the region comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegionFrom {
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    Env(Region),
    /// A GET of `region_url` (the availability zone); its answer goes to [`parse_region_answer`].
    Metadata(Url),
}

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialsFrom {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` when set).
    Env(AwsCredentials),
    /// A GET of `url` (the role name, to [`parse_role_name`]), then of `url/ROLE` (to
    /// [`parse_role_credentials`]).
    Metadata(Url),
}

/// HTTP method of a metadata request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
}

/// One instance-metadata request to make, with no body. Header values are wrapped as secrets
/// (one is the IMDSv2 session token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, Secret<String>)>,
}

/// Which metadata requests to make, decided from the credential source and the environment.
///
/// The order, when a step applies:
/// 1. [`Plan::imdsv2_request`]: `PUT imdsv2_session_token_url` with
///    `X-aws-ec2-metadata-token-ttl-seconds: 300`; answer to [`parse_imdsv2_token`]. Only when
///    the URL is given and some metadata is needed.
/// 2. [`Plan::region_request`]: `GET region_url` → [`parse_region_answer`].
/// 3. [`Plan::role_name_request`]: `GET url` → [`parse_role_name`].
/// 4. [`Plan::role_credentials_request`]: `GET url/ROLE` → [`parse_role_credentials`].
///
/// Steps 2–4 carry `X-aws-ec2-metadata-token: TOKEN` when step 1 ran. Any answer other than
/// 200 is an error (the caller names the URL and status, and does not show the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub region: RegionFrom,
    pub credentials: CredentialsFrom,
    pub imdsv2_session_token_url: Option<Url>,
    pub verification_url: String,
}

/// Plans the requests. `env` reads an environment variable (the caller passes `std::env::var`
/// or a test map); an empty value counts as unset.
pub(crate) fn plan(
    source: &CredentialSource,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Plan> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let region = if let Some(r) = var("AWS_REGION") {
        RegionFrom::Env(Region::new(&r, "AWS_REGION")?)
    } else if let Some(r) = var("AWS_DEFAULT_REGION") {
        RegionFrom::Env(Region::new(&r, "AWS_DEFAULT_REGION")?)
    } else if let Some(u) = &source.region_url {
        RegionFrom::Metadata(u.clone())
    } else {
        return Err(AwsError::new(
            "cannot determine the AWS region: set AWS_REGION, or give credential_source.region_url",
        ));
    };
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => CredentialsFrom::Env(AwsCredentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            Origin::Env,
        )?),
        // As google-auth: with one of the two alone, the instance role is used.
        (id, secret) => match &source.url {
            Some(u) => CredentialsFrom::Metadata(u.clone()),
            None => {
                let half = match (id.is_some(), secret.is_some()) {
                    (true, false) => " (AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not)",
                    (false, true) => " (AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not)",
                    _ => "",
                };
                return Err(AwsError::new(format!(
                    "cannot determine the AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give credential_source.url (the instance metadata security-credentials URL){half}"
                )));
            }
        },
    };
    Ok(Plan {
        region,
        credentials,
        imdsv2_session_token_url: source.imdsv2_session_token_url.clone(),
        verification_url: source.verification_url.clone(),
    })
}

impl Plan {
    /// Whether any instance-metadata request is needed.
    pub(crate) fn needs_metadata(&self) -> bool {
        matches!(self.region, RegionFrom::Metadata(_))
            || matches!(self.credentials, CredentialsFrom::Metadata(_))
    }

    /// Step 1: the IMDSv2 session token request, when the URL is given and metadata is needed.
    pub(crate) fn imdsv2_request(&self) -> Option<MetadataRequest> {
        let url = self.imdsv2_session_token_url.as_ref()?;
        self.needs_metadata().then(|| MetadataRequest {
            method: Method::Put,
            url: url.clone(),
            headers: vec![(IMDSV2_TTL_HEADER, Secret::new(IMDSV2_TTL_SECONDS.into()))],
        })
    }

    /// Step 2: the availability-zone request, when the region is not in the environment.
    pub(crate) fn region_request(
        &self,
        imdsv2: Option<&Secret<String>>,
    ) -> Option<MetadataRequest> {
        match &self.region {
            RegionFrom::Metadata(url) => Some(get(url.clone(), imdsv2)),
            RegionFrom::Env(_) => None,
        }
    }

    /// Step 3: the role name request, when the credentials are not in the environment.
    pub(crate) fn role_name_request(
        &self,
        imdsv2: Option<&Secret<String>>,
    ) -> Option<MetadataRequest> {
        match &self.credentials {
            CredentialsFrom::Metadata(url) => Some(get(url.clone(), imdsv2)),
            CredentialsFrom::Env(_) => None,
        }
    }

    /// Step 4: the role's credentials, at `url/ROLE` (one slash between them).
    pub(crate) fn role_credentials_request(
        &self,
        role: &RoleName,
        imdsv2: Option<&Secret<String>>,
    ) -> Option<MetadataRequest> {
        match &self.credentials {
            CredentialsFrom::Metadata(url) => {
                let mut url = url.clone();
                let path = format!("{}/{}", url.path().trim_end_matches('/'), role.0);
                url.set_path(&path);
                Some(get(url, imdsv2))
            }
            CredentialsFrom::Env(_) => None,
        }
    }
}

fn get(url: Url, imdsv2: Option<&Secret<String>>) -> MetadataRequest {
    MetadataRequest {
        method: Method::Get,
        url,
        headers: imdsv2
            .map(|t| vec![(IMDSV2_TOKEN_HEADER, t.clone())])
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsers of the metadata answers.

fn answer_text<'a>(body: &'a [u8], what: &str, max: usize) -> Result<&'a str> {
    if body.len() > max {
        return Err(AwsError::new(format!(
            "{what} is too large ({} bytes, at most {max})",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| AwsError::new(format!("{what} is not UTF-8 text")))?
        .trim();
    if text.is_empty() {
        return Err(AwsError::new(format!("{what} is empty")));
    }
    Ok(text)
}

/// The IMDSv2 session token from the PUT's answer.
pub(crate) fn parse_imdsv2_token(body: &[u8]) -> Result<Secret<String>> {
    let what = "the IMDSv2 session token answer";
    let text = answer_text(body, what, MAX_SECRET_LEN)?;
    if !is_header_value(text) {
        return Err(AwsError::new(format!(
            "{what} is not a valid HTTP header value (printable ASCII)"
        )));
    }
    Ok(Secret::new(text.to_string()))
}

/// The region from the availability-zone answer: `us-east-2b` → `us-east-2`. google-auth drops
/// the last character; so does this for a zone name, and it also takes Local Zones
/// (`us-west-2-lax-1a` → `us-west-2`), Wavelength Zones (`us-east-1-wl1-bos-wlz-1` →
/// `us-east-1`) and an answer that is already a region (from `placement/region`): the region
/// is the zone's name up to its first all-digit part. Anything else is refused.
pub(crate) fn parse_region_answer(body: &[u8]) -> Result<Region> {
    let what = "the AWS availability zone answer (region_url)";
    let text = answer_text(body, what, MAX_SMALL_ANSWER)?;
    let refuse = || {
        AwsError::new(format!(
            "{what} {}is not an availability zone such as us-east-2b",
            shown_answer(text)
        ))
    };
    // A zone letter follows a digit: us-east-2b.
    let zone = match text.strip_suffix(|c: char| c.is_ascii_lowercase()) {
        Some(z) if z.ends_with(|c: char| c.is_ascii_digit()) => z,
        Some(_) => return Err(refuse()),
        None => text,
    };
    // The syntax every zone and region shares.
    Region::new(zone, what).map_err(|_| refuse())?;
    let mut end = 0;
    let mut parts = 0;
    for part in zone.split('-') {
        parts += 1;
        end += part.len();
        if part.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        end += 1;
    }
    // A region has at least three parts (us-east-1) and ends with a number.
    if parts < 3 || end > zone.len() || !zone[..end].ends_with(|c: char| c.is_ascii_digit()) {
        return Err(refuse());
    }
    Region::new(&zone[..end], what).map_err(|_| refuse())
}

/// An IAM role name from the security-credentials answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleName(String);

impl RoleName {
    /// The name.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The instance role's name: one IAM role name (letters, digits and `+=,.@_-`, at most 64).
pub(crate) fn parse_role_name(body: &[u8]) -> Result<RoleName> {
    let what = "the AWS role name answer (credential_source.url)";
    let text = answer_text(body, what, MAX_SMALL_ANSWER)?;
    if text.lines().count() > 1 {
        return Err(AwsError::new(format!(
            "{what} lists more than one role; an instance profile has one"
        )));
    }
    let valid = text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !valid {
        return Err(AwsError::new(format!(
            "{what} {}is not an IAM role name (letters, digits and +=,.@_-, at most 64)",
            shown_answer(text)
        )));
    }
    Ok(RoleName(text.to_string()))
}

/// The role's credentials from the `url/ROLE` answer: a JSON object with `AccessKeyId`,
/// `SecretAccessKey` and `Token` (and `Code`, which must be `Success` when present).
pub(crate) fn parse_role_credentials(body: &[u8]) -> Result<AwsCredentials> {
    let what = "the AWS role credentials answer";
    let text = answer_text(body, what, MAX_CREDENTIALS_ANSWER)?;
    // The parser's message gives only a position: the text holds secrets.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        AwsError::new(format!(
            "{what} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| AwsError::new(format!("{what} is not a JSON object")))?;
    let field = |name: &str, required: bool| -> Result<Option<String>> {
        match object.get(name) {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            None | Some(serde_json::Value::Null) if !required => Ok(None),
            None | Some(serde_json::Value::Null) => {
                Err(AwsError::new(format!("{what} has no \"{name}\"")))
            }
            Some(_) => Err(AwsError::new(format!("{what}: \"{name}\" is not a string"))),
        }
    };
    if let Some(code) = field("Code", false)?
        && code != "Success"
    {
        return Err(AwsError::new(format!(
            "{what} reports Code {}instead of Success",
            shown_answer(&code)
        )));
    }
    let id = field("AccessKeyId", true)?.unwrap_or_default();
    let secret = field("SecretAccessKey", true)?.unwrap_or_default();
    let token = field("Token", false)?;
    AwsCredentials::new(id, secret, token, Origin::Metadata)
}

/// Every parser of an instance-metadata answer run on `body` (the fuzz targets and property
/// tests: none may panic, whatever the bytes); whether each accepted it, in the order of the
/// requests: IMDSv2 token, region, role name, role credentials.
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub fn parse_aws_metadata_answer(body: &[u8]) -> [bool; 4] {
    [
        parse_imdsv2_token(body).is_ok(),
        parse_region_answer(body).is_ok(),
        parse_role_name(body).is_ok(),
        parse_role_credentials(body).is_ok(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Signature Version 4.

/// An HTTP request to sign.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignableRequest<'a> {
    pub method: &'a str,
    /// The URL as sent: https, with a host.
    pub url: &'a str,
    /// The request's own headers (e.g. `Content-Type`, or `date` in AWS's old test suite), all
    /// signed; not `Authorization`, `host`, `x-amz-date` or `x-amz-security-token`.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers signing adds, in google-auth's order: `Authorization`, `host`, `x-amz-date`
/// (unless the request has a `date` header) and `x-amz-security-token` (with a session token).
pub(crate) type SignedHeaders = Vec<(&'static str, String)>;

/// The service of an AWS endpoint host, as google-auth works it out: its first label without a
/// `-fips` suffix (`sts.us-east-2.amazonaws.com` and `sts-fips.…` → `sts`).
pub(crate) fn service_from_host(host: &str) -> &str {
    let first = host.split('.').next().unwrap_or(host);
    first.strip_suffix("-fips").unwrap_or(first)
}

/// `YYYYMMDDTHHMMSSZ` for a time from 1970 to 9999.
fn amz_date(time: SystemTime) -> Result<String> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AwsError::new("the signing time is before 1970"))?
        .as_secs();
    if secs >= 253_402_300_800 {
        return Err(AwsError::new("the signing time is after 9999"));
    }
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Ok(humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], ""))
}

/// AWS's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The canonical URI: the URL's path as written (non-ASCII and unsafe characters
/// percent-encoded, existing escapes kept), with `.` and `..` segments removed and runs of
/// slashes collapsed (a trailing slash kept), `/` when empty. This is google-auth's and AWS's
/// test suite's reading (the get-utf8 vector); AWS SDKs encode an already-encoded path once
/// more for services other than S3, which only matters for paths holding escapes (STS's is
/// `/`).
fn canonical_uri(url: &Url) -> String {
    // `Url` has already removed dot segments (also `%2e`) and encoded what needs it.
    let mut out = String::with_capacity(url.path().len());
    for c in url.path().chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query: each name and value decoded (`+` as a space, as google-auth reads it),
/// encoded with AWS's rule, sorted by name then value; a name without a value gets `=`.
fn canonical_query(query: Option<&str>) -> String {
    // Decoded to bytes, so an escape of invalid UTF-8 (`%FF`) is kept as it is.
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).collect::<Vec<u8>>()
    };
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_encode(&decode(k), AWS_ENCODE).to_string(),
                percent_encode(&decode(v), AWS_ENCODE).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value for the canonical request: trimmed, inner runs of spaces folded into one.
fn fold_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8], data: &str) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs a request with AWS Signature Version 4 for `service` in `region` at `time`, and
/// returns the headers to add (see [`SignedHeaders`]).
pub(crate) fn sign(
    request: &SignableRequest<'_>,
    service: &str,
    region: &Region,
    credentials: &AwsCredentials,
    time: SystemTime,
) -> Result<SignedHeaders> {
    let url = Url::parse(request.url)
        .map_err(|e| AwsError::new(format!("the AWS request URL is not a URL ({e})")))?;
    let host = match url.host_str() {
        Some(h) if url.scheme() == "https" && !h.is_empty() => h,
        _ => {
            return Err(AwsError::new(
                "the AWS request URL is not an https URL with a host",
            ));
        }
    };
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let method = request.method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AwsError::new(
            "the AWS request method is not an HTTP method",
        ));
    }
    let amz_date = amz_date(time)?;
    let date_stamp = &amz_date[..8];

    // Canonical headers: lowercase names, sorted; repeated names joined with commas.
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: &str| {
        let name = name.trim().to_ascii_lowercase();
        let value = fold_spaces(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    };
    for (name, value) in request.headers {
        let valid = !name.trim().is_empty()
            && name
                .trim()
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':');
        if !valid {
            return Err(AwsError::new("an AWS request header name is not valid"));
        }
        let lower = name.trim().to_ascii_lowercase();
        if ["authorization", "host", DATE_HEADER, SECURITY_TOKEN_HEADER].contains(&lower.as_str()) {
            return Err(AwsError::new(format!(
                "the AWS request header {lower} is set by signing, not by the request"
            )));
        }
        add(name, value);
    }
    let has_date = request
        .headers
        .iter()
        .any(|(n, _)| n.trim().eq_ignore_ascii_case("date"));
    if let Some(token) = &credentials.session_token {
        add(SECURITY_TOKEN_HEADER, token.expose());
    }
    add("host", &host);
    if !has_date {
        add(DATE_HEADER, &amz_date);
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_uri(&url),
        canonical_query(url.query()),
        hex(&Sha256::digest(request.body)),
    );
    let scope = format!("{date_stamp}/{}/{service}/aws4_request", region.as_str());
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(
        format!("AWS4{}", credentials.secret_access_key.expose()).as_bytes(),
        date_stamp,
    );
    let k_region = hmac_sha256(k_date.as_ref(), region.as_str());
    let k_service = hmac_sha256(k_region.as_ref(), service);
    let k_signing = hmac_sha256(k_service.as_ref(), "aws4_request");
    let signature = hex(hmac_sha256(k_signing.as_ref(), &string_to_sign).as_ref());

    let mut out: SignedHeaders = vec![
        (
            "Authorization",
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                credentials.access_key_id
            ),
        ),
        ("host", host),
    ];
    if !has_date {
        out.push((DATE_HEADER, amz_date));
    }
    if let Some(token) = &credentials.session_token {
        out.push((SECURITY_TOKEN_HEADER, token.expose().clone()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The subject token.

/// The STS subject token: a `POST` to `verification_url` (its `{region}` replaced), signed for
/// the service its host names, with `x-goog-cloud-target-resource: AUDIENCE` added, serialized
/// as google-auth does: `quote(json.dumps({"headers":[{"key","value"}…],"method","url"},
/// separators=(",", ":"), sort_keys=True))`. It holds the session token, hence a secret.
pub(crate) fn subject_token(
    verification_url: &str,
    region: &Region,
    credentials: &AwsCredentials,
    audience: &str,
    time: SystemTime,
) -> Result<Secret<String>> {
    let url = verification_url.replace("{region}", region.as_str());
    let parsed = Url::parse(&url).map_err(|e| {
        AwsError::new(format!(
            "credential_source.regional_cred_verification_url is not a URL ({e})"
        ))
    })?;
    let service = service_from_host(parsed.host_str().unwrap_or_default());
    let request = SignableRequest {
        method: "POST",
        url: &url,
        headers: &[],
        body: b"",
    };
    let mut headers = sign(&request, service, region, credentials, time)?;
    headers.push((TARGET_RESOURCE_HEADER, audience.to_string()));

    let mut json = String::from("{\"headers\":[");
    for (i, (key, value)) in headers.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"key\":");
        python_json_string(&mut json, key);
        json.push_str(",\"value\":");
        python_json_string(&mut json, value);
        json.push('}');
    }
    json.push_str("],\"method\":\"POST\",\"url\":");
    python_json_string(&mut json, &url);
    json.push('}');
    Ok(Secret::new(
        utf8_percent_encode(&json, PYTHON_QUOTE).to_string(),
    ))
}

/// The secrets inside a subject token [`subject_token`] made (the session token, and the
/// signature for good measure), for masking them wherever a server would echo them alone.
pub(crate) fn subject_token_secrets(token: &str) -> Vec<String> {
    let Ok(json) = percent_encoding::percent_decode_str(token).decode_utf8() else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&json) else {
        return Vec::new();
    };
    value["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| {
            matches!(
                h["key"].as_str(),
                Some(SECURITY_TOKEN_HEADER | "Authorization")
            )
        })
        .filter_map(|h| h["value"].as_str().map(str::to_string))
        .collect()
}

/// Python's `urllib.parse.quote` with its default `safe="/"`.
const PYTHON_QUOTE: &AsciiSet = &AWS_ENCODE.remove(b'/');

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii`): `\"`, `\\`, the short
/// escapes, and `\u00xx` (lowercase hex) for every other character outside space..`~`,
/// with surrogate pairs above U+FFFF.
fn python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
pub(super) mod tests;
