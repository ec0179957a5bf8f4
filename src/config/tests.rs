//! Tests for loading and validating settings.

use super::*;

const PK: &str = "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk";
const PEM: &str = include_str!("../../tests/fixtures/key1.pub.pem");

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<(Settings, Warnings), ConfigError> {
    Settings::load(None, &env(pairs))
}

#[test]
fn defaults_with_only_a_publishable_key_use_the_frontend_api_jwks() {
    let (s, w) = load(&[("CLERK_PUBLISHABLE_KEY", PK)]).unwrap();
    assert!(w.0.is_empty());
    match s.keys {
        KeySettings::Jwks { url, secret_key } => {
            assert_eq!(
                url.as_str(),
                "https://foo-bar-13.clerk.accounts.dev/.well-known/jwks.json"
            );
            assert!(secret_key.is_none());
        }
        KeySettings::Pem(_) => panic!("expected a JWKS"),
    }
    assert_eq!(s.clerk.verify.clock_skew_ms, 5000);
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.headers.user_id, "X-Auth-User-Id");
}

#[test]
fn the_vector_rsa_check_is_on_unless_turned_off() {
    let (s, _) = load(&[("CLERK_PUBLISHABLE_KEY", PK)]).unwrap();
    assert!(s.vector_rsa);
    let (s, _) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_FA_VECTOR_RSA", "false"),
    ])
    .unwrap();
    assert!(!s.vector_rsa);
    let err = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_FA_VECTOR_RSA", "avx"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("keys.vector_rsa"), "{err}");
}

#[test]
fn a_secret_key_selects_the_backend_api_jwks() {
    let (s, _) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_SECRET_KEY", "sk_test_abc"),
        ("CLERK_API_URL", "http://127.0.0.1:9/"),
        ("CLERK_API_VERSION", "v1"),
    ])
    .unwrap();
    let KeySettings::Jwks { url, secret_key } = s.keys else {
        panic!()
    };
    assert_eq!(url.as_str(), "http://127.0.0.1:9/v1/jwks");
    assert_eq!(secret_key.unwrap().expose(), "sk_test_abc");
}

#[test]
fn a_jwt_key_with_escaped_newlines_is_networkless() {
    let escaped = PEM.replace('\n', "\\n");
    let (s, _) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_SECRET_KEY", "sk_test_abc"),
        ("CLERK_JWT_KEY", &escaped),
    ])
    .unwrap();
    assert!(matches!(s.keys, KeySettings::Pem(_)));
}

#[test]
fn lists_are_comma_separated_in_the_environment() {
    let (s, _) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        (
            "CLERK_AUTHORIZED_PARTIES",
            "https://a.example.com, http://localhost:3000",
        ),
        ("CLERK_AUDIENCE", "x,y"),
        ("CLERK_CLOCK_SKEW_MS", "0"),
    ])
    .unwrap();
    assert_eq!(
        s.clerk.verify.authorized_parties,
        ["https://a.example.com", "http://localhost:3000"]
    );
    assert_eq!(s.clerk.verify.audience, ["x", "y"]);
    assert_eq!(s.clerk.verify.clock_skew_ms, 0);
}

#[test]
fn every_problem_is_reported_at_once_naming_key_and_variable() {
    let err = load(&[
        ("CLERK_PUBLISHABLE_KEY", "pk_nope"),
        (
            "CLERK_JWT_KEY",
            "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----",
        ),
        ("CLERK_API_URL", "not a url"),
        ("CLERK_CLOCK_SKEW_MS", "soon"),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example.com/"),
        ("CLERK_DOMAIN", "https://satellite.example.com"),
        ("CLERK_FA_LISTEN", "nowhere"),
        ("CLERK_FA_HEADER_USER_ID", "X_Auth_User"),
        ("CLERK_FA_LOG_FORMAT", "xml"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "clerk.publishable_key (CLERK_PUBLISHABLE_KEY)",
        "clerk.jwt_key (CLERK_JWT_KEY)",
        "clerk.api_url (CLERK_API_URL)",
        "clerk.clock_skew_ms (CLERK_CLOCK_SKEW_MS)",
        "clerk.authorized_parties (CLERK_AUTHORIZED_PARTIES)",
        "clerk.domain (CLERK_DOMAIN)",
        "server.listen (CLERK_FA_LISTEN)",
        "headers.user_id (CLERK_FA_HEADER_USER_ID)",
        "log.format (CLERK_FA_LOG_FORMAT)",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    assert_eq!(err.problems.len(), 9, "{text}");
}

#[test]
fn a_missing_publishable_key_is_an_error() {
    let err = load(&[]).unwrap_err();
    assert!(err.to_string().contains("CLERK_PUBLISHABLE_KEY"), "{err}");
}

#[test]
fn unknown_variables_under_our_prefix_are_warned_about() {
    let (_, w) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_FA_LISTNE", "x"),
        ("CLERK_TELEMETRY_DISABLED", "1"),
    ])
    .unwrap();
    assert_eq!(w.0.len(), 1);
    assert!(w.0[0].contains("CLERK_FA_LISTNE"));
}

#[test]
fn a_file_is_layered_under_the_environment() {
    let dir = std::env::temp_dir().join(format!("cfa-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("c.toml");
    std::fs::write(
        &toml,
        format!(
            "[clerk]\npublishable_key = \"{PK}\"\nauthorized_parties = [\"https://a.example.com\"]\n\
             [server]\nlisten = \"127.0.0.1:9999\"\nlisten_typo = 1\n"
        ),
    )
    .unwrap();
    let (s, w) =
        Settings::load(Some(&toml), &env(&[("CLERK_FA_LISTEN", "127.0.0.1:7777")])).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:7777");
    assert_eq!(s.clerk.verify.authorized_parties, ["https://a.example.com"]);
    assert_eq!(
        w.0,
        ["unknown configuration key server.listen_typo (ignored)"]
    );

    let yaml = dir.join("c.yaml");
    std::fs::write(
        &yaml,
        format!("clerk:\n  publishable_key: {PK}\n  clock_skew_ms: 100\n"),
    )
    .unwrap();
    let (s, _) = Settings::load(Some(&yaml), &env(&[])).unwrap();
    assert_eq!(s.clerk.verify.clock_skew_ms, 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_is_redacted_in_debug_output() {
    let (s, _) = load(&[
        ("CLERK_PUBLISHABLE_KEY", PK),
        ("CLERK_SECRET_KEY", "sk_test_very_secret"),
    ])
    .unwrap();
    assert!(!format!("{s:?}").contains("very_secret"));
}

/// The README's configuration table, generated from `SETTINGS`.
fn settings_table() -> String {
    let mut table = String::from(
        "| File key | Environment variable | Default | Meaning |\n|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let default = match s.default {
            None | Some("") => "—".to_owned(),
            Some(d) => format!("`{d}`"),
        };
        table.push_str(&format!(
            "| `{}` | `{}` | {default} | {} |\n",
            s.key, s.env, s.meaning
        ));
    }
    table
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = include_str!("../../README.md");
    let table = settings_table();
    assert!(
        readme.contains(&table),
        "README.md's configuration table is stale; replace it with:\n\n{table}"
    );
}
