//! Test doubles and the `TestApp` that drives the real service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clerk_forward_auth::config::Settings;
use clerk_forward_auth::mint::{Signer, session_claims};
use clerk_forward_auth::startup::Application;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

pub const PROD_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
pub const SECRET: &str = "sk_test_forward_auth_tests";
pub const PUBLIC_PEM: &str = include_str!("../fixtures/key1.pub.pem");

pub fn key1() -> Signer {
    Signer::from_pkcs8_pem(include_str!("../fixtures/key1.pem"), "ins_test_key1").unwrap()
}

pub fn key2() -> Signer {
    Signer::from_pkcs8_pem(include_str!("../fixtures/key2.pem"), "ins_test_key2").unwrap()
}

pub fn now_s() -> i64 {
    clerk_forward_auth::domain::time::now_ms() / 1000
}

/// A fresh, valid session token for `user_1`, signed by `signer`.
pub fn token(signer: &Signer) -> String {
    token_at(signer, now_s())
}

/// A session token issued at `now` (seconds), valid for 60 s: for tests that compute with
/// its deadline, which must not depend on the clock ticking between two readings.
pub fn token_at(signer: &Signer, now: i64) -> String {
    signer.sign(&session_claims("user_1", "clerk.example.com", now, 60))
}

pub fn token_with(signer: &Signer, patch: Value) -> String {
    let mut claims = session_claims("user_1", "clerk.example.com", now_s(), 60);
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    signer.sign(&claims)
}

/// The service under test.
pub struct TestApp {
    pub reloader: clerk_forward_auth::reload::Reloader,
    pub base: String,
    /// The separate `/metrics` listener, when configured.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    handle: ServerHandle,
}

impl TestApp {
    /// Starts the real application on 127.0.0.1:0 with `env` on top of the defaults.
    pub async fn spawn(env: &[(&str, &str)]) -> Self {
        Self::spawn_with_file(None, env).await
    }

    /// Like `spawn`, with a configuration file as well.
    pub async fn spawn_with_file(file: Option<&std::path::Path>, env: &[(&str, &str)]) -> Self {
        let mut map: HashMap<String, String> = [
            ("CLERK_PUBLISHABLE_KEY", PROD_PK),
            ("CLERK_FA_LISTEN", "127.0.0.1:0"),
            ("CLERK_FA_WORKERS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in env {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let (settings, _) = Settings::load(file, &map).unwrap();
        let source = clerk_forward_auth::reload::ConfigSource {
            file: file.map(std::path::Path::to_path_buf),
            env: map,
        };
        let app = Application::build(&settings, source).unwrap();
        let reloader = app.reloader();
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
        let handle = app.spawn();
        Self {
            reloader,
            base,
            metrics_base,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            handle,
        }
    }

    /// Networkless: the fixture key as `CLERK_JWT_KEY`.
    pub async fn networkless(extra: &[(&str, &str)]) -> Self {
        let mut env = vec![("CLERK_JWT_KEY", PUBLIC_PEM)];
        env.extend_from_slice(extra);
        Self::spawn(&env).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET /verify with `headers`.
    pub async fn verify(&self, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url("/verify"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    pub async fn bearer(&self, token: &str) -> reqwest::Response {
        self.verify(&[
            ("authorization", &format!("Bearer {token}")),
            ("accept", "application/json"),
        ])
        .await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls `/readyz` until it answers `want`, for at most 10 s.
    pub async fn wait_ready(&self, want: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self
                .client
                .get(self.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status();
            if status.as_u16() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz stayed {status}, wanted {want}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

pub fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A stand-in for Clerk's Backend API JWKS endpoint (and the Frontend API's public one),
/// counting every fetch.
pub struct FakeClerk {
    pub base: String,
    state: Arc<JwksState>,
    handle: ServerHandle,
}

struct JwksState {
    /// Frontend API handshakes: nonce → Set-Cookie directives, consumed once.
    nonces: Mutex<HashMap<String, Vec<String>>>,
    /// Answer handshakes with the legacy signed `__clerk_handshake` instead of a nonce.
    legacy: std::sync::atomic::AtomicBool,
    payload_calls: AtomicUsize,
    refresh_calls: AtomicUsize,
    keys: Mutex<Value>,
    text: Mutex<Option<String>>,
    status: AtomicU16,
    fetches: AtomicUsize,
    /// When set, each fetch waits for a permit before answering.
    hold: Mutex<Option<Arc<Semaphore>>>,
    arrived: Notify,
}

impl FakeClerk {
    pub async fn start(signers: &[&Signer]) -> Self {
        let state = Arc::new(JwksState {
            nonces: Mutex::new(HashMap::new()),
            legacy: std::sync::atomic::AtomicBool::new(false),
            payload_calls: AtomicUsize::new(0),
            refresh_calls: AtomicUsize::new(0),
            keys: Mutex::new(jwks(signers)),
            text: Mutex::new(None),
            status: AtomicU16::new(200),
            fetches: AtomicUsize::new(0),
            hold: Mutex::new(None),
            arrived: Notify::new(),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/jwks", web::get().to(serve_jwks))
                .route("/.well-known/jwks.json", web::get().to(serve_jwks))
                .route("/v1/client/handshake", web::get().to(fapi_handshake))
                .route(
                    "/v1/clients/handshake_payload",
                    web::get().to(bapi_handshake_payload),
                )
                .route("/v1/sessions/{sid}/refresh", web::post().to(bapi_refresh))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// Env for a service that fetches its keys from this Backend API.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLERK_SECRET_KEY", SECRET.to_owned()),
            ("CLERK_API_URL", self.base.clone()),
        ]
    }

    pub fn use_legacy_handshake(&self) {
        self.state.legacy.store(true, Ordering::SeqCst);
    }

    pub fn payload_calls(&self) -> usize {
        self.state.payload_calls.load(Ordering::SeqCst)
    }

    pub fn refresh_calls(&self) -> usize {
        self.state.refresh_calls.load(Ordering::SeqCst)
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn serve_keys(&self, signers: &[&Signer]) {
        *self.state.keys.lock().unwrap() = jwks(signers);
    }

    pub fn serve_raw(&self, body: Value) {
        *self.state.keys.lock().unwrap() = body;
    }

    /// Serves `body` as-is (not JSON) from the JWKS endpoints.
    pub fn serve_text(&self, body: &str) {
        *self.state.text.lock().unwrap() = Some(body.to_owned());
    }

    pub fn fail_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// From now on each fetch waits until `release`.
    pub fn hold(&self) -> Arc<Semaphore> {
        let sem = Arc::new(Semaphore::new(0));
        *self.state.hold.lock().unwrap() = Some(sem.clone());
        sem
    }

    /// Resolves once a fetch has reached the server.
    pub async fn fetch_arrived(&self) {
        self.state.arrived.notified().await;
    }
}

impl Drop for FakeClerk {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

async fn serve_jwks(req: HttpRequest, state: web::Data<JwksState>) -> HttpResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    state.arrived.notify_one();
    let hold = state.hold.lock().unwrap().clone();
    if let Some(sem) = hold {
        let _permit = sem.acquire().await.unwrap();
    }
    let is_bapi = req.path() == "/v1/jwks";
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if is_bapi && auth != Some(&format!("Bearer {SECRET}")) {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "clerk_key_invalid", "message": "bad key"}]}));
    }
    let status = state.status.load(Ordering::SeqCst);
    if status != 200 {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .body("upstream trouble");
    }
    if let Some(text) = state.text.lock().unwrap().clone() {
        return HttpResponse::Ok().content_type("text/html").body(text);
    }
    HttpResponse::Ok().json(state.keys.lock().unwrap().clone())
}

/// The cookies the Frontend API sets after a handshake: a fresh session issued by the
/// frontend API the browser talked to. No `Secure`: the tests serve the app over plain
/// http on loopback, where a real browser would drop Secure cookies from 127.0.0.1.
fn fresh_session_cookies(fapi_host: &str) -> Vec<String> {
    let now = now_s();
    let token = key1().sign(&session_claims("user_1", fapi_host, now, 60));
    vec![
        format!("__session={token}; Path=/; SameSite=Lax"),
        format!("__client_uat={now}; Path=/; Max-Age=315360000; SameSite=Lax"),
        "__clerk_handshake_nonce=; Path=/; Max-Age=0".to_owned(),
    ]
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.query_pairs_mut().append_pair(name, value);
    url.into()
}

/// `GET /v1/client/handshake` on the Frontend API: sends the browser back to `redirect_url`
/// with a nonce (or a legacy signed handshake). The test browser names the host it meant in
/// `x-fapi-host`.
async fn fapi_handshake(req: HttpRequest, state: web::Data<JwksState>) -> HttpResponse {
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let Some(redirect_url) = query.get("redirect_url") else {
        return HttpResponse::BadRequest().body("redirect_url missing");
    };
    if query.get("format").map(String::as_str) != Some("nonce") {
        return HttpResponse::BadRequest().body("format=nonce expected");
    }
    let host = req
        .headers()
        .get("x-fapi-host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("clerk.example.com");
    let directives = fresh_session_cookies(host);
    // A satellite that asked to sync comes back marked as synced, which stops the loop.
    let redirect_url = &redirect_url.replace("__clerk_synced=false", "__clerk_synced=true");
    let location = if state.legacy.load(Ordering::SeqCst) {
        let signer = key1();
        let token = signer.sign_with_header(
            &json!({"alg": "RS256", "kid": signer.kid(), "typ": "JWT"}),
            &json!({"handshake": directives}),
        );
        with_param(redirect_url, "__clerk_handshake", &token)
    } else {
        let nonce = format!("nonce_{}", state.nonces.lock().unwrap().len() + 1);
        state
            .nonces
            .lock()
            .unwrap()
            .insert(nonce.clone(), directives);
        with_param(redirect_url, "__clerk_handshake_nonce", &nonce)
    };
    HttpResponse::TemporaryRedirect()
        .insert_header(("location", location))
        .finish()
}

fn bapi_authorized(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET}"))
}

/// `GET /v1/clients/handshake_payload?nonce=…`: each nonce works once.
async fn bapi_handshake_payload(req: HttpRequest, state: web::Data<JwksState>) -> HttpResponse {
    state.payload_calls.fetch_add(1, Ordering::SeqCst);
    if !bapi_authorized(&req) {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "clerk_key_invalid"}]}));
    }
    let nonce = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match state.nonces.lock().unwrap().remove(&nonce) {
        Some(directives) => HttpResponse::Ok().json(json!({ "directives": directives })),
        None => HttpResponse::BadRequest()
            .json(json!({"errors": [{"code": "handshake_nonce_invalid"}]})),
    }
}

/// `POST /v1/sessions/{sid}/refresh`: trades `rt_valid` for fresh cookies.
async fn bapi_refresh(
    req: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<JwksState>,
) -> HttpResponse {
    state.refresh_calls.fetch_add(1, Ordering::SeqCst);
    if !bapi_authorized(&req) {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "clerk_key_invalid"}]}));
    }
    let sid = req.match_info().get("sid").unwrap_or("");
    if body["refresh_token"] != "rt_valid" || sid != "sess_1" || body["format"] != "cookie" {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "refresh_token_invalid"}]}));
    }
    HttpResponse::Ok().json(fresh_session_cookies("clerk.example.com"))
}

/// A configuration file in a fresh temporary directory, removed on drop.
pub struct ConfigFile {
    pub path: std::path::PathBuf,
}

impl ConfigFile {
    pub fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cfa-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, contents).unwrap();
        Self { path }
    }

    pub fn write(&self, contents: &str) {
        std::fs::write(&self.path, contents).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
