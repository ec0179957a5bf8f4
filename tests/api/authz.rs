//! Authorization at the edge: rules from the configuration file, `has()` requirements,
//! requirements on the auth URL, 403 answers and CORS preflights.

use serde_json::{Value, json};

use crate::helpers::*;

/// The README's example rules.
const RULES: &str = include_str!("../fixtures/example-rules.toml");

async fn app(extra: &[(&str, &str)]) -> (TestApp, ConfigFile) {
    let file = ConfigFile::new(RULES);
    let mut env = vec![("CLERK_JWT_KEY", PUBLIC_PEM)];
    env.extend_from_slice(extra);
    (TestApp::spawn_with_file(Some(&file.path), &env).await, file)
}

fn admin_token() -> String {
    token_with(
        &key1(),
        json!({"fea": "o:admin", "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "example", "fpm": "1"}, "fva": [2, -1]}),
    )
}

fn member_token() -> String {
    token_with(
        &key1(),
        json!({"o": {"id": "org_1", "slg": "acme", "rol": "member"}, "fva": [90, -1]}),
    )
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
    call_at(app, "/verify", "app.example.com", method, path, token).await
}

async fn call_at(
    app: &TestApp,
    auth_url: &str,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(auth_url))
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", path)
        .header("accept", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.send().await.unwrap()
}

async fn status_reason(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (
        status,
        header(&response, "x-clerk-auth-reason")
            .unwrap_or("")
            .to_owned(),
    )
}

#[tokio::test]
async fn a_public_route_lets_anyone_through_and_still_blanks_identity() {
    let (app, _f) = app(&[]).await;
    let anonymous = call(&app, "GET", "/public/page", None).await;
    assert_eq!(anonymous.status(), 200);
    assert_eq!(
        header(&anonymous, "x-clerk-auth-status"),
        Some("signed-out")
    );
    assert_eq!(
        header(&anonymous, "x-auth-user-id"),
        Some(""),
        "forged copies must be overwritten"
    );
    let signed_in = call(&app, "GET", "/assets/app.js", Some(&member_token())).await;
    assert_eq!(signed_in.status(), 200);
    assert_eq!(header(&signed_in, "x-auth-user-id"), Some("user_1"));
    // A bad token on a public route is just signed out.
    let bad = call(&app, "GET", "/public", Some(&token(&key2()))).await;
    assert_eq!(
        status_reason(bad).await,
        (200, "token-invalid-signature".into())
    );
}

#[tokio::test]
async fn a_missing_permission_is_403_and_the_permission_is_200() {
    let (app, _f) = app(&[]).await;
    let member = call(&app, "GET", "/admin/users", Some(&member_token())).await;
    assert_eq!(header(&member, "x-clerk-auth-status"), Some("signed-in"));
    let body: Value = {
        let (status, reason) = (
            member.status().as_u16(),
            header(&member, "x-clerk-auth-reason").map(str::to_owned),
        );
        assert_eq!(
            (status, reason.as_deref()),
            (403, Some("missing-permission"))
        );
        member.json().await.unwrap()
    };
    assert_eq!(body["reason"], "missing-permission");
    assert_eq!(
        call(&app, "GET", "/admin/users", Some(&admin_token()))
            .await
            .status(),
        200
    );
    // Signed out on a protected route is still a 401.
    assert_eq!(
        status_reason(call(&app, "GET", "/admin", None).await).await,
        (401, "session-token-and-uat-missing".into())
    );
}

#[tokio::test]
async fn normalised_paths_cannot_dodge_the_admin_rule() {
    let (app, _f) = app(&[]).await;
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin/x",
        "/ADMIN",
        "/public/..%2Fadmin",
        "//admin/",
    ] {
        let response = call(&app, "GET", path, Some(&member_token())).await;
        assert_eq!(response.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn any_groups_and_patterns() {
    let (app, _f) = app(&[]).await;
    assert_eq!(
        call(
            &app,
            "GET",
            "/orgs/acme/billing/invoices",
            Some(&admin_token())
        )
        .await
        .status(),
        200
    );
    let member = call(&app, "GET", "/orgs/acme/billing", Some(&member_token())).await;
    assert_eq!(status_reason(member).await, (403, "missing-role".into()));
}

#[tokio::test]
async fn a_stale_second_factor_gets_clerks_reverification_error() {
    let (app, _f) = app(&[]).await;
    let response = call(&app, "POST", "/settings/delete", Some(&member_token())).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        header(&response, "x-clerk-auth-reason"),
        Some("reverification-required")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"clerk_error": {"type": "forbidden", "reason": "reverification-error",
               "metadata": {"reverification": {"level": "second_factor", "afterMinutes": 10}}}})
    );
    assert_eq!(
        call(&app, "POST", "/settings/delete", Some(&admin_token()))
            .await
            .status(),
        200
    );
    // The rule only covers POST and DELETE.
    assert_eq!(
        call(&app, "GET", "/settings/delete", Some(&member_token()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_deny_rule_is_403_without_looking_at_the_token() {
    let (app, _f) = app(&[]).await;
    let response = call_at(
        &app,
        "/verify",
        "internal.example.com",
        "GET",
        "/",
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        status_reason(response).await,
        (403, "denied-by-rule".into())
    );
    let anonymous = call_at(&app, "/verify", "internal.example.com", "GET", "/", None).await;
    assert_eq!(anonymous.status(), 403);
}

#[tokio::test]
async fn the_auth_url_can_add_requirements() {
    let (app, _f) = app(&[]).await;
    let member = member_token();
    let admin = admin_token();
    let cases: Vec<(&str, &str, &str, u16)> = vec![
        ("/verify?role=admin", "/x", &member, 403),
        ("/verify?role=admin", "/x", &admin, 200),
        (
            "/verify?permission=org:admin:example&role=member",
            "/x",
            &admin,
            403,
        ),
        (
            "/verify?permission=org:admin:example&permission=org:admin:other",
            "/x",
            &admin,
            403,
        ),
        ("/verify?reverification=strict", "/x", &member, 403),
        ("/verify?feature=admin", "/x", &admin, 200),
        // Requirements on a public route make it need a session.
        ("/verify?role=admin", "/public", &member, 403),
    ];
    for (auth_url, path, token, want) in cases {
        let response = call_at(&app, auth_url, "app.example.com", "GET", path, Some(token)).await;
        assert_eq!(response.status(), want, "{auth_url} {path}");
    }
    let anonymous = call_at(
        &app,
        "/verify?role=admin",
        "app.example.com",
        "GET",
        "/public",
        None,
    )
    .await;
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn nothing_in_a_query_can_relax_a_rule() {
    let (app, _f) = app(&[]).await;
    for auth_url in [
        "/verify?action=public",
        "/verify?public=1",
        "/verify?default=public",
        "/verify?role=",
    ] {
        let response = call_at(&app, auth_url, "app.example.com", "GET", "/admin", None).await;
        assert_eq!(response.status(), 400, "{auth_url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["reason"], "invalid-auth-url");
    }
    let named = call_at(
        &app,
        "/verify?publik=1",
        "app.example.com",
        "GET",
        "/",
        None,
    )
    .await;
    let body: Value = named.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("`publik`"),
        "{body}"
    );
}

#[tokio::test]
async fn the_envoy_form_never_reads_the_query_as_requirements() {
    let (app, _f) = app(&[("CLERK_FA_FORWARDED_HEADERS", "path")]).await;
    // Envoy appends the original path and query: `role=admin` belongs to the app.
    let response = app
        .client
        .get(app.url("/verify/page?role=admin&whatever=1"))
        .header("host", "app.example.com")
        .header("authorization", format!("Bearer {}", member_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let public = app
        .client
        .get(app.url("/verify/public/x?action=deny"))
        .header("host", "a")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
}

#[tokio::test]
async fn cors_preflights_pass_only_when_allowed() {
    let preflight = |app: &TestApp| {
        app.client
            .get(app.url("/verify"))
            .header("x-forwarded-method", "OPTIONS")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", "/api/x")
            .header("origin", "https://web.example.com")
            .header("access-control-request-method", "POST")
            .send()
    };
    let (off, _f1) = app(&[]).await;
    assert_eq!(preflight(&off).await.unwrap().status(), 401);
    let (on, _f2) = app(&[("CLERK_FA_ALLOW_CORS_PREFLIGHT", "true")]).await;
    let response = preflight(&on).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-auth-user-id"), Some(""));
    // An OPTIONS without the preflight headers is not a preflight.
    let plain = on
        .client
        .get(on.url("/verify"))
        .header("x-forwarded-method", "OPTIONS")
        .header("x-forwarded-uri", "/api/x")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
}

#[tokio::test]
async fn a_default_of_public_still_applies_rules() {
    let (app, _f) = app(&[("CLERK_FA_DEFAULT_ACTION", "public")]).await;
    assert_eq!(call(&app, "GET", "/anything", None).await.status(), 200);
    assert_eq!(call(&app, "GET", "/admin", None).await.status(), 401);
}

#[test]
fn invalid_rules_are_reported_by_rule() {
    let file = ConfigFile::new(
        r#"
[[authorization.rules]]
name = "bad"
path = "no-slash"
action = "maybe"
reverification = "sometimes"

[[authorization.rules]]
path_pattern = "/a/("
permission = "x"
action = "public"
"#,
    );
    let env: std::collections::HashMap<String, String> =
        [("CLERK_PUBLISHABLE_KEY".to_owned(), PROD_PK.to_owned())]
            .into_iter()
            .collect();
    let err = clerk_forward_auth::config::Settings::load(Some(&file.path), &env).unwrap_err();
    let text = err.to_string();
    for needle in [
        "authorization.rules[0] (bad): action `maybe`",
        "authorization.rules[0] (bad): path `no-slash` must start with `/`",
        "authorization.rules[0] (bad): reverification must be",
        "authorization.rules[1] (rule-2): invalid path pattern",
        "authorization.rules[1] (rule-2): a `public` rule cannot have requirements",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
