//! Our answer to the proxy, derived from Clerk's request state: allow, 401, redirect, or 503
//! when the keys themselves are unavailable.

use super::auth::SessionAuth;
use super::authenticate::RequestState;
use super::reason::Reason;

/// What `/verify` tells the proxy. Rendering it for a particular proxy is the adapter's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// 200 with identity headers.
    Allow {
        auth: SessionAuth,
        set_cookies: Vec<String>,
    },
    /// 401: signed out.
    SignedOut {
        reason: Reason,
        message: String,
        token_presented: bool,
        set_cookies: Vec<String>,
    },
    /// 307: a Clerk handshake (or, later, a sign-in redirect).
    Redirect {
        reason: Reason,
        message: String,
        location: String,
        set_cookies: Vec<String>,
    },
    /// 503: the token could not be judged because no keys could be loaded.
    Unavailable { reason: Reason, message: String },
}

impl Decision {
    /// Maps Clerk's state to our answer. A pending session is signed in for Clerk but
    /// signed out for `toAuth()`, so it is refused here.
    pub fn from_state(state: RequestState) -> Self {
        match state {
            RequestState::SignedIn { auth, .. } if auth.is_pending() => Self::SignedOut {
                reason: Reason::SessionPending,
                message: "The session is pending: the user must finish a session task first."
                    .into(),
                token_presented: true,
                set_cookies: Vec::new(),
            },
            RequestState::SignedIn {
                auth, set_cookies, ..
            } => Self::Allow { auth, set_cookies },
            RequestState::SignedOut {
                reason, message, ..
            } if reason.is_key_failure() => Self::Unavailable { reason, message },
            RequestState::SignedOut {
                reason,
                message,
                token_presented,
                set_cookies,
            } => Self::SignedOut {
                reason,
                message,
                token_presented,
                set_cookies,
            },
            RequestState::Handshake {
                reason,
                message,
                location,
                set_cookies,
            } => Self::Redirect {
                reason,
                message,
                location,
                set_cookies,
            },
        }
    }

    /// Bounded outcome label for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Allow { .. } => "allow",
            Self::SignedOut { .. } => "signed-out",
            Self::Redirect { .. } => "redirect",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::Allow { .. } => None,
            Self::SignedOut { reason, .. }
            | Self::Redirect { reason, .. }
            | Self::Unavailable { reason, .. } => Some(reason),
        }
    }
}
