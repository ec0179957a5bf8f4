//! Property tests: valid tokens are always accepted and any changed byte is rejected; the
//! parsers of hostile input never panic and round-trip what they should.

use std::sync::{Arc, LazyLock};

use clerk_forward_auth::domain::cookies::{ClerkCookies, decode, pairs};
use clerk_forward_auth::domain::jwt::{Jwt, VerifyOptions, verify_token};
use clerk_forward_auth::domain::keys::{StaticKey, VerifyingKey};
use clerk_forward_auth::domain::pattern::PathPatterns;
use clerk_forward_auth::domain::request::{
    AuthRequestLine, ForwardedHeaders, HeaderList, OriginalRequest,
};
use clerk_forward_auth::domain::rules::{query_requirements, readings};
use clerk_forward_auth::domain::urls::public_url;
use proptest::prelude::*;
use serde_json::json;

use crate::helpers::*;

static KEY: LazyLock<StaticKey> =
    LazyLock::new(|| StaticKey(Arc::new(VerifyingKey::from_pem(PUBLIC_PEM).unwrap())));

fn options() -> VerifyOptions {
    VerifyOptions {
        authorized_parties: vec!["http://localhost:3000".into()],
        audience: vec![],
        clock_skew_ms: 5000,
    }
}

fn verify(token: &str) -> bool {
    futures_lite(verify_token(token, &*KEY, &options(), now_s() * 1000))
}

/// Runs a future that never waits (a static key resolves at once).
fn futures_lite<F: std::future::Future<Output = Result<T, E>>, T, E>(f: F) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
        .is_ok()
}

static VALID: LazyLock<String> = LazyLock::new(|| token(&key1()));

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn validly_signed_tokens_with_valid_claims_are_accepted(
        sub in "[a-zA-Z0-9_]{1,40}",
        ttl in 10i64..86_400,
        extra in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 0..5),
    ) {
        let now = now_s();
        let mut claims = clerk_forward_auth::mint::session_claims(&sub, "clerk.example.com", now, ttl);
        for (k, v) in extra {
            if claims.get(&k).is_none() {
                claims[k] = json!(v);
            }
        }
        let token = key1().sign(&claims);
        prop_assert!(verify(&token));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_changed_character_is_rejected(index in 0usize..10_000, replacement in 0usize..65) {
        let token: &str = &VALID;
        let index = index % token.len();
        let original = token.as_bytes()[index];
        let alphabet: Vec<u8> = B64URL.iter().copied().chain([b'.']).collect();
        let mut new = alphabet[replacement % alphabet.len()];
        if new == original {
            new = alphabet[(replacement + 1) % alphabet.len()];
        }
        let mut forged = token.as_bytes().to_vec();
        forged[index] = new;
        let forged = String::from_utf8(forged).unwrap();
        prop_assert!(!verify(&forged), "accepted with byte {index} changed");
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = Jwt::decode(&text);
        let _ = verify(&text);
    }

    #[test]
    fn cookie_parsing_never_panics(header in ".{0,300}", suffix in "[a-zA-Z0-9_-]{0,10}") {
        let headers = HeaderList::new(&[("cookie", header.as_str())]);
        let _ = ClerkCookies::parse(&headers, &suffix);
        let _ = decode(&header);
    }

    #[test]
    fn cookie_pairs_round_trip(name in "[a-zA-Z_][a-zA-Z0-9_]{0,15}", value in "[a-zA-Z0-9._~-]{0,30}") {
        let header = format!(" {name}={value} ; other=1");
        let parsed: Vec<_> = pairs(&header).collect();
        prop_assert_eq!(parsed[0], (name.as_str(), value.as_str()));
    }

    #[test]
    fn percent_encoded_cookie_values_decode_back(value in "\\PC{0,30}") {
        let encoded: String =
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).collect();
        prop_assert_eq!(decode(&encoded), value);
    }

    #[test]
    fn forwarded_headers_never_panic(
        method in ".{0,10}", proto in ".{0,10}", host in ".{0,40}", uri in ".{0,80}", url in ".{0,80}",
        tail in proptest::option::of(".{0,40}"),
    ) {
        let headers = HeaderList::new(&[
            ("x-forwarded-method", &method), ("x-forwarded-proto", &proto), ("x-forwarded-host", &host),
            ("x-forwarded-uri", &uri), ("x-original-url", &url), ("x-original-uri", &uri), ("host", &host),
        ]);
        for mode in [ForwardedHeaders::Auto, ForwardedHeaders::XForwarded, ForwardedHeaders::XOriginal, ForwardedHeaders::Path] {
            let line = AuthRequestLine { method: "GET", tail: tail.as_deref() };
            let request = OriginalRequest::from_headers(mode, &headers, line);
            let _ = public_url(&request);
            let _ = request.path();
            let _ = readings(request.path_and_query);
        }
    }

    #[test]
    fn forwarded_uris_round_trip(path in "(/[a-zA-Z0-9._~%-]{0,12}){1,5}", query in proptest::option::of("[a-zA-Z0-9=&%._-]{0,30}")) {
        let uri = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let headers = HeaderList::new(&[("x-forwarded-uri", uri.as_str()), ("x-forwarded-host", "app.example.com")]);
        let line = AuthRequestLine { method: "GET", tail: None };
        let request = OriginalRequest::from_headers(ForwardedHeaders::XForwarded, &headers, line);
        prop_assert_eq!(request.path_and_query, uri.as_str());
        prop_assert_eq!(request.path(), path.as_str());
    }

    #[test]
    fn path_normalisation_is_idempotent(path in "(/[a-z.]{0,4}){0,8}/?") {
        for reading in readings(&path) {
            prop_assert_eq!(readings(&reading).collect::<Vec<_>>(), vec![reading.clone()]);
            prop_assert!(!reading.split('/').any(|s| s == "." || s == ".."), "{}", reading);
        }
    }

    #[test]
    fn patterns_and_auth_url_queries_never_panic(pattern in ".{0,40}", query in ".{0,80}") {
        if let Ok(compiled) = PathPatterns::compile(&[pattern.as_str()]) {
            let _ = compiled.matches("/orgs/acme/x");
        }
        let _ = query_requirements(&query);
    }
}
