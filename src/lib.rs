//! clerk-forward-auth: Clerk's request authentication as an external-auth service for
//! nginx, Traefik, Envoy, Caddy and HAProxy.
// Denied, not forbidden: the one exception is the vector RSA check (domain/keys/avx512.rs).
#![deny(unsafe_code)]
// Threshold in clippy.toml: every request allocates its handler's future.
#![warn(clippy::large_futures)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clerk_api;
pub mod clerk_http;
pub mod cli;
pub mod config;
pub mod dev;
pub mod domain;
pub mod explain;
pub mod fuzz_logic;
pub mod http;
pub mod json;
pub mod jwks;
pub mod metrics;
pub mod mint;
pub mod reload;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod token_cache;
