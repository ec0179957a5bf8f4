//! Route rules: which requirement applies to an original request (first match wins), path
//! normalisation that cannot be used to dodge a rule, and requirements added on the auth URL.

use std::sync::Arc;

use super::auth::SessionAuth;
use super::has::{HasParams, Missing, Reverification};
use super::pattern::PathPatterns;

/// What a rule does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No session needed; a valid session still yields identity headers.
    Public,
    /// A signed-in session, plus the rule's requirements.
    SignedIn,
    /// Always 403.
    Deny,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "signed-in" => Some(Self::SignedIn),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::SignedIn => "signed-in",
            Self::Deny => "deny",
        }
    }
}

/// Requirements: every `all` item must hold, and at least one `any` item if there are any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub all: Vec<HasParams>,
    pub any: Vec<HasParams>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.any.is_empty()
    }

    /// The first failing requirement, if any.
    pub fn check(&self, auth: &SessionAuth) -> Result<(), Missing> {
        for item in &self.all {
            item.check(auth)?;
        }
        if self.any.is_empty() {
            return Ok(());
        }
        let mut first_failure = None;
        for item in &self.any {
            match item.check(auth) {
                Ok(()) => return Ok(()),
                Err(missing) => {
                    first_failure.get_or_insert(missing);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// How a rule matches paths. Matching is case-insensitive unless the rule says otherwise,
/// because a case-insensitive upstream would otherwise serve `/ADMIN` under a rule for
/// `/admin` that did not match it.
#[derive(Clone, Debug)]
pub enum PathMatch {
    Any,
    /// Exact paths; a trailing slash is ignored.
    Exact(Vec<String>),
    /// Segment-aware prefixes: `/api` matches `/api` and `/api/x`, not `/apix`.
    Prefix(Vec<String>),
    /// path-to-regexp 6 patterns (always case-insensitive, as Clerk compiles them).
    Pattern(PathPatterns),
}

/// One rule. Empty host and method lists match everything.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: Arc<str>,
    /// Exact hosts or `*.example.com` wildcards (any subdomain, not the apex), lower-case.
    pub hosts: Vec<String>,
    pub paths: PathMatch,
    pub case_sensitive: bool,
    /// Upper-case methods.
    pub methods: Vec<String>,
    pub action: Action,
    pub requirements: Requirements,
}

impl Rule {
    fn matches_host(&self, host: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let host = strip_port(host).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        self.hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => pattern == host,
            })
    }

    fn matches_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    fn matches_path(&self, path: &str) -> bool {
        let eq = |a: &str, b: &str| {
            if self.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let trimmed = |p: &str| -> String {
            let t = p.trim_end_matches('/');
            if t.is_empty() { "/".into() } else { t.into() }
        };
        match &self.paths {
            PathMatch::Any => true,
            PathMatch::Exact(paths) => paths.iter().any(|p| eq(&trimmed(p), &trimmed(path))),
            PathMatch::Prefix(prefixes) => prefixes.iter().any(|prefix| {
                let prefix = prefix.as_str();
                if prefix.ends_with('/') {
                    path.len() >= prefix.len() && eq(&path[..prefix.len()], prefix)
                        || eq(&trimmed(path), &trimmed(prefix))
                } else {
                    eq(path, prefix)
                        || path.len() > prefix.len()
                            && path.is_char_boundary(prefix.len())
                            && eq(&path[..prefix.len()], prefix)
                            && path[prefix.len()..].starts_with('/')
                }
            }),
            PathMatch::Pattern(patterns) => patterns.is_match(path),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// The ordered rules and the default for requests no rule matches.
#[derive(Clone, Debug)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub default: Action,
    pub default_requirements: Requirements,
    /// Let CORS preflights through without a session.
    pub allow_cors_preflight: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default: Action::SignedIn,
            default_requirements: Requirements::default(),
            allow_cors_preflight: false,
        }
    }
}

/// The rules that decide a request: one per reading of its path (usually one), all of
/// which must be satisfied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// Rule names, `default` when none matched.
    pub names: RuleNames,
    pub action: Action,
    pub requirements: Vec<Requirements>,
}

impl Matched {
    /// The first failing requirement of any matched rule.
    pub fn check(&self, auth: &SessionAuth) -> Result<(), Missing> {
        self.requirements.iter().try_for_each(|r| r.check(auth))
    }

    /// Adds requirements from the auth URL. They only ever tighten: a public route that
    /// gains one needs a session.
    pub fn add(&mut self, extra: Vec<HasParams>) {
        if extra.is_empty() {
            return;
        }
        if self.action == Action::Public {
            self.action = Action::SignedIn;
        }
        self.requirements.push(Requirements {
            all: extra,
            any: Vec::new(),
        });
    }
}

impl Policy {
    /// Finds the rule for a request. A path that proxies and upstreams may read in more
    /// than one way (encoded slashes) is matched under each reading, and the request must
    /// satisfy every rule so found: the strictest reading wins.
    pub fn matched(&self, method: &str, host: &str, raw_path: &str) -> Matched {
        if self.rules.is_empty() {
            // No rule can match: the path need not even be read.
            return Matched {
                names: RuleNames(vec![default_name()]),
                action: self.default,
                requirements: if self.default_requirements.is_empty() {
                    Vec::new()
                } else {
                    vec![self.default_requirements.clone()]
                },
            };
        }
        let mut matched = Matched {
            names: RuleNames(Vec::new()),
            action: Action::Public,
            requirements: Vec::new(),
        };
        for path in readings(raw_path) {
            let rule = self.rules.iter().find(|r| {
                r.matches_method(method) && r.matches_host(host) && r.matches_path(&path)
            });
            let (name, action, requirements) = match rule {
                Some(rule) => (rule.name.clone(), rule.action, &rule.requirements),
                None => (default_name(), self.default, &self.default_requirements),
            };
            if matched.names.0.contains(&name) {
                continue;
            }
            matched.names.0.push(name);
            matched.action = strictest(matched.action, action);
            if !requirements.is_empty() {
                matched.requirements.push(requirements.clone());
            }
        }
        if matched.action == Action::Public && !matched.requirements.is_empty() {
            matched.action = Action::SignedIn;
        }
        matched
    }
}

/// The names of the rules a request matched, shown joined with `+`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleNames(pub Vec<Arc<str>>);

impl RuleNames {
    /// The names joined with `+`; borrowed when there is one, as there usually is.
    pub fn joined(&self) -> std::borrow::Cow<'_, str> {
        match self.0.as_slice() {
            [one] => std::borrow::Cow::Borrowed(one),
            _ => std::borrow::Cow::Owned(self.to_string()),
        }
    }
}

impl std::fmt::Display for RuleNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// `default`, shared rather than allocated per request.
fn default_name() -> Arc<str> {
    static DEFAULT: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| Arc::from("default"));
    DEFAULT.clone()
}

fn strictest(a: Action, b: Action) -> Action {
    match (a, b) {
        (Action::Deny, _) | (_, Action::Deny) => Action::Deny,
        (Action::SignedIn, _) | (_, Action::SignedIn) => Action::SignedIn,
        _ => Action::Public,
    }
}

/// The ways a path may be read: percent-decoded with `%2F` as a separator, and decoded with
/// it kept as data. Each reading has its dot segments resolved. Identical readings collapse.
pub fn readings(raw: &str) -> Vec<String> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let as_separator = normalise(&decode(path, true));
    let as_data = normalise(&decode(path, false));
    if as_separator == as_data {
        vec![as_separator]
    } else {
        vec![as_separator, as_data]
    }
}

/// Percent-decodes a path. With `slashes`, `%2F` and `%5C` become separators; without, they
/// stay encoded so they cannot split a segment. Invalid escapes stay as they are, and so do
/// bytes that do not decode to UTF-8.
fn decode(path: &str, slashes: bool) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = ((*h as char).to_digit(16), (*l as char).to_digit(16))
        {
            // Two hex digits make one byte; the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let byte = (h * 16 + l) as u8;
            match byte {
                b'/' | b'\\' if !slashes => out.extend_from_slice(&bytes[i..i + 3]),
                b'\\' => out.push(b'/'),
                _ => out.push(byte),
            }
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(_) => path.to_owned(),
    }
}

/// Resolves `.` and `..` segments and collapses repeated slashes; always starts with `/`.
fn normalise(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Requirements added on the auth URL (`/verify?permission=…&role=…`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error(
        "unknown parameter `{0}` on the auth URL; allowed: permission, role, feature, plan, reverification"
    )]
    Unknown(String),
    #[error("invalid `{name}` value `{value}` on the auth URL")]
    Invalid { name: String, value: String },
}

/// Parses the auth URL's query into requirements that are added to the matched rule's.
/// Each parameter is one more requirement; a repeated one means all must hold.
pub fn query_requirements(query: &str) -> Result<Vec<HasParams>, QueryError> {
    let mut all = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let invalid = || QueryError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
        };
        if value.trim().is_empty() {
            return Err(invalid());
        }
        let mut params = HasParams::default();
        let text = || Some(value.to_string());
        match name.as_ref() {
            "permission" => params.permission = text(),
            "role" => params.role = text(),
            "feature" => params.feature = text(),
            "plan" => params.plan = text(),
            "reverification" => {
                params.reverification = Some(Reverification::parse(&value).ok_or_else(invalid)?)
            }
            other => return Err(QueryError::Unknown(other.to_owned())),
        }
        all.push(params);
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
