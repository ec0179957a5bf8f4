//! The JWKS key source: a moka-cached key set, filled at start-up, refreshed in the
//! background, and refetched on an unknown `kid` at most once per interval, one fetch at a
//! time.

pub mod fetch;

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use moka::future::Cache as AsyncCache;
use moka::sync::Cache;

use crate::config::JwksSettings;
use crate::domain::jwt::{CONTACT_SUPPORT, TokenError, TokenErrorReason};
use crate::domain::keys::{KeySet, KeySource, VerifyingKey, kid_mismatch};
use crate::domain::time::now_ms;
use crate::metrics::{FetchOutcome, Metrics};
use fetch::{FetchError, Fetcher};

/// One key set per instance; `()` is its only key.
type Slot = ();

thread_local! {
    /// The key set this worker last read, as (source id, generation, keys): checking that a
    /// cached token's key is still current happens on every request, and reading the shared
    /// cache for it would write to state all workers share (moka records each read).
    static SEEN: RefCell<Option<(u64, u64, Arc<KeySet>)>> = const { RefCell::new(None) };
}

pub struct JwksSource {
    /// Tells this source's key sets apart in each worker's `SEEN` (a reload makes a new
    /// source; tests run several at once).
    id: u64,
    /// Counts key sets installed, so a worker knows its copy in `SEEN` is still current.
    generation: AtomicU64,
    fetcher: Fetcher,
    /// When keys were last loaded (ms since the epoch; 0 before the first load).
    loaded_at_ms: AtomicI64,
    /// How long the last good key set may serve while Clerk is unreachable.
    max_stale: Duration,
    /// The current key set. No TTL: a refresh replaces it, a failed refresh keeps it.
    keys: Cache<Slot, Arc<KeySet>>,
    /// Unknown-kid refetches. An entry lives for `min_refetch`, so concurrent callers share
    /// one fetch and later callers within the interval reuse its result.
    refetch: AsyncCache<Slot, Arc<Result<(), FetchError>>>,
    refresh: Duration,
    metrics: Arc<Metrics>,
}

impl JwksSource {
    pub fn new(fetcher: Fetcher, settings: &JwksSettings, metrics: Arc<Metrics>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            fetcher,
            loaded_at_ms: AtomicI64::new(0),
            max_stale: settings.max_stale,
            keys: Cache::builder().max_capacity(1).build(),
            refetch: AsyncCache::builder()
                .max_capacity(1)
                .time_to_live(settings.min_refetch.max(Duration::from_millis(1)))
                .build(),
            // Refresh at least twice per staleness window, so keys never go stale while Clerk
            // is reachable.
            refresh: settings
                .refresh
                .min(settings.max_stale / 2)
                .max(Duration::from_millis(100)),
            metrics,
        }
    }

    /// Whether usable keys are loaded (readiness): loaded, and not staler than allowed.
    pub fn is_ready(&self) -> bool {
        let ready = self.current().is_some();
        self.metrics.ready.set(i64::from(ready));
        ready
    }

    /// The key set, unless it is older than `max_stale`: past that, keys Clerk may have
    /// revoked in the meantime are no longer trusted.
    fn current(&self) -> Option<Arc<KeySet>> {
        if !self.is_fresh() {
            return None;
        }
        self.keys.get(&())
    }

    fn is_fresh(&self) -> bool {
        let loaded = self.loaded_at_ms.load(Ordering::Relaxed);
        let age = now_ms().saturating_sub(loaded);
        let max = i64::try_from(self.max_stale.as_millis()).unwrap_or(i64::MAX);
        loaded != 0 && age <= max
    }

    /// Fetches now and installs the result; a failure leaves the current keys in place.
    pub async fn load(&self) -> Result<(), FetchError> {
        match self.fetcher.fetch().await {
            Ok(mut set) => {
                if let Some(previous) = self.keys.get(&()) {
                    set.keep_unchanged(&previous);
                }
                let count = set.len();
                self.keys.insert((), Arc::new(set));
                // After the insert: a worker that sees the new generation reads the new set.
                self.generation.fetch_add(1, Ordering::Release);
                self.loaded_at_ms.store(now_ms(), Ordering::Relaxed);
                self.metrics
                    .jwks_fetched(FetchOutcome::Success, Some(count));
                self.metrics.ready.set(1);
                tracing::info!(url = %self.fetcher.url(), keys = count, "loaded the JWKS");
                Ok(())
            }
            Err(error) => {
                self.metrics.jwks_fetched(error.outcome, None);
                tracing::warn!(
                    url = %self.fetcher.url(),
                    outcome = error.outcome.as_str(),
                    reason = error.error.reason.as_str(),
                    message = %error.error.message,
                    "JWKS fetch failed"
                );
                Err(error)
            }
        }
    }

    /// Keeps the key set fresh: load now, then every `refresh`; a failed load is retried
    /// with jittered exponential backoff (so many replicas do not retry in step) until it
    /// succeeds. Ends when the source is dropped (a reload replaced it).
    pub async fn run_refresh(source: Weak<Self>) {
        loop {
            let mut backoff = Duration::from_millis(250);
            loop {
                let Some(this) = source.upgrade() else { return };
                if this.load().await.is_ok() {
                    break;
                }
                let cap = this.refresh.min(Duration::from_secs(30));
                drop(this);
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(cap);
            }
            let Some(refresh) = source.upgrade().map(|s| s.refresh) else {
                return;
            };
            tokio::time::sleep(refresh).await;
        }
    }

    fn lookup(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, Option<Arc<KeySet>>> {
        let set = self.current();
        match (&set, kid) {
            (Some(keys), Some(kid)) => keys.get(kid).cloned().ok_or(set),
            _ => Err(set),
        }
    }
}

impl KeySource for JwksSource {
    /// From this worker's copy of the key set, read again only after a load replaced it.
    fn is_current(&self, kid: Option<&str>, key: &Arc<VerifyingKey>) -> bool {
        let Some(kid) = kid.filter(|_| self.is_fresh()) else {
            return false;
        };
        let generation = self.generation.load(Ordering::Acquire);
        SEEN.with_borrow_mut(|seen| {
            if !matches!(seen, Some((id, g, _)) if *id == self.id && *g == generation) {
                *seen = self.keys.get(&()).map(|set| (self.id, generation, set));
            }
            seen.as_ref()
                .and_then(|(_, _, set)| set.get(kid))
                .is_some_and(|current| Arc::ptr_eq(current, key))
        })
    }

    async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        if let Ok(key) = self.lookup(kid) {
            return Ok(key);
        }
        // Unknown kid (a rotation, or garbage): refetch, shared and rate-limited. Boxed:
        // this future is 2.5 KB, and unboxed it made every request's future that much
        // bigger, allocated and copied on each request.
        let outcome = Box::pin(
            self.refetch
                .get_with((), async { Arc::new(self.load().await) }),
        )
        .await;
        match self.lookup(kid) {
            Ok(key) => Ok(key),
            Err(Some(keys)) => Err(kid_mismatch(kid, &keys.kids())),
            Err(None) => Err(match outcome.as_ref() {
                Err(fetch) => fetch.error.clone(),
                Ok(()) => TokenError {
                    reason: TokenErrorReason::RemoteJwkFailedToLoad,
                    message: "No JWKS has been loaded recently enough to be trusted.".into(),
                    action: Some(CONTACT_SUPPORT),
                },
            }),
        }
    }
}

/// A random duration between half and all of `base`.
fn jitter(base: Duration) -> Duration {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut byte);
    base / 2 + base / 2 * u32::from(byte[0]) / 255
}
