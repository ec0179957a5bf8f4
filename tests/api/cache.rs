//! The verified-token cache: hits skip the signature but never the checks that can change.

use std::sync::Arc;

use clerk_forward_auth::domain::authenticate::{
    Authenticator, Quiet, RequestContext, RequestState,
};
use clerk_forward_auth::domain::backend::NoBackend;
use clerk_forward_auth::domain::keys::{StaticKey, VerifyingKey, signatures_checked};
use clerk_forward_auth::domain::request::{AuthRequestLine, ForwardedHeaders, HeaderList};
use clerk_forward_auth::domain::time::now_ms;
use clerk_forward_auth::domain::verified::{Known, TokenCache, Verified};
use clerk_forward_auth::metrics::Metrics;
use clerk_forward_auth::token_cache::VerifiedTokens;
use serde_json::json;

use crate::helpers::*;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Runs the domain with a real cache and a chosen clock.
fn decide(tokens: &VerifiedTokens, headers: &[(&str, &str)], now_ms: i64) -> RequestState {
    let options = {
        let env = [
            ("CLERK_PUBLISHABLE_KEY".to_owned(), PROD_PK.to_owned()),
            ("CLERK_JWT_KEY".to_owned(), PUBLIC_PEM.to_owned()),
        ]
        .into_iter()
        .collect();
        clerk_forward_auth::config::Settings::load(None, &env)
            .unwrap()
            .0
            .clerk
    };
    let keys = StaticKey(shared_key());
    let headers = HeaderList::new(headers);
    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let ctx = RequestContext::from_headers(
        &headers,
        ForwardedHeaders::XForwarded,
        line,
        options.publishable_key.cookie_suffix(),
    );
    let auth = Authenticator {
        options: &options,
        keys: &keys,
        backend: &NoBackend,
        observer: &Quiet,
        tokens,
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(auth.authenticate(&ctx, now_ms))
}

/// One key for every decision, as in the service: a hit needs the very key that verified.
fn shared_key() -> Arc<VerifyingKey> {
    static KEY: std::sync::LazyLock<Arc<VerifyingKey>> =
        std::sync::LazyLock::new(|| Arc::new(VerifyingKey::from_pem(PUBLIC_PEM).unwrap()));
    KEY.clone()
}

/// The token as this thread's lookup sees it, fully verified.
fn fully_known(tokens: &VerifiedTokens, token: &str) -> Option<Arc<Verified>> {
    match tokens.lookup(token, now_ms()) {
        Some(Known::Verified(verified)) => Some(verified),
        _ => None,
    }
}

fn reason(state: &RequestState) -> String {
    state
        .reason()
        .map(|r| r.as_str().into_owned())
        .unwrap_or_else(|| "signed-in".into())
}

#[test]
fn time_checks_run_again_on_every_hit() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let token = token_with(
        &key1(),
        json!({"iat": now, "nbf": now - 10, "exp": now + 60}),
    );
    let bearer = format!("Bearer {token}");
    let h = [("authorization", bearer.as_str())];
    assert_eq!(reason(&decide(&tokens, &h, now * 1000)), "signed-in");
    assert!(fully_known(&tokens, &token).is_some());
    // A minute and more later the very same cached token is expired.
    assert_eq!(
        reason(&decide(&tokens, &h, (now + 70) * 1000)),
        "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    );
}

/// The HTTP adapter batches the answers of decisions that checked a signature; it learns
/// which those were from this count.
#[test]
fn only_a_miss_counts_a_signature_check() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let bearer = format!("Bearer {}", token(&key1()));
    let h = [("authorization", bearer.as_str())];
    let before = signatures_checked();
    assert_eq!(reason(&decide(&tokens, &h, now * 1000)), "signed-in");
    assert_eq!(signatures_checked(), before + 1);
    assert_eq!(reason(&decide(&tokens, &h, now * 1000)), "signed-in");
    assert_eq!(
        signatures_checked(),
        before + 1,
        "a hit checked a signature"
    );
}

#[test]
fn an_entry_never_outlives_its_deadline() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let token = token_at(&key1(), now);
    let bearer = format!("Bearer {token}");
    decide(&tokens, &[("authorization", &bearer)], now * 1000);
    let verified = fully_known(&tokens, &token).unwrap();
    // exp + skew is the deadline: 60 s + 5 s.
    assert_eq!(verified.expires_at_ms(5000), Some((now + 60) * 1000 + 5000));
    // Judged at the decision's time, in both tiers, not by the cache's own clock.
    let deadline = (now + 65) * 1000;
    assert!(matches!(
        tokens.lookup(&token, deadline - 1),
        Some(Known::Verified(_))
    ));
    assert!(tokens.lookup(&token, deadline).is_none());
    tokens.insert(
        &token,
        verified,
        clerk_forward_auth::domain::time::now_ms() - 1,
    );
    assert!(
        fully_known(&tokens, &token).is_none(),
        "an entry past its deadline was served"
    );
    // A token already expired is not remembered at all.
    let old = token_with(&key1(), json!({"exp": now - 3600}));
    let fresh = VerifiedTokens::new(100, &metrics);
    decide(
        &fresh,
        &[("authorization", &format!("Bearer {old}"))],
        now * 1000,
    );
    assert!(fully_known(&fresh, &old).is_none());
}

#[test]
fn request_dependent_cookie_checks_are_never_cached() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let session = token_with(&key1(), json!({"iat": now - 30}));
    let signed_in = format!("__session={session}; __client_uat={}", now - 60);
    let page = ("sec-fetch-dest", "document");
    let host = ("x-forwarded-host", "app.example.com");
    assert_eq!(
        reason(&decide(
            &tokens,
            &[("cookie", &signed_in), page, host],
            now * 1000
        )),
        "signed-in"
    );
    assert!(fully_known(&tokens, &session).is_some());
    // The client changed since (sign-out or org switch elsewhere): client_uat now postdates
    // the cached token, which must not be taken at its word.
    let outdated = format!("__session={session}; __client_uat={now}");
    assert_eq!(
        reason(&decide(
            &tokens,
            &[("cookie", &outdated), page, host],
            now * 1000
        )),
        "session-token-iat-before-client-uat"
    );
    let no_uat = format!("__session={session}");
    assert_eq!(
        reason(&decide(&tokens, &[("cookie", &no_uat), host], now * 1000)),
        "session-token-but-no-client-uat"
    );
}

#[tokio::test]
async fn a_hit_needs_the_key_that_verified_it_to_still_be_current() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let env = clerk.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"));
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    let remembered = token(&key1());
    assert_eq!(app.bearer(&remembered).await.status(), 200);
    assert_eq!(app.bearer(&remembered).await.status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"clerk_forward_auth_token_cache_lookups_total{result="hit"}"#
        ),
        1.0,
        "{metrics}"
    );
    // Clerk rotates key1 out; a token of the new key makes the service fetch the new set.
    clerk.serve_keys(&[&key2()]);
    assert_eq!(app.bearer(&token(&key2())).await.status(), 200);
    let response = app.bearer(&remembered).await;
    assert_eq!(
        response.status(),
        401,
        "a token of a removed key was served from the cache"
    );
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("jwk-kid-mismatch")
    );
}

#[tokio::test]
async fn a_reload_that_narrows_authorized_parties_applies_to_cached_tokens() {
    let file = ConfigFile::new("");
    let app = TestApp::spawn_with_file(Some(&file.path), &[("CLERK_JWT_KEY", PUBLIC_PEM)]).await;
    let remembered = token(&key1());
    assert_eq!(app.bearer(&remembered).await.status(), 200);
    file.write("[clerk]\nauthorized_parties = [\"https://only.example.com\"]\n");
    app.reloader.reload().unwrap();
    let response = app.bearer(&remembered).await;
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("token-invalid-authorized-parties")
    );
}

#[tokio::test]
async fn no_token_cache_verifies_every_token() {
    let app = TestApp::networkless(&[("CLERK_FA_CACHE_MAX_TOKENS", "0")]).await;
    let token = token(&key1());
    for _ in 0..3 {
        assert_eq!(app.bearer(&token).await.status(), 200);
    }
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"clerk_forward_auth_token_cache_lookups_total{result="hit"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(&metrics, "clerk_forward_auth_token_cache_entries"),
        0.0
    );
}

#[test]
fn a_remembered_rejection_is_checked_again_so_a_token_becomes_valid_at_its_nbf() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let early = token_with(
        &key1(),
        json!({"nbf": now + 30, "iat": now, "exp": now + 90}),
    );
    let h = [("authorization", format!("Bearer {early}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        reason(&decide(&tokens, &h, now * 1000)),
        "session-token-nbf"
    );
    assert_eq!(
        reason(&decide(&tokens, &h, now * 1000 + 1000)),
        "session-token-nbf"
    );
    assert_eq!(reason(&decide(&tokens, &h, (now + 40) * 1000)), "signed-in");
}

#[test]
fn forged_and_expired_tokens_are_refused_the_same_way_every_time() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    for (token, want) in [
        (token(&key2()), "token-invalid-signature"),
        (
            token_with(&key1(), json!({"exp": now - 60})),
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        ("not.a.jwt".to_owned(), "token-invalid"),
    ] {
        let bearer = format!("Bearer {token}");
        let first = decide(&tokens, &[("authorization", &bearer)], now * 1000);
        let again = decide(&tokens, &[("authorization", &bearer)], now * 1000 + 500);
        assert_eq!(reason(&first), want);
        assert_eq!(reason(&again), want);
        assert!(
            matches!(tokens.lookup(&token, now_ms()), Some(Known::Rejected(_))),
            "{want} was not remembered"
        );
    }
}

#[test]
fn other_workers_find_the_signature_and_keep_the_token_at_hand() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    let token = token(&key1());
    let bearer = format!("Bearer {token}");
    assert_eq!(
        reason(&decide(&tokens, &[("authorization", &bearer)], now * 1000)),
        "signed-in"
    );
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Another worker's table is empty: the shared tier knows the signature only.
            match tokens.lookup(&token, now_ms()) {
                Some(Known::Signed(key)) => assert!(Arc::ptr_eq(&key, &shared_key())),
                other => panic!("expected the signature to be known, got {other:?}"),
            }
            assert_eq!(
                reason(&decide(&tokens, &[("authorization", &bearer)], now * 1000)),
                "signed-in"
            );
            assert!(fully_known(&tokens, &token).is_some());
        });
    });
}

#[test]
fn a_remembered_signature_is_not_checked_again_but_the_rest_is() {
    let metrics = Metrics::new().unwrap();
    let tokens = VerifiedTokens::new(100, &metrics);
    let now = now_s();
    // Signed by another key under key1's kid: only the remembered signature lets it pass,
    // which is why the shared tier is keyed by a cryptographic digest of the whole token.
    let forged = token(&key2());
    let jwt = clerk_forward_auth::domain::jwt::Jwt::decode(&forged).unwrap();
    let entry = Arc::new(Verified::new(jwt, shared_key()));
    tokens.insert(&forged, entry, (now + 60) * 1000);
    let expired = token_with(&key2(), json!({"exp": now - 60}));
    let jwt = clerk_forward_auth::domain::jwt::Jwt::decode(&expired).unwrap();
    tokens.insert(
        &expired,
        Arc::new(Verified::new(jwt, shared_key())),
        (now + 60) * 1000,
    );
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let bearer = format!("Bearer {forged}");
            let state = decide(&tokens, &[("authorization", &bearer)], now * 1000);
            assert_eq!(reason(&state), "signed-in");
            // The claims are checked again all the same.
            let bearer = format!("Bearer {expired}");
            let state = decide(&tokens, &[("authorization", &bearer)], now * 1000);
            assert_eq!(
                reason(&state),
                "session-token-expired-refresh-non-eligible-no-refresh-cookie"
            );
        });
    });
    // Without the entry the same forged token is refused.
    let fresh = VerifiedTokens::new(100, &metrics);
    let bearer = format!("Bearer {forged}");
    let state = decide(&fresh, &[("authorization", &bearer)], now * 1000);
    assert_eq!(reason(&state), "token-invalid-signature");
}
