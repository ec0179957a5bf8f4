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
