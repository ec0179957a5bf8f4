//! The sign-in redirect of `auth.protect()`/`redirectToSignIn` (spec §7): where a signed-out
//! page load is sent when a sign-in URL is configured.

use url::Url;

use super::authenticate::ClerkOptions;
use super::instance::InstanceType;
use super::urls::{host_and_port, set_query_param};

/// `<sign-in URL>?redirect_url=<this request's public URL>` (or `<sign-in URL>/tasks?…` for a
/// pending session). `redirect_url` is only ever the request's own URL, so this is never an
/// open redirect. `None` without a sign-in URL or a public URL.
pub fn sign_in_redirect(
    options: &ClerkOptions,
    clerk_url: Option<&Url>,
    dev_browser: Option<&str>,
    pending: bool,
) -> Option<String> {
    let base = clerk_url?;
    let sign_in = options.sign_in_url.as_deref()?;
    let target = if pending {
        format!("{sign_in}/tasks")
    } else {
        sign_in.to_owned()
    };
    let mut url = base.join(&target).ok()?;
    let cross_origin = host_and_port(base) != host_and_port(&url);
    let mut return_back = base.clone();
    if cross_origin && options.is_satellite {
        set_query_param(&mut return_back, "__clerk_synced", "false");
    }
    set_query_param(&mut url, "redirect_url", return_back.as_str());
    if cross_origin
        && options.instance_type() == InstanceType::Development
        && let Some(db) = dev_browser
    {
        set_query_param(&mut url, "__clerk_db_jwt", db);
    }
    Some(url.into())
}
