//! Micro-benchmarks of the request path: token verification (cache hit and miss), the RSA
//! check itself, rebuilding the original request, and the whole decision (bearer, cookie,
//! with route rules, many sessions past the worker's table), and counting a decision in the
//! metrics from one and two threads.
//!
//! `cargo bench --bench decide`

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use clerk_forward_auth::config::Settings;
use clerk_forward_auth::domain::authenticate::{Authenticator, Quiet, RequestContext};
use clerk_forward_auth::domain::backend::NoBackend;
use clerk_forward_auth::domain::cookies::ClerkCookies;
use clerk_forward_auth::domain::decision::Decision;
use clerk_forward_auth::domain::jwt::{Jwt, verify_signature};
use clerk_forward_auth::domain::keys::{StaticKey, VerifyingKey};
use clerk_forward_auth::domain::request::{
    AuthRequestLine, ForwardedHeaders, HeaderList, OriginalRequest,
};
use clerk_forward_auth::domain::time::now_ms;
use clerk_forward_auth::domain::verified::{Known, NoCache, TokenCache, Verified};
use clerk_forward_auth::metrics::Metrics;
use clerk_forward_auth::mint::{Signer, session_claims};
use clerk_forward_auth::service::{How, Service};
use clerk_forward_auth::token_cache::VerifiedTokens;
use criterion::{Criterion, criterion_group, criterion_main};

const PK: &str = "pk_test_ZXhhbXBsZS5jbGVyay5hY2NvdW50cy5kZXYk"; // example.clerk.accounts.dev
const PEM: &str = include_str!("../tests/fixtures/key1.pub.pem");

/// Polls a future that never waits (a static key resolves at once).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return out;
        }
    }
}

fn signer() -> Signer {
    Signer::from_pkcs8_pem(include_str!("../tests/fixtures/key1.pem"), "ins_test_key1").unwrap()
}

fn token() -> String {
    let now = now_ms() / 1000;
    signer().sign(&session_claims(
        "user_2abcDEF",
        "example.clerk.accounts.dev",
        now,
        3600,
    ))
}

fn settings() -> Settings {
    settings_with("")
}

/// The settings with a configuration file's text.
fn settings_with(toml: &str) -> Settings {
    let env: HashMap<String, String> = [
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_JWT_KEY", PEM),
        ("CLERK_AUTHORIZED_PARTIES", "http://localhost:3000"),
        ("CLERK_FA_FORWARDED_HEADERS", "x-forwarded"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Settings::load_toml(toml, &env).unwrap().0
}

/// The README's example rules: none matches the benchmark's path, so all five are tried.
const RULES: &str = include_str!("../tests/fixtures/example-rules.toml");

/// The headers the load harness sends: Traefik's forwarded set and a browser fetch.
fn headers(token: &str) -> HeaderList {
    let bearer = format!("Bearer {token}");
    HeaderList::new(&[
        ("host", "127.0.0.1:8080"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-uri", "/api/items?page=2"),
        ("x-forwarded-for", "203.0.113.7"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        ),
        ("accept", "*/*"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("authorization", &bearer),
    ])
}

/// A shared tier that remembers every token's signature and nothing else.
struct SignatureOnly(Arc<VerifyingKey>);

impl TokenCache for SignatureOnly {
    fn lookup(&self, _token: &str, _now_ms: i64) -> Option<Known> {
        Some(Known::Signed(self.0.clone()))
    }

    fn insert(&self, _token: &str, _verified: Arc<Verified>, _expires_at_ms: i64) {}
}

fn verification(c: &mut Criterion) {
    let settings = settings();
    let keys = StaticKey(Arc::new(VerifyingKey::from_pem(PEM).unwrap()));
    let metrics = Metrics::new().unwrap();
    let cache = VerifiedTokens::new(1000, &metrics);
    let token = token();
    let list = headers(&token);
    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let run = |tokens: &dyn TokenCache| {
        let ctx = RequestContext::from_headers(&list, ForwardedHeaders::XForwarded, line, "sfx");
        let auth = Authenticator {
            options: &settings.clerk,
            keys: &keys,
            backend: &NoBackend,
            observer: &Quiet,
            tokens,
        };
        ready(auth.authenticate(&ctx, now_ms()))
    };
    let mut group = c.benchmark_group("verification");
    group.bench_function("cache hit", |b| b.iter(|| black_box(run(&cache))));
    group.bench_function("cache miss (RSA every time)", |b| {
        b.iter(|| black_box(run(&NoCache)))
    });
    // What a token past the worker's table costs: the shared tier knows its signature, so
    // it is decoded again but not checked again.
    let signed = SignatureOnly(keys.0.clone());
    group.bench_function("signature remembered (decoded again)", |b| {
        b.iter(|| black_box(run(&signed)))
    });
    let jwt = Jwt::decode(&token).unwrap();
    let key = Arc::new(VerifyingKey::from_pem(PEM).unwrap());
    group.bench_function("RSA-2048 signature alone", |b| {
        b.iter(|| verify_signature(black_box(&jwt), &key))
    });
    group.bench_function("decode alone", |b| {
        b.iter(|| Jwt::decode(black_box(&token)).is_ok())
    });
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    let token = token();
    let list = headers(&token);
    let cookie = HeaderList::new(&[(
        "cookie",
        "__clerk_db_jwt=dvb_2abc; __client_uat=1795694400; __session=eyJhbGciOiJSUzI1NiJ9.e30.c2ln; theme=dark",
    )]);
    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let mut group = c.benchmark_group("rebuild");
    group.bench_function("original request (x-forwarded)", |b| {
        b.iter(|| {
            black_box(OriginalRequest::from_headers(
                ForwardedHeaders::XForwarded,
                &list,
                line,
            ))
        })
    });
    group.bench_function("clerk cookies", |b| {
        b.iter(|| black_box(ClerkCookies::parse(&cookie, "nx2hSE6I")))
    });
    group.finish();
}

fn whole_decision(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let settings = settings();
    let metrics = Arc::new(Metrics::new().unwrap());
    let service = Service::new(&settings, &metrics, None).unwrap();
    // Read before the token is made: a client_uat later than the token's iat signs out.
    let client_uat = now_ms() / 1000;
    let token = token();
    let list = headers(&token);
    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let mut group = c.benchmark_group("decision");
    group.bench_function("signed in, repeated token", |b| {
        b.iter(|| black_box(ready(service.decide(&list, line, How::default())).0))
    });
    let anonymous = HeaderList::new(&[
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/"),
    ]);
    group.bench_function("signed out, no credentials", |b| {
        b.iter(|| black_box(ready(service.decide(&anonymous, line, How::default())).0))
    });
    // A browser's request: the session in a cookie, with the dev browser and client_uat.
    let cookie = format!("__clerk_db_jwt=dvb_bench; __client_uat={client_uat}; __session={token}");
    let mut browser = headers(&token);
    browser.0.retain(|(name, _)| name != "authorization");
    browser.0.push(("cookie".into(), cookie));
    let allowed = |service: &Service, list: &HeaderList| {
        let decision = ready(service.decide(list, line, How::default())).0;
        assert!(matches!(decision, Decision::Allow { .. }), "{decision:?}");
    };
    allowed(&service, &browser);
    group.bench_function("signed in, session cookie", |b| {
        b.iter(|| black_box(ready(service.decide(&browser, line, How::default())).0))
    });
    // Many browsers in turn. 4,096 is four times the worker's table, so nearly every token
    // is past it and found in the shared tier (signature known, decoded again), as on an
    // instance serving thousands of sessions. 400 is what the table is sized for: only
    // those sharing a set with four others are decoded again.
    let signer = signer();
    let now = now_ms() / 1000;
    let sessions: Vec<HeaderList> = (0..4096)
        .map(|i| {
            let claims = session_claims(
                &format!("user_{i:08}"),
                "example.clerk.accounts.dev",
                now,
                3600,
            );
            headers(&signer.sign(&claims))
        })
        .collect();
    sessions.iter().for_each(|list| allowed(&service, list));
    for count in [4096, 400] {
        let mut turn = sessions[..count].iter().cycle();
        group.bench_function(format!("signed in, {count} sessions in turn"), |b| {
            b.iter(|| {
                let list = turn.next().unwrap();
                black_box(ready(service.decide(list, line, How::default())).0)
            })
        });
    }
    let ruled = Service::new(&settings_with(RULES), &metrics, None).unwrap();
    allowed(&ruled, &list);
    group.bench_function("signed in, repeated token, five rules", |b| {
        b.iter(|| black_box(ready(ruled.decide(&list, line, How::default())).0))
    });
    group.finish();
}

/// The RSA check three ways: jsonwebtoken's `crypto::verify` (aws-lc-rs backend), which
/// builds a verifier and decodes the base64 signature on every call; the same with the
/// signature already decoded; and an aws-lc-rs key parsed once.
fn crypto(c: &mut Criterion) {
    use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let token = token();
    let (input, sig_b64) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    let jwk = signer().jwk();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    let parsed: ParsedPublicKey = RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    }
    .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
    .unwrap();
    let mut group = c.benchmark_group("crypto");
    group.bench_function("jsonwebtoken crypto::verify (aws-lc-rs)", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                sig_b64,
                input.as_bytes(),
                &decoding,
                jsonwebtoken::Algorithm::RS256,
            )
            .unwrap()
        })
    });
    group.bench_function("aws-lc-rs key parsed once", |b| {
        b.iter(|| parsed.verify_sig(input.as_bytes(), &sig).is_ok())
    });
    group.bench_function("sha-256 of the token (cache key)", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes()))
        })
    });
    group.finish();
}

/// Time per call when `threads` threads make `iters` calls each at once: what contention on
/// shared cache lines costs shows only with several cores writing.
fn at_once(threads: usize, iters: u64, call: &(impl Fn(u64) + Sync)) -> std::time::Duration {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| (0..iters).for_each(call));
        }
    });
    start.elapsed()
}

fn metrics(c: &mut Criterion) {
    let metrics = Metrics::new().unwrap();
    let ours = |i: u64| metrics.decided("allow", "none", black_box(3e-6 + (i % 7) as f64 * 1e-7));
    // What a decision wrote before the families were copied per thread.
    let allowed = prometheus::IntCounter::new("allowed", "-").unwrap();
    let latency =
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("l", "-")).unwrap();
    let shared = |i: u64| {
        allowed.inc();
        latency.observe(black_box(3e-6 + (i % 7) as f64 * 1e-7));
    };
    // The series exists from the start at 0, so a call that counts nothing would still
    // render; check once that ours counts, whichever benchmarks the filter leaves.
    ours(0);
    let counted = metrics.render().lines().find_map(|l| {
        l.strip_prefix(r#"clerk_forward_auth_decisions_total{outcome="allow",reason="none"} "#)?
            .parse::<f64>()
            .ok()
    });
    assert!(counted.is_some_and(|n| n > 0.0), "{counted:?}");
    let mut group = c.benchmark_group("metrics");
    for threads in [1, 2] {
        group.bench_function(format!("decision counted, {threads} thread(s)"), |b| {
            b.iter_custom(|iters| at_once(threads, iters, &ours))
        });
        group.bench_function(format!("one shared copy, {threads} thread(s)"), |b| {
            b.iter_custom(|iters| at_once(threads, iters, &shared))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    verification,
    rebuild,
    whole_decision,
    crypto,
    metrics
);
criterion_main!(benches);
