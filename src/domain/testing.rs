//! Fixtures for the domain's unit tests: the test keys and a fixed clock.

use std::sync::Arc;

use serde_json::Value;

use super::authenticate::{ClerkOptions, OrgSync};
use super::instance::PublishableKey;
use super::jwt::{TokenError, VerifyOptions};
use super::keys::{KeySet, KeySource, StaticKey, VerifyingKey, kid_mismatch};
use crate::mint::Signer;

/// 2026-11-26T12:00:00Z: tests never read the real clock.
pub const NOW_S: i64 = 1_795_694_400;
pub const NOW_MS: i64 = NOW_S * 1000;

pub fn signer() -> Signer {
    Signer::from_pkcs8_pem(
        include_str!("../../tests/fixtures/key1.pem"),
        "ins_test_key1",
    )
    .unwrap()
}

pub fn other_signer() -> Signer {
    Signer::from_pkcs8_pem(
        include_str!("../../tests/fixtures/key2.pem"),
        "ins_test_key2",
    )
    .unwrap()
}

pub fn pem_key() -> StaticKey {
    StaticKey(Arc::new(
        VerifyingKey::from_pem(include_str!("../../tests/fixtures/key1.pub.pem")).unwrap(),
    ))
}

/// A JWKS-backed source with no refetch: an unknown kid is a mismatch.
pub struct JwksKeys(pub KeySet);

impl JwksKeys {
    pub fn of(signers: &[&Signer]) -> Self {
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        let body = serde_json::json!({ "keys": keys }).to_string();
        Self(KeySet::from_jwks(body.as_bytes()).unwrap().0)
    }
}

impl KeySource for JwksKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        kid.and_then(|kid| self.0.get(kid))
            .cloned()
            .ok_or_else(|| kid_mismatch(kid, &self.0.kids()))
    }

    fn is_current(&self, kid: Option<&str>, key: &Arc<VerifyingKey>) -> bool {
        kid.and_then(|kid| self.0.get(kid))
            .is_some_and(|current| Arc::ptr_eq(current, key))
    }
}

/// Runs a future that never waits (our test key sources never do).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// Options for the instance of publishable key `pk`, with Clerk's defaults.
pub fn options(pk: &str) -> ClerkOptions {
    ClerkOptions {
        publishable_key: PublishableKey::parse(pk).unwrap(),
        verify: VerifyOptions {
            authorized_parties: vec![],
            audience: vec![],
            clock_skew_ms: 5000,
        },
        proxy_url: None,
        domain: None,
        is_satellite: false,
        sign_in_url: None,
        org_sync: OrgSync::default(),
        max_token_bytes: 16_384,
    }
}
