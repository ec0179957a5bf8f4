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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
