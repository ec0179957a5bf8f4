//! The `clerk-forward-auth` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    clerk_forward_auth::cli::run()
}
