//! Property tests for the parsers that take outside input: the listener's request and callback
//! parsers, the paste parser, the credential, client secret and workforce login
//! configuration loaders, and the AWS instance-metadata answer parsers.

use std::path::Path;

use crate::credentials::{
    AuthorizedUser, Credential, ExternalAuthorizedUser, LoginConfigProblem, Scopes,
    parse_aws_metadata_answer, parse_client_config, parse_credential_file, parse_login_config,
};
use crate::flow::{Callback, parse_callback, parse_paste, parse_request};
use crate::secret::Secret;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("client_id".to_string()),
                    Just("client_secret".to_string()),
                    Just("refresh_token".to_string()),
                    Just("installed".to_string()),
                    Just("token_uri".to_string()),
                    Just("auth_uri".to_string()),
                    Just("scopes".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A planted secret as a field's value, by `wrap` (0 to 3): the string itself, in a list, in a
/// map, or deep in a list of maps; the "never quotes the value" properties plant it so.
fn planted_value(planted: &str, wrap: usize) -> Value {
    match wrap {
        0 => json!(planted),
        1 => json!([planted]),
        2 => json!({"k": planted}),
        _ => json!([{"k": [planted]}]),
    }
}

proptest! {
    #[test]
    fn request_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn request_parser_returns_the_target(target in "/[!-~]{0,100}") {
        let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        prop_assert_eq!(parse_request(head.as_bytes()), Ok(target));
    }

    #[test]
    fn callback_parser_never_panics(target in ".{0,200}", state in ".{0,40}") {
        let _ = parse_callback(&target, &state);
    }

    #[test]
    fn callback_round_trips_any_code(
        state in ".{1,60}",
        code in ".{1,120}",
        extra in prop::collection::vec(("[a-z]{1,6}", ".{0,20}"), 0..4),
    ) {
        let mut pairs: Vec<(&str, &str)> = extra
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "state" | "code" | "error"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("code", &code));
        pairs.push(("state", &state));
        let target = format!("/?{}", encode(&pairs));
        prop_assert_eq!(parse_callback(&target, &state), Callback::Code(code.clone()));
        let wrong = format!("{state}x");
        let ignored = matches!(parse_callback(&target, &wrong), Callback::Ignored { .. });
        prop_assert!(ignored, "a wrong state must be ignored");
    }

    #[test]
    fn paste_parser_never_panics(input in ".{0,300}", state in ".{0,30}", port in any::<u16>()) {
        let _ = parse_paste(&input, &state, port);
    }

    #[test]
    fn pasted_urls_and_queries_round_trip(
        state in "[A-Za-z0-9_-]{16,64}",
        code in ".{1,120}",
        port in 1u16..,
        wrapper in prop_oneof![Just(("", "")), Just(("<", ">")), Just(("\"", "\"")), Just(("  ", " \t"))],
    ) {
        let query = encode(&[("state", &state), ("code", &code), ("scope", "openid")]);
        let url = format!("http://127.0.0.1:{port}/?{query}");
        for form in [url.clone(), query.clone(), format!("?{query}")] {
            let pasted = format!("{}{form}{}", wrapper.0, wrapper.1);
            prop_assert_eq!(parse_paste(&pasted, &state, port), Ok(Callback::Code(code.clone())));
            let other_state = format!("{state}Z");
            let accepted = matches!(parse_paste(&pasted, &other_state, port), Ok(Callback::Code(_)));
            prop_assert!(!accepted, "a wrong state must not yield a code");
        }
        let other_port = port.wrapping_add(1).max(1);
        if other_port != port {
            prop_assert!(parse_paste(&url, &state, other_port).is_err());
        }
    }

    #[test]
    fn pasted_bare_codes_round_trip(code in "[A-Za-z0-9._~/+-]{10,200}") {
        let encoded: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
        prop_assert_eq!(parse_paste(&encoded, "state", 8085), Ok(Callback::Code(code.clone())));
        prop_assert_eq!(parse_paste(&code, "state", 8085), Ok(Callback::Code(code.clone())));
    }

    #[test]
    fn credential_loader_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_credential_file(Path::new("c.json"), &bytes);
    }

    /// A field holding a value of the wrong kind (a secret written where a map, a list or a
    /// number belongs, or an object where a string does) is named in the error, and the value
    /// never quoted.
    #[test]
    fn a_field_error_never_quotes_the_value(
        secret in "[A-Za-z0-9 :._/-]{8,40}",
        file in 0..4usize,
        field in 0..6usize,
        wrap in 0..4usize,
    ) {
        let value = planted_value(&format!("planted {secret}"), wrap);
        let mut base = match file {
            0 => json!({"type": "authorized_user", "client_id": "i", "client_secret": "s",
                "refresh_token": "r", "scopes": ["openid"]}),
            1 => json!({"type": "service_account", "client_email": "e@x", "private_key": "k"}),
            2 => json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                "token_url": "https://sts.googleapis.com/v1/token",
                "credential_source": {"url": "https://x/", "headers": {}}}),
            _ => json!({"type": "impersonated_service_account",
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com/x",
                "delegates": [], "source_credentials": {"type": "authorized_user",
                "client_id": "i", "client_secret": "s", "refresh_token": "r"}}),
        };
        let fields: &[&str] = match file {
            0 => &["client_id", "client_secret", "refresh_token", "scopes", "token_uri", "account"],
            1 => &["client_email", "private_key", "token_uri", "private_key_id", "project_id", "universe_domain"],
            2 => &["audience", "credential_source", "client_secret", "token_url", "universe_domain", "service_account_impersonation"],
            _ => &["delegates", "service_account_impersonation_url", "quota_project_id", "delegates", "delegates", "delegates"],
        };
        base[fields[field]] = value.clone();
        if file == 2 && field == 1 {
            base["credential_source"] = json!({"url": "https://x/", "headers": value});
        }
        if let Err(e) = parse_credential_file(Path::new("c.json"), &serde_json::to_vec(&base).unwrap()) {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains("planted"), "{}", text);
        }
    }

    #[test]
    fn credential_loader_never_panics_on_json(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = parse_credential_file(Path::new("c.json"), &bytes);
        let mut typed = value.clone();
        if let Value::Object(m) = &mut typed {
            m.insert("type".into(), json!("authorized_user"));
        }
        let _ = parse_credential_file(Path::new("c.json"), &serde_json::to_vec(&typed).unwrap());
    }

    #[test]
    fn credential_files_round_trip(
        client_id in ".{1,40}",
        secret in ".{1,40}",
        refresh in ".{1,80}",
        account in proptest::option::of(".{1,30}"),
        scopes in prop::collection::vec("[a-z:/.]{1,30}", 0..4),
        extra_value in ".{0,20}",
    ) {
        prop_assume!(!client_id.trim().is_empty() && !secret.trim().is_empty() && !refresh.trim().is_empty());
        let mut extra = Map::new();
        extra.insert("trust_boundary".into(), json!(extra_value));
        let user = AuthorizedUser {
            kind: "authorized_user".into(),
            client_id: client_id.clone(),
            client_secret: Secret::new(secret.clone()),
            refresh_token: Secret::new(refresh.clone()),
            quota_project_id: None,
            universe_domain: Some("googleapis.com".into()),
            account: account.clone(),
            scopes: Some(Scopes::List(scopes.clone())),
            token_uri: Some("https://oauth2.googleapis.com/token".into()),
            revoke_uri: None,
            extra,
        };
        let Ok(Credential::User(parsed)) = parse_credential_file(Path::new("c.json"), &user.to_json()) else {
            return Err(TestCaseError::fail("did not parse back"));
        };
        prop_assert_eq!(&parsed.client_id, &client_id);
        prop_assert_eq!(parsed.client_secret.expose(), &secret);
        prop_assert_eq!(parsed.refresh_token.expose(), &refresh);
        prop_assert_eq!(parsed.account, account);
        prop_assert_eq!(parsed.scopes.map(|s| s.to_vec()), Some(scopes));
        prop_assert_eq!(&parsed.extra["trust_boundary"], &json!(extra_value));
    }

    #[test]
    fn client_loader_never_panics(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_client_config(Path::new("client.json"), &bytes);
        let wrapped = json!({"installed": value});
        let _ = parse_client_config(Path::new("client.json"), &serde_json::to_vec(&wrapped).unwrap());
    }

    #[test]
    fn aws_metadata_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), value in any_json()) {
        let _ = parse_aws_metadata_answer(&bytes);
        let _ = parse_aws_metadata_answer(&serde_json::to_vec(&value).unwrap());
    }

    /// A workforce user file (`external_account_authorized_user`) with a wrong-kind value in
    /// any field: the field is named, the value never quoted.
    #[test]
    fn a_workforce_field_error_never_quotes_the_value(
        secret in "[A-Za-z0-9 :._/-]{8,40}",
        field in 0..10usize,
        wrap in 0..4usize,
    ) {
        let value = planted_value(&format!("planted {secret}"), wrap);
        let mut base = json!({"type": "external_account_authorized_user",
            "audience": "//iam.googleapis.com/locations/global/workforcePools/p/providers/q",
            "refresh_token": "r", "token_url": "https://sts.googleapis.com/v1/oauthtoken",
            "client_id": "i", "client_secret": "s"});
        let fields = ["audience", "refresh_token", "token_url", "token_info_url", "revoke_url",
            "client_id", "client_secret", "quota_project_id", "universe_domain", "token_url"];
        base[fields[field]] = value;
        if let Err(e) = parse_credential_file(Path::new("c.json"), &serde_json::to_vec(&base).unwrap()) {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains("planted"), "{}", text);
            prop_assert!(text.contains(fields[field]), "{}", text);
        }
    }

    #[test]
    fn workforce_credential_files_round_trip(
        client_id in ".{1,40}",
        secret in ".{1,40}",
        refresh in ".{1,80}",
        pool in "[a-z0-9-]{1,20}",
        extra_value in ".{0,20}",
    ) {
        prop_assume!(!client_id.trim().is_empty() && !secret.trim().is_empty() && !refresh.trim().is_empty());
        let mut extra = Map::new();
        extra.insert("trust_boundary".into(), json!(extra_value));
        let audience = format!("//iam.googleapis.com/locations/global/workforcePools/{pool}/providers/p");
        let user = ExternalAuthorizedUser {
            kind: "external_account_authorized_user".into(),
            audience: Some(audience.clone()),
            refresh_token: Secret::new(refresh.clone()),
            token_url: "https://sts.googleapis.com/v1/oauthtoken".into(),
            token_info_url: Some("https://sts.googleapis.com/v1/introspect".into()),
            revoke_url: None,
            client_id: client_id.clone(),
            client_secret: Secret::new(secret.clone()),
            quota_project_id: None,
            universe_domain: Some("googleapis.com".into()),
            extra,
        };
        let Ok(Credential::ExternalUser(parsed)) = parse_credential_file(Path::new("c.json"), &user.to_json()) else {
            return Err(TestCaseError::fail("did not parse back"));
        };
        prop_assert_eq!(&parsed.client_id, &client_id);
        prop_assert_eq!(parsed.client_secret.expose(), &secret);
        prop_assert_eq!(parsed.refresh_token.expose(), &refresh);
        prop_assert_eq!(parsed.audience, Some(audience));
        prop_assert_eq!(&parsed.extra["trust_boundary"], &json!(extra_value));
        prop_assert_eq!(parsed.universe_domain.as_deref(), Some("googleapis.com"));
    }

    #[test]
    fn login_config_loader_never_panics(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_login_config(&bytes);
        let _ = parse_login_config(&serde_json::to_vec(&value).unwrap());
        let mut typed = value;
        if let Value::Object(m) = &mut typed {
            m.insert("type".into(), json!("external_account_authorized_user_login_config"));
        }
        let _ = parse_login_config(&serde_json::to_vec(&typed).unwrap());
    }

    /// A login configuration with a wrong-kind or malformed value in any field: the error
    /// never quotes it.
    #[test]
    fn a_login_config_error_never_quotes_the_value(
        secret in "[A-Za-z0-9 :._/-]{8,40}",
        field in 0..6usize,
        wrap in 0..4usize,
    ) {
        let planted = format!("planted {secret}");
        let value = match wrap {
            3 => json!(format!("https://user:{planted}@x.example/?q={planted}")),
            _ => planted_value(&planted, wrap),
        };
        let mut base = json!({"type": "external_account_authorized_user_login_config",
            "audience": "//iam.googleapis.com/locations/global/workforcePools/p/providers/q",
            "auth_url": "https://auth.cloud.google/authorize",
            "token_url": "https://sts.googleapis.com/v1/oauthtoken",
            "token_info_url": "https://sts.googleapis.com/v1/introspect",
            "universe_domain": "googleapis.com"});
        let fields = ["audience", "auth_url", "token_url", "token_info_url", "universe_domain",
            "universe_cloud_web_domain"];
        base[fields[field]] = value;
        if let Err(e) = parse_login_config(&serde_json::to_vec(&base).unwrap()) {
            let text = match &e {
                LoginConfigProblem::Invalid(p) => p.clone(),
                LoginConfigProblem::Untrusted { host, .. } => host.clone(),
            };
            prop_assert!(!text.contains("planted"), "{}", text);
            prop_assert!(!format!("{e:?}").contains("planted"), "{:?}", e);
        }
    }
}
