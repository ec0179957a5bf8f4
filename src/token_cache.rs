//! The verified-token cache: a bounded moka cache keyed by the SHA-256 of the token, each
//! entry dropped at its token's `exp` plus the clock skew.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use prometheus::IntCounter;

use crate::domain::time::now_ms;
use crate::domain::verified::{TokenCache, Verified};
use crate::metrics::Metrics;

/// A cryptographic digest, so no token can be crafted to collide with a verified one.
type Digest = [u8; 32];

#[derive(Clone)]
struct Entry {
    verified: Arc<Verified>,
    expires_at_ms: i64,
}

/// Each entry lives until its own deadline.
struct UntilExpiry;

impl Expiry<Digest, Entry> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        entry: &Entry,
        _created: Instant,
    ) -> Option<Duration> {
        let left = entry.expires_at_ms.saturating_sub(now_ms()).max(0);
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

pub struct VerifiedTokens {
    cache: Cache<Digest, Entry>,
    hits: IntCounter,
    misses: IntCounter,
}

impl VerifiedTokens {
    pub fn new(max_entries: u64, metrics: &Metrics) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry)
                .build(),
            // Resolved once: a labelled lookup on every request would cost more than the hit.
            hits: metrics.token_cache.with_label_values(&["hit"]),
            misses: metrics.token_cache.with_label_values(&["miss"]),
        }
    }

    fn digest(token: &str) -> Digest {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

impl TokenCache for VerifiedTokens {
    fn get(&self, token: &str) -> Option<Arc<Verified>> {
        // moka expires lazily; the deadline itself is authoritative.
        let found = self
            .cache
            .get(&Self::digest(token))
            .filter(|entry| entry.expires_at_ms > now_ms())
            .map(|entry| entry.verified);
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    fn insert(&self, token: &str, verified: Arc<Verified>, expires_at_ms: i64) {
        self.cache.insert(
            Self::digest(token),
            Entry {
                verified,
                expires_at_ms,
            },
        );
    }
}
