//! The line that `connperf serve` prints once per bound address: `Listening at ADDR (...)`, or
//! with `--jsonlines` the object `{"kind":"listening","addr":"ADDR",...}`. Needs only
//! serde_json (a dependency of the crate), so that benches can include it with `#[path]`.

use std::net::SocketAddr;

/// The text line's prefix.
pub const LISTENING: &str = "Listening at ";

/// The address of a `Listening at ADDR (...)` line or of a `"kind":"listening"` JSON object;
/// None for any other line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Some(rest) = line.strip_prefix(LISTENING) {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("kind")?.as_str()? != "listening" {
        return None;
    }
    v.get("addr")?.as_str()?.parse().ok()
}
