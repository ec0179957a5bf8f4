//! Table tests for the rest of the cookie path (spec §2.3 steps 1–3, 14, 15), handshake
//! resolution (§2.8), refresh (§2.5) and the sign-in redirect (§7).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::*;
use crate::domain::decision::{Decision, RedirectKind};
use crate::domain::request::tests::TestHeaders;
use crate::domain::request::{AuthRequestLine, ForwardedHeaders};
use crate::domain::testing::{NOW_MS, NOW_S, block_on, options, other_signer, pem_key, signer};
use crate::domain::verified::NoCache;
use crate::mint::session_claims;

const PROD_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
const DEV_PK: &str = "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk"; // foo-bar-13.clerk.accounts.dev
const PAGE: (&str, &str) = ("sec-fetch-dest", "document");
const API: (&str, &str) = ("sec-fetch-dest", "empty");

/// A Backend API double: nonces map to directives; refresh answers one fixed result.
#[derive(Default)]
struct FakeBackend {
    payloads: HashMap<String, Vec<String>>,
    refresh: Option<Result<Vec<String>, RefreshError>>,
    refresh_calls: Mutex<Vec<(String, RefreshRequest)>>,
}

impl ClerkBackend for FakeBackend {
    async fn handshake_payload(
        &self,
        nonce: &str,
    ) -> Result<Vec<String>, crate::domain::backend::BackendError> {
        self.payloads
            .get(nonce)
            .cloned()
            .ok_or(crate::domain::backend::BackendError::Status {
                status: 400,
                code: Some("handshake_nonce_invalid".into()),
            })
    }

    async fn refresh_session(
        &self,
        sid: &str,
        request: &RefreshRequest,
    ) -> Result<Vec<String>, RefreshError> {
        self.refresh_calls
            .lock()
            .unwrap()
            .push((sid.to_owned(), request.clone()));
        self.refresh
            .clone()
            .unwrap_or(Err(RefreshError::MissingApiClient))
    }
}

struct Run<'a> {
    options: &'a ClerkOptions,
    backend: &'a FakeBackend,
}

impl Run<'_> {
    fn state(&self, url: &str, headers: &[(&str, &str)]) -> RequestState {
        self.both(url, headers).0
    }

    fn decision(&self, url: &str, headers: &[(&str, &str)]) -> Decision {
        self.both(url, headers).1
    }

    /// Runs one request for the absolute `url` (sent as X-Forwarded-*).
    fn both(&self, url: &str, headers: &[(&str, &str)]) -> (RequestState, Decision) {
        let parsed = Url::parse(url).unwrap();
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap()),
            None => parsed.host_str().unwrap().to_owned(),
        };
        let path = &parsed[url::Position::BeforePath..];
        let mut all = vec![
            ("x-forwarded-proto", parsed.scheme()),
            ("x-forwarded-host", host.as_str()),
            ("x-forwarded-uri", path),
        ];
        all.extend_from_slice(headers);
        let headers = TestHeaders::new(&all);
        let line = AuthRequestLine {
            method: "GET",
            tail: None,
        };
        let ctx = RequestContext::from_headers(
            &headers,
            ForwardedHeaders::Auto,
            line,
            self.options.publishable_key.cookie_suffix(),
        );
        let keys = pem_key();
        let auth = Authenticator {
            options: self.options,
            keys: &keys,
            backend: self.backend,
            observer: &Quiet,
            tokens: &NoCache,
        };
        let state = block_on(auth.authenticate(&ctx, NOW_MS));
        let decision = Decision::decide(state.clone(), &ctx, self.options, NOW_MS);
        (state, decision)
    }
}

fn run<'a>(options: &'a ClerkOptions, backend: &'a FakeBackend) -> Run<'a> {
    Run { options, backend }
}

fn token(iss: &str, patch: Value) -> String {
    let mut claims = session_claims("user_1", iss, NOW_S, 60);
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    signer().sign(&claims)
}

fn prod_token(patch: Value) -> String {
    token("clerk.example.com", patch)
}

fn kind(state: &RequestState) -> (&'static str, String) {
    let reason = state
        .reason()
        .map(|r| r.as_str().into_owned())
        .unwrap_or_default();
    let kind = match state {
        RequestState::SignedIn { .. } => "signed-in",
        RequestState::SignedOut { .. } => "signed-out",
        RequestState::Handshake { .. } => "handshake",
    };
    (kind, reason)
}

fn location(state: &RequestState) -> Url {
    match state {
        RequestState::Handshake { location, .. }
        | RequestState::SignedIn {
            location: Some(location),
            ..
        }
        | RequestState::SignedOut {
            location: Some(location),
            ..
        } => Url::parse(location).unwrap(),
        other => panic!("no location: {other:?}"),
    }
}

fn params(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn signed_in_cookie(patch: Value) -> String {
    format!(
        "__session={}; __client_uat={}",
        prod_token(patch),
        NOW_S - 10
    )
}

mod satellites {
    use super::*;

    fn satellite(pk: &str) -> ClerkOptions {
        ClerkOptions {
            domain: Some("satellite.example.net".into()),
            is_satellite: true,
            sign_in_url: Some("https://primary.example.com/sign-in".into()),
            ..options(pk)
        }
    }

    #[test]
    fn a_production_satellite_that_needs_syncing_hands_shake_with_its_own_frontend_api() {
        let o = satellite(PROD_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "https://satellite.example.net/p?__clerk_synced=false",
            &[PAGE],
        );
        assert_eq!(kind(&s), ("handshake", "satellite-needs-syncing".into()));
        let loc = location(&s);
        assert_eq!(loc.host_str(), Some("clerk.satellite.example.net"));
        assert_eq!(
            params(&loc)["redirect_url"],
            "https://satellite.example.net/p?__clerk_synced=false"
        );
    }

    #[test]
    fn a_satellite_without_cookies_or_sync_request_is_signed_out() {
        let o = satellite(PROD_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state("https://satellite.example.net/p", &[PAGE]);
        assert_eq!(
            kind(&s),
            ("signed-out", "session-token-and-uat-missing".into())
        );
    }

    #[test]
    fn a_synced_satellite_skips_the_sync() {
        let o = satellite(PROD_PK);
        let b = FakeBackend::default();
        let token = token("clerk.satellite.example.net", json!({}));
        let cookie = format!("__session={token}; __client_uat={}", NOW_S - 10);
        let s = run(&o, &b).state(
            "https://satellite.example.net/p?__clerk_synced=true",
            &[PAGE, ("cookie", &cookie)],
        );
        assert_eq!(kind(&s).0, "signed-in");
    }

    #[test]
    fn sync_only_applies_to_document_gets() {
        let o = satellite(PROD_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "https://satellite.example.net/p?__clerk_synced=false",
            &[("accept", "text/html")],
        );
        // Not `sec-fetch-dest: document`: no sync; the ordinary rules find no session.
        assert_eq!(
            kind(&s),
            ("signed-out", "session-token-and-uat-missing".into())
        );
    }

    #[test]
    fn a_development_satellite_goes_to_the_primary_sign_in_with_its_url() {
        let o = satellite(DEV_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "http://satellite.example.net/path?__clerk_synced=false",
            &[PAGE],
        );
        assert_eq!(kind(&s), ("handshake", "satellite-needs-syncing".into()));
        assert_eq!(
            location(&s).as_str(),
            "https://primary.example.com/sign-in?__clerk_redirect_url=http%3A%2F%2Fsatellite.example.net%2Fpath%3F__clerk_synced%3Dfalse"
        );
    }

    #[test]
    fn a_development_primary_answers_a_sync_with_its_dev_browser() {
        let o = options(DEV_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "http://localhost:3000/sign-in?__clerk_redirect_url=http%3A%2F%2Fsat.test%2Fx",
            &[PAGE, ("cookie", "__clerk_db_jwt=dvb_7")],
        );
        assert_eq!(
            kind(&s),
            ("handshake", "primary-responds-to-syncing".into())
        );
        assert_eq!(
            location(&s).as_str(),
            "http://sat.test/x?__clerk_db_jwt=dvb_7&__clerk_synced=true"
        );
    }
}

mod cross_origin_and_org_sync {
    use super::*;

    #[test]
    fn a_page_load_from_another_origin_resyncs_once() {
        let o = options(PROD_PK);
        let b = FakeBackend::default();
        let r = run(&o, &b);
        let cookie = signed_in_cookie(json!({}));
        let url = "https://app.example.com/d";
        let from = |referer: &'static str, extra: &[(&'static str, &'static str)]| {
            let mut h = vec![PAGE, ("cookie", cookie.as_str()), ("referer", referer)];
            h.extend_from_slice(extra);
            kind(&r.state(url, &h))
        };
        assert_eq!(
            from("https://elsewhere.example.org/", &[]),
            ("handshake", "primary-domain-cross-origin-sync".into())
        );
        assert_eq!(from("https://app.example.com/other", &[]).0, "signed-in");
        assert_eq!(from("https://clerk.example.com/", &[]).0, "signed-in");
        assert_eq!(
            from("https://accounts.example.com/sign-in", &[]).0,
            "signed-in"
        );
        let counted = format!("{cookie}; __clerk_redirect_count=1");
        let h = [
            PAGE,
            ("cookie", counted.as_str()),
            ("referer", "https://elsewhere.example.org/"),
        ];
        assert_eq!(kind(&r.state(url, &h)).0, "signed-in");
    }

    fn org_options() -> ClerkOptions {
        ClerkOptions {
            org_sync: OrgSync {
                organization: Some(
                    PathPatterns::compile(&["/orgs/:slug", "/orgs/:slug/(.*)", "/id/:id"]).unwrap(),
                ),
                personal_account: Some(PathPatterns::compile(&["/me", "/me/(.*)"]).unwrap()),
            },
            ..options(PROD_PK)
        }
    }

    fn org_cookie() -> String {
        signed_in_cookie(json!({"o": {"id": "org_1", "slg": "acme", "rol": "admin"}}))
    }

    #[test]
    fn a_url_for_another_organization_hands_shake_with_its_slug() {
        let o = org_options();
        let b = FakeBackend::default();
        let cookie = org_cookie();
        let s = run(&o, &b).state(
            "https://app.example.com/orgs/globex/settings",
            &[PAGE, ("cookie", &cookie)],
        );
        assert_eq!(
            kind(&s),
            ("handshake", "active-organization-mismatch".into())
        );
        assert_eq!(params(&location(&s))["organization_id"], "globex");
    }

    #[test]
    fn matching_ids_slugs_and_personal_accounts() {
        let o = org_options();
        let b = FakeBackend::default();
        let r = run(&o, &b);
        let cookie = org_cookie();
        let page = |url: &str| kind(&r.state(url, &[PAGE, ("cookie", cookie.as_str())]));
        assert_eq!(page("https://app.example.com/orgs/acme").0, "signed-in");
        // The pattern matches case-insensitively, but the slug is compared exactly.
        assert_eq!(
            page("https://app.example.com/ORGS/ACME").1,
            "active-organization-mismatch"
        );
        assert_eq!(page("https://app.example.com/id/org_1").0, "signed-in");
        assert_eq!(
            page("https://app.example.com/id/org_2").1,
            "active-organization-mismatch"
        );
        assert_eq!(
            page("https://app.example.com/me").1,
            "active-organization-mismatch"
        );
        assert_eq!(page("https://app.example.com/elsewhere").0, "signed-in");
        let personal = signed_in_cookie(json!({}));
        let s = r.state(
            "https://app.example.com/me/",
            &[PAGE, ("cookie", &personal)],
        );
        assert_eq!(kind(&s).0, "signed-in");
    }

    #[test]
    fn a_mismatch_on_an_api_call_or_in_a_loop_keeps_the_session() {
        let o = org_options();
        let b = FakeBackend::default();
        let r = run(&o, &b);
        let cookie = org_cookie();
        let api = r.state(
            "https://app.example.com/orgs/globex",
            &[API, ("cookie", &cookie)],
        );
        assert_eq!(kind(&api).0, "signed-in");
        let looped = format!("{cookie}; __clerk_redirect_count=3");
        let s = r.state(
            "https://app.example.com/orgs/globex",
            &[PAGE, ("cookie", &looped)],
        );
        assert_eq!(kind(&s).0, "signed-in");
    }

    #[test]
    fn the_handshake_url_names_the_organization_for_any_reason() {
        let o = org_options();
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "https://app.example.com/me",
            &[PAGE, ("cookie", "__client_uat=5")],
        );
        assert_eq!(
            kind(&s),
            ("handshake", "client-uat-but-no-session-token".into())
        );
        assert_eq!(params(&location(&s))["organization_id"], "");
    }
}

mod handshake_resolution {
    use super::*;

    fn backend_with(nonce: &str, directives: Vec<String>) -> FakeBackend {
        FakeBackend {
            payloads: HashMap::from([(nonce.to_owned(), directives)]),
            ..FakeBackend::default()
        }
    }

    fn fresh_directives() -> Vec<String> {
        vec![
            format!(
                "__session={}; Path=/; Secure; SameSite=Lax",
                prod_token(json!({}))
            ),
            format!(
                "__client_uat={}; Path=/; Domain=example.com; Max-Age=315360000",
                NOW_S
            ),
            "__clerk_handshake_nonce=; Max-Age=0; Path=/".to_owned(),
        ]
    }

    #[test]
    fn a_nonce_brings_every_cookie_and_a_return_to_the_cleaned_url() {
        let o = options(PROD_PK);
        let b = backend_with("n1", fresh_directives());
        let url = "https://app.example.com/d?x=1&__clerk_handshake_nonce=n1&__clerk_help=1";
        let (state, decision) = run(&o, &b).both(url, &[PAGE]);
        let RequestState::SignedIn {
            set_cookies,
            location,
            auth,
            ..
        } = &state
        else {
            panic!("{state:?}")
        };
        assert_eq!(auth.user_id, "user_1");
        assert_eq!(location.as_deref(), Some("https://app.example.com/d?x=1"));
        assert_eq!(set_cookies.len(), 4);
        assert_eq!(&set_cookies[..3], fresh_directives().as_slice());
        assert_eq!(
            set_cookies[3],
            "__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"
        );
        assert!(matches!(
            decision,
            Decision::Redirect {
                kind: RedirectKind::Return { signed_in: true },
                ..
            }
        ));
    }

    #[test]
    fn a_nonce_cookie_works_like_the_query_parameter() {
        let o = options(PROD_PK);
        let b = backend_with("n2", fresh_directives());
        let s = run(&o, &b).state(
            "https://app.example.com/d",
            &[PAGE, ("cookie", "__clerk_handshake_nonce=n2")],
        );
        assert_eq!(kind(&s).0, "signed-in");
        assert_eq!(location(&s).as_str(), "https://app.example.com/d");
    }

    #[test]
    fn in_production_an_api_call_gets_the_cookies_without_a_redirect() {
        let o = options(PROD_PK);
        let b = backend_with("n3", fresh_directives());
        let (state, decision) = run(&o, &b).both(
            "https://app.example.com/api?__clerk_handshake_nonce=n3",
            &[API],
        );
        let RequestState::SignedIn {
            location,
            set_cookies,
            ..
        } = &state
        else {
            panic!()
        };
        assert_eq!(location, &None);
        assert_eq!(set_cookies.len(), 3);
        assert!(matches!(decision, Decision::Allow { .. }));
    }

    #[test]
    fn in_development_every_resolution_redirects() {
        let o = options(DEV_PK);
        let directives = vec![format!(
            "__session={}; Path=/",
            token("foo-bar-13.clerk.accounts.dev", json!({}))
        )];
        let b = backend_with("n4", directives);
        let s = run(&o, &b).state(
            "http://localhost:3000/?__clerk_handshake_nonce=n4&__clerk_db_jwt=dvb",
            &[API],
        );
        assert_eq!(kind(&s).0, "signed-in");
        assert_eq!(location(&s).as_str(), "http://localhost:3000/");
    }

    #[test]
    fn a_stale_nonce_ends_signed_out_with_session_token_missing() {
        let o = options(PROD_PK);
        let b = FakeBackend::default();
        let s = run(&o, &b).state(
            "https://app.example.com/d?__clerk_handshake_nonce=stale",
            &[PAGE],
        );
        assert_eq!(kind(&s), ("signed-out", "session-token-missing".into()));
        assert_eq!(location(&s).as_str(), "https://app.example.com/d");
    }

    #[test]
    fn a_replayed_nonce_cookie_cannot_loop() {
        let o = options(PROD_PK);
        let b = FakeBackend::default();
        let cookie = "__clerk_handshake_nonce=stale; __clerk_redirect_count=3";
        let s = run(&o, &b).state("https://app.example.com/d", &[PAGE, ("cookie", cookie)]);
        // The handshake is ignored and the request judged on its other cookies.
        assert_eq!(
            kind(&s),
            ("signed-out", "session-token-and-uat-missing".into())
        );
    }

    fn legacy(signer: &crate::mint::Signer, directives: &[String]) -> String {
        signer.sign_with_header(
            &json!({"alg": "RS256", "kid": signer.kid(), "typ": "JWT"}),
            &json!({"handshake": directives}),
        )
    }

    #[test]
    fn a_legacy_handshake_token_is_verified_with_the_instance_keys() {
        let o = options(PROD_PK);
        let b = FakeBackend::default();
        let handshake = legacy(&signer(), &fresh_directives());
        let url = format!("https://app.example.com/d?__clerk_handshake={handshake}");
        let s = run(&o, &b).state(&url, &[PAGE]);
        assert_eq!(kind(&s).0, "signed-in");
        assert_eq!(location(&s).as_str(), "https://app.example.com/d");
    }

    #[test]
    fn a_forged_legacy_handshake_is_ignored_in_production_and_refused_in_development() {
        let b = FakeBackend::default();
        let forged = legacy(&other_signer(), &fresh_directives());
        let prod = options(PROD_PK);
        let s = run(&prod, &b).state(
            &format!("https://app.example.com/d?__clerk_handshake={forged}"),
            &[PAGE],
        );
        assert_eq!(
            kind(&s),
            ("signed-out", "session-token-and-uat-missing".into())
        );
        let dev = options(DEV_PK);
        let s = run(&dev, &b).state(
            &format!("http://localhost:3000/?__clerk_handshake={forged}"),
            &[PAGE],
        );
        assert_eq!(kind(&s), ("signed-out", "token-invalid-signature".into()));
    }

    #[test]
    fn development_retries_a_skewed_handshake_session_with_a_day_of_skew() {
        let o = options(DEV_PK);
        let old = token(
            "foo-bar-13.clerk.accounts.dev",
            json!({"iat": NOW_S - 7200, "nbf": NOW_S - 7200, "exp": NOW_S - 3600}),
        );
        let b = backend_with("n5", vec![format!("__session={old}")]);
        let s = run(&o, &b).state("http://localhost:3000/?__clerk_handshake_nonce=n5", &[PAGE]);
        assert_eq!(kind(&s).0, "signed-in");
        // Production does not retry: the expired handshake session is discarded.
        let o = options(PROD_PK);
        let old = prod_token(json!({"exp": NOW_S - 3600}));
        let b = backend_with("n6", vec![format!("__session={old}")]);
        let s = run(&o, &b).state(
            "https://app.example.com/?__clerk_handshake_nonce=n6",
            &[PAGE],
        );
        assert_eq!(
            kind(&s),
            ("signed-out", "session-token-and-uat-missing".into())
        );
    }
}

mod refresh {
    use super::*;

    const SFX: &str = "naoXFJnI";

    fn expired_cookie() -> String {
        format!(
            "__session={}; __client_uat={}; __refresh_{SFX}=rt_1",
            prod_token(json!({"exp": NOW_S - 60, "iat": NOW_S - 120})),
            NOW_S - 600
        )
    }

    #[test]
    fn an_expired_session_with_a_refresh_cookie_is_refreshed_and_sent_back() {
        let o = options(PROD_PK);
        let directives = vec![
            format!("__session={}; Path=/", prod_token(json!({}))),
            format!("__client_uat={NOW_S}; Path=/"),
        ];
        let b = FakeBackend {
            refresh: Some(Ok(directives.clone())),
            ..FakeBackend::default()
        };
        let cookie = expired_cookie();
        let (state, decision) =
            run(&o, &b).both("https://app.example.com/d?x=1", &[API, ("cookie", &cookie)]);
        let RequestState::SignedIn {
            set_cookies,
            location,
            ..
        } = &state
        else {
            panic!("{state:?}")
        };
        assert_eq!(set_cookies, &directives);
        assert_eq!(location.as_deref(), Some("https://app.example.com/d?x=1"));
        assert!(matches!(
            decision,
            Decision::Redirect {
                kind: RedirectKind::Return { signed_in: true },
                ..
            }
        ));
        let calls = b.refresh_calls.lock().unwrap();
        let (sid, request) = &calls[0];
        assert_eq!(sid, "sess_1");
        assert_eq!(request.refresh_token, "rt_1");
        assert_eq!(request.request_origin, "https://app.example.com");
        assert_eq!(request.format, "cookie");
        assert!(request.request_headers.contains_key("cookie"));
    }

    #[test]
    fn a_failed_refresh_names_its_code_in_the_reason() {
        let o = options(PROD_PK);
        let b = FakeBackend {
            refresh: Some(Err(RefreshError::Bapi("session_not_found".into()))),
            ..FakeBackend::default()
        };
        let cookie = expired_cookie();
        let s = run(&o, &b).state("https://app.example.com/d", &[API, ("cookie", &cookie)]);
        assert_eq!(
            kind(&s),
            (
                "signed-out",
                "session-token-expired-refresh-session_not_found".into()
            )
        );
        let b = FakeBackend {
            refresh: Some(Ok(vec!["__session=garbage; Path=/".into()])),
            ..FakeBackend::default()
        };
        let s = run(&o, &b).state("https://app.example.com/d", &[API, ("cookie", &cookie)]);
        assert_eq!(
            kind(&s).1,
            "session-token-expired-refresh-invalid-session-token"
        );
    }

    #[test]
    fn without_a_secret_key_the_refresh_reports_a_missing_api_client() {
        let o = options(PROD_PK);
        let b = FakeBackend::default();
        let cookie = expired_cookie();
        let s = run(&o, &b).state("https://app.example.com/d", &[API, ("cookie", &cookie)]);
        assert_eq!(
            kind(&s).1,
            "session-token-expired-refresh-missing-api-client"
        );
    }
}

mod sign_in {
    use super::*;

    fn with_sign_in(pk: &str, url: &str) -> ClerkOptions {
        ClerkOptions {
            sign_in_url: Some(url.into()),
            ..options(pk)
        }
    }

    fn redirect(decision: &Decision) -> (RedirectKind, String) {
        match decision {
            Decision::Redirect { kind, location, .. } => (*kind, location.clone()),
            other => panic!("not a redirect: {other:?}"),
        }
    }

    #[test]
    fn a_signed_out_page_load_goes_to_sign_in_with_its_own_url() {
        let o = with_sign_in(PROD_PK, "https://accounts.example.com/sign-in");
        let b = FakeBackend::default();
        let d = run(&o, &b).decision("https://app.example.com/p?a=1", &[PAGE]);
        assert_eq!(
            redirect(&d),
            (
                RedirectKind::SignIn,
                "https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fp%3Fa%3D1".into()
            )
        );
    }

    #[test]
    fn a_relative_sign_in_url_is_resolved_against_the_request() {
        let o = with_sign_in(PROD_PK, "/sign-in");
        let b = FakeBackend::default();
        let d = run(&o, &b).decision("https://app.example.com/p", &[PAGE]);
        assert_eq!(
            redirect(&d).1,
            "https://app.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fp"
        );
    }

    #[test]
    fn api_calls_stay_401_and_without_a_sign_in_url_pages_too() {
        let o = with_sign_in(PROD_PK, "/sign-in");
        let b = FakeBackend::default();
        assert!(matches!(
            run(&o, &b).decision("https://app.example.com/api", &[API]),
            Decision::SignedOut { .. }
        ));
        let o = options(PROD_PK);
        assert!(matches!(
            run(&o, &b).decision("https://app.example.com/p", &[PAGE]),
            Decision::SignedOut { .. }
        ));
    }

    #[test]
    fn development_adds_the_dev_browser_for_a_cross_origin_sign_in() {
        let o = with_sign_in(DEV_PK, "https://foo-bar-13.accounts.dev/sign-in");
        let b = FakeBackend::default();
        let cookie = "__clerk_db_jwt=dvb_3";
        let d = run(&o, &b).decision("http://localhost:3000/p", &[PAGE, ("cookie", cookie)]);
        let url = Url::parse(&redirect(&d).1).unwrap();
        assert_eq!(params(&url)["__clerk_db_jwt"], "dvb_3");
        // Same origin: no dev browser in the URL.
        let o = with_sign_in(DEV_PK, "/sign-in");
        let d = run(&o, &b).decision("http://localhost:3000/p", &[PAGE, ("cookie", cookie)]);
        assert!(!redirect(&d).1.contains("__clerk_db_jwt"));
    }

    #[test]
    fn a_satellite_marks_its_return_url_as_needing_sync() {
        let o = ClerkOptions {
            is_satellite: true,
            domain: Some("sat.example.net".into()),
            ..with_sign_in(PROD_PK, "https://primary.example.com/sign-in")
        };
        let b = FakeBackend::default();
        let d = run(&o, &b).decision("https://sat.example.net/p", &[PAGE]);
        let url = Url::parse(&redirect(&d).1).unwrap();
        assert_eq!(
            params(&url)["redirect_url"],
            "https://sat.example.net/p?__clerk_synced=false"
        );
    }

    #[test]
    fn a_pending_session_goes_to_the_tasks_page() {
        let o = with_sign_in(PROD_PK, "https://accounts.example.com/sign-in");
        let b = FakeBackend::default();
        let cookie = signed_in_cookie(json!({"sts": "pending"}));
        let d = run(&o, &b).decision("https://app.example.com/p", &[PAGE, ("cookie", &cookie)]);
        assert!(
            redirect(&d)
                .1
                .starts_with("https://accounts.example.com/sign-in/tasks?redirect_url=")
        );
        let d = run(&o, &b).decision("https://app.example.com/p", &[API, ("cookie", &cookie)]);
        assert!(matches!(
            d,
            Decision::SignedOut {
                reason: Reason::SessionPending,
                ..
            }
        ));
    }

    #[test]
    fn a_handshake_wins_over_sign_in() {
        let o = with_sign_in(PROD_PK, "/sign-in");
        let b = FakeBackend::default();
        let d = run(&o, &b).decision(
            "https://app.example.com/p",
            &[PAGE, ("cookie", "__client_uat=5")],
        );
        assert_eq!(redirect(&d).0, RedirectKind::Handshake);
    }
}
