//! `gemauth print-access-token`: print a cached access token, refreshing it when needed.

use super::report::Result;
use crate::cli::{PrintAccessTokenArgs, TokenFormat};
use crate::credentials::resolve_scopes;
use crate::token;

pub(crate) fn run(args: PrintAccessTokenArgs) -> Result<()> {
    let scopes = match args.scopes.as_deref() {
        Some(spec) => Some(resolve_scopes(Some(spec))?),
        None => None,
    };
    let acting = crate::credentials::Acting {
        impersonate: args
            .impersonate_service_account
            .as_deref()
            .map(crate::credentials::parse_service_accounts)
            .transpose()?,
        lifetime_secs: args.lifetime,
    };
    let acting = (acting.impersonate.is_some() || acting.lifetime_secs.is_some()).then_some(acting);
    let token = token::get_acting(
        &token::Request {
            credential_file: args.credential_file,
            min_lifetime: args.min_lifetime,
            scopes,
        },
        acting.as_ref(),
    )?;
    super::print_warnings(&token.warnings);
    let secret = token.access_token.expose();
    match args.format {
        TokenFormat::Token => super::print_stdout(secret),
        TokenFormat::Header => super::print_stdout(&format!("Authorization: Bearer {secret}")),
        TokenFormat::Json => {
            let value = serde_json::json!({
                "access_token": secret,
                "expires_at": crate::store::rfc3339(token.expires_at),
                "token_type": token.token_type,
                "scopes": token.scopes,
                "quota_project_id": super::effective_quota_project(token.quota_project_id.as_deref())?,
            });
            super::print_stdout(&value.to_string())
        }
    }
}
