//! The monitoring kit in `deploy/`: the Grafana dashboard, the Prometheus alerts and their
//! unit-test series name only metrics, labels and label values the running service exports.
//! The service is first driven through every kind of event, so that each labelled series
//! exists when `/metrics` is scraped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::*;

const METRIC_PREFIX: &str = "clerk_forward_auth_";

/// Labels Prometheus attaches at scrape time (the dashboard's variables filter on them).
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Series name (as scraped, `_bucket` and all) → label name → the values seen.
type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn deploy_file(path: &str) -> String {
    let path = format!("{}/deploy/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A YAML file through the `config` crate's YAML support (the service reads YAML
/// configuration with it), as JSON.
fn yaml(path: &str) -> Value {
    ::config::Config::builder()
        .add_source(::config::File::from_str(
            &deploy_file(path),
            ::config::FileFormat::Yaml,
        ))
        .build()
        .and_then(::config::Config::try_deserialize::<Value>)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------
// The exposition format.

fn parse_exposition(text: &str, into: &mut Exported) {
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(end) = line.find(['{', ' ']) else {
            continue;
        };
        let (name, rest) = line.split_at(end);
        let labels = into.entry(name.to_owned()).or_default();
        if let Some(body) = rest.strip_prefix('{') {
            let body = &body[..body.rfind('}').expect("a closing brace")];
            for (label, value) in label_pairs(body) {
                labels.entry(label).or_default().insert(value);
            }
        }
    }
}

/// `a="x",b="y\"z"` → pairs.
fn label_pairs(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',' | ' ')) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} in {body}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => {}
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name.trim().to_owned(), value));
    }
}

/// The metric family a series belongs to: histogram series lose their suffix.
fn family<'a>(series: &'a str, exported: &Exported) -> &'a str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            series
                .strip_suffix(suffix)
                .filter(|base| exported.contains_key(&format!("{base}_bucket")))
        })
        .unwrap_or(series)
}

// ---------------------------------------------------------------------------------------
// Just enough PromQL: the metric selectors with their matchers, and the grouping labels.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// A Grafana variable: `$job`, `${datasource}`, `$__rate_interval`.
    Var,
    Num,
    Op(String),
    Open(char),
    Close(char),
    Comma,
}

fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if matches!(c, '"' | '\'' | '`') {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("an unterminated string in `{expr}`"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' && c != '`' {
                    if let Some(&escaped) = chars.get(i) {
                        s.push(escaped);
                        i += 1;
                    }
                } else {
                    s.push(d);
                }
            }
            out.push(Tok::Str(s));
        } else if c == '[' {
            // A range or subquery: durations and variables only.
            let Some(n) = chars[i..].iter().position(|&d| d == ']') else {
                return Err(format!("an unclosed `[` in `{expr}`"));
            };
            i += n + 1;
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && word(chars[i]) {
                    i += 1;
                }
            }
            out.push(Tok::Var);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers, exponents and durations (`1e-9`, `0.005`, `15m`).
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            out.push(Tok::Num);
        } else if word(c) {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            match c {
                '(' | '{' => out.push(Tok::Open(c)),
                ')' | '}' => out.push(Tok::Close(c)),
                ',' => out.push(Tok::Comma),
                _ => {
                    let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                    let op = if ["=~", "!~", "!=", "==", "<=", ">="].contains(&two.as_str()) {
                        two
                    } else if "=<>+-*/%^".contains(c) {
                        c.to_string()
                    } else {
                        return Err(format!("an unexpected `{c}` in `{expr}`"));
                    };
                    i += op.chars().count();
                    out.push(Tok::Op(op));
                    continue;
                }
            }
            i += 1;
        }
    }
    Ok(out)
}

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const FUNCTIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "histogram_quantile",
    "clamp",
    "clamp_min",
    "clamp_max",
    "abs",
    "ceil",
    "floor",
    "round",
    "vector",
    "scalar",
    "time",
    "timestamp",
    "absent",
    "absent_over_time",
    "present_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "predict_linear",
    "sort",
    "sort_desc",
];

const KEYWORDS: [&str; 5] = ["and", "or", "unless", "offset", "bool"];

/// A metric selector: `name{label op "value", ...}`.
#[derive(Debug, PartialEq)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default, PartialEq)]
struct Refs {
    selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: BTreeSet<String>,
}

/// The metrics and labels `expr` refers to. Any other bare word must be a PromQL function
/// or keyword, so a metric outside the namespace (or a misspelt prefix) is an error too.
fn references(expr: &str) -> Result<Refs, String> {
    let toks = lex(expr)?;
    let mut refs = Refs::default();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(word) if GROUPING.contains(&word.as_str()) => {
                i += 1;
                if toks.get(i) == Some(&Tok::Open('(')) {
                    i += 1;
                    loop {
                        match toks.get(i) {
                            Some(Tok::Ident(label)) => {
                                refs.grouping.insert(label.clone());
                            }
                            Some(Tok::Comma) => {}
                            Some(Tok::Close(')')) => break,
                            other => {
                                return Err(format!("{other:?} in `{word} (...)` of `{expr}`"));
                            }
                        }
                        i += 1;
                    }
                }
            }
            Tok::Ident(name) if name.starts_with(METRIC_PREFIX) => {
                let mut matchers = Vec::new();
                if toks.get(i + 1) == Some(&Tok::Open('{')) {
                    i += 2;
                    loop {
                        match (toks.get(i), toks.get(i + 1), toks.get(i + 2)) {
                            (Some(Tok::Close('}')), _, _) => break,
                            (Some(Tok::Comma), _, _) => i += 1,
                            (Some(Tok::Ident(label)), Some(Tok::Op(op)), Some(Tok::Str(value))) => {
                                matchers.push((label.clone(), op.clone(), value.clone()));
                                i += 3;
                            }
                            _ => {
                                return Err(format!("unreadable matchers on `{name}` in `{expr}`"));
                            }
                        }
                    }
                }
                refs.selectors.push(Selector {
                    name: name.clone(),
                    matchers,
                });
            }
            Tok::Ident(word)
                if FUNCTIONS.contains(&word.as_str()) || KEYWORDS.contains(&word.as_str()) => {}
            Tok::Ident(word) => {
                return Err(format!(
                    "`{word}` in `{expr}` is neither a {METRIC_PREFIX}* metric nor a PromQL \
                     function or keyword"
                ));
            }
            Tok::Open('{') => return Err(format!("a selector with no metric name in `{expr}`")),
            _ => {}
        }
        i += 1;
    }
    if refs.selectors.is_empty() {
        return Err(format!("`{expr}` names no {METRIC_PREFIX}* metric"));
    }
    Ok(refs)
}

/// The names inside `{{ ... }}` templates, with `prefix` stripped (`$labels.` in alert
/// annotations, nothing in Grafana legends); other template expressions are skipped.
fn template_labels(text: &str, prefix: &str) -> Vec<String> {
    text.split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .filter_map(|(inside, _)| inside.trim().strip_prefix(prefix).map(str::to_owned))
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect()
}

/// Checks expressions against what the service exports, collecting every problem (so one
/// run lists them all) and the metric families used.
struct Checker<'a> {
    exported: &'a Exported,
    problems: Vec<String>,
    used: BTreeSet<String>,
}

impl Checker<'_> {
    /// Checks one expression; returns what it refers to and the labels its series can carry
    /// (for templates), or `None` if it could not be read.
    fn expr(&mut self, context: &str, expr: &str) -> Option<(Refs, BTreeSet<String>)> {
        let refs = match references(expr) {
            Ok(refs) => refs,
            Err(problem) => {
                self.problems.push(format!("{context}: {problem}"));
                return None;
            }
        };
        let mut available: BTreeSet<String> = TARGET_LABELS.map(str::to_owned).into();
        for Selector { name, matchers } in &refs.selectors {
            let Some(labels) = self.exported.get(name) else {
                self.problems.push(format!(
                    "{context}: `{name}` is not a series the service exports (exported: {})",
                    self.exported.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            self.used.insert(family(name, self.exported).to_owned());
            available.extend(labels.keys().cloned());
            for (label, op, value) in matchers {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                let Some(seen) = labels.get(label) else {
                    self.problems.push(format!(
                        "{context}: `{name}` has no label `{label}` (its labels: {:?})",
                        labels.keys().collect::<Vec<_>>()
                    ));
                    continue;
                };
                let plain = |c: char| c.is_ascii_alphanumeric() || "_-.+".contains(c);
                let wanted: Vec<&str> = if value.contains('$') {
                    Vec::new() // a Grafana variable
                } else if op.contains('~') {
                    // Plain alternatives are checked one by one; a real regex is not.
                    if value.chars().all(|c| plain(c) || c == '|') {
                        value.split('|').collect()
                    } else {
                        Vec::new()
                    }
                } else {
                    vec![value.as_str()]
                };
                for value in wanted {
                    if !seen.contains(value) {
                        self.problems.push(format!(
                            "{context}: `{name}` never has {label}=\"{value}\" (seen: {seen:?})"
                        ));
                    }
                }
            }
        }
        for label in &refs.grouping {
            if !available.contains(label) {
                self.problems.push(format!(
                    "{context}: grouping label `{label}` is on none of the series in `{expr}`"
                ));
            }
        }
        Some((refs, available))
    }

    fn templates(&mut self, context: &str, text: &str, prefix: &str, available: &BTreeSet<String>) {
        for label in template_labels(text, prefix) {
            if !available.contains(&label) {
                self.problems.push(format!(
                    "{context}: template names `{label}`, which its series do not carry"
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The service, driven through every kind of event.

/// A page load through the proxy, as a browser makes it.
async fn page(app: &TestApp, uri: &str, cookie: &str) -> reqwest::Response {
    app.verify(&[
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", uri),
        ("sec-fetch-dest", "document"),
        ("accept", "text/html"),
        ("cookie", cookie),
    ])
    .await
}

fn expired_token() -> String {
    let now = now_s();
    token_with(
        &key1(),
        json!({"iat": now - 120, "nbf": now - 130, "exp": now - 60}),
    )
}

/// Every series the service exports once it has allowed, denied, redirected, failed,
/// cached, refreshed, resolved handshakes and reloaded, across three instances: keys from
/// a healthy Backend API, a rejected secret key, and an unreachable Backend API.
async fn everything_exported() -> Exported {
    let mut exported = Exported::new();

    let clerk = FakeClerk::start(&[&key1()]).await;
    let file = ConfigFile::new("");
    let env = clerk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with_file(Some(&file.path), &env).await;
    app.wait_ready(200).await;

    let session = token(&key1());
    assert_eq!(app.bearer(&session).await.status(), 200, "a cache miss");
    assert_eq!(app.bearer(&session).await.status(), 200, "a cache hit");
    assert_eq!(app.bearer(&expired_token()).await.status(), 401);
    assert_eq!(app.verify(&[]).await.status(), 401);
    let bad = app
        .client
        .get(app.url("/verify?action=public"))
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // An expired session on a page load: the handshake redirect.
    let now = now_s();
    let expired = format!("__session={}; __client_uat={}", expired_token(), now - 600);
    assert_eq!(page(&app, "/p", &expired).await.status(), 307);
    // The same with a refresh cookie: refreshed on the server.
    let refreshable = format!("{expired}; __refresh_naoXFJnI=rt_valid");
    assert_eq!(page(&app, "/p", &refreshable).await.status(), 307);
    // Back from the Frontend API with a nonce: resolved, and the return redirect.
    let url = url::Url::parse_with_params(
        &format!("{}/v1/client/handshake", clerk.base),
        &[
            ("redirect_url", "https://app.example.com/h"),
            ("format", "nonce"),
        ],
    )
    .unwrap();
    let fapi = app.client.get(url).send().await.unwrap();
    let back = url::Url::parse(header(&fapi, "location").unwrap()).unwrap();
    assert_eq!(
        page(&app, &back[url::Position::BeforePath..], "")
            .await
            .status(),
        307
    );
    // A nonce Clerk does not know.
    page(&app, "/h?__clerk_handshake_nonce=bogus", "").await;

    app.reloader.reload().unwrap();
    file.write(
        "[[authorization.rules]]\nname = \"x\"\npath_prefix = \"/x\"\naction = \"sometimes\"\n",
    );
    app.reloader.reload().unwrap_err();
    parse_exposition(&app.metrics().await, &mut exported);

    // A secret key Clerk rejects: no keys, so 503s.
    let rejected = TestApp::spawn(&[
        ("CLERK_SECRET_KEY", "sk_test_wrong"),
        ("CLERK_API_URL", &clerk.base),
        ("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"),
    ])
    .await;
    assert_eq!(rejected.bearer(&session).await.status(), 503);
    parse_exposition(&rejected.metrics().await, &mut exported);

    // A Backend API nobody answers at (port 1: nothing listens there, and no unprivileged
    // test can bind it).
    let unreachable = TestApp::spawn(&[
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", "http://127.0.0.1:1"),
        ("CLERK_FA_JWKS_MIN_REFETCH_MS", "0"),
    ])
    .await;
    assert_eq!(unreachable.bearer(&session).await.status(), 503);
    parse_exposition(&unreachable.metrics().await, &mut exported);

    exported
}

// ---------------------------------------------------------------------------------------
// The checks.

fn check_dashboard(checker: &mut Checker<'_>) {
    let dashboard: Value = serde_json::from_str(&deploy_file("grafana/dashboard.json"))
        .expect("dashboard.json is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["uid"], "clerk-forward-auth");

    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(
        (&datasource["name"], &datasource["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let mut filters = Vec::new();
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let name = variable["name"].as_str().unwrap();
        let context = format!("dashboard variable ${name}");
        assert_eq!(variable["datasource"]["uid"], "${datasource}", "{context}");
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap();
        let (selector, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .unwrap_or_else(|| panic!("{context}: not label_values(selector, label): {query}"));
        if let Some((_, available)) = checker.expr(&context, selector) {
            assert!(available.contains(label.trim()), "{context}: {label}");
        }
        filters.push(name.to_owned());
    }
    assert_eq!(
        filters, TARGET_LABELS,
        "the dashboard filters on the target labels"
    );

    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{title} is wider than the grid"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let context = format!("panel \"{title}\", query {}", target["refId"]);
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{context}");
            let expr = target["expr"].as_str().unwrap();
            queries += 1;
            let Some((refs, available)) = checker.expr(&context, expr) else {
                continue;
            };
            for selector in &refs.selectors {
                for filter in &filters {
                    let wanted = (filter.clone(), "=~".to_owned(), format!("${filter}"));
                    if !selector.matchers.contains(&wanted) {
                        checker.problems.push(format!(
                            "{context}: `{}` is not filtered by {filter}=~\"${filter}\"",
                            selector.name
                        ));
                    }
                }
            }
            let legend = target["legendFormat"].as_str().unwrap_or("");
            checker.templates(&context, legend, "", &available);
        }
    }
    assert!(queries >= 20, "only {queries} queries");
}

fn check_alerts(checker: &mut Checker<'_>) {
    let rules = yaml("prometheus/alerts.yaml");
    let mut names = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rules only");
            let context = format!("alert {name}");
            assert!(names.insert(name.to_owned()), "duplicate {context}");
            assert!(rule["for"].is_string(), "{context}: no `for`");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("warning" | "critical")),
                "{context}: severity {severity:?}"
            );
            let Some((_, available)) = checker.expr(&context, rule["expr"].as_str().unwrap())
            else {
                continue;
            };
            for key in ["summary", "description", "runbook"] {
                let text = rule["annotations"][key].as_str().unwrap_or("");
                assert!(!text.trim().is_empty(), "{context}: no {key} annotation");
                checker.templates(&context, text, "$labels.", &available);
            }
        }
    }
    for wanted in [
        "ClerkForwardAuthNotReady",
        "ClerkForwardAuthKeysStale",
        "ClerkForwardAuthJwksFetchFailing",
        "ClerkForwardAuthUnavailableAnswers",
        "ClerkForwardAuthLatencyHigh",
    ] {
        assert!(names.contains(wanted), "{wanted} is missing");
    }

    // The unit tests' synthetic series must look like real ones.
    let tests = yaml("prometheus/alerts.test.yaml");
    for test in tests["tests"].as_array().expect("tests") {
        for input in test["input_series"].as_array().expect("input_series") {
            let series = input["series"].as_str().unwrap();
            checker.expr("alerts.test.yaml input series", series);
        }
    }
}

#[tokio::test]
async fn the_dashboard_and_alerts_name_only_what_the_service_exports() {
    let exported = everything_exported().await;
    let mut checker = Checker {
        exported: &exported,
        problems: Vec::new(),
        used: BTreeSet::new(),
    };
    check_dashboard(&mut checker);
    let on_dashboard = std::mem::take(&mut checker.used);
    check_alerts(&mut checker);
    assert!(
        checker.problems.is_empty(),
        "{} problem(s):\n{}",
        checker.problems.len(),
        checker.problems.join("\n")
    );
    let families: BTreeSet<&str> = exported.keys().map(|s| family(s, &exported)).collect();
    let missing: Vec<_> = families
        .iter()
        .filter(|f| !on_dashboard.contains(**f))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn promql_references_are_read_and_foreign_words_refused() {
    let refs = references(
        r#"histogram_quantile(0.99, sum without (outcome) (rate(clerk_forward_auth_x_bucket{outcome!~"a|b", job=~"$job"}[$__rate_interval]))) > 5e-3
           and ignoring (le) clerk_forward_auth_y offset 15m"#,
    )
    .unwrap();
    assert_eq!(
        refs.selectors,
        [
            Selector {
                name: "clerk_forward_auth_x_bucket".into(),
                matchers: vec![
                    ("outcome".into(), "!~".into(), "a|b".into()),
                    ("job".into(), "=~".into(), "$job".into()),
                ],
            },
            Selector {
                name: "clerk_forward_auth_y".into(),
                matchers: vec![],
            },
        ]
    );
    assert_eq!(
        refs.grouping,
        BTreeSet::from(["outcome".to_owned(), "le".to_owned()])
    );
    assert!(references("rate(clerk_forwardauth_decisions_total[5m])").is_err());
    assert!(references("up == 0").is_err());
    assert!(references(r#"sum({__name__="clerk_forward_auth_ready"})"#).is_err());
    assert_eq!(
        template_labels(
            "{{ $labels.instance }} at {{ $value | humanize }}",
            "$labels."
        ),
        ["instance"]
    );
}
