//! Tests of `aws`: AWS's SigV4 suite and google-auth's vectors, subject tokens produced by
//! google-auth itself (tests/interop/aws_subject_token.py), the plan and the parsers.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

// AWS's documented example keys, as google-auth's tests use them.
const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub(in crate::credentials) const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(in crate::credentials) const SECRET_ACCESS_KEY: &str =
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(in crate::credentials) const TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE";
const REQUEST_PARAMS: &str = r#"{"KeySchema":[{"KeyType":"HASH","AttributeName":"Id"}],"TableName":"TestTable","AttributeDefinitions":[{"AttributeName":"Id","AttributeType":"S"}],"ProvisionedThroughput":{"WriteCapacityUnits":5,"ReadCapacityUnits":5}}"#;
pub(in crate::credentials) const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID";
pub(in crate::credentials) const TEMPLATE: &str = DEFAULT_REGIONAL_CRED_VERIFICATION_URL;

#[derive(Clone, Copy)]
enum Keys {
    /// The SigV4 suite's keys.
    Suite,
    /// google-auth's keys without a session token.
    Sts,
    /// google-auth's keys with its session token.
    Session,
}

impl Keys {
    fn credentials(self) -> AwsCredentials {
        match self {
            Keys::Suite => creds(SUITE_KEY_ID, SUITE_SECRET, None),
            Keys::Sts => creds(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
            Keys::Session => creds(ACCESS_KEY_ID, SECRET_ACCESS_KEY, Some(TOKEN)),
        }
    }
}

fn creds(id: &str, secret: &str, token: Option<&str>) -> AwsCredentials {
    AwsCredentials::new(id.into(), secret.into(), token.map(Into::into), Origin::Env).unwrap()
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn region(name: &str) -> Region {
    Region::new(name, "test").unwrap()
}

struct Vector {
    name: &'static str,
    region: &'static str,
    time: &'static str,
    keys: Keys,
    method: &'static str,
    url: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    authorization: &'static str,
}

// google-auth's tests/test_aws.py TEST_FIXTURES, every one: AWS's SigV4 test suite requests
// (botocore's aws4_testsuite, as google-auth embeds them) and google-auth's own EC2, STS,
// STS FIPS and DynamoDB requests. The expected Authorization headers are theirs.
const SIGV4_VECTORS: &[Vector] = &[
    Vector {
        name: "get-vanilla",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470",
    },
    Vector {
        name: "get-relative-relative",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/foo/bar/../..",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470",
    },
    Vector {
        name: "get-slash-dot-slash",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/./",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470",
    },
    Vector {
        name: "get-slash-pointless-dot",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/./foo",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=910e4d6c9abafaf87898e1eb4c929135782ea25bb0279703146455745391e63a",
    },
    Vector {
        name: "get-utf8",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/%E1%88%B4",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=8d6634c189aa8c75c2e51e106b6b5121bed103fdb351f7d7d4381c738823af74",
    },
    Vector {
        name: "get-vanilla-query-order-key-case",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/?foo=Zoo&foo=aha",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=be7148d34ebccdc6423b19085378aa0bee970bdc61d144bd1a8c48c33079ab09",
    },
    Vector {
        name: "get-vanilla-query-order-value",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/?foo=b&foo=a",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=feb926e49e382bec75c9d7dcb2a1b6dc8aa50ca43c25d2bc51143768c0875acc",
    },
    Vector {
        name: "get-vanilla-ut8-query",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "GET",
        url: "https://host.foo.com/?ሴ=bar",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=6fb359e9a05394cc7074e0feb42573a2601abc0c869a953e8c5c12e4e01f1a8c",
    },
    Vector {
        name: "post-header-key-sort",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "POST",
        url: "https://host.foo.com/",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT"), ("ZOO", "zoobar")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host;zoo, Signature=b7a95a52518abbca0964a999a880429ab734f35ebbf1235bd79a5de87756dc4a",
    },
    Vector {
        name: "post-header-value-case",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "POST",
        url: "https://host.foo.com/",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT"), ("zoo", "ZOOBAR")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host;zoo, Signature=273313af9d0c265c531e11db70bbd653f3ba074c1009239e8559d3987039cad7",
    },
    Vector {
        name: "get-header-value-trim",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "POST",
        url: "https://host.foo.com/",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT"), ("p", "phfft")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host;p, Signature=debf546796015d6f6ded8626f5ce98597c33b47b9164cf6b17b4642036fcb592",
    },
    Vector {
        name: "post-x-www-form-urlencoded",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "POST",
        url: "https://host.foo.com/",
        headers: &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("date", "Mon, 09 Sep 2011 23:36:00 GMT"),
        ],
        body: "foo=bar",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=content-type;date;host, Signature=5a15b22cf462f047318703b92e6f4f38884e4a7ab7b1d6426ca46a8bd1c26cbc",
    },
    Vector {
        name: "post-vanilla-query",
        region: "us-east-1",
        time: "2011-09-09T23:36:00Z",
        keys: Keys::Suite,
        method: "POST",
        url: "https://host.foo.com/?foo=bar",
        headers: &[("date", "Mon, 09 Sep 2011 23:36:00 GMT")],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b6e3b79003ce0743a491606ba1035a804593b0efb1e20a11cba83f8c25a57a92",
    },
    Vector {
        name: "google-auth: ec2 DescribeRegions GET with session token",
        region: "us-east-2",
        time: "2020-08-11T06:55:22Z",
        keys: Keys::Session,
        method: "GET",
        url: "https://ec2.us-east-2.amazonaws.com?Action=DescribeRegions&Version=2013-10-15",
        headers: &[],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/ec2/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=41e226f997bf917ec6c9b2b14218df0874225f13bb153236c247881e614fafc9",
    },
    Vector {
        name: "google-auth: sts GetCallerIdentity with session token",
        region: "us-east-2",
        time: "2020-08-11T06:55:22Z",
        keys: Keys::Session,
        method: "POST",
        url: "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        headers: &[],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60",
    },
    Vector {
        name: "google-auth: sts GetCallerIdentity without session token",
        region: "us-east-2",
        time: "2020-08-11T06:55:22Z",
        keys: Keys::Sts,
        method: "POST",
        url: "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        headers: &[],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=9e722e5b7bfa163447e2a14df118b45ebd283c5aea72019bdf921d6e7dc01a9a",
    },
    Vector {
        name: "google-auth: dynamodb CreateTable with session token, headers and body",
        region: "us-east-2",
        time: "2020-08-11T06:55:22Z",
        keys: Keys::Session,
        method: "POST",
        url: "https://dynamodb.us-east-2.amazonaws.com/",
        headers: &[
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDB_20120810.CreateTable"),
        ],
        body: REQUEST_PARAMS,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=eb8bce0e63654bba672d4a8acb07e72d69210c1797d56ce024dbbc31beb2a2c7",
    },
    Vector {
        name: "google-auth: sts-fips GetCallerIdentity with session token",
        region: "us-east-2",
        time: "2020-08-11T06:55:22Z",
        keys: Keys::Session,
        method: "POST",
        url: "https://sts-fips.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        headers: &[],
        body: "",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=9b27e912850bcfdde94f29f05c992022ad6ed0d40b31381a33e0da6cdb4c5a8f",
    },
];

#[test]
fn sigv4_vectors_give_the_expected_authorization_byte_for_byte() {
    assert_eq!(SIGV4_VECTORS.len(), 18);
    for v in SIGV4_VECTORS {
        let credentials = v.keys.credentials();
        let url = Url::parse(v.url).unwrap();
        let host = url.host_str().unwrap();
        let request = SignableRequest {
            method: v.method,
            url: v.url,
            headers: v.headers,
            body: v.body.as_bytes(),
        };
        let signed = sign(
            &request,
            service_from_host(host),
            &region(v.region),
            &credentials,
            at(v.time),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let names: Vec<&str> = signed.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            signed[0],
            ("Authorization", v.authorization.to_string()),
            "{}",
            v.name
        );
        assert_eq!(signed[1], ("host", host.to_string()), "{}", v.name);
        let has_date = v
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("date"));
        let mut expected = vec!["Authorization", "host"];
        if !has_date {
            expected.push("x-amz-date");
            assert_eq!(signed[2].1, at(v.time).pipe_amz(), "{}", v.name);
        }
        if credentials.session_token.is_some() {
            expected.push("x-amz-security-token");
            assert_eq!(signed.last().unwrap().1, TOKEN, "{}", v.name);
        }
        assert_eq!(names, expected, "{}", v.name);
    }
}

trait PipeAmz {
    fn pipe_amz(self) -> String;
}

impl PipeAmz for SystemTime {
    fn pipe_amz(self) -> String {
        amz_date(self).unwrap()
    }
}

#[test]
fn amz_date_format_and_range() {
    assert_eq!(
        amz_date(at("2020-08-11T06:55:22Z")).unwrap(),
        "20200811T065522Z"
    );
    assert_eq!(
        amz_date(at("2011-09-09T23:36:00.999Z")).unwrap(),
        "20110909T233600Z"
    );
    assert!(amz_date(UNIX_EPOCH - std::time::Duration::from_secs(1)).is_err());
    assert!(amz_date(UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_800)).is_err());
}

/// Signs a bodiless POST for STS in us-east-2 at google-auth's STS time.
fn sign_sts_post(url: &str, headers: &[(&str, &str)], c: &AwsCredentials) -> Result<SignedHeaders> {
    let r = SignableRequest {
        method: "POST",
        url,
        headers,
        body: b"",
    };
    sign(
        &r,
        "sts",
        &region("us-east-2"),
        c,
        at("2020-08-11T06:55:22Z"),
    )
}

#[test]
fn sign_refuses_urls_google_auth_refuses() {
    let c = Keys::Sts.credentials();
    for url in [
        "invalid",
        "http://invalid",
        "https://",
        "ftp://sts.amazonaws.com",
    ] {
        let err = sign_sts_post(url, &[], &c).unwrap_err();
        assert!(err.to_string().contains("AWS request URL"), "{url}: {err}");
    }
}

#[test]
fn canonical_uri_follows_aws_normalisation() {
    let uri = |u: &str| canonical_uri(&Url::parse(u).unwrap());
    assert_eq!(uri("https://h.example"), "/");
    assert_eq!(uri("https://h.example/foo/bar/../.."), "/");
    assert_eq!(uri("https://h.example/./foo"), "/foo");
    assert_eq!(uri("https://h.example//example//"), "/example/");
    assert_eq!(uri("https://h.example/example/"), "/example/");
    assert_eq!(uri("https://h.example/example space/"), "/example%20space/");
    assert_eq!(uri("https://h.example/\u{1234}"), "/%E1%88%B4");
    assert_eq!(uri("https://h.example/%E1%88%B4"), "/%E1%88%B4");
}

#[test]
fn canonical_query_encodes_and_sorts() {
    assert_eq!(canonical_query(None), "");
    assert_eq!(canonical_query(Some("")), "");
    assert_eq!(
        canonical_query(Some("Version=2011-06-15&Action=GetCallerIdentity")),
        "Action=GetCallerIdentity&Version=2011-06-15"
    );
    assert_eq!(
        canonical_query(Some("foo=b&foo=a&Foo=z")),
        "Foo=z&foo=a&foo=b"
    );
    assert_eq!(canonical_query(Some("a=1&&b")), "a=1&b=");
    assert_eq!(
        canonical_query(Some("k=a+b%20c%2Fd~_-.")),
        "k=a%20b%20c%2Fd~_-."
    );
    assert_eq!(canonical_query(Some("%E1%88%B4=bar")), "%E1%88%B4=bar");
    assert_eq!(canonical_query(Some("k=%FF%fe")), "k=%FF%FE");
}

#[test]
fn header_values_are_trimmed_and_folded_and_repeats_joined() {
    // Signing the folded form equals signing the plain one.
    let c = Keys::Suite.credentials();
    let time = at("2011-09-09T23:36:00Z");
    let sign_with = |headers: &'static [(&'static str, &'static str)]| {
        let r = SignableRequest {
            method: "POST",
            url: "https://host.foo.com/",
            headers,
            body: b"",
        };
        sign(&r, "host", &region("us-east-1"), &c, time).unwrap()[0]
            .1
            .clone()
    };
    assert_eq!(
        sign_with(&[
            ("date", "Mon, 09 Sep 2011 23:36:00 GMT"),
            ("p", "  phfft   now ")
        ]),
        sign_with(&[
            ("date", "Mon, 09 Sep 2011 23:36:00 GMT"),
            ("p", "phfft now")
        ])
    );
    assert_eq!(
        sign_with(&[
            ("date", "Mon, 09 Sep 2011 23:36:00 GMT"),
            ("P", "a"),
            ("p", "b")
        ]),
        sign_with(&[("date", "Mon, 09 Sep 2011 23:36:00 GMT"), ("p", "a,b")])
    );
    assert_eq!(fold_spaces(" a \t b  c "), "a b c");
}

#[test]
fn signing_key_matches_aws_documented_example() {
    // AWS's documented derivation example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
    // 20120215, us-east-1, iam.
    let k_date = hmac_sha256(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
    let k_region = hmac_sha256(k_date.as_ref(), "us-east-1");
    let k_service = hmac_sha256(k_region.as_ref(), "iam");
    let k_signing = hmac_sha256(k_service.as_ref(), "aws4_request");
    assert_eq!(
        hex(k_signing.as_ref()),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn constants_are_google_auths() {
    assert_eq!(
        SUBJECT_TOKEN_TYPE,
        "urn:ietf:params:aws:token-type:aws4_request"
    );
    assert_eq!(IMDSV2_TTL_SECONDS, "300");
    assert_eq!(
        DEFAULT_REGIONAL_CRED_VERIFICATION_URL,
        "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    );
}

#[test]
fn service_comes_from_the_first_label_without_fips() {
    assert_eq!(service_from_host("sts.us-east-2.amazonaws.com"), "sts");
    assert_eq!(service_from_host("sts-fips.us-east-2.amazonaws.com"), "sts");
    assert_eq!(service_from_host("iam.amazonaws.com"), "iam");
    assert_eq!(service_from_host("host.foo.com"), "host");
}

// Printed by tests/interop/aws_subject_token.py (google-auth 2.63.1's
// aws.Credentials.retrieve_subject_token with its clock frozen).
const GA_SESSION_TOKEN_US_EAST_2: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-amz-security-token%2C%20Signature%3D596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.us-east-2.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220200811T065522Z%22%7D%2C%7B%22key%22%3A%22x-amz-security-token%22%2C%22value%22%3A%22AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl/%2BOtkIKGO7fAE%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts.us-east-2.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%7D";
pub(in crate::credentials) const GA_NO_SESSION_TOKEN_EU_WEST_1: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAIOSFODNN7EXAMPLE/20200811/eu-west-1/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%2C%20Signature%3D879ee29a24ab861ad57e5907dd6a0cc068527798e5ca8e9270ed49657ee57395%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.eu-west-1.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220200811T065522Z%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts.eu-west-1.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%7D";
const GA_LONG_AUDIENCE_FIPS_AP_SOUTHEAST_2: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAIOSFODNN7EXAMPLE/20110909/ap-southeast-2/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-amz-security-token%2C%20Signature%3D1096ebaa6ee481c9e6e1d1509c9e3d6bd2bec55b73b139356308f07bf59323ca%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts-fips.ap-southeast-2.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220110909T233600Z%22%7D%2C%7B%22key%22%3A%22x-amz-security-token%22%2C%22value%22%3A%22AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl/%2BOtkIKGO7fAE%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/a-rather-long-pool-name-0123456789/providers/a-rather-long-provider-name-with-unicode-%5Cu00e9-and-spaces%20%2520%20%26%20%3F%20%3D%20%5C%22%20%5C%5C%20end%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts-fips.ap-southeast-2.amazonaws.com%3FVersion%3D2011-06-15%26Action%3DGetCallerIdentity%22%7D";
// google-auth's default supplier run against the fake metadata server (region us-east-2b,
// role gcp-aws-role, the session-token keys): the same token as the first case.
pub(in crate::credentials) const GA_METADATA_SERVER_US_EAST_2B: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-amz-security-token%2C%20Signature%3D596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.us-east-2.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220200811T065522Z%22%7D%2C%7B%22key%22%3A%22x-amz-security-token%22%2C%22value%22%3A%22AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT%2BFvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2%2BcTQtpZ3CYWFXG8C5zqx37wnOE49mRl/%2BOtkIKGO7fAE%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts.us-east-2.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%7D";
const LONG_AUDIENCE: &str = "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/a-rather-long-pool-name-0123456789/providers/a-rather-long-provider-name-with-unicode-\u{e9}-and-spaces %20 & ? = \" \\ end";

#[test]
fn subject_tokens_equal_google_auths_byte_for_byte() {
    let token = |template: &str, r: &str, keys: Keys, audience: &str, time: &str| {
        subject_token(
            template,
            &region(r),
            &keys.credentials(),
            audience,
            at(time),
        )
        .unwrap()
        .into_inner()
    };
    assert_eq!(
        token(
            TEMPLATE,
            "us-east-2",
            Keys::Session,
            AUDIENCE,
            "2020-08-11T06:55:22Z"
        ),
        GA_SESSION_TOKEN_US_EAST_2
    );
    assert_eq!(
        token(
            TEMPLATE,
            "eu-west-1",
            Keys::Sts,
            AUDIENCE,
            "2020-08-11T06:55:22Z"
        ),
        GA_NO_SESSION_TOKEN_EU_WEST_1
    );
    assert_eq!(
        token(
            "https://sts-fips.{region}.amazonaws.com?Version=2011-06-15&Action=GetCallerIdentity",
            "ap-southeast-2",
            Keys::Session,
            LONG_AUDIENCE,
            "2011-09-09T23:36:00Z"
        ),
        GA_LONG_AUDIENCE_FIPS_AP_SOUTHEAST_2
    );
}

#[test]
fn subject_token_decodes_to_google_auths_shape() {
    let t = subject_token(
        TEMPLATE,
        &region("us-east-2"),
        &Keys::Sts.credentials(),
        AUDIENCE,
        at("2020-08-11T06:55:22Z"),
    )
    .unwrap();
    let json = percent_encoding::percent_decode_str(t.expose())
        .decode_utf8()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(
        v["url"],
        "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    );
    let keys: Vec<&str> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "Authorization",
            "host",
            "x-amz-date",
            "x-goog-cloud-target-resource"
        ]
    );
    assert_eq!(
        v["headers"][0]["value"],
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=9e722e5b7bfa163447e2a14df118b45ebd283c5aea72019bdf921d6e7dc01a9a"
    );
    assert_eq!(v["headers"][3]["value"], AUDIENCE);
    assert_eq!(format!("{t:?}"), "Secret([redacted])");
}

#[test]
fn python_json_escapes_like_ensure_ascii() {
    let mut s = String::new();
    python_json_string(
        &mut s,
        "a\"b\\c/\n\r\t\u{8}\u{c}\u{1}\u{7f}\u{e9}\u{1f600}~",
    );
    assert_eq!(s, r#""a\"b\\c/\n\r\t\b\f\u0001\u007f\u00e9\ud83d\ude00~""#);
}

#[test]
fn region_from_availability_zone() {
    let ok = |body: &str, want: &str| {
        assert_eq!(
            parse_region_answer(body.as_bytes()).unwrap().as_str(),
            want,
            "{body:?}"
        )
    };
    ok("us-east-2b", "us-east-2");
    ok("us-east-2b\n", "us-east-2");
    ok("eu-central-1a", "eu-central-1");
    ok("us-gov-west-1a", "us-gov-west-1");
    ok("us-west-2-lax-1a", "us-west-2");
    ok("us-east-1-wl1-bos-wlz-1", "us-east-1");
    ok("ap-southeast-2", "ap-southeast-2");
    for bad in [
        "",
        " ",
        "b",
        "2b",
        "a1b",
        "us-east-2bb",
        "US-EAST-2B",
        "us-east-b",
        "-east-2b",
        "us--east-2b",
        "us-east",
        "<html><body>404</body></html>",
        "us-east-2b us-west-1a",
        "us_east_2b",
        "us-east-2\u{e9}",
    ] {
        let err = parse_region_answer(bad.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("the AWS availability zone answer (region_url)"),
            "{bad:?}: {err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
    assert!(
        parse_region_answer(&[0xff, 0xfe])
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
    assert!(
        parse_region_answer(&[b'a'; 2000])
            .unwrap_err()
            .to_string()
            .contains("too large")
    );
}

#[test]
fn region_names() {
    for good in [
        "us-east-1",
        "cn-north-1",
        "us-isob-east-1",
        "il-central-1",
        " eu-west-3 ",
    ] {
        assert!(Region::new(good, "AWS_REGION").is_ok(), "{good}");
    }
    for bad in [
        "",
        "US-EAST-1",
        "us-east-1.evil.example/",
        "us east 1",
        "-us-1",
        "us-1-",
        "useast",
        "us--1",
    ] {
        let err = Region::new(bad, "AWS_REGION").unwrap_err().to_string();
        assert!(err.starts_with("AWS_REGION: "), "{err}");
        assert!(
            err.contains("is not an AWS region name such as us-east-2"),
            "{err}"
        );
    }
}

#[test]
fn answers_are_quoted_only_when_plain_words() {
    let e = parse_region_answer(b"us-east-2bb").unwrap_err().to_string();
    assert_eq!(
        e,
        "the AWS availability zone answer (region_url) \"us-east-2bb\" is not an availability zone such as us-east-2b"
    );
    let e = parse_region_answer(b"AQAEAFk8zJ2n1ZPgL7s0-dG_XqVw5mU+token==")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the AWS availability zone answer (region_url) is not an availability zone such as us-east-2b"
    );
    let e = parse_role_name(b"<html>AQAEAFk8zJ2n1ZPgL7s0</html>")
        .unwrap_err()
        .to_string();
    assert!(
        !e.contains("AQAE") && e.contains("is not an IAM role name"),
        "{e}"
    );
}

#[test]
fn role_names() {
    assert_eq!(
        parse_role_name(b"gcp-aws-role").unwrap().as_str(),
        "gcp-aws-role"
    );
    assert_eq!(
        parse_role_name(b"Role+=,.@_-1\n").unwrap().as_str(),
        "Role+=,.@_-1"
    );
    for (bad, why) in [
        (&b""[..], "is empty"),
        (b"one\ntwo", "more than one role"),
        (b"../admin", "is not an IAM role name"),
        (b"a b", "is not an IAM role name"),
        (b"role?x=1", "is not an IAM role name"),
        (&[b'r'; 65][..], "is not an IAM role name"),
        (&[b'r'; 1025][..], "too large"),
        (&[0xc3, 0x28][..], "UTF-8"),
    ] {
        let err = parse_role_name(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

pub(in crate::credentials) fn credentials_json(extra: &str) -> String {
    format!(
        r#"{{"Code":"Success","LastUpdated":"2020-08-11T06:40:00Z","Type":"AWS-HMAC","AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}","Token":"{TOKEN}","Expiration":"2020-08-11T12:55:22Z"{extra}}}"#
    )
}

#[test]
fn role_credentials_answer() {
    let c = parse_role_credentials(credentials_json("").as_bytes()).unwrap();
    assert_eq!(c, Keys::Session.credentials());
    // google-auth's test answer: only the three fields.
    let minimal =
        format!(r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}"}}"#);
    assert_eq!(
        parse_role_credentials(minimal.as_bytes()).unwrap(),
        Keys::Sts.credentials()
    );
    let null_token = format!(
        r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}","Token":null}}"#
    );
    assert_eq!(
        parse_role_credentials(null_token.as_bytes()).unwrap(),
        Keys::Sts.credentials()
    );

    let cases: Vec<(String, &str)> = vec![
        (String::new(), "is empty"),
        ("[]".into(), "is not a JSON object"),
        (
            format!(r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}""#),
            "is not valid JSON (line 1, column",
        ),
        (
            format!(r#"{{"AccessKeyId":"{ACCESS_KEY_ID}"}}"#),
            "has no \"SecretAccessKey\"",
        ),
        (
            format!(r#"{{"SecretAccessKey":"{SECRET_ACCESS_KEY}"}}"#),
            "has no \"AccessKeyId\"",
        ),
        (
            format!(
                r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":["{SECRET_ACCESS_KEY}"]}}"#
            ),
            "\"SecretAccessKey\" is not a string",
        ),
        (
            format!(
                r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"","Token":"{TOKEN}"}}"#
            ),
            "the AWS role credentials answer: SecretAccessKey is empty",
        ),
        (
            format!(
                r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}","Token":"{TOKEN} x"}}"#
            ),
            "the AWS role credentials answer: Token is not a valid HTTP header value",
        ),
        (
            format!(
                r#"{{"AccessKeyId":"{SECRET_ACCESS_KEY}","SecretAccessKey":"{SECRET_ACCESS_KEY}"}}"#
            ),
            "the AWS role credentials answer: AccessKeyId is not an AWS access key id",
        ),
        (
            credentials_json("").replace("Success", "Failed"),
            "reports Code \"Failed\" instead of Success",
        ),
        (
            format!("{} ", "x".repeat(MAX_CREDENTIALS_ANSWER + 1)),
            "too large",
        ),
    ];
    for (body, why) in cases {
        let err = parse_role_credentials(body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("the AWS role credentials answer"), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(
            !err.contains(SECRET_ACCESS_KEY) && !err.contains(TOKEN),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn imdsv2_token_answer() {
    assert_eq!(
        parse_imdsv2_token(b"AQAEAN-token==\n").unwrap().expose(),
        "AQAEAN-token=="
    );
    assert!(parse_imdsv2_token(b"").is_err());
    assert!(
        parse_imdsv2_token(b"two words")
            .unwrap_err()
            .to_string()
            .contains("header value")
    );
    assert!(parse_imdsv2_token(b"a\r\nX-Injected: 1").is_err());
}

#[test]
fn credentials_debug_is_redacted() {
    let c = Keys::Session.credentials();
    let shown = format!("{c:?}");
    assert_eq!(
        shown,
        "AwsCredentials { access_key_id: \"AKIAIOSFODNN7EXAMPLE\", secret_access_key: Secret([redacted]), session_token: Some(Secret([redacted])) }"
    );
}

fn source(region_url: Option<&str>, url: Option<&str>, imdsv2: Option<&str>) -> CredentialSource {
    CredentialSource::new("aws1", Some(TEMPLATE), region_url, url, imdsv2).unwrap()
}

const REGION_URL: &str = "http://169.254.169.254/latest/meta-data/placement/availability-zone";
const CREDS_URL: &str = "http://169.254.169.254/latest/meta-data/iam/security-credentials";
const IMDSV2_URL: &str = "http://169.254.169.254/latest/api/token";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn credential_source_fields_are_checked_as_google_auth_does() {
    let s = source(Some(REGION_URL), Some(CREDS_URL), Some(IMDSV2_URL));
    assert_eq!(s.verification_url, TEMPLATE);
    assert_eq!(s.url.unwrap().as_str(), CREDS_URL);
    // IPv6 metadata, and (as google-auth today) any other host, e.g. a local emulator.
    let v6 = source(
        Some("http://[fd00:ec2::254]/latest/meta-data/placement/availability-zone"),
        Some("http://[fd00:ec2::254]/latest/meta-data/iam/security-credentials"),
        Some("http://[fd00:ec2::254]/latest/api/token"),
    );
    assert_eq!(
        v6.imdsv2_session_token_url.unwrap().host_str(),
        Some("[fd00:ec2::254]")
    );
    assert!(
        CredentialSource::new(
            "aws1",
            Some(TEMPLATE),
            Some("http://127.0.0.1:8080/az"),
            None,
            None
        )
        .is_ok()
    );
    // Empty fields are absent fields.
    assert_eq!(
        CredentialSource::new("aws1", Some(TEMPLATE), Some(""), Some(""), Some(""))
            .unwrap()
            .url,
        None
    );

    let err = |env_id: &str,
               verify: Option<&str>,
               region_url: Option<&str>,
               url: Option<&str>,
               imds: Option<&str>| {
        CredentialSource::new(env_id, verify, region_url, url, imds)
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("aws2", Some(TEMPLATE), None, None, None).contains("AWS version 2 is not supported")
    );
    assert!(err("aws", Some(TEMPLATE), None, None, None).contains("is not an AWS environment"));
    assert!(err("azure1", Some(TEMPLATE), None, None, None).contains("is not an AWS environment"));
    assert!(err("aws1x", Some(TEMPLATE), None, None, None).contains("is not an AWS environment"));
    assert!(
        err("aws1", None, None, None, None).contains("regional_cred_verification_url is missing")
    );
    assert!(
        err(
            "aws1",
            Some("http://sts.{region}.amazonaws.com"),
            None,
            None,
            None
        )
        .contains("not an https URL")
    );
    assert!(
        err(
            "aws1",
            Some("https://u:p@sts.{region}.amazonaws.com"),
            None,
            None,
            None
        )
        .contains("user name or password")
    );
    let e = err(
        "aws1",
        Some(TEMPLATE),
        Some("http://user:hunter2@169.254.169.254/az"),
        None,
        None,
    );
    assert!(
        e.contains("credential_source.region_url must not carry a user name or password")
            && !e.contains("hunter2"),
        "{e}"
    );
    assert!(
        err(
            "aws1",
            Some(TEMPLATE),
            None,
            Some("file:///etc/passwd"),
            None
        )
        .contains("credential_source.url must be an http or https URL")
    );
    assert!(
        err("aws1", Some(TEMPLATE), None, None, Some("not a url"))
            .starts_with("credential_source.imdsv2_session_token_url is not a URL")
    );
}

#[test]
fn environment_comes_first_and_empty_values_are_unset() {
    let s = source(Some(REGION_URL), Some(CREDS_URL), Some(IMDSV2_URL));
    let p = plan(
        &s,
        env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", TOKEN),
        ]),
    )
    .unwrap();
    assert_eq!(p.region, RegionFrom::Env(region("eu-west-1")));
    assert_eq!(
        p.credentials,
        CredentialsFrom::Env(Keys::Session.credentials())
    );
    assert!(!p.needs_metadata());
    assert_eq!(p.imdsv2_request(), None);
    assert_eq!(p.region_request(None), None);
    assert_eq!(p.role_name_request(None), None);

    let p = plan(
        &s,
        env(&[
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", ""),
        ]),
    )
    .unwrap();
    assert_eq!(p.region, RegionFrom::Env(region("us-east-1")));
    assert_eq!(p.credentials, CredentialsFrom::Env(Keys::Sts.credentials()));

    // One of the two keys alone is not enough: the instance role is used.
    let p = plan(&s, env(&[("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)])).unwrap();
    assert_eq!(
        p.region,
        RegionFrom::Metadata(Url::parse(REGION_URL).unwrap())
    );
    assert_eq!(
        p.credentials,
        CredentialsFrom::Metadata(Url::parse(CREDS_URL).unwrap())
    );

    let e = plan(&s, env(&[("AWS_REGION", "us-east-1.evil.example")]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("AWS_REGION: "), "{e}");
    let e = plan(
        &s,
        env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", "bad token\n"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("AWS_SESSION_TOKEN is not a valid HTTP header value")
            && !e.contains(SECRET_ACCESS_KEY),
        "{e}"
    );
}

#[test]
fn missing_sources_are_named() {
    let none = source(None, None, None);
    let e = plan(&none, env(&[])).unwrap_err().to_string();
    assert!(
        e.contains(
            "cannot determine the AWS region: set AWS_REGION, or give credential_source.region_url"
        ),
        "{e}"
    );
    let e = plan(&none, env(&[("AWS_DEFAULT_REGION", "us-east-2")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot determine the AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give credential_source.url"), "{e}");
}

#[test]
fn one_aws_key_alone_is_named_when_there_is_no_role_url() {
    let s = source(None, None, None);
    let e = plan(
        &s,
        env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.ends_with("(AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not)"),
        "{e}"
    );
    let e = plan(
        &s,
        env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.ends_with("(AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not)"),
        "{e}"
    );
    assert!(!e.contains(SECRET_ACCESS_KEY));
    let e = plan(
        &s,
        env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", " "),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "AWS_ACCESS_KEY_ID is empty");
}

#[test]
fn headers_set_by_signing_are_refused_in_the_request() {
    let c = Keys::Sts.credentials();
    let url = "https://sts.us-east-2.amazonaws.com/";
    for name in [
        "Host",
        "authorization",
        "X-Amz-Date",
        "x-amz-security-token",
    ] {
        let e = sign_sts_post(url, &[(name, "x")], &c).unwrap_err();
        assert!(e.to_string().contains("is set by signing"), "{e}");
    }
    for name in ["", "a b", "a:b", "a\nb"] {
        assert!(sign_sts_post(url, &[(name, "x")], &c).is_err(), "{name:?}");
    }
}

#[test]
fn metadata_requests_in_order_with_imdsv2_headers() {
    let s = source(Some(REGION_URL), Some(CREDS_URL), Some(IMDSV2_URL));
    let p = plan(&s, env(&[])).unwrap();
    assert!(p.needs_metadata());
    let put = p.imdsv2_request().unwrap();
    assert_eq!(put.method, Method::Put);
    assert_eq!(put.url.as_str(), IMDSV2_URL);
    assert_eq!(
        put.headers,
        vec![(
            "X-aws-ec2-metadata-token-ttl-seconds",
            Secret::new("300".to_string())
        )]
    );

    let token = parse_imdsv2_token(b"awsimdsv2sessiontoken").unwrap();
    let with_token = vec![("X-aws-ec2-metadata-token", token.clone())];
    let r = p.region_request(Some(&token)).unwrap();
    assert_eq!(
        (r.method, r.url.as_str(), &r.headers),
        (Method::Get, REGION_URL, &with_token)
    );
    let r = p.role_name_request(Some(&token)).unwrap();
    assert_eq!(
        (r.method, r.url.as_str(), &r.headers),
        (Method::Get, CREDS_URL, &with_token)
    );
    let role = parse_role_name(b"gcp-aws-role").unwrap();
    let r = p.role_credentials_request(&role, Some(&token)).unwrap();
    assert_eq!(r.url.as_str(), format!("{CREDS_URL}/gcp-aws-role"));
    assert_eq!(r.headers, with_token);
    assert!(!format!("{r:?}").contains("awsimdsv2sessiontoken"));

    // Without imdsv2_session_token_url: IMDSv1, no headers.
    let p = plan(
        &source(Some(REGION_URL), Some(&format!("{CREDS_URL}/")), None),
        env(&[]),
    )
    .unwrap();
    assert_eq!(p.imdsv2_request(), None);
    assert!(p.region_request(None).unwrap().headers.is_empty());
    let r = p.role_credentials_request(&role, None).unwrap();
    assert_eq!(r.url.as_str(), format!("{CREDS_URL}/gcp-aws-role"));

    // Region in the environment, credentials from the role: the token is still fetched.
    let p = plan(&s, env(&[("AWS_REGION", "us-east-2")])).unwrap();
    assert!(p.imdsv2_request().is_some());
    assert_eq!(p.region_request(None), None);
    assert!(p.role_name_request(None).is_some());
}

// The requests google-auth 2.63.1's default supplier made to the fake metadata server of
// tests/interop/aws_subject_token.py (method, path, metadata headers), in order. It asks for an
// IMDSv2 token before the region and again before the role; the plan asks once and reuses it
// (the token lives 300 s), otherwise the same requests with the same headers.
const GA_METADATA_REQUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "PUT",
        "/latest/api/token",
        "X-aws-ec2-metadata-token-ttl-seconds",
        "300",
    ),
    (
        "GET",
        "/latest/meta-data/placement/availability-zone",
        "X-aws-ec2-metadata-token",
        "awsimdsv2sessiontoken",
    ),
    (
        "PUT",
        "/latest/api/token",
        "X-aws-ec2-metadata-token-ttl-seconds",
        "300",
    ),
    (
        "GET",
        "/latest/meta-data/iam/security-credentials",
        "X-aws-ec2-metadata-token",
        "awsimdsv2sessiontoken",
    ),
    (
        "GET",
        "/latest/meta-data/iam/security-credentials/gcp-aws-role",
        "X-aws-ec2-metadata-token",
        "awsimdsv2sessiontoken",
    ),
];

/// A request as seen by the fake server: method, path, metadata header name and value.
type Seen = (String, String, String, String);

/// Plays the plan against the answers of the generator's fake metadata server and returns the
/// requests made and the subject token.
fn run_plan_against_fake_metadata(base: &str) -> (Vec<Seen>, Secret<String>) {
    let s = source(
        Some(&format!(
            "{base}/latest/meta-data/placement/availability-zone"
        )),
        Some(&format!("{base}/latest/meta-data/iam/security-credentials")),
        Some(&format!("{base}/latest/api/token")),
    );
    let p = plan(&s, env(&[])).unwrap();
    let mut seen = Vec::new();
    let mut serve = |r: MetadataRequest| {
        let method = match r.method {
            Method::Get => "GET",
            Method::Put => "PUT",
        };
        let (name, value) = r
            .headers
            .first()
            .map(|(n, v)| (n.to_string(), v.expose().clone()))
            .unwrap_or_default();
        seen.push((method.to_string(), r.url.path().to_string(), name, value));
        match r.url.path() {
            "/latest/api/token" => b"awsimdsv2sessiontoken".to_vec(),
            "/latest/meta-data/placement/availability-zone" => b"us-east-2b".to_vec(),
            "/latest/meta-data/iam/security-credentials" => b"gcp-aws-role".to_vec(),
            "/latest/meta-data/iam/security-credentials/gcp-aws-role" => {
                credentials_json("").into_bytes()
            }
            other => panic!("unexpected request {other}"),
        }
    };
    let token = p
        .imdsv2_request()
        .map(|r| parse_imdsv2_token(&serve(r)).unwrap());
    let region = match p.region_request(token.as_ref()) {
        Some(r) => parse_region_answer(&serve(r)).unwrap(),
        None => unreachable!("the region is in the metadata"),
    };
    let role = parse_role_name(&serve(p.role_name_request(token.as_ref()).unwrap())).unwrap();
    let credentials = parse_role_credentials(&serve(
        p.role_credentials_request(&role, token.as_ref()).unwrap(),
    ))
    .unwrap();
    let t = subject_token(
        &p.verification_url,
        &region,
        &credentials,
        AUDIENCE,
        at("2020-08-11T06:55:22Z"),
    )
    .unwrap();
    (seen, t)
}

#[test]
fn end_to_end_from_metadata_answers_equals_google_auth() {
    for base in [
        "http://127.0.0.1:8080",
        "http://169.254.169.254",
        "http://[fd00:ec2::254]",
    ] {
        let (seen, token) = run_plan_against_fake_metadata(base);
        assert_eq!(token.expose(), GA_METADATA_SERVER_US_EAST_2B);
        let expected: Vec<Seen> = GA_METADATA_REQUESTS
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2) // google-auth's second IMDSv2 PUT
            .map(|(_, (m, p, n, v))| (m.to_string(), p.to_string(), n.to_string(), v.to_string()))
            .collect();
        assert_eq!(seen, expected, "{base}");
    }
}

// Secrets long and distinctive enough that no message could hold them by chance.
fn secret_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=]{12,40}".prop_map(|s| format!("S3cr3t{s}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_region_answer(&body);
        let _ = parse_role_name(&body);
        let _ = parse_role_credentials(&body);
        let _ = parse_imdsv2_token(&body);
    }

    #[test]
    fn parsers_never_panic_on_text(text in "\\PC{0,64}") {
        let _ = parse_region_answer(text.as_bytes());
        let _ = parse_role_name(text.as_bytes());
        let _ = parse_role_credentials(text.as_bytes());
        let _ = Region::new(&text, "AWS_REGION");
        let _ = CredentialSource::new(&text, Some(&text), Some(&text), Some(&text), Some(&text));
    }

    #[test]
    fn no_secret_in_any_error_or_debug(
        secret in secret_strategy(),
        token in secret_strategy(),
        id in prop_oneof![Just(ACCESS_KEY_ID.to_string()), "[ -~]{0,20}"],
        cut in 0usize..400,
        code in prop_oneof![Just("Success"), Just("Failed")],
        token_suffix in prop_oneof![Just(""), Just(" "), Just("\n"), Just("\u{e9}")],
        wrap in any::<bool>(),
    ) {
        let token_value = format!("{token}{token_suffix}");
        let json = serde_json::json!({
            "Code": code,
            "AccessKeyId": id,
            "SecretAccessKey": if wrap { serde_json::json!([secret]) } else { serde_json::json!(secret) },
            "Token": token_value,
        })
        .to_string();
        let cut = cut.min(json.len());
        let bodies = [json.clone(), json[..(0..=cut).rev().find(|&i| json.is_char_boundary(i)).unwrap_or(0)].to_string(), format!("{json}x")];
        for body in bodies {
            match parse_role_credentials(body.as_bytes()) {
                Ok(c) => {
                    let shown = format!("{c:?}");
                    prop_assert!(!shown.contains(&secret) && !shown.contains(&token), "{}", shown);
                }
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    prop_assert!(!shown.contains(&secret) && !shown.contains(&token), "{}", shown);
                }
            }
        }
        // The same values from the environment.
        let s = source(None, None, None);
        let vars = env(&[("AWS_REGION", "us-east-2"), ("AWS_ACCESS_KEY_ID", &id), ("AWS_SECRET_ACCESS_KEY", &secret), ("AWS_SESSION_TOKEN", &token_value)]);
        let shown = match plan(&s, vars) {
            Ok(p) => format!("{p:?}"),
            Err(e) => format!("{e} {e:?}"),
        };
        prop_assert!(!shown.contains(&secret) && !shown.contains(&token), "{}", shown);
        // Signing errors.
        if let Ok(c) = AwsCredentials::new(ACCESS_KEY_ID.into(), secret.clone(), Some(token.clone()), Origin::Env) {
            let e = sign_sts_post("http://sts.example", &[], &c).unwrap_err();
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(&secret) && !shown.contains(&token), "{}", shown);
        }
    }

    #[test]
    fn an_echoed_imdsv2_token_never_reaches_an_error(
        tail in "[A-Za-z0-9+/]{51}",
        shape in 0usize..5,
    ) {
        // IMDSv2 tokens are 56 base64 characters.
        let token = format!("AQAEA{tail}==");
        let body = match shape {
            0 => token.clone(),
            1 => format!("us-east-{token}"),
            2 => format!("<html>{token}</html>"),
            3 => format!("{token}\n{token}"),
            _ => format!(r#"{{"Code":"{token}","AccessKeyId":"AKID","SecretAccessKey":"x"}}"#),
        };
        for e in [
            parse_region_answer(body.as_bytes()).err(),
            parse_role_name(body.as_bytes()).err(),
            parse_role_credentials(body.as_bytes()).err(),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(!e.to_string().contains(&token), "{}", e);
        }
    }

    #[test]
    fn zone_letters_map_to_their_region(
        area in "(us|eu|ap|sa|ca|me|af|il|mx)",
        direction in "(east|west|north|south|central|southeast|northeast)",
        n in 1u8..10,
        letter in "[a-f]",
    ) {
        let zone = format!("{area}-{direction}-{n}{letter}");
        let want = format!("{area}-{direction}-{n}");
        let got = parse_region_answer(zone.as_bytes()).unwrap();
        prop_assert_eq!(got.as_str(), want.as_str());
    }
}
