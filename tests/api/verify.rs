//! `/verify` end to end: answers, headers and the header dialects of each proxy.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn a_valid_bearer_token_gets_200_with_every_identity_header() {
    let app = TestApp::networkless(&[]).await;
    let token = token_with(
        &key1(),
        json!({"fea": "o:dashboard", "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3"},
               "act": {"sub": "user_admin"}}),
    );
    let response = app.bearer(&token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-clerk-auth-status"), Some("signed-in"));
    assert_eq!(header(&response, "x-auth-user-id"), Some("user_1"));
    assert_eq!(header(&response, "x-auth-session-id"), Some("sess_1"));
    assert_eq!(header(&response, "x-auth-org-id"), Some("org_1"));
    assert_eq!(header(&response, "x-auth-org-role"), Some("org:admin"));
    assert_eq!(header(&response, "x-auth-org-slug"), Some("acme"));
    assert_eq!(
        header(&response, "x-auth-org-permissions"),
        Some("org:dashboard:read,org:dashboard:manage")
    );
    assert_eq!(header(&response, "x-auth-actor-id"), Some("user_admin"));
}

#[tokio::test]
async fn unknown_identity_values_are_sent_empty_so_forged_copies_are_overwritten() {
    let app = TestApp::networkless(&[]).await;
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(response.status(), 200);
    for name in [
        "x-auth-org-id",
        "x-auth-org-role",
        "x-auth-org-slug",
        "x-auth-org-permissions",
        "x-auth-actor-id",
    ] {
        assert_eq!(header(&response, name), Some(""), "{name}");
    }
}

#[tokio::test]
async fn identity_header_names_are_configurable() {
    let app = TestApp::networkless(&[("CLERK_FA_HEADER_USER_ID", "X-User")]).await;
    let response = app.bearer(&token(&key1())).await;
    assert_eq!(header(&response, "x-user"), Some("user_1"));
    assert_eq!(header(&response, "x-auth-user-id"), None);
}

async fn signed_out(response: reqwest::Response) -> (u16, String, Option<String>, Value) {
    let status = response.status().as_u16();
    let reason = header(&response, "x-clerk-auth-reason")
        .unwrap_or("")
        .to_owned();
    let www = header(&response, "www-authenticate").map(str::to_owned);
    assert_eq!(
        header(&response, "x-auth-user-id"),
        None,
        "no identity on a denial"
    );
    assert_eq!(
        header(&response, "content-type"),
        Some("application/json"),
        "a denial's body is JSON"
    );
    let body: Value = response.json().await.unwrap();
    (status, reason, www, body)
}

#[tokio::test]
async fn no_credentials_is_401_session_token_and_uat_missing() {
    let app = TestApp::networkless(&[]).await;
    let (status, reason, www, body) =
        signed_out(app.verify(&[("accept", "application/json")]).await).await;
    assert_eq!(
        (status, reason.as_str()),
        (401, "session-token-and-uat-missing")
    );
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert_eq!(body["reason"], "session-token-and-uat-missing");
    assert_eq!(body["status"], "signed-out");
}

#[tokio::test]
async fn production_token_failures_carry_clerks_reasons() {
    let app = TestApp::networkless(&[("CLERK_AUTHORIZED_PARTIES", "http://localhost:3000")]).await;
    let s = key1();
    let now = now_s();
    let none = format!(
        "{}.{}.",
        clerk_forward_auth::domain::jwt::b64url(br#"{"alg":"none","typ":"JWT"}"#),
        clerk_forward_auth::domain::jwt::b64url(
            json!({"sub": "user_1", "exp": now + 60})
                .to_string()
                .as_bytes()
        )
    );
    let hs256 = s.sign_with_header(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"sub": "user_1", "exp": now + 60}),
    );
    let cases = [
        (
            token_with(&s, json!({"exp": now - 60})),
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        (none, "token-invalid-algorithm"),
        (hs256, "token-invalid-algorithm"),
        (token(&key2()), "token-invalid-signature"),
        (
            token_with(&s, json!({"azp": "https://evil.example"})),
            "token-invalid-authorized-parties",
        ),
        (token_with(&s, json!({"sts": "pending"})), "session-pending"),
        (
            token_with(&s, json!({"sub": "mch_2x"})),
            "token-type-mismatch",
        ),
        ("not-a-jwt".to_owned(), "token-invalid"),
    ];
    for (token, want) in cases {
        let (status, reason, www, body) = signed_out(app.bearer(&token).await).await;
        assert_eq!((status, reason.as_str()), (401, want));
        assert_eq!(
            www.as_deref(),
            Some("Bearer error=\"invalid_token\""),
            "{want}"
        );
        assert_eq!(body["reason"], want);
    }
}

#[tokio::test]
async fn every_method_and_the_envoy_path_form_are_accepted() {
    let app = TestApp::networkless(&[]).await;
    let auth = format!("Bearer {}", token(&key1()));
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        for path in ["/verify", "/verify/", "/verify/app/res?x=1"] {
            let response = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{method} {path}");
        }
    }
}

/// An expired token on a page load yields a handshake whose `redirect_url` is the original
/// request's public URL: a direct view of how the request was rebuilt.
async fn redirect_url(
    app: &TestApp,
    path: &str,
    method: reqwest::Method,
    headers: &[(&str, &str)],
) -> String {
    let expired = format!(
        "Bearer {}",
        token_with(&key1(), json!({"exp": now_s() - 60}))
    );
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("authorization", expired);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 307, "{headers:?}");
    assert_eq!(header(&response, "x-clerk-auth-status"), Some("handshake"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let location = url::Url::parse(header(&response, "location").unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("clerk.example.com"));
    location
        .query_pairs()
        .find(|(k, _)| k == "redirect_url")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn each_proxy_dialect_rebuilds_the_original_url() {
    let app = TestApp::networkless(&[]).await;
    let page = ("sec-fetch-dest", "document");
    let get = reqwest::Method::GET;
    // Traefik / Caddy / our nginx, HAProxy and Envoy recipes.
    let traefik = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/app/res?x=1"),
        page,
    ];
    assert_eq!(
        redirect_url(&app, "/verify", get.clone(), &traefik).await,
        "https://app.example.com/app/res?x=1"
    );
    // ingress-nginx.
    let ingress = [
        ("x-original-url", "https://shop.example.com/cart?id=7"),
        ("x-original-method", "GET"),
        page,
    ];
    assert_eq!(
        redirect_url(&app, "/verify", get.clone(), &ingress).await,
        "https://shop.example.com/cart?id=7"
    );
    // Plain nginx with X-Original-URI.
    let nginx = [
        ("x-original-uri", "/n?q=1"),
        ("x-forwarded-host", "n.example.com"),
        ("x-forwarded-proto", "http"),
        page,
    ];
    assert_eq!(
        redirect_url(&app, "/verify", get.clone(), &nginx).await,
        "http://n.example.com/n?q=1"
    );
    // Envoy: its own method, Host, and the path after /verify.
    let envoy = [
        ("host", "e.example.com"),
        ("x-forwarded-proto", "https"),
        page,
    ];
    assert_eq!(
        redirect_url(&app, "/verify/e/p?z=2", get, &envoy).await,
        "https://e.example.com/e/p?z=2"
    );
}

#[tokio::test]
async fn the_original_method_decides_eligibility() {
    let app = TestApp::networkless(&[]).await;
    let expired = format!(
        "Bearer {}",
        token_with(&key1(), json!({"exp": now_s() - 60}))
    );
    let response = app
        .verify(&[
            ("authorization", &expired),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/form"),
            ("sec-fetch-dest", "document"),
        ])
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("session-token-expired-refresh-non-eligible-non-get")
    );
}

#[tokio::test]
async fn a_pinned_dialect_ignores_forged_headers_of_another() {
    let app = TestApp::networkless(&[("CLERK_FA_FORWARDED_HEADERS", "x-original")]).await;
    let headers = [
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-uri", "/evil"),
        ("x-original-url", "https://app.example.com/real"),
        ("sec-fetch-dest", "document"),
    ];
    assert_eq!(
        redirect_url(&app, "/verify", reqwest::Method::GET, &headers).await,
        "https://app.example.com/real"
    );
}

#[tokio::test]
async fn a_session_cookie_with_client_uat_is_signed_in() {
    let app = TestApp::networkless(&[]).await;
    let cookie = format!("__session={}; __client_uat={}", token(&key1()), now_s() - 5);
    let response = app
        .verify(&[("cookie", &cookie), ("accept", "application/json")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-auth-user-id"), Some("user_1"));
}

#[tokio::test]
async fn a_lowercase_bearer_scheme_is_not_a_header_token() {
    let app = TestApp::networkless(&[]).await;
    let response = app
        .verify(&[("authorization", &format!("bearer {}", token(&key1())))])
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("session-token-and-uat-missing")
    );
}

#[tokio::test]
async fn an_announced_body_that_never_comes_is_not_waited_for() {
    // nginx's auth subrequest keeps the client's Content-Length but sends no body.
    let app = TestApp::networkless(&[]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nAuthorization: Bearer {}\r\n\r\n",
        token(&key1())
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the response must not wait for the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::networkless(&[]).await;
    let healthz = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let readyz = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let other = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(other.status(), 405, "{path}");
        assert_eq!(header(&other, "allow"), Some("GET"), "{path}");
    }
}
