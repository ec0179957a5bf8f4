//! Logs: one line per decision, and never a token, a cookie or a secret.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use crate::helpers::*;

/// Every log line of this test binary, at debug level.
static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || Sink(sink.clone()))
        .try_init();
    buffer
});

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn decisions_are_logged_without_tokens_cookies_or_secrets() {
    LazyLock::force(&LOGS);
    let clerk = FakeClerk::start(&[&key1()]).await;
    let env = clerk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn(&env).await;
    app.wait_ready(200).await;

    let good = token(&key1());
    let forged = token(&key2());
    let cookie =
        format!("__session={forged}; __client_uat=1; __refresh_naoXFJnI=refresh-secret-value");
    app.verify(&[
        ("authorization", &format!("Bearer {good}")),
        ("x-forwarded-host", "app.example.com"),
        (
            "x-forwarded-uri",
            "/logged/path?__clerk_handshake=query-secret-value",
        ),
    ])
    .await;
    app.verify(&[("cookie", &cookie), ("accept", "text/html")])
        .await;

    let logs = logs();
    assert!(logs.contains("decision"), "{logs}");
    assert!(
        logs.contains("user_1") && logs.contains("/logged/path"),
        "{logs}"
    );
    for secret in [
        good.as_str(),
        good.rsplit('.').next().unwrap(),
        forged.rsplit('.').next().unwrap(),
        "refresh-secret-value",
        "query-secret-value",
        SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
