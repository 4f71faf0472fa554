//! The `api` binary's command line. (An integration test here also makes
//! `cargo test` build the binary that the `tests` crate starts.)

use std::process::Command;

#[test]
fn bad_bind_address_is_a_usage_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["--bind", "not-an-address", "--output", "memory://api-cli"])
        .output()
        .expect("api binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));
}

#[test]
fn zero_memory_budget_is_a_usage_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["--memory-budget-mb", "0", "--output", "memory://api-cli"])
        .output()
        .expect("api binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory_budget_mb"));
}
