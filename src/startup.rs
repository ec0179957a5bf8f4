//! Wires settings, keys, metrics and the HTTP server together, bound before it runs so
//! callers (tests included) learn the real port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::config::Settings;
use crate::http::verify::ResponseHeaders;
use crate::http::{self, AppState, Live};
use crate::metrics::Metrics;
use crate::reload::{ConfigSource, Reloader};
use crate::service::Service;

/// A bound, not yet running, server.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    /// The `/metrics` server, when it has its own address.
    metrics_server: Option<Server>,
    reloader: Reloader,
    state: web::Data<AppState>,
    shutdown_delay: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid identity header name: {0}")]
    Header(#[from] actix_web::http::header::InvalidHeaderName),
    #[error("cannot start the server: {0}")]
    Io(#[from] std::io::Error),
}

impl Application {
    /// Binds the listeners and builds the server. Must run inside a Tokio runtime; for a
    /// JWKS source it starts the background key refresh. `source` is where `settings` came
    /// from, for reloads.
    pub fn build(settings: &Settings, source: ConfigSource) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new()?);
        let service = Service::new(settings, &metrics, None)?;
        let state = web::Data::new(AppState {
            live: arc_swap::ArcSwap::from_pointee(Live {
                service,
                headers: ResponseHeaders::new(&settings.headers)?,
            }),
            metrics,
            metrics_here: settings.metrics_listen.is_none(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        let reloader = Reloader::new(source, state.clone(), settings);
        let bind =
            |addr| TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source });
        let listener = bind(settings.listen)?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let mut server =
            HttpServer::new(move || App::new().configure(http::configure(app_state.clone())))
                .listen(listener)?
                .client_request_timeout(settings.server.request_timeout)
                .keep_alive(settings.server.keep_alive)
                .max_connections(settings.server.max_connections)
                .shutdown_timeout(settings.server.shutdown_grace.as_secs())
                .disable_signals();
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let mut metrics_port = None;
        let mut metrics_server = None;
        if let Some(addr) = settings.metrics_listen {
            let listener = bind(addr)?;
            metrics_port = Some(listener.local_addr()?.port());
            let metrics_state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .route("/metrics", web::get().to(http::health::metrics))
            })
            .listen(listener)?
            .workers(1)
            .disable_signals()
            .run();
            metrics_server = Some(server);
        }
        Ok(Self {
            port,
            metrics_port,
            server: server.run(),
            metrics_server,
            reloader,
            state,
            shutdown_delay: settings.server.shutdown_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Reloads the configuration on demand; `serve` also wires it to SIGHUP and file changes.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Runs until the server stops or SIGINT/SIGTERM arrives, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let metrics_handle = self.metrics_server.as_ref().map(Server::handle);
        if let Some(metrics) = self.metrics_server {
            tokio::spawn(metrics);
        }
        let state = self.state.clone();
        let delay = self.shutdown_delay;
        let server = self.server;
        tokio::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            () = shutdown_signal() => {
                // Readiness fails first, so load balancers stop sending while requests are
                // still answered; then stop accepting and let in-flight requests finish.
                state.shutting_down.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(delay_ms = delay.as_millis(), "shutting down: readiness is now failing");
                tokio::time::sleep(delay).await;
                let stopping = handle.stop(true);
                let (_, result) = tokio::join!(stopping, &mut server);
                tracing::info!("stopped");
                result
            }
        };
        if let Some(metrics) = metrics_handle {
            metrics.stop(true).await;
        }
        result
    }

    /// Spawns the servers on the current runtime (for tests) and returns the main handle.
    pub fn spawn(self) -> actix_web::dev::ServerHandle {
        let handle = self.server.handle();
        tokio::spawn(self.server);
        if let Some(metrics) = self.metrics_server {
            tokio::spawn(metrics);
        }
        handle
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
