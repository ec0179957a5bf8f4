//! Our answer to the proxy, derived from Clerk's request state: allow, 401, a redirect
//! (handshake, back to the same URL with cookies, or to sign-in), or 503 when the keys
//! themselves are unavailable.

use super::auth::SessionAuth;
use super::authenticate::{ClerkOptions, CookieChoice, RequestContext, RequestState};
use super::has::{Missing, Reverification};
use super::reason::Reason;
use super::rules::{Action, Matched};
use super::signin::sign_in_redirect;

/// What `/verify` tells the proxy. Rendering it for a particular proxy is the adapter's job.
#[derive(Clone, Debug, PartialEq, Eq)]
// Built once per request and consumed at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// 200 with identity headers.
    Allow {
        auth: std::sync::Arc<SessionAuth>,
        set_cookies: Vec<String>,
    },
    /// 401: signed out.
    SignedOut {
        reason: Reason,
        message: String,
        token_presented: bool,
        set_cookies: Vec<String>,
    },
    /// 307.
    Redirect {
        kind: RedirectKind,
        reason: Option<Reason>,
        message: String,
        location: String,
        set_cookies: Vec<String>,
    },
    /// 503: the token could not be judged because no keys could be loaded.
    Unavailable { reason: Reason, message: String },
    /// 403: signed in but missing a requirement, or a `deny` rule.
    Forbidden(Forbidden),
    /// 200 without identity: a public route, signed out (or a permitted CORS preflight).
    Anonymous { reason: Option<Reason> },
}

/// Why a request is refused with a 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    Missing(Missing),
    DeniedByRule,
}

impl Forbidden {
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Missing(missing) => missing.reason(),
            Self::DeniedByRule => "denied-by-rule",
        }
    }

    /// The reverification Clerk's frontend should ask for, if that is what failed.
    pub const fn reverification(self) -> Option<Reverification> {
        match self {
            Self::Missing(Missing::Reverification(r)) => Some(r),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// To Clerk's Frontend API handshake (or a multi-domain sync hop).
    Handshake,
    /// Back to the same URL with new cookies: a completed handshake or a refresh.
    Return { signed_in: bool },
    /// To the sign-in page.
    SignIn,
}

impl Decision {
    /// Maps Clerk's state to our answer. A pending session is signed in for Clerk but signed
    /// out for `toAuth()`; signed-out page loads go to sign-in when a sign-in URL is set.
    pub fn decide(
        state: RequestState,
        ctx: &RequestContext<'_>,
        options: &ClerkOptions,
        now_ms: i64,
    ) -> Self {
        Self::decide_for(state, ctx, options, now_ms, true)
    }

    /// `decide` for a route; sign-in redirects happen only where a session is required.
    pub fn decide_for(
        state: RequestState,
        ctx: &RequestContext<'_>,
        options: &ClerkOptions,
        now_ms: i64,
        protected: bool,
    ) -> Self {
        let sign_in = |pending: bool| {
            if !protected || !ctx.is_doc_eligible() {
                return None;
            }
            let cookies = CookieChoice::new(options, ctx, now_ms, &super::verified::NoCache);
            sign_in_redirect(
                options,
                ctx.clerk_url(),
                cookies.dev_browser.as_deref(),
                pending,
            )
        };
        match state {
            RequestState::SignedIn {
                auth,
                set_cookies,
                location: Some(location),
                ..
            } => Self::Redirect {
                kind: RedirectKind::Return {
                    signed_in: !auth.is_pending(),
                },
                reason: None,
                message: String::new(),
                location,
                set_cookies,
            },
            RequestState::SignedIn {
                auth, set_cookies, ..
            } if auth.is_pending() => match sign_in(true) {
                Some(location) => Self::Redirect {
                    kind: RedirectKind::SignIn,
                    reason: Some(Reason::SessionPending),
                    message: String::new(),
                    location,
                    set_cookies,
                },
                None => Self::SignedOut {
                    reason: Reason::SessionPending,
                    message: "The session is pending: the user must finish a session task first."
                        .into(),
                    token_presented: true,
                    set_cookies,
                },
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
                set_cookies,
                location: Some(location),
                ..
            } => Self::Redirect {
                kind: RedirectKind::Return { signed_in: false },
                reason: Some(reason),
                message,
                location,
                set_cookies,
            },
            RequestState::SignedOut {
                reason,
                message,
                token_presented,
                set_cookies,
                location: None,
            } => match sign_in(false) {
                Some(location) => Self::Redirect {
                    kind: RedirectKind::SignIn,
                    reason: Some(reason),
                    message,
                    location,
                    set_cookies,
                },
                None => Self::SignedOut {
                    reason,
                    message,
                    token_presented,
                    set_cookies,
                },
            },
            RequestState::Handshake {
                reason,
                message,
                location,
                set_cookies,
            } => Self::Redirect {
                kind: RedirectKind::Handshake,
                reason: Some(reason),
                message,
                location,
                set_cookies,
            },
        }
    }

    /// Applies the matched rule to the authentication outcome. Public routes let signed-out
    /// requests through without identity (handshakes still happen, as `clerkMiddleware()`
    /// runs them on every route); protected routes check their requirements.
    pub fn authorize(self, matched: &Matched<'_>) -> Self {
        match (matched.action, self) {
            (Action::Deny, _) => Self::Forbidden(Forbidden::DeniedByRule),
            (Action::Public, Self::SignedOut { reason, .. } | Self::Unavailable { reason, .. }) => {
                Self::Anonymous {
                    reason: Some(reason),
                }
            }
            (
                Action::Public,
                Self::Redirect {
                    kind: RedirectKind::SignIn,
                    reason,
                    ..
                },
            ) => Self::Anonymous { reason },
            (Action::SignedIn, Self::Allow { auth, set_cookies }) => match matched.check(&auth) {
                Ok(()) => Self::Allow { auth, set_cookies },
                Err(missing) => Self::Forbidden(Forbidden::Missing(missing)),
            },
            (_, other) => other,
        }
    }

    /// Bounded outcome label for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::Anonymous { .. } => "anonymous",
            Self::Allow { .. } => "allow",
            Self::SignedOut { .. } => "signed-out",
            Self::Redirect {
                kind: RedirectKind::Handshake,
                ..
            } => "handshake",
            Self::Redirect {
                kind: RedirectKind::Return { .. },
                ..
            } => "return",
            Self::Redirect {
                kind: RedirectKind::SignIn,
                ..
            } => "sign-in",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// The reason as a bounded metric label (`none` when there is none).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Forbidden(forbidden) => forbidden.reason(),
            other => other.reason().map_or("none", Reason::metric_label),
        }
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::Allow { .. } | Self::Forbidden(_) => None,
            Self::Anonymous { reason } => reason.as_ref(),
            Self::Redirect { reason, .. } => reason.as_ref(),
            Self::SignedOut { reason, .. } | Self::Unavailable { reason, .. } => Some(reason),
        }
    }
}
