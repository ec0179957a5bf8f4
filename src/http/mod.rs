//! The actix-web adapter: routes, the `/verify` handler, health and metrics endpoints.

pub mod health;
pub mod verify;

use std::sync::Arc;

use actix_web::web;
use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::service::Service;
use verify::ResponseHeaders;

/// Shared per-process state handed to every handler.
pub struct AppState {
    /// What a reload replaces; requests load it once, without a lock.
    pub live: ArcSwap<Live>,
    pub metrics: Arc<Metrics>,
    /// Whether `/metrics` is served next to `/verify`.
    pub metrics_here: bool,
    /// Set on SIGTERM: `/readyz` fails so load balancers stop sending, while requests are
    /// still answered.
    pub shutting_down: std::sync::atomic::AtomicBool,
}

/// The reloadable part: rules, Clerk options, keys and header names.
pub struct Live {
    pub service: Service,
    pub headers: ResponseHeaders,
}

/// Every route this service answers. `openapi.yaml` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("/verify", "any"),
    ("/verify/{tail}", "any"),
    ("/answer", "any"),
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
];

/// Registers the routes; used by the server and by the tests alike.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let metrics_here = state.metrics_here;
        cfg.app_data(state)
            .route("/verify", web::route().to(verify::verify))
            .route("/verify/{tail:.*}", web::route().to(verify::verify))
            .route("/answer", web::route().to(verify::answer))
            // As resources, so another method is a 405 with `Allow: GET`, not a 404.
            .service(web::resource("/healthz").get(health::healthz))
            .service(web::resource("/readyz").get(health::readyz));
        if metrics_here {
            cfg.service(web::resource("/metrics").get(health::metrics));
        }
    }
}
