//! The binary: `check-config` and `--version`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clerk-forward-auth");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// Starts `serve` on a free port with `env` only (JSON logs), and returns it with its port.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, u64) {
    let (child, port, lines) = serve_with_output(args, env);
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

type OutputLines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

/// `serve`, with the lines of its output after the one that gives the port.
fn serve_with_output(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, u64, OutputLines) {
    use std::io::{BufRead, BufReader};
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("CLERK_FA_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if line.contains("serving /verify") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["port"].as_u64().unwrap();
        }
    };
    (child, port, lines)
}

/// The real binary's log: a JSON decision line per request with tracing's timestamp
/// shape, written by the writer thread, and nothing lost when the process stops.
#[tokio::test]
async fn serve_logs_each_decision_as_json_and_flushes_on_exit() {
    let (mut child, port, lines) = serve_with_output(
        &[],
        &[
            ("CLERK_PUBLISHABLE_KEY", crate::helpers::PROD_PK),
            ("CLERK_JWT_KEY", crate::helpers::PUBLIC_PEM),
            ("CLERK_FA_SHUTDOWN_DELAY_MS", "0"),
        ],
    );
    let reader = std::thread::spawn(move || lines.map(Result::unwrap).collect::<Vec<_>>());
    let client = reqwest::Client::new();
    for path in ["/one", "/two"] {
        let status = client
            .get(format!("http://127.0.0.1:{port}/verify"))
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", path)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());
    // The output closes when the process exits, so this ends.
    let lines = reader.join().unwrap();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let decisions: Vec<_> = parsed
        .iter()
        .filter(|v| v["message"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2, "{lines:#?}");
    for (decision, path) in decisions.iter().zip(["/one", "/two"]) {
        assert_eq!(decision["level"], "INFO");
        assert_eq!(decision["outcome"], "signed-out");
        assert_eq!(decision["reason"], "session-token-and-uat-missing");
        assert_eq!(decision["rule"], "default");
        assert_eq!(decision["host"], "app.example.com");
        assert_eq!(decision["path"], path);
        assert_eq!(decision["status"], 401);
        assert_eq!(decision["endpoint"], "verify");
        let timestamp = decision["timestamp"].as_str().unwrap();
        let shape: String = timestamp
            .chars()
            .map(|c| if c.is_ascii_digit() { 'd' } else { c })
            .collect();
        assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.ddddddZ", "{timestamp}");
    }
    assert_eq!(
        parsed.last().map(|v| v["message"].clone()),
        Some("stopped".into()),
        "the last line is written before the process exits: {lines:#?}"
    );
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let (code, out) = run(
        &["check-config"],
        &[
            ("CLERK_PUBLISHABLE_KEY", "pk_bad"),
            ("CLERK_API_URL", "ftp://x"),
            ("CLERK_FA_LISTEN", "not-an-address"),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("error: ").count(), 3, "{out}");
    assert!(
        out.contains("CLERK_PUBLISHABLE_KEY")
            && out.contains("CLERK_API_URL")
            && out.contains("CLERK_FA_LISTEN")
    );
}

#[test]
fn check_config_accepts_a_valid_configuration() {
    let (code, out) = run(
        &["check-config"],
        &[
            ("CLERK_PUBLISHABLE_KEY", crate::helpers::PROD_PK),
            ("CLERK_JWT_KEY", crate::helpers::PUBLIC_PEM),
            ("CLERK_FA_UNKNOWN", "1"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        out.contains("warning: unknown environment variable CLERK_FA_UNKNOWN"),
        "{out}"
    );
}

#[test]
fn version_is_printed() {
    let (code, out) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn serve_refuses_an_invalid_configuration_with_a_clear_error() {
    let (code, out) = run(&["serve"], &[("CLERK_PUBLISHABLE_KEY", "pk_test_x")]);
    assert_eq!(code, 1);
    assert!(
        out.contains("clerk.publishable_key (CLERK_PUBLISHABLE_KEY)"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

/// The real binary: `serve` reloads its rules on SIGHUP and exits 0 on SIGTERM.
#[tokio::test]
async fn serve_reloads_on_sighup_and_stops_on_sigterm() {
    use std::time::{Duration, Instant};

    let rules = |action: &str| {
        format!("[[authorization.rules]]\npath_prefix = \"/x\"\naction = \"{action}\"\n")
    };
    let file = crate::helpers::ConfigFile::new(&rules("public"));
    let config = file.path.to_str().unwrap();
    let (mut child, port) = serve(
        &["--config", config],
        &[
            ("CLERK_PUBLISHABLE_KEY", crate::helpers::PROD_PK),
            ("CLERK_JWT_KEY", crate::helpers::PUBLIC_PEM),
            ("CLERK_FA_SHUTDOWN_DELAY_MS", "0"),
        ],
    );
    let client = reqwest::Client::new();
    let status = || async {
        client
            .get(format!("http://127.0.0.1:{port}/verify"))
            .header("x-forwarded-uri", "/x")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 200);
    file.write(&rules("deny"));
    let kill = |signal: &str| {
        let ok = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    kill("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status().await != 403 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill("-TERM");
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "{code:?}");
}

#[test]
fn explain_walks_through_rule_token_checks_and_answer() {
    let file = crate::helpers::ConfigFile::new(
        "[[authorization.rules]]\nname = \"admin\"\npath_prefix = \"/admin\"\npermission = \"org:admin:example\"\n",
    );
    let token = crate::helpers::token(&crate::helpers::key1());
    let config = file.path.to_str().unwrap();
    let env = [
        ("CLERK_PUBLISHABLE_KEY", crate::helpers::PROD_PK),
        ("CLERK_JWT_KEY", crate::helpers::PUBLIC_PEM),
    ];
    let (code, out) = run(
        &[
            "explain",
            "--config",
            config,
            "--url",
            "https://app.example.com/admin/x",
            "--token",
            &token,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    for needle in [
        "Rule      admin → signed-in",
        "requires permission org:admin:example",
        "signature ok",
        "exp       ok",
        "Decision  forbidden (reason: missing-permission)",
        "Answer    403 Forbidden",
        "x-clerk-auth-reason: missing-permission",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // An expired token shows which check failed, with Clerk's words.
    let expired = crate::helpers::token_with(
        &crate::helpers::key1(),
        serde_json::json!({"exp": crate::helpers::now_s() - 60}),
    );
    let (_, out) = run(
        &[
            "explain",
            "--url",
            "https://app.example.com/",
            "--token",
            &expired,
        ],
        &env,
    );
    assert!(out.contains("exp       FAIL  JWT is expired."), "{out}");
    assert!(
        out.contains("session-token-expired-refresh-non-eligible-no-refresh-cookie"),
        "{out}"
    );
}

/// SIGTERM: readiness fails first while requests are still answered, then the listener
/// closes and in-flight requests finish; the process exits 0 and no request is lost.
#[tokio::test]
async fn sigterm_drains_without_losing_a_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use crate::helpers::*;

    let clerk = FakeClerk::start(&[&key1()]).await;
    let (mut child, port) = serve(
        &[],
        &[
            ("CLERK_PUBLISHABLE_KEY", PROD_PK),
            ("CLERK_SECRET_KEY", SECRET),
            ("CLERK_API_URL", &clerk.base),
            ("CLERK_FA_JWKS_MIN_REFETCH_MS", "60000"),
            ("CLERK_FA_SHUTDOWN_DELAY_MS", "700"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    // One connection per request, so a closing listener shows as a refused connection and
    // anything else is a lost request.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // In flight: requests whose unknown kid waits on a JWKS fetch that is held open.
    let release = clerk.hold();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..3 {
        let (client, base) = (client.clone(), base.clone());
        let claims =
            clerk_forward_auth::mint::session_claims("user_1", "clerk.example.com", now_s(), 60);
        let token = key1().sign_with_header(
            &serde_json::json!({"alg": "RS256", "kid": format!("ins_new_{i}")}),
            &claims,
        );
        in_flight.spawn(async move {
            client
                .get(format!("{base}/verify"))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    clerk.fetch_arrived().await;

    // Load, as a load balancer sends it: until readiness fails.
    let (answered, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let unready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, base, answered, lost) =
            (client.clone(), base.clone(), answered.clone(), lost.clone());
        let (token, unready) = (token(&key1()), unready.clone());
        load.spawn(async move {
            while !unready.load(Ordering::SeqCst) {
                match client
                    .get(format!("{base}/verify"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        lost.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Readiness fails while /verify still answers; the balancer stops sending.
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(503)
    {
        assert!(Instant::now() < deadline, "readiness never failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unready.store(true, Ordering::SeqCst);
    let during = client
        .get(format!("{base}/verify"))
        .bearer_auth(token(&key1()))
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), 200);

    release.add_permits(1_000);
    while let Some(result) = in_flight.join_next().await {
        assert_eq!(
            result.unwrap().expect("an in-flight request was dropped"),
            401
        );
    }
    while let Some(result) = load.join_next().await {
        result.unwrap();
    }
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "requests lost during shutdown"
    );
    assert!(answered.load(Ordering::SeqCst) > 0);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "{code:?}");
}
