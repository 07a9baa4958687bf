//! The `Listening at ADDR (...)` line that `connperf serve` prints once per bound address.
//! Dependency-free, so that benches can include it with `#[path]`.

use std::net::SocketAddr;

/// The line's prefix.
pub const LISTENING: &str = "Listening at ";

/// The address of a `Listening at ADDR (...)` line; None for any other line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.strip_prefix(LISTENING)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
