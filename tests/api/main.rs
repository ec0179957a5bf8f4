//! Black-box tests: the real app on port 0, against real local HTTP servers standing in for
//! Clerk. One binary, one module per concern.

mod helpers;

mod authz;
mod browser;
mod cache;
mod cli;
mod hardening;
mod jwks;
mod logs;
mod metrics;
mod monitoring;
mod openapi;
mod properties;
mod reload;
mod shapes;
mod verify;
