//! `auth.has()` (spec §5, @clerk/shared 4.41): organization role and permission, billing
//! feature and plan, and reverification freshness.

use super::auth::SessionAuth;

/// Clerk's reverification levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    FirstFactor,
    SecondFactor,
    MultiFactor,
}

impl Level {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "first_factor" => Some(Self::FirstFactor),
            "second_factor" => Some(Self::SecondFactor),
            "multi_factor" => Some(Self::MultiFactor),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FirstFactor => "first_factor",
            Self::SecondFactor => "second_factor",
            Self::MultiFactor => "multi_factor",
        }
    }
}

/// A reverification requirement: a level verified within `after_minutes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reverification {
    pub level: Level,
    pub after_minutes: u32,
}

impl Reverification {
    /// Clerk's presets (`strict_mfa`, `strict`, `moderate`, `lax`), or `<level>:<minutes>`.
    pub fn parse(s: &str) -> Option<Self> {
        let preset = |after_minutes, level| {
            Some(Self {
                level,
                after_minutes,
            })
        };
        match s {
            "strict_mfa" => preset(10, Level::MultiFactor),
            "strict" => preset(10, Level::SecondFactor),
            "moderate" => preset(60, Level::SecondFactor),
            "lax" => preset(1440, Level::SecondFactor),
            _ => {
                let (level, minutes) = s.split_once(':')?;
                let after_minutes: u32 = minutes.parse().ok().filter(|m| *m > 0)?;
                Some(Self {
                    level: Level::parse(level)?,
                    after_minutes,
                })
            }
        }
    }

    /// Whether `fva` (`[first, second]` factor ages in minutes, -1 for never) satisfies it.
    fn holds(self, fva: Option<[i64; 2]>) -> bool {
        let Some([a, b]) = fva else {
            return false;
        };
        let valid = |x: i64| x == -1 || x >= 0;
        if !valid(a) || !valid(b) || (a == -1 && b == -1) {
            return false;
        }
        let fresh = |x: i64| x != -1 && i64::from(self.after_minutes) > x;
        match self.level {
            Level::FirstFactor => fresh(a),
            Level::SecondFactor => {
                if b == -1 {
                    fresh(a)
                } else {
                    fresh(b)
                }
            }
            Level::MultiFactor => {
                if b == -1 {
                    fresh(a)
                } else if a == -1 {
                    false
                } else {
                    fresh(a) && fresh(b)
                }
            }
        }
    }
}

/// One `has()` call's parameters. Any combination may be set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HasParams {
    pub role: Option<String>,
    pub permission: Option<String>,
    pub feature: Option<String>,
    pub plan: Option<String>,
    pub reverification: Option<Reverification>,
}

/// Which requirement failed, as the 403's `x-clerk-auth-reason` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    Permission,
    Role,
    Feature,
    Plan,
    Reverification(Reverification),
}

impl Missing {
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Permission => "missing-permission",
            Self::Role => "missing-role",
            Self::Feature => "missing-feature",
            Self::Plan => "missing-plan",
            Self::Reverification(_) => "reverification-required",
        }
    }
}

impl HasParams {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `has()`: false without a user or with nothing asked; otherwise every dimension asked
    /// must pass.
    pub fn has(&self, auth: &SessionAuth) -> bool {
        !auth.user_id.is_empty() && !self.is_empty() && self.check(auth).is_ok()
    }

    /// Like `has()`, but says which requirement failed first.
    pub fn check(&self, auth: &SessionAuth) -> Result<(), Missing> {
        if self.role.is_some() || self.permission.is_some() {
            let has_org = auth.org_id.is_some();
            if let Some(permission) = &self.permission {
                let wanted = prefix_with_org(permission);
                let ok = has_org && auth.org_permissions.contains(&wanted);
                if !ok {
                    return Err(Missing::Permission);
                }
            }
            if let Some(role) = &self.role {
                let ok = has_org
                    && auth.org_role.as_deref().is_some_and(|r| {
                        !r.is_empty() && prefix_with_org(r) == prefix_with_org(role)
                    });
                if !ok {
                    return Err(Missing::Role);
                }
            }
        }
        if let Some(feature) = &self.feature
            && !billing(auth.features.as_deref(), feature)
        {
            return Err(Missing::Feature);
        }
        if let Some(plan) = &self.plan
            && !billing(auth.plans.as_deref(), plan)
        {
            return Err(Missing::Plan);
        }
        if let Some(reverification) = self.reverification
            && !reverification.holds(auth.factor_verification_age)
        {
            return Err(Missing::Reverification(reverification));
        }
        Ok(())
    }
}

/// `prefixWithOrg`: any leading run of `org:` becomes a single `org:`.
fn prefix_with_org(value: &str) -> String {
    let mut rest = value;
    while let Some(stripped) = rest.strip_prefix("org:") {
        rest = stripped;
    }
    format!("org:{rest}")
}

/// A billing check against a `fea`/`pla` claim (`scope:slug,…`).
fn billing(claim: Option<&str>, wanted: &str) -> bool {
    let Some(claim) = claim.filter(|c| !c.is_empty()) else {
        return false;
    };
    let (org, user) = match wanted.split(':').collect::<Vec<_>>().as_slice() {
        [slug] => (Some(*slug), Some(*slug)),
        [scope, slug] => match *scope {
            "o" | "org" | "organization" => (Some(*slug), None),
            "u" | "user" => (None, Some(*slug)),
            _ => return false,
        },
        _ => return false,
    };
    claim.split(',').any(|entry| {
        let Some((scope, slug)) = entry.split_once(':') else {
            return false;
        };
        (org == Some(slug) && scope.contains('o')) || (user == Some(slug) && scope.contains('u'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: &str, permissions: &[&str]) -> SessionAuth {
        SessionAuth {
            user_id: "user_1".into(),
            org_id: Some("org_1".into()),
            org_role: Some(role.into()),
            org_permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            ..SessionAuth::default()
        }
    }

    fn params(f: impl FnOnce(&mut HasParams)) -> HasParams {
        let mut p = HasParams::default();
        f(&mut p);
        p
    }

    #[test]
    fn nothing_asked_or_no_user_is_false() {
        assert!(!HasParams::default().has(&member("org:admin", &[])));
        let anonymous = SessionAuth::default();
        assert!(!params(|p| p.role = Some("admin".into())).has(&anonymous));
    }

    #[test]
    fn roles_and_permissions_are_normalised_with_the_org_prefix() {
        let admin = member("org:admin", &["org:dashboard:read"]);
        assert!(params(|p| p.role = Some("admin".into())).has(&admin));
        assert!(params(|p| p.role = Some("org:admin".into())).has(&admin));
        assert!(params(|p| p.role = Some("org:org:admin".into())).has(&admin));
        assert!(!params(|p| p.role = Some("member".into())).has(&admin));
        assert!(params(|p| p.permission = Some("dashboard:read".into())).has(&admin));
        assert!(params(|p| p.permission = Some("org:dashboard:read".into())).has(&admin));
        assert!(!params(|p| p.permission = Some("dashboard:write".into())).has(&admin));
    }

    #[test]
    fn role_and_permission_together_must_both_hold() {
        let admin = member("org:admin", &["org:dashboard:read"]);
        let both = |role: &str, perm: &str| {
            params(|p| {
                p.role = Some(role.into());
                p.permission = Some(perm.into());
            })
        };
        assert!(both("admin", "dashboard:read").has(&admin));
        assert_eq!(
            both("member", "dashboard:read").check(&admin),
            Err(Missing::Role)
        );
        assert_eq!(both("admin", "x:y").check(&admin), Err(Missing::Permission));
    }

    #[test]
    fn org_checks_fail_without_an_active_organization() {
        let personal = SessionAuth {
            user_id: "user_1".into(),
            org_role: Some("org:admin".into()),
            ..SessionAuth::default()
        };
        assert!(!params(|p| p.role = Some("admin".into())).has(&personal));
        let empty_role = member("", &[]);
        assert!(!params(|p| p.role = Some("".into())).has(&empty_role));
    }

    #[test]
    fn billing_scopes_follow_the_spec_examples() {
        let user = SessionAuth {
            user_id: "user_1".into(),
            features: Some("o:dashboard,u:x,uo:y".into()),
            plans: Some("u:pro".into()),
            ..SessionAuth::default()
        };
        let feature = |f: &str| params(|p| p.feature = Some(f.into())).has(&user);
        assert!(feature("dashboard"));
        assert!(feature("org:dashboard"));
        assert!(!feature("u:dashboard"));
        assert!(feature("user:y"));
        assert!(feature("organization:y"));
        assert!(feature("x"));
        assert!(!feature("team:x"), "unknown scope");
        assert!(!feature("a:b:c"), "parse error");
        let plan = |f: &str| params(|p| p.plan = Some(f.into())).has(&user);
        assert!(plan("pro") && plan("user:pro") && !plan("org:pro"));
        let no_claims = member("org:admin", &[]);
        assert!(!params(|p| p.feature = Some("dashboard".into())).has(&no_claims));
    }

    #[test]
    fn reverification_presets_and_custom_levels() {
        let aged = |a: i64, b: i64| SessionAuth {
            user_id: "user_1".into(),
            factor_verification_age: Some([a, b]),
            ..SessionAuth::default()
        };
        let rv = |s: &str| {
            let r = Reverification::parse(s).unwrap();
            params(move |p| p.reverification = Some(r))
        };
        // first_factor ⇒ fresh(a)
        assert!(rv("first_factor:10").has(&aged(9, -1)));
        assert!(!rv("first_factor:10").has(&aged(10, -1)));
        // second_factor ⇒ b == -1 ? fresh(a) : fresh(b)
        assert!(rv("strict").has(&aged(5, -1)));
        assert!(rv("strict").has(&aged(50, 5)));
        assert!(!rv("strict").has(&aged(5, 50)));
        assert!(rv("strict").has(&aged(-1, 5)));
        // multi_factor ⇒ b == -1 ? fresh(a) : a == -1 ? fail : fresh(a) && fresh(b)
        assert!(rv("strict_mfa").has(&aged(5, -1)));
        assert!(!rv("strict_mfa").has(&aged(-1, 5)));
        assert!(rv("strict_mfa").has(&aged(5, 5)));
        assert!(!rv("strict_mfa").has(&aged(5, 50)));
        // both -1, or a missing fva, fail
        assert!(!rv("lax").has(&aged(-1, -1)));
        assert!(!rv("lax").has(&SessionAuth {
            user_id: "u".into(),
            ..SessionAuth::default()
        }));
        assert!(rv("moderate").has(&aged(59, -1)) && !rv("moderate").has(&aged(60, -1)));
        assert!(rv("lax").has(&aged(1439, -1)));
        assert_eq!(
            rv("strict").check(&aged(50, 50)),
            Err(Missing::Reverification(Reverification {
                level: Level::SecondFactor,
                after_minutes: 10
            }))
        );
    }

    #[test]
    fn malformed_reverification_is_refused() {
        for bad in [
            "",
            "strictest",
            "second_factor",
            "second_factor:0",
            "second_factor:-1",
            "third_factor:5",
        ] {
            assert_eq!(Reverification::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn all_dimensions_asked_must_pass() {
        let user = SessionAuth {
            features: Some("u:beta".into()),
            factor_verification_age: Some([1, -1]),
            ..member("org:admin", &["org:a:b"])
        };
        let p = params(|p| {
            p.permission = Some("a:b".into());
            p.feature = Some("beta".into());
            p.reverification = Reverification::parse("strict");
        });
        assert!(p.has(&user));
        let p = params(|p| {
            p.permission = Some("a:b".into());
            p.plan = Some("pro".into());
        });
        assert_eq!(p.check(&user), Err(Missing::Plan));
    }
}
