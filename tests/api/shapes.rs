//! Answers shaped for the proxy: nginx's 401-then-`/answer` hop, and its detection.

use serde_json::json;

use crate::helpers::*;

async fn app(clerk: &FakeClerk, extra: &[(&str, &str)]) -> TestApp {
    let env = clerk.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    app
}

fn expired_cookie() -> String {
    let now = now_s();
    format!(
        "__session={}; __client_uat={}",
        token_with(
            &key1(),
            json!({"iat": now - 120, "nbf": now - 130, "exp": now - 60})
        ),
        now - 600
    )
}

async fn ask(app: &TestApp, auth_url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(auth_url))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", "/dash?x=1")
        .header("sec-fetch-dest", "document");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn behind_nginx_a_redirect_is_a_401_and_answer_gives_the_real_307() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let cookie = expired_cookie();
    let check = ask(&app, "/verify?proxy=nginx", &[("cookie", &cookie)]).await;
    assert_eq!(check.status(), 401);
    assert_eq!(header(&check, "x-clerk-auth-status"), Some("handshake"));
    // Like every 401, it has a JSON body (nginx drops it; other clients read it).
    assert_eq!(header(&check, "content-type"), Some("application/json"));
    let body: serde_json::Value = check.json().await.unwrap();
    assert_eq!(body["status"], "signed-out");
    assert_eq!(
        body["reason"], "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        "{body}"
    );
    let answer = ask(&app, "/answer", &[("cookie", &cookie)]).await;
    assert_eq!(answer.status(), 307);
    assert!(
        header(&answer, "location")
            .unwrap()
            .starts_with("https://clerk.example.com/v1/client/handshake?")
    );
    assert_eq!(answer.headers().get_all("set-cookie").iter().count(), 1);
}

#[tokio::test]
async fn ingress_nginx_is_recognised_by_its_marker_header() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let cookie = expired_cookie();
    let check = ask(
        &app,
        "/verify",
        &[
            ("cookie", &cookie),
            ("x-sent-from", "nginx-ingress-controller"),
        ],
    )
    .await;
    assert_eq!(check.status(), 401);
    let plain = ask(&app, "/verify", &[("cookie", &cookie)]).await;
    assert_eq!(plain.status(), 307);
}

#[tokio::test]
async fn behind_nginx_the_nonce_is_spent_only_by_answer() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    // A browser back from the Frontend API with a nonce.
    let handshake = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash&format=nonce",
            clerk.base
        ))
        .send()
        .await
        .unwrap();
    let back = header(&handshake, "location").unwrap().to_owned();
    let uri = &back["https://app.example.com".len()..];
    let check = ask(&app, "/verify?proxy=nginx", &[("x-forwarded-uri", uri)]).await;
    assert_eq!(check.status(), 401);
    assert_eq!(
        clerk.payload_calls(),
        0,
        "/verify must not spend the single-use nonce"
    );
    let answer = app
        .client
        .get(app.url("/answer"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", uri)
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 307);
    assert_eq!(
        header(&answer, "location"),
        Some("https://app.example.com/dash")
    );
    assert_eq!(answer.headers().get_all("set-cookie").iter().count(), 4);
    assert_eq!(clerk.payload_calls(), 1);
}

#[tokio::test]
async fn answer_sends_an_allowed_request_back_to_its_url() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let cookie = format!("__session={}; __client_uat={}", token(&key1()), now_s() - 5);
    let answer = ask(&app, "/answer", &[("cookie", &cookie)]).await;
    assert_eq!(answer.status(), 307);
    assert_eq!(
        header(&answer, "location"),
        Some("https://app.example.com/dash?x=1")
    );
    let looping = format!("{cookie}; __clerk_redirect_count=3");
    let answer = ask(&app, "/answer", &[("cookie", &looping)]).await;
    assert_eq!(answer.status(), 401);
}

#[tokio::test]
async fn answer_with_rd_decides_for_that_url_on_the_same_host_only() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(
        &clerk,
        &[("CLERK_SIGN_IN_URL", "https://accounts.example.com/sign-in")],
    )
    .await;
    let signin = |rd: &str| {
        app.client
            .get(app.url(&format!(
                "/answer?rd={}",
                url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            )))
            .header("host", "app.example.com")
            .header("accept", "text/html")
            .send()
    };
    let response = signin("https://app.example.com/private?q=1").await.unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(
        header(&response, "location"),
        Some(
            "https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fprivate%3Fq%3D1"
        )
    );
    let open_redirect = signin("https://evil.example/phish").await.unwrap();
    assert_eq!(open_redirect.status(), 400);
}

#[tokio::test]
async fn an_unknown_proxy_form_is_a_400() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let response = ask(&app, "/verify?proxy=iis", &[]).await;
    assert_eq!(response.status(), 400);
    let response = ask(&app, "/verify?proxy=traefik", &[]).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn answer_sends_a_request_for_a_public_route_back_to_its_url() {
    let file = ConfigFile::new(
        "[[authorization.rules]]\nname = \"open\"\npath_prefix = \"/dash\"\naction = \"public\"\n",
    );
    let app = TestApp::spawn_with_file(Some(&file.path), &[("CLERK_JWT_KEY", PUBLIC_PEM)]).await;
    let answer = ask(&app, "/answer", &[]).await;
    assert_eq!(answer.status(), 307);
    assert_eq!(
        header(&answer, "location"),
        Some("https://app.example.com/dash?x=1")
    );
}
