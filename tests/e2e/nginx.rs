//! nginx `auth_request` with `deploy/nginx/`: redirects through the 401 → `/answer` hop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, Backends, Proxy, Scratch, scenarios};

/// Writes the recipe into `scratch`, templated for the test's ports; returns the site file
/// to `include` in the `http` block.
pub fn write_recipe(backends: &Backends, scratch: &Scratch, port: u16) -> PathBuf {
    let headers = scratch.write(
        "clerk-forward-auth-headers.conf",
        &harness::recipe("deploy/nginx/clerk-forward-auth-headers.conf", &[]),
    );
    let site = harness::recipe(
        "deploy/nginx/clerk-forward-auth.conf",
        &[
            ("127.0.0.1:9090", backends.auth_addr()),
            ("127.0.0.1:3000", backends.upstream_addr()),
            ("listen 8000;", format!("listen 127.0.0.1:{port};")),
            (
                "/etc/nginx/clerk-forward-auth-headers.conf",
                headers.display().to_string(),
            ),
        ],
    );
    scratch.write("clerk-forward-auth.conf", &site)
}

/// nginx in the foreground with `conf` and its state in `scratch`.
pub fn command(scratch: &Scratch, conf: &Path) -> Command {
    let mut command = Command::new(harness::binary("nginx"));
    command.args([
        "-p",
        &scratch.0.display().to_string(),
        "-c",
        &conf.display().to_string(),
        "-g",
        "daemon off;",
    ]);
    command
}

async fn nginx(backends: &Backends) -> Proxy {
    let scratch = Scratch::new("nginx");
    let port = harness::free_port();
    let site = write_recipe(backends, &scratch, port);
    let dir = scratch.0.display().to_string();
    let main = format!(
        "user root;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
         include {};\n}}\n",
        site.display()
    );
    let conf = scratch.write("nginx.conf", &main);
    Proxy::start(command(&scratch, &conf), port, scratch).await
}

#[tokio::test]
#[ignore = "needs nginx: run scripts/test"]
async fn nginx_recipe_passes_every_scenario() {
    let mut backends = Backends::start(&[]).await;
    let proxy = nginx(&backends).await;
    scenarios::all(&proxy, &mut backends).await;
}
