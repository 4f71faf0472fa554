//! The `pipeline` binary's command-line surface. (Declaring an integration
//! test here also makes `cargo test` build the binary the `tests` crate runs.)

use std::process::Command;

fn pipeline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline")).args(args).output().expect("pipeline runs")
}

#[test]
fn help_lists_the_three_commands() {
    let out = pipeline(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "generate", "inspect"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = pipeline(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_of_missing_output_is_a_usage_error_naming_it() {
    let out = pipeline(&["inspect", "--output", "/no/such/minutely/output"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/minutely/output"));
}
