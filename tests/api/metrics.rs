//! `/metrics`: decisions by outcome and reason, latency, and key freshness.

use crate::helpers::*;

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn decisions_are_counted_by_outcome_and_reason() {
    let app = TestApp::networkless(&[]).await;
    app.bearer(&token(&key1())).await;
    app.bearer(&token(&key1())).await;
    app.bearer(&token(&key2())).await;
    app.verify(&[]).await;
    let m = app.metrics().await;
    assert_eq!(
        value(
            &m,
            r#"clerk_forward_auth_decisions_total{outcome="allow",reason="none"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &m,
            r#"clerk_forward_auth_decisions_total{outcome="signed-out",reason="token-invalid-signature"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            r#"clerk_forward_auth_decisions_total{outcome="signed-out",reason="session-token-and-uat-missing"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            r#"clerk_forward_auth_decision_duration_seconds_count{outcome="allow"}"#
        ),
        Some(2.0)
    );
    assert!(m.contains(
        r#"clerk_forward_auth_decision_duration_seconds_bucket{outcome="allow",le="0.0001"}"#
    ));
    assert_eq!(value(&m, "clerk_forward_auth_jwks_keys"), Some(1.0));
    assert_eq!(value(&m, "clerk_forward_auth_ready"), Some(1.0));
    // Exposed from the start, so an alert on its rate works before the first drop.
    assert_eq!(
        value(&m, "clerk_forward_auth_log_lines_dropped_total"),
        Some(0.0)
    );
}

#[tokio::test]
async fn jwks_fetches_and_key_age_are_reported() {
    let clerk = FakeClerk::start(&[&key1(), &key2()]).await;
    let env = clerk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    let m = app.metrics().await;
    assert_eq!(
        value(
            &m,
            r#"clerk_forward_auth_jwks_fetches_total{outcome="success"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&m, "clerk_forward_auth_jwks_keys"), Some(2.0));
    let age = value(&m, "clerk_forward_auth_jwks_seconds_since_last_refresh").unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
}

#[tokio::test]
async fn metrics_can_have_their_own_listener() {
    let app = TestApp::networkless(&[("CLERK_FA_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let metrics_url = format!("{}/metrics", app.metrics_base.as_deref().unwrap());
    let body = app
        .client
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("clerk_forward_auth_jwks_keys 1"), "{body}");
}

#[tokio::test]
async fn known_series_start_at_zero_and_a_pem_key_has_no_fetch_series() {
    let app = TestApp::networkless(&[]).await;
    let m = app.metrics().await;
    for series in [
        r#"clerk_forward_auth_config_reloads_total{outcome="failure"}"#,
        r#"clerk_forward_auth_session_refreshes_total{outcome="failed"}"#,
        r#"clerk_forward_auth_handshake_resolutions_total{outcome="loop"}"#,
        r#"clerk_forward_auth_token_cache_lookups_total{result="miss"}"#,
    ] {
        assert_eq!(value(&m, series), Some(0.0), "{series}\n{m}");
    }
    // The alerts tell a PEM key (no fetches, a key age that only grows) from a JWKS by this.
    assert!(!m.contains("clerk_forward_auth_jwks_fetches_total"), "{m}");
}

#[tokio::test]
async fn readiness_is_worked_out_at_each_scrape() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let env = clerk.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("CLERK_FA_JWKS_MAX_STALE_SECS", "1"));
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    assert_eq!(
        value(&app.metrics().await, "clerk_forward_auth_ready"),
        Some(1.0)
    );
    // Clerk goes away and the keys go stale. Nothing asks /readyz: the scrape alone must
    // notice, or an instance without a readiness probe would look ready forever.
    clerk.fail_with(503);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if value(&app.metrics().await, "clerk_forward_auth_ready") == Some(0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gauge still says ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
