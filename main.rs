//! The `connperf` binary: everything lives in the library; see `cli::main`.

fn main() {
    std::process::exit(connperf::cli::main());
}
