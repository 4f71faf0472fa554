//! The `pipeline` binary: see `pipeline --help`.

/// jemalloc rather than glibc's malloc (or mimalloc): polars allocates and
/// frees large buffers on many threads, and jemalloc kept the least of them
/// resident (README, "Dependencies beyond the chosen ones").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    pipeline::cli::main()
}
