//! Binary tests for the edges of `connperf connect`'s flags and of its table (issue 13 item 9):
//! UDP message sizes at their limits over IPv4 and IPv6, a schedule with no request in it, the
//! CPU share of a run too short to measure one, repeated `--percentiles`, the PEER column of
//! long target names, and the Makefile's binary under `CARGO_TARGET_DIR`.
//!
//! Everything listens on 127.0.0.1 / [::1] port 0; every child is waited for with a deadline and
//! killed (by its PID) if it overstays.

use serde_json::Value;
use std::net::UdpSocket;
use std::time::Duration;

mod common;

use common::proc::{spawn, Outcome, Proc};
use common::rows::{json_rows, limit, the_total};
use common::u;

/// How long a refused command line may take to exit.
const QUICK: Duration = Duration::from_secs(10);

/// Run `connperf ARGS` to completion within `limit`.
fn run(args: &[&str], limit: Duration) -> Outcome {
    spawn(args, None).finish_within(limit)
}

/// `connperf serve -l ADDR --workers 1` (TCP and UDP); its address.
fn serve(listen: &str) -> (Proc, String) {
    let mut p = spawn(&["serve", "-l", listen, "--workers", "1"], None);
    let addr = p.listening(1)[0].to_string();
    (p, addr)
}

/// Stop a server started by `serve`: SIGTERM, then it must exit 0.
fn stop(mut p: Proc) {
    p.signal(libc::SIGTERM);
    let o = p.finish(QUICK);
    o.assert_ok("serve");
}

/// A refused command line: exit 2, nothing on stdout, one `connperf: ` line on stderr that
/// contains every one of `needles`.
fn assert_usage_error(o: &Outcome, needles: &[&str]) {
    let lines = o.stderr_lines();
    assert!(
        o.status.code() == Some(2)
            && o.out.is_empty()
            && lines.len() == 1
            && lines[0].starts_with("connperf: ")
            && needles.iter().all(|n| lines[0].contains(n)),
        "{}: status {:?}, stdout {:?}, stderr {:?} (wanted one line with {needles:?})",
        o.label,
        o.status,
        o.out,
        o.err
    );
}

// ---------------------------------------------------------------------------------------------
// UDP message sizes
// ---------------------------------------------------------------------------------------------

#[test]
fn udp_message_below_the_header_or_above_a_datagram_is_a_usage_error() {
    // A sink on both address families: a refused command line sends nothing.
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v6 = UdpSocket::bind("[::1]:0").unwrap();
    v4.set_nonblocking(true).unwrap();
    v6.set_nonblocking(true).unwrap();
    let (a4, a6) = (
        v4.local_addr().unwrap().to_string(),
        v6.local_addr().unwrap().to_string(),
    );
    let both = format!("{a6},{a4}");
    let cases: &[(&str, &str, &[&str])] = &[
        ("1", &a4, &["--message-bytes 1", "24", "65507"]),
        ("23", &a4, &["--message-bytes 23", "24"]),
        ("23", &a6, &["--message-bytes 23", "24", "65527"]),
        ("65508", &a4, &["65508", "65507", "IPv4"]),
        ("65528", &a6, &["65528", "65527", "IPv6"]),
        // Mixed families: the smaller limit, IPv4's.
        (
            "65508",
            &both,
            &["65508", "65507", "not every target is IPv6"],
        ),
    ];
    for (bytes, target, needles) in cases {
        let o = run(
            &[
                "connect",
                "-p",
                "udp",
                "-d",
                "1s",
                "--message-bytes",
                bytes,
                target,
            ],
            QUICK,
        );
        assert_usage_error(&o, needles);
    }
    // The demo server is IPv4.
    let o = run(
        &["connect", "--demo", "-p", "udp", "--message-bytes", "65508"],
        QUICK,
    );
    assert_usage_error(&o, &["65507"]);
    let mut b = [0u8; 16];
    assert!(v4.recv_from(&mut b).is_err(), "a refused run sent to IPv4");
    assert!(v6.recv_from(&mut b).is_err(), "a refused run sent to IPv6");
}

/// One paced UDP run of `bytes`-byte messages against `addr`: its total row.
fn udp_total(addr: &str, bytes: &str) -> Value {
    let o = run(
        &[
            "connect",
            "-p",
            "udp",
            "-c",
            "1",
            "-r",
            "20",
            "-d",
            "500ms",
            "--workers",
            "1",
            "--timeout",
            "2s",
            "--message-bytes",
            bytes,
            "--jsonlines",
            addr,
        ],
        limit(0.5, Duration::from_secs(2)),
    );
    o.assert_ok(&format!("--message-bytes {bytes} to {addr}"));
    the_total(&json_rows(&o)).clone()
}

#[test]
fn udp_messages_of_the_header_and_of_the_largest_datagram_each_family_carries() {
    let (s4, a4) = serve("127.0.0.1:0");
    let (s6, a6) = serve("[::1]:0");
    for (addr, bytes) in [
        (&a4, "24"),
        (&a4, "65507"),
        (&a6, "24"),
        (&a6, "65508"),
        (&a6, "65527"),
    ] {
        let t = udp_total(addr, bytes);
        let what = format!("--message-bytes {bytes} to {addr}: {t}");
        assert!(u(&t, "count") >= 5, "{what}");
        assert_eq!(u(&t, "error_count"), 0, "{what}");
        assert_eq!(u(&t, "lost"), 0, "{what}");
        let b: u64 = bytes.parse().unwrap();
        assert_eq!(u(&t, "bytes") % b, 0, "whole messages of {b} bytes: {what}");
    }
    stop(s4);
    stop(s6);
}

// ---------------------------------------------------------------------------------------------
// Makefile
// ---------------------------------------------------------------------------------------------

/// `make -n TARGET` in the crate, with `CARGO_TARGET_DIR` set to `dir` or unset: its commands.
fn make_n(target: &str, dir: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("make");
    cmd.args(["-n", target])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // What `cargo test` itself was given must not decide the answer.
    cmd.env_remove("CARGO_TARGET_DIR").env_remove("MAKEFLAGS");
    if let Some(d) = dir {
        cmd.env("CARGO_TARGET_DIR", d);
    }
    let o = cmd.output().expect("run make -n");
    assert!(o.status.success(), "make -n {target}: {o:?}");
    String::from_utf8(o.stdout).expect("UTF-8")
}

#[test]
fn make_run_and_smoke_use_the_binary_under_cargo_target_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let ours = format!("{d}/release/connperf");
    for target in ["run", "smoke"] {
        let with = make_n(target, Some(d));
        assert!(with.contains(&ours), "make -n {target}:\n{with}");
        assert!(
            !with.contains(" target/release/"),
            "make -n {target}:\n{with}"
        );
        let without = make_n(target, None);
        assert!(
            without.contains("target/release/connperf") && !without.contains(&ours),
            "make -n {target} without CARGO_TARGET_DIR:\n{without}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// --percentiles
// ---------------------------------------------------------------------------------------------

/// A short `--demo` run with `extra` flags; it must exit 0.
fn demo(extra: &[&str]) -> Outcome {
    let mut args = vec!["connect", "--demo", "-c", "1", "-r", "50", "-d", "300ms"];
    args.extend(extra);
    let o = run(&args, limit(0.3, Duration::from_secs(2)));
    o.assert_ok(&format!("{args:?}"));
    o
}

#[test]
fn a_percentile_given_twice_or_fixed_is_one_column_and_one_key() {
    for (list, want) in [
        ("50,50", vec!["LAT_50p(µs)"]),
        ("99.9", vec!["LAT_99.9p(µs)"]),
        ("99.9,50,99.90,50", vec!["LAT_99.9p(µs)", "LAT_50p(µs)"]),
        ("99,50,90", vec!["LAT_50p(µs)"]),
    ] {
        let o = demo(&["--percentiles", list]);
        let header: Vec<&str> = o.out[0].split_whitespace().collect();
        let rate = header.iter().position(|h| *h == "RATE(/s)").unwrap();
        let errors = header.iter().position(|h| *h == "ERRORS").unwrap();
        assert_eq!(
            header[rate + 1..errors],
            want,
            "--percentiles {list}: {header:?}"
        );
        for h in &header {
            let n = header.iter().filter(|x| *x == h).count();
            assert_eq!(n, 1, "--percentiles {list}: {h} {n} times in {header:?}");
        }
        let rows: Vec<Vec<&str>> = o
            .out
            .iter()
            .filter(|l| l.starts_with("127.0.0.1:"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(!rows.is_empty(), "{}", o.text());
        for r in rows {
            assert_eq!(r.len(), header.len(), "--percentiles {list}: {r:?}");
        }
    }
    // JSON: one key (serde_json would keep only the last of two, so count in the text).
    let o = demo(&["--percentiles", "50,50", "--jsonlines"]);
    let total = o
        .out
        .iter()
        .find(|l| l.contains("\"kind\":\"total\""))
        .unwrap_or_else(|| panic!("no total row: {}", o.text()));
    assert_eq!(total.matches("\"latency_50p_us\"").count(), 1, "{total}");
}

// ---------------------------------------------------------------------------------------------
// A schedule with no request in it; the CPU share of a tiny run
// ---------------------------------------------------------------------------------------------

#[test]
fn a_rate_under_one_request_per_stream_gets_a_note_and_still_runs() {
    let (s, addr) = serve("127.0.0.1:0");
    // (flags, the note's count, or None: no note)
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["-r", "0.0001", "-d", "1s"], Some("per connection: the schedule holds 0 requests in the measured time, so nothing will be measured")),
        // Connection c of 10 first sends at (c + 0.5) / 10 / r s: with -r 0.5 over 1 s, 5 do.
        (&["-r", "0.5", "-d", "1s"], Some("per connection: the schedule holds 5 requests in the measured time")),
        // Per target, the schedule's slot 0 is at the start.
        (&["-p", "udp", "-r", "0.0001", "-d", "1s"], Some("per target: the schedule holds 1 request in the measured time")),
        (&["-r", "1", "-d", "1s"], None),
        (&["-r", "0", "-d", "300ms"], None),
    ];
    for (flags, note) in cases {
        let mut args = vec!["connect", "--jsonlines", "--timeout", "2s"];
        args.extend(*flags);
        args.push(&addr);
        let o = run(&args, limit(1.0, Duration::from_secs(2)));
        o.assert_ok(&format!("{args:?}"));
        let notes: Vec<&str> = o
            .stderr_lines()
            .into_iter()
            .filter(|l| l.contains("under one request"))
            .collect();
        match note {
            Some(n) => {
                assert_eq!(notes.len(), 1, "{args:?}: {}", o.err);
                assert!(
                    notes[0].starts_with("connperf: note: -r "),
                    "{args:?}: {}",
                    o.err
                );
                assert!(notes[0].ends_with(n), "{args:?}: {}", o.err);
            }
            None => assert!(notes.is_empty(), "{args:?}: {}", o.err),
        }
        let t = the_total(&json_rows(&o)).clone();
        if let Some(n) = note {
            let want: u64 = n
                .split("holds ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(u(&t, "count"), want, "{args:?}: {t}");
        }
    }
    stop(s);
}

/// The `# generator cpu:` line of a table run.
fn cpu_line(o: &Outcome) -> String {
    o.out
        .iter()
        .find(|l| l.starts_with("# generator cpu: "))
        .unwrap_or_else(|| panic!("no cpu line:\n{}", o.text()))
        .clone()
}

#[test]
fn a_run_too_short_for_a_cpu_share_prints_none() {
    for d in ["1ns", "1us", "5ms"] {
        let o = run(
            &["connect", "--demo", "-d", d, "-i", "1s"],
            limit(0.0, Duration::from_secs(2)),
        );
        o.assert_ok(d);
        let line = cpu_line(&o);
        assert!(
            line.ends_with("(too short a run for a share)") && !line.contains('%'),
            "-d {d}: {line}"
        );
    }
    // A run long enough: a share, at most 100 % per worker.
    let o = demo(&["--workers", "1"]);
    let line = cpu_line(&o);
    let pct: f64 = line
        .split(" (")
        .nth(1)
        .and_then(|r| r.strip_suffix(" % of one core)"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!((0.0..=100.0).contains(&pct), "{line}");
}

// ---------------------------------------------------------------------------------------------
// The table's PEER column
// ---------------------------------------------------------------------------------------------

/// Every line of a table (header, rows, notes) ends in no blank; the header and the rows put
/// each column at the same character offset.
fn assert_aligned(o: &Outcome, peers: &[&str]) {
    for l in &o.out {
        assert_eq!(l.trim_end(), l, "a trailing blank: {l:?}");
    }
    let header = &o.out[0];
    assert!(header.starts_with("PEER "), "{header}");
    // Where each header column starts, in characters (`µ` is one).
    let starts = |l: &str| -> Vec<usize> {
        let cs: Vec<char> = l.chars().collect();
        (0..cs.len())
            .filter(|&i| cs[i] != ' ' && (i == 0 || cs[i - 1] == ' '))
            .collect()
    };
    let want = starts(header);
    let rows: Vec<&String> = o
        .out
        .iter()
        .filter(|l| peers.iter().any(|p| l.starts_with(&format!("{p} "))))
        .collect();
    assert!(!rows.is_empty(), "{}", o.text());
    for r in rows {
        // A value is left-aligned in its column: it starts where the header's name does. The
        // peer is one column even with a blank in it (`merged(2 hosts)`).
        let p = peers
            .iter()
            .find(|p| r.starts_with(&format!("{p} ")))
            .unwrap();
        let masked = format!("{}{}", "x".repeat(p.chars().count()), &r[p.len()..]);
        assert_eq!(starts(&masked), want, "header {header:?}\nrow    {r:?}");
    }
}

#[test]
fn the_peer_column_widens_to_the_longest_target_and_lines_end_without_blanks() {
    let (s4, a4) = serve("127.0.0.1:0");
    let (s6, a6) = serve("[::1]:0");
    let port6 = a6.rsplit(':').next().unwrap();
    // A name longer than 20 characters: [0:0:0:0:0:0:0:1]:PORT.
    let long = format!("[0:0:0:0:0:0:0:1]:{port6}");
    assert!(long.len() > 20);
    let base = [
        "connect",
        "-c",
        "1",
        "-r",
        "20",
        "-d",
        "1s",
        "-i",
        "500ms",
        "--workers",
        "1",
    ];
    let mut args = base.to_vec();
    args.extend([a4.as_str(), long.as_str()]);
    let o = run(&args, limit(1.0, Duration::from_secs(2)));
    o.assert_ok("two targets");
    let w = long.chars().count();
    assert_eq!(o.out[0].find("CNT"), Some(w + 1), "{}", o.out[0]);
    assert_aligned(&o, &[&a4, &long]);
    // UDP and ephemeral tables (LOST, CONN_ columns last and in the middle), a short name.
    for extra in [&["-p", "udp"][..], &["-f", "ephemeral"][..]] {
        let mut args = base.to_vec();
        args.extend(extra);
        args.push(&a4);
        let o = run(&args, limit(1.0, Duration::from_secs(2)));
        o.assert_ok(&format!("{extra:?}"));
        assert_eq!(o.out[0].find("CNT"), Some(21), "{}", o.out[0]);
        assert_aligned(&o, &[&a4]);
    }
    // Merged, only `merged(2 hosts)` is printed: the Go tool's 20 however long the targets.
    let mut args = base.to_vec();
    args.extend(["--merge-results-each-host", a4.as_str(), long.as_str()]);
    let o = run(&args, limit(1.0, Duration::from_secs(2)));
    o.assert_ok("merged");
    assert_eq!(o.out[0].find("CNT"), Some(21), "{}", o.out[0]);
    assert_aligned(&o, &["merged(2 hosts)"]);
    stop(s4);
    stop(s6);
}

/// UDP flows are opened before the run: more than the open-file limit allows is a usage error
/// naming both numbers (exit 2, nothing sent), not a run that stops half-way with exit 1.
#[test]
fn udp_flows_beyond_the_open_file_limit_are_a_usage_error() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_nonblocking(true).unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let o = spawn(
        &["connect", "-p", "udp", "-c", "1000", "-d", "1s", &addr],
        Some(256),
    )
    .finish_within(Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(2), "{}", o.err);
    let lines = o.stderr_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("-c 1000") && lines[0].contains("limit is 256"),
        "{lines:?}"
    );
    assert!(o.out.is_empty(), "no report: {:?}", o.out);
    let mut buf = [0u8; 64];
    assert!(sink.recv_from(&mut buf).is_err(), "a datagram was sent");
}

/// A stderr that cannot be written (`2>/dev/full`, a reader gone after `| head -1`) does not
/// turn the exit status into a panic's 101: a failed run still exits 1, a usage error 2, and
/// a run that passed 0.
#[test]
fn an_unwritable_stderr_keeps_the_exit_status() {
    // Linux always has /dev/full: every write to it fails with ENOSPC.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let dead = common::DeadPort::new();
    let addr = dead.addr();
    let status = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(full())
            .status()
            .unwrap()
            .code()
    };
    // Refused: a check-failed line per target and the error report, all into /dev/full.
    assert_eq!(
        status(&["connect", "-c", "1", "-r", "50", "-d", "500ms", &addr]),
        Some(1)
    );
    assert_eq!(status(&["connect", "--bogus"]), Some(2));
    assert_eq!(
        status(&["connect", "--demo", "-c", "1", "-r", "50", "-d", "500ms"]),
        Some(0)
    );
}
