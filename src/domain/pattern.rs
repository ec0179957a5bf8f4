//! Path patterns in path-to-regexp 6 syntax (`/orgs/:slug`, `/orgs/:slug/(.*)`), compiled as
//! its `match()` compiles them: case-insensitive, an optional trailing slash, the whole path.

use regex::Regex;

/// Default pattern of a `:param`: one segment.
const DEFAULT_PATTERN: &str = r"[^/#?]+?";
const PREFIXES: &str = "./";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid path pattern `{pattern}`: {problem}")]
pub struct PatternError {
    pub pattern: String,
    pub problem: String,
}

/// One or more patterns compiled into one matcher (`match(list)`).
#[derive(Clone, Debug)]
pub struct PathPatterns {
    regex: Regex,
    /// Parameter name per capture group, in group order (`None` for unnamed groups).
    names: Vec<Option<String>>,
}

impl PathPatterns {
    pub fn compile<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut names = Vec::new();
        let mut parts = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let fail = |problem: String| PatternError {
                pattern: pattern.to_owned(),
                problem,
            };
            let tokens = parse(pattern).map_err(fail)?;
            parts.push(to_regex(&tokens, &mut names));
        }
        let source = format!("(?i)(?:{})", parts.join("|"));
        let regex = Regex::new(&source).map_err(|e| PatternError {
            pattern: patterns
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            problem: e.to_string(),
        })?;
        Ok(Self { regex, names })
    }

    /// Matches a whole path; returns its named parameters (undecoded), or `None`.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let captures = self.regex.captures(path)?;
        let params = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let name = name.as_deref()?;
                Some((name, captures.get(i + 1)?.as_str()))
            })
            .collect();
        Some(params)
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Text(String),
    Param {
        name: Option<String>,
        prefix: String,
        suffix: String,
        pattern: String,
        modifier: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Open,
    Close,
    Pattern(String),
    Name(String),
    Char(char),
    Escaped(char),
    Modifier(char),
}

fn lex(input: &str) -> Result<Vec<Lex>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' | '+' | '?' => tokens.push(Lex::Modifier(c)),
            '\\' => {
                i += 1;
                let escaped = *chars.get(i).ok_or("a trailing backslash")?;
                tokens.push(Lex::Escaped(escaped));
            }
            '{' => tokens.push(Lex::Open),
            '}' => tokens.push(Lex::Close),
            ':' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if j == start {
                    return Err(format!("a missing parameter name at {i}"));
                }
                tokens.push(Lex::Name(chars[start..j].iter().collect()));
                i = j;
                continue;
            }
            '(' => {
                let mut depth = 1;
                let mut j = i + 1;
                let mut pattern = String::new();
                if chars.get(j) == Some(&'?') {
                    return Err(format!("a pattern cannot start with \"?\" at {j}"));
                }
                while j < chars.len() {
                    match chars[j] {
                        '\\' => {
                            pattern.push('\\');
                            j += 1;
                            pattern.push(*chars.get(j).ok_or("a trailing backslash")?);
                            j += 1;
                            continue;
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                j += 1;
                                break;
                            }
                        }
                        '(' => {
                            depth += 1;
                            if chars.get(j + 1) != Some(&'?') {
                                return Err(format!("a capturing group inside a pattern at {j}"));
                            }
                        }
                        _ => {}
                    }
                    pattern.push(chars[j]);
                    j += 1;
                }
                if depth != 0 {
                    return Err(format!("an unbalanced pattern at {i}"));
                }
                if pattern.is_empty() {
                    return Err(format!("a missing pattern at {i}"));
                }
                tokens.push(Lex::Pattern(pattern));
                i = j;
                continue;
            }
            _ => tokens.push(Lex::Char(c)),
        }
        i += 1;
    }
    Ok(tokens)
}

fn parse(input: &str) -> Result<Vec<Token>, String> {
    let lexed = lex(input)?;
    let mut tokens = Vec::new();
    let mut path = String::new();
    let mut i = 0;
    let take = |i: &mut usize, f: &dyn Fn(&Lex) -> bool| -> Option<Lex> {
        let t = lexed.get(*i).filter(|t| f(t)).cloned();
        if t.is_some() {
            *i += 1;
        }
        t
    };
    let text = |i: &mut usize| -> String {
        let mut out = String::new();
        while let Some(t) = lexed.get(*i) {
            match t {
                Lex::Char(c) | Lex::Escaped(c) => out.push(*c),
                _ => break,
            }
            *i += 1;
        }
        out
    };
    let modifier = |i: &mut usize| match take(i, &|t| matches!(t, Lex::Modifier(_))) {
        Some(Lex::Modifier(m)) => m.to_string(),
        _ => String::new(),
    };
    while i < lexed.len() {
        let char = take(&mut i, &|t| matches!(t, Lex::Char(_)));
        let name = take(&mut i, &|t| matches!(t, Lex::Name(_)));
        let pattern = take(&mut i, &|t| matches!(t, Lex::Pattern(_)));
        if name.is_some() || pattern.is_some() {
            let mut prefix = match char {
                Some(Lex::Char(c)) => c.to_string(),
                _ => String::new(),
            };
            if !prefix.is_empty() && !PREFIXES.contains(prefix.as_str()) {
                path.push_str(&prefix);
                prefix.clear();
            }
            if !path.is_empty() {
                tokens.push(Token::Text(std::mem::take(&mut path)));
            }
            tokens.push(Token::Param {
                name: match name {
                    Some(Lex::Name(n)) => Some(n),
                    _ => None,
                },
                prefix,
                suffix: String::new(),
                pattern: match pattern {
                    Some(Lex::Pattern(p)) => p,
                    _ => DEFAULT_PATTERN.to_owned(),
                },
                modifier: modifier(&mut i),
            });
            continue;
        }
        if let Some(Lex::Char(c)) = char {
            path.push(c);
            continue;
        }
        if let Some(Lex::Escaped(c)) = take(&mut i, &|t| matches!(t, Lex::Escaped(_))) {
            path.push(c);
            continue;
        }
        if !path.is_empty() {
            tokens.push(Token::Text(std::mem::take(&mut path)));
        }
        if take(&mut i, &|t| matches!(t, Lex::Open)).is_some() {
            let prefix = text(&mut i);
            let name = take(&mut i, &|t| matches!(t, Lex::Name(_)));
            let pattern = take(&mut i, &|t| matches!(t, Lex::Pattern(_)));
            let suffix = text(&mut i);
            if take(&mut i, &|t| matches!(t, Lex::Close)).is_none() {
                return Err("a `{` without its `}`".to_owned());
            }
            let (name, pattern) = match (name, pattern) {
                (Some(Lex::Name(n)), Some(Lex::Pattern(p))) => (Some(n), p),
                (Some(Lex::Name(n)), _) => (Some(n), DEFAULT_PATTERN.to_owned()),
                (_, Some(Lex::Pattern(p))) => (None, p),
                _ => (None, String::new()),
            };
            tokens.push(Token::Param {
                name,
                prefix,
                suffix,
                pattern,
                modifier: modifier(&mut i),
            });
            continue;
        }
        return Err(format!("an unexpected {:?} at token {i}", lexed[i]));
    }
    if !path.is_empty() {
        tokens.push(Token::Text(path));
    }
    Ok(tokens)
}

/// `tokensToRegexp` with `strict: false, end: true`; appends each group's name to `names`.
fn to_regex(tokens: &[Token], names: &mut Vec<Option<String>>) -> String {
    let mut route = String::from("^");
    for token in tokens {
        match token {
            Token::Text(text) => route.push_str(&regex::escape(text)),
            Token::Param {
                name,
                prefix,
                suffix,
                pattern,
                modifier,
            } => {
                let (prefix, suffix) = (regex::escape(prefix), regex::escape(suffix));
                if pattern.is_empty() {
                    route.push_str(&format!("(?:{prefix}{suffix}){modifier}"));
                    continue;
                }
                names.push(name.clone());
                let repeated = modifier == "+" || modifier == "*";
                if !prefix.is_empty() || !suffix.is_empty() {
                    if repeated {
                        let optional = if modifier == "*" { "?" } else { "" };
                        route.push_str(&format!(
                            "(?:{prefix}((?:{pattern})(?:{suffix}{prefix}(?:{pattern}))*){suffix}){optional}"
                        ));
                    } else {
                        route.push_str(&format!("(?:{prefix}({pattern}){suffix}){modifier}"));
                    }
                } else if repeated {
                    route.push_str(&format!("((?:{pattern}){modifier})"));
                } else {
                    route.push_str(&format!("({pattern}){modifier}"));
                }
            }
        }
    }
    route.push_str("[/#?]?$");
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(patterns: &[&str], path: &str) -> Option<Vec<(String, String)>> {
        let compiled = PathPatterns::compile(patterns).unwrap();
        compiled.matches(path).map(|ps| {
            ps.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
    }

    fn p(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn named_params_match_one_segment() {
        let orgs = ["/orgs/:slug", "/orgs/:slug/(.*)"];
        assert_eq!(params(&orgs, "/orgs/acme"), p(&[("slug", "acme")]));
        assert_eq!(params(&orgs, "/orgs/acme/"), p(&[("slug", "acme")]));
        assert_eq!(
            params(&orgs, "/orgs/acme/settings/x"),
            p(&[("slug", "acme")])
        );
        assert_eq!(params(&orgs, "/orgs"), None);
        assert_eq!(params(&orgs, "/other/orgs/acme"), None);
    }

    #[test]
    fn matching_is_case_insensitive_and_params_are_not_decoded() {
        assert_eq!(
            params(&["/orgs/:slug"], "/ORGS/Acme%20Inc"),
            p(&[("slug", "Acme%20Inc")])
        );
    }

    #[test]
    fn the_whole_path_must_match_with_an_optional_trailing_slash() {
        let c = PathPatterns::compile(&["/me"]).unwrap();
        assert!(c.is_match("/me") && c.is_match("/me/") && c.is_match("/ME"));
        assert!(!c.is_match("/me/x") && !c.is_match("/mex") && !c.is_match("x/me"));
    }

    #[test]
    fn wildcards_modifiers_and_groups() {
        assert!(
            PathPatterns::compile(&["/files/(.*)"])
                .unwrap()
                .is_match("/files/a/b/c")
        );
        assert_eq!(params(&["/a/:id?"], "/a"), p(&[]));
        assert_eq!(params(&["/a/:id?"], "/a/7"), p(&[("id", "7")]));
        assert_eq!(params(&["/a/:rest*"], "/a/x/y"), p(&[("rest", "x/y")]));
        assert!(params(&["/a/:rest+"], "/a").is_none());
        assert_eq!(params(&["/v{1}/:x"], "/v1/q"), p(&[("x", "q")]));
        assert_eq!(params(&[r"/n/:id(\d+)"], "/n/42"), p(&[("id", "42")]));
        assert!(params(&[r"/n/:id(\d+)"], "/n/x").is_none());
    }

    #[test]
    fn the_first_matching_alternative_gives_its_params() {
        let list = ["/orgs/:id", "/teams/:slug"];
        assert_eq!(params(&list, "/teams/t1"), p(&[("slug", "t1")]));
    }

    #[test]
    fn invalid_patterns_are_rejected() {
        for bad in ["/a/:", "/a/(", "/a/()", "/a/((x))", "/a/{b", "/a/(?x)"] {
            assert!(PathPatterns::compile(&[bad]).is_err(), "{bad}");
        }
    }
}
