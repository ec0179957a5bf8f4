//! Finds Clerk's cookies in the `Cookie` header(s) in one pass, with the `cookie` package's
//! rules: the first occurrence of a name wins, values are trimmed and %-decoded.

use std::borrow::Cow;

use super::request::{Headers, Name};

/// The cookies Clerk's request authentication reads (spec §1.4). Suffixed variants are kept
/// apart; the choice between them is made later (`usesSuffixedCookies`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClerkCookies<'a> {
    pub session: Option<Cow<'a, str>>,
    pub session_suffixed: Option<Cow<'a, str>>,
    pub client_uat: Option<Cow<'a, str>>,
    pub client_uat_suffixed: Option<Cow<'a, str>>,
    pub dev_browser: Option<Cow<'a, str>>,
    pub dev_browser_suffixed: Option<Cow<'a, str>>,
    pub refresh_suffixed: Option<Cow<'a, str>>,
    pub handshake: Option<Cow<'a, str>>,
    pub handshake_nonce: Option<Cow<'a, str>>,
    pub redirect_count: Option<Cow<'a, str>>,
}

impl<'a> ClerkCookies<'a> {
    /// Reads every `Cookie` header in order; `suffix` is the publishable key's cookie suffix.
    pub fn parse<H: Headers>(headers: &'a H, suffix: &str) -> Self {
        let mut found = Self::default();
        for header in headers.get_all(Name::Cookie) {
            for (name, value) in pairs(header) {
                let slot = match name {
                    "__session" => &mut found.session,
                    "__client_uat" => &mut found.client_uat,
                    "__clerk_db_jwt" => &mut found.dev_browser,
                    "__clerk_handshake" => &mut found.handshake,
                    "__clerk_handshake_nonce" => &mut found.handshake_nonce,
                    "__clerk_redirect_count" => &mut found.redirect_count,
                    _ => match suffixed(name, suffix) {
                        Some("__session") => &mut found.session_suffixed,
                        Some("__client_uat") => &mut found.client_uat_suffixed,
                        Some("__clerk_db_jwt") => &mut found.dev_browser_suffixed,
                        Some("__refresh") => &mut found.refresh_suffixed,
                        _ => continue,
                    },
                };
                if slot.is_none() {
                    *slot = Some(decode(value));
                }
            }
        }
        found
    }
}

/// `name` without `_<suffix>`, if it carries that suffix.
fn suffixed<'n>(name: &'n str, suffix: &str) -> Option<&'n str> {
    name.strip_suffix(suffix)?.strip_suffix('_')
}

/// Splits a `Cookie` header into trimmed `(name, raw value)` pairs; parts without `=` are
/// skipped, as the `cookie` package does.
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    // Split with memchr: the header holds an 800-byte session token, which `str::split`
    // searches a word at a time.
    let ends = memchr::memchr_iter(b';', header.as_bytes()).chain([header.len()]);
    let mut start = 0;
    ends.map(move |end| {
        let part = &header[start..end];
        start = end + 1;
        part
    })
    .filter_map(|part| {
        let (name, value) = part.split_once('=')?;
        Some((trim(name), trim(value)))
    })
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `decodeURIComponent`, falling back to the raw value when it would throw.
pub fn decode(value: &str) -> Cow<'_, str> {
    if memchr::memchr(b'%', value.as_bytes()).is_none() {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Cow::Borrowed(value);
    }
    match percent_encoding::percent_decode_str(value).decode_utf8() {
        Ok(decoded) => decoded,
        Err(_) => Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::tests::TestHeaders;
    use super::*;

    proptest::proptest! {
        /// The memchr split finds exactly the parts `str::split` finds.
        #[test]
        fn pairs_split_as_str_split_does(header in "[a=; %\t_é]{0,40}") {
            let by_split: Vec<_> = header
                .split(';')
                .filter_map(|part| part.split_once('='))
                .map(|(n, v)| (trim(n), trim(v)))
                .collect();
            proptest::prop_assert_eq!(pairs(&header).collect::<Vec<_>>(), by_split);
        }
    }

    #[test]
    fn finds_plain_and_suffixed_cookies() {
        let h = TestHeaders::new(&[(
            "cookie",
            "a=1; __session=s1; __session_nx2hSE6I=s2; __client_uat=10;\t__client_uat_nx2hSE6I=20; \
             __refresh_nx2hSE6I=r; __clerk_db_jwt=db; __clerk_redirect_count=2",
        )]);
        let c = ClerkCookies::parse(&h, "nx2hSE6I");
        assert_eq!(c.session.as_deref(), Some("s1"));
        assert_eq!(c.session_suffixed.as_deref(), Some("s2"));
        assert_eq!(c.client_uat.as_deref(), Some("10"));
        assert_eq!(c.client_uat_suffixed.as_deref(), Some("20"));
        assert_eq!(c.refresh_suffixed.as_deref(), Some("r"));
        assert_eq!(c.dev_browser.as_deref(), Some("db"));
        assert_eq!(c.redirect_count.as_deref(), Some("2"));
        assert_eq!(c.handshake, None);
    }

    #[test]
    fn the_first_of_a_repeated_name_wins_across_headers() {
        let h = TestHeaders::new(&[
            ("cookie", "__session=first"),
            ("cookie", "__session=second"),
        ]);
        assert_eq!(
            ClerkCookies::parse(&h, "x").session.as_deref(),
            Some("first")
        );
        let h = TestHeaders::new(&[("cookie", "__session=a; __session=b")]);
        assert_eq!(ClerkCookies::parse(&h, "x").session.as_deref(), Some("a"));
    }

    #[test]
    fn a_foreign_suffix_is_not_ours() {
        let h = TestHeaders::new(&[("cookie", "__session_other123=x; __refresh=y")]);
        let c = ClerkCookies::parse(&h, "nx2hSE6I");
        assert_eq!(c, ClerkCookies::default());
    }

    #[test]
    fn values_are_percent_decoded_unless_malformed() {
        assert_eq!(decode("a%20b"), "a b");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%41%zz"), "%41%zz");
        assert_eq!(decode("%ff"), "%ff");
        assert_eq!(decode("plain"), "plain");
    }

    #[test]
    fn parts_without_equals_are_skipped() {
        let got: Vec<_> = pairs("junk; a=1;; =2; b = 3 ").collect();
        assert_eq!(got, vec![("a", "1"), ("", "2"), ("b", "3")]);
    }
}
