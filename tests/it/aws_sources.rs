//! `external_account` files with AWS sources (`credential_source.environment_id: "aws1"`):
//! the region and credentials from the environment or from a fake EC2 instance metadata
//! server (IMDSv2 session token, availability zone, role name, role credentials), the signed
//! `GetCallerIdentity` subject token sent to STS, and, with Python google-auth, that its
//! `aws.Credentials` sends the very same subject token for the same metadata and time.

use crate::harness::*;
use crate::runner::{Trial, trials};
use serde_json::{Value, json};

const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID";
const TEMPLATE: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
/// AWS's documented example keys, not real credentials.
const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE";
const IMDSV2_TOKEN: &str = "awsimdsv2sessiontoken";
const ROLE: &str = "gcp-aws-role";

const TOKEN_PATH: &str = "/latest/api/token";
const ZONE_PATH: &str = "/latest/meta-data/placement/availability-zone";
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials";

/// The AWS external account file, its metadata URLs on the fake server.
fn aws_file(env: &TestEnv, imdsv2: bool) -> std::path::PathBuf {
    let base = &env.google.base;
    let mut source = json!({
        "environment_id": "aws1",
        "region_url": format!("{base}{ZONE_PATH}"),
        "url": format!("{base}{ROLE_PATH}"),
        "regional_cred_verification_url": TEMPLATE,
    });
    if imdsv2 {
        source["imdsv2_session_token_url"] = json!(format!("{base}{TOKEN_PATH}"));
    }
    env.write_json(
        "aws.json",
        &json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": format!("{base}/sts"),
            "credential_source": source,
        }),
    )
}

/// Queues one set of answers of an EC2 instance's metadata server on the fake.
fn queue_metadata(google: &FakeGoogle) {
    let text = |body: &str| {
        let mut c = Canned::html(200, body);
        c.content_type = "text/plain";
        c
    };
    google.enqueue(TOKEN_PATH, text(IMDSV2_TOKEN));
    google.enqueue(ZONE_PATH, text("us-east-2b"));
    google.enqueue(ROLE_PATH, text(ROLE));
    google.enqueue(
        &format!("{ROLE_PATH}/{ROLE}"),
        Canned::json(
            200,
            &json!({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": SECRET_ACCESS_KEY, "Token": SESSION_TOKEN,
                "Expiration": "2030-01-01T00:00:00Z"})
            .to_string(),
        ),
    );
}

fn print_token(env: &TestEnv, file: &std::path::Path, vars: &[(&str, &str)]) -> Finished {
    let mut cmd = env.cmd();
    cmd.arg("print-access-token")
        .env("GOOGLE_APPLICATION_CREDENTIALS", file);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Running::spawn(cmd, env.path("browser-args")).finish()
}

/// The subject token decoded: Python's `quote` of sorted, compact JSON.
fn decode(subject_token: &str) -> Value {
    let json = percent_encoding::percent_decode_str(subject_token)
        .decode_utf8()
        .expect("UTF-8");
    serde_json::from_str(&json).expect("JSON")
}

fn header<'a>(token: &'a Value, name: &str) -> &'a str {
    token["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == name)
        .and_then(|h| h["value"].as_str())
        .unwrap_or_else(|| panic!("no {name} in {token}"))
}

/// The requests the metadata server saw, in order: method, path, IMDSv2 header.
fn metadata_requests(google: &FakeGoogle) -> Vec<(String, String, Option<String>)> {
    google
        .seen_all()
        .into_iter()
        .filter(|s| s.path.starts_with("/latest/"))
        .map(|s| {
            let header = s
                .headers
                .get("x-aws-ec2-metadata-token")
                .or_else(|| s.headers.get("x-aws-ec2-metadata-token-ttl-seconds"))
                .cloned();
            (s.method, s.path, header)
        })
        .collect()
}

/// An AWS file reading IMDSv2 metadata, the metadata queued, STS answering
/// `ya29.aws-federated`: `print-access-token` with it succeeds. Returns the file and the run.
fn federate_from_imdsv2(env: &TestEnv) -> (std::path::PathBuf, Finished) {
    let file = aws_file(env, true);
    queue_metadata(&env.google);
    env.google
        .enqueue("/sts", Canned::access_token("ya29.aws-federated", 3600));
    let done = print_token(env, &file, &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    (file, done)
}

fn aws_role_credentials_from_imdsv2_metadata_are_signed_into_the_subject_token() {
    let env = TestEnv::new();
    let (file, done) = federate_from_imdsv2(&env);
    assert_eq!(done.stdout, "ya29.aws-federated\n");
    assert_eq!(
        metadata_requests(&env.google),
        [
            ("PUT".into(), TOKEN_PATH.into(), Some("300".into())),
            ("GET".into(), ZONE_PATH.into(), Some(IMDSV2_TOKEN.into())),
            ("GET".into(), ROLE_PATH.into(), Some(IMDSV2_TOKEN.into())),
            (
                "GET".into(),
                format!("{ROLE_PATH}/{ROLE}"),
                Some(IMDSV2_TOKEN.into())
            ),
        ]
    );
    let sts = &env.google.seen("/sts")[0];
    assert_eq!(
        sts.form["subject_token_type"],
        "urn:ietf:params:aws:token-type:aws4_request"
    );
    assert_eq!(sts.form["audience"], AUDIENCE);
    let token = decode(&sts.form["subject_token"]);
    assert_eq!(token["method"], "POST");
    assert_eq!(
        token["url"],
        "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    );
    assert_eq!(header(&token, "host"), "sts.us-east-2.amazonaws.com");
    assert_eq!(header(&token, "x-amz-security-token"), SESSION_TOKEN);
    assert_eq!(header(&token, "x-goog-cloud-target-resource"), AUDIENCE);
    let date = header(&token, "x-amz-date");
    let authorization = header(&token, "Authorization");
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=",
            &date[..8]
        )),
        "{authorization}"
    );
    // The token is cached: a second call asks neither the metadata server nor STS.
    let again = print_token(&env, &file, &[]);
    assert_eq!(again.stdout, "ya29.aws-federated\n");
    assert_eq!(env.google.seen("/sts").len(), 1);
    assert_eq!(env.google.seen(ZONE_PATH).len(), 1);
}

fn aws_credentials_and_region_from_the_environment_skip_the_metadata_server() {
    let env = TestEnv::new();
    let file = aws_file(&env, true);
    env.google
        .enqueue("/sts", Canned::access_token("ya29.aws-env", 3600));
    let done = print_token(
        &env,
        &file,
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.aws-env\n");
    assert!(metadata_requests(&env.google).is_empty());
    let token = decode(&env.google.seen("/sts")[0].form["subject_token"]);
    assert_eq!(header(&token, "host"), "sts.eu-west-1.amazonaws.com");
    assert!(
        !token.to_string().contains("x-amz-security-token"),
        "{token}"
    );
    assert!(
        header(&token, "Authorization")
            .contains("/eu-west-1/sts/aws4_request, SignedHeaders=host;x-amz-date, "),
        "{token}"
    );
}

fn aws_metadata_failures_are_one_line_errors_without_secrets() {
    let env = TestEnv::new();
    let file = aws_file(&env, true);
    env.google
        .enqueue(TOKEN_PATH, Canned::html(200, IMDSV2_TOKEN));
    env.google.enqueue(
        ZONE_PATH,
        Canned::html(403, &format!("denied for {IMDSV2_TOKEN}")),
    );
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(done.stderr.contains(ZONE_PATH), "{}", done.stderr);
    assert!(done.stderr.contains("403"), "{}", done.stderr);
    assert!(!done.stderr.contains(IMDSV2_TOKEN), "{}", done.stderr);
    assert!(env.google.seen("/sts").is_empty());

    // Half of a key pair and no role URL: the variable missing is named.
    let base = &env.google.base;
    let no_role = env.write_json(
        "aws-no-role.json",
        &json!({"type": "external_account", "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": format!("{base}/sts"),
            "credential_source": {"environment_id": "aws1",
                "regional_cred_verification_url": TEMPLATE}}),
    );
    let done = print_token(
        &env,
        &no_role,
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ],
    );
    assert_ne!(done.code(), 0);
    assert!(
        done.stderr.contains("AWS_SECRET_ACCESS_KEY is not"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("aws-no-role.json"), "{}", done.stderr);
    assert!(done.stderr.contains("hint:"), "{}", done.stderr);
}

/// google-auth's `aws.Credentials`, run against the same fake metadata server at the time
/// gemauth signed, would send exactly the subject token gemauth sent.
fn google_auth_sends_the_same_aws_subject_token() {
    let env = TestEnv::new();
    let (file, _done) = federate_from_imdsv2(&env);
    let ours = env.google.seen("/sts")[0].form["subject_token"].clone();
    let date = header(&decode(&ours), "x-amz-date").to_string();

    queue_metadata(&env.google);
    // google-auth asks for a second IMDSv2 session token before the role.
    env.google.enqueue(TOKEN_PATH, {
        let mut c = Canned::html(200, IMDSV2_TOKEN);
        c.content_type = "text/plain";
        c
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/aws_google_auth.py"
    );
    let stdout = run_google_auth(&env, &[script.into(), file.into(), date.into()]);
    let theirs = String::from_utf8_lossy(&stdout).trim().to_string();
    assert_eq!(ours, theirs);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        aws_role_credentials_from_imdsv2_metadata_are_signed_into_the_subject_token,
        aws_credentials_and_region_from_the_environment_skip_the_metadata_server,
        aws_metadata_failures_are_one_line_errors_without_secrets,
        google_auth_sends_the_same_aws_subject_token => GoogleAuth,
    ]
}
