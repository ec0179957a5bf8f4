//! The handshake: building the redirect to Clerk's Frontend API (spec §2.7) and consuming
//! what comes back (spec §2.8).

use serde_json::Value;
use url::Url;

use super::context::{CookieChoice, RequestContext};
use super::{ClerkOptions, OrgTarget, SUPPORTED_BAPI_VERSION};
use crate::domain::instance::InstanceType;
use crate::domain::jwt::{
    CATEGORY_IGNORE, CATEGORY_SESSION, ENSURE_CLERK_JWT, Jwt, TokenError, TokenErrorReason,
};
use crate::domain::keys::KeySource;
use crate::domain::reason::Reason;
use crate::domain::urls::{append_query_param, remove_query_params};

/// The handshake `Location`: `<base>/v1/client/handshake?redirect_url=…&…`.
pub fn handshake_url(
    options: &ClerkOptions,
    ctx: &RequestContext<'_>,
    cookies: &CookieChoice<'_>,
    reason: &Reason,
) -> Option<String> {
    let clerk_url = ctx.clerk_url()?;
    let mut redirect = clerk_url.clone();
    remove_query_params(&mut redirect, &["__clerk_db_jwt", "__dev_session"]);
    let base = frontend_api_base(options, clerk_url);
    let mut url = Url::parse(&format!("https://{base}/v1/client/handshake")).ok()?;
    append_query_param(&mut url, "redirect_url", redirect.as_str());
    append_query_param(&mut url, "__clerk_api_version", SUPPORTED_BAPI_VERSION);
    append_query_param(
        &mut url,
        "suffixed_cookies",
        if cookies.suffixed { "true" } else { "false" },
    );
    append_query_param(&mut url, "__clerk_hs_reason", &reason.as_str());
    append_query_param(&mut url, "format", "nonce");
    if let Some(token) = cookies.session.as_deref().or(ctx.header_token()) {
        append_query_param(&mut url, "__session", token);
    }
    if options.instance_type() == InstanceType::Development
        && let Some(db) = cookies.dev_browser.as_deref()
    {
        append_query_param(&mut url, "__clerk_db_jwt", db);
    }
    if let Some(target) = options.org_sync.target(clerk_url.path()) {
        let value = match &target {
            OrgTarget::OrganizationId(id) | OrgTarget::OrganizationSlug(id) => id.as_str(),
            OrgTarget::PersonalAccount => "",
        };
        append_query_param(&mut url, "organization_id", value);
    }
    Some(url.into())
}

/// The frontend API host (and path, for a proxy URL) without its scheme: the proxy URL
/// (absolute, or resolved against the request's origin), else the satellite's or the key's
/// frontend API.
fn frontend_api_base(options: &ClerkOptions, clerk_url: &Url) -> String {
    let base = match &options.proxy_url {
        Some(proxy) => match Url::parse(proxy) {
            Ok(absolute) => absolute.to_string(),
            Err(_) => clerk_url.join(proxy).map(String::from).unwrap_or_default(),
        },
        None => options.original_frontend_api().into_owned(),
    };
    let without_scheme = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .unwrap_or(&base);
    without_scheme.trim_end_matches('/').to_owned()
}

/// The URL Clerk sends the browser back to after a handshake: the same URL without the
/// handshake, help, dev-browser and nonce parameters.
pub fn cleaned_url(clerk_url: &Url) -> Url {
    let mut url = clerk_url.clone();
    remove_query_params(
        &mut url,
        &[
            "__clerk_handshake",
            "__clerk_help",
            "__clerk_db_jwt",
            "__clerk_handshake_nonce",
        ],
    );
    url
}

/// The value of the last `__session…` cookie among Set-Cookie directives ("" if none).
pub fn session_from_directives(directives: &[String]) -> String {
    let mut token = String::new();
    for directive in directives {
        let pair = directive.split(';').next().unwrap_or("");
        let mut parts = pair.split('=');
        let name = parts.next().unwrap_or("");
        if name.starts_with("__session") {
            token = parts.next().unwrap_or("").to_owned();
        }
    }
    token
}

/// `verifyHandshakeToken` (spec §2.8): a JWT whose payload carries `handshake: [directive]`,
/// checked for type, algorithm, category and signature, with no claim checks.
pub async fn verify_handshake_token<K: KeySource>(
    token: &str,
    keys: &K,
) -> Result<Vec<String>, TokenError> {
    let jwt = Jwt::decode(token)?;
    let key = keys.key(jwt.kid()).await?;
    let category_ok = match jwt.header().get("cat") {
        None => true,
        Some(Value::String(cat)) => cat == CATEGORY_SESSION || cat == CATEGORY_IGNORE,
        Some(_) => false,
    };
    if !category_ok {
        return Err(TokenError {
            reason: TokenErrorReason::TokenInvalid,
            message: "Invalid handshake token category".into(),
            action: Some(ENSURE_CLERK_JWT),
        });
    }
    crate::domain::jwt::verify_signature(&jwt, &key).map_err(|e| match e.reason {
        TokenErrorReason::TokenInvalidSignature => TokenError {
            message: "Handshake signature is invalid.".into(),
            ..e
        },
        _ => e,
    })?;
    let directives = jwt
        .payload()
        .get("handshake")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(directives)
}
