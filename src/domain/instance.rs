//! The Clerk instance a deployment protects: publishable key, frontend API and cookie suffix.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};

/// Whether the instance is a development or a production one; Clerk takes this from the
/// publishable key prefix (spec §1.1), and it changes which cookie-path rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceType {
    Development,
    Production,
}

/// A parsed `pk_test_…`/`pk_live_…` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishableKey {
    raw: String,
    frontend_api: String,
    instance_type: InstanceType,
    cookie_suffix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "not a Clerk publishable key: expected pk_test_… or pk_live_… followed by the base64 of \
     `<frontend-api-host>$`"
)]
pub struct InvalidPublishableKey;

impl PublishableKey {
    /// Parses a key with Clerk's own validity rules (spec §1.1): three `_`-separated parts,
    /// and a base64 body that decodes to a host containing a `.` and ending in one `$`.
    pub fn parse(raw: &str) -> Result<Self, InvalidPublishableKey> {
        let raw = raw.trim();
        let instance_type = if raw.starts_with("pk_live_") {
            InstanceType::Production
        } else if raw.starts_with("pk_test_") {
            InstanceType::Development
        } else {
            return Err(InvalidPublishableKey);
        };
        let parts: Vec<&str> = raw.split('_').collect();
        if parts.len() != 3 {
            return Err(InvalidPublishableKey);
        }
        // atob accepts the body with or without `=` padding.
        let body = parts[2].trim_end_matches('=');
        let decoded = STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| InvalidPublishableKey)?;
        let decoded = String::from_utf8(decoded).map_err(|_| InvalidPublishableKey)?;
        let Some(host) = decoded.strip_suffix('$') else {
            return Err(InvalidPublishableKey);
        };
        if host.contains('$') || !host.contains('.') {
            return Err(InvalidPublishableKey);
        }
        Ok(Self {
            cookie_suffix: cookie_suffix(raw),
            raw: raw.to_owned(),
            frontend_api: host.to_owned(),
            instance_type,
        })
    }

    /// Builds the key Clerk would issue for `frontend_api`; used by `dev` mode and tests.
    pub fn for_frontend_api(frontend_api: &str, instance_type: InstanceType) -> Self {
        let prefix = match instance_type {
            InstanceType::Development => "pk_test_",
            InstanceType::Production => "pk_live_",
        };
        let raw = format!(
            "{prefix}{}",
            STANDARD_NO_PAD.encode(format!("{frontend_api}$"))
        );
        Self {
            cookie_suffix: cookie_suffix(&raw),
            raw,
            frontend_api: frontend_api.to_owned(),
            instance_type,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The Frontend API host, e.g. `foo-bar-13.clerk.accounts.dev` or `clerk.example.com`.
    pub fn frontend_api(&self) -> &str {
        &self.frontend_api
    }

    pub fn instance_type(&self) -> InstanceType {
        self.instance_type
    }

    /// The 8-character suffix of `__session_<sfx>` and friends (spec §1.4).
    pub fn cookie_suffix(&self) -> &str {
        &self.cookie_suffix
    }
}

/// First 8 characters of URL-safe base64(SHA-1(publishable key)). Several Clerk apps on one
/// domain keep their cookies apart with it.
fn cookie_suffix(publishable_key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        publishable_key.as_bytes(),
    );
    let mut encoded = URL_SAFE.encode(digest.as_ref());
    encoded.truncate(8);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_PK: &str = "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk";
    const PROD_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";

    #[test]
    fn a_development_key_decodes_to_its_frontend_api_and_suffix() {
        let pk = PublishableKey::parse(DEV_PK).unwrap();
        assert_eq!(pk.frontend_api(), "foo-bar-13.clerk.accounts.dev");
        assert_eq!(pk.instance_type(), InstanceType::Development);
        assert_eq!(pk.cookie_suffix(), "nx2hSE6I");
    }

    #[test]
    fn a_production_key_decodes_to_its_frontend_api_and_suffix() {
        let pk = PublishableKey::parse(PROD_PK).unwrap();
        assert_eq!(pk.frontend_api(), "clerk.example.com");
        assert_eq!(pk.instance_type(), InstanceType::Production);
        assert_eq!(pk.cookie_suffix(), "naoXFJnI");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "pk_test_",
            "sk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk",
            "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk_extra",
            "pk_test_Zm9vLmJhcg",   // no trailing $
            "pk_test_Zm9vJA",       // "foo$": no dot
            "pk_test_Zm9vJC5iYXIk", // "foo$.bar$": two $
            "pk_test_!!!!",
        ] {
            assert_eq!(
                PublishableKey::parse(bad),
                Err(InvalidPublishableKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_built_key_round_trips_through_parse() {
        let pk = PublishableKey::for_frontend_api("clerk.example.com", InstanceType::Production);
        assert_eq!(pk.as_str(), PROD_PK);
        assert_eq!(PublishableKey::parse(pk.as_str()).unwrap(), pk);
    }
}
