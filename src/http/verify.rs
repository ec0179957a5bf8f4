//! `/verify`: rebuilds the original request, decides, and answers 200, 401, 307 or 503.
//! This is the one place a decision becomes a status code and headers.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::AppState;
use crate::config::IdentityHeaders;
use crate::domain::auth::SessionAuth;
use crate::domain::decision::{Decision, Forbidden, RedirectKind};
use crate::domain::keys::signatures_checked;
use crate::domain::reason::Reason;
use crate::domain::request::{AuthRequestLine, HeaderPairs, Headers, Name};
use crate::domain::request::{ForwardedHeaders, HeaderList};
use crate::domain::rules::query_requirements;
use crate::json;
use crate::service::{How, Outcome};

const AUTH_STATUS: HeaderName = HeaderName::from_static("x-clerk-auth-status");
const AUTH_REASON: HeaderName = HeaderName::from_static("x-clerk-auth-reason");
const AUTH_MESSAGE: HeaderName = HeaderName::from_static("x-clerk-auth-message");
const SIGNED_IN: HeaderValue = HeaderValue::from_static("signed-in");
const SIGNED_OUT: HeaderValue = HeaderValue::from_static("signed-out");
const HANDSHAKE: HeaderValue = HeaderValue::from_static("handshake");
const REDIRECT_TO: HeaderName = HeaderName::from_static("x-clerk-redirect-to");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const INVALID_TOKEN: HeaderValue = HeaderValue::from_static("Bearer error=\"invalid_token\"");
const BEARER: HeaderValue = HeaderValue::from_static("Bearer");
const EMPTY: HeaderValue = HeaderValue::from_static("");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// ingress-nginx marks its auth subrequests with it.
const X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
const MAX_MESSAGE_HEADER_BYTES: usize = 1024;

/// The identity header names, parsed once from the settings, in `identity_values`' order.
pub struct ResponseHeaders {
    names: [HeaderName; 7],
}

impl ResponseHeaders {
    pub fn new(names: &IdentityHeaders) -> Result<Self, header::InvalidHeaderName> {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).map(|n| interned(&n));
        Ok(Self {
            names: [
                name(&names.user_id)?,
                name(&names.session_id)?,
                name(&names.org_id)?,
                name(&names.org_role)?,
                name(&names.org_slug)?,
                name(&names.org_permissions)?,
                name(&names.actor_id)?,
            ],
        })
    }

    /// Every identity header, empty: a public route still overwrites forged copies.
    fn anonymous(&self, builder: &mut HttpResponseBuilder) {
        for name in &self.names {
            builder.insert_header((name.clone(), EMPTY));
        }
    }

    /// Every identity header, always: empty when unknown, so a proxy that copies them
    /// overwrites any copy a client forged. The values are built once per identity.
    fn identity(&self, builder: &mut HttpResponseBuilder, auth: &SessionAuth) {
        let built;
        let values = match auth.rendered.get_or_init(|| identity_values(auth)) {
            Some(values) => values,
            None => {
                built = identity_values(auth);
                &built
            }
        };
        for (name, value) in self.names.iter().zip(values) {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
}

/// `name` backed by a `'static` string. A name parsed from the settings is reference
/// counted, and each answer clones seven of them: an atomic write per header per request, to
/// counters every worker shares. Each distinct name is leaked once, however often settings
/// are reloaded.
fn interned(name: &HeaderName) -> HeaderName {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let name = match names.get(name.as_str()) {
        Some(&known) => known,
        None => {
            let leaked: &'static str = Box::leak(name.as_str().into());
            names.insert(leaked);
            leaked
        }
    };
    // Already parsed and lower-cased, so valid here.
    HeaderName::from_static(name)
}

/// The seven identity values, in `ResponseHeaders`' order; a value that cannot be a header
/// value is sent empty.
fn identity_values(auth: &SessionAuth) -> [HeaderValue; 7] {
    let permissions = auth.org_permissions.join(",");
    [
        Some(auth.user_id.as_str()),
        auth.session_id.as_deref(),
        auth.org_id.as_deref(),
        auth.org_role.as_deref(),
        auth.org_slug.as_deref(),
        Some(permissions.as_str()),
        auth.actor_id.as_deref(),
    ]
    .map(|value| {
        // Empty as the static value, which clones without touching a reference count.
        value
            .filter(|v| !v.is_empty())
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or(EMPTY)
    })
}

/// Read-only view of actix's header map for the domain, each value it reads found and
/// checked once: the domain asks for up to 15 names, some several times, and a lookup plus
/// check of the value per question cost more than the rest of a cached decision.
struct ActixHeaders<'a> {
    map: &'a HeaderMap,
    /// The first value of each name the domain reads, as `Name::ALL` orders them; `None`
    /// when absent or not visible ASCII.
    first: [Option<&'a str>; Name::ALL.len()],
    /// Names that came more than once, one bit per `Name`.
    repeated: u32,
}

impl<'a> ActixHeaders<'a> {
    fn new(map: &'a HeaderMap) -> Self {
        // One walk over the headers that came rather than a hashed lookup of each of the
        // 15 names: a request carries about as many, and hashing dominated (callgrind).
        let mut first = [None; Name::ALL.len()];
        let mut seen = 0u32;
        let mut repeated = 0u32;
        for (header, value) in map.iter() {
            let Some(name) = Name::from_lowercase(header.as_str()) else {
                continue;
            };
            let bit = 1 << name as u32;
            if seen & bit == 0 {
                seen |= bit;
                first[name as usize] = value_str(value);
            } else {
                repeated |= bit;
            }
        }
        Self {
            map,
            first,
            repeated,
        }
    }
}

/// `HeaderValue::to_str`, checked faster for long values. Its byte loop exits early, so it
/// cannot use vector instructions; that is cheapest for short values, but the value
/// checked most is an 800-byte token. Those are checked without an early exit, which
/// vectorises, and the then-redundant UTF-8 check is what safe code pays for the `&str`.
fn value_str(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if bytes.len() < 64 {
        return value.to_str().ok();
    }
    let mut invisible = false;
    for &b in bytes {
        invisible |= (b.wrapping_sub(b' ') > b'~' - b' ') & (b != b'\t');
    }
    if !invisible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

impl HeaderPairs for ActixHeaders<'_> {
    fn pairs(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect()
    }
}

impl Headers for ActixHeaders<'_> {
    fn get(&self, name: Name) -> Option<&str> {
        self.first[name as usize]
    }

    fn get_all(&self, name: Name) -> impl Iterator<Item = &str> {
        let all = (self.repeated & 1 << name as u32 != 0)
            .then(|| self.map.get_all(HeaderName::from_static(name.as_str())));
        let only = match all {
            Some(_) => None,
            None => self.first[name as usize],
        };
        all.into_iter()
            .flatten()
            .filter_map(|v| v.to_str().ok())
            .chain(only)
    }
}

/// How answers must look for the proxy asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Real 307s with every cookie: Traefik, Caddy, HAProxy, Envoy.
    Redirects,
    /// nginx and ingress-nginx turn any 3xx from the auth request into a 500 and drop the
    /// cookies and body of a 401/403. Redirects are answered 401 here; the recipe's
    /// `error_page` hands the request to `/answer`, which answers the browser itself.
    Nginx,
}

/// Which endpoint is answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Verify,
    Answer,
}

/// `/verify`: the check. It never reads the body: nginx announces a Content-Length it never
/// sends.
pub async fn verify(req: HttpRequest) -> HttpResponse {
    handle(&req, Endpoint::Verify).await
}

/// `/answer`: the full answer to a request `/verify` refused behind nginx (reached through
/// the recipe's `error_page`, or as ingress-nginx's `auth-signin` with `?rd=`). It runs the
/// Backend API calls `/verify` leaves out and answers the real 307 with every cookie.
pub async fn answer(req: HttpRequest) -> HttpResponse {
    handle(&req, Endpoint::Answer).await
}

/// What the auth URL's query asks for.
struct AuthQuery {
    extra: Vec<crate::domain::has::HasParams>,
    shape: Option<Shape>,
    /// ingress-nginx's `auth-signin` return URL.
    rd: Option<String>,
}

fn auth_query(query: &str, endpoint: Endpoint) -> Result<AuthQuery, String> {
    let mut shape = None;
    let mut rd = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "proxy" => {
                shape = Some(match value.as_ref() {
                    "nginx" | "ingress-nginx" => Shape::Nginx,
                    "traefik" | "caddy" | "envoy" | "haproxy" => Shape::Redirects,
                    other => {
                        return Err(format!(
                            "invalid `proxy` value `{other}` on the auth URL; allowed: nginx, ingress-nginx, traefik, caddy, envoy, haproxy"
                        ));
                    }
                });
            }
            "rd" if endpoint == Endpoint::Answer => rd = Some(value.into_owned()),
            _ => {
                rest.append_pair(&name, &value);
            }
        }
    }
    let extra = query_requirements(&rest.finish()).map_err(|e| e.to_string())?;
    Ok(AuthQuery { extra, shape, rd })
}

/// The state is borrowed from the request, and the live settings are loaded without
/// touching their reference count: both are shared by every worker, and a count every
/// request writes is a cache line the cores would pass back and forth.
async fn handle(req: &HttpRequest, endpoint: Endpoint) -> HttpResponse {
    let started = Instant::now();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        // `configure` registers it with the routes; without it nothing can be decided.
        return HttpResponse::ServiceUnavailable().finish();
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    // Envoy appends the original path and query to its path prefix; that query is the
    // original request's and is never read as requirements.
    let tail = match endpoint {
        Endpoint::Verify => target
            .strip_prefix("/verify")
            .filter(|t| t.starts_with('/')),
        Endpoint::Answer => None,
    };
    let query = match tail {
        Some(_) => Ok(AuthQuery {
            extra: Vec::new(),
            shape: None,
            rd: None,
        }),
        None => auth_query(req.query_string(), endpoint),
    };
    let query = match query {
        Ok(query) => query,
        Err(message) => {
            state.metrics.refused("bad-request", "invalid-auth-url");
            tracing::warn!(%message, "bad auth URL");
            return bad_request(&message);
        }
    };
    let mut pairs = None;
    if let Some(rd) = &query.rd {
        match return_url_headers(req.headers(), rd) {
            Ok(rebuilt) => pairs = Some(rebuilt),
            Err(message) => return bad_request(&message),
        }
    }
    let shape = query.shape.unwrap_or_else(|| {
        let ingress = req
            .headers()
            .get(X_SENT_FROM)
            .is_some_and(|v| v.as_bytes() == b"nginx-ingress-controller");
        if ingress {
            Shape::Nginx
        } else {
            Shape::Redirects
        }
    });
    let how = How {
        extra: query.extra,
        forwarded_headers: pairs.as_ref().map(|_| ForwardedHeaders::XForwarded),
        no_side_effects: endpoint == Endpoint::Verify && shape == Shape::Nginx,
        public_url: endpoint == Endpoint::Answer,
    };
    let line = AuthRequestLine {
        method: req.method().as_str(),
        tail,
    };
    let live = state.live.load();
    let own = ActixHeaders::new(req.headers());
    let checked = signatures_checked();
    let (decision, outcome) = match &pairs {
        Some(list) => live.service.decide(list, line, how).await,
        None => live.service.decide(&own, line, how).await,
    };
    let response = match (endpoint, shape) {
        (Endpoint::Answer, _) => render_answer(&decision, &live.headers, &outcome),
        (Endpoint::Verify, Shape::Nginx) => render_for_nginx(&decision, &live.headers),
        (Endpoint::Verify, Shape::Redirects) => render(&decision, &live.headers),
    };

    let reason = decision.metric_reason();
    let label = decision.outcome();
    state
        .metrics
        .decided(label, reason, started.elapsed().as_secs_f64());
    let user_id = match &decision {
        Decision::Allow { auth, .. } => auth.user_id.as_str(),
        _ => "",
    };
    // Strings recorded as strings: a `%` field goes through the formatting machinery. The
    // values are built only when the line is enabled, so `warn` joins no rule names.
    tracing::info!(
        outcome = label,
        reason,
        rule = &*outcome.rule.joined(),
        user_id,
        host = outcome.host,
        path = outcome.path,
        status = response.status().as_u16(),
        endpoint = if endpoint == Endpoint::Answer {
            "answer"
        } else {
            "verify"
        },
        "decision"
    );
    // A signature check (about 15 µs) is worth batching; a remembered token (about 1 µs)
    // is not. A count rather than a clock: an interrupt would make fast decisions look slow.
    if signatures_checked() != checked {
        after_ready_connections().await;
    }
    response
}

/// Returns once every connection already waiting on this worker has been decided, so that
/// slow answers leave in bursts. The proxy then reads several answers per wakeup instead of
/// being woken for each: waking a thread that sleeps on another core cost the sender about
/// 5 µs here, a third of a signature check (README, Performance). A task spawned now runs
/// after those already queued, as the worker's queue is first in, first out; with nothing
/// else waiting this costs two polls.
async fn after_ready_connections() {
    // An empty task cannot fail, so neither can the wait.
    let _ = actix_web::rt::spawn(async {}).await;
}

fn bad_request(message: &str) -> HttpResponse {
    ErrorBody {
        status: "bad-request",
        reason: "invalid-auth-url",
        message,
    }
    .respond(&mut HttpResponse::BadRequest())
}

/// The request's headers with the original request taken from `rd`, which must be on the
/// host this request came to: an `rd` elsewhere would make `/answer` an open redirect.
fn return_url_headers(headers: &HeaderMap, rd: &str) -> Result<HeaderList, String> {
    let url = url::Url::parse(rd).map_err(|_| format!("`rd` is not an absolute URL: {rd}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("`rd` must be an http(s) URL".into());
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let own = ActixHeaders::new(headers);
    let own_host = own
        .get(Name::XForwardedHost)
        .or_else(|| own.get(Name::Host))
        .and_then(|h| h.split(',').next())
        .map(str::trim)
        .unwrap_or("");
    if !own_host.eq_ignore_ascii_case(&authority) {
        return Err(format!("`rd` must stay on this host ({own_host})"));
    }
    let mut pairs: Vec<(String, String)> = own
        .pairs()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("x-forwarded-") && !k.starts_with("x-original-"))
        .collect();
    pairs.push(("x-forwarded-method".into(), "GET".into()));
    pairs.push(("x-forwarded-proto".into(), url.scheme().into()));
    pairs.push(("x-forwarded-host".into(), authority));
    pairs.push((
        "x-forwarded-uri".into(),
        url[url::Position::BeforePath..].to_owned(),
    ));
    Ok(HeaderList(pairs))
}

/// nginx shape: a redirect becomes a 401 (the recipe's `error_page` takes it to `/answer`),
/// everything else is as usual.
pub fn render_for_nginx(decision: &Decision, names: &ResponseHeaders) -> HttpResponse {
    let mut response = render(decision, names);
    if let Decision::Redirect {
        reason, message, ..
    } = decision
    {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(header::CONTENT_TYPE, JSON);
        // Like every 401, with a body: nginx discards it, but other clients read it.
        let reason = reason
            .as_ref()
            .map_or(decision.outcome().into(), Reason::as_str);
        let body = ErrorBody {
            status: "signed-out",
            reason: &reason,
            message,
        }
        .to_vec();
        return response.set_body(body).map_into_boxed_body();
    }
    response
}

/// `/answer`: the browser gets this directly. A decision that now allows (the cookies of a
/// completed handshake, or a race with a key refresh) sends it back to the same URL, which
/// then passes `/verify`; the redirect counter bounds that.
fn render_answer(decision: &Decision, names: &ResponseHeaders, outcome: &Outcome) -> HttpResponse {
    // A public route (anonymous) goes back too: the browser is on its way to the page.
    let set_cookies: &[String] = match decision {
        Decision::Allow { set_cookies, .. } => set_cookies,
        Decision::Anonymous { .. } => &[],
        _ => return render(decision, names),
    };
    let location = outcome
        .public_url
        .as_deref()
        .and_then(|u| HeaderValue::from_str(u).ok());
    let Some(location) = location.filter(|_| outcome.redirect_count < 3.0) else {
        return ErrorBody {
            status: "signed-out",
            reason: "answer-loop",
            message: "The request keeps being refused by /verify and allowed by /answer.",
        }
        .respond(
            HttpResponse::Unauthorized()
                .insert_header((AUTH_STATUS, SIGNED_OUT))
                .insert_header((header::CACHE_CONTROL, NO_STORE)),
        );
    };
    let mut builder = HttpResponse::build(StatusCode::TEMPORARY_REDIRECT);
    builder
        .insert_header((AUTH_STATUS, SIGNED_IN))
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::LOCATION, location));
    cookies(&mut builder, set_cookies);
    let counter = format!(
        "__clerk_redirect_count={}; SameSite=Lax; HttpOnly; Max-Age=2",
        outcome.redirect_count + 1.0
    );
    cookies(&mut builder, &[counter]);
    builder.finish()
}

/// Turns a decision into the response. One exhaustive match: a new kind of decision
/// cannot silently become a 500.
pub fn render(decision: &Decision, names: &ResponseHeaders) -> HttpResponse {
    match decision {
        Decision::Allow { auth, set_cookies } => {
            let mut builder = HttpResponse::Ok();
            builder.insert_header((AUTH_STATUS, SIGNED_IN));
            names.identity(&mut builder, auth);
            cookies(&mut builder, set_cookies);
            builder.finish()
        }
        Decision::SignedOut {
            reason,
            message,
            token_presented,
            set_cookies,
        } => {
            let mut builder = HttpResponse::Unauthorized();
            builder
                .insert_header((AUTH_STATUS, SIGNED_OUT))
                .insert_header((header::CACHE_CONTROL, NO_STORE))
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    if *token_presented {
                        INVALID_TOKEN
                    } else {
                        BEARER
                    },
                ));
            let refusal = Refusal::signed_out(&reason.as_str(), message);
            insert_debug_headers(&mut builder, refusal.reason, refusal.message);
            cookies(&mut builder, set_cookies);
            builder
                .insert_header((header::CONTENT_TYPE, JSON))
                .body(refusal.body)
        }
        Decision::Redirect {
            kind,
            reason,
            message,
            location,
            set_cookies,
        } => {
            let mut builder = HttpResponse::build(StatusCode::TEMPORARY_REDIRECT);
            let status = match kind {
                RedirectKind::Handshake => HANDSHAKE,
                RedirectKind::Return { signed_in: true } => SIGNED_IN,
                RedirectKind::Return { signed_in: false } | RedirectKind::SignIn => SIGNED_OUT,
            };
            builder
                .insert_header((AUTH_STATUS, status))
                .insert_header((header::CACHE_CONTROL, NO_STORE));
            if *kind == RedirectKind::SignIn {
                builder.insert_header((REDIRECT_TO, TRUE));
            }
            if let Ok(location) = HeaderValue::from_str(location) {
                builder.insert_header((header::LOCATION, location));
            }
            if let Some(reason) = reason {
                debug_headers(&mut builder, &reason.as_str(), message);
            }
            cookies(&mut builder, set_cookies);
            builder.finish()
        }
        Decision::Forbidden(forbidden) => {
            let mut builder = HttpResponse::Forbidden();
            builder.insert_header((header::CACHE_CONTROL, NO_STORE));
            if *forbidden != Forbidden::DeniedByRule {
                builder.insert_header((AUTH_STATUS, SIGNED_IN));
            }
            builder.insert_header((AUTH_REASON, HeaderValue::from_static(forbidden.reason())));
            match forbidden.reverification() {
                // Clerk's own error body, so that the frontend's useReverification() reacts.
                Some(r) => builder.json(serde_json::json!({
                    "clerk_error": {
                        "type": "forbidden",
                        "reason": "reverification-error",
                        "metadata": {"reverification": {"level": r.level.as_str(), "afterMinutes": r.after_minutes}},
                    }
                })),
                None => ErrorBody {
                    status: "forbidden",
                    reason: forbidden.reason(),
                    message: "",
                }
                .respond(&mut builder),
            }
        }
        Decision::Anonymous { reason } => {
            let mut builder = HttpResponse::Ok();
            builder.insert_header((AUTH_STATUS, SIGNED_OUT));
            names.anonymous(&mut builder);
            if let Some(reason) = reason
                && let Ok(value) = HeaderValue::from_str(&reason.as_str())
            {
                builder.insert_header((AUTH_REASON, value));
            }
            builder.finish()
        }
        Decision::Unavailable { reason, message } => {
            let mut builder = HttpResponse::ServiceUnavailable();
            builder
                .insert_header((AUTH_STATUS, SIGNED_OUT))
                .insert_header((header::CACHE_CONTROL, NO_STORE))
                .insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            let reason = reason.as_str();
            debug_headers(&mut builder, &reason, message);
            ErrorBody {
                status: "unavailable",
                reason: &reason,
                message,
            }
            .respond(&mut builder)
        }
    }
}

/// Serialize: the oracle its hand-written JSON is tested against.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    reason: &'a str,
    message: &'a str,
}

impl ErrorBody<'_> {
    /// The body as serde_json would write it, into one buffer sized for it: serde_json
    /// escapes byte by byte, and `HttpResponseBuilder::json` grows a string from empty.
    fn to_vec(&self) -> Vec<u8> {
        let len = r#"{"status":"","reason":"","message":""}"#.len()
            + self.status.len()
            + self.reason.len()
            + self.message.len();
        // Room for a few escapes; more only costs a reallocation.
        let mut body = String::with_capacity(len + 16);
        let members = [
            (r#"{"status":"#, self.status),
            (r#","reason":"#, self.reason),
            (r#","message":"#, self.message),
        ];
        for (prefix, value) in members {
            body.push_str(prefix);
            // Writing to a String cannot fail.
            let _ = json::write_string(&mut body, value);
        }
        body.push('}');
        body.into_bytes()
    }

    fn respond(&self, builder: &mut HttpResponseBuilder) -> HttpResponse {
        builder
            .insert_header((header::CONTENT_TYPE, JSON))
            .body(self.to_vec())
    }
}

/// Clerk's debug headers. Like Clerk, a value that cannot be a header value is skipped.
fn debug_headers(builder: &mut HttpResponseBuilder, reason: &str, message: &str) {
    let (reason, message) = debug_values(reason, message);
    insert_debug_headers(builder, reason, message);
}

fn insert_debug_headers(
    builder: &mut HttpResponseBuilder,
    reason: Option<HeaderValue>,
    message: Option<HeaderValue>,
) {
    if let Some(value) = reason {
        builder.insert_header((AUTH_REASON, value));
    }
    if let Some(value) = message {
        builder.insert_header((AUTH_MESSAGE, value));
    }
}

/// The debug headers' values. The message can quote a token's claims, so it is capped:
/// proxies refuse answers whose headers outgrow their buffers (nginx: 4–8 KiB).
fn debug_values(reason: &str, message: &str) -> (Option<HeaderValue>, Option<HeaderValue>) {
    let message = crate::domain::jwt::truncate(message, MAX_MESSAGE_HEADER_BYTES);
    (
        HeaderValue::from_str(reason).ok(),
        HeaderValue::from_str(&message)
            .ok()
            .filter(|_| !message.is_empty()),
    )
}

/// A 401's words, rendered: the debug header values and the JSON body. Clones share them.
#[derive(Clone)]
struct Refusal {
    reason: Option<HeaderValue>,
    message: Option<HeaderValue>,
    body: Bytes,
}

/// Refusals a worker remembers rendered.
const REMEMBERED_REFUSALS: usize = 4;

/// A rendered refusal with the reason and message it was rendered from.
struct Remembered {
    reason: Box<str>,
    message: Box<str>,
    refusal: Refusal,
}

thread_local! {
    /// This worker's last refusals, the most recently given first.
    static REFUSALS: RefCell<VecDeque<Remembered>> = const { RefCell::new(VecDeque::new()) };
}

impl Refusal {
    /// The signed-out answer for `reason` and `message`, rendered once per worker while it
    /// keeps being given. A client that sends a forged or expired token again is told the
    /// same words (an expired token's change each second, with the date they quote), and
    /// checking them as header values and escaping them into JSON cost each repeat about
    /// 1,700 instructions (callgrind), 5 % of a remembered token's whole 200.
    fn signed_out(reason: &str, message: &str) -> Self {
        REFUSALS.with_borrow_mut(|known| {
            let same = |k: &Remembered| *k.reason == *reason && *k.message == *message;
            if let Some(at) = known.iter().position(same) {
                // Moved to the front: an expired token's new words each second push out the
                // oldest, which must not be a forged token that is still being repeated.
                known.make_contiguous()[..=at].rotate_right(1);
                return known[0].refusal.clone();
            }
            let (reason_value, message_value) = debug_values(reason, message);
            let body = ErrorBody {
                status: "signed-out",
                reason,
                message,
            }
            .to_vec();
            let refusal = Self {
                reason: reason_value,
                message: message_value,
                body: body.into(),
            };
            known.truncate(REMEMBERED_REFUSALS - 1);
            known.push_front(Remembered {
                reason: reason.into(),
                message: message.into(),
                refusal: refusal.clone(),
            });
            refusal
        })
    }
}

fn cookies(builder: &mut HttpResponseBuilder, set_cookies: &[String]) {
    for cookie in set_cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            builder.append_header((header::SET_COOKIE, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn value_str_agrees_with_to_str(
            bytes in proptest::collection::vec(prop_oneof![1 => any::<u8>(), 200 => 0x20..0x7fu8], 0..160)
        ) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                prop_assert_eq!(value_str(&value), value.to_str().ok());
            }
        }

        #[test]
        fn every_valid_name_interns_to_itself(name in "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,24}") {
            let parsed = HeaderName::from_bytes(name.as_bytes()).unwrap();
            prop_assert_eq!(interned(&parsed), parsed);
        }

        #[test]
        fn error_bodies_are_what_serde_json_writes(
            reason in "[\\x00-\\x7f]{0,12}",
            message in prop_oneof![any::<String>(), "[\\x00-\\x7f]{0,60}"],
        ) {
            let body = ErrorBody { status: "signed-out", reason: &reason, message: &message };
            prop_assert_eq!(body.to_vec(), serde_json::to_vec(&body).unwrap());
        }
    }

    #[test]
    fn identity_header_names_are_checked_and_lowered() {
        let names = |user_id: &str| IdentityHeaders {
            user_id: user_id.into(),
            session_id: "X-Session".into(),
            org_id: "x-org-id".into(),
            org_role: "x-org-role".into(),
            org_slug: "x-org-slug".into(),
            org_permissions: "x-org-permissions".into(),
            actor_id: "x-actor".into(),
        };
        let one = ResponseHeaders::new(&names("X-User.ID~1")).unwrap();
        assert_eq!(one.names[0].as_str(), "x-user.id~1");
        assert_eq!(one.names[1].as_str(), "x-session");
        // A reload with the same names reuses the same static strings.
        let again = ResponseHeaders::new(&names("x-user.id~1")).unwrap();
        for (a, b) in one.names.iter().zip(&again.names) {
            assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "{a}");
        }
        for bad in ["", "x user", "x-user:", "x-ü"] {
            assert!(ResponseHeaders::new(&names(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_index_keeps_first_values_and_every_repeated_cookie() {
        let mut map = HeaderMap::new();
        let add = |map: &mut HeaderMap, name: &'static str, value: &'static [u8]| {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).unwrap(),
            );
        };
        add(&mut map, "cookie", b"a=1");
        add(&mut map, "cookie", b"b=2");
        add(&mut map, "x-forwarded-host", b"one.example");
        add(&mut map, "x-forwarded-host", b"two.example");
        add(&mut map, "authorization", b"Bearer \xff");
        add(&mut map, "user-agent", b"curl");
        let headers = ActixHeaders::new(&map);
        let mut cookies: Vec<_> = headers.get_all(Name::Cookie).collect();
        cookies.sort_unstable();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers.get(Name::XForwardedHost), Some("one.example"));
        assert_eq!(headers.get(Name::Authorization), None, "not visible ASCII");
        assert_eq!(headers.get(Name::Host), None);
        assert_eq!(headers.get_all(Name::Accept).count(), 0);
    }

    /// The batching rests on the worker's queue being first in, first out: the empty task
    /// a slow answer awaits must run after the connections that were already ready. A
    /// runtime that ran the newest task first would send the slow answer alone again.
    #[actix_web::test]
    async fn a_slow_answer_waits_for_the_connections_already_ready() {
        use std::cell::RefCell;
        use std::rc::Rc;

        let order = Rc::new(RefCell::new(Vec::new()));
        let log = |what: &'static str| {
            let order = Rc::clone(&order);
            move || order.borrow_mut().push(what)
        };
        let slow = {
            let done = log("slow answer");
            actix_web::rt::spawn(async move {
                after_ready_connections().await;
                done();
            })
        };
        // Woken by the same readiness event, so queued before the slow one is decided.
        let ready: Vec<_> = (0..3)
            .map(|_| {
                let done = log("ready");
                actix_web::rt::spawn(async move { done() })
            })
            .collect();
        slow.await.unwrap();
        for task in ready {
            task.await.unwrap();
        }
        assert_eq!(*order.borrow(), ["ready", "ready", "ready", "slow answer"]);
    }

    #[test]
    fn a_repeated_refusal_is_rendered_once_and_reads_the_same() {
        let (reason, message) = ("token-invalid-signature", "JWT signature is invalid.");
        let first = Refusal::signed_out(reason, message);
        let again = Refusal::signed_out(reason, message);
        assert_eq!(
            again.body.as_ptr(),
            first.body.as_ptr(),
            "shared, not rendered again"
        );
        let fresh = ErrorBody {
            status: "signed-out",
            reason,
            message,
        }
        .to_vec();
        assert_eq!(again.body, fresh);
        assert_eq!(again.reason, Some(HeaderValue::from_static(reason)));
        assert_eq!(again.message, Some(HeaderValue::from_static(message)));

        // Other words are rendered for themselves, and a worker keeps only the last few.
        for n in 0..10 {
            let message = format!("JWT is expired. Attempt {n}.");
            let refusal = Refusal::signed_out(reason, &message);
            assert_eq!(refusal.message, HeaderValue::from_str(&message).ok());
        }
        assert_eq!(REFUSALS.with_borrow(VecDeque::len), REMEMBERED_REFUSALS);
        let after = Refusal::signed_out(reason, message);
        assert_ne!(
            after.body.as_ptr(),
            first.body.as_ptr(),
            "forgotten, rendered again"
        );
        assert_eq!(after.body, fresh);

        // One still being given is not pushed out by newer words.
        for n in 0..10 {
            Refusal::signed_out(reason, &format!("JWT is expired. Second {n}."));
            let kept = Refusal::signed_out(reason, message);
            assert_eq!(kept.body.as_ptr(), after.body.as_ptr(), "second {n}");
        }

        // Words that cannot be a header value are still in the body.
        let broken = Refusal::signed_out(reason, "line\nbreak");
        assert_eq!(broken.message, None);
        assert!(
            std::str::from_utf8(&broken.body)
                .unwrap()
                .contains(r#""line\nbreak""#)
        );
    }
}
