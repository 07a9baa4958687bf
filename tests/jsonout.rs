//! `connect`'s JSON output where scripts read it, through the real binary against a real
//! server on loopback: `--jsonlines` prints the totals only (as the Go tool), `--json-stream`
//! the interval rows too; `--merge-results-each-host` names even one target `merged(1 hosts)`;
//! and every key a row can carry is documented in README.md's key table. Every run is bounded
//! (`-d 1s` or less) and ends by itself.

mod common;

use common::proc::{spawn, Outcome};
use common::{u, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Deadline for a run of at most 1 s plus its start, ramp and drain.
const RUN_LIMIT: Duration = Duration::from_secs(15);

/// `connperf connect ARGS` to its end: exit 0, nothing panicked.
fn connect(args: &[&str]) -> Outcome {
    let mut argv = vec!["connect"];
    argv.extend_from_slice(args);
    let o = spawn(&argv, None).finish(RUN_LIMIT);
    o.assert_clean();
    o
}

/// Every stdout line as a JSON object; any other line (a `#` note, a table) fails the test.
fn rows(o: &Outcome) -> Vec<Value> {
    o.out
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l:?}", o.label));
            assert!(v.is_object(), "{}: not an object: {l}", o.label);
            v
        })
        .collect()
}

fn kinds(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["kind"].as_str().expect("every row has a kind"))
        .collect()
}

#[test]
fn jsonlines_prints_one_total_row_per_target_and_no_intervals() {
    let server = Server::start(&["-p", "tcp"]);
    let addr = server.addr();
    let base = [
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "1s",
        "-i",
        "200ms",
        "--workers",
        "1",
    ];

    // Two targets: one total each, in target order, nothing else on stdout.
    let o = connect(&[&base[..], &["--jsonlines", &addr, &addr]].concat());
    let rs = rows(&o);
    assert_eq!(kinds(&rs), ["total", "total"], "{}", o.text());
    for r in &rs {
        assert_eq!(r["peer"], addr.as_str(), "{r}");
        assert!(r.get("interval").is_none(), "a total has no window: {r}");
        assert!(u(r, "count") > 0, "{r}");
        assert_eq!(r["verdict"], "pass", "{r}");
    }

    // Merged: exactly one row.
    let o = connect(
        &[
            &base[..],
            &["--jsonlines", "--merge-results-each-host", &addr, &addr],
        ]
        .concat(),
    );
    let rs = rows(&o);
    assert_eq!(kinds(&rs), ["total"], "{}", o.text());
    assert_eq!(rs[0]["peer"], "merged(2 hosts)", "{}", rs[0]);

    // The Go tool's spelling of the switch prints the same.
    let o = connect(&[&base[..], &["--jsonlines=true", &addr]].concat());
    assert_eq!(kinds(&rows(&o)), ["total"], "{}", o.text());
}

#[test]
fn json_stream_prints_the_intervals_then_the_totals() {
    let server = Server::start(&["-p", "tcp"]);
    let addr = server.addr();
    let base = [
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "1s",
        "-i",
        "250ms",
        "--workers",
        "1",
    ];
    // `--json-stream` wins over `--jsonlines`, in either order.
    for flags in [
        &["--json-stream"][..],
        &["--jsonlines", "--json-stream"],
        &["--json-stream", "--jsonlines"],
    ] {
        let o = connect(&[&base[..], flags, &[&addr, &addr]].concat());
        let rs = rows(&o);
        let k = kinds(&rs);
        let (intervals, totals) = k.split_at(k.len() - 2);
        assert_eq!(totals, ["total", "total"], "{flags:?}:\n{}", o.text());
        // 1 s in 250 ms windows: 4 per target (a 5th, a sliver, if the clock is unkind).
        assert!(
            (6..=10).contains(&intervals.len())
                && intervals.len() % 2 == 0
                && intervals.iter().all(|k| *k == "interval"),
            "{flags:?}: {k:?}\n{}",
            o.text()
        );
        for (i, r) in rs[..intervals.len()].iter().enumerate() {
            assert_eq!(
                u(r, "interval"),
                i as u64 / 2,
                "{flags:?}: windows in order: {r}"
            );
            assert_eq!(r["peer"], addr.as_str(), "{r}");
            assert!(r.get("verdict").is_none(), "verdicts are for totals: {r}");
        }
        // The intervals add up to the totals (one target's rows are every other row).
        let sum: u64 = rs[..intervals.len()].iter().map(|r| u(r, "count")).sum();
        let total: u64 = rs[intervals.len()..].iter().map(|r| u(r, "count")).sum();
        assert_eq!(sum, total, "{flags:?}:\n{}", o.text());
        assert!(total > 0);
    }

    // `--show-only-results` still drops the intervals.
    let o = connect(&[&base[..], &["--json-stream", "--show-only-results", &addr]].concat());
    assert_eq!(kinds(&rows(&o)), ["total"], "{}", o.text());
}

#[test]
fn one_target_merged_is_named_merged_1_hosts() {
    let server = Server::start(&["-p", "tcp"]);
    let addr = server.addr();
    let base = [
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "1s",
        "-i",
        "500ms",
        "--workers",
        "1",
        "--merge-results-each-host",
    ];

    // The table: every row (intervals and total) is the merged row, none names the address.
    let o = connect(&[&base[..], &[&addr]].concat());
    let text = o.text();
    let data: Vec<&String> = o
        .out
        .iter()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with('#')
                && !l.starts_with("PEER")
                && !l.starts_with("---")
        })
        .collect();
    assert!(data.len() >= 3, "two windows and the total:\n{text}");
    for l in &data {
        assert!(l.starts_with("merged(1 hosts) "), "{l:?}\n{text}");
    }
    assert!(
        !o.out.iter().any(|l| l.starts_with(&addr)),
        "no row names the target:\n{text}"
    );

    // JSON, totals only and streamed.
    let o = connect(&[&base[..], &["--jsonlines", &addr]].concat());
    let rs = rows(&o);
    assert_eq!(kinds(&rs), ["total"], "{}", o.text());
    assert_eq!(rs[0]["peer"], "merged(1 hosts)", "{}", rs[0]);
    assert!(u(&rs[0], "count") > 0, "{}", rs[0]);

    let o = connect(&[&base[..], &["--json-stream", &addr]].concat());
    let rs = rows(&o);
    assert!(rs.len() >= 3, "{}", o.text());
    for r in &rs {
        assert_eq!(r["peer"], "merged(1 hosts)", "{r}");
    }
    assert_eq!(rs.last().unwrap()["kind"], "total");
}

/// README.md's key table: the Go tool's keys (in the paragraph before it) and every key in its
/// first column, with `{a,b}` expanded (`service_{min,max}_us` → `service_min_us`,
/// `service_max_us`); and the whole table's text, where nested keys are named.
fn readme_keys() -> (BTreeSet<String>, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let output = readme
        .split("\n## Output\n")
        .nth(1)
        .expect("an Output section");
    let start = output
        .find("with the Go tool's keys")
        .expect("the Go tool's keys");
    let section = &output[start..];
    let table_at = section.find("| key | meaning |").expect("the key table");
    let table_len = section[table_at..].find("\n\n").expect("the table ends");
    let table = &section[table_at..table_at + table_len];
    let mut keys = BTreeSet::new();
    let mut add = |spelled: &str| {
        // `a_{x,y}_b` → `a_x_b`, `a_y_b` (one brace group at most); `{P}` stays a placeholder.
        match (spelled.find('{'), spelled.find('}')) {
            (Some(open), Some(close)) if open < close && spelled[open..close].contains(',') => {
                for alt in spelled[open + 1..close].split(',') {
                    keys.insert(format!(
                        "{}{alt}{}",
                        &spelled[..open],
                        &spelled[close + 1..]
                    ));
                }
            }
            _ => {
                keys.insert(spelled.to_string());
            }
        }
    };
    // The Go tool's keys: backticked in the paragraph before the table.
    for w in section[..table_at].split('`').skip(1).step_by(2) {
        if w.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            add(w);
        }
    }
    // The first column of each row.
    for line in table.lines().skip(2) {
        let first = line.split('|').nth(1).expect("a table row");
        for w in first.split('`').skip(1).step_by(2) {
            add(w);
        }
    }
    (keys, table.to_string())
}

/// Every key a `connect` JSON row carries, top level and nested (as `parent.child`), over runs
/// that switch on every optional key: TCP persistent (ramp) with `--percentiles`, `--label`,
/// `--latency-distribution`, Poisson arrivals and `--slo`; TCP ephemeral (connect time); UDP
/// (loss counters, flows).
#[test]
fn every_json_key_is_in_the_readme_key_table() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let runs: [&[&str]; 3] = [
        &[
            "-c",
            "2",
            "-r",
            "100",
            "--percentiles",
            "50,99.9,99.99",
            "--label",
            "host=a",
            "--latency-distribution",
            "--arrival",
            "poisson",
            "--seed",
            "7",
            "--slo",
            "p99=10s",
        ],
        &["-f", "ephemeral", "-r", "100"],
        &["-p", "udp", "-c", "2", "-r", "100"],
    ];
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut nested: BTreeSet<(String, String)> = BTreeSet::new();
    for extra in runs {
        let o = connect(
            &[
                &[
                    "-d",
                    "500ms",
                    "-i",
                    "250ms",
                    "--workers",
                    "1",
                    "--json-stream",
                ][..],
                extra,
                &[&addr],
            ]
            .concat(),
        );
        let rs = rows(&o);
        assert!(kinds(&rs).contains(&"interval"), "{}", o.text());
        for r in &rs {
            for (k, v) in r.as_object().unwrap() {
                seen.insert(k.clone());
                // `labels` holds the user's own keys.
                if let (Some(obj), false) = (v.as_object(), k == "labels") {
                    for sub in obj.keys() {
                        nested.insert((k.clone(), sub.clone()));
                    }
                }
            }
        }
    }
    // The runs did switch the optional keys on.
    for k in [
        "interval",
        "labels",
        "seed",
        "latency_9999p_us",
        "latency_distribution",
        "connect_count",
        "flows",
        "lost",
        "ramp_sec",
        "clamped",
        "connection_errors",
        "verdict",
    ] {
        assert!(seen.contains(k), "no run printed {k}: {seen:?}");
    }

    let (documented, table) = readme_keys();
    let mut missing = vec![];
    for k in &seen {
        // `--percentiles` keys: `latency_{P}p_us` with P the percentile without its dot.
        let generic = k
            .strip_prefix("latency_")
            .and_then(|r| r.strip_suffix("p_us"))
            .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
            .map(|_| "latency_{P}p_us".to_string());
        if !documented.contains(k) && !generic.is_some_and(|g| documented.contains(&g)) {
            missing.push(k.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's key table lacks {missing:?}"
    );
    // Nested keys (error kinds, `latency_ns` fields, ...) are named in the table's text.
    let missing: Vec<String> = nested
        .iter()
        .filter(|(_, sub)| !table.contains(&format!("`{sub}`")))
        .map(|(k, sub)| format!("{k}.{sub}"))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's key table does not name {missing:?}"
    );
}
