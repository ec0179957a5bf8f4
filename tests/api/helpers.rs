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
    signer.sign(&session_claims("user_1", "clerk.example.com", now_s(), 60))
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
    pub base: String,
    /// The separate `/metrics` listener, when configured.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    handle: ServerHandle,
}

impl TestApp {
    /// Starts the real application on 127.0.0.1:0 with `env` on top of the defaults.
    pub async fn spawn(env: &[(&str, &str)]) -> Self {
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
        let (settings, _) = Settings::load(None, &map).unwrap();
        let app = Application::build(&settings).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
        let handle = app.spawn();
        Self {
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
    keys: Mutex<Value>,
    status: AtomicU16,
    fetches: AtomicUsize,
    /// When set, each fetch waits for a permit before answering.
    hold: Mutex<Option<Arc<Semaphore>>>,
    arrived: Notify,
}

impl FakeClerk {
    pub async fn start(signers: &[&Signer]) -> Self {
        let state = Arc::new(JwksState {
            keys: Mutex::new(jwks(signers)),
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

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn serve_keys(&self, signers: &[&Signer]) {
        *self.state.keys.lock().unwrap() = jwks(signers);
    }

    pub fn serve_raw(&self, body: Value) {
        *self.state.keys.lock().unwrap() = body;
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
    HttpResponse::Ok().json(state.keys.lock().unwrap().clone())
}
