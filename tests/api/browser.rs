//! Full browser round trips through a forward-auth hop, as a proxy would drive them: each
//! page load asks `/verify`, redirects are followed, Clerk's Frontend API is the fake one,
//! and cookies live in a jar.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;

/// One step of a navigation: who answered, with what.
#[derive(Debug)]
struct Step {
    host: String,
    status: u16,
    reason: Option<String>,
    cookies_set: usize,
}

struct Browser<'a> {
    app: &'a TestApp,
    clerk: &'a FakeClerk,
    /// Hosts served by the fake Frontend API.
    fapi_hosts: Vec<&'static str>,
    jar: BTreeMap<String, String>,
    steps: Vec<Step>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp, clerk: &'a FakeClerk) -> Self {
        Self {
            app,
            clerk,
            fapi_hosts: vec!["clerk.example.com", "clerk.satellite.example.net"],
            jar: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&mut self, response: &reqwest::Response) -> usize {
        let mut count = 0;
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, val) = pair.split_once('=').unwrap();
            let deleted = value.to_ascii_lowercase().contains("max-age=0");
            if deleted || val.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), val.to_owned());
            }
            count += 1;
        }
        count
    }

    /// Navigates to `url` and follows redirects; returns the final URL and the user id the
    /// upstream would see (`None` if the navigation ended in a denial).
    async fn navigate(&mut self, url: &str) -> (String, Option<String>) {
        let mut url = url::Url::parse(url).unwrap();
        for _ in 0..12 {
            let host = url.host_str().unwrap().to_owned();
            let path = url[url::Position::BeforePath..].to_owned();
            let response = if self.fapi_hosts.contains(&host.as_str()) {
                self.app
                    .client
                    .get(format!("{}{path}", self.clerk.base))
                    .header("x-fapi-host", &host)
                    .send()
                    .await
                    .unwrap()
            } else {
                let authority = match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                self.app
                    .verify(&[
                        ("x-forwarded-method", "GET"),
                        ("x-forwarded-proto", url.scheme()),
                        ("x-forwarded-host", &authority),
                        ("x-forwarded-uri", &path),
                        ("sec-fetch-dest", "document"),
                        ("accept", "text/html"),
                        ("cookie", &self.cookie_header()),
                    ])
                    .await
            };
            let cookies_set = self.store(&response);
            let status = response.status().as_u16();
            self.steps.push(Step {
                host: host.clone(),
                status,
                reason: header(&response, "x-clerk-auth-reason").map(str::to_owned),
                cookies_set,
            });
            match status {
                307 => url = url::Url::parse(header(&response, "location").unwrap()).unwrap(),
                200 => {
                    return (
                        url.to_string(),
                        header(&response, "x-auth-user-id").map(str::to_owned),
                    );
                }
                _ => return (url.to_string(), None),
            }
        }
        panic!("too many redirects: {:?}", self.steps);
    }

    fn statuses(&self) -> Vec<(String, u16)> {
        self.steps
            .iter()
            .map(|s| (s.host.clone(), s.status))
            .collect()
    }
}

async fn app(clerk: &FakeClerk, extra: &[(&str, &str)]) -> TestApp {
    let env = clerk.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;
    app
}

fn expired_session(browser: &mut Browser<'_>) {
    let now = now_s();
    let expired = token_with(
        &key1(),
        json!({"iat": now - 120, "nbf": now - 130, "exp": now - 60}),
    );
    browser.jar.insert("__session".into(), expired);
    browser
        .jar
        .insert("__client_uat".into(), (now - 600).to_string());
}

#[tokio::test]
async fn an_expired_session_goes_through_the_handshake_and_comes_back_signed_in() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let mut browser = Browser::new(&app, &clerk);
    expired_session(&mut browser);

    let (url, user) = browser
        .navigate("https://app.example.com/dashboard?tab=1")
        .await;

    assert_eq!(user.as_deref(), Some("user_1"), "{:?}", browser.steps);
    assert_eq!(
        url, "https://app.example.com/dashboard?tab=1",
        "the nonce is gone from the URL"
    );
    assert_eq!(
        browser.statuses(),
        [
            ("app.example.com".into(), 307),   // handshake
            ("clerk.example.com".into(), 307), // the Frontend API sends a nonce back
            ("app.example.com".into(), 307),   // handshake resolved: cookies, back to the URL
            ("app.example.com".into(), 200),
        ]
    );
    assert_eq!(
        browser.steps[0].reason.as_deref(),
        Some("session-token-expired-refresh-non-eligible-no-refresh-cookie")
    );
    assert_eq!(
        browser.steps[2].cookies_set, 4,
        "every directive plus the redirect counter"
    );
    assert_eq!(clerk.payload_calls(), 1);
    assert!(!browser.jar.contains_key("__clerk_handshake_nonce"));
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"clerk_forward_auth_handshake_resolutions_total{outcome="signed_in"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_legacy_signed_handshake_completes_too() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    clerk.use_legacy_handshake();
    let app = app(&clerk, &[]).await;
    let mut browser = Browser::new(&app, &clerk);
    expired_session(&mut browser);
    let (url, user) = browser.navigate("https://app.example.com/a").await;
    assert_eq!(user.as_deref(), Some("user_1"), "{:?}", browser.steps);
    assert_eq!(url, "https://app.example.com/a");
    assert_eq!(
        clerk.payload_calls(),
        0,
        "no Backend API call for a signed handshake"
    );
}

#[tokio::test]
async fn a_refresh_cookie_refreshes_on_the_server_without_a_handshake() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let mut browser = Browser::new(&app, &clerk);
    expired_session(&mut browser);
    browser
        .jar
        .insert("__refresh_naoXFJnI".into(), "rt_valid".into());
    let (url, user) = browser.navigate("https://app.example.com/r").await;
    assert_eq!(user.as_deref(), Some("user_1"), "{:?}", browser.steps);
    assert_eq!(url, "https://app.example.com/r");
    assert_eq!(
        browser.statuses(),
        [
            ("app.example.com".into(), 307),
            ("app.example.com".into(), 200)
        ]
    );
    assert_eq!(clerk.refresh_calls(), 1);
}

#[tokio::test]
async fn a_rejected_refresh_falls_back_to_the_handshake() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let mut browser = Browser::new(&app, &clerk);
    expired_session(&mut browser);
    browser
        .jar
        .insert("__refresh_naoXFJnI".into(), "rt_revoked".into());
    let (_, user) = browser.navigate("https://app.example.com/r").await;
    assert_eq!(user.as_deref(), Some("user_1"));
    assert_eq!(
        browser.steps[0].reason.as_deref(),
        Some("session-token-expired-refresh-refresh_token_invalid")
    );
}

#[tokio::test]
async fn a_satellite_syncs_through_its_own_frontend_api() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(
        &clerk,
        &[
            ("CLERK_IS_SATELLITE", "true"),
            ("CLERK_DOMAIN", "satellite.example.net"),
        ],
    )
    .await;
    let mut browser = Browser::new(&app, &clerk);
    let (url, user) = browser
        .navigate("https://satellite.example.net/p?__clerk_synced=false")
        .await;
    assert_eq!(user.as_deref(), Some("user_1"), "{:?}", browser.steps);
    assert_eq!(
        browser.steps[0].reason.as_deref(),
        Some("satellite-needs-syncing")
    );
    assert_eq!(browser.steps[1].host, "clerk.satellite.example.net");
    assert_eq!(url, "https://satellite.example.net/p?__clerk_synced=true");
}

#[tokio::test]
async fn a_replayed_nonce_cookie_ends_in_a_denial_not_a_loop() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(&clerk, &[]).await;
    let mut browser = Browser::new(&app, &clerk);
    browser
        .jar
        .insert("__clerk_handshake_nonce".into(), "nonce_stale".into());
    let (_, user) = browser.navigate("https://app.example.com/x").await;
    assert_eq!(user, None);
    let last = browser.steps.last().unwrap();
    assert_eq!(
        (last.status, last.reason.as_deref()),
        (401, Some("session-token-and-uat-missing"))
    );
    assert_eq!(
        browser.steps.len(),
        4,
        "three resolution attempts, then the loop guard: {:?}",
        browser.steps
    );
    assert_eq!(clerk.payload_calls(), 3);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"clerk_forward_auth_handshake_resolutions_total{outcome="loop"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"clerk_forward_auth_handshake_resolutions_total{outcome="failed"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_signed_out_page_load_goes_to_sign_in_and_an_api_call_gets_401() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let app = app(
        &clerk,
        &[("CLERK_SIGN_IN_URL", "https://accounts.example.com/sign-in")],
    )
    .await;
    let response = app
        .verify(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/private?q=1"),
            ("sec-fetch-dest", "document"),
        ])
        .await;
    assert_eq!(response.status(), 307);
    assert_eq!(
        header(&response, "location"),
        Some(
            "https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fprivate%3Fq%3D1"
        )
    );
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("session-token-and-uat-missing")
    );
    let api = app
        .verify(&[
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/api"),
            ("accept", "application/json"),
        ])
        .await;
    assert_eq!(api.status(), 401);
}
