//! Why a request is signed out or sent to a handshake: Clerk's `AuthErrorReason` strings plus
//! the verification reasons, as one bounded type.

use super::jwt::TokenErrorReason;

/// One list for the refresh failures' variants and both their spellings, so that none can
/// be added without the others.
macro_rules! refresh_reasons {
    ($($variant:ident => $text:literal,)*) => {
        /// Why a server-side refresh did not produce a session (spec §2.5).
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum RefreshError {
            $($variant,)*
            /// A Backend API error `code`, passed through as Clerk does.
            Bapi(String),
        }

        impl RefreshError {
            /// Every failure but a Backend API code.
            #[cfg(test)]
            const KNOWN: &[Self] = &[$(Self::$variant,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Bapi(code) => code,
                }
            }

            /// `session-token-expired-refresh-<this>` as a constant, for all but a Backend
            /// API code: every request with an expired token is refused with it, and
            /// formatting it cost each refusal an allocation and about 350 instructions.
            fn expired_reason(&self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some(concat!("session-token-expired-refresh-", $text)),)*
                    Self::Bapi(_) => None,
                }
            }
        }
    };
}

refresh_reasons! {
    NonEligibleNoRefreshCookie => "non-eligible-no-refresh-cookie",
    NonEligibleNonGet => "non-eligible-non-get",
    ExpiredSessionTokenDecodeFailed => "expired-session-token-decode-failed",
    ExpiredSessionTokenMissingSidClaim => "expired-session-token-missing-sid-claim",
    InvalidSessionToken => "invalid-session-token",
    MissingApiClient => "missing-api-client",
    MissingSessionToken => "missing-session-token",
    MissingRefreshToken => "missing-refresh-token",
    FetchError => "fetch-error",
    UnexpectedBapiError => "unexpected-bapi-error",
    UnexpectedSdkError => "unexpected-sdk-error",
}

/// Every reason a state can carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    ClientUatWithoutSessionToken,
    DevBrowserMissing,
    DevBrowserSync,
    PrimaryRespondsToSyncing,
    PrimaryDomainCrossOriginSync,
    SatelliteCookieNeedsSyncing,
    SessionTokenAndUatMissing,
    SessionTokenMissing,
    SessionTokenExpiredRefresh(RefreshError),
    SessionTokenIatBeforeClientUat,
    SessionTokenNbf,
    SessionTokenIatInTheFuture,
    SessionTokenWithoutClientUat,
    ActiveOrganizationMismatch,
    TokenTypeMismatch,
    UnexpectedError,
    /// Ours: Clerk's state is signed-in, but `toAuth()` treats a pending session as signed
    /// out (spec §4), so the proxy must not let it through.
    SessionPending,
    /// A verification failure passed through as its raw reason (spec §2.4).
    Token(TokenErrorReason),
}

impl Reason {
    /// The exact `x-clerk-auth-reason` value.
    pub fn as_str(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        Borrowed(match self {
            Self::ClientUatWithoutSessionToken => "client-uat-but-no-session-token",
            Self::DevBrowserMissing => "dev-browser-missing",
            Self::DevBrowserSync => "dev-browser-sync",
            Self::PrimaryRespondsToSyncing => "primary-responds-to-syncing",
            Self::PrimaryDomainCrossOriginSync => "primary-domain-cross-origin-sync",
            Self::SatelliteCookieNeedsSyncing => "satellite-needs-syncing",
            Self::SessionTokenAndUatMissing => "session-token-and-uat-missing",
            Self::SessionTokenMissing => "session-token-missing",
            Self::SessionTokenExpiredRefresh(refresh) => match refresh.expired_reason() {
                Some(reason) => reason,
                None => {
                    return Owned(format!(
                        "session-token-expired-refresh-{}",
                        refresh.as_str()
                    ));
                }
            },
            Self::SessionTokenIatBeforeClientUat => "session-token-iat-before-client-uat",
            Self::SessionTokenNbf => "session-token-nbf",
            Self::SessionTokenIatInTheFuture => "session-token-iat-in-the-future",
            Self::SessionTokenWithoutClientUat => "session-token-but-no-client-uat",
            Self::ActiveOrganizationMismatch => "active-organization-mismatch",
            Self::TokenTypeMismatch => "token-type-mismatch",
            Self::UnexpectedError => "unexpected-error",
            Self::SessionPending => "session-pending",
            Self::Token(reason) => reason.as_str(),
        })
    }

    /// A label value for metrics: the reason itself, except that Backend API refresh codes
    /// (an open set) are folded into one value so the label stays bounded.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::SessionTokenExpiredRefresh(refresh) => match refresh {
                RefreshError::NonEligibleNoRefreshCookie => {
                    "session-token-expired-refresh-non-eligible-no-refresh-cookie"
                }
                RefreshError::NonEligibleNonGet => {
                    "session-token-expired-refresh-non-eligible-non-get"
                }
                _ => "session-token-expired-refresh-failed",
            },
            other => match other.as_str() {
                std::borrow::Cow::Borrowed(s) => s,
                std::borrow::Cow::Owned(_) => "other",
            },
        }
    }

    /// Key problems: the service could not judge the token, which is not the client's fault.
    pub fn is_key_failure(&self) -> bool {
        matches!(self, Self::Token(reason) if reason.is_key_failure())
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_refresh_reasons_are_the_prefix_and_the_refresh_error() {
        let bapi = RefreshError::Bapi("session_not_found".into());
        for refresh in RefreshError::KNOWN.iter().chain([&bapi]) {
            let expected = format!("session-token-expired-refresh-{}", refresh.as_str());
            let reason = Reason::SessionTokenExpiredRefresh(refresh.clone());
            assert_eq!(reason.as_str(), expected);
        }
        assert_eq!(
            RefreshError::NonEligibleNoRefreshCookie.as_str(),
            "non-eligible-no-refresh-cookie"
        );
    }
}
