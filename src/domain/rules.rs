//! Route rules: which requirement applies to an original request (first match wins), path
//! normalisation that cannot be used to dodge a rule, and requirements added on the auth URL.

use std::borrow::Cow;
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
        // Compared as bytes against the lower-case patterns, without a lower-cased copy.
        let host = strip_port(host).trim_end_matches('.').as_bytes();
        self.hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .len()
                    .checked_sub(domain.len())
                    .map(|at| host.split_at(at))
                    .is_some_and(|(sub, tail)| {
                        tail.eq_ignore_ascii_case(domain.as_bytes())
                            && sub.len() > 1
                            && sub.ends_with(b".")
                    }),
                None => host.eq_ignore_ascii_case(pattern.as_bytes()),
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
        fn trimmed(p: &str) -> &str {
            let t = p.trim_end_matches('/');
            if t.is_empty() { "/" } else { t }
        }
        match &self.paths {
            PathMatch::Any => true,
            PathMatch::Exact(paths) => paths.iter().any(|p| eq(trimmed(p), trimmed(path))),
            PathMatch::Prefix(prefixes) => prefixes.iter().any(|prefix| {
                let prefix = prefix.as_str();
                if prefix.ends_with('/') {
                    path.len() >= prefix.len() && eq(&path[..prefix.len()], prefix)
                        || eq(trimmed(path), trimmed(prefix))
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
/// which must be satisfied. It borrows the policy's rules: matching runs on every request,
/// and copying names and requirements out of the settings would allocate each time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched<'p> {
    /// Rule names, `default` when none matched.
    pub names: RuleNames<'p>,
    pub action: Action,
    /// The matched rules' requirements: at most one per reading.
    rules: [Option<&'p Requirements>; 2],
    /// Requirements from the auth URL.
    added: Option<Requirements>,
}

impl<'p> Matched<'p> {
    /// Every requirement that applies: the rules', then the auth URL's.
    pub fn requirements(&self) -> impl Iterator<Item = &Requirements> {
        self.rules.iter().flatten().copied().chain(&self.added)
    }

    /// The first failing requirement of any matched rule.
    pub fn check(&self, auth: &SessionAuth) -> Result<(), Missing> {
        self.requirements().try_for_each(|r| r.check(auth))
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
        self.added = Some(Requirements {
            all: extra,
            any: Vec::new(),
        });
    }

    /// Adds the rule found for reading `i` of the path.
    fn include(
        &mut self,
        i: usize,
        (name, action, requirements): (&'p str, Action, &'p Requirements),
    ) {
        self.names.0[i] = Some(name);
        self.action = strictest(self.action, action);
        if !requirements.is_empty() {
            self.rules[i] = Some(requirements);
        }
    }
}

impl Policy {
    /// Finds the rule for a request. A path that proxies and upstreams may read in more
    /// than one way (encoded slashes) is matched under each reading, and the request must
    /// satisfy every rule so found: the strictest reading wins.
    pub fn matched(&self, method: &str, host: &str, raw_path: &str) -> Matched<'_> {
        let default = (DEFAULT_NAME, self.default, &self.default_requirements);
        let mut matched = Matched {
            names: RuleNames([None; 2]),
            action: Action::Public,
            rules: [None; 2],
            added: None,
        };
        if self.rules.is_empty() {
            // No rule can match: the path need not even be read.
            matched.include(0, default);
            return matched;
        }
        for (i, path) in readings(raw_path).enumerate() {
            let rule = self.rules.iter().find(|r| {
                r.matches_method(method) && r.matches_host(host) && r.matches_path(&path)
            });
            let found = rule.map_or(default, |rule| {
                (&*rule.name, rule.action, &rule.requirements)
            });
            if !matched.names.0.contains(&Some(found.0)) {
                matched.include(i, found);
            }
        }
        if matched.action == Action::Public && matched.rules.iter().any(Option::is_some) {
            matched.action = Action::SignedIn;
        }
        matched
    }
}

/// The names of the rules a request matched, shown joined with `+`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleNames<'p>([Option<&'p str>; 2]);

impl RuleNames<'_> {
    /// The names joined with `+`; borrowed when there is one, as there usually is.
    pub fn joined(&self) -> std::borrow::Cow<'_, str> {
        match self.0 {
            [Some(one), None] | [None, Some(one)] => std::borrow::Cow::Borrowed(one),
            _ => std::borrow::Cow::Owned(self.to_string()),
        }
    }
}

impl std::fmt::Display for RuleNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, name) in self.0.iter().flatten().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// The name of requests no rule matched.
const DEFAULT_NAME: &str = "default";

fn strictest(a: Action, b: Action) -> Action {
    match (a, b) {
        (Action::Deny, _) | (_, Action::Deny) => Action::Deny,
        (Action::SignedIn, _) | (_, Action::SignedIn) => Action::SignedIn,
        _ => Action::Public,
    }
}

/// The ways a path may be read: percent-decoded with `%2F` as a separator, and decoded with
/// it kept as data. Each reading has its dot segments resolved. Identical readings collapse.
/// A path with no escapes has one reading, borrowed when it is already normal, as nearly
/// every path is: this runs on every request.
pub fn readings(raw: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let (first, second) = if path.contains('%') {
        let as_separator = normalised(decode(path, true));
        let as_data = normalised(decode(path, false));
        let second = (as_data != as_separator).then_some(Cow::Owned(as_data));
        (Cow::Owned(as_separator), second)
    } else {
        (normalise(path), None)
    };
    std::iter::once(first).chain(second)
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
fn normalise(path: &str) -> Cow<'_, str> {
    if is_normal(path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalise_into_new(path))
    }
}

/// `normalise` for a path already owned.
fn normalised(path: String) -> String {
    if is_normal(&path) {
        path
    } else {
        normalise_into_new(&path)
    }
}

/// Whether `normalise` would return `path` unchanged: it starts with `/`, and has no empty,
/// `.` or `..` segment, apart from one trailing slash.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|s| !matches!(s, "" | "." | ".."))
}

fn normalise_into_new(path: &str) -> String {
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
