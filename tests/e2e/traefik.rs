//! Traefik `forwardAuth` with `deploy/traefik/`: real 307s straight from the check, and
//! Clerk's cookies on a 200 through `addAuthCookiesToResponse`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::harness::{self, Backends, Proxy, Scratch, Upstream, scenarios};

/// Traefik running the recipe, with clerk-forward-auth at `auth` and the app at `app`.
async fn traefik(auth: String, app: String) -> Proxy {
    let scratch = Scratch::new("traefik");
    let port = harness::free_port();
    let dynamic = scratch.write(
        "dynamic.yml",
        &harness::recipe(
            "deploy/traefik/dynamic.yml",
            &[("127.0.0.1:9090", auth), ("127.0.0.1:3000", app)],
        ),
    );
    let config = scratch.write(
        "traefik.yml",
        &harness::recipe(
            "deploy/traefik/traefik.yml",
            &[
                (
                    "address: \":8000\"",
                    format!("address: \"127.0.0.1:{port}\""),
                ),
                ("/etc/traefik/dynamic.yml", dynamic.display().to_string()),
            ],
        ),
    );
    let mut command = Command::new(harness::binary("traefik"));
    command
        .arg(format!("--configFile={}", config.display()))
        .current_dir(&scratch.0);
    let proxy = Proxy::start(command, port, scratch).await;
    routes_loaded(&proxy).await;
    proxy
}

/// Traefik listens before the file provider's routes are live (until then every path is
/// a 404 from Traefik itself). Waits for the public route to reach the app.
async fn routes_loaded(proxy: &Proxy) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = harness::fetch(proxy, "GET", "/public/ready", &[], None).await;
        if response.status() != 404 {
            assert_eq!(response.status(), 200, "{}", proxy.log());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Traefik never loaded the routes:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs traefik: run scripts/test"]
async fn traefik_recipe_passes_every_scenario() {
    let mut backends = Backends::start(&[]).await;
    let proxy = traefik(backends.auth_addr(), backends.upstream_addr()).await;
    scenarios::all(&proxy, &mut backends).await;
}

/// A production handshake resolved on an API call is a 200 carrying Clerk's cookies (no
/// redirect for a fetch). Traefik drops a 2xx's Set-Cookie unless it is named in
/// `addAuthCookiesToResponse`: the recipe's list must bring them to the browser.
#[tokio::test]
#[ignore = "needs traefik: run scripts/test"]
async fn traefik_passes_clerk_cookies_on_a_200() {
    let backends = Backends::start(&[]).await;
    let proxy = traefik(backends.auth_addr(), backends.upstream_addr()).await;
    // The Frontend API (the fake) hands out a nonce, as it would on the way back to the app.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = format!("{}/api/items", proxy.base());
    let mut handshake = url::Url::parse(&backends.clerk.base).unwrap();
    handshake.set_path("/v1/client/handshake");
    handshake
        .query_pairs_mut()
        .append_pair("redirect_url", &back)
        .append_pair("format", "nonce");
    let handshake = client.get(handshake).send().await.unwrap();
    let location = url::Url::parse(handshake.headers()["location"].to_str().unwrap()).unwrap();
    let nonce = location
        .query_pairs()
        .find(|(k, _)| k == "__clerk_handshake_nonce")
        .map(|(_, v)| v.into_owned())
        .unwrap();

    let before = backends.clerk.payload_calls();
    let cookie = format!("__clerk_handshake_nonce={nonce}");
    let response = harness::fetch(
        &proxy,
        "GET",
        "/api/items",
        &[("cookie", &cookie), ("accept", "application/json")],
        None,
    )
    .await;
    assert_eq!(response.status(), 200, "{}", proxy.log());
    assert_eq!(backends.clerk.payload_calls(), before + 1);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let names: Vec<&str> = cookies
        .iter()
        .map(|c| c.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["__session", "__client_uat", "__clerk_handshake_nonce"],
        "{cookies:#?}"
    );
    assert!(cookies[2].contains("Max-Age=0"), "{cookies:#?}");
    // The app was reached with the identity of the fresh session.
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-auth-user-id"], json!(["user_1"]));
}

/// What the check itself receives, seen by a stand-in for clerk-forward-auth: the
/// allow-listed client headers as sent, the original request rebuilt by Traefik, and
/// nothing a client could use to describe another request.
#[tokio::test]
#[ignore = "needs traefik: run scripts/test"]
async fn traefik_sends_the_check_only_what_it_needs() {
    let seen: Arc<Checks> = Arc::default();
    let auth = capture_auth(seen.clone()).await;
    let upstream = Upstream::start().await;
    let proxy = traefik(auth, format!("127.0.0.1:{}", upstream.port)).await;

    let kept = [
        ("authorization", "Bearer abc"),
        ("cookie", "__session=abc; __client_uat=1"),
        ("accept", "text/html"),
        ("sec-fetch-dest", "document"),
        ("referer", "https://elsewhere.example/"),
        ("origin", "https://elsewhere.example"),
        ("access-control-request-method", "PUT"),
        ("user-agent", "cfa-e2e/1"),
    ];
    let dropped = [
        ("x-original-url", "http://127.0.0.1/public/x"),
        ("x-original-uri", "/public/x"),
        ("x-original-method", "OPTIONS"),
        ("x-sent-from", "nginx-ingress-controller"),
        ("x-auth-user-id", "user_evil"),
        ("x-custom", "anything"),
    ];
    let forged = [
        ("x-forwarded-uri", "/public/x"),
        ("x-forwarded-method", "OPTIONS"),
        ("x-forwarded-host", "public.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let headers: Vec<_> = kept
        .iter()
        .chain(&dropped)
        .chain(&forged)
        .copied()
        .collect();
    let response = harness::fetch(&proxy, "DELETE", "/admin/users?q=1", &headers, None).await;
    assert_eq!(response.status(), 200, "{}", proxy.log());

    let seen = seen.lock().unwrap();
    let (target, got) = seen.last().expect("the check was not called");
    assert_eq!(target, "/verify?proxy=traefik");
    for (name, value) in kept {
        assert_eq!(
            got.get(name),
            Some(&vec![value.to_owned()]),
            "{name}: {got:#?}"
        );
    }
    for (name, _) in dropped {
        assert!(
            !got.contains_key(name),
            "{name} reached the check: {got:#?}"
        );
    }
    let host = format!("127.0.0.1:{}", proxy.port);
    for (name, value) in [
        ("x-forwarded-uri", "/admin/users?q=1"),
        ("x-forwarded-method", "DELETE"),
        ("x-forwarded-host", host.as_str()),
        ("x-forwarded-proto", "http"),
    ] {
        assert_eq!(
            got.get(name),
            Some(&vec![value.to_owned()]),
            "{name}: {got:#?}"
        );
    }
}

type Headers = BTreeMap<String, Vec<String>>;

/// Each check received: its target and its headers.
type Checks = Mutex<Vec<(String, Headers)>>;

/// A stand-in for clerk-forward-auth that records each check and allows it. Returns its
/// address.
async fn capture_auth(seen: Arc<Checks>) -> String {
    let seen = web::Data::from(seen);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(seen.clone())
            .default_service(web::to(record))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("127.0.0.1:{port}")
}

async fn record(req: HttpRequest, seen: web::Data<Checks>) -> HttpResponse {
    let mut headers = Headers::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap_or("<binary>").to_owned());
    }
    seen.lock().unwrap().push((req.uri().to_string(), headers));
    HttpResponse::Ok()
        .insert_header(("x-auth-user-id", "user_1"))
        .finish()
}

/// The Kubernetes form of the middleware (not run here) must stay the middleware that is:
/// same options, same values, only the address differs.
#[test]
fn the_kubernetes_middleware_matches_the_tested_one() {
    let dynamic = yaml("deploy/traefik/dynamic.yml");
    let crd = yaml("deploy/traefik/middleware.yaml");
    assert_eq!(crd["apiVersion"], "traefik.io/v1alpha1");
    assert_eq!(crd["kind"], "Middleware");
    let mut tested = dynamic["http"]["middlewares"]["clerk-forward-auth"]["forwardAuth"].clone();
    let mut kubernetes = crd["spec"]["forwardAuth"].clone();
    let path = |address: &Value| {
        let url = url::Url::parse(address.as_str().unwrap()).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap_or(""))
    };
    assert_eq!(path(&kubernetes["address"]), path(&tested["address"]));
    for options in [&mut tested, &mut kubernetes] {
        options.as_object_mut().unwrap().remove("address");
    }
    assert_eq!(kubernetes, tested);
}

fn yaml(path: &str) -> Value {
    config::Config::builder()
        .add_source(config::File::from_str(
            &harness::recipe(path, &[]),
            config::FileFormat::Yaml,
        ))
        .build()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .try_deserialize()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}
