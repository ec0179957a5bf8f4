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
