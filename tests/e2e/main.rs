//! End-to-end tests through real proxies: each runs the `deploy/` recipe (templated only for
//! ports) in front of the service and an echo upstream, all on 127.0.0.1.
//!
//! They need the proxies installed (`scripts/install-proxies`), so they are `#[ignore]`d in
//! a plain `cargo test`; `scripts/test` (the whole suite, what CI runs) includes them.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod harness;

mod browser;
mod caddy;
mod envoy;
mod haproxy;
mod nginx;
mod traefik;
