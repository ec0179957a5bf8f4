//! The floor of this service's contract on actix-web (not run in CI): what any `/verify`
//! costs before it decides anything. `/ok` answers a bare 200, like the benchmark's
//! ceiling; `/floor` finds the bearer token and answers with the same eight headers a
//! signed-in `/verify` sends (fixed values of the same lengths), checking nothing. Measured
//! side by side with `../shared/bench/run.sh --ceiling`, the two show how much of the
//! distance to the bare ceiling is the contract itself rather than the decision.
//!
//! `cargo build --release --example floor && taskset -c 1 target/release/examples/floor [ADDR]`
//! (default 127.0.0.1:8089; one worker, as the service has on one CPU).

use std::hint::black_box;

use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

const HEADERS: [(&str, &str); 8] = [
    ("x-clerk-auth-status", "signed-in"),
    ("x-auth-user-id", "user_0000000000000000000000000000"),
    ("x-auth-session-id", "sess_0000000000000000000000000000"),
    ("x-auth-org-id", ""),
    ("x-auth-org-role", ""),
    ("x-auth-org-slug", ""),
    ("x-auth-org-permissions", ""),
    ("x-auth-actor-id", ""),
];

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn floor(req: HttpRequest) -> HttpResponse {
    // As bytes: `to_str` checks each of a token's ~750 bytes in a scalar loop, which alone
    // costs more than the eight headers, and the service checks them vectorised.
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    black_box(token);
    let mut response = HttpResponse::Ok();
    for (name, value) in HEADERS {
        response.insert_header((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    response.finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".into());
    HttpServer::new(|| {
        App::new()
            .route("/ok", web::get().to(ok))
            .route("/floor", web::get().to(floor))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
