//! A real headless Chromium through nginx (`deploy/nginx/`) over Clerk's whole handshake.
//!
//! The browser loads `/seed`, which plants an expired session and moves on to
//! `/page/dashboard` with JavaScript. From there every hop is the browser's own: nginx's
//! check says 401, `/answer` answers the 307 to Clerk's Frontend API (the fake, reached at
//! `https://clerk.example.com` through a TLS server block that exists only in this test),
//! which sends it back with a nonce; `/answer` spends the nonce and answers a 307 with the
//! fresh cookies, and the page finally renders the signed-in user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, Backends, Proxy, Scratch};

/// How long one program (openssl, Chromium) may run before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `command` to completion, bounded by [`TIMEOUT`], in its own process group (killed
/// whole on a timeout, so no renderer outlives the test). Returns its stdout; panics with its
/// stderr on a failure.
async fn run_bounded(mut command: Command, dir: &Path, name: &str) -> String {
    use std::os::unix::process::CommandExt;
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // The whole group: the launcher, the browser and its helpers.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} did not finish within {TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "{name} failed ({status}):\n{stderr}");
    std::fs::read_to_string(&stdout_path).unwrap()
}

/// A self-signed certificate for `clerk.example.com`, in `dir`.
async fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("clerk.crt");
    let key = dir.join("clerk.key");
    let mut command = Command::new("openssl");
    command.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=clerk.example.com",
        "-addext",
        "subjectAltName=DNS:clerk.example.com",
        "-keyout",
        &key.display().to_string(),
        "-out",
        &cert.display().to_string(),
    ]);
    run_bounded(command, dir, "openssl").await;
    (cert, key)
}

/// nginx with the recipe (as `nginx.rs` runs it), plus a TLS server on `tls_port` that
/// stands in for `https://clerk.example.com`: the fake Frontend API behind it. Also returns
/// the access log's path (in the proxy's scratch directory, alive as long as the proxy).
async fn nginx(backends: &Backends, tls_port: u16) -> (Proxy, PathBuf) {
    let scratch = Scratch::new("nginx-browser");
    let port = harness::free_port();
    let site = crate::nginx::write_recipe(backends, &scratch, port);
    let (cert, key) = certificate(&scratch.0).await;
    let fapi = scratch.write(
        "clerk-frontend-api.conf",
        &format!(
            "server {{\n  listen 127.0.0.1:{tls_port} ssl;\n  server_name clerk.example.com;\n  \
             ssl_certificate {};\n  ssl_certificate_key {};\n  \
             location / {{ proxy_pass {}; }}\n}}\n",
            cert.display(),
            key.display(),
            backends.clerk.base,
        ),
    );
    let dir = scratch.0.display().to_string();
    // The error log goes to the proxy's output (`Proxy::log`); the access log, one `hop` line
    // a request, to its own file (sharing one file, the two would overwrite each other).
    let access = scratch.0.join("access.log");
    let main = format!(
        "user root;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  \
         log_format hops 'hop $server_port $status \"$http_sec_fetch_dest\" $request';\n  \
         access_log {} hops;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
         include {};\n  include {};\n}}\n",
        access.display(),
        site.display(),
        fapi.display(),
    );
    let conf = scratch.write("nginx.conf", &main);
    let command = crate::nginx::command(&scratch, &conf);
    (Proxy::start(command, port, scratch).await, access)
}

/// One headless Chromium run on `url` with a fresh profile; `extra` says what to produce.
async fn chromium(dir: &Path, name: &str, tls_port: u16, url: &str, extra: &[String]) -> String {
    let profile = dir.join(format!("{name}-profile"));
    std::fs::create_dir_all(&profile).unwrap();
    let mut command = Command::new(harness::binary("chromium"));
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--ignore-certificate-errors",
            "--window-size=1024,768",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--host-resolver-rules=MAP clerk.example.com 127.0.0.1:{tls_port}"
        ))
        .args(extra)
        .arg(url);
    run_bounded(command, dir, name).await
}

/// The requests nginx saw, from its access log: `(port, status, Sec-Fetch-Dest, request line)`.
fn hops(log: &str) -> Vec<(u16, u16, String, String)> {
    log.lines()
        .filter_map(|line| line.strip_prefix("hop "))
        .map(|hop| {
            let mut parts = hop.splitn(4, ' ');
            let mut next = || parts.next().unwrap_or_default().to_owned();
            let (port, status, dest, request) = (next(), next(), next(), next());
            (
                port.parse().unwrap(),
                status.parse().unwrap(),
                dest.trim_matches('"').to_owned(),
                request,
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs chromium and nginx: run scripts/test"]
async fn chromium_completes_the_handshake_through_nginx() {
    let backends = Backends::start(&[]).await;
    let tls_port = harness::free_port();
    let (proxy, access) = nginx(&backends, tls_port).await;
    let work = Scratch::new("chromium");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("browser-handshake.png");
    let _ = std::fs::remove_file(&png);

    // One journey: the DOM once every navigation and redirect is done, and its picture.
    let dom = chromium(
        &work.0,
        "chromium",
        tls_port,
        &format!("{}/seed", proxy.base()),
        &[
            "--dump-dom".to_owned(),
            format!("--screenshot={}", png.display()),
        ],
    )
    .await;
    let access = std::fs::read_to_string(&access).unwrap_or_default();
    let log = format!("{}\naccess log:\n{access}", proxy.log());
    assert!(
        dom.contains(r#"<h1 id="user">signed in as user_1</h1>"#),
        "the page did not render the signed-in user:\n{dom}\nnginx:\n{log}"
    );
    assert_eq!(
        backends.clerk.payload_calls(),
        1,
        "the nonce was not spent exactly once\nnginx:\n{log}"
    );

    // Every hop was the browser's own page load, in Clerk's order. (The favicon is not one.)
    let port = proxy.port;
    let seen: Vec<_> = hops(&access)
        .into_iter()
        .filter(|(_, _, _, request)| !request.starts_with("GET /favicon.ico "))
        .collect();
    let handshake = format!(
        "GET /v1/client/handshake?redirect_url=http%3A%2F%2F127.0.0.1%3A{port}%2Fpage%2Fdashboard&"
    );
    let expected: [(u16, u16, &str); 5] = [
        (port, 200, "GET /seed HTTP/1.1"),
        (port, 307, "GET /page/dashboard HTTP/1.1"),
        (tls_port, 307, &handshake),
        (
            port,
            307,
            "GET /page/dashboard?__clerk_handshake_nonce=nonce_1 HTTP/1.1",
        ),
        (port, 200, "GET /page/dashboard HTTP/1.1"),
    ];
    let matches = seen.len() == expected.len()
        && seen.iter().zip(&expected).all(|(hop, want)| {
            hop.0 == want.0 && hop.1 == want.1 && hop.2 == "document" && hop.3.starts_with(want.2)
        });
    assert!(
        matches,
        "unexpected hops:\n{seen:#?}\nexpected:\n{expected:#?}\nnginx:\n{log}"
    );

    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(
        bytes.len() > 8 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG ({} bytes)",
        png.display(),
        bytes.len()
    );
}
