//! `clerk-forward-auth explain`: one request, decided step by step in plain words, for the
//! 401 or 403 nobody understands. It runs the same code as `/verify`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use url::Url;

use crate::config::Settings;
use crate::domain::cookies::ClerkCookies;
use crate::domain::decision::Decision;
use crate::domain::has::HasParams;
use crate::domain::jwt;
use crate::domain::request::{AuthRequestLine, ForwardedHeaders, HeaderList};
use crate::domain::rules::Requirements;
use crate::domain::time::now_ms;
use crate::http::verify::{ResponseHeaders, render};
use crate::metrics::Metrics;
use crate::service::{Keys, Service};

/// What to explain.
pub struct Request {
    pub method: String,
    pub url: String,
    pub token: Option<String>,
    pub cookie: Option<String>,
    /// Extra `Name: value` headers, e.g. `Sec-Fetch-Dest: document`.
    pub headers: Vec<String>,
}

pub async fn run(
    file: Option<PathBuf>,
    env: &HashMap<String, String>,
    request: Request,
) -> ExitCode {
    let (settings, _) = match Settings::load(file.as_deref(), env) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("The configuration is invalid:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    match Box::pin(explain(&settings, &request)).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            println!("{problem}");
            ExitCode::FAILURE
        }
    }
}

/// The whole explanation as text.
pub async fn explain(settings: &Settings, request: &Request) -> Result<String, String> {
    let url = Url::parse(&request.url)
        .map_err(|e| format!("--url `{}` is not an absolute URL: {e}", request.url))?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let path = url[url::Position::BeforePath..].to_owned();
    let mut pairs = vec![
        (
            "x-forwarded-method".to_owned(),
            request.method.to_ascii_uppercase(),
        ),
        ("x-forwarded-proto".to_owned(), url.scheme().to_owned()),
        ("x-forwarded-host".to_owned(), host.clone()),
        ("x-forwarded-uri".to_owned(), path.clone()),
    ];
    if let Some(token) = &request.token {
        pairs.push(("authorization".into(), format!("Bearer {token}")));
    }
    if let Some(cookie) = &request.cookie {
        pairs.push(("cookie".into(), cookie.clone()));
    }
    for header in &request.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header `{header}` is not `Name: value`"))?;
        pairs.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let headers = HeaderList(pairs);

    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let mut service = Service::new(settings, &metrics, None).map_err(|e| e.to_string())?;
    service.forwarded_headers = ForwardedHeaders::XForwarded;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Request   {} {url}",
        request.method.to_ascii_uppercase()
    );
    let _ = writeln!(
        out,
        "Instance  {} ({:?})",
        settings.clerk.publishable_key.frontend_api(),
        settings.clerk.instance_type()
    );
    if let Keys::Jwks(jwks) = &service.keys {
        match jwks.load().await {
            Ok(()) => {
                let _ = writeln!(out, "Keys      JWKS loaded");
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "Keys      JWKS could not be loaded: {}",
                    e.error.message
                );
            }
        }
    }

    let matched = service
        .policy
        .matched(&request.method.to_ascii_uppercase(), &host, &path);
    let _ = writeln!(
        out,
        "\nRule      {} → {}",
        matched.names,
        matched.action.as_str()
    );
    for requirements in matched.requirements() {
        let _ = writeln!(out, "          requires {}", describe(requirements));
    }

    let suffix = settings.clerk.publishable_key.cookie_suffix();
    let cookies = ClerkCookies::parse(&headers, suffix);
    let token = request.token.clone().or_else(|| {
        cookies
            .session_suffixed
            .clone()
            .or(cookies.session.clone())
            .map(|c| c.into_owned())
    });
    match &token {
        Some(token) => {
            let carrier = if request.token.is_some() {
                "Authorization: Bearer"
            } else {
                "the __session cookie"
            };
            let _ = writeln!(out, "\nToken     from {carrier}, checked in Clerk's order:");
            for step in jwt::explain(token, &service.keys, &settings.clerk.verify, now_ms()).await {
                let line = match &step.outcome {
                    Ok(detail) => format!("ok    {detail}"),
                    Err(e) => format!("FAIL  {} ({})", e.message, e.reason.as_str()),
                };
                let _ = writeln!(out, "  {:<10}{line}", step.name);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "\nToken     none (no Authorization header, no __session cookie)"
            );
        }
    }

    let line = AuthRequestLine {
        method: "GET",
        tail: None,
    };
    let (decision, _) = service
        .decide(&headers, line, crate::service::How::default())
        .await;
    let reason = decision.metric_reason();
    let _ = writeln!(out, "\nDecision  {} (reason: {reason})", decision.outcome());
    if let Decision::Allow { auth, .. } = &decision {
        let _ = writeln!(out, "          user {}", auth.user_id);
    }
    let names = ResponseHeaders::new(&settings.headers).map_err(|e| e.to_string())?;
    let response = render(&decision, &names);
    let _ = writeln!(out, "\nAnswer    {}", response.status());
    let mut lines: Vec<String> = response
        .headers()
        .iter()
        .map(|(k, v)| format!("  {k}: {}", v.to_str().unwrap_or("<binary>")))
        .collect();
    lines.sort();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

fn describe(requirements: &Requirements) -> String {
    let item = |p: &HasParams| {
        let mut parts = Vec::new();
        if let Some(v) = &p.permission {
            parts.push(format!("permission {v}"));
        }
        if let Some(v) = &p.role {
            parts.push(format!("role {v}"));
        }
        if let Some(v) = &p.feature {
            parts.push(format!("feature {v}"));
        }
        if let Some(v) = &p.plan {
            parts.push(format!("plan {v}"));
        }
        if let Some(r) = &p.reverification {
            parts.push(format!(
                "reverification {} within {} min",
                r.level.as_str(),
                r.after_minutes
            ));
        }
        parts.join(" and ")
    };
    let mut text = requirements
        .all
        .iter()
        .map(item)
        .collect::<Vec<_>>()
        .join(", ");
    if !requirements.any.is_empty() {
        if !text.is_empty() {
            text.push_str(", and ");
        }
        text.push_str("one of: ");
        text.push_str(
            &requirements
                .any
                .iter()
                .map(item)
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    text
}
