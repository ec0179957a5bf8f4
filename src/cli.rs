//! The command line: `serve`, `check-config` and `dev`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::reload::ConfigSource;
use crate::startup::Application;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "clerk-forward-auth",
    version,
    about = "Clerk sign-in enforced at your proxy: an external-auth service for nginx, Traefik, Envoy, Caddy and HAProxy"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve /verify with the configuration from FILE and the environment.
    Serve {
        /// A TOML or YAML file; environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides server.listen (CLERK_FA_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Verify every token, remembering none (cache.max_tokens = 0).
        #[arg(long)]
        no_token_cache: bool,
    },
    /// Validate the configuration, print every problem, exit 1 if there is any.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Explain how one request would be decided: the rule, each token check, the answer.
    Explain {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The original request's URL, e.g. https://app.example.com/admin.
        #[arg(long)]
        url: String,
        /// A session token, sent as `Authorization: Bearer`.
        #[arg(long)]
        token: Option<String>,
        /// A `Cookie` header value, e.g. `__session=…; __client_uat=…`.
        #[arg(long)]
        cookie: Option<String>,
        /// Another header, `Name: value` (repeatable), e.g. `Sec-Fetch-Dest: document`.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Try it with no Clerk account: an ephemeral key, a token, and curl commands.
    Dev {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::CheckConfig { config } => check_config(config, &env),
        Command::Serve {
            config,
            listen,
            no_token_cache,
        } => {
            let mut env = env;
            if no_token_cache {
                // Through the environment, so a reload keeps it.
                env.insert("CLERK_FA_CACHE_MAX_TOKENS".into(), "0".into());
            }
            let (mut settings, warnings) = match Settings::load(config.as_deref(), &env) {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("invalid configuration:\n{e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            let _logs = telemetry::init(settings.log_format, &settings.log_level);
            for warning in warnings.0 {
                tracing::warn!("{warning}");
            }
            let source = ConfigSource { file: config, env };
            block_on(serve(settings, source))
        }
        Command::Dev { listen } => block_on(crate::dev::run(listen)),
        Command::Explain {
            config,
            method,
            url,
            token,
            cookie,
            headers,
        } => {
            let request = crate::explain::Request {
                method,
                url,
                token,
                cookie,
                headers,
            };
            block_on(crate::explain::run(config, &env, request))
        }
    }
}

fn check_config(config: Option<PathBuf>, env: &HashMap<String, String>) -> ExitCode {
    match Settings::load(config.as_deref(), env) {
        Ok((settings, warnings)) => {
            for warning in &warnings.0 {
                println!("warning: {warning}");
            }
            let keys = match &settings.keys {
                crate::config::KeySettings::Pem(_) => "networkless (CLERK_JWT_KEY)".to_owned(),
                crate::config::KeySettings::Jwks { url, .. } => format!("JWKS from {url}"),
            };
            println!(
                "configuration OK: instance {} ({:?}), keys {keys}, listening on {}",
                settings.clerk.publishable_key.frontend_api(),
                settings.clerk.instance_type(),
                settings.listen
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for problem in &e.problems {
                println!("error: {problem}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, source: ConfigSource) -> ExitCode {
    let app = match Application::build(&settings, source) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    app.reloader()
        .spawn_watchers(std::time::Duration::from_secs(2));
    tracing::info!(port = app.port(), "serving /verify");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The main thread only accepts connections and refreshes keys; actix runs its own workers.
fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
