//! Claims → the signed-in auth object (`signedInAuthObject`, spec §4), v1 and v2 org claims.

use serde_json::Value;

use super::jwt::Payload;

/// What Clerk's `auth()` exposes for a signed-in session token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAuth {
    pub user_id: String,
    pub session_id: Option<String>,
    /// `sts`: `active`, `pending`, or absent.
    pub session_status: Option<String>,
    /// `act.sub`: the impersonating user, when a session is impersonated.
    pub actor_id: Option<String>,
    pub org_id: Option<String>,
    /// Always `org:`-prefixed, as Clerk exposes it.
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    pub org_permissions: Vec<String>,
    /// `fea` and `pla`, comma lists of `scope:slug`, kept raw for `has()`.
    pub features: Option<String>,
    pub plans: Option<String>,
    /// `fva`: minutes since first and second factor verification, -1 for never.
    pub factor_verification_age: Option<[i64; 2]>,
    /// What an adapter derives from this identity (its answer headers), built once per
    /// remembered session instead of once per request.
    pub rendered: Rendered,
}

/// A write-once slot for an adapter's rendering of an identity. It takes no part in
/// comparisons, and a copy starts empty.
#[derive(Default)]
pub struct Rendered(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Rendered {
    /// The value of type `T` kept here, built by `init` on first use. `None` only if a
    /// value of another type is already kept.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl Clone for Rendered {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Rendered {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Rendered {}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered")
    }
}

impl SessionAuth {
    /// Builds the auth object from a verified payload (which always has a string `sub`). It
    /// takes the payload so that the strings move instead of being copied.
    pub fn from_claims(mut claims: Payload) -> Self {
        let mut take = |name| match claims.take(name) {
            Some(Value::String(value)) => Some(value),
            _ => None,
        };
        let mut auth = Self {
            user_id: take("sub").unwrap_or_default(),
            session_id: take("sid"),
            session_status: take("sts"),
            features: take("fea"),
            plans: take("pla"),
            ..Self::default()
        };
        let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        auth.actor_id = claims.get("act").and_then(|act| string(act.get("sub")));
        auth.factor_verification_age = claims.get("fva").and_then(factor_age);
        if claims.get("v").and_then(Value::as_i64) == Some(2) {
            if let Some(org) = claims.get("o").and_then(Value::as_object) {
                auth.org_id = string(org.get("id"));
                auth.org_slug = string(org.get("slg"));
                auth.org_role = string(org.get("rol")).map(|r| format!("org:{r}"));
                auth.org_permissions = v2_permissions(
                    auth.features.as_deref(),
                    org.get("per").and_then(Value::as_str),
                    org.get("fpm").and_then(Value::as_str),
                );
            }
        } else {
            auth.org_id = string(claims.get("org_id"));
            auth.org_slug = string(claims.get("org_slug"));
            auth.org_role = string(claims.get("org_role"));
            auth.org_permissions = claims
                .get("org_permissions")
                .and_then(Value::as_array)
                .map(|perms| {
                    perms
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
        }
        auth
    }

    /// Clerk's `toAuth()` treats a pending session as signed out by default.
    pub fn is_pending(&self) -> bool {
        self.session_status.as_deref() == Some("pending")
    }
}

fn factor_age(value: &Value) -> Option<[i64; 2]> {
    let items = value.as_array()?;
    match items.as_slice() {
        [a, b] => Some([a.as_i64()?, b.as_i64()?]),
        _ => None,
    }
}

/// v2 org permissions: for org feature *i* (in `fea` order) and permission *j* (in `per`
/// order), bit *j* of `fpm[i]` grants `org:<feature>:<permission>`.
fn v2_permissions(fea: Option<&str>, per: Option<&str>, fpm: Option<&str>) -> Vec<String> {
    let (Some(fea), Some(per), Some(fpm)) = (fea, per, fpm) else {
        return Vec::new();
    };
    let permissions: Vec<&str> = per.split(',').collect();
    let org_features = fea.split(',').filter_map(|element| {
        let (scope, slug) = element.split_once(':')?;
        scope.contains('o').then_some(slug)
    });
    let mut granted = Vec::new();
    for (feature, bits) in org_features.zip(fpm.split(',')) {
        let Some(bits) = parse_int_prefix(bits) else {
            continue;
        };
        for (j, permission) in permissions.iter().enumerate().take(64) {
            if bits >> j & 1 == 1 {
                granted.push(format!("org:{feature}:{permission}"));
            }
        }
    }
    granted
}

/// `parseInt(s, 10)` for non-negative values: leading digits after optional spaces.
fn parse_int_prefix(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    s[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth(claims: Value) -> SessionAuth {
        SessionAuth::from_claims(Payload::from_map(claims.as_object().unwrap().clone()))
    }

    #[test]
    fn v2_org_claims_expand_to_role_slug_and_permissions() {
        let a = auth(json!({
            "sub": "user_1", "sid": "sess_1", "v": 2, "fea": "o:dashboard,o:billing,u:x",
            "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,2"}
        }));
        assert_eq!(a.org_id.as_deref(), Some("org_1"));
        assert_eq!(a.org_slug.as_deref(), Some("acme"));
        assert_eq!(a.org_role.as_deref(), Some("org:admin"));
        assert_eq!(
            a.org_permissions,
            [
                "org:dashboard:read",
                "org:dashboard:manage",
                "org:billing:manage"
            ]
        );
    }

    #[test]
    fn v2_without_o_has_no_org() {
        let a = auth(json!({"sub": "user_1", "v": 2, "fea": "o:dashboard"}));
        assert_eq!(
            (a.org_id, a.org_role, a.org_permissions.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn v2_non_digit_fpm_entries_grant_nothing() {
        let a = auth(json!({
            "sub": "u", "v": 2, "fea": "ou:a,uo:b,o:c",
            "o": {"id": "org_1", "rol": "member", "per": "read", "fpm": "x,1,-1"}
        }));
        assert_eq!(a.org_permissions, ["org:b:read"]);
    }

    #[test]
    fn v1_org_claims_are_taken_as_they_are() {
        let a = auth(json!({
            "sub": "user_1", "org_id": "org_1", "org_role": "org:admin", "org_slug": "acme",
            "org_permissions": ["org:invoices:read", 5]
        }));
        assert_eq!(a.org_role.as_deref(), Some("org:admin"));
        assert_eq!(a.org_permissions, ["org:invoices:read"]);
    }

    #[test]
    fn actor_status_and_factor_age_are_read() {
        let a = auth(json!({
            "sub": "user_1", "sts": "pending", "act": {"sub": "user_admin"}, "fva": [3, -1]
        }));
        assert!(a.is_pending());
        assert_eq!(a.actor_id.as_deref(), Some("user_admin"));
        assert_eq!(a.factor_verification_age, Some([3, -1]));
    }
}
