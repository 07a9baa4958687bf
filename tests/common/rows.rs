//! The JSON rows of a `connperf connect --json-stream` run, checked field by field, and the time
//! limits a run is held to.

use super::json::{f, u};
use super::proc::Outcome;
use serde_json::Value;
use std::time::Duration;

/// Slack over a run's planned length (duration plus drain) for process start and exit on a
/// 2-core machine that is running other tests at the same time.
pub const GRACE: Duration = Duration::from_millis(1000);
/// The generator waits at most this long after the run for replies in flight (driver MAX_DRAIN).
pub const MAX_DRAIN: Duration = Duration::from_secs(1);

/// The planned length of a run plus drain, plus `GRACE`.
pub fn limit(duration_secs: f64, drain: Duration) -> Duration {
    Duration::from_secs_f64(duration_secs) + drain + GRACE
}

/// Every stdout line as a JSON object; any other line fails the test.
pub fn json_rows(d: &Outcome) -> Vec<Value> {
    d.out
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nstderr: {}", d.err));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

pub fn errors(row: &Value, kind: &str) -> u64 {
    row["errors"][kind]
        .as_u64()
        .unwrap_or_else(|| panic!("errors.{kind} missing in {row}"))
}

pub fn kind_rows<'a>(rows: &'a [Value], kind: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["kind"] == kind).collect()
}

/// The only total row of a single-target run.
pub fn the_total(rows: &[Value]) -> &Value {
    let t = kind_rows(rows, "total");
    assert_eq!(t.len(), 1, "one total row expected: {rows:#?}");
    t[0]
}

/// `2025-01-07T10:30:00.123Z`: UTC, date and time fields in range, optional fraction.
pub fn is_iso8601_utc(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(u32::MAX);
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let fraction = b.len() == 20 || (b[19] == b'.' && b.len() > 21 && digits(20..b.len() - 1));
    shape
        && fraction
        && (2020..=9999).contains(&num(0..4))
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 61
}

/// Field-by-field checks every connect row must pass.
pub fn check_row(row: &Value, message_bytes: u64) {
    let kind = row["kind"].as_str().unwrap_or_default();
    assert!(kind == "interval" || kind == "total", "kind: {row}");
    assert!(row["peer"].as_str().is_some_and(|p| !p.is_empty()), "{row}");
    let count = u(row, "count");
    let latency_keys = [
        "latency_max_us",
        "latency_min_us",
        "latency_mean_us",
        "latency_90p_us",
        "latency_95p_us",
        "latency_99p_us",
    ];
    if count > 0 {
        let [max, min, mean, p90, p95, p99] = latency_keys.map(|k| u(row, k));
        assert!(
            min <= p90 && p90 <= p95 && p95 <= p99 && p99 <= max,
            "percentiles out of order: {row}"
        );
        assert!(min <= mean && mean <= max, "mean outside [min, max]: {row}");
    } else {
        // Nothing completed: the latency is unknown (null), never 0.
        for k in latency_keys {
            assert!(row[k].is_null(), "{k} without requests: {row}");
        }
        assert!(
            row["latency_ns"].is_null(),
            "latency_ns without requests: {row}"
        );
    }
    assert_eq!(
        u(row, "bytes"),
        count * message_bytes,
        "bytes != count * message bytes: {row}"
    );
    let errs = row["errors"].as_object().expect("errors is an object");
    for k in ["refused", "reset", "timeout", "closed_early", "mismatch"] {
        assert!(errs.contains_key(k), "errors.{k} missing: {row}");
    }
    let sum: u64 = errs
        .values()
        .map(|v| v.as_u64().expect("error counts are whole numbers"))
        .sum();
    assert_eq!(u(row, "error_count"), sum, "error_count != sum: {row}");
    for k in ["late_starts", "not_started", "lost"] {
        u(row, k);
    }
    let ts = row["timestamp"].as_str().expect("timestamp is a string");
    assert!(is_iso8601_utc(ts), "timestamp {ts:?} is not ISO 8601 UTC");
    let rate = f(row, "rate_per_sec");
    let elapsed = f(row, "elapsed_sec");
    assert!(rate >= 0.0 && elapsed >= 0.0, "{row}");
    if elapsed > 0.0 {
        let want = count as f64 / elapsed;
        assert!(
            (rate - want).abs() <= want * 0.002 + 0.02,
            "rate_per_sec {rate} but count / elapsed_sec = {want}: {row}"
        );
    }
}

/// Check every row, and that each peer's interval rows (numbered 0, 1, ...), if printed, add
/// up to its total.
pub fn check_rows(rows: &[Value], message_bytes: u64) {
    assert!(!rows.is_empty(), "no output");
    for r in rows {
        check_row(r, message_bytes);
    }
    let totals = kind_rows(rows, "total");
    assert!(!totals.is_empty(), "no total row: {rows:#?}");
    if kind_rows(rows, "interval").is_empty() {
        // --show-only-results
        return;
    }
    for t in totals {
        let peer = &t["peer"];
        let ivs: Vec<&Value> = rows
            .iter()
            .filter(|r| r["kind"] == "interval" && &r["peer"] == peer)
            .collect();
        for (i, r) in ivs.iter().enumerate() {
            assert_eq!(u(r, "interval"), i as u64, "interval numbering: {r}");
        }
        for key in [
            "count",
            "bytes",
            "error_count",
            "not_started",
            "late_starts",
            "lost",
        ] {
            let sum: u64 = ivs.iter().map(|r| u(r, key)).sum();
            assert_eq!(
                sum,
                u(t, key),
                "{peer}: interval {key}s do not add up to the total"
            );
        }
    }
}

/// The checks for a run that must have gone cleanly: exit 0, rows consistent, no errors, no loss.
pub fn check_clean(d: &Outcome, message_bytes: u64, what: &str) -> Vec<Value> {
    d.assert_ok(what);
    let rows = json_rows(d);
    check_rows(&rows, message_bytes);
    for t in kind_rows(&rows, "total") {
        assert_eq!(u(t, "error_count"), 0, "{what}: errors in {t}");
        assert!(u(t, "count") > 0, "{what}: nothing completed: {t}");
        assert_eq!(u(t, "lost"), 0, "{what}: lost in {t}");
    }
    rows
}
