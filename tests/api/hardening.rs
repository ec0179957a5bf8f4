//! Hostile input gets a bounded 4xx with a reason, never a 5xx, a panic or a hang.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Sends raw bytes and returns the status line (or what the server did instead).
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("no answer within 5 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("<closed>")
        .to_owned()
}

fn b64(value: &serde_json::Value) -> String {
    clerk_forward_auth::domain::jwt::b64url(value.to_string().as_bytes())
}

async fn reason(app: &TestApp, token: &str) -> (u16, String) {
    let response = app.bearer(token).await;
    let status = response.status().as_u16();
    (
        status,
        header(&response, "x-clerk-auth-reason")
            .unwrap_or("")
            .to_owned(),
    )
}

#[tokio::test]
async fn an_oversized_token_is_refused_unread() {
    let app = TestApp::networkless(&[("CLERK_FA_MAX_TOKEN_BYTES", "2048")]).await;
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(2000),
        "b".repeat(2000),
        "c".repeat(100)
    );
    assert_eq!(reason(&app, &huge).await, (401, "token-invalid".into()));
    let response = app.bearer(&huge).await;
    assert!(
        header(&response, "x-clerk-auth-message")
            .unwrap()
            .contains("larger than 2048 bytes")
    );
    // The same limit applies to the session cookie.
    let cookie = format!("__session={huge}; __client_uat=1");
    let response = app.verify(&[("cookie", &cookie)]).await;
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("token-invalid")
    );
}

#[tokio::test]
async fn oversized_or_non_utf8_headers_get_a_4xx() {
    let app = TestApp::networkless(&[]).await;
    let big = format!(
        "GET /verify HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "a=b; ".repeat(20_000)
    );
    let status = raw(&app, big.as_bytes()).await;
    assert!(status.contains(" 4") || status == "<closed>", "{status}");
    let mut binary = b"GET /verify HTTP/1.1\r\nHost: x\r\nCookie: __session=\xff\xfe; __client_uat=\xff\r\nAuthorization: Bearer \xff\xff\r\n\r\n".to_vec();
    binary.extend_from_slice(b"");
    let status = raw(&app, &binary).await;
    assert!(status.starts_with("HTTP/1.1 4"), "{status}");
}

#[tokio::test]
async fn malformed_tokens_are_token_invalid() {
    let app = TestApp::networkless(&[]).await;
    let header_ok = b64(&json!({"alg": "RS256", "typ": "JWT"}));
    for token in [
        "a.b".to_owned(),
        "!!!.###.$$$".to_owned(),
        format!("{header_ok}.bm90IGpzb24.c2ln"),
        format!("{header_ok}.{}.c2ln", b64(&json!(["an", "array"]))),
        format!(
            "{}.{}.c2ln",
            b64(&json!("string header")),
            b64(&json!({"sub": "u"}))
        ),
        // A nested JWT: the payload is another token, not claims.
        format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256", "cty": "JWT"})),
            b64(&json!(token(&key1())))
        ),
    ] {
        assert_eq!(
            reason(&app, &token).await,
            (401, "token-invalid".into()),
            "{token}"
        );
    }
}

#[tokio::test]
async fn duplicate_claims_resolve_as_in_javascript_last_one_wins() {
    let app = TestApp::networkless(&[]).await;
    let now = now_s();
    // Signed as written: serde_json would merge the duplicates before signing.
    let payload = format!(
        r#"{{"sub":"user_a","exp":{},"iat":{now},"sub":"user_b"}}"#,
        now + 60
    );
    let signed = key1().sign_raw(
        r#"{"alg":"RS256","kid":"ins_test_key1","typ":"JWT"}"#,
        &payload,
    );
    let response = app.bearer(&signed).await;
    assert_eq!(header_of(&response), Some("user_b"));
}

fn header_of(response: &reqwest::Response) -> Option<&str> {
    header(response, "x-auth-user-id")
}

#[tokio::test]
async fn key_reference_headers_are_never_followed() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let env = clerk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    let fetches = clerk.fetches();
    let claims =
        clerk_forward_auth::mint::session_claims("user_1", "clerk.example.com", now_s(), 60);
    let attacker = key2();
    // An attacker's token that points at its own key in every way JWS allows.
    let forged = attacker.sign_with_header(
        &json!({"alg": "RS256", "kid": "ins_test_key1", "typ": "JWT",
                "jku": format!("{}/v1/jwks", clerk.base), "x5u": format!("{}/x5u", clerk.base),
                "jwk": attacker.jwk(), "crit": ["jku"]}),
        &claims,
    );
    assert_eq!(
        reason(&app, &forged).await,
        (401, "token-invalid-signature".into())
    );
    assert_eq!(
        clerk.fetches(),
        fetches,
        "a key URL in the token was fetched"
    );
    // The same headers on a genuine token change nothing either.
    let genuine = key1().sign_with_header(
        &json!({"alg": "RS256", "kid": "ins_test_key1", "typ": "JWT", "jku": "https://evil.example/jwks", "crit": ["jku"]}),
        &claims,
    );
    assert_eq!(app.bearer(&genuine).await.status(), 200);
}

#[tokio::test]
async fn a_huge_kid_or_claim_cannot_blow_up_the_answer_headers() {
    let app = TestApp::spawn(&[
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", "http://127.0.0.1:9"),
    ])
    .await;
    let claims =
        clerk_forward_auth::mint::session_claims("user_1", "clerk.example.com", now_s(), 60);
    let token = key1().sign_with_header(
        &json!({"alg": "RS256", "kid": "k".repeat(8000), "typ": "JWT"}),
        &claims,
    );
    let response = app.bearer(&token).await;
    assert!(
        response.status().is_client_error() || response.status() == 503,
        "{}",
        response.status()
    );
    let total: usize = response
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    assert!(total < 2048, "answer headers are {total} bytes");
    let networkless =
        TestApp::networkless(&[("CLERK_AUTHORIZED_PARTIES", "https://app.example.com")]).await;
    let azp = token_with(&key1(), json!({"azp": "x".repeat(8000)}));
    let response = networkless.bearer(&azp).await;
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("token-invalid-authorized-parties")
    );
    assert!(header(&response, "x-clerk-auth-message").unwrap().len() <= 1030);
}

#[tokio::test]
async fn locations_are_encoded_and_stay_on_the_request_origin() {
    let app =
        TestApp::networkless(&[("CLERK_SIGN_IN_URL", "https://accounts.example.com/sign-in")])
            .await;
    let page = |uri: &'static str, host: &'static str| {
        app.client
            .get(app.url("/verify"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", uri)
            .header("sec-fetch-dest", "document")
            .send()
    };
    let response = page("/x%0d%0aSet-Cookie:%20evil=1?a=%0a", "app.example.com")
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let location = header(&response, "location").unwrap();
    assert!(!location.contains('\n') && !location.contains('\r'));
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 0);
    let redirect = url::Url::parse(location).unwrap();
    let back: String = redirect
        .query_pairs()
        .find(|(k, _)| k == "redirect_url")
        .unwrap()
        .1
        .into_owned();
    assert!(back.starts_with("https://app.example.com/"), "{back}");
    // A forwarded host that smuggles a path or credentials makes no redirect at all.
    for host in ["evil.example/x", "user@evil.example", "evil.example\\x"] {
        let response = page("/p", host).await.unwrap();
        assert_eq!(response.status(), 401, "{host}");
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off() {
    let app = TestApp::networkless(&[("CLERK_FA_REQUEST_TIMEOUT_MS", "300")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /verify HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the server kept waiting for the rest of the head")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
