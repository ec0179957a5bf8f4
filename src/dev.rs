//! `clerk-forward-auth dev`: the service on a built-in default, for a first try without a
//! Clerk account. An ephemeral RSA key signs a token; `/verify` trusts only that key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::{LogFormat, Settings};
use crate::domain::instance::{InstanceType, PublishableKey};
use crate::domain::time::now_ms;
use crate::mint::{Signer, session_claims};
use crate::startup::Application;
use crate::telemetry;

/// A production-shaped instance: development instances also demand Clerk's dev-browser
/// cookie on the cookie path, which would only confuse a first curl.
const DEV_FRONTEND_API: &str = "clerk.example.com";

pub async fn run(listen: SocketAddr) -> ExitCode {
    let _logs = telemetry::init(LogFormat::Human, "info");
    let signer = match Signer::generate("ins_dev") {
        Ok(signer) => signer,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let pk = PublishableKey::for_frontend_api(DEV_FRONTEND_API, InstanceType::Production);
    let env: HashMap<String, String> = [
        ("CLERK_PUBLISHABLE_KEY", pk.as_str().to_owned()),
        ("CLERK_JWT_KEY", signer.public_pem()),
        ("CLERK_FA_LISTEN", listen.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = match Settings::load(None, &env) {
        Ok((settings, _)) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(&settings, crate::reload::ConfigSource::default()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let base = format!("http://{}:{}", listen.ip(), app.port());
    let now_s = now_ms() / 1000;
    let token = signer.sign(&session_claims("user_dev", DEV_FRONTEND_API, now_s, 3600));
    println!(
        "\nclerk-forward-auth dev: /verify trusts an ephemeral key made just now (no Clerk account).\n\n\
         A session token for user_dev, valid for one hour:\n\n  {token}\n\n\
         Signed in (200 with X-Auth-User-Id: user_dev):\n\n  \
         curl -i -H 'Authorization: Bearer {token}' {base}/verify\n\n\
         Signed out (401, x-clerk-auth-reason: session-token-and-uat-missing):\n\n  \
         curl -i {base}/verify\n\n\
         Forged (401, token-invalid-signature):\n\n  \
         curl -i -H 'Authorization: Bearer {forged}' {base}/verify\n\n\
         Metrics: {base}/metrics   Press Ctrl-C to stop.\n",
        forged = forge(&token),
    );
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The same token with one signature bit flipped (a character well inside the signature,
/// so the base64 stays canonical).
fn forge(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len().saturating_sub(10);
    if let Some(c) = chars.get_mut(i) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}
