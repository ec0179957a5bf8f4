//! Envoy `ext_authz` (HTTP service mode) with `deploy/envoy/envoy.yaml`: the check is the
//! original method on `/verify<path and query>`, and only an answer of exactly 200 allows;
//! any other answer (307s with every cookie included) goes to the client as it is.
//! Also checks that `deploy/envoy-gateway/security-policy.yaml` is the policy it claims.

use std::process::Command;

use serde_json::Value;

use crate::harness::{self, Backends, Proxy, Scratch, fetch, scenarios};
use crate::helpers::{header, key1, now_s, token_with};

/// The seven identity headers the service always answers a 200 with.
const IDENTITY: [&str; 7] = [
    "x-auth-user-id",
    "x-auth-session-id",
    "x-auth-org-id",
    "x-auth-org-role",
    "x-auth-org-slug",
    "x-auth-org-permissions",
    "x-auth-actor-id",
];

/// Starts Envoy on the recipe, templated only for its three addresses' ports (and the
/// listener kept on loopback). `--base-id` is the listener's port, so parallel runs never
/// share Envoy's shared-memory and socket names.
async fn envoy(backends: &Backends) -> Proxy {
    let scratch = Scratch::new("envoy");
    let port = harness::free_port();
    let config = harness::recipe(
        "deploy/envoy/envoy.yaml",
        &[
            (
                "port_value: 9090",
                format!("port_value: {}", backends.auth_port),
            ),
            (
                "port_value: 3000",
                format!("port_value: {}", backends.upstream.port),
            ),
            (
                "address: 0.0.0.0, port_value: 8000",
                format!("address: 127.0.0.1, port_value: {port}"),
            ),
        ],
    );
    let config = scratch.write("envoy.yaml", &config);
    let mut command = Command::new(harness::binary("envoy"));
    command.args([
        "-c",
        &config.display().to_string(),
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--base-id",
        &port.to_string(),
        "--log-level",
        "info",
    ]);
    Proxy::start(command, port, scratch).await
}

#[tokio::test]
#[ignore = "needs envoy: run scripts/test"]
async fn envoy_recipe_passes_every_scenario() {
    let mut backends = Backends::start(&[]).await;
    let proxy = envoy(&backends).await;
    scenarios::all(&proxy, &mut backends).await;
}

/// What only this recipe's own lines guarantee: the check's headers are Envoy's, not the
/// client's; look-alikes in any spelling are stripped; the service's denials reach the
/// client with their explanations; a dead service is a 503.
#[tokio::test]
#[ignore = "needs envoy: run scripts/test"]
async fn envoy_recipe_keeps_its_own_guarantees() {
    let mut backends = Backends::start(&[]).await;
    let proxy = envoy(&backends).await;

    // A forged scheme cannot change the sign-in return URL: use_remote_address makes Envoy
    // overwrite X-Forwarded-Proto, and headers_to_add copies Envoy's value to the check.
    let response = fetch(
        &proxy,
        "GET",
        "/page/private",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example.com"),
            ("sec-fetch-dest", "document"),
            ("accept", "text/html"),
        ],
        None,
    )
    .await;
    assert_eq!(response.status(), 307, "{}", proxy.log());
    let location = header(&response, "location").unwrap();
    let own = format!("{}/page/private", proxy.base());
    let expected = format!(
        "{}?redirect_url={}",
        harness::SIGN_IN,
        url::form_urlencoded::byte_serialize(own.as_bytes()).collect::<String>()
    );
    assert_eq!(location, expected);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(header(&response, "x-clerk-auth-status"), Some("signed-out"));

    // ingress-nginx's marker never reaches the check (allowed_headers leaves it out), so it
    // cannot switch the answer to the nginx shape (a 401 instead of the handshake's 307).
    let now = now_s();
    let expired = token_with(
        &key1(),
        serde_json::json!({"iat": now - 120, "nbf": now - 130, "exp": now - 60}),
    );
    let cookie = format!("__session={expired}; __client_uat={}", now - 600);
    let response = fetch(
        &proxy,
        "GET",
        "/page/x",
        &[
            ("cookie", &cookie),
            ("sec-fetch-dest", "document"),
            ("accept", "text/html"),
            ("x-sent-from", "nginx-ingress-controller"),
        ],
        None,
    )
    .await;
    assert_eq!(response.status(), 307, "{}", proxy.log());

    // A 401 keeps its challenge, its reason and its JSON body.
    let response = fetch(
        &proxy,
        "GET",
        "/api/me",
        &[("authorization", "Bearer x")],
        None,
    )
    .await;
    assert_eq!(response.status(), 401);
    assert!(
        header(&response, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{:?}",
        response.headers()
    );
    assert!(header(&response, "x-clerk-auth-reason").is_some());
    assert!(
        header(&response, "content-type").is_some_and(|v| v.contains("json")),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "signed-out", "{body}");

    // Look-alikes in every spelling of their separators are stripped before the check; the
    // real headers are all there, empty when unknown.
    let admin = format!("Bearer {}", harness::admin_token());
    let response = fetch(
        &proxy,
        "GET",
        "/api/me",
        &[
            ("authorization", &admin),
            ("x-auth.org-slug", "evil"),
            ("x.auth-actor.id", "evil"),
            ("X-AUTH-ORG-SLUG", "evil"),
            ("x-auth-actor-id", "evil"),
        ],
        None,
    )
    .await;
    assert_eq!(response.status(), 200, "{}", proxy.log());
    let echo: Value = response.json().await.unwrap();
    let headers = echo["headers"].as_object().unwrap();
    assert!(!echo["headers"].to_string().contains("evil"), "{headers:?}");
    for name in IDENTITY {
        assert_eq!(
            headers[name].as_array().unwrap().len(),
            1,
            "{name}: {headers:?}"
        );
    }
    assert_eq!(headers["x-auth-actor-id"], serde_json::json!([""]));

    // The service down: Envoy's status_on_error, 503, and the app is never reached.
    backends.stop_auth();
    let addr = backends.auth_addr();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = backends.upstream.hits();
    let response = fetch(&proxy, "GET", "/public/x", &[], None).await;
    assert_eq!(response.status(), 503);
    assert_eq!(backends.upstream.hits(), before);
}

/// The Envoy Gateway policy is YAML of the kind it claims, pointed at `/verify`, copying
/// exactly the identity headers and failing closed.
#[test]
fn envoy_gateway_policy_is_a_security_policy() {
    let text = harness::recipe("deploy/envoy-gateway/security-policy.yaml", &[]);
    let policy: Value = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    assert_eq!(policy["kind"], "SecurityPolicy", "{policy}");
    assert_eq!(policy["apiVersion"], "gateway.envoyproxy.io/v1alpha1");
    let ext_auth = &policy["spec"]["extAuth"];
    assert_eq!(ext_auth["failOpen"], false, "{ext_auth}");
    assert_eq!(ext_auth["http"]["path"], "/verify");
    assert_eq!(
        ext_auth["http"]["headersToBackend"],
        serde_json::json!(IDENTITY)
    );
    let to_check = ext_auth["headersToExtAuth"].as_array().unwrap();
    for name in ["cookie", "authorization", "accept", "sec-fetch-dest"] {
        assert!(to_check.iter().any(|h| h == name), "{name}: {to_check:?}");
    }
    assert!(ext_auth["http"]["backendRefs"][0]["name"].is_string());
}
