//! `connect --hdr-log`, `--label`, `--start-at` and `connperf merge`, end to end on loopback.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{json_total, Server, BIN};

/// A path named `name` in `dir`, as a string for a command line.
fn tmp(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run connperf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn merging_one_log_gives_the_runs_own_totals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let target = server.addr();
    let log = tmp(&dir, "one.hlog");
    let (code, out, err) = run(&[
        "connect",
        "-c",
        "4",
        "-r",
        "200",
        "-d",
        "2s",
        "-i",
        "500ms",
        "--workers",
        "1",
        "--json-stream",
        "--label",
        "host=a",
        "--label",
        "run=7",
        "--hdr-log",
        &log,
        &target,
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &rows {
        assert_eq!(r["labels"]["host"], "a", "labels on every row: {r}");
        assert_eq!(r["labels"]["run"], "7");
    }
    let own = json_total(&out);
    let (code, merged, err) = run(&["merge", "--jsonlines", &log]);
    assert_eq!(code, 0, "{err}");
    let m = json_total(&merged);
    for key in [
        "count",
        "latency_min_us",
        "latency_max_us",
        "latency_90p_us",
        "latency_99p_us",
        "latency_999p_us",
    ] {
        assert_eq!(m[key], own[key], "{key}: merged {m}\nown {own}");
    }
    assert_eq!(m["latency_ns"], own["latency_ns"]);
    assert_eq!(
        m["labels"]["host"], "a",
        "labels come back from the log tags"
    );
    let intervals = merged.lines().count() - 1;
    let own_intervals = rows.iter().filter(|r| r["kind"] == "interval").count();
    assert_eq!(intervals, own_intervals);
    // Every counter and figure of the total, and window by window the counters.
    common::sums::assert_same_as_own(&m, &own, "one log");
    let merged_rows: Vec<Value> = merged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let own_rows = rows.iter().filter(|r| r["kind"] == "interval");
    for (got, want) in merged_rows.iter().zip(own_rows) {
        assert_eq!(got["interval"], want["interval"]);
        common::sums::assert_sum(got, &[want], "window");
    }
    // The merge judges its totals as connect does: --slo it cannot meet fails (exit 1, named
    // on stderr and in the table), a bad --slo is a usage error.
    assert_eq!(m["verdict"], "pass", "{m}");
    let (code, out, err) = run(&["merge", "--show-only-results", "--slo", "p99=1us", &log]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("check failed") && err.contains("slo 1 µs"),
        "{err}"
    );
    assert!(
        out.contains("FAIL: p99") && out.contains("# verdict: fail"),
        "{out}"
    );
    let (code, _, err) = run(&["merge", "--slo", "p99=soon", &log]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid --slo"), "{err}");
}

#[test]
fn three_hosts_merge_into_the_union_of_their_samples() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let target = server.addr();
    let logs: Vec<String> = (0..3)
        .map(|i| tmp(&dir, &format!("host{i}.hlog")))
        .collect();
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let start = format!("{start:.3}");
    let children: Vec<Child> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            Command::new(BIN)
                .args([
                    "connect",
                    "-c",
                    "2",
                    "-r",
                    "100",
                    "-d",
                    "2s",
                    "-i",
                    "1s",
                    "--workers",
                    "1",
                    "--jsonlines",
                ])
                .args([
                    "--show-only-results",
                    "--start-at",
                    &start,
                    "--label",
                    &format!("host={i}"),
                    "--hdr-log",
                    log,
                    &target,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let began = Instant::now();
    let mut total = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("waiting"),
            "--start-at says it waits"
        );
        total += json_total(&String::from_utf8(out.stdout).unwrap())["count"]
            .as_u64()
            .unwrap();
    }
    assert!(
        began.elapsed() >= Duration::from_millis(2800),
        "runs waited for --start-at"
    );
    let mut args = vec!["merge", "--jsonlines"];
    args.extend(logs.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let m = json_total(&out);
    assert_eq!(m["count"].as_u64().unwrap(), total, "{m}");
    assert!(
        m["labels"].get("host").is_none(),
        "hosts differ, so no common host label: {m}"
    );
    // Aligned by wall clock: the hosts started together, so 2 s of 1 s windows, not 6.
    assert_eq!(
        out.lines().filter(|l| l.contains("\"interval\"")).count(),
        2,
        "{out}"
    );
}

#[test]
fn a_bad_log_is_named_with_its_byte_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = tmp(&dir, "good.hlog");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let target = server.addr();
    let (code, _, err) = run(&[
        "connect",
        "-c",
        "1",
        "-r",
        "50",
        "-d",
        "1s",
        "--workers",
        "1",
        "--hdr-log",
        &good,
        &target,
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&good).unwrap();
    // Truncate in the middle of the last histogram line.
    let cut = tmp(&dir, "cut.hlog");
    std::fs::write(&cut, &text[..text.len() - 20]).unwrap();
    let last_line = text.trim_end().rfind('\n').unwrap() + 1;
    let (code, _, err) = run(&["merge", &cut]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&cut) && err.contains(&format!("byte {last_line}")),
        "{err}"
    );
    let garbage = tmp(&dir, "garbage.hlog");
    std::fs::write(&garbage, "not a log\n").unwrap();
    let (code, _, err) = run(&["merge", &garbage]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(err.contains("byte 0"), "{err}");
    let (code, _, err) = run(&["merge"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn start_at_too_far_in_the_past_is_an_error() {
    let (code, out, err) = run(&[
        "connect",
        "--start-at",
        "2020-01-01T00:00:00Z",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        out.is_empty() && err.contains("--start-at") && err.contains("past"),
        "{err}"
    );
    let (code, _, err) = run(&["connect", "--start-at", "tomorrow", "127.0.0.1:9"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["connect", "--label", "a b", "127.0.0.1:9"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn merge_interval_shorter_than_the_logs_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let target = server.addr();
    let log = tmp(&dir, "coarse.hlog");
    let (code, _, err) = run(&[
        "connect",
        "-c",
        "1",
        "-r",
        "50",
        "-d",
        "2s",
        "-i",
        "1s",
        "--workers",
        "1",
        "--hdr-log",
        &log,
        &target,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["merge", "-i", "500ms", &log]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--interval"), "{err}");
    let (code, _, err) = run(&["merge", "-i", "2s", &log]);
    assert_eq!(code, 0, "{err}");
}

/// `merge --merge-results-each-host` of one target's log names its row as `connect` does:
/// `merged(1 hosts)`, in the table and in JSON, each window and the total.
#[test]
fn merging_one_target_into_one_row_is_merged_1_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let target = server.addr();
    let log = tmp(&dir, "one.hlog");
    let (code, _, err) = run(&[
        "connect",
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
        "--jsonlines",
        "--hdr-log",
        &log,
        &target,
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(&["merge", "--merge-results-each-host", "--jsonlines", &log]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 3, "two windows and the total:\n{out}");
    for r in &rows {
        assert_eq!(r["peer"], "merged(1 hosts)", "{r}");
    }
    assert!(json_total(&out)["count"].as_u64().unwrap() > 0);

    let (code, out, err) = run(&["merge", "--merge-results-each-host", &log]);
    assert_eq!(code, 0, "{err}");
    let data: Vec<&str> = out
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with('#')
                && !l.starts_with("PEER")
                && !l.starts_with("---")
        })
        .collect();
    assert!(data.len() >= 3, "{out}");
    for l in data {
        assert!(l.starts_with("merged(1 hosts) "), "{l:?}\n{out}");
    }
}

/// `connect ... --label host=NAME --jsonlines --hdr-log LOG TARGET`, started at once; three
/// such runs (one aimed where nothing listens) merge to the exact sums of their own totals.
fn spawn_host(name: &str, log: &str, target: &str) -> Child {
    Command::new(BIN)
        .args([
            "connect",
            "-c",
            "2",
            "-r",
            "200",
            "-d",
            "2s",
            "-i",
            "500ms",
            "--workers",
            "1",
        ])
        .args(["--jsonlines", "--label", &format!("host={name}")])
        .args(["--label", "run=exact", "--hdr-log", log, target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn merged_counters_are_the_exact_sums_of_each_hosts_totals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let dead = common::DeadPort::new();
    let hosts = [
        ("h1", server.addr()),
        ("h2", server.addr()),
        ("h3", dead.addr()),
    ];
    let logs: Vec<String> = hosts
        .iter()
        .map(|(h, _)| tmp(&dir, &format!("{h}.hlog")))
        .collect();
    let children: Vec<Child> = hosts
        .iter()
        .zip(&logs)
        .map(|((h, target), log)| spawn_host(h, log, target))
        .collect();
    let own: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            json_total(&String::from_utf8(out.stdout).unwrap())
        })
        .collect();
    assert!(own[0]["count"].as_u64().unwrap() > 0, "{}", own[0]);
    assert_eq!(own[2]["count"], 0, "h3's target refuses: {}", own[2]);
    assert!(
        own[2]["errors"]["refused"].as_u64().unwrap() > 0,
        "{}",
        own[2]
    );

    let mut args = vec![
        "merge",
        "--jsonlines",
        "--show-only-results",
        "--merge-results-each-host",
        "--by",
        "host",
    ];
    args.extend(logs.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "a refused host's rows fail: {err}");
    assert!(err.contains("no request completed"), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "the merged row and one per host:\n{out}");
    assert_eq!(rows[0]["peer"], "merged(2 hosts)");
    // The dead target is judged on its own, not hidden in the sum with the live one.
    assert_eq!(rows[0]["verdict"], "fail", "{}", rows[0]);
    let dead_reason = format!("{}: no request completed", dead.addr());
    assert!(
        rows[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with(&dead_reason)),
        "{}",
        rows[0]
    );
    assert!(
        err.contains(&format!("merged(2 hosts): {dead_reason}")),
        "{err}"
    );
    assert_eq!(rows[0]["labels"]["run"], "exact");
    assert!(rows[0]["labels"].get("host").is_none(), "{}", rows[0]);
    common::sums::assert_sum(&rows[0], &own.iter().collect::<Vec<_>>(), "merged");
    assert!(
        rows[0]["error_count"].as_u64().unwrap() > 0,
        "not 0: {}",
        rows[0]
    );
    for (i, (h, _)) in hosts.iter().enumerate() {
        let row = &rows[1 + i];
        assert_eq!(row["labels"]["host"], *h, "{row}");
        // Named as the host's own --merge-results-each-host run names its one target.
        assert_eq!(row["peer"], "merged(1 hosts)", "{row}");
        assert_eq!(row["labels"]["run"], "exact", "{row}");
        common::sums::assert_same_as_own(row, &own[i], h);
    }

    // Per target (no --merge-results-each-host): the refused target's row is h3's own.
    let mut args = vec!["merge", "--jsonlines", "--show-only-results"];
    args.extend(logs.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "a refused host's rows fail: {err}");
    assert!(err.contains("no request completed"), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    common::sums::assert_sum(&rows[0], &[&own[0], &own[1]], "live target");
    common::sums::assert_same_as_own(&rows[1], &own[2], "refused target");

    // The table says the same: ERRORS is h3's refused count, not 0.
    let (code, out, err) = run(&["merge", "--show-only-results", "--by", "host", &logs[2]]);
    assert_eq!(code, 1, "a refused host's rows fail: {err}");
    assert!(err.contains("no request completed"), "{err}");
    let refused = own[2]["error_count"].as_u64().unwrap().to_string();
    let line = out
        .lines()
        .find(|l| l.contains("{host=h3}"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        line.split_whitespace().last(),
        Some(refused.as_str()),
        "{out}"
    );
    assert!(!out.contains("# merged from interval logs"), "{out}");
}

/// A log written before counters were logged (format 1: histogram lines only) still merges;
/// its counters are unknown, `-` and `null`, never 0.
#[test]
fn logs_without_counters_show_them_unknown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = common::DeadPort::new();
    let log = tmp(&dir, "refused.hlog");
    let c = spawn_host("old", &log, &dead.addr());
    assert!(c.wait_with_output().is_ok());
    let text = std::fs::read_to_string(&log).unwrap();
    let old: String = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("#connperf-"))
        .collect();
    let old_log = tmp(&dir, "old.hlog");
    std::fs::write(&old_log, old).unwrap();
    let (code, out, err) = run(&["merge", "--jsonlines", "--show-only-results", &old_log]);
    assert_eq!(code, 0, "{err}");
    let total = json_total(&out);
    for key in [
        "error_count",
        "errors",
        "bytes",
        "lost",
        "generator_cpu_sec",
    ] {
        assert!(total[key].is_null(), "{key} unknown, not 0: {total}");
    }
    assert_eq!(total["count"], 0);
    // Nothing completed, but whether anything failed is unknown: so is the verdict (exit 0).
    assert_eq!(total["verdict"], "unknown", "{total}");
    let (code, out, err) = run(&["merge", "--show-only-results", &old_log]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("verdict unknown: its logs carry no error counts"),
        "{out}"
    );
    assert!(out.contains("# verdict: unknown"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row.split_whitespace().last(), Some("-"), "{out}");
    assert!(
        out.contains("# merged from interval logs: ") && out.contains("old.hlog"),
        "{out}"
    );
}

/// The same log twice, by path or by contents, or the same host's label twice over the same
/// time, is refused naming both files; `--allow-duplicates` merges anyway.
#[test]
fn duplicate_logs_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = common::DeadPort::new();
    let a = tmp(&dir, "a.hlog");
    let again = tmp(&dir, "a-again.hlog");
    let ca = spawn_host("a", &a, &dead.addr());
    let cb = spawn_host("a", &again, &dead.addr());
    let total = json_total(&String::from_utf8(ca.wait_with_output().unwrap().stdout).unwrap());
    assert!(cb.wait_with_output().is_ok());
    let copy = tmp(&dir, "copy.hlog");
    std::fs::copy(&a, &copy).unwrap();
    for (other, why) in [
        (&a, "the same file"),
        (&copy, "hold the same log"),
        (
            &again,
            "both labelled host=a,run=exact over overlapping times",
        ),
    ] {
        let (code, out, err) = run(&["merge", &a, other]);
        assert_eq!((code, out.as_str()), (2, ""), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(why) && err.contains(&a) && err.contains(other.as_str()),
            "{err}"
        );
        assert!(err.contains("--allow-duplicates"), "{err}");
    }
    let (code, out, err) = run(&[
        "merge",
        "--allow-duplicates",
        "--jsonlines",
        "--show-only-results",
        &a,
        &copy,
    ]);
    assert_eq!(code, 1, "a refused host's rows fail: {err}");
    assert!(err.contains("no request completed"), "{err}");
    let m = json_total(&out);
    assert_eq!(
        m["error_count"].as_u64().unwrap(),
        2 * total["error_count"].as_u64().unwrap(),
        "allowed: added twice, as asked"
    );
    let (code, _, err) = run(&["merge", "--by", "zone", &a]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--by zone") && err.contains(&a), "{err}");
    let (code, _, err) = run(&["merge", "--by", "peer", &a]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(
        err.contains("invalid --by \"peer\"") && err.contains("reserved"),
        "{err}"
    );
}

/// A UDP run's log carries its UDP counters (lost, late, duplicate, stray, reordered, flows):
/// merged, its own log gives back its own totals, UDP keys and LOST column included.
#[test]
fn udp_counters_merge_back_to_the_runs_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["-p", "udp", "--workers", "1"]);
    let dead = common::DeadPort::new();
    let logs = [tmp(&dir, "live.hlog"), tmp(&dir, "dead.hlog")];
    let own: Vec<Value> = [server.addr(), dead.addr()]
        .iter()
        .zip(&logs)
        .enumerate()
        .map(|(i, (target, log))| {
            let (code, out, err) = run(&[
                "connect",
                "-p",
                "udp",
                "-c",
                "2",
                "-r",
                "200",
                "-d",
                "1s",
                "-i",
                "500ms",
                "--timeout",
                "200ms",
                "--workers",
                "1",
                "--jsonlines",
                "--label",
                &format!("host=u{i}"),
                "--hdr-log",
                log,
                target,
            ]);
            assert!(code == 0 || i == 1, "{err}");
            json_total(&out)
        })
        .collect();
    assert!(own[0]["flows"].as_u64().unwrap() > 0, "{}", own[0]);
    let (code, out, err) = run(&[
        "merge",
        "--jsonlines",
        "--show-only-results",
        "--by",
        "host",
        &logs[0],
        &logs[1],
    ]);
    assert_eq!(code, 1, "a refused host's rows fail: {err}");
    assert!(err.contains("no request completed"), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    common::sums::assert_same_as_own(&rows[2], &own[0], "live");
    common::sums::assert_same_as_own(&rows[3], &own[1], "dead");
    let (code, out, err) = run(&["merge", "--show-only-results", &logs[0]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap().ends_with("LOST"), "{out}");
}
