//! Reloading without a restart: SIGHUP, or a change of the configuration file, rebuilds the
//! rules and settings and swaps them in at once. Requests in flight finish on what they
//! started with; an invalid configuration is logged and the old one stays.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::web;

use crate::config::Settings;
use crate::http::verify::ResponseHeaders;
use crate::http::{AppState, Live};
use crate::service::Service;

/// Where settings come from, so they can be read again.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub env: HashMap<String, String>,
}

/// Settings that only a restart can change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RestartOnly {
    listen: SocketAddr,
    workers: usize,
    metrics_listen: Option<SocketAddr>,
}

impl RestartOnly {
    fn of(settings: &Settings) -> Self {
        Self {
            listen: settings.listen,
            workers: settings.workers,
            metrics_listen: settings.metrics_listen,
        }
    }
}

#[derive(Clone)]
pub struct Reloader {
    source: ConfigSource,
    state: web::Data<AppState>,
    started_with: RestartOnly,
}

impl Reloader {
    pub fn new(source: ConfigSource, state: web::Data<AppState>, settings: &Settings) -> Self {
        Self {
            source,
            state,
            started_with: RestartOnly::of(settings),
        }
    }

    /// Reads the configuration again and swaps it in. Must run inside a Tokio runtime.
    pub fn reload(&self) -> Result<(), String> {
        let outcome = self.try_reload();
        let label = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.state
            .metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        match &outcome {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(problems) => {
                tracing::error!(%problems, "configuration reload rejected; the previous configuration stays in force");
            }
        }
        outcome
    }

    fn try_reload(&self) -> Result<(), String> {
        let (settings, warnings) = Settings::load(self.source.file.as_deref(), &self.source.env)
            .map_err(|e| e.to_string())?;
        for warning in warnings.0 {
            tracing::warn!("{warning}");
        }
        if RestartOnly::of(&settings) != self.started_with {
            tracing::warn!("listen addresses and worker counts change only on a restart");
        }
        let current = self.state.live.load();
        let service = Service::new(&settings, &self.state.metrics, Some(&current.service))
            .map_err(|e| e.to_string())?;
        let headers = ResponseHeaders::new(&settings.headers).map_err(|e| e.to_string())?;
        self.state.live.store(Arc::new(Live { service, headers }));
        Ok(())
    }

    /// Reloads on SIGHUP, and when the configuration file changes (checked every
    /// `poll`), until the runtime stops.
    pub fn spawn_watchers(&self, poll: Duration) {
        #[cfg(unix)]
        {
            let reloader = self.clone();
            tokio::spawn(async move {
                let Ok(mut hangup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = reloader.reload();
                }
            });
        }
        if let Some(path) = self.source.file.clone() {
            let reloader = self.clone();
            tokio::spawn(async move {
                let stamp = |path: &PathBuf| -> Option<(SystemTime, u64)> {
                    let meta = std::fs::metadata(path).ok()?;
                    Some((meta.modified().ok()?, meta.len()))
                };
                let mut last = stamp(&path);
                loop {
                    tokio::time::sleep(poll).await;
                    let now = stamp(&path);
                    if now != last && now.is_some() {
                        last = now;
                        tracing::info!(path = %path.display(), "configuration file changed: reloading");
                        let _ = reloader.reload();
                    }
                }
            });
        }
    }
}
