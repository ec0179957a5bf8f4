//! Caddy `forward_auth` with `deploy/caddy/Caddyfile`: non-2xx answers (307s with every
//! cookie included) pass straight through to the client.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{self, Backends, Proxy, Scratch, fetch, scenarios};
use crate::helpers::header;

/// Starts Caddy on the recipe, templated only for its three addresses' ports. The recipe's
/// own `bind 127.0.0.1` keeps it on loopback.
async fn caddy(backends: &Backends) -> Proxy {
    let scratch = Scratch::new("caddy");
    let port = harness::free_port();
    let caddyfile = harness::recipe(
        "deploy/caddy/Caddyfile",
        &[
            ("127.0.0.1:9090", backends.auth_addr()),
            ("127.0.0.1:3000", backends.upstream_addr()),
            ("http://:8000", format!("http://:{port}")),
        ],
    );
    let caddyfile = scratch.write("Caddyfile", &caddyfile);
    let dir = scratch.0.display().to_string();
    let mut command = Command::new(harness::binary("caddy"));
    command
        .args([
            "run",
            "--config",
            &caddyfile.display().to_string(),
            "--adapter",
            "caddyfile",
        ])
        // Caddy keeps state (autosave.json, certificates) under these: all in the scratch dir.
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", format!("{dir}/data"))
        .env("XDG_CONFIG_HOME", format!("{dir}/config"))
        .env("XDG_CACHE_HOME", format!("{dir}/cache"));
    Proxy::start(command, port, scratch).await
}

/// What the upstream echoed, after checking it answered 200.
async fn echoed(response: reqwest::Response, proxy: &Proxy) -> Value {
    assert_eq!(response.status(), 200, "{}", proxy.log());
    response.json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs caddy: run scripts/test"]
async fn caddy_recipe_passes_every_scenario() {
    let mut backends = Backends::start(&[]).await;
    let proxy = caddy(&backends).await;
    scenarios::all(&proxy, &mut backends).await;
}

/// `uri /verify?proxy=caddy` replaces the client's query: the service answers 400 to any
/// parameter it does not know, so a forwarded query would turn these into 400s (or let a
/// client pick the answer's shape, or add requirements).
#[tokio::test]
#[ignore = "needs caddy: run scripts/test"]
async fn caddy_recipe_keeps_the_client_query_off_the_auth_url() {
    let backends = Backends::start(&[]).await;
    let proxy = caddy(&backends).await;
    let admin = format!("Bearer {}", harness::admin_token());

    // Unknown parameters and a requirement the user does not meet: still allowed.
    let response = fetch(
        &proxy,
        "GET",
        "/api/me?permission=x&evil=1",
        &[("authorization", &admin)],
        None,
    )
    .await;
    let echo = echoed(response, &proxy).await;
    // The app still gets the client's query: only the auth URL drops it.
    assert_eq!(echo["uri"], "/api/me?permission=x&evil=1");
    assert_eq!(echo["headers"]["x-auth-user-id"], json!(["user_1"]));

    // A public route with a query the service would refuse on its own URL.
    let response = fetch(
        &proxy,
        "GET",
        "/public/x?role=nobody&proxy=bogus",
        &[],
        None,
    )
    .await;
    let echo = echoed(response, &proxy).await;
    assert_eq!(echo["uri"], "/public/x?role=nobody&proxy=bogus");

    // `?proxy=nginx` from a client does not change the answer's shape: a signed-out page
    // load still gets the real 307 to sign-in (the nginx shape would be a 401).
    let response = fetch(
        &proxy,
        "GET",
        "/page/private?proxy=nginx",
        &[("sec-fetch-dest", "document"), ("accept", "text/html")],
        None,
    )
    .await;
    assert_eq!(response.status(), 307, "{}", proxy.log());
    let location = header(&response, "location").unwrap();
    assert!(location.starts_with(harness::SIGN_IN), "{location}");

    // And a member is still refused on /admin, whatever the query says.
    let member = format!("Bearer {}", harness::member_token());
    let response = fetch(
        &proxy,
        "GET",
        "/admin/users?permission=org:admin:example&action=public",
        &[("authorization", &member)],
        None,
    )
    .await;
    assert_eq!(response.status(), 403);
}

/// What the recipe strips beyond the shared scenario: every look-alike spelling of an
/// identity header, identity headers the answer sends empty, and a client's forged
/// `X-Forwarded-Method`/`-Uri`, which would otherwise reach the app.
#[tokio::test]
#[ignore = "needs caddy: run scripts/test"]
async fn caddy_recipe_strips_forged_and_look_alike_headers() {
    let backends = Backends::start(&[]).await;
    let proxy = caddy(&backends).await;
    let forged = [
        ("X_Auth_User_Id", "user_evil"),
        ("X.Auth.User.Id", "user_evil"),
        ("X-Auth_User-Id", "user_evil"),
        ("x-auth-user_id", "user_evil"),
        ("X-Auth.Org-Role", "user_evil"),
        ("x-forwarded-uri", "/public/evil"),
        ("x-forwarded-method", "EVIL"),
    ];

    // Signed in: the app sees the answer's identity and nothing the client made up.
    let admin = format!("Bearer {}", harness::admin_token());
    let mut headers = forged.to_vec();
    headers.push(("authorization", admin.as_str()));
    // The answer sends these empty for this user: the forged copies must vanish.
    headers.push(("x-auth-actor-id", "user_evil"));
    let response = fetch(&proxy, "GET", "/api/me", &headers, None).await;
    let echo = echoed(response, &proxy).await;
    let seen = echo["headers"].as_object().unwrap();
    assert!(
        !echo["headers"].to_string().contains("evil"),
        "a forged header reached the app: {seen:?}"
    );
    for name in seen.keys() {
        assert!(
            !name.contains('_') && !name.contains('.'),
            "a look-alike reached the app: {name}"
        );
    }
    assert_eq!(seen["x-auth-user-id"], json!(["user_1"]));
    assert!(!seen.contains_key("x-auth-actor-id"), "{seen:?}");

    // Public route, signed out: every identity header is empty in the answer, so none
    // reaches the app, forged or not.
    let mut headers = forged.to_vec();
    headers.extend([
        ("x-auth-user-id", "user_evil"),
        ("x-auth-session-id", "user_evil"),
        ("x-auth-org-id", "user_evil"),
        ("x-auth-org-role", "user_evil"),
        ("x-auth-org-slug", "user_evil"),
        ("x-auth-org-permissions", "user_evil"),
        ("x-auth-actor-id", "user_evil"),
    ]);
    let response = fetch(&proxy, "GET", "/public/x", &headers, None).await;
    let echo = echoed(response, &proxy).await;
    let seen = echo["headers"].as_object().unwrap();
    assert!(
        seen.keys().all(|name| !name.starts_with("x-auth")),
        "{seen:?}"
    );
    assert!(!echo["headers"].to_string().contains("evil"), "{seen:?}");
}

/// Known limit: Caddy's `forward_auth` drops a `Set-Cookie` from a 200 answer. The service
/// sends one only when a handshake completes on a request that is not a page load (a page
/// load gets a 307 with the cookies, which Caddy passes). The request is still allowed; the
/// browser just does not get the fresh session cookies.
#[tokio::test]
#[ignore = "needs caddy: run scripts/test"]
async fn caddy_forward_auth_drops_set_cookie_from_a_200() {
    let backends = Backends::start(&[]).await;
    let proxy = caddy(&backends).await;

    // The service answers a completed handshake on an API call with 200 and the cookies...
    let nonce = handshake_nonce(&backends, &format!("{}/api/me", proxy.base())).await;
    let auth = backends.auth.as_ref().unwrap();
    let forwarded_uri = format!("/api/me?__clerk_handshake_nonce={nonce}");
    let host = format!("127.0.0.1:{}", proxy.port);
    let direct = auth
        .client
        .get(auth.url("/verify?proxy=caddy"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", &host)
        .header("x-forwarded-uri", &forwarded_uri)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(header(&direct, "x-auth-user-id"), Some("user_1"));
    assert_eq!(direct.headers().get_all("set-cookie").iter().count(), 3);

    // ...which Caddy does not pass on: the app is reached, the client gets no cookie.
    let nonce = handshake_nonce(&backends, &format!("{}/api/me", proxy.base())).await;
    let response = fetch(
        &proxy,
        "GET",
        &format!("/api/me?__clerk_handshake_nonce={nonce}"),
        &[("accept", "application/json")],
        None,
    )
    .await;
    assert_eq!(response.status(), 200, "{}", proxy.log());
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 0);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-auth-user-id"], json!(["user_1"]));
}

/// A fresh handshake nonce from the fake Frontend API, as Clerk hands one to a browser.
async fn handshake_nonce(backends: &Backends, redirect_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(&format!("{}/v1/client/handshake", backends.clerk.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("redirect_url", redirect_url)
        .append_pair("format", "nonce");
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 307);
    let location = url::Url::parse(header(&response, "location").unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "__clerk_handshake_nonce")
        .map(|(_, v)| v.into_owned())
        .expect("a nonce")
}

/// Caddy forwards the path as the client wrote it, both in `X-Forwarded-Uri` and to the app;
/// dot segments, encoded dots and encoded slashes cannot walk around the `/admin` rule.
/// (Sent over a raw socket: an HTTP client library would resolve the dots itself.)
#[tokio::test]
#[ignore = "needs caddy: run scripts/test"]
async fn caddy_recipe_path_tricks_cannot_reach_around_a_rule() {
    let backends = Backends::start(&[]).await;
    let proxy = caddy(&backends).await;
    let member = harness::member_token();
    for path in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/%2E%2E/Admin/users",
        "/public/..%2fadmin/users",
        "/public%2f..%2fadmin/users",
        "/public/./../ADMIN/users",
    ] {
        let before = backends.upstream.hits();
        let status = raw_get(&proxy, path, &member).await;
        assert_eq!(status, 403, "{path} reached around the admin rule");
        assert_eq!(backends.upstream.hits(), before, "{path}");
    }
}

/// A GET written byte for byte, for paths a client library would normalise. Its status.
async fn raw_get(proxy: &Proxy, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n",
        proxy.port
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response}"))
}
