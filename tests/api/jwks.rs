//! The JWKS source against a real local Backend API: loading, rotation, unknown-kid storms,
//! outages and bad secrets, each counted at the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

async fn app_with(clerk: &FakeClerk, extra: &[(&str, &str)]) -> TestApp {
    let env = clerk.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    TestApp::spawn(&env).await
}

fn with_kid(kid: &str) -> String {
    key1().sign_with_header(
        &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        &clerk_forward_auth::mint::session_claims("user_1", "clerk.example.com", now_s(), 60),
    )
}

#[tokio::test]
async fn keys_are_loaded_at_start_up_and_readiness_follows() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app_with(&clerk, &[]).await;
    app.wait_ready(200).await;
    assert_eq!(clerk.fetches(), 1);
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(clerk.fetches(), 1, "a known kid needs no fetch");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_its_first_token() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "0")]).await;
    app.wait_ready(200).await;
    // Clerk rotates: the JWKS now also has key2, and new tokens are signed with it.
    clerk.serve_keys(&[&key1(), &key2()]);
    let response = app.bearer(&token(&key2())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(clerk.fetches(), 2);
    // The old key still works without another fetch.
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
    assert_eq!(clerk.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_storm_costs_one_fetch() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = Arc::new(app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "60000")]).await);
    app.wait_ready(200).await;
    assert_eq!(clerk.fetches(), 1);
    // Hold the next fetch open, so every request of the storm is in flight at once.
    let release = clerk.hold();
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..200 {
        let app = app.clone();
        storm.spawn(async move { app.bearer(&with_kid(&format!("ins_random_{i}"))).await });
    }
    clerk.fetch_arrived().await;
    release.add_permits(1_000);
    while let Some(response) = storm.join_next().await {
        let response = response.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            header(&response, "x-clerk-auth-reason"),
            Some("jwk-kid-mismatch")
        );
    }
    assert_eq!(clerk.fetches(), 2, "one refetch for the whole storm");
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited_per_interval() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let interval = Duration::from_secs(1);
    let app = app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "1000")]).await;
    app.wait_ready(200).await;
    let first = Instant::now();
    assert_eq!(app.bearer(&with_kid("ins_a")).await.status(), 401);
    assert_eq!(clerk.fetches(), 2);
    // Inside the interval: no fetch, however many kids.
    for kid in ["ins_b", "ins_c", "ins_d"] {
        app.bearer(&with_kid(kid)).await;
    }
    assert!(
        first.elapsed() < interval,
        "the machine is too slow for this test's interval"
    );
    assert_eq!(clerk.fetches(), 2);
    // Keep asking: the next fetch comes once the interval is over, and only one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while clerk.fetches() == 2 {
        assert!(Instant::now() < deadline, "no refetch after the interval");
        app.bearer(&with_kid("ins_e")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.elapsed() >= interval);
    app.bearer(&with_kid("ins_f")).await;
    assert_eq!(clerk.fetches(), 3);
}

#[tokio::test]
async fn with_the_jwks_down_and_nothing_cached_the_answer_is_503_then_recovers() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    clerk.fail_with(500);
    let app = app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "0")]).await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("jwk-remote-failed-to-load")
    );
    // No credentials needs no key: still a plain 401.
    assert_eq!(app.verify(&[]).await.status(), 401);
    clerk.fail_with(200);
    app.wait_ready(200).await;
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
}

#[tokio::test]
async fn a_cached_key_set_survives_a_failed_refetch() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "0")]).await;
    app.wait_ready(200).await;
    clerk.fail_with(502);
    // An unknown kid triggers a refetch that fails; the known key keeps working.
    let response = app.bearer(&with_kid("ins_unknown")).await;
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("jwk-kid-mismatch")
    );
    assert!(clerk.fetches() >= 2);
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_secret_key_is_reported_as_clerk_reports_it() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = TestApp::spawn(&[
        ("CLERK_SECRET_KEY", "sk_test_wrong"),
        ("CLERK_API_URL", &clerk.base),
        ("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"),
    ])
    .await;
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("secret-key-invalid")
    );
}

#[tokio::test]
async fn bad_entries_in_the_jwks_do_not_drop_the_good_key() {
    let clerk = FakeClerk::start(&[]).await;
    clerk.serve_raw(json!({"keys": [
        {"kty": "EC", "kid": "ec", "crv": "P-256"},
        {"kty": "RSA", "kid": "tiny", "n": "AQAB", "e": "AQAB"},
        key1().jwk(),
    ]}));
    let app = app_with(&clerk, &[]).await;
    app.wait_ready(200).await;
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
}

#[tokio::test]
async fn a_hanging_jwks_times_out_into_a_bounded_503() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let release = clerk.hold();
    let app = app_with(
        &clerk,
        &[
            ("CLERK_FA_JWKS_TIMEOUT_MS", "300"),
            ("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"),
        ],
    )
    .await;
    let started = Instant::now();
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("jwk-remote-failed-to-load")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    release.add_permits(1_000);
}

#[tokio::test]
async fn garbage_or_oversized_jwks_answers_are_refused() {
    for body in [
        "<html>maintenance</html>".to_owned(),
        format!("{{\"keys\":[{}]}}", "1,".repeat(200_000) + "1"),
    ] {
        let clerk = FakeClerk::start(&[&key1()]).await;
        clerk.serve_text(&body);
        let app = app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "0")]).await;
        let response = app.bearer(&token(&key1())).await;
        assert_eq!(response.status(), 503);
        let metrics = app.metrics().await;
        assert!(
            metrics.contains(r#"clerk_forward_auth_jwks_fetches_total{outcome="invalid"}"#),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn keys_older_than_the_allowed_staleness_stop_being_trusted() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app_with(
        &clerk,
        &[
            ("CLERK_FA_JWKS_MAX_STALE_SECS", "1"),
            ("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"),
        ],
    )
    .await;
    app.wait_ready(200).await;
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
    // Clerk goes away: the last good keys serve until they are a second old, then /readyz
    // and /verify say so.
    clerk.fail_with(503);
    app.wait_ready(503).await;
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 503);
    // And they come back with Clerk.
    clerk.fail_with(200);
    app.wait_ready(200).await;
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
}

#[tokio::test]
async fn thousands_of_random_kids_cost_one_fetch() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = Arc::new(app_with(&clerk, &[("CLERK_FA_JWKS_MIN_REFETCH_MS", "60000")]).await);
    app.wait_ready(200).await;
    let mut storm = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let app = app.clone();
        storm.spawn(async move {
            for i in 0..100 {
                let response = app
                    .bearer(&with_kid(&format!("ins_storm_{worker}_{i}")))
                    .await;
                assert_eq!(response.status(), 401);
            }
        });
    }
    while let Some(result) = storm.join_next().await {
        result.unwrap();
    }
    assert_eq!(
        clerk.fetches(),
        2,
        "3,200 unknown kids: the start-up load and one refetch"
    );
}

#[tokio::test]
async fn a_refetch_of_the_same_keys_keeps_them_so_cached_tokens_stay_valid() {
    use clerk_forward_auth::config::{JwksSettings, Secret};
    use clerk_forward_auth::domain::keys::KeySource as _;
    use clerk_forward_auth::jwks::{JwksSource, fetch::Fetcher};

    let clerk = FakeClerk::start(&[&key1(), &key2()]).await;
    let url = format!("{}/v1/jwks", clerk.base).parse().unwrap();
    let secret = Secret::new(SECRET.to_owned());
    let fetcher = Fetcher::new(url, Some(&secret), Duration::from_secs(5)).unwrap();
    let minute = Duration::from_secs(60);
    let settings = JwksSettings {
        refresh: minute,
        min_refetch: minute,
        timeout: minute,
        max_stale: minute,
    };
    let metrics = Arc::new(clerk_forward_auth::metrics::Metrics::new().unwrap());
    let source = JwksSource::new(fetcher, &settings, metrics);
    let key = |kid: &'static str| {
        let source = &source;
        async move { source.key(Some(kid)).await.unwrap() }
    };
    source.load().await.unwrap();
    let (first1, first2) = (key("ins_test_key1").await, key("ins_test_key2").await);
    // Clerk answers the same keys, except that key2's kid now names key1's material.
    let mut doc = jwks(&[&key1(), &key1()]);
    doc["keys"][1]["kid"] = json!("ins_test_key2");
    clerk.serve_raw(doc);
    source.load().await.unwrap();
    assert_eq!(clerk.fetches(), 2);
    // The token cache trusts a remembered signature only while its key is the current one,
    // by identity: a refresh must not turn an unchanged key into a new one.
    assert!(Arc::ptr_eq(&first1, &key("ins_test_key1").await));
    assert!(!Arc::ptr_eq(&first2, &key("ins_test_key2").await));
    // What the cache asks on every hit, answered from the worker's copy of the set.
    assert!(source.is_current(Some("ins_test_key1"), &first1));
    assert!(
        !source.is_current(Some("ins_test_key2"), &first2),
        "replaced"
    );
    assert!(
        !source.is_current(Some("ins_test_key2"), &first1),
        "another kid's key"
    );
    assert!(!source.is_current(None, &first1));
    // Clerk drops key1: the next load makes it stale in every worker.
    clerk.serve_keys(&[&key2()]);
    source.load().await.unwrap();
    assert!(!source.is_current(Some("ins_test_key1"), &first1));
}
