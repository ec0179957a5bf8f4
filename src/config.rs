//! Settings: defaults, then an optional TOML/YAML file, then the environment (Clerk's own
//! `CLERK_*` names, and ours under `CLERK_FA_`), validated into typed `Settings` with every
//! problem reported at once.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::domain::authenticate::{ClerkOptions, OrgSync};
use crate::domain::instance::InstanceType;
use crate::domain::instance::PublishableKey;
use crate::domain::jwt::VerifyOptions;
use crate::domain::keys::VerifyingKey;
use crate::domain::pattern::PathPatterns;
use crate::domain::request::ForwardedHeaders;
use crate::domain::rules::{Action, Policy};

/// The prefix of this service's own environment variables.
pub const ENV_PREFIX: &str = "CLERK_FA_";

/// One setting: its file key, its environment variable, its default and what it means. This
/// table is the single source for loading, the unknown-variable warning and the README.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

macro_rules! settings {
    ($( $key:literal, $env:literal, $default:expr, $meaning:literal; )*) => {
        pub const SETTINGS: &[Setting] = &[
            $( Setting { key: $key, env: $env, default: $default, meaning: $meaning }, )*
        ];
    };
}

settings! {
    "clerk.publishable_key", "CLERK_PUBLISHABLE_KEY", None,
        "Publishable key (`pk_test_…`/`pk_live_…`). Required: it names the instance, its Frontend API and its cookie suffix.";
    "clerk.secret_key", "CLERK_SECRET_KEY", None,
        "Secret key (`sk_…`). Used to fetch the JWKS from the Backend API. Without it and without `jwt_key`, keys come from the Frontend API's public JWKS.";
    "clerk.jwt_key", "CLERK_JWT_KEY", None,
        "PEM public key for networkless verification (real newlines or literal `\\n`). Takes precedence over any JWKS.";
    "clerk.api_url", "CLERK_API_URL", Some("https://api.clerk.com"), "Backend API base URL.";
    "clerk.api_version", "CLERK_API_VERSION", Some("v1"), "Backend API version path segment.";
    "clerk.authorized_parties", "CLERK_AUTHORIZED_PARTIES", Some(""),
        "Comma-separated exact origins allowed in `azp` (e.g. `https://app.example.com`). Empty: any.";
    "clerk.audience", "CLERK_AUDIENCE", Some(""), "Comma-separated allowed `aud` values. Empty: not checked.";
    "clerk.clock_skew_ms", "CLERK_CLOCK_SKEW_MS", Some("5000"), "Allowed clock skew for `exp`/`nbf`/`iat`, in milliseconds.";
    "clerk.sign_in_url", "CLERK_SIGN_IN_URL", None, "Sign-in page URL (absolute, or a path on the app).";
    "clerk.sign_up_url", "CLERK_SIGN_UP_URL", None, "Sign-up page URL.";
    "clerk.proxy_url", "CLERK_PROXY_URL", None, "Frontend API proxy URL (absolute, or a path such as `/__clerk`).";
    "clerk.domain", "CLERK_DOMAIN", None, "A satellite's bare domain (no scheme), e.g. `satellite.example.com`.";
    "clerk.is_satellite", "CLERK_IS_SATELLITE", Some("false"), "Whether this instance is a satellite domain.";
    "clerk.organization_patterns", "CLERK_ORGANIZATION_PATTERNS", Some(""),
        "Comma-separated path patterns that select the active organization (`/orgs/:slug`, `/orgs/:slug/(.*)`).";
    "clerk.personal_account_patterns", "CLERK_PERSONAL_ACCOUNT_PATTERNS", Some(""),
        "Comma-separated path patterns that select the personal account.";
    "server.listen", "CLERK_FA_LISTEN", Some("127.0.0.1:8080"), "Address `/verify`, health and metrics are served on.";
    "server.workers", "CLERK_FA_WORKERS", Some("0"), "HTTP worker threads; 0 means one per CPU.";
    "server.forwarded_headers", "CLERK_FA_FORWARDED_HEADERS", Some("auto"),
        "Which headers describe the original request: `auto`, `x-forwarded` (Traefik, Caddy, our nginx/HAProxy/Envoy recipes), `x-original` (ingress-nginx) or `path` (Envoy path prefix).";
    "server.request_timeout_ms", "CLERK_FA_REQUEST_TIMEOUT_MS", Some("5000"),
        "Time a client has to send a request's head: a slowloris client is cut off after it.";
    "server.keep_alive_secs", "CLERK_FA_KEEP_ALIVE_SECS", Some("75"),
        "Idle keep-alive; longer than the proxies' own (nginx 60 s), so they close first.";
    "server.max_connections", "CLERK_FA_MAX_CONNECTIONS", Some("25000"), "Open connections per worker; beyond it new ones wait.";
    "server.shutdown_delay_ms", "CLERK_FA_SHUTDOWN_DELAY_MS", Some("3000"),
        "On SIGTERM, how long /readyz answers 503 while requests are still served, so load balancers stop sending first.";
    "server.shutdown_grace_secs", "CLERK_FA_SHUTDOWN_GRACE_SECS", Some("30"), "Then, how long in-flight requests may take to finish.";
    "limits.max_token_bytes", "CLERK_FA_MAX_TOKEN_BYTES", Some("16384"),
        "A session token longer than this is refused unread (401 `token-invalid`).";
    "cache.max_tokens", "CLERK_FA_CACHE_MAX_TOKENS", Some("100000"),
        "Verified tokens remembered (by SHA-256), each until its `exp`; 0 verifies every token (`serve --no-token-cache`).";
    "keys.vector_rsa", "CLERK_FA_VECTOR_RSA", Some("true"),
        "Check RSA-2048 signatures with this service's AVX-512 IFMA code where the CPU has it (1.7× aws-lc's speed, tested against it); `false` leaves every check to aws-lc.";
    "metrics.listen", "CLERK_FA_METRICS_LISTEN", Some(""), "Separate address for `/metrics`; empty serves it next to `/verify`.";
    "authorization.default", "CLERK_FA_DEFAULT_ACTION", Some("signed-in"),
        "What requests no rule matches need: `signed-in`, `public` or `deny`. Rules themselves live in the file (`[[authorization.rules]]`).";
    "authorization.allow_cors_preflight", "CLERK_FA_ALLOW_CORS_PREFLIGHT", Some("false"),
        "Let CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`) through without a session.";
    "log.format", "CLERK_FA_LOG_FORMAT", Some("human"), "`human` or `json`.";
    "log.level", "CLERK_FA_LOG_LEVEL", Some("info"), "A tracing filter, e.g. `info` or `clerk_forward_auth=debug`.";
    "jwks.refresh_secs", "CLERK_FA_JWKS_REFRESH_SECS", Some("300"), "How often the JWKS is refreshed in the background.";
    "jwks.min_refetch_ms", "CLERK_FA_JWKS_MIN_REFETCH_MS", Some("5000"),
        "At most one unknown-`kid` refetch per this interval, so random kids cannot hammer Clerk.";
    "jwks.timeout_ms", "CLERK_FA_JWKS_TIMEOUT_MS", Some("5000"), "Timeout of one JWKS fetch, connect included.";
    "jwks.max_stale_secs", "CLERK_FA_JWKS_MAX_STALE_SECS", Some("21600"),
        "While Clerk is unreachable, the last good key set is used for at most this long; then /verify answers 503.";
    "headers.user_id", "CLERK_FA_HEADER_USER_ID", Some("X-Auth-User-Id"), "Header carrying `sub`.";
    "headers.session_id", "CLERK_FA_HEADER_SESSION_ID", Some("X-Auth-Session-Id"), "Header carrying `sid`.";
    "headers.org_id", "CLERK_FA_HEADER_ORG_ID", Some("X-Auth-Org-Id"), "Header carrying the active organization id.";
    "headers.org_role", "CLERK_FA_HEADER_ORG_ROLE", Some("X-Auth-Org-Role"), "Header carrying the organization role (`org:admin`).";
    "headers.org_slug", "CLERK_FA_HEADER_ORG_SLUG", Some("X-Auth-Org-Slug"), "Header carrying the organization slug.";
    "headers.org_permissions", "CLERK_FA_HEADER_ORG_PERMISSIONS", Some("X-Auth-Org-Permissions"), "Header carrying the comma-joined organization permissions.";
    "headers.actor_id", "CLERK_FA_HEADER_ACTOR_ID", Some("X-Auth-Actor-Id"), "Header carrying the impersonator (`act.sub`).";
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where verification keys come from.
#[derive(Clone, Debug)]
pub enum KeySettings {
    /// `CLERK_JWT_KEY`: networkless.
    Pem(Arc<VerifyingKey>),
    /// A JWKS URL, with the secret key when it is the Backend API's.
    Jwks {
        url: Url,
        secret_key: Option<Secret>,
    },
}

#[derive(Clone, Debug)]
pub struct JwksSettings {
    pub refresh: Duration,
    pub min_refetch: Duration,
    pub timeout: Duration,
    pub max_stale: Duration,
}

/// Connection handling and shutdown.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub request_timeout: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The identity headers `/verify` answers with, in their configured spelling (validated
/// header names).
#[derive(Clone, Debug)]
pub struct IdentityHeaders {
    pub user_id: String,
    pub session_id: String,
    pub org_id: String,
    pub org_role: String,
    pub org_slug: String,
    pub org_permissions: String,
    pub actor_id: String,
}

/// Validated settings: every value has its real type.
#[derive(Clone, Debug)]
pub struct Settings {
    pub clerk: ClerkOptions,
    pub keys: KeySettings,
    pub secret_key: Option<Secret>,
    pub api_url: Url,
    pub api_version: String,
    pub sign_in_url: Option<String>,
    pub sign_up_url: Option<String>,
    pub organization_patterns: Vec<String>,
    pub personal_account_patterns: Vec<String>,
    pub listen: SocketAddr,
    pub workers: usize,
    pub forwarded_headers: ForwardedHeaders,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub jwks: JwksSettings,
    pub server: ServerSettings,
    pub max_cached_tokens: u64,
    pub vector_rsa: bool,
    pub headers: IdentityHeaders,
    pub policy: Policy,
}

/// Every problem found, each naming its file key and environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// What loading found that is suspicious but not fatal.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl Settings {
    /// Loads defaults, then `file`, then `env`. Tests pass their own `env` map; nothing here
    /// reads the process environment.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<(Self, Warnings), ConfigError> {
        Self::load_from(file.map(|p| config::File::from(p).required(true)), env)
    }

    /// `load` with the file given as TOML text (for the fuzzer and tools).
    pub fn load_toml(
        text: &str,
        env: &HashMap<String, String>,
    ) -> Result<(Self, Warnings), ConfigError> {
        Self::load_from(
            Some(config::File::from_str(text, config::FileFormat::Toml)),
            env,
        )
    }

    fn load_from<F>(
        file: Option<config::File<F, config::FileFormat>>,
        env: &HashMap<String, String>,
    ) -> Result<(Self, Warnings), ConfigError>
    where
        config::File<F, config::FileFormat>: config::Source + Send + Sync + 'static,
    {
        let mut warnings = Warnings::default();
        let mut builder = config::Config::builder();
        let mut problems = Vec::new();
        for setting in SETTINGS {
            if let Some(default) = setting.default {
                builder = match builder.set_default(setting.key, default) {
                    Ok(b) => b,
                    Err(e) => {
                        return Err(ConfigError {
                            problems: vec![e.to_string()],
                        });
                    }
                };
            }
        }
        let has_file = file.is_some();
        if let Some(file) = file {
            builder = builder.add_source(file);
        }
        for setting in SETTINGS {
            if let Some(value) = env.get(setting.env) {
                builder = match builder.set_override(setting.key, value.as_str()) {
                    Ok(b) => b,
                    Err(e) => {
                        return Err(ConfigError {
                            problems: vec![e.to_string()],
                        });
                    }
                };
            }
        }
        let known: BTreeSet<&str> = SETTINGS.iter().map(|s| s.env).collect();
        let mut unknown: Vec<&String> = env
            .keys()
            .filter(|k| k.starts_with(ENV_PREFIX) && !known.contains(k.as_str()))
            .collect();
        unknown.sort();
        for name in unknown {
            warnings.0.push(format!("unknown environment variable {name} (ignored); see the README for the {ENV_PREFIX}* settings"));
        }
        let cfg = builder.build().map_err(|e| ConfigError {
            problems: vec![format!("cannot read the configuration: {e}")],
        })?;
        if has_file {
            warnings.0.extend(unknown_file_keys(&cfg));
        }
        let settings = Reader {
            cfg: &cfg,
            problems: &mut problems,
        }
        .settings();
        match settings {
            Some(settings) if problems.is_empty() => Ok((settings, warnings)),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// Keys in the file that no setting reads: usually a typo.
fn unknown_file_keys(cfg: &config::Config) -> Vec<String> {
    let mut known: BTreeSet<&str> = SETTINGS.iter().map(|s| s.key).collect();
    known.insert("authorization.rules");
    let Ok(table) = cfg
        .clone()
        .try_deserialize::<HashMap<String, config::Value>>()
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (section, value) in table {
        match value.into_table() {
            Ok(inner) => {
                for key in inner.keys() {
                    let full = format!("{section}.{key}");
                    if !known.contains(full.as_str()) {
                        found.push(format!("unknown configuration key {full} (ignored)"));
                    }
                }
            }
            Err(_) => found.push(format!("unknown configuration key {section} (ignored)")),
        }
    }
    found.sort();
    found
}

/// Reads each setting on its own, so one bad value does not hide the others.
struct Reader<'c> {
    cfg: &'c config::Config,
    problems: &'c mut Vec<String>,
}

impl Reader<'_> {
    fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        let env = SETTINGS.iter().find(|s| s.key == key).map_or("", |s| s.env);
        self.problems.push(format!("{key} ({env}): {message}"));
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.cfg.get_string(key) {
            Ok(value) => Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            Err(config::ConfigError::NotFound(_)) => None,
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    /// A comma-separated string or a list.
    fn list(&mut self, key: &str) -> Vec<String> {
        let items = match self.cfg.get::<Vec<String>>(key) {
            Ok(list) => list,
            Err(_) => self.string(key).map(|s| vec![s]).unwrap_or_default(),
        };
        items
            .iter()
            .flat_map(|item| item.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn parse<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let raw = self.string(key)?;
        match raw.parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.problem(key, format!("`{raw}` is not {what}"));
                None
            }
        }
    }

    fn bool(&mut self, key: &str) -> bool {
        match self
            .string(key)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0" | "no" | "off") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(other) => {
                self.problem(key, format!("`{other}` is not true or false"));
                false
            }
        }
    }

    fn millis(&mut self, key: &str) -> Duration {
        Duration::from_millis(
            self.parse::<u64>(key, "a whole number of milliseconds")
                .unwrap_or(0),
        )
    }

    fn url(&mut self, key: &str) -> Option<Url> {
        let raw = self.string(key)?;
        match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                self.problem(key, format!("`{raw}` is not an absolute http(s) URL"));
                None
            }
        }
    }

    /// An absolute http(s) URL, or a path on the application's own origin.
    fn url_or_path(&mut self, key: &str) -> Option<String> {
        let raw = self.string(key)?;
        let ok = raw.starts_with('/') && !raw.starts_with("//")
            || Url::parse(&raw)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if ok {
            Some(raw)
        } else {
            self.problem(
                key,
                format!("`{raw}` is neither an absolute http(s) URL nor a path starting with `/`"),
            );
            None
        }
    }

    /// A header name: RFC 9110 token characters only. Dashes, not underscores or dots,
    /// because proxies drop or alias those (see the README's proxy notes).
    fn header(&mut self, key: &str) -> String {
        let raw = self.string(key).unwrap_or_default();
        let valid = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            self.problem(
                key,
                format!("`{raw}` is not a header name made of letters, digits and dashes"),
            );
        }
        raw
    }

    fn patterns(&mut self, key: &str, patterns: &[String]) -> Option<PathPatterns> {
        if patterns.is_empty() {
            return None;
        }
        match PathPatterns::compile(patterns) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn settings(&mut self) -> Option<Settings> {
        let publishable_key = match self.string("clerk.publishable_key") {
            None => {
                self.problem(
                    "clerk.publishable_key",
                    "is required (find it under API keys in the Clerk dashboard; `clerk-forward-auth dev` runs without one)",
                );
                None
            }
            Some(raw) => match PublishableKey::parse(&raw) {
                Ok(pk) => Some(pk),
                Err(e) => {
                    self.problem("clerk.publishable_key", e);
                    None
                }
            },
        };
        let secret_key = self.string("clerk.secret_key").map(Secret::new);
        if let Some(sk) = &secret_key
            && !["sk_test_", "sk_live_", "test_", "live_"]
                .iter()
                .any(|p| sk.expose().starts_with(p))
        {
            self.problem(
                "clerk.secret_key",
                "does not look like a Clerk secret key (sk_test_… or sk_live_…)",
            );
        }
        let jwt_key_pem = self.string("clerk.jwt_key");
        let jwt_key_given = jwt_key_pem.is_some();
        let jwt_key = jwt_key_pem.and_then(|pem| match VerifyingKey::from_pem(&pem) {
            Ok(key) => Some(Arc::new(key)),
            Err(e) => {
                self.problem("clerk.jwt_key", e);
                None
            }
        });
        let api_url = self.url("clerk.api_url");
        let api_version = self
            .string("clerk.api_version")
            .unwrap_or_else(|| "v1".into());
        let authorized_parties = self.list("clerk.authorized_parties");
        for party in &authorized_parties {
            let exact = Url::parse(party).is_ok_and(|u| u.origin().ascii_serialization() == *party);
            if !exact {
                self.problem(
                    "clerk.authorized_parties",
                    format!("`{party}` is not an exact origin such as `https://app.example.com` (no path, no trailing slash)"),
                );
            }
        }
        let audience = self.list("clerk.audience");
        let clock_skew_ms = self
            .parse::<i64>("clerk.clock_skew_ms", "a whole number of milliseconds")
            .unwrap_or(5000);
        let sign_in_url = self.url_or_path("clerk.sign_in_url");
        let sign_up_url = self.url_or_path("clerk.sign_up_url");
        let proxy_url = self.url_or_path("clerk.proxy_url");
        let domain = self.string("clerk.domain");
        if let Some(d) = &domain
            && (d.contains("://") || d.contains('/'))
        {
            self.problem("clerk.domain", format!("`{d}` must be a bare host name such as `satellite.example.com`, without scheme or path"));
        }
        let is_satellite = self.bool("clerk.is_satellite");
        if is_satellite && proxy_url.is_none() && domain.is_none() {
            self.problem("clerk.is_satellite", "a satellite needs clerk.domain (CLERK_DOMAIN) or clerk.proxy_url (CLERK_PROXY_URL)");
        }
        if is_satellite
            && publishable_key
                .as_ref()
                .is_some_and(|pk| pk.instance_type() == InstanceType::Development)
        {
            match &sign_in_url {
                None => self.problem(
                    "clerk.sign_in_url",
                    "a development satellite needs a sign-in URL on its primary domain",
                ),
                Some(url) if url.starts_with('/') => {
                    self.problem("clerk.sign_in_url", "a satellite's sign-in URL must be absolute (it lives on the primary domain)");
                }
                Some(_) => {}
            }
        }
        let organization_patterns = self.list("clerk.organization_patterns");
        let personal_account_patterns = self.list("clerk.personal_account_patterns");
        let org_sync = OrgSync {
            organization: self.patterns("clerk.organization_patterns", &organization_patterns),
            personal_account: self.patterns(
                "clerk.personal_account_patterns",
                &personal_account_patterns,
            ),
        };
        let listen = self.parse::<SocketAddr>("server.listen", "an address such as 0.0.0.0:8080");
        let workers = self
            .parse::<usize>("server.workers", "a whole number")
            .unwrap_or(0);
        let forwarded_headers = match self.string("server.forwarded_headers").as_deref() {
            None | Some("auto") => ForwardedHeaders::Auto,
            Some("x-forwarded") => ForwardedHeaders::XForwarded,
            Some("x-original") => ForwardedHeaders::XOriginal,
            Some("path") => ForwardedHeaders::Path,
            Some(other) => {
                self.problem(
                    "server.forwarded_headers",
                    format!("`{other}` is not one of auto, x-forwarded, x-original, path"),
                );
                ForwardedHeaders::Auto
            }
        };
        let metrics_listen = match self.string("metrics.listen") {
            None => None,
            Some(_) => {
                self.parse::<SocketAddr>("metrics.listen", "an address such as 0.0.0.0:9090")
            }
        };
        let log_format = match self.string("log.format").as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem("log.format", format!("`{other}` is not human or json"));
                LogFormat::Human
            }
        };
        let log_level = self.string("log.level").unwrap_or_else(|| "info".into());
        let jwks = JwksSettings {
            refresh: Duration::from_secs(
                self.parse::<u64>("jwks.refresh_secs", "a whole number of seconds")
                    .unwrap_or(300)
                    .max(1),
            ),
            min_refetch: self.millis("jwks.min_refetch_ms"),
            timeout: self.millis("jwks.timeout_ms").max(Duration::from_millis(1)),
            max_stale: Duration::from_secs(
                self.parse::<u64>("jwks.max_stale_secs", "a whole number of seconds")
                    .unwrap_or(21_600),
            ),
        };
        let server = ServerSettings {
            request_timeout: self
                .millis("server.request_timeout_ms")
                .max(Duration::from_millis(1)),
            keep_alive: Duration::from_secs(
                self.parse::<u64>("server.keep_alive_secs", "a whole number of seconds")
                    .unwrap_or(75),
            ),
            max_connections: self
                .parse::<usize>("server.max_connections", "a whole number")
                .unwrap_or(25_000)
                .max(1),
            shutdown_delay: self.millis("server.shutdown_delay_ms"),
            shutdown_grace: Duration::from_secs(
                self.parse::<u64>("server.shutdown_grace_secs", "a whole number of seconds")
                    .unwrap_or(30),
            ),
        };
        let max_cached_tokens = self
            .parse::<u64>("cache.max_tokens", "a whole number")
            .unwrap_or(100_000);
        let vector_rsa = self.bool("keys.vector_rsa");
        let max_token_bytes = self
            .parse::<usize>("limits.max_token_bytes", "a whole number of bytes")
            .unwrap_or(16_384)
            .max(1);
        let default_action = match self.string("authorization.default") {
            None => Action::SignedIn,
            Some(a) => Action::parse(&a).unwrap_or_else(|| {
                self.problem(
                    "authorization.default",
                    format!("`{a}` is not signed-in, public or deny"),
                );
                Action::SignedIn
            }),
        };
        let allow_cors_preflight = self.bool("authorization.allow_cors_preflight");
        let raw_rules = match self.cfg.get::<Vec<rules::RawRule>>("authorization.rules") {
            Ok(raw) => raw,
            Err(config::ConfigError::NotFound(_)) => Vec::new(),
            Err(e) => {
                self.problems.push(format!("authorization.rules: {e}"));
                Vec::new()
            }
        };
        let policy = match rules::policy(raw_rules, default_action, allow_cors_preflight) {
            Ok(policy) => Some(policy),
            Err(problems) => {
                self.problems.extend(problems);
                None
            }
        };
        let headers = IdentityHeaders {
            user_id: self.header("headers.user_id"),
            session_id: self.header("headers.session_id"),
            org_id: self.header("headers.org_id"),
            org_role: self.header("headers.org_role"),
            org_slug: self.header("headers.org_slug"),
            org_permissions: self.header("headers.org_permissions"),
            actor_id: self.header("headers.actor_id"),
        };

        let publishable_key = publishable_key?;
        let api_url = api_url?;
        let keys = match (jwt_key, &secret_key) {
            (Some(key), _) => KeySettings::Pem(key),
            (None, _) if jwt_key_given => return None,
            (None, Some(sk)) => {
                let base = api_url.as_str().trim_end_matches('/');
                let url = Url::parse(&format!("{base}/{api_version}/jwks")).ok()?;
                KeySettings::Jwks {
                    url,
                    secret_key: Some(sk.clone()),
                }
            }
            (None, None) => {
                let url = Url::parse(&format!(
                    "https://{}/.well-known/jwks.json",
                    publishable_key.frontend_api()
                ))
                .ok()?;
                KeySettings::Jwks {
                    url,
                    secret_key: None,
                }
            }
        };
        Some(Settings {
            clerk: ClerkOptions {
                publishable_key,
                verify: VerifyOptions {
                    authorized_parties,
                    audience,
                    clock_skew_ms,
                },
                proxy_url,
                domain,
                is_satellite,
                sign_in_url: sign_in_url.clone(),
                org_sync,
                max_token_bytes,
            },
            keys,
            secret_key,
            api_url,
            api_version,
            sign_in_url,
            sign_up_url,
            organization_patterns,
            personal_account_patterns,
            listen: listen?,
            workers,
            forwarded_headers,
            metrics_listen,
            log_format,
            log_level,
            jwks,
            server,
            max_cached_tokens,
            vector_rsa,
            headers,
            policy: policy?,
        })
    }
}

mod rules;

#[cfg(test)]
mod tests;
