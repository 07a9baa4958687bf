//! What `connperf merge` of many hosts' logs must print: every counter of the merged total the
//! exact sum of the hosts' own `connect` totals, and a host's `--by host` row its own totals.

use serde_json::Value;

/// Counters that add up.
pub const SUMMED: [&str; 7] = [
    "count",
    "bytes",
    "error_count",
    "lost",
    "not_started",
    "late_starts",
    "clamped",
];

/// The UDP-only counters (UDP runs' rows only), which add up too: `flows` of a total is the
/// distinct sockets of the run.
pub const UDP_SUMMED: [&str; 5] = ["late", "duplicate", "stray", "reordered", "flows"];

/// Counts by kind (objects) that add up kind by kind.
pub const SUMMED_BY_KIND: [&str; 3] = ["errors", "connection_errors", "not_started_by"];

fn num(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {row}"))
}

/// `merged` is the sum of `parts` in every counter: summed counts (and kind by kind), the
/// largest `max_behind_us`, the generator CPU summed (each part rounded to 1 µs); and it has
/// every key the parts have (but `labels`, when the parts share none).
pub fn assert_sum(merged: &Value, parts: &[&Value], what: &str) {
    for p in parts {
        for key in p.as_object().expect("a JSON object").keys() {
            // `labels` is left out when the parts have none in common (each its own host).
            assert!(
                merged.get(key).is_some() || key == "labels",
                "{what}: merged row lacks {key}: {merged}\npart {p}"
            );
        }
    }
    for key in SUMMED {
        let want: u64 = parts.iter().map(|p| num(p, key)).sum();
        assert_eq!(num(merged, key), want, "{what}: {key}: {merged}");
    }
    for key in UDP_SUMMED {
        if parts.iter().any(|p| p.get(key).is_some()) {
            let want: u64 = parts.iter().map(|p| num(p, key)).sum();
            assert_eq!(num(merged, key), want, "{what}: {key}: {merged}");
        }
    }
    for key in SUMMED_BY_KIND {
        let kinds = merged[key]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: {key} is not an object: {merged}"));
        assert!(!kinds.is_empty(), "{what}: {key}");
        for kind in kinds.keys() {
            let want: u64 = parts.iter().map(|p| num(&p[key], kind)).sum();
            assert_eq!(
                num(&merged[key], kind),
                want,
                "{what}: {key}.{kind}: {merged}"
            );
        }
    }
    // The ramps: connections and failed attempts add up; the hosts ramp at once, so the
    // merged ramp took as long as the longest.
    if parts.iter().any(|p| p.get("ramp_sec").is_some()) {
        let count = |p: &Value, key: &str| p.get(key).map_or(0, |_| num(p, key));
        let want: u64 = parts.iter().map(|p| count(p, "ramp_connections")).sum();
        assert_eq!(num(merged, "ramp_connections"), want, "{what}: {merged}");
        for (kind, n) in merged["ramp_failed"].as_object().expect("ramp_failed") {
            let want: u64 = parts
                .iter()
                .filter(|p| p.get("ramp_failed").is_some())
                .map(|p| num(&p["ramp_failed"], kind))
                .sum();
            assert_eq!(
                n.as_u64(),
                Some(want),
                "{what}: ramp_failed.{kind}: {merged}"
            );
        }
        let took = parts
            .iter()
            .filter_map(|p| p["ramp_sec"].as_f64())
            .fold(0.0, f64::max);
        assert_eq!(merged["ramp_sec"].as_f64(), Some(took), "{what}: {merged}");
    }
    let max_behind = parts.iter().map(|p| num(p, "max_behind_us")).max();
    assert_eq!(Some(num(merged, "max_behind_us")), max_behind, "{what}");
    let cpu: f64 = parts
        .iter()
        .map(|p| p["generator_cpu_sec"].as_f64().expect("generator_cpu_sec"))
        .sum();
    let got = merged["generator_cpu_sec"]
        .as_f64()
        .expect("generator_cpu_sec");
    assert!(
        (got - cpu).abs() <= 1e-6 * parts.len() as f64,
        "{what}: generator_cpu_sec {got} != {cpu}"
    );
}

/// A `--by host` row is that host's own total: every counter, and every latency, service,
/// connect, send-lag and ramp figure (the same histograms, added window by window).
pub fn assert_same_as_own(row: &Value, own: &Value, what: &str) {
    assert_sum(row, &[own], what);
    // Judged alike: a host whose target refused it fails in the merge as in its own run.
    for key in ["verdict", "reasons"] {
        assert_eq!(row[key], own[key], "{what}: {key}: {row}\nown {own}");
    }
    for (key, value) in own.as_object().expect("a JSON object") {
        let figure = ["latency_", "service_", "connect_", "send_lag_", "ramp_"]
            .iter()
            .any(|p| key.starts_with(p));
        if figure {
            assert_eq!(&row[key], value, "{what}: {key}: {row}\nown {own}");
        }
    }
}
