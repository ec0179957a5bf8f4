//! The `[authorization]` section: route rules from the configuration file, validated into
//! the domain's `Policy`, every problem named by its rule.

use serde::Deserialize;

use crate::domain::has::{HasParams, Reverification};
use crate::domain::pattern::PathPatterns;
use crate::domain::rules::{Action, PathMatch, Policy, Requirements, Rule};

/// A string or a list of strings.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// One `has()` object as written in the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHas {
    permission: Option<String>,
    role: Option<String>,
    feature: Option<String>,
    plan: Option<String>,
    reverification: Option<RawReverification>,
}

/// A preset name (`strict`) or `{ level, after_minutes }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RawReverification {
    Preset(String),
    Custom { level: String, after_minutes: u32 },
}

/// One `[[authorization.rules]]` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRule {
    name: Option<String>,
    hosts: Option<OneOrMany>,
    path: Option<OneOrMany>,
    path_prefix: Option<OneOrMany>,
    path_pattern: Option<OneOrMany>,
    case_sensitive: bool,
    methods: Option<OneOrMany>,
    action: Option<String>,
    permission: Option<OneOrMany>,
    role: Option<OneOrMany>,
    feature: Option<OneOrMany>,
    plan: Option<OneOrMany>,
    reverification: Option<RawReverification>,
    all: Vec<RawHas>,
    any: Vec<RawHas>,
}

fn reverification(raw: &RawReverification) -> Result<Reverification, String> {
    let parsed = match raw {
        RawReverification::Preset(preset) => Reverification::parse(preset),
        RawReverification::Custom {
            level,
            after_minutes,
        } => Reverification::parse(&format!("{level}:{after_minutes}")),
    };
    parsed.ok_or_else(|| {
        "reverification must be strict_mfa, strict, moderate, lax, or { level = \"first_factor\"|\"second_factor\"|\"multi_factor\", after_minutes = N > 0 }".to_owned()
    })
}

fn has(raw: &RawHas) -> Result<HasParams, String> {
    let params = HasParams {
        permission: raw.permission.clone(),
        role: raw.role.clone(),
        feature: raw.feature.clone(),
        plan: raw.plan.clone(),
        reverification: raw
            .reverification
            .as_ref()
            .map(reverification)
            .transpose()?,
    };
    if params.is_empty() {
        return Err("an empty requirement (has() with nothing asked is always false)".into());
    }
    Ok(params)
}

/// Builds one rule, or says what is wrong with it.
fn rule(index: usize, raw: RawRule) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("rule-{}", index + 1));
    let action = match raw.action.as_deref() {
        None => Action::SignedIn,
        Some(a) => Action::parse(a).unwrap_or_else(|| {
            problems.push(format!("action `{a}` is not public, signed-in or deny"));
            Action::SignedIn
        }),
    };
    let kinds = [
        raw.path.is_some(),
        raw.path_prefix.is_some(),
        raw.path_pattern.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        problems.push("use one of path, path_prefix and path_pattern".into());
    }
    let must_start_with_slash = |paths: &[String], problems: &mut Vec<String>| {
        for p in paths {
            if !p.starts_with('/') {
                problems.push(format!("path `{p}` must start with `/`"));
            }
        }
    };
    let paths = if let Some(paths) = raw.path {
        let paths = paths.into_vec();
        must_start_with_slash(&paths, &mut problems);
        PathMatch::Exact(paths)
    } else if let Some(prefixes) = raw.path_prefix {
        let prefixes = prefixes.into_vec();
        must_start_with_slash(&prefixes, &mut problems);
        PathMatch::Prefix(prefixes)
    } else if let Some(patterns) = raw.path_pattern {
        match PathPatterns::compile(&patterns.into_vec()) {
            Ok(compiled) => PathMatch::Pattern(compiled),
            Err(e) => {
                problems.push(e.to_string());
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let hosts: Vec<String> = raw
        .hosts
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for host in &hosts {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.is_empty() || bare.contains(['*', '/', ':', ' ']) {
            problems.push(format!("host `{host}` must be a host name or `*.domain`"));
        }
    }
    let methods: Vec<String> = raw
        .methods
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    let mut requirements = Requirements::default();
    let shorthand = |values: Option<OneOrMany>, set: fn(&mut HasParams, String)| {
        values
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(move |v| {
                let mut p = HasParams::default();
                set(&mut p, v);
                p
            })
    };
    requirements
        .all
        .extend(shorthand(raw.permission, |p, v| p.permission = Some(v)));
    requirements
        .all
        .extend(shorthand(raw.role, |p, v| p.role = Some(v)));
    requirements
        .all
        .extend(shorthand(raw.feature, |p, v| p.feature = Some(v)));
    requirements
        .all
        .extend(shorthand(raw.plan, |p, v| p.plan = Some(v)));
    if let Some(r) = &raw.reverification {
        match reverification(r) {
            Ok(r) => requirements.all.push(HasParams {
                reverification: Some(r),
                ..HasParams::default()
            }),
            Err(e) => problems.push(e),
        }
    }
    for (list, target) in [
        (&raw.all, &mut requirements.all),
        (&raw.any, &mut requirements.any),
    ] {
        for item in list {
            match has(item) {
                Ok(params) => target.push(params),
                Err(e) => problems.push(e),
            }
        }
    }
    if action != Action::SignedIn && !requirements.is_empty() {
        problems.push(format!(
            "a `{}` rule cannot have requirements",
            action.as_str()
        ));
    }
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|p| format!("authorization.rules[{index}] ({name}): {p}"))
            .collect());
    }
    Ok(Rule {
        name: name.into(),
        hosts,
        paths,
        case_sensitive: raw.case_sensitive,
        methods,
        action,
        requirements,
    })
}

/// Builds the policy from the raw rules, the default action and the preflight switch.
pub fn policy(
    raw: Vec<RawRule>,
    default: Action,
    allow_cors_preflight: bool,
) -> Result<Policy, Vec<String>> {
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    for (index, raw) in raw.into_iter().enumerate() {
        match rule(index, raw) {
            Ok(rule) => rules.push(rule),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Policy {
        rules,
        default,
        default_requirements: Requirements::default(),
        allow_cors_preflight,
    })
}
