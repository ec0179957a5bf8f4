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
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let rules = |action: &str| {
        format!("[[authorization.rules]]\npath_prefix = \"/x\"\naction = \"{action}\"\n")
    };
    let file = crate::helpers::ConfigFile::new(&rules("public"));
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file.path)
        .env_clear()
        .env("CLERK_PUBLISHABLE_KEY", crate::helpers::PROD_PK)
        .env("CLERK_JWT_KEY", crate::helpers::PUBLIC_PEM)
        .env("CLERK_FA_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
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
    std::thread::spawn(move || for _ in lines {});
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
