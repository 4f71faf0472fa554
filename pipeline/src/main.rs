//! The `pipeline` binary: see `pipeline --help`.

fn main() -> std::process::ExitCode {
    pipeline::cli::main()
}
