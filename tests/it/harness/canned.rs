//! Canned answers: a response a test queues for one request to a path, and the OAuth error
//! bodies the endpoints answer with.

use std::thread;
use std::time::Duration;

/// A canned answer that replaces the server's normal behaviour for one request to `path`.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// Time to wait before answering (a slow server).
    pub delay: Duration,
}

impl Canned {
    /// Google's answer to a refresh token that was revoked or has expired.
    pub(crate) fn expired_grant() -> Self {
        Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
        )
    }
    /// Google's answer to a refresh token of a user whose session control asks them to sign in
    /// again (`invalid_rapt`).
    pub(crate) fn reauth_required() -> Self {
        Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"reauth related error (invalid_rapt)","error_subtype":"invalid_rapt"}"#,
        )
    }
    /// A token endpoint's success: a Bearer `access_token` valid for `expires_in` seconds.
    pub(crate) fn access_token(access_token: &str, expires_in: u64) -> Self {
        Canned::json(
            200,
            &format!(
                r#"{{"access_token":"{access_token}","expires_in":{expires_in},"token_type":"Bearer"}}"#
            ),
        )
    }
    pub(crate) fn json(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.to_string(),
            content_type: "application/json",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub(crate) fn html(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.to_string(),
            content_type: "text/html",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

pub(super) fn respond(request: tiny_http::Request, canned: Canned) {
    thread::sleep(canned.delay);
    let mut response = tiny_http::Response::from_string(canned.body)
        .with_status_code(canned.status)
        .with_header(tiny_http::Header::from_bytes("Content-Type", canned.content_type).unwrap());
    for (name, value) in canned.headers {
        response.add_header(tiny_http::Header::from_bytes(name, value.as_bytes()).unwrap());
    }
    let _ = request.respond(response);
}

pub(super) fn oauth_error(error: &str, description: &str) -> Canned {
    Canned::json(
        400,
        &serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
}
