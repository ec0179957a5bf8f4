//! Soak test (not run in CI): minutes of load against the real binary, with a key rotation
//! and a JWKS outage in the middle. Every answer is checked; it reports the decisions
//! checked, the wrong ones (must be 0), transport errors, and the service's memory at the
//! start and the end.
//!
//! `cargo build --release && cargo run --release --example soak -- [seconds] [connections]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use clerk_forward_auth::mint::{Signer, session_claims};
use serde_json::json;

const PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";

struct Jwks {
    keys: std::sync::Mutex<serde_json::Value>,
    status: AtomicU16,
}

async fn jwks(state: web::Data<Jwks>) -> HttpResponse {
    match state.status.load(Ordering::SeqCst) {
        200 => HttpResponse::Ok().json(state.keys.lock().map(|k| k.clone()).unwrap_or_default()),
        code => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap_or_default())
                .finish()
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(180);
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let old = Arc::new(Signer::generate("ins_soak_old").expect("key"));
    let new = Arc::new(Signer::generate("ins_soak_new").expect("key"));

    // A Backend API JWKS endpoint that can rotate and go down.
    let state = web::Data::new(Jwks {
        keys: std::sync::Mutex::new(json!({ "keys": [old.jwk()] })),
        status: AtomicU16::new(200),
    });
    let data = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/jwks", web::get().to(jwks))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let jwks_port = server.addrs()[0].port();
    tokio::spawn(server.run());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let binary =
        std::env::var("CFA_BIN").unwrap_or_else(|_| "target/release/clerk-forward-auth".into());
    let mut child = std::process::Command::new(&binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CLERK_PUBLISHABLE_KEY", PK)
        .env("CLERK_SECRET_KEY", "sk_test_soak")
        .env("CLERK_API_URL", format!("http://127.0.0.1:{jwks_port}"))
        .env("CLERK_FA_JWKS_REFRESH_SECS", "5")
        .env("CLERK_FA_JWKS_MIN_REFETCH_MS", "1000")
        .env("CLERK_FA_LOG_LEVEL", "warn")
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary}: {e} (build it with cargo build --release)")
        });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the service never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_start = rss_kib(child.id());
    println!(
        "soak: {seconds} s, {connections} connections, service pid {} (RSS {rss_start} KiB)",
        child.id()
    );

    let rotated = Arc::new(AtomicBool::new(false));
    let (checked, wrong, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..connections {
        let (client, base, old, new, rotated) = (
            client.clone(),
            base.clone(),
            old.clone(),
            new.clone(),
            rotated.clone(),
        );
        let (checked, wrong, errors) = (checked.clone(), wrong.clone(), errors.clone());
        workers.spawn(async move {
            let mut i: u64 = 0;
            while Instant::now() < deadline {
                i += 1;
                let now = clerk_forward_auth::domain::time::now_ms() / 1000;
                let signer = if rotated.load(Ordering::SeqCst) {
                    &new
                } else {
                    &old
                };
                let user = format!("user_{worker}_{}", i % 500);
                // Nine valid tokens in ten; the tenth expired or forged.
                let (token, want) = match i % 10 {
                    0 => (
                        signer.sign(&session_claims(&user, "clerk.example.com", now - 3600, 60)),
                        401,
                    ),
                    5 => {
                        let t = signer.sign(&session_claims(&user, "clerk.example.com", now, 60));
                        (format!("{}x", &t[..t.len() - 1]), 401)
                    }
                    _ => (
                        signer.sign(&session_claims(&user, "clerk.example.com", now, 60)),
                        200,
                    ),
                };
                match client
                    .get(format!("{base}/verify"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) => {
                        checked.fetch_add(1, Ordering::Relaxed);
                        let user_ok = want != 200
                            || r.headers()
                                .get("x-auth-user-id")
                                .and_then(|v| v.to_str().ok())
                                == Some(user.as_str());
                        if r.status().as_u16() != want || !user_ok {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    // A third of the way: Clerk rotates (the JWKS gains the new key, tokens use it).
    // Half way: the JWKS goes down for a fifth of the run; cached keys carry on.
    tokio::time::sleep(Duration::from_secs(seconds / 3)).await;
    if let Ok(mut keys) = state.keys.lock() {
        *keys = json!({ "keys": [old.jwk(), new.jwk()] });
    }
    rotated.store(true, Ordering::SeqCst);
    println!("soak: {:>4} s  rotated keys", started.elapsed().as_secs());
    tokio::time::sleep(Duration::from_secs(seconds / 6)).await;
    state.status.store(503, Ordering::SeqCst);
    println!("soak: {:>4} s  JWKS down", started.elapsed().as_secs());
    tokio::time::sleep(Duration::from_secs(seconds / 5)).await;
    state.status.store(200, Ordering::SeqCst);
    println!("soak: {:>4} s  JWKS back", started.elapsed().as_secs());
    while workers.join_next().await.is_some() {}

    let rss_end = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let (checked, wrong, errors) = (
        checked.load(Ordering::SeqCst),
        wrong.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst),
    );
    println!(
        "soak: decisions checked {checked}, wrong {wrong}, errors {errors}, {:.0} req/s, RSS {rss_start} KiB -> {rss_end} KiB",
        checked as f64 / started.elapsed().as_secs_f64()
    );
    if wrong > 0 || errors > 0 {
        std::process::exit(1);
    }
}
