//! Writes a key pair and session tokens for the load script (`bench/load.sh`):
//! `cargo run --release --example tokens -- <dir> [count]`.

use std::fmt::Write as _;

use clerk_forward_auth::domain::time::now_ms;
use clerk_forward_auth::mint::{Signer, session_claims};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map_or("bench/tokens", String::as_str));
    let count: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(10_000);
    std::fs::create_dir_all(&dir)?;
    let signer = Signer::generate("ins_load").map_err(std::io::Error::other)?;
    let forger = Signer::generate("ins_load").map_err(std::io::Error::other)?;
    let now = now_ms() / 1000;
    let year = 365 * 24 * 3600;
    let issuer = "clerk.example.com";
    std::fs::write(dir.join("public.pem"), signer.public_pem())?;
    let valid = signer.sign(&session_claims("user_load", issuer, now, year));
    // A browser's cookies: `__client_uat` no later than the token's `iat`, or Clerk would
    // read the session as newer than the token and ask for a handshake.
    std::fs::write(
        dir.join("cookie-valid.txt"),
        format!("__client_uat={now}; __session={valid}"),
    )?;
    std::fs::write(dir.join("token-valid.txt"), valid)?;
    std::fs::write(
        dir.join("token-expired.txt"),
        signer.sign(&session_claims("user_load", issuer, now - 7200, 60)),
    )?;
    std::fs::write(
        dir.join("token-badsig.txt"),
        forger.sign(&session_claims("user_load", issuer, now, year)),
    )?;
    let mut many = String::new();
    for i in 0..count {
        let _ = writeln!(
            many,
            "{}",
            signer.sign(&session_claims(&format!("user_{i}"), issuer, now, year))
        );
    }
    std::fs::write(dir.join("tokens-many.txt"), many)?;
    println!(
        "wrote {} (public.pem, a cookie, {count} tokens); run the service with:",
        dir.display()
    );
    println!(
        "  CLERK_PUBLISHABLE_KEY=pk_live_Y2xlcmsuZXhhbXBsZS5jb20k CLERK_JWT_KEY=\"$(cat {}/public.pem)\"",
        dir.display()
    );
    Ok(())
}
