//! The JWKS key source: a moka-cached key set, filled at start-up, refreshed in the
//! background, and refetched on an unknown `kid` at most once per interval, one fetch at a
//! time.

pub mod fetch;

use std::sync::{Arc, Weak};
use std::time::Duration;

use moka::future::Cache as AsyncCache;
use moka::sync::Cache;

use crate::config::JwksSettings;
use crate::domain::jwt::{CONTACT_SUPPORT, TokenError, TokenErrorReason};
use crate::domain::keys::{KeySet, KeySource, VerifyingKey, kid_mismatch};
use crate::metrics::{FetchOutcome, Metrics};
use fetch::{FetchError, Fetcher};

/// One key set per instance; `()` is its only key.
type Slot = ();

pub struct JwksSource {
    fetcher: Fetcher,
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
        Self {
            fetcher,
            keys: Cache::builder().max_capacity(1).build(),
            refetch: AsyncCache::builder()
                .max_capacity(1)
                .time_to_live(settings.min_refetch.max(Duration::from_millis(1)))
                .build(),
            refresh: settings.refresh,
            metrics,
        }
    }

    /// Whether keys are loaded (readiness).
    pub fn is_ready(&self) -> bool {
        self.keys.get(&()).is_some()
    }

    /// Fetches now and installs the result; a failure leaves the current keys in place.
    pub async fn load(&self) -> Result<(), FetchError> {
        match self.fetcher.fetch().await {
            Ok(set) => {
                let count = set.len();
                self.keys.insert((), Arc::new(set));
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

    /// Keeps the key set fresh: the first load retries with backoff until it succeeds, then
    /// a reload every `refresh`. Ends when the source is dropped (a reload replaced it).
    pub async fn run_refresh(source: Weak<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let Some(this) = source.upgrade() else { return };
            if this.load().await.is_ok() || this.is_ready() {
                break;
            }
            drop(this);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        loop {
            let Some(refresh) = source.upgrade().map(|s| s.refresh) else {
                return;
            };
            tokio::time::sleep(refresh).await;
            let Some(this) = source.upgrade() else { return };
            let _ = this.load().await;
        }
    }

    fn lookup(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, Option<Arc<KeySet>>> {
        let set = self.keys.get(&());
        match (&set, kid) {
            (Some(keys), Some(kid)) => keys.get(kid).cloned().ok_or(set),
            _ => Err(set),
        }
    }
}

impl KeySource for JwksSource {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, TokenError> {
        if let Ok(key) = self.lookup(kid) {
            return Ok(key);
        }
        // Unknown kid (a rotation, or garbage): refetch, shared and rate-limited.
        let outcome = self
            .refetch
            .get_with((), async { Arc::new(self.load().await) })
            .await;
        match self.lookup(kid) {
            Ok(key) => Ok(key),
            Err(Some(keys)) => Err(kid_mismatch(kid, &keys.kids())),
            Err(None) => Err(match outcome.as_ref() {
                Err(fetch) => fetch.error.clone(),
                Ok(()) => TokenError {
                    reason: TokenErrorReason::RemoteJwkFailedToLoad,
                    message: "No JWKS has been loaded yet.".into(),
                    action: Some(CONTACT_SUPPORT),
                },
            }),
        }
    }
}
