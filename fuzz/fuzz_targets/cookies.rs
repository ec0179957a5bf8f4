//! Fuzz target: `clerk_forward_auth::fuzz_logic::cookies` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    clerk_forward_auth::fuzz_logic::cookies(data);
});
