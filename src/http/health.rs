//! Liveness, readiness and the Prometheus scrape endpoint.

use actix_web::{HttpResponse, web};

use super::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: keys are usable, so `/verify` can decide.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("shutting down\n");
    }
    if state.live.load().service.keys.is_ready() {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("keys not loaded\n")
    }
}

/// The scrape. Readiness is worked out now, as `/readyz` would answer: the gauge must go to 0
/// when keys go stale even where no probe asks `/readyz`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let shutting_down = state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed);
    let ready = state.live.load().service.keys.is_ready() && !shutting_down;
    state.metrics.ready.set(i64::from(ready));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
