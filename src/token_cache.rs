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

/// Entries in each worker's table of recent tokens, in sets of `WAYS`. Direct-mapped (one
/// way), sessions crowded each other out well before the table was full, and a few hundred
/// busy sessions is what an instance of a real deployment sees: with four ways a session is
/// lost only when five share a set. 200 browsers in turn went from 102-106k to 121-123k
/// req/s, 400 from 97-103k to 112-113k. The 768 entries past the first 256 cost 1.7 MiB
/// per worker once full.
const RECENT_ENTRIES: usize = 1024;
const WAYS: usize = 4;
const SETS: usize = RECENT_ENTRIES / WAYS;

struct Recent {
    /// The `VerifiedTokens` the entry belongs to (tests run several in one process).
    owner: u64,
    /// The token's last eight bytes: ways are told apart without touching the tokens.
    tag: u64,
    token: Box<str>,
    /// Verified, or rejected: a repeated forged or expired token is as cheap as a good one.
    known: Known,
    expires_at_ms: i64,
}

/// One set: its ways, most recently used first.
type Set = [Option<Recent>; WAYS];

thread_local! {
    static RECENT: std::cell::RefCell<Vec<Set>> =
        std::cell::RefCell::new((0..SETS).map(|_| Set::default()).collect());
}

/// The set for `token` and its tag, from the last bytes of its signature: they differ
/// between any two tokens, and a collision (even a forced one) only costs a miss, because
/// entries compare tokens whole.
fn place(token: &str) -> (usize, u64) {
    let bytes = token.as_bytes();
    let mut tail = [0u8; 8];
    let n = bytes.len().min(8);
    tail[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    let tag = u64::from_le_bytes(tail);
    // Base64 text uses six bits of each byte: a multiply spreads them over the high bits.
    let mixed = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    (usize::try_from(mixed).unwrap_or(0) % SETS, tag)
}

/// The way of `set` holding `token`, if any.
fn way_of(set: &Set, tag: u64, owner: u64, token: &str) -> Option<usize> {
    set.iter().position(|way| {
        way.as_ref()
            .is_some_and(|r| r.tag == tag && r.owner == owner && &*r.token == token)
    })
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

    /// Keeps `token` first in its set: in place of its own stale entry if it has one, else
    /// of the least recently used.
    fn remember(&self, token: &str, known: Known, expires_at_ms: i64) {
        let (index, tag) = place(token);
        RECENT.with_borrow_mut(|sets| {
            let set = &mut sets[index];
            let way = way_of(set, tag, self.id, token).unwrap_or(WAYS - 1);
            set[way] = Some(Recent {
                owner: self.id,
                tag,
                token: token.into(),
                known,
                expires_at_ms,
            });
            set[..=way].rotate_right(1);
        });
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

impl TokenCache for VerifiedTokens {
    fn lookup(&self, token: &str, now: i64) -> Option<Known> {
        let (index, tag) = place(token);
        let recent = RECENT.with_borrow_mut(|sets| {
            let set = &mut sets[index];
            let way = way_of(set, tag, self.id, token)?;
            let known = set[way]
                .as_ref()
                .filter(|r| r.expires_at_ms > now)
                .map(|r| r.known.clone())?;
            set[..=way].rotate_right(1);
            Some(known)
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
        let (index, _) = place(token);
        RECENT.with_borrow(|sets| sets[index].iter().flatten().any(|r| &*r.token == token))
    }

    /// A cache of its own: entries carry its owner id, so tests never see each other's.
    fn table() -> VerifiedTokens {
        VerifiedTokens::new(100, &Metrics::new().unwrap())
    }

    fn malformed() -> Known {
        Known::Rejected(Arc::new(Rejected::Malformed(TokenError {
            reason: TokenErrorReason::TokenInvalid,
            message: "malformed".into(),
            action: None,
        })))
    }

    /// `count` tokens that fall in one set of the worker's table.
    fn same_set(count: usize) -> Vec<String> {
        let mut by_set = std::collections::HashMap::<usize, Vec<String>>::new();
        for i in 0.. {
            let token = format!("header.payload.signature{i:08}");
            let tokens = by_set.entry(place(&token).0).or_default();
            tokens.push(token);
            if tokens.len() == count {
                return tokens.clone();
            }
        }
        unreachable!("the loop returns")
    }

    /// How many of this thread's entries hold `token`.
    fn copies(token: &str) -> usize {
        RECENT.with_borrow(|sets| {
            sets.iter()
                .flatten()
                .flatten()
                .filter(|r| &*r.token == token)
                .count()
        })
    }

    #[test]
    fn a_set_keeps_its_most_recently_used_tokens() {
        let tokens = table();
        let until = now_ms() + 60_000;
        let crowd = same_set(WAYS + 1);
        for token in &crowd[..WAYS] {
            tokens.remember(token, malformed(), until);
        }
        assert!(crowd[..WAYS].iter().all(|token| at_hand(token)));
        // A hit makes the oldest the newest, so the next newcomer evicts the second oldest.
        assert!(tokens.lookup(&crowd[0], now_ms()).is_some());
        tokens.remember(&crowd[WAYS], malformed(), until);
        assert!(at_hand(&crowd[0]), "used last, yet evicted");
        assert!(!at_hand(&crowd[1]), "the least recently used was kept");
        assert!(crowd[2..].iter().all(|token| at_hand(token)));
    }

    #[test]
    fn a_token_remembered_again_takes_its_own_place() {
        let tokens = table();
        let until = now_ms() + 60_000;
        let crowd = same_set(WAYS);
        for token in &crowd {
            tokens.remember(token, malformed(), until);
        }
        // Used, so it is no longer the entry a newcomer would replace.
        assert!(tokens.lookup(&crowd[0], now_ms()).is_some());
        tokens.remember(&crowd[0], malformed(), until + 1);
        assert_eq!(copies(&crowd[0]), 1);
        assert!(
            crowd.iter().all(|token| at_hand(token)),
            "a second copy pushed another token out"
        );
    }

    #[test]
    fn an_entry_past_its_deadline_is_a_miss() {
        let tokens = table();
        let now = now_ms();
        tokens.remember("header.payload.signature", malformed(), now);
        assert!(tokens.lookup("header.payload.signature", now).is_none());
        assert!(tokens.lookup("header.payload.signature", now - 1).is_some());
    }

    #[test]
    fn other_workers_keep_a_remembered_rejection_at_hand() {
        let tokens = table();
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
