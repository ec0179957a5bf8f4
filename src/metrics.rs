//! Prometheus metrics: decisions, their latency, and the state of the key set.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::domain::time::now_ms;

const NAMESPACE: &str = "clerk_forward_auth";

/// Decision latency buckets, from 25 µs: a cached decision takes microseconds, and a
/// regression to milliseconds must be visible.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// All of the service's metric families, registered once at start-up.
pub struct Metrics {
    registry: Registry,
    pub decisions: IntCounterVec,
    pub decision_seconds: HistogramVec,
    pub jwks_fetches: IntCounterVec,
    pub jwks_keys: IntGauge,
    last_refresh_ms: AtomicI64,
    /// Reads the token cache's size at scrape time.
    pub cache_entries: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
    jwks_last_refresh_age: Gauge,
    pub ready: IntGauge,
    pub handshake_resolutions: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub token_cache: IntCounterVec,
    pub token_cache_entries: IntGauge,
    /// Mirrors the log writer's count at scrape time.
    log_lines_dropped: prometheus::IntCounter,
    /// Handles resolved once for the per-request path: a labelled lookup costs a hash and a
    /// lock on every request.
    allowed: prometheus::IntCounter,
    latency: Vec<(&'static str, prometheus::Histogram)>,
}

/// Every `outcome` label value a decision can have.
pub const OUTCOMES: [&str; 9] = [
    "allow",
    "signed-out",
    "handshake",
    "return",
    "sign-in",
    "forbidden",
    "anonymous",
    "unavailable",
    "bad-request",
];

/// How a JWKS fetch ended: a bounded label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    Success,
    HttpError,
    NetworkError,
    Invalid,
    SecretKeyInvalid,
}

impl FetchOutcome {
    pub const ALL: [Self; 5] = [
        Self::Success,
        Self::HttpError,
        Self::NetworkError,
        Self::Invalid,
        Self::SecretKeyInvalid,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::HttpError => "http_error",
            Self::NetworkError => "network_error",
            Self::Invalid => "invalid",
            Self::SecretKeyInvalid => "secret_key_invalid",
        }
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let decisions = IntCounterVec::new(
            opts("decisions_total", "Decisions by outcome and Clerk reason."),
            &["outcome", "reason"],
        )?;
        let decision_seconds = HistogramVec::new(
            HistogramOpts::new(
                "decision_duration_seconds",
                "Time to decide one /verify request, by outcome.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )?;
        let jwks_fetches = IntCounterVec::new(
            opts("jwks_fetches_total", "JWKS fetches by outcome."),
            &["outcome"],
        )?;
        let jwks_keys = IntGauge::with_opts(opts("jwks_keys", "Verification keys loaded."))?;
        let jwks_last_refresh_age = Gauge::with_opts(opts(
            "jwks_seconds_since_last_refresh",
            "Seconds since keys were last loaded successfully (NaN before the first load).",
        ))?;
        let ready = IntGauge::with_opts(opts(
            "ready",
            "1 when keys are usable and /readyz answers 200.",
        ))?;
        let handshake_resolutions = IntCounterVec::new(
            opts(
                "handshake_resolutions_total",
                "Browsers back from Clerk's handshake, by outcome (signed_in, no_session, failed, loop).",
            ),
            &["outcome"],
        )?;
        let refreshes = IntCounterVec::new(
            opts(
                "session_refreshes_total",
                "Server-side session refreshes, by outcome.",
            ),
            &["outcome"],
        )?;
        let config_reloads = IntCounterVec::new(
            opts(
                "config_reloads_total",
                "Configuration reloads, by outcome (success, failure).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        let token_cache = IntCounterVec::new(
            opts(
                "token_cache_lookups_total",
                "Verified-token cache lookups, by result (hit, miss).",
            ),
            &["result"],
        )?;
        let token_cache_entries =
            IntGauge::with_opts(opts("token_cache_entries", "Verified tokens remembered."))?;
        let log_lines_dropped = prometheus::IntCounter::with_opts(opts(
            "log_lines_dropped_total",
            "Log lines dropped because whatever reads the service's output fell behind.",
        ))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        registry.register(Box::new(token_cache.clone()))?;
        registry.register(Box::new(token_cache_entries.clone()))?;
        registry.register(Box::new(handshake_resolutions.clone()))?;
        registry.register(Box::new(refreshes.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(decision_seconds.clone()))?;
        registry.register(Box::new(jwks_fetches.clone()))?;
        registry.register(Box::new(jwks_keys.clone()))?;
        registry.register(Box::new(jwks_last_refresh_age.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        jwks_last_refresh_age.set(f64::NAN);
        // Every known label value starts at 0, so that `increase()` and `rate()` see the first
        // event of each kind instead of a series that appears already at 1.
        for (family, values) in [
            (&config_reloads, &["success", "failure"][..]),
            (&refreshes, &["refreshed", "failed"]),
            (
                &handshake_resolutions,
                &["signed_in", "no_session", "failed", "loop"],
            ),
            (&token_cache, &["hit", "miss"]),
        ] {
            for value in values {
                family.with_label_values(&[value]);
            }
        }

        let allowed = decisions.with_label_values(&["allow", "none"]);
        let latency = OUTCOMES
            .iter()
            .map(|o| (*o, decision_seconds.with_label_values(&[o])))
            .collect();
        Ok(Self {
            registry,
            decisions,
            decision_seconds,
            jwks_fetches,
            jwks_keys,
            last_refresh_ms: AtomicI64::new(0),
            cache_entries: std::sync::OnceLock::new(),
            jwks_last_refresh_age,
            ready,
            handshake_resolutions,
            refreshes,
            config_reloads,
            allowed,
            latency,
            token_cache,
            token_cache_entries,
            log_lines_dropped,
        })
    }

    /// Counts one decision and its latency.
    pub fn decided(&self, outcome: &'static str, reason: &'static str, seconds: f64) {
        if outcome == "allow" && reason == "none" {
            self.allowed.inc();
        } else {
            self.decisions.with_label_values(&[outcome, reason]).inc();
        }
        match self.latency.iter().find(|(o, _)| *o == outcome) {
            Some((_, histogram)) => histogram.observe(seconds),
            None => self
                .decision_seconds
                .with_label_values(&[outcome])
                .observe(seconds),
        }
    }

    /// A JWKS source exists: its fetch outcomes start at 0. A PEM key has none, which is how
    /// the alerts tell the two apart.
    pub fn jwks_source_started(&self) {
        for outcome in FetchOutcome::ALL {
            self.jwks_fetches.with_label_values(&[outcome.as_str()]);
        }
    }

    pub fn jwks_fetched(&self, outcome: FetchOutcome, keys: Option<usize>) {
        self.jwks_fetches
            .with_label_values(&[outcome.as_str()])
            .inc();
        if let Some(keys) = keys {
            self.jwks_keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
            self.last_refresh_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Keys loaded once at start-up and never refreshed (a PEM key).
    pub fn static_keys_loaded(&self) {
        self.jwks_keys.set(1);
        self.last_refresh_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The text exposition, with the key age brought up to date first.
    pub fn render(&self) -> String {
        if let Some(count) = self.cache_entries.get() {
            self.token_cache_entries
                .set(i64::try_from(count()).unwrap_or(i64::MAX));
        }
        let dropped = crate::telemetry::dropped_lines();
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        let last = self.last_refresh_ms.load(Ordering::Relaxed);
        if last > 0 {
            #[allow(clippy::cast_precision_loss)]
            self.jwks_last_refresh_age
                .set((now_ms() - last).max(0) as f64 / 1000.0);
        }
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
