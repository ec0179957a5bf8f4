//! The verified-token cache, in two tiers. A bounded moka cache keyed by the SHA-256 of the
//! token remembers, for many sessions, only which key verified the token's signature: its
//! entries are a few hundred bytes, so 100,000 sessions fit in tens of MiB, and a hit costs a
//! decode instead of the RSA check. In front of it each worker thread keeps its most recent
//! tokens whole, with all that verification established, compared byte for byte, so a
//! browser's repeated token costs neither the hash nor the decode. Every entry is dropped at
//! its token's `exp` plus the clock skew.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::domain::keys::VerifyingKey;
use crate::domain::time::now_ms;
use crate::domain::verified::{Known, Rejected, TokenCache, Verified};
use crate::metrics::{HotFamilies, Metrics};

/// A cryptographic digest, so no token can be crafted to collide with a verified one.
type Digest = [u8; 32];

/// What the shared tier keeps of a token: the key that verified its signature.
#[derive(Clone)]
struct Signed {
    key: Arc<VerifyingKey>,
    expires_at_ms: i64,
}

/// Each entry lives until its own deadline.
struct UntilExpiry;

impl Expiry<Digest, Signed> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        entry: &Signed,
        _created: Instant,
    ) -> Option<Duration> {
        let left = entry.expires_at_ms.saturating_sub(now_ms()).max(0);
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

/// Slots in each worker's table of recent tokens. The table is direct-mapped, so sessions
/// crowd each other out well before it is full: with 200 browsers in turn, 256 slots kept
/// about half of them (88-90k req/s) and 1,024 slots most (99-105k), for 1.7 MiB more
/// once full.
const RECENT_SLOTS: usize = 1024;

struct Recent {
    /// The `VerifiedTokens` the entry belongs to (tests run several in one process).
    owner: u64,
    token: Box<str>,
    /// Verified, or rejected: a repeated forged or expired token is as cheap as a good one.
    known: Known,
    expires_at_ms: i64,
}

thread_local! {
    static RECENT: std::cell::RefCell<Vec<Option<Recent>>> =
        std::cell::RefCell::new((0..RECENT_SLOTS).map(|_| None).collect());
}

/// A slot for `token`, from bytes of its signature: they differ between any two tokens, and
/// a collision (even a forced one) only costs a miss, because slots compare tokens whole.
fn slot(token: &str) -> usize {
    let bytes = token.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let mut n: usize = 0;
    for &b in tail {
        n = n.wrapping_mul(31).wrapping_add(usize::from(b));
    }
    n % RECENT_SLOTS
}

/// Rejections remembered at most: enough for a burst of forged tokens, too few to matter.
const MAX_REJECTIONS: u64 = 10_000;

#[derive(Clone)]
struct RejectedEntry {
    rejected: Arc<Rejected>,
    until_ms: i64,
}

struct UntilRejectionExpiry;

impl Expiry<Digest, RejectedEntry> for UntilRejectionExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        entry: &RejectedEntry,
        _created: Instant,
    ) -> Option<Duration> {
        let left = entry.until_ms.saturating_sub(now_ms()).max(0);
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

pub struct VerifiedTokens {
    id: u64,
    cache: Cache<Digest, Signed>,
    rejections: Cache<Digest, RejectedEntry>,
    counts: Arc<HotFamilies>,
}

impl VerifiedTokens {
    pub fn new(max_entries: u64, metrics: &Metrics) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            rejections: Cache::builder()
                .max_capacity(MAX_REJECTIONS.min(max_entries.max(1)))
                .expire_after(UntilRejectionExpiry)
                .build(),
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry)
                .build(),
            counts: Arc::clone(&metrics.hot),
        }
    }

    fn digest(token: &str) -> Digest {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    fn remember(&self, token: &str, known: Known, expires_at_ms: i64) {
        RECENT.with_borrow_mut(|slots| {
            slots[slot(token)] = Some(Recent {
                owner: self.id,
                token: token.into(),
                known,
                expires_at_ms,
            });
        });
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

impl TokenCache for VerifiedTokens {
    fn lookup(&self, token: &str, now: i64) -> Option<Known> {
        let recent = RECENT.with_borrow(|slots| {
            slots[slot(token)]
                .as_ref()
                .filter(|r| r.owner == self.id && r.expires_at_ms > now && &*r.token == token)
                .map(|r| r.known.clone())
        });
        match recent {
            Some(known @ Known::Verified(_)) => {
                self.counts.cache_lookup(true);
                return Some(known);
            }
            Some(known) => {
                self.counts.cache_lookup(false);
                return Some(known);
            }
            None => {}
        }
        // moka expires lazily; the deadline itself is authoritative.
        let digest = Self::digest(token);
        if let Some(signed) = self.cache.get(&digest).filter(|s| s.expires_at_ms > now) {
            self.counts.cache_lookup(true);
            return Some(Known::Signed(signed.key));
        }
        self.counts.cache_lookup(false);
        let entry = self
            .rejections
            .get(&digest)
            .filter(|entry| entry.until_ms > now)?;
        // Kept at hand in this worker too: otherwise every worker but the one that first
        // refused the token would hash it and search the shared tier on each repeat.
        let known = Known::Rejected(entry.rejected);
        self.remember(token, known.clone(), entry.until_ms);
        Some(known)
    }

    fn insert(&self, token: &str, verified: Arc<Verified>, expires_at_ms: i64) {
        let signed = Signed {
            key: verified.key.clone(),
            expires_at_ms,
        };
        self.remember(token, Known::Verified(verified), expires_at_ms);
        self.cache.insert(Self::digest(token), signed);
    }

    fn recent(&self, token: &str, verified: Arc<Verified>, expires_at_ms: i64) {
        self.remember(token, Known::Verified(verified), expires_at_ms);
    }

    fn reject(&self, token: &str, rejected: Arc<Rejected>, until_ms: i64) {
        self.remember(token, Known::Rejected(rejected.clone()), until_ms);
        self.rejections
            .insert(Self::digest(token), RejectedEntry { rejected, until_ms });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::jwt::{TokenError, TokenErrorReason};

    /// Whether this thread's table of recent tokens holds `token`.
    fn at_hand(token: &str) -> bool {
        RECENT.with_borrow(|slots| {
            slots[slot(token)]
                .as_ref()
                .is_some_and(|r| &*r.token == token)
        })
    }

    #[test]
    fn other_workers_keep_a_remembered_rejection_at_hand() {
        let metrics = Metrics::new().unwrap();
        let tokens = VerifiedTokens::new(100, &metrics);
        let token = "forged.token.signature";
        let error = TokenError {
            reason: TokenErrorReason::TokenInvalid,
            message: "forged".into(),
            action: None,
        };
        let until = now_ms() + 60_000;
        std::thread::scope(|scope| {
            scope.spawn(|| tokens.reject(token, Arc::new(Rejected::Malformed(error)), until));
        });
        assert!(!at_hand(token));
        let first = tokens.lookup(token, now_ms());
        assert!(matches!(first, Some(Known::Rejected(_))));
        assert!(
            at_hand(token),
            "found in the shared tier but not kept for the next repeat"
        );
    }
}
