//! `gemauth print-identity-token`: print a cached OpenID Connect ID token for an audience,
//! minting it when needed.

use super::report::Result;
use crate::cli::{IdTokenFormat, PrintIdentityTokenArgs};
use crate::idtoken;

pub(crate) fn run(args: PrintIdentityTokenArgs) -> Result<()> {
    let token = idtoken::get(&idtoken::IdTokenParams {
        credential_file: args.credential_file,
        audience: args.audiences,
        include_email: args.include_email,
        min_lifetime: None,
        acting: match args.impersonate_service_account.as_deref() {
            Some(spec) => Some(crate::credentials::Acting {
                impersonate: Some(crate::credentials::parse_service_accounts(spec)?),
                lifetime_secs: None,
            }),
            None => None,
        },
    })?;
    super::print_warnings(&token.warnings);
    let secret = token.token.expose();
    match args.format {
        IdTokenFormat::Token => super::print_stdout(secret),
        IdTokenFormat::Json => {
            let value = serde_json::json!({
                "id_token": secret,
                "expires_at": crate::store::rfc3339(token.expires_at),
                "audience": token.audience,
                "email": token.email,
            });
            super::print_stdout(&value.to_string())
        }
    }
}
