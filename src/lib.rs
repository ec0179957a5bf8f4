//! clerk-forward-auth: Clerk's request authentication as an external-auth service for
//! nginx, Traefik, Envoy, Caddy and HAProxy.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod domain;
pub mod config;
pub mod mint;
