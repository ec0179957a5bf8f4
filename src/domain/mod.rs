//! The decision domain: from the original request and the instance's keys to Clerk's request
//! state and our answer. Nothing here knows about HTTP servers, caches, fetches or metrics.

pub mod auth;
pub mod authenticate;
pub mod backend;
pub mod cookies;
pub mod decision;
pub mod has;
pub mod instance;
pub mod jwt;
pub mod keys;
pub mod pattern;
pub mod reason;
pub mod request;
pub mod rules;
pub mod signin;
pub mod time;
pub mod urls;
pub mod verified;

#[cfg(test)]
pub(crate) mod testing;
