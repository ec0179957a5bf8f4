//! Rule matching: hosts, methods, path kinds, normalisation, and auth-URL requirements.

use super::*;

fn rule(name: &str, paths: PathMatch, action: Action) -> Rule {
    Rule {
        name: Arc::from(name),
        hosts: Vec::new(),
        paths,
        case_sensitive: false,
        methods: Vec::new(),
        action,
        requirements: Requirements::default(),
    }
}

fn admin_permission() -> Requirements {
    Requirements {
        all: vec![HasParams {
            permission: Some("org:admin:access".into()),
            ..HasParams::default()
        }],
        any: Vec::new(),
    }
}

fn policy() -> Policy {
    let mut admin = rule(
        "admin",
        PathMatch::Prefix(vec!["/admin".into()]),
        Action::SignedIn,
    );
    admin.requirements = admin_permission();
    let mut internal = rule("internal", PathMatch::Any, Action::Deny);
    internal.hosts = vec!["internal.example.com".into()];
    let mut shop = rule("shop", PathMatch::Any, Action::Public);
    shop.hosts = vec!["*.shop.example.com".into()];
    let mut webhooks = rule(
        "webhooks",
        PathMatch::Exact(vec!["/webhooks".into()]),
        Action::Public,
    );
    webhooks.methods = vec!["POST".into()];
    Policy {
        rules: vec![
            internal,
            admin,
            rule(
                "public",
                PathMatch::Prefix(vec!["/public/".into()]),
                Action::Public,
            ),
            rule(
                "health",
                PathMatch::Exact(vec!["/healthz".into()]),
                Action::Public,
            ),
            rule(
                "orgs",
                PathMatch::Pattern(PathPatterns::compile(&["/orgs/:slug/(.*)"]).unwrap()),
                Action::SignedIn,
            ),
            webhooks,
            shop,
        ],
        ..Policy::default()
    }
}

fn name(method: &str, host: &str, path: &str) -> String {
    policy().matched(method, host, path).names.to_string()
}

#[test]
fn the_first_matching_rule_wins_and_the_default_is_signed_in() {
    assert_eq!(name("GET", "app.example.com", "/admin/users"), "admin");
    assert_eq!(name("GET", "internal.example.com", "/admin"), "internal");
    let policy = policy();
    let m = policy.matched("GET", "app.example.com", "/elsewhere");
    assert_eq!(
        (m.names.to_string(), m.action),
        ("default".to_owned(), Action::SignedIn)
    );
}

#[test]
fn host_wildcards_match_subdomains_not_the_apex() {
    assert_eq!(name("GET", "a.shop.example.com", "/x"), "shop");
    assert_eq!(name("GET", "a.b.shop.example.com:8443", "/x"), "shop");
    assert_eq!(name("GET", "shop.example.com", "/x"), "default");
    assert_eq!(name("GET", "evilshop.example.com", "/x"), "default");
    assert_eq!(name("GET", "INTERNAL.example.com:443", "/"), "internal");
    assert_eq!(name("GET", "internal.example.com.", "/"), "internal");
    assert_eq!(name("GET", "A.Shop.EXAMPLE.com", "/x"), "shop");
    // Byte comparison: a multi-byte character where the suffix would start cannot panic.
    assert_eq!(name("GET", "é.shop.example.com", "/x"), "shop");
    assert_eq!(name("GET", "éxample.com", "/x"), "default");
}

#[test]
fn methods_filter_rules() {
    assert_eq!(name("POST", "h", "/webhooks"), "webhooks");
    assert_eq!(name("post", "h", "/webhooks"), "webhooks");
    assert_eq!(name("GET", "h", "/webhooks"), "default");
}

#[test]
fn exact_and_prefix_paths_ignore_trailing_slashes_and_respect_segments() {
    assert_eq!(name("GET", "h", "/healthz/"), "health");
    assert_eq!(name("GET", "h", "/healthz/x"), "default");
    assert_eq!(name("GET", "h", "/admin"), "admin");
    assert_eq!(name("GET", "h", "/admin/"), "admin");
    assert_eq!(name("GET", "h", "/administrator"), "default");
    assert_eq!(name("GET", "h", "/public"), "public");
    assert_eq!(name("GET", "h", "/public/css/a.css"), "public");
}

#[test]
fn paths_match_case_insensitively_unless_asked() {
    assert_eq!(name("GET", "h", "/ADMIN/users"), "admin");
    let mut p = policy();
    p.rules[1].case_sensitive = true;
    assert_eq!(
        p.matched("GET", "h", "/ADMIN/users").names.to_string(),
        "default"
    );
}

#[test]
fn dot_segments_cannot_escape_a_protected_prefix() {
    assert_eq!(name("GET", "h", "/public/../admin/users"), "admin");
    assert_eq!(name("GET", "h", "/public/%2e%2e/admin"), "admin");
    assert_eq!(name("GET", "h", "/public/./../admin"), "admin");
    assert_eq!(name("GET", "h", "//admin"), "admin");
    assert_eq!(name("GET", "h", "/%61dmin"), "admin");
    assert_eq!(name("GET", "h", "/../../admin"), "admin");
}

#[test]
fn query_and_fragment_are_not_part_of_the_path() {
    assert_eq!(name("GET", "h", "/healthz?x=/admin"), "health");
    assert_eq!(name("GET", "h", "/healthz#/admin"), "health");
}

#[test]
fn an_encoded_slash_is_read_both_ways_and_the_strictest_wins() {
    // An upstream that decodes %2F serves /admin/users; one that does not serves a file
    // under /public/. Both rules apply.
    let policy = policy();
    let m = policy.matched("GET", "h", "/public/..%2Fadmin%2Fusers");
    assert_eq!(m.names.to_string(), "admin+public");
    assert_eq!(m.action, Action::SignedIn);
    assert_eq!(m.requirements().collect::<Vec<_>>(), [&admin_permission()]);
    let m = policy.matched("GET", "h", "/public%2F..%2Finternal");
    assert!(m.action != Action::Public);
    assert_eq!(readings("/a%5Cb").collect::<Vec<_>>(), ["/a/b", "/a%5Cb"]);
}

#[test]
fn patterns_match_after_normalisation() {
    assert_eq!(name("GET", "h", "/orgs/acme/settings"), "orgs");
    assert_eq!(name("GET", "h", "/x/../ORGS/acme/settings"), "orgs");
}

#[test]
fn query_requirements_only_add() {
    let reqs = query_requirements(
        "permission=org:a:b&permission=org:c:d&role=admin&reverification=strict",
    )
    .unwrap();
    assert_eq!(reqs.len(), 4);
    let policy = policy();
    let mut public = policy.matched("GET", "h", "/healthz");
    assert_eq!(public.action, Action::Public);
    public.add(reqs);
    assert_eq!(public.action, Action::SignedIn);
    let mut admin = policy.matched("GET", "h", "/admin");
    admin.add(vec![]);
    assert_eq!(
        admin.requirements().collect::<Vec<_>>(),
        [&admin_permission()]
    );
}

#[test]
fn unknown_or_malformed_query_requirements_are_named() {
    assert_eq!(
        query_requirements("public=1"),
        Err(QueryError::Unknown("public".into()))
    );
    assert_eq!(
        query_requirements("x=1&role=a"),
        Err(QueryError::Unknown("x".into()))
    );
    assert_eq!(
        query_requirements("reverification=sometimes"),
        Err(QueryError::Invalid {
            name: "reverification".into(),
            value: "sometimes".into()
        })
    );
    assert!(matches!(
        query_requirements("role="),
        Err(QueryError::Invalid { .. })
    ));
    assert_eq!(query_requirements(""), Ok(vec![]));
}

#[test]
fn any_groups_need_one_and_all_groups_need_every_item() {
    let user = SessionAuth {
        user_id: "u".into(),
        org_id: Some("o".into()),
        org_role: Some("org:member".into()),
        plans: Some("u:pro".into()),
        ..SessionAuth::default()
    };
    let role = |r: &str| HasParams {
        role: Some(r.into()),
        ..HasParams::default()
    };
    let plan = |p: &str| HasParams {
        plan: Some(p.into()),
        ..HasParams::default()
    };
    let any = Requirements {
        all: vec![],
        any: vec![role("admin"), plan("pro")],
    };
    assert_eq!(any.check(&user), Ok(()));
    let none = Requirements {
        all: vec![],
        any: vec![role("admin"), plan("enterprise")],
    };
    assert_eq!(none.check(&user), Err(Missing::Role));
    let all = Requirements {
        all: vec![role("member"), plan("enterprise")],
        any: vec![],
    };
    assert_eq!(all.check(&user), Err(Missing::Plan));
}

proptest::proptest! {
    /// The borrowed fast path answers exactly as resolving every path would.
    #[test]
    fn a_path_is_borrowed_only_when_already_normal(path in "[/.a%]{0,12}") {
        let resolved = normalise_into_new(&path);
        proptest::prop_assert_eq!(&*normalise(&path), resolved.as_str());
        proptest::prop_assert_eq!(is_normal(&path), resolved == path);
    }
}
