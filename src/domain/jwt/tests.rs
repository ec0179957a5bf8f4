//! Table tests for `verifyToken`: one case per reason of spec §3, with Clerk's messages.

use serde_json::{Value, json};

use super::*;
use crate::domain::testing::{JwksKeys, NOW_MS, NOW_S, block_on, other_signer, pem_key, signer};
use crate::mint::session_claims;

fn claims() -> Value {
    session_claims("user_1", "example.clerk.accounts.dev", NOW_S, 60)
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn options() -> VerifyOptions {
    VerifyOptions {
        authorized_parties: vec!["http://localhost:3000".into()],
        audience: vec![],
        clock_skew_ms: 5000,
    }
}

fn verify_pem(token: &str, options: &VerifyOptions) -> Result<Payload, TokenError> {
    block_on(verify_token(token, &pem_key(), options, NOW_MS))
}

fn reason_of(token: &str) -> &'static str {
    verify_pem(token, &options()).unwrap_err().reason.as_str()
}

fn b64(v: &Value) -> String {
    b64url(v.to_string().as_bytes())
}

#[test]
fn a_valid_token_returns_its_claims() {
    let token = signer().sign(&claims());
    let payload = verify_pem(&token, &options()).unwrap();
    assert_eq!(payload.get("sub"), Some(&json!("user_1")));
}

#[test]
fn every_verification_reason_matches_clerk() {
    let s = signer();
    let cases: Vec<(&str, String, &str)> = vec![
        ("two parts", "a.b".into(), "token-invalid"),
        ("four parts", "a.b.c.d".into(), "token-invalid"),
        ("not base64", "%%%.%%%.%%%".into(), "token-invalid"),
        (
            "header not an object",
            format!("{}.{}.c2ln", b64(&json!("x")), b64(&claims())),
            "token-invalid",
        ),
        (
            "typ not JWT",
            s.sign_with_header(&json!({"alg": "RS256", "typ": "at"}), &claims()),
            "token-invalid",
        ),
        (
            "typ null",
            s.sign_with_header(&json!({"alg": "RS256", "typ": null}), &claims()),
            "token-invalid",
        ),
        (
            "M2M category",
            s.sign_with_header(&json!({"alg": "RS256", "cat": CATEGORY_M2M}), &claims()),
            "token-invalid",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims())
            ),
            "token-invalid-algorithm",
        ),
        (
            "HS256 signed with the public key",
            hs256_with_public_key(),
            "token-invalid-algorithm",
        ),
        (
            "ES256",
            s.sign_with_header(&json!({"alg": "ES256", "typ": "JWT"}), &claims()),
            "token-invalid-algorithm",
        ),
        (
            "another key",
            other_signer().sign(&claims()),
            "token-invalid-signature",
        ),
        (
            "RS384 against the RS256-only PEM",
            s.sign_with_header(&json!({"alg": "RS384", "typ": "JWT"}), &claims()),
            "token-verification-failed",
        ),
        (
            "sub missing",
            s.sign(&with(claims(), json!({"sub": null}))),
            "token-verification-failed",
        ),
        (
            "sub a number",
            s.sign(&with(claims(), json!({"sub": 7}))),
            "token-verification-failed",
        ),
        (
            "azp missing",
            s.sign(&with(claims(), json!({"azp": null}))),
            "token-invalid-authorized-parties",
        ),
        (
            "azp foreign",
            s.sign(&with(claims(), json!({"azp": "https://evil.example"}))),
            "token-invalid-authorized-parties",
        ),
        (
            "exp missing",
            s.sign(&with(claims(), json!({"exp": null}))),
            "token-verification-failed",
        ),
        (
            "exp a string",
            s.sign(&with(claims(), json!({"exp": "9999999999"}))),
            "token-verification-failed",
        ),
        (
            "expired",
            s.sign(&with(claims(), json!({"exp": NOW_S - 6}))),
            "token-expired",
        ),
        (
            "nbf a string",
            s.sign(&with(claims(), json!({"nbf": "1"}))),
            "token-verification-failed",
        ),
        (
            "nbf ahead",
            s.sign(&with(claims(), json!({"nbf": NOW_S + 6}))),
            "token-not-active-yet",
        ),
        (
            "iat a bool",
            s.sign(&with(claims(), json!({"iat": true}))),
            "token-verification-failed",
        ),
        (
            "iat ahead",
            s.sign(&with(claims(), json!({"iat": NOW_S + 6}))),
            "token-iat-in-the-future",
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(reason_of(&token), want, "{name}");
    }
}

/// The classic confusion attack: HS256 with the RSA public key as the HMAC secret.
fn hs256_with_public_key() -> String {
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(&claims())
    );
    let secret = include_bytes!("../../../tests/fixtures/key1.pub.pem");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

#[test]
fn clock_skew_is_applied_at_the_exact_boundaries() {
    let s = signer();
    // exp <= now - skew is expired; one second later is not.
    let at_edge = s.sign(&with(claims(), json!({"exp": NOW_S - 5})));
    assert_eq!(reason_of(&at_edge), "token-expired");
    let inside = s.sign(&with(claims(), json!({"exp": NOW_S - 4})));
    assert!(verify_pem(&inside, &options()).is_ok());
    // nbf/iat > now + skew fail; exactly now + skew passes.
    let nbf_edge = s.sign(&with(claims(), json!({"nbf": NOW_S + 5, "iat": NOW_S + 5})));
    assert!(verify_pem(&nbf_edge, &options()).is_ok());
    // A zero skew is honoured.
    let zero = VerifyOptions {
        clock_skew_ms: 0,
        ..options()
    };
    let just_expired = s.sign(&with(claims(), json!({"exp": NOW_S})));
    assert_eq!(
        verify_pem(&just_expired, &zero).unwrap_err().reason,
        TokenErrorReason::TokenExpired
    );
}

#[test]
fn messages_are_clerks_words() {
    let s = signer();
    let expired = verify_pem(
        &s.sign(&with(claims(), json!({"exp": NOW_S - 3600}))),
        &options(),
    )
    .unwrap_err();
    assert_eq!(
        expired.full_message(TokenCarrier::Cookie),
        "JWT is expired. Expiry date: Thu, 26 Nov 2026 11:00:00 GMT, Current date: Thu, 26 Nov \
         2026 12:00:00 GMT. (reason=token-expired, token-carrier=cookie)"
    );
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
    assert_eq!(
        verify_pem(&none, &options())
            .unwrap_err()
            .full_message(TokenCarrier::Header),
        "Invalid JWT algorithm \"none\". Supported: RS256,RS384,RS512. Make sure that this is a \
         valid Clerk-generated JWT. (reason=token-invalid-algorithm, token-carrier=header)"
    );
    let action_only = TokenError {
        reason: TokenErrorReason::TokenInvalid,
        message: String::new(),
        action: Some(CONTACT_SUPPORT),
    };
    assert_eq!(
        action_only.full_message(TokenCarrier::Header),
        "Contact support@clerk.com (reason=token-invalid, token-carrier=header)",
        "no leading space without a message"
    );
    let azp = verify_pem(&s.sign(&with(claims(), json!({"azp": null}))), &options()).unwrap_err();
    assert_eq!(
        azp.message,
        "Invalid JWT Authorized party claim (azp) undefined. Expected \"http://localhost:3000\"."
    );
    let sub = verify_pem(&s.sign(&with(claims(), json!({"sub": 7}))), &options()).unwrap_err();
    assert_eq!(
        sub.message,
        "Subject claim (sub) is required and must be a string. Received 7."
    );
    let nbf = verify_pem(
        &s.sign(&with(claims(), json!({"nbf": NOW_S + 60}))),
        &options(),
    )
    .unwrap_err();
    assert_eq!(
        nbf.message,
        "JWT cannot be used prior to not before date claim (nbf). Not before date: Thu, 26 Nov \
         2026 12:01:00 GMT; Current date: Thu, 26 Nov 2026 12:00:00 GMT;"
    );
}

#[test]
fn audience_is_checked_only_when_both_sides_have_one() {
    let s = signer();
    let aud = VerifyOptions {
        audience: vec!["api".into()],
        ..options()
    };
    let check = |claims: Value| {
        verify_pem(&s.sign(&claims), &aud)
            .map(|_| ())
            .map_err(|e| e.reason)
    };
    assert_eq!(check(claims()), Ok(()));
    assert_eq!(check(with(claims(), json!({"aud": "api"}))), Ok(()));
    assert_eq!(check(with(claims(), json!({"aud": ["x", "api"]}))), Ok(()));
    assert_eq!(
        check(with(claims(), json!({"aud": "web"}))),
        Err(TokenErrorReason::TokenVerificationFailed)
    );
    assert_eq!(
        check(with(claims(), json!({"aud": ["web", "x"]}))),
        Err(TokenErrorReason::TokenVerificationFailed)
    );
    // With no configured audience any aud passes.
    assert!(verify_pem(&s.sign(&with(claims(), json!({"aud": "web"}))), &options()).is_ok());
}

#[test]
fn no_authorized_parties_accepts_any_azp() {
    let open = VerifyOptions {
        authorized_parties: vec![],
        ..options()
    };
    let token = signer().sign(&with(claims(), json!({"azp": null})));
    assert!(verify_pem(&token, &open).is_ok());
}

#[test]
fn jwks_keys_are_chosen_by_kid_and_unknown_kids_mismatch() {
    let (a, b) = (signer(), other_signer());
    let keys = JwksKeys::of(&[&a, &b]);
    let verify = |t: &str| block_on(verify_token(t, &keys, &options(), NOW_MS));
    assert!(verify(&a.sign(&claims())).is_ok());
    assert!(verify(&b.sign(&claims())).is_ok());
    let unknown = a.sign_with_header(&json!({"alg": "RS256", "kid": "ins_nope"}), &claims());
    let err = verify(&unknown).unwrap_err();
    assert_eq!(err.reason, TokenErrorReason::JwkKidMismatch);
    assert!(err.message.contains("kid='ins_nope'"), "{}", err.message);
    assert!(
        err.message.ends_with("ins_test_key1, ins_test_key2"),
        "{}",
        err.message
    );
    // Key resolution comes before the header checks, as in Clerk: alg none with an unknown
    // kid is a kid mismatch.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "zz"})),
        b64(&claims())
    );
    assert_eq!(
        verify(&none).unwrap_err().reason,
        TokenErrorReason::JwkKidMismatch
    );
}

#[test]
fn any_flipped_signature_byte_is_rejected() {
    let token = signer().sign(&claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    for i in [0, 100, raw.len() - 1] {
        raw[i] ^= 0x01;
        let forged = format!("{input}.{}", b64url(&raw));
        assert_eq!(reason_of(&forged), "token-invalid-signature", "byte {i}");
        raw[i] ^= 0x01;
    }
}

#[test]
fn padded_base64_parts_are_accepted_like_clerks_loose_parser() {
    let token = signer().sign(&claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let padded = format!("{input}.{sig}{}", "=".repeat((4 - sig.len() % 4) % 4));
    assert!(verify_pem(&padded, &options()).is_ok());
}

#[test]
fn machine_tokens_are_recognised() {
    let s = signer();
    let m2m = s.sign(&with(claims(), json!({"sub": "mch_1"})));
    assert!(Jwt::decode(&m2m).unwrap().is_machine_or_non_session());
    let oauth = s.sign_with_header(&json!({"alg": "RS256", "typ": "at+jwt"}), &claims());
    assert!(Jwt::decode(&oauth).unwrap().is_machine_or_non_session());
    let template = s.sign_with_header(
        &json!({"alg": "RS256", "cat": "cl_B7d4PD222AAA"}),
        &claims(),
    );
    assert!(Jwt::decode(&template).unwrap().is_machine_or_non_session());
    let session = s.sign_with_header(&json!({"alg": "RS256", "cat": CATEGORY_SESSION}), &claims());
    assert!(!Jwt::decode(&session).unwrap().is_machine_or_non_session());
    assert!(is_opaque_machine_token("mt_abc") && is_opaque_machine_token("ak_1"));
    assert!(!is_opaque_machine_token("eyJ"));
}

#[test]
fn each_claim_is_its_own_payload_slot() {
    let payload = Payload::from_map(
        Claim::ALL
            .iter()
            .map(|claim| (claim.name().to_owned(), json!(claim.name())))
            .collect(),
    );
    for claim in Claim::ALL {
        assert_eq!(
            payload.claim(claim),
            Some(&json!(claim.name())),
            "{claim:?}"
        );
    }
}

#[test]
fn a_payload_of_any_size_verifies_and_bad_base64_fails_at_every_size() {
    // Sizes about the stack buffer's 2048 bytes, and either side of them.
    let base = with(claims(), json!({"pad": ""})).to_string().len();
    let sizes = [0, 5000].into_iter().chain(2040 - base..2056 - base);
    for size in sizes {
        let token = signer().sign(&with(claims(), json!({"pad": "x".repeat(size)})));
        let payload = verify_pem(&token, &options()).unwrap();
        assert_eq!(
            payload.get("pad").and_then(Value::as_str).map(str::len),
            Some(size)
        );
        // `!` is no base64url digit, refused on the stack and on the heap alike; an extra
        // `A` leaves either a lone digit (no byte) or a byte after the JSON object.
        let (header, rest) = token.split_once('.').unwrap();
        let (body, signature) = rest.split_once('.').unwrap();
        for broken in [
            format!("{header}.!{body}.{signature}"),
            format!("{header}.{body}A.{signature}"),
        ] {
            assert_eq!(reason_of(&broken), "token-invalid", "size {size}");
        }
    }
}
