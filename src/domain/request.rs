//! Rebuilds the original request (method, scheme, host, path) from what each proxy forwards.

/// The headers decisions read. A closed set, so adapters can resolve each name once
/// instead of parsing a string on every lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Authorization,
    Cookie,
    Host,
    Accept,
    SecFetchDest,
    Referer,
    Origin,
    AccessControlRequestMethod,
    XForwardedMethod,
    XForwardedProto,
    XForwardedHost,
    XForwardedUri,
    XOriginalUrl,
    XOriginalUri,
    XOriginalMethod,
}

impl Name {
    pub const ALL: [Self; 15] = [
        Self::Authorization,
        Self::Cookie,
        Self::Host,
        Self::Accept,
        Self::SecFetchDest,
        Self::Referer,
        Self::Origin,
        Self::AccessControlRequestMethod,
        Self::XForwardedMethod,
        Self::XForwardedProto,
        Self::XForwardedHost,
        Self::XForwardedUri,
        Self::XOriginalUrl,
        Self::XOriginalUri,
        Self::XOriginalMethod,
    ];

    /// The name for a lower-case header name, `None` for names decisions never read.
    pub fn from_lowercase(name: &str) -> Option<Self> {
        Some(match name {
            "authorization" => Self::Authorization,
            "cookie" => Self::Cookie,
            "host" => Self::Host,
            "accept" => Self::Accept,
            "sec-fetch-dest" => Self::SecFetchDest,
            "referer" => Self::Referer,
            "origin" => Self::Origin,
            "access-control-request-method" => Self::AccessControlRequestMethod,
            "x-forwarded-method" => Self::XForwardedMethod,
            "x-forwarded-proto" => Self::XForwardedProto,
            "x-forwarded-host" => Self::XForwardedHost,
            "x-forwarded-uri" => Self::XForwardedUri,
            "x-original-url" => Self::XOriginalUrl,
            "x-original-uri" => Self::XOriginalUri,
            "x-original-method" => Self::XOriginalMethod,
            _ => return None,
        })
    }

    /// The lower-case header name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Cookie => "cookie",
            Self::Host => "host",
            Self::Accept => "accept",
            Self::SecFetchDest => "sec-fetch-dest",
            Self::Referer => "referer",
            Self::Origin => "origin",
            Self::AccessControlRequestMethod => "access-control-request-method",
            Self::XForwardedMethod => "x-forwarded-method",
            Self::XForwardedProto => "x-forwarded-proto",
            Self::XForwardedHost => "x-forwarded-host",
            Self::XForwardedUri => "x-forwarded-uri",
            Self::XOriginalUrl => "x-original-url",
            Self::XOriginalUri => "x-original-uri",
            Self::XOriginalMethod => "x-original-method",
        }
    }
}

/// Read-only access to the auth request's headers. Values that are not visible ASCII are
/// treated as absent, so hostile bytes never reach the decision.
pub trait Headers {
    fn get(&self, name: Name) -> Option<&str>;
    fn get_all(&self, name: Name) -> impl Iterator<Item = &str>;
}

/// Every header as `(name, value)` pairs, for calls that forward them all (session refresh).
pub trait HeaderPairs {
    fn pairs(&self) -> Vec<(String, String)>;
}

/// Which forwarded-header family to trust. Each proxy overwrites a different family and
/// passes the others through from the client, so a deployment should pin its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeaders {
    /// Guess from what is present: `X-Forwarded-Uri`, then `X-Original-URL`, then
    /// `X-Original-URI`, then the Envoy path tail.
    #[default]
    Auto,
    /// `X-Forwarded-{Method,Proto,Host,Uri}`: Traefik, Caddy, and our nginx, HAProxy and
    /// Envoy recipes.
    XForwarded,
    /// `X-Original-URL` and `X-Original-Method`: ingress-nginx, which passes client
    /// `X-Forwarded-*` through unchanged.
    XOriginal,
    /// The auth request's own method, `Host` and the path after `/verify`: Envoy ext_authz
    /// with a `path_prefix`.
    Path,
}

impl ForwardedHeaders {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::XForwarded => "x-forwarded",
            Self::XOriginal => "x-original",
            Self::Path => "path",
        }
    }
}

/// The request as the client sent it to the proxy. Everything borrows from the auth
/// request, so rebuilding it costs no allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalRequest<'a> {
    pub method: &'a str,
    /// `http` or `https`, lower-case as sent.
    pub scheme: &'a str,
    /// Host and optional port, as sent.
    pub host: &'a str,
    /// Path and query, as sent (never decoded here).
    pub path_and_query: &'a str,
}

/// What the auth request itself looked like, for the dialects that use it.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequestLine<'a> {
    pub method: &'a str,
    /// What follows `/verify` in the auth request's target (path and query, leading `/`),
    /// when the proxy appended the original request to it.
    pub tail: Option<&'a str>,
}

impl<'a> OriginalRequest<'a> {
    /// Rebuilds the original request from `headers`, reading only the family `mode` trusts.
    pub fn from_headers<H: Headers>(
        mode: ForwardedHeaders,
        headers: &'a H,
        line: AuthRequestLine<'a>,
    ) -> Self {
        match mode {
            ForwardedHeaders::XForwarded => Self::x_forwarded(headers, line),
            ForwardedHeaders::XOriginal => Self::x_original(headers, line),
            ForwardedHeaders::Path => Self::envoy_path(headers, line),
            ForwardedHeaders::Auto => {
                if headers.get(Name::XForwardedUri).is_some() {
                    Self::x_forwarded(headers, line)
                } else if headers.get(Name::XOriginalUrl).is_some()
                    || headers.get(Name::XOriginalUri).is_some()
                {
                    Self::x_original(headers, line)
                } else {
                    Self::envoy_path(headers, line)
                }
            }
        }
    }

    fn x_forwarded<H: Headers>(headers: &'a H, line: AuthRequestLine<'a>) -> Self {
        Self {
            method: headers.get(Name::XForwardedMethod).unwrap_or(line.method),
            scheme: forwarded_proto(headers).unwrap_or("http"),
            host: forwarded_host(headers).unwrap_or(""),
            path_and_query: headers.get(Name::XForwardedUri).unwrap_or("/"),
        }
    }

    fn x_original<H: Headers>(headers: &'a H, line: AuthRequestLine<'a>) -> Self {
        let method = headers.get(Name::XOriginalMethod).unwrap_or(line.method);
        if let Some((scheme, host, path_and_query)) =
            headers.get(Name::XOriginalUrl).and_then(split_absolute_url)
        {
            return Self {
                method,
                scheme,
                host,
                path_and_query,
            };
        }
        // Plain nginx recipes send only the URI; the host and scheme come from the usual
        // forwarded headers or the Host the proxy kept.
        Self {
            method,
            scheme: forwarded_proto(headers).unwrap_or("http"),
            host: forwarded_host(headers).unwrap_or(""),
            path_and_query: headers.get(Name::XOriginalUri).unwrap_or("/"),
        }
    }

    fn envoy_path<H: Headers>(headers: &'a H, line: AuthRequestLine<'a>) -> Self {
        Self {
            method: line.method,
            scheme: forwarded_proto(headers).unwrap_or("http"),
            host: forwarded_host(headers).unwrap_or(""),
            path_and_query: line.tail.unwrap_or("/"),
        }
    }

    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        self.split_query().0
    }

    /// The raw query string (without `?`), if any.
    pub fn query(&self) -> Option<&'a str> {
        self.split_query().1
    }

    /// Split with memchr: `split_once('?')` builds a searcher that costs more than the rest
    /// of reading the path, which every request does.
    fn split_query(&self) -> (&'a str, Option<&'a str>) {
        let whole = self.path_and_query;
        match memchr::memchr(b'?', whole.as_bytes()) {
            Some(at) => (&whole[..at], Some(&whole[at + 1..])),
            None => (whole, None),
        }
    }
}

/// An owned header list (names lower-cased): for the `explain` command and tests.
#[derive(Clone, Debug, Default)]
pub struct HeaderList(pub Vec<(String, String)>);

impl HeaderList {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl HeaderPairs for HeaderList {
    fn pairs(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

impl Headers for HeaderList {
    fn get(&self, name: Name) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name.as_str())
            .map(|(_, v)| v.as_str())
    }

    fn get_all(&self, name: Name) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name.as_str())
            .map(|(_, v)| v.as_str())
    }
}

/// First value of a comma list, trimmed (spec §1.2: proxies append, the client's entry is
/// first).
fn first_value(value: &str) -> Option<&str> {
    // memchr rather than `split(',')`, whose searcher costs more than the rest of this on
    // the short values read here on every request.
    let end = memchr::memchr(b',', value.as_bytes()).unwrap_or(value.len());
    let first = value[..end].trim();
    (!first.is_empty()).then_some(first)
}

fn forwarded_proto<H: Headers>(headers: &H) -> Option<&str> {
    headers.get(Name::XForwardedProto).and_then(first_value)
}

fn forwarded_host<H: Headers>(headers: &H) -> Option<&str> {
    headers
        .get(Name::XForwardedHost)
        .and_then(first_value)
        .or_else(|| headers.get(Name::Host).and_then(first_value))
}

/// Splits `scheme://host/path?query` without allocating. Anything that is not an absolute
/// http(s) URL is refused, so a relative or odd value falls back to the other headers.
fn split_absolute_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(split);
    if host.is_empty() {
        return None;
    }
    Some((scheme, host, if path.is_empty() { "/" } else { path }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub use super::HeaderList as TestHeaders;

    proptest::proptest! {
        /// Near misses of every name (one byte changed, or cut short) read as a name only
        /// when they spell one exactly.
        #[test]
        fn only_a_names_own_spelling_reads_as_it(
            index in 0..Name::ALL.len(),
            at in 0..32usize,
            byte in proptest::prelude::any::<u8>(),
            cut in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = Name::ALL[index].as_str().as_bytes().to_vec();
            if cut {
                bytes.truncate(at);
            } else if let Some(slot) = bytes.get_mut(at) {
                *slot = byte;
            }
            let spelled = String::from_utf8_lossy(&bytes);
            let expected = Name::ALL.into_iter().find(|name| name.as_str() == spelled);
            proptest::prop_assert_eq!(Name::from_lowercase(&spelled), expected);
        }
    }

    #[test]
    fn every_name_reads_back_from_its_string() {
        for (index, name) in Name::ALL.into_iter().enumerate() {
            assert_eq!(name as usize, index, "ALL is in declaration order");
            assert_eq!(Name::from_lowercase(name.as_str()), Some(name));
        }
        for other in [
            "",
            "Authorization",
            "x-forwarded-port",
            "cookie2",
            "user-agent",
        ] {
            assert_eq!(Name::from_lowercase(other), None, "{other:?}");
        }
    }

    fn line() -> AuthRequestLine<'static> {
        AuthRequestLine {
            method: "GET",
            tail: None,
        }
    }

    fn rebuild(
        mode: ForwardedHeaders,
        pairs: &[(&str, &str)],
        line: AuthRequestLine<'_>,
    ) -> (String, String, String, String) {
        let headers = TestHeaders::new(pairs);
        let r = OriginalRequest::from_headers(mode, &headers, line);
        (
            r.method.into(),
            r.scheme.into(),
            r.host.into(),
            r.path_and_query.into(),
        )
    }

    fn own(m: &str, s: &str, h: &str, p: &str) -> (String, String, String, String) {
        (m.into(), s.into(), h.into(), p.into())
    }

    #[test]
    fn traefik_and_caddy_headers_rebuild_the_request() {
        let got = rebuild(
            ForwardedHeaders::Auto,
            &[
                ("Host", "auth:9000"),
                ("X-Forwarded-Method", "POST"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "app.example.com"),
                ("X-Forwarded-Uri", "/app/res?x=1"),
            ],
            line(),
        );
        assert_eq!(got, own("POST", "https", "app.example.com", "/app/res?x=1"));
    }

    #[test]
    fn the_first_value_of_a_comma_list_wins() {
        let got = rebuild(
            ForwardedHeaders::XForwarded,
            &[
                ("X-Forwarded-Proto", "https, http"),
                ("X-Forwarded-Host", "public.example.com, internal"),
                ("X-Forwarded-Uri", "/p?a=b"),
            ],
            line(),
        );
        assert_eq!(got, own("GET", "https", "public.example.com", "/p?a=b"));
    }

    #[test]
    fn ingress_nginx_original_url_rebuilds_the_request() {
        let got = rebuild(
            ForwardedHeaders::Auto,
            &[
                ("Host", "auth.svc"),
                ("X-Original-URL", "https://app.example.com:8443/a/b?c=d"),
                ("X-Original-Method", "DELETE"),
                ("X-Forwarded-Proto", ""),
            ],
            line(),
        );
        assert_eq!(
            got,
            own("DELETE", "https", "app.example.com:8443", "/a/b?c=d")
        );
    }

    #[test]
    fn an_original_url_without_a_path_means_the_root() {
        let got = rebuild(
            ForwardedHeaders::XOriginal,
            &[("X-Original-URL", "http://app.example.com")],
            line(),
        );
        assert_eq!(got, own("GET", "http", "app.example.com", "/"));
    }

    #[test]
    fn plain_nginx_original_uri_uses_the_forwarded_host() {
        let got = rebuild(
            ForwardedHeaders::Auto,
            &[
                ("Host", "127.0.0.1:9101"),
                ("X-Original-URI", "/x?y=1"),
                ("X-Original-Method", "PUT"),
                ("X-Forwarded-Host", "app.test"),
                ("X-Forwarded-Proto", "https"),
            ],
            line(),
        );
        assert_eq!(got, own("PUT", "https", "app.test", "/x?y=1"));
    }

    #[test]
    fn envoy_path_tail_and_own_method_rebuild_the_request() {
        let got = rebuild(
            ForwardedHeaders::Auto,
            &[("Host", "app.example.com"), ("X-Forwarded-Proto", "https")],
            AuthRequestLine {
                method: "PATCH",
                tail: Some("/app/res?x=1"),
            },
        );
        assert_eq!(
            got,
            own("PATCH", "https", "app.example.com", "/app/res?x=1")
        );
    }

    #[test]
    fn a_pinned_family_ignores_the_others() {
        // Behind ingress-nginx a client can send X-Forwarded-Uri; pinned to x-original it is
        // never read.
        let got = rebuild(
            ForwardedHeaders::XOriginal,
            &[
                ("X-Forwarded-Uri", "/public"),
                ("X-Forwarded-Host", "evil.example"),
                ("X-Original-URL", "https://app.example.com/admin"),
            ],
            line(),
        );
        assert_eq!(got, own("GET", "https", "app.example.com", "/admin"));
        // Behind Traefik a client can send X-Original-URL; pinned to x-forwarded it is ignored.
        let got = rebuild(
            ForwardedHeaders::XForwarded,
            &[
                ("X-Original-URL", "https://evil.example/public"),
                ("X-Forwarded-Host", "app.example.com"),
                ("X-Forwarded-Uri", "/admin"),
                ("X-Forwarded-Proto", "https"),
            ],
            line(),
        );
        assert_eq!(got, own("GET", "https", "app.example.com", "/admin"));
    }

    #[test]
    fn a_relative_original_url_is_not_trusted_as_absolute() {
        let got = rebuild(
            ForwardedHeaders::XOriginal,
            &[
                ("X-Original-URL", "/rel"),
                ("Host", "h"),
                ("X-Original-URI", "/u"),
            ],
            line(),
        );
        assert_eq!(got, own("GET", "http", "h", "/u"));
    }

    #[test]
    fn with_nothing_forwarded_the_root_of_the_host_is_assumed() {
        let got = rebuild(ForwardedHeaders::Auto, &[("Host", "h")], line());
        assert_eq!(got, own("GET", "http", "h", "/"));
    }

    #[test]
    fn path_and_query_split() {
        let headers = TestHeaders::new(&[("X-Forwarded-Uri", "/a/b?c=d&e")]);
        let r = OriginalRequest::from_headers(ForwardedHeaders::Auto, &headers, line());
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), Some("c=d&e"));
        for (uri, path, query) in [
            ("/a", "/a", None),
            ("/a?", "/a", Some("")),
            ("?q", "", Some("q")),
        ] {
            let headers = TestHeaders::new(&[("X-Forwarded-Uri", uri)]);
            let r = OriginalRequest::from_headers(ForwardedHeaders::Auto, &headers, line());
            assert_eq!((r.path(), r.query()), (path, query), "{uri}");
        }
    }
}
