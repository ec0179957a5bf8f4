//! URL helpers with WHATWG `URL`/`URLSearchParams` semantics, as Clerk's SDK uses them.

use std::borrow::Cow;

use url::Url;

use super::request::OriginalRequest;

/// `clerkUrl` (spec §1.2): the original request's public URL, default ports dropped.
/// Only a plain host may stand where the host goes: userinfo or a path smuggled into a
/// forwarded host would change where redirects point, so such a URL is refused.
pub fn public_url(request: &OriginalRequest<'_>) -> Option<Url> {
    if request.host.is_empty()
        || request
            .host
            .contains(['/', '\\', '@', '?', '#', ' ', '\r', '\n'])
    {
        return None;
    }
    let scheme = request.scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let path = if request.path_and_query.starts_with('/') {
        Cow::Borrowed(request.path_and_query)
    } else {
        Cow::Owned(format!("/{}", request.path_and_query))
    };
    let url = Url::parse(&format!("{scheme}://{}{path}", request.host)).ok()?;
    url.host().is_some().then_some(url)
}

/// The first value of a query parameter, decoded.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Re-serialises the query from `pairs`, dropping it when empty (WHATWG "update steps").
fn set_pairs(url: &mut Url, pairs: Vec<(String, String)>) {
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

fn pairs(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `searchParams.delete(name)` for each name. Like WHATWG, the query is re-serialised even
/// when nothing was removed.
pub fn remove_query_params(url: &mut Url, names: &[&str]) {
    if url.query().is_none() {
        return;
    }
    let kept = pairs(url)
        .into_iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .collect();
    set_pairs(url, kept);
}

/// `searchParams.set(name, value)`: replaces the first occurrence, drops the others, or
/// appends.
pub fn set_query_param(url: &mut Url, name: &str, value: &str) {
    let mut found = false;
    let mut updated = Vec::new();
    for (k, v) in pairs(url) {
        if k == name {
            if !found {
                updated.push((k, value.to_owned()));
                found = true;
            }
        } else {
            updated.push((k, v));
        }
    }
    if !found {
        updated.push((name.to_owned(), value.to_owned()));
    }
    set_pairs(url, updated);
}

/// `searchParams.append(name, value)`.
pub fn append_query_param(url: &mut Url, name: &str, value: &str) {
    url.query_pairs_mut().append_pair(name, value);
}

/// `${hostname}:${port}` as Next's `buildUrl` compares origins (the scheme is ignored).
pub fn host_and_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port().map(|p| p.to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(scheme: &'a str, host: &'a str, path: &'a str) -> OriginalRequest<'a> {
        OriginalRequest {
            method: "GET",
            scheme,
            host,
            path_and_query: path,
        }
    }

    #[test]
    fn the_public_url_drops_default_ports_and_keeps_path_and_query() {
        let u = public_url(&req("https", "app.example.com:443", "/p?a=b%20c")).unwrap();
        assert_eq!(u.as_str(), "https://app.example.com/p?a=b%20c");
        let u = public_url(&req("HTTP", "app.example.com:8080", "x")).unwrap();
        assert_eq!(u.as_str(), "http://app.example.com:8080/x");
    }

    #[test]
    fn smuggled_hosts_and_odd_schemes_are_refused() {
        for host in [
            "evil.com/x",
            "user@evil.com",
            "a b",
            "evil.com?x",
            "",
            "evil.com\\x",
        ] {
            assert!(public_url(&req("https", host, "/")).is_none(), "{host:?}");
        }
        assert!(public_url(&req("javascript", "a.com", "/")).is_none());
    }

    #[test]
    fn search_params_behave_like_whatwg() {
        let mut u = Url::parse("https://a.com/p?x=1&y=a%20b&x=2").unwrap();
        remove_query_params(&mut u, &["nothing"]);
        assert_eq!(u.query(), Some("x=1&y=a+b&x=2"));
        set_query_param(&mut u, "x", "3");
        assert_eq!(u.query(), Some("x=3&y=a+b"));
        remove_query_params(&mut u, &["x", "y"]);
        assert_eq!(u.as_str(), "https://a.com/p");
        set_query_param(&mut u, "redirect_url", "https://b.com/?q=1");
        assert_eq!(
            u.query(),
            Some("redirect_url=https%3A%2F%2Fb.com%2F%3Fq%3D1")
        );
    }
}
