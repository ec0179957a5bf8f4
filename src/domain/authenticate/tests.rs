//! Table tests for `authenticateRequest`: the header path, the cookie path and handshakes.

use serde_json::{Value, json};

use super::*;
use crate::domain::backend::NoBackend;
use crate::domain::cookies::ClerkCookies;
use crate::domain::request::tests::TestHeaders;
use crate::domain::request::{AuthRequestLine, ForwardedHeaders};
use crate::domain::testing::{NOW_MS, NOW_S, block_on, options, pem_key, signer};
use crate::domain::verified::NoCache;
use crate::mint::session_claims;

const PROD_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
const DEV_PK: &str = "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk"; // foo-bar-13.clerk.accounts.dev

fn run(options: &ClerkOptions, headers: &[(&str, &str)]) -> RequestState {
    let headers = TestHeaders::new(headers);
    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let ctx = RequestContext::from_headers(
        &headers,
        ForwardedHeaders::Auto,
        line,
        options.publishable_key.cookie_suffix(),
    );
    let keys = pem_key();
    let auth = Authenticator {
        options,
        keys: &keys,
        backend: &NoBackend,
        observer: &Quiet,
        tokens: &NoCache,
    };
    block_on(auth.authenticate(&ctx, NOW_MS))
}

fn prod_token(patch: Value) -> String {
    let mut claims = session_claims("user_1", "clerk.example.com", NOW_S, 60);
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    signer().sign(&claims)
}

fn reason(state: &RequestState) -> String {
    state
        .reason()
        .map(|r| r.as_str().into_owned())
        .unwrap_or_else(|| "signed-in".into())
}

fn kind(state: &RequestState) -> &'static str {
    match state {
        RequestState::SignedIn { .. } => "signed-in",
        RequestState::SignedOut { .. } => "signed-out",
        RequestState::Handshake { .. } => "handshake",
    }
}

/// (name, headers, expected state kind, expected reason)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);

const API: (&str, &str) = ("accept", "application/json");
const PAGE: (&str, &str) = ("sec-fetch-dest", "document");
const URL: [(&str, &str); 3] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "app.example.com"),
    ("x-forwarded-uri", "/d?x=1"),
];

fn h<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = URL.to_vec();
    all.extend_from_slice(extra);
    all
}

#[test]
fn a_valid_bearer_token_is_signed_in_with_its_identity() {
    let o = options(PROD_PK);
    let auth = format!("Bearer {}", prod_token(json!({})));
    let state = run(&o, &h(&[("authorization", &auth), API]));
    let RequestState::SignedIn { auth, carrier, .. } = state else {
        panic!("{state:?}");
    };
    assert_eq!(
        (auth.user_id.as_str(), carrier),
        ("user_1", TokenCarrier::Header)
    );
}

#[test]
fn header_token_parsing_follows_clerk() {
    let o = options(PROD_PK);
    let token = prod_token(json!({}));
    // A bare value is the token.
    assert_eq!(
        kind(&run(&o, &h(&[("authorization", &token), API]))),
        "signed-in"
    );
    // The scheme is case-sensitive: `bearer` means no header token, so the cookie path runs.
    let lower = format!("bearer {token}");
    assert_eq!(
        reason(&run(&o, &h(&[("authorization", &lower), API]))),
        "session-token-and-uat-missing"
    );
    // Other schemes fall back to cookies too.
    let basic = "Basic dXNlcjpwYXNz";
    let cookie = format!("__session={token}; __client_uat={}", NOW_S - 10);
    assert_eq!(
        kind(&run(
            &o,
            &h(&[("authorization", basic), ("cookie", &cookie), API])
        )),
        "signed-in"
    );
    // A header token wins over the cookie, even a valid one.
    let bad = format!("Bearer {}", prod_token(json!({"exp": NOW_S - 60})));
    assert_eq!(
        kind(&run(
            &o,
            &h(&[("authorization", &bad), ("cookie", &cookie), API])
        )),
        "signed-out"
    );
}

#[test]
fn header_path_reasons_match_clerk() {
    let o = options(PROD_PK);
    let expired = format!("Bearer {}", prod_token(json!({"exp": NOW_S - 60})));
    let nbf = format!("Bearer {}", prod_token(json!({"nbf": NOW_S + 60})));
    let iat = format!("Bearer {}", prod_token(json!({"iat": NOW_S + 60})));
    let m2m = format!("Bearer {}", prod_token(json!({"sub": "mch_123"})));
    let none = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.";
    let cases: Vec<Case<'_>> = vec![
        (
            "no credentials",
            h(&[API]),
            "signed-out",
            "session-token-and-uat-missing",
        ),
        (
            "expired API call",
            h(&[("authorization", &expired), API]),
            "signed-out",
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        (
            "expired page load",
            h(&[("authorization", &expired), PAGE]),
            "handshake",
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        (
            "expired POST",
            h(&[
                ("authorization", &expired),
                ("x-forwarded-method", "POST"),
                PAGE,
            ]),
            "signed-out",
            "session-token-expired-refresh-non-eligible-non-get",
        ),
        (
            "nbf ahead",
            h(&[("authorization", &nbf), API]),
            "signed-out",
            "session-token-nbf",
        ),
        (
            "iat ahead",
            h(&[("authorization", &iat), API]),
            "signed-out",
            "session-token-iat-in-the-future",
        ),
        (
            "M2M JWT",
            h(&[("authorization", &m2m), API]),
            "signed-out",
            "token-type-mismatch",
        ),
        (
            "opaque M2M",
            h(&[("authorization", "Bearer mt_secret"), API]),
            "signed-out",
            "token-type-mismatch",
        ),
        (
            "alg none",
            h(&[("authorization", none), API]),
            "signed-out",
            "token-invalid-algorithm",
        ),
        (
            "garbage",
            h(&[("authorization", "Bearer garbage"), API]),
            "signed-out",
            "token-invalid",
        ),
    ];
    for (name, headers, want_kind, want_reason) in cases {
        let state = run(&o, &headers);
        assert_eq!(
            (kind(&state), reason(&state).as_str()),
            (want_kind, want_reason),
            "{name}"
        );
    }
}

#[test]
fn the_signed_out_message_is_the_full_verification_message() {
    let o = options(PROD_PK);
    let expired = format!("Bearer {}", prod_token(json!({"exp": NOW_S - 3600})));
    let RequestState::SignedOut {
        message,
        token_presented,
        ..
    } = run(&o, &h(&[("authorization", &expired), API]))
    else {
        panic!()
    };
    assert!(token_presented);
    assert_eq!(
        message,
        "JWT is expired. Expiry date: Thu, 26 Nov 2026 11:00:00 GMT, Current date: Thu, 26 Nov \
         2026 12:00:00 GMT. (reason=token-expired, token-carrier=header)"
    );
}

#[test]
fn cookie_path_rules_in_order() {
    let o = options(PROD_PK);
    let good = prod_token(json!({}));
    let old = prod_token(json!({"iat": NOW_S - 100}));
    let uat = (NOW_S - 10).to_string();
    let both = format!("__session={good}; __client_uat={uat}");
    let only_session = format!("__session={good}");
    let zero_uat = format!("__session={good}; __client_uat=0");
    let only_uat = format!("__client_uat={uat}");
    let outdated = format!("__session={old}; __client_uat={uat}");
    let expired = format!(
        "__session={}; __client_uat={uat}",
        prod_token(json!({"exp": NOW_S - 60}))
    );
    let bad_cookie = format!("__session=x.y.z; __client_uat={uat}");
    let cases: Vec<Case<'_>> = vec![
        (
            "signed in",
            h(&[("cookie", &both), PAGE]),
            "signed-in",
            "signed-in",
        ),
        (
            "anonymous page",
            h(&[PAGE]),
            "signed-out",
            "session-token-and-uat-missing",
        ),
        (
            "uat 0, no session",
            h(&[("cookie", "__client_uat=0"), PAGE]),
            "signed-out",
            "session-token-and-uat-missing",
        ),
        (
            "session, no uat",
            h(&[("cookie", &only_session), PAGE]),
            "handshake",
            "session-token-but-no-client-uat",
        ),
        (
            "session, uat 0",
            h(&[("cookie", &zero_uat), PAGE]),
            "handshake",
            "session-token-but-no-client-uat",
        ),
        (
            "session, no uat, API",
            h(&[("cookie", &only_session), API]),
            "signed-out",
            "session-token-but-no-client-uat",
        ),
        (
            "uat, no session",
            h(&[("cookie", &only_uat), PAGE]),
            "handshake",
            "client-uat-but-no-session-token",
        ),
        (
            "iat before uat",
            h(&[("cookie", &outdated), PAGE]),
            "handshake",
            "session-token-iat-before-client-uat",
        ),
        (
            "expired cookie",
            h(&[("cookie", &expired), PAGE]),
            "handshake",
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        (
            "bad cookie",
            h(&[("cookie", &bad_cookie), PAGE]),
            "signed-out",
            "token-invalid",
        ),
    ];
    for (name, headers, want_kind, want_reason) in cases {
        let state = run(&o, &headers);
        assert_eq!(
            (kind(&state), reason(&state).as_str()),
            (want_kind, want_reason),
            "{name}"
        );
    }
}

#[test]
fn development_requires_the_dev_browser() {
    let o = options(DEV_PK);
    let missing = run(&o, &h(&[PAGE]));
    assert_eq!(
        (kind(&missing), reason(&missing).as_str()),
        ("handshake", "dev-browser-missing")
    );
    let api = run(&o, &h(&[API]));
    assert_eq!(
        (kind(&api), reason(&api).as_str()),
        ("signed-out", "dev-browser-missing")
    );
    let sync = run(
        &o,
        &[
            ("x-forwarded-host", "localhost:3000"),
            ("x-forwarded-uri", "/?__clerk_db_jwt=dvb_1"),
            PAGE,
        ],
    );
    assert_eq!(
        (kind(&sync), reason(&sync).as_str()),
        ("handshake", "dev-browser-sync")
    );
    let anonymous = run(&o, &h(&[("cookie", "__clerk_db_jwt=dvb_1"), PAGE]));
    assert_eq!(reason(&anonymous), "session-token-and-uat-missing");
}

#[test]
fn the_handshake_url_is_clerks() {
    let o = options(PROD_PK);
    let uat = (NOW_S - 10).to_string();
    let state = run(&o, &h(&[("cookie", &format!("__client_uat={uat}")), PAGE]));
    let RequestState::Handshake {
        location,
        set_cookies,
        message,
        ..
    } = state
    else {
        panic!("{state:?}")
    };
    assert_eq!(
        location,
        "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fd%3Fx%3D1&__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce"
    );
    assert_eq!(
        set_cookies,
        ["__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"]
    );
    assert_eq!(message, "");
}

#[test]
fn the_handshake_url_carries_the_session_and_dev_browser_and_drops_db_params() {
    let o = options(DEV_PK);
    let token = signer().sign(&session_claims(
        "user_1",
        "foo-bar-13.clerk.accounts.dev",
        NOW_S - 120,
        60,
    ));
    let cookie = format!(
        "__session={token}; __client_uat={}; __clerk_db_jwt=dvb_9",
        NOW_S - 200
    );
    let state = run(
        &o,
        &[
            ("host", "localhost:3000"),
            ("x-forwarded-uri", "/p?a=b%20c&__dev_session=zz"),
            ("cookie", &cookie),
            ("accept", "text/html,application/xhtml+xml"),
        ],
    );
    let RequestState::Handshake { location, .. } = state else {
        panic!("{state:?}")
    };
    let url = Url::parse(&location).unwrap();
    assert_eq!(url.host_str(), Some("foo-bar-13.clerk.accounts.dev"));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_url"], "http://localhost:3000/p?a=b+c");
    assert_eq!(q["__session"], token);
    assert_eq!(q["__clerk_db_jwt"], "dvb_9");
    assert_eq!(
        q["__clerk_hs_reason"],
        "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    );
}

#[test]
fn a_proxy_url_replaces_the_frontend_api_in_the_handshake() {
    let mut o = options(PROD_PK);
    o.proxy_url = Some("/__clerk/".into());
    let state = run(&o, &h(&[("cookie", "__client_uat=5"), PAGE]));
    let RequestState::Handshake { location, .. } = state else {
        panic!()
    };
    assert!(
        location.starts_with("https://app.example.com/__clerk/v1/client/handshake?"),
        "{location}"
    );
    o.proxy_url = Some("https://proxy.example.com/clerk".into());
    let state = run(&o, &h(&[("cookie", "__client_uat=5"), PAGE]));
    let RequestState::Handshake { location, .. } = state else {
        panic!()
    };
    assert!(
        location.starts_with("https://proxy.example.com/clerk/v1/client/handshake?"),
        "{location}"
    );
}

#[test]
fn the_third_redirect_is_a_loop_and_ends_signed_out() {
    let o = options(PROD_PK);
    let second = run(
        &o,
        &h(&[("cookie", "__client_uat=5; __clerk_redirect_count=2"), PAGE]),
    );
    let RequestState::Handshake { set_cookies, .. } = &second else {
        panic!()
    };
    assert_eq!(
        set_cookies[0],
        "__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2"
    );
    let third = run(
        &o,
        &h(&[("cookie", "__client_uat=5; __clerk_redirect_count=3"), PAGE]),
    );
    assert_eq!(
        (kind(&third), reason(&third).as_str()),
        ("signed-out", "client-uat-but-no-session-token")
    );
}

#[test]
fn doc_eligibility_is_a_get_page_load() {
    let o = options(PROD_PK);
    let c = ("cookie", "__client_uat=5");
    let eligible =
        |extra: &[(&str, &str)]| kind(&run(&o, &h(&[&[c], extra].concat()))) == "handshake";
    assert!(eligible(&[("sec-fetch-dest", "document")]));
    assert!(eligible(&[("sec-fetch-dest", "iframe")]));
    assert!(eligible(&[("accept", "text/html")]));
    assert!(!eligible(&[
        ("sec-fetch-dest", "empty"),
        ("accept", "text/html")
    ]));
    assert!(!eligible(&[("accept", "application/json, text/html")]));
    assert!(!eligible(&[
        ("sec-fetch-dest", "document"),
        ("x-forwarded-method", "POST")
    ]));
}

mod suffixed_cookies {
    //! One test per rule of spec §1.4.
    use super::*;

    const SFX: &str = "naoXFJnI"; // PROD_PK's suffix

    fn choose(cookie: &str) -> bool {
        let o = options(PROD_PK);
        let headers = TestHeaders::new(&[("cookie", cookie)]);
        let cookies = ClerkCookies::parse(&headers, o.publishable_key.cookie_suffix());
        uses_suffixed_cookies(&o, &cookies, NOW_MS, &NoCache)
    }

    fn token(iss: &str, iat: i64) -> String {
        let mut c = session_claims("user_1", iss, iat, 60);
        if iss.is_empty() {
            c.as_object_mut().unwrap().remove("iss");
        }
        signer().sign(&c)
    }

    #[test]
    fn rule_1_a_session_without_issuer_means_unsuffixed() {
        let cookie = format!(
            "__session={}; __session_{SFX}={}",
            token("", NOW_S),
            token("clerk.example.com", NOW_S)
        );
        assert!(!choose(&cookie));
        assert!(!choose(&format!("__session=garbage; __client_uat_{SFX}=5")));
    }

    #[test]
    fn rule_2_a_session_of_another_app_means_suffixed() {
        assert!(choose(&format!(
            "__session={}",
            token("other.clerk.accounts.dev", NOW_S)
        )));
    }

    #[test]
    fn rule_3_no_suffixed_cookies_means_unsuffixed() {
        assert!(!choose(&format!(
            "__session={}; __client_uat=5",
            token("clerk.example.com", NOW_S)
        )));
    }

    #[test]
    fn rule_4_a_newer_unsuffixed_session_wins() {
        let cookie = format!(
            "__session={}; __client_uat=5; __session_{SFX}={}; __client_uat_{SFX}=5",
            token("clerk.example.com", NOW_S),
            token("clerk.example.com", NOW_S - 30)
        );
        assert!(!choose(&cookie));
    }

    #[test]
    fn rule_5_suffixed_signed_out_but_unsuffixed_signed_in_means_unsuffixed() {
        assert!(!choose(&format!("__client_uat=5; __client_uat_{SFX}=0")));
    }

    #[test]
    fn rule_6_an_expired_suffixed_session_in_development_means_unsuffixed() {
        let dev = options(DEV_PK);
        let sfx = dev.publishable_key.cookie_suffix().to_owned();
        let expired = token("foo-bar-13.clerk.accounts.dev", NOW_S - 3600);
        let cookie = format!("__client_uat=0; __client_uat_{sfx}=5; __session_{sfx}={expired}");
        let headers = TestHeaders::new(&[("cookie", &cookie)]);
        let cookies = ClerkCookies::parse(&headers, &sfx);
        assert!(!uses_suffixed_cookies(&dev, &cookies, NOW_MS, &NoCache));
        // Production skips the rule.
        let cookie = format!("__client_uat=0; __client_uat_{SFX}=5; __session_{SFX}={expired}");
        assert!(choose(&cookie));
    }

    #[test]
    fn rule_7_a_suffixed_session_without_its_uat_means_unsuffixed() {
        assert!(!choose(&format!(
            "__session_{SFX}={}",
            token("clerk.example.com", NOW_S)
        )));
    }

    #[test]
    fn rule_8_otherwise_suffixed() {
        let cookie = format!(
            "__client_uat_{SFX}=5; __session_{SFX}={}",
            token("clerk.example.com", NOW_S)
        );
        assert!(choose(&cookie));
    }

    #[test]
    fn suffixed_cookies_are_then_the_ones_verified() {
        let o = options(PROD_PK);
        let cookie = format!(
            "__session=bogus-from-another-app; __client_uat_{SFX}={}; __session_{SFX}={}",
            NOW_S - 10,
            token("clerk.example.com", NOW_S)
        );
        // The unsuffixed session has no issuer (rule 1), so the unsuffixed pair is used, and
        // it has no client_uat.
        assert_eq!(
            reason(&run(&o, &h(&[("cookie", &cookie), API]))),
            "session-token-but-no-client-uat"
        );
        let other_app = token("other.clerk.accounts.dev", NOW_S);
        let cookie = format!(
            "__session={other_app}; __client_uat=1; __client_uat_{SFX}={}; __session_{SFX}={}",
            NOW_S - 10,
            token("clerk.example.com", NOW_S)
        );
        assert_eq!(kind(&run(&o, &h(&[("cookie", &cookie), API]))), "signed-in");
    }
}

#[test]
fn clerk_query_parameters_are_found_however_written() {
    let query = |uri: &str, name: &str| {
        let headers = TestHeaders::new(&[
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", uri),
        ]);
        let line = AuthRequestLine {
            method: "GET",
            tail: None,
        };
        let ctx = RequestContext::from_headers(&headers, ForwardedHeaders::Auto, line, "sfx");
        ctx.query(name).map(Cow::into_owned)
    };
    assert_eq!(query("/p?limit=20", "__clerk_synced"), None);
    assert_eq!(query("/p", "__clerk_synced"), None);
    assert_eq!(
        query("/p?a=1&__clerk_synced=true", "__clerk_synced").as_deref(),
        Some("true")
    );
    // Escaped, the name is not in the query as written, and is still found.
    assert_eq!(
        query("/p?%5F%5Fclerk_db_jwt=dvb_1", "__clerk_db_jwt").as_deref(),
        Some("dvb_1")
    );
    assert_eq!(
        query("/p?__clerk%5Fdb%5Fjwt=dvb_2", "__clerk_db_jwt").as_deref(),
        Some("dvb_2")
    );
}
