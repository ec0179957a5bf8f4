//! Prometheus metrics: decisions, their latency, and the state of the key set.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Histogram, Metric, MetricFamily};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
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
    /// Decisions, their latency and token cache lookups: written on every request.
    pub hot: Arc<HotFamilies>,
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
    pub token_cache_entries: IntGauge,
    /// Mirrors the log writer's count at scrape time.
    log_lines_dropped: prometheus::IntCounter,
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
        let token_cache_entries =
            IntGauge::with_opts(opts("token_cache_entries", "Verified tokens remembered."))?;
        let log_lines_dropped = prometheus::IntCounter::with_opts(opts(
            "log_lines_dropped_total",
            "Log lines dropped because whatever reads the service's output fell behind.",
        ))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        registry.register(Box::new(token_cache_entries.clone()))?;
        registry.register(Box::new(handshake_resolutions.clone()))?;
        registry.register(Box::new(refreshes.clone()))?;
        let hot = Arc::new(HotFamilies::new()?);
        registry.register(Box::new(Summed(Arc::clone(&hot))))?;
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
        ] {
            for value in values {
                family.with_label_values(&[value]);
            }
        }

        Ok(Self {
            registry,
            hot,
            jwks_fetches,
            jwks_keys,
            last_refresh_ms: AtomicI64::new(0),
            cache_entries: std::sync::OnceLock::new(),
            jwks_last_refresh_age,
            ready,
            handshake_resolutions,
            refreshes,
            config_reloads,
            token_cache_entries,
            log_lines_dropped,
        })
    }

    /// Counts one decision and its latency.
    pub fn decided(&self, outcome: &'static str, reason: &'static str, seconds: f64) {
        self.hot
            .with(|hot| hot.decided(outcome, reason, Some(seconds)));
    }

    /// Counts a request refused before any decision, so without a latency.
    pub fn refused(&self, outcome: &'static str, reason: &'static str) {
        self.hot.with(|hot| hot.decided(outcome, reason, None));
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

/// The families every request writes, one copy per thread that writes them, summed when
/// scraped. One shared copy costs each request about five atomic writes to cache lines that
/// every busy core then passes back and forth: on two cores, two threads counting decisions
/// took 253 ns per decision each, against 23 ns for one thread alone, and 26 ns with a copy
/// each (`benches/decide.rs`, "metrics").
pub struct HotFamilies {
    id: u64,
    /// The copy used before a thread has its own, and for the descriptors.
    shared: Hot,
    threads: Mutex<Vec<Hot>>,
}

thread_local! {
    /// This thread's copy of each `HotFamilies` it wrote to: one in the service, one per
    /// instance in tests.
    static MINE: RefCell<Vec<(u64, Hot)>> = const { RefCell::new(Vec::new()) };
}

/// One copy of the hot families, with the handles the common cases use resolved once: a
/// labelled lookup hashes the labels and takes a lock.
#[derive(Clone)]
struct Hot {
    decisions: IntCounterVec,
    latency: HistogramVec,
    lookups: IntCounterVec,
    allowed: IntCounter,
    by_outcome: Vec<prometheus::Histogram>,
    hits: IntCounter,
    misses: IntCounter,
}

impl Hot {
    fn new() -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let decisions = IntCounterVec::new(
            opts("decisions_total", "Decisions by outcome and Clerk reason."),
            &["outcome", "reason"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "decision_duration_seconds",
                "Time to decide one /verify request, by outcome.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )?;
        let lookups = IntCounterVec::new(
            opts(
                "token_cache_lookups_total",
                "Verified-token cache lookups, by result (hit, miss).",
            ),
            &["result"],
        )?;
        Ok(Self {
            allowed: decisions.with_label_values(&["allow", "none"]),
            by_outcome: OUTCOMES
                .iter()
                .map(|o| latency.with_label_values(&[o]))
                .collect(),
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
            decisions,
            latency,
            lookups,
        })
    }

    fn decided(&self, outcome: &'static str, reason: &'static str, seconds: Option<f64>) {
        if outcome == "allow" && reason == "none" {
            self.allowed.inc();
        } else {
            self.decisions.with_label_values(&[outcome, reason]).inc();
        }
        let Some(seconds) = seconds else { return };
        match OUTCOMES
            .iter()
            .zip(&self.by_outcome)
            .find(|(o, _)| **o == outcome)
        {
            Some((_, histogram)) => histogram.observe(seconds),
            None => self.latency.with_label_values(&[outcome]).observe(seconds),
        }
    }
}

impl HotFamilies {
    fn new() -> Result<Self, prometheus::Error> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Ok(Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            shared: Hot::new()?,
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on this thread's copy, made on first use.
    fn with<R>(&self, f: impl FnOnce(&Hot) -> R) -> R {
        MINE.with_borrow_mut(|mine| {
            if let Some((_, hot)) = mine.iter().find(|(id, _)| *id == self.id) {
                return f(hot);
            }
            // Creating a copy cannot fail where creating the shared one did not; if it
            // did, the shared copy still counts.
            let Ok(hot) = Hot::new() else {
                return f(&self.shared);
            };
            self.threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(hot.clone());
            let result = f(&hot);
            mine.push((self.id, hot));
            result
        })
    }

    /// Counts one token cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        self.with(|hot| {
            if hit {
                hot.hits.inc()
            } else {
                hot.misses.inc()
            }
        });
    }
}

/// What the registry scrapes: every copy of the hot families, added up.
struct Summed(Arc<HotFamilies>);

impl Collector for Summed {
    fn desc(&self) -> Vec<&Desc> {
        let hot = &self.0.shared;
        [hot.decisions.desc(), hot.latency.desc(), hot.lookups.desc()].concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let threads = self
            .0
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let copies: Vec<&Hot> = std::iter::once(&self.0.shared)
            .chain(threads.iter())
            .collect();
        let mut families = Vec::new();
        for family in [
            |h: &Hot| h.decisions.collect(),
            |h: &Hot| h.latency.collect(),
            |h: &Hot| h.lookups.collect(),
        ] {
            families.extend(sum(copies.iter().flat_map(|hot| family(hot))));
        }
        families
    }
}

/// One family from several copies of it: series with the same labels are added up.
fn sum(copies: impl Iterator<Item = MetricFamily>) -> Option<MetricFamily> {
    let mut total: Option<MetricFamily> = None;
    let mut by_labels: HashMap<Vec<String>, usize> = HashMap::new();
    for mut copy in copies {
        let metrics = copy.take_metric();
        // The first copy, emptied, holds the family's name, help and type.
        let total = total.get_or_insert(copy);
        for metric in metrics {
            let labels = metric
                .get_label()
                .iter()
                .map(|l| l.value().to_owned())
                .collect();
            match by_labels.get(&labels) {
                Some(&at) => add(&mut total.mut_metric()[at], &metric),
                None => {
                    by_labels.insert(labels, total.get_metric().len());
                    total.mut_metric().push(metric);
                }
            }
        }
    }
    total
}

/// Adds one series' counter and histogram to another's; the unused one is zero in both.
fn add(into: &mut Metric, from: &Metric) {
    let mut counter = Counter::default();
    counter.set_value(into.get_counter().get_value() + from.get_counter().get_value());
    into.set_counter(counter);
    let (a, b) = (into.get_histogram(), from.get_histogram());
    let mut histogram = Histogram::default();
    histogram.set_sample_count(a.get_sample_count() + b.get_sample_count());
    histogram.set_sample_sum(a.get_sample_sum() + b.get_sample_sum());
    histogram.set_bucket(
        a.get_bucket()
            .iter()
            .zip(b.get_bucket())
            .map(|(x, y)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(x.upper_bound());
                bucket.set_cumulative_count(x.cumulative_count() + y.cumulative_count());
                bucket
            })
            .collect(),
    );
    into.set_histogram(histogram);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the first exposition line starting with `series`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn every_threads_counts_are_added_up() {
        let metrics = Metrics::new().unwrap();
        // Two threads as well as this one, so that three copies are summed.
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    metrics.decided("allow", "none", 0.000_01);
                }
                metrics.hot.cache_lookup(true);
            });
            s.spawn(|| {
                metrics.decided("allow", "none", 0.003);
                metrics.decided("signed-out", "token-expired", 0.000_01);
                metrics.hot.cache_lookup(true);
                metrics.hot.cache_lookup(false);
            });
        });
        metrics.decided("allow", "none", 0.5);
        metrics.refused("bad-request", "invalid-auth-url");
        let text = metrics.render();
        let get = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
        let ns = "clerk_forward_auth_";
        assert_eq!(
            get(&format!(
                r#"{ns}decisions_total{{outcome="allow",reason="none"}}"#
            )),
            5.0
        );
        assert_eq!(
            get(&format!(
                r#"{ns}decisions_total{{outcome="signed-out",reason="token-expired"}}"#
            )),
            1.0
        );
        assert_eq!(
            get(&format!(
                r#"{ns}decisions_total{{outcome="bad-request",reason="invalid-auth-url"}}"#
            )),
            1.0
        );
        let allow = |what: &str| get(&format!(r#"{ns}decision_duration_seconds_{what}"#));
        assert_eq!(allow(r#"count{outcome="allow"}"#), 5.0);
        assert!((allow(r#"sum{outcome="allow"}"#) - 0.50303).abs() < 1e-9);
        assert_eq!(allow(r#"bucket{outcome="allow",le="0.000025"}"#), 3.0);
        assert_eq!(allow(r#"bucket{outcome="allow",le="0.005"}"#), 4.0);
        assert_eq!(allow(r#"bucket{outcome="allow",le="+Inf"}"#), 5.0);
        assert_eq!(
            get(&format!(r#"{ns}token_cache_lookups_total{{result="hit"}}"#)),
            2.0
        );
        assert_eq!(
            get(&format!(
                r#"{ns}token_cache_lookups_total{{result="miss"}}"#
            )),
            1.0
        );
        // One series per label set, however many copies held it.
        let allowed_lines = text
            .lines()
            .filter(|l| l.starts_with(&format!(r#"{ns}decisions_total{{outcome="allow""#)))
            .count();
        assert_eq!(allowed_lines, 1, "{text}");
    }
}
