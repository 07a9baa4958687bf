//! Field getters for the JSON rows of `connperf --jsonlines`: a missing or mistyped field fails
//! the test, naming the row.

use serde_json::Value;

/// `row[key]` as an unsigned integer.
pub fn u(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {row}"))
}

/// `row[key]` as a number.
pub fn f(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key} in {row}"))
}

/// Every request a `connect` row accounts for: completed, failed, lost and never started.
pub fn booked(row: &Value) -> u64 {
    u(row, "count") + u(row, "error_count") + u(row, "lost") + u(row, "not_started")
}

/// The last line of `connect --jsonlines` output, which must be the total row.
pub fn json_total(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_else(|| panic!("no output"));
    let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    assert_eq!(v["kind"], "total", "{v}");
    v
}
