//! Binary tests for `connperf connect`: the load generator run as a child process against the
//! project's own echo server (`connperf serve`, also a child), against targets that refuse or
//! never answer, and with bad input.
//!
//! Everything listens on 127.0.0.1 / [::1] port 0. Every child process is waited for with a
//! deadline and killed (by its PID) if it overstays; every test stops what it started.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod common;

use common::proc::{spawn, Outcome, Proc};
use common::rows::{
    check_clean, check_rows, errors, json_rows, kind_rows, limit, the_total, MAX_DRAIN,
};
use common::{booked, f, u, write_file};

/// How long a server gets to print its address, or to exit after SIGTERM.
const PROC_TIMEOUT: Duration = Duration::from_secs(10);
/// `--timeout` for runs that must have zero errors: generous, so a CPU-starved moment on a busy
/// CI machine is not reported as a timeout. Real failures (refused, reset, mismatch) still show.
const PATIENT: &str = "3s";

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Run `connperf ARGS` to completion; it must be done within `limit`.
fn run(args: &[&str], limit: Duration) -> Outcome {
    spawn(args, None).finish_within(limit)
}

// ---------------------------------------------------------------------------------------------
// The echo server as a child
// ---------------------------------------------------------------------------------------------

/// `connperf serve` on port 0 of 127.0.0.1 (and [::1] if asked), one worker.
struct Server {
    proc: Option<Proc>,
    addrs: Vec<SocketAddr>,
}

impl Server {
    fn start(ipv6: bool, jsonlines: bool) -> Server {
        let mut args = vec!["serve", "-l", "127.0.0.1:0"];
        if ipv6 {
            args.extend(["-l", "[::1]:0"]);
        }
        args.extend(["--workers", "1"]);
        if jsonlines {
            args.push("--jsonlines");
        }
        let mut proc = spawn(&args, None);
        let addrs = proc.listening(if ipv6 { 2 } else { 1 });
        assert!(addrs[0].is_ipv4(), "{addrs:?}");
        if ipv6 {
            assert_eq!(addrs[1].ip(), IpAddr::V6(Ipv6Addr::LOCALHOST), "{addrs:?}");
        }
        Server {
            proc: Some(proc),
            addrs,
        }
    }

    fn v4(&self) -> String {
        self.addrs[0].to_string()
    }

    fn v6(&self) -> String {
        self.addrs[1].to_string()
    }

    /// SIGKILL: the server dies without closing anything itself.
    fn kill(&mut self) {
        let mut p = self.proc.take().expect("server running");
        p.signal(libc::SIGKILL);
        let done = p.finish(PROC_TIMEOUT);
        assert_eq!(done.status.code(), None, "killed by a signal");
    }

    /// SIGTERM, wait for the exit, and return the final totals (text or JSON form).
    fn stop(mut self) -> HashMap<String, u64> {
        let mut p = self.proc.take().expect("server running");
        let t = Instant::now();
        p.signal(libc::SIGTERM);
        let done = p.finish_by(t + PROC_TIMEOUT);
        done.assert_ok("server after SIGTERM");
        server_totals(&done.out)
            .unwrap_or_else(|| panic!("no totals from the server:\n{}", done.out.join("\n")))
    }
}

/// The server's `total` row: `server total total accepted=.. tcp_bytes=..` or, with
/// `--jsonlines`, the object with `"kind":"total"` (nested counters flattened).
fn server_totals(stdout: &[String]) -> Option<HashMap<String, u64>> {
    for line in stdout {
        if line.starts_with("server total") {
            let mut m = HashMap::new();
            for tok in line.split_whitespace() {
                if let Some((k, v)) = tok.split_once('=') {
                    let k = k.trim_start_matches('(');
                    let v = v.trim_end_matches(')');
                    m.insert(k.to_string(), v.parse().expect("a counter"));
                }
            }
            return Some(m);
        }
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if v["kind"] == "total" {
                let mut m = HashMap::new();
                for (k, x) in v.as_object().expect("object") {
                    if let Some(n) = x.as_u64() {
                        m.insert(k.clone(), n);
                    } else if let Some(inner) = x.as_object() {
                        // `errors: {..}` becomes each counter plus their sum, as in the text.
                        let mut sum = 0;
                        for (ik, ix) in inner {
                            let n = ix.as_u64().expect("a counter");
                            m.insert(ik.clone(), n);
                            sum += n;
                        }
                        m.insert(k.clone(), sum);
                    }
                }
                return Some(m);
            }
        }
    }
    None
}

fn counter(m: &HashMap<String, u64>, key: &str) -> u64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("server totals lack {key}: {m:?}"))
}

// ---------------------------------------------------------------------------------------------
// Targets that misbehave
// ---------------------------------------------------------------------------------------------

/// A TCP listener that accepts every connection and holds it without reading or writing, until
/// dropped.
struct Silent {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Silent {
    fn start() -> Silent {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            // Bounded even if the test forgets to stop it.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            held.len()
        });
        Silent {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop accepting, close everything held; returns how many connections were accepted.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("no panic")
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines output
// ---------------------------------------------------------------------------------------------

fn assert_near(got: u64, want: u64, tolerance: f64, what: &str) {
    let diff = (got as f64 - want as f64).abs();
    assert!(
        diff <= want as f64 * tolerance,
        "{what}: {got} is not within {:.1} % of {want}",
        tolerance * 100.0
    );
}

// ---------------------------------------------------------------------------------------------
// Each mode against the project's server, IPv4 and IPv6
// ---------------------------------------------------------------------------------------------

#[test]
fn persistent_over_ipv4_and_ipv6_echoes_what_the_server_counts() {
    let server = Server::start(true, false);
    let (v4, v6) = (server.v4(), server.v6());
    let procs: Vec<(Proc, &str)> = [v4.as_str(), v6.as_str()]
        .into_iter()
        .map(|addr| {
            let p = spawn(
                &[
                    "connect",
                    "-c",
                    "4",
                    "-r",
                    "50",
                    "-d",
                    "1",
                    "-i",
                    "500ms",
                    "--workers",
                    "1",
                    "--timeout",
                    PATIENT,
                    "--json-stream",
                    addr,
                ],
                None,
            );
            (p, addr)
        })
        .collect();
    let mut client_bytes = 0;
    for (mut p, addr) in procs {
        let d = p.finish_within(limit(1.0, Duration::ZERO));
        let rows = check_clean(&d, 64, addr);
        let t = the_total(&rows);
        assert_eq!(t["peer"], addr);
        // 4 connections x 50/s x 1 s; a connection's schedule starts when it is connected.
        let count = u(t, "count");
        assert!((190..=200).contains(&count), "{addr}: count {count}");
        assert!(kind_rows(&rows, "interval").len() >= 2, "{rows:#?}");
        client_bytes += u(t, "bytes");
    }
    let s = server.stop();
    assert_eq!(
        counter(&s, "tcp_bytes"),
        client_bytes,
        "server echoed {s:?}"
    );
    assert_eq!(
        counter(&s, "accepted"),
        8,
        "one accept per connection: {s:?}"
    );
    assert_eq!(counter(&s, "udp_datagrams"), 0);
    assert_eq!(counter(&s, "errors"), 0, "{s:?}");
}

/// Both families at once, `-f ephemeral` with `--close` as given; returns the server totals and
/// the sum of the client counts.
fn ephemeral_run(close: &str) -> (HashMap<String, u64>, u64) {
    let server = Server::start(true, true);
    let (v4, v6) = (server.v4(), server.v6());
    let procs: Vec<(Proc, &str)> = [v4.as_str(), v6.as_str()]
        .into_iter()
        .map(|addr| {
            let p = spawn(
                &[
                    "connect",
                    "-f",
                    "ephemeral",
                    "--close",
                    close,
                    "-r",
                    "200",
                    "-d",
                    "1",
                    "--workers",
                    "1",
                    "--timeout",
                    PATIENT,
                    "-i",
                    "500ms",
                    "--json-stream",
                    addr,
                ],
                None,
            );
            (p, addr)
        })
        .collect();
    let mut total = 0;
    for (mut p, addr) in procs {
        let d = p.finish_within(limit(1.0, Duration::ZERO));
        let rows = check_clean(&d, 64, addr);
        let t = the_total(&rows);
        assert_eq!(t["peer"], addr);
        let count = u(t, "count");
        assert_eq!(count + u(t, "not_started"), 200, "{addr}: every slot: {t}");
        assert!(count >= 196, "{addr}: {t}");
        assert_eq!(u(t, "connect_count"), count, "one connect per request: {t}");
        for k in ["connect_min_us", "connect_mean_us", "connect_99p_us"] {
            u(t, k);
        }
        total += count;
    }
    (server.stop(), total)
}

#[test]
fn ephemeral_with_rst_over_ipv4_and_ipv6() {
    let (s, count) = ephemeral_run("rst");
    assert_eq!(counter(&s, "accepted"), count, "{s:?}");
    assert_eq!(counter(&s, "tcp_bytes"), count * 64, "{s:?}");
    // SO_LINGER 0: every connection ends with a RST the server sees.
    assert_eq!(counter(&s, "resets"), count, "{s:?}");
}

#[test]
fn ephemeral_with_fin_over_ipv4_and_ipv6() {
    let (s, count) = ephemeral_run("fin");
    assert_eq!(counter(&s, "accepted"), count, "{s:?}");
    assert_eq!(counter(&s, "tcp_bytes"), count * 64, "{s:?}");
    assert_eq!(counter(&s, "resets"), 0, "an orderly close: {s:?}");
    assert_eq!(counter(&s, "closed"), count, "{s:?}");
}

#[test]
fn udp_over_ipv4_and_ipv6_counts_what_the_server_echoed() {
    let server = Server::start(true, true);
    let (v4, v6) = (server.v4(), server.v6());
    let procs: Vec<(Proc, &str)> = [v4.as_str(), v6.as_str()]
        .into_iter()
        .map(|addr| {
            let p = spawn(
                &[
                    "connect",
                    "-p",
                    "udp",
                    "-r",
                    "200",
                    "-d",
                    "1",
                    "-i",
                    "500ms",
                    "--workers",
                    "1",
                    "--timeout",
                    PATIENT,
                    "--json-stream",
                    addr,
                ],
                None,
            );
            (p, addr)
        })
        .collect();
    let mut total = 0;
    for (mut p, addr) in procs {
        let d = p.finish_within(limit(1.0, Duration::ZERO));
        let rows = check_clean(&d, 64, addr);
        for r in &rows {
            for k in ["lost", "late", "duplicate", "reordered"] {
                u(r, k);
            }
        }
        let t = the_total(&rows);
        assert_eq!(t["peer"], addr);
        assert_eq!(u(t, "lost"), 0, "{t}");
        assert_eq!(u(t, "count") + u(t, "not_started"), 200, "{t}");
        total += u(t, "count");
    }
    let s = server.stop();
    assert_eq!(counter(&s, "udp_datagrams"), total, "nothing lost: {s:?}");
    assert_eq!(counter(&s, "udp_bytes"), total * 64, "{s:?}");
    assert_eq!(counter(&s, "accepted"), 0);
}

// ---------------------------------------------------------------------------------------------
// Several targets
// ---------------------------------------------------------------------------------------------

#[test]
fn several_targets_get_a_row_each() {
    let server = Server::start(true, true);
    let (v4, v6) = (server.v4(), server.v6());
    let d = run(
        &[
            "connect",
            "-c",
            "2",
            "-r",
            "50",
            "-d",
            "1",
            "-i",
            "500ms",
            "--workers",
            "2",
            "--timeout",
            PATIENT,
            "--json-stream",
            &v4,
            &v6,
        ],
        limit(1.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "two targets");
    let totals = kind_rows(&rows, "total");
    let peers: Vec<&str> = totals.iter().map(|t| t["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, [v4.as_str(), v6.as_str()], "in the order given");
    for t in &totals {
        assert!((95..=100).contains(&u(t, "count")), "2 x 50/s x 1 s: {t}");
    }
    let intervals = kind_rows(&rows, "interval");
    assert_eq!(intervals.len() % 2, 0, "a row per target per interval");
    assert!(intervals.len() >= 4, "{rows:#?}");
    let s = server.stop();
    let sum: u64 = totals.iter().map(|t| u(t, "bytes")).sum();
    assert_eq!(counter(&s, "tcp_bytes"), sum);
}

#[test]
fn merged_targets_print_one_row() {
    let server = Server::start(true, true);
    let (v4, v6) = (server.v4(), server.v6());
    let d = run(
        &[
            "connect",
            "-c",
            "2",
            "-r",
            "50",
            "-d",
            "1",
            "-i",
            "500ms",
            "--workers",
            "2",
            "--timeout",
            PATIENT,
            "--merge-results-each-host",
            "--json-stream",
            &v4,
            &v6,
        ],
        limit(1.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "merged");
    for r in &rows {
        assert_eq!(r["peer"], "merged(2 hosts)", "{r}");
    }
    let t = the_total(&rows);
    assert!((190..=200).contains(&u(t, "count")), "both targets: {t}");
    let n = kind_rows(&rows, "interval").len();
    assert!((2..=3).contains(&n), "one row per interval: {rows:#?}");
    let s = server.stop();
    assert_eq!(counter(&s, "tcp_bytes"), u(t, "bytes"));
    assert_eq!(counter(&s, "accepted"), 4);
}

#[test]
fn addrs_file_with_comments_and_blank_lines() {
    let server = Server::start(true, true);
    let (v4, v6) = (server.v4(), server.v6());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(
        &dir,
        "targets.addrs",
        format!("# targets for tests/connect.rs\n\n   \n{v4}   # the IPv4 one\n   {v6}\n\n# end\n")
            .as_bytes(),
    );
    let d = run(
        &[
            "connect",
            "-f",
            "ephemeral",
            "-r",
            "50",
            "-d",
            "1",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            "--json-stream",
            "--show-only-results",
            "--addrs-file",
            &path,
        ],
        limit(1.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "addrs file");
    let peers: Vec<&str> = rows.iter().map(|r| r["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, [v4.as_str(), v6.as_str()], "{rows:#?}");
    for t in &rows {
        assert_eq!(t["kind"], "total");
        assert_eq!(u(t, "count") + u(t, "not_started"), 50, "{t}");
    }
    let ephemeral: u64 = rows.iter().map(|t| u(t, "count")).sum();

    // The same file for persistent connections, as JSON and as a table (from tests/faults.rs).
    let persistent = [
        "connect",
        "-c",
        "2",
        "-d",
        "500ms",
        "-i",
        "250ms",
        "--workers",
        "1",
        "--timeout",
        PATIENT,
        "--addrs-file",
        &path,
    ];
    let json = spawn(&[&persistent[..], &["--json-stream"]].concat(), None);
    let table = spawn(&persistent, None);
    let d = { json }.finish_within(limit(0.5, Duration::ZERO));
    let rows = check_clean(&d, 64, "addrs file, persistent");
    let totals = kind_rows(&rows, "total");
    let peers: Vec<&str> = totals.iter().map(|r| r["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, [v4.as_str(), v6.as_str()], "{rows:#?}");
    for t in totals {
        // 2 connections x 100/s x 0.5 s each.
        assert!(u(t, "count") > 50, "{t}");
        assert_eq!(u(t, "error_count"), 0, "{t}");
    }
    let d = { table }.finish_within(limit(0.5, Duration::ZERO));
    d.assert_ok("addrs file, table");
    for peer in [&v4, &v6] {
        assert!(
            !table_rows(&d.out, peer).is_empty(),
            "{peer}:\n{}",
            d.text()
        );
    }

    let s = server.stop();
    // Each ephemeral request on a connection of its own, plus 2 + 2 persistent ones per run.
    assert_eq!(counter(&s, "accepted"), ephemeral + 8);
}

// ---------------------------------------------------------------------------------------------
// Message sizes and rates
// ---------------------------------------------------------------------------------------------

#[test]
fn message_sizes_from_1_byte_to_1_mib() {
    let server = Server::start(false, true);
    let addr = server.v4();
    let sizes = [1u64, 64, 64 * 1024, 1024 * 1024];
    let procs: Vec<(Proc, u64)> = sizes
        .iter()
        .map(|&m| {
            let mb = m.to_string();
            let p = spawn(
                &[
                    "connect",
                    "-c",
                    "2",
                    "-r",
                    "5",
                    "-d",
                    "1",
                    "--message-bytes",
                    &mb,
                    "--workers",
                    "1",
                    "--timeout",
                    PATIENT,
                    "--json-stream",
                    "--show-only-results",
                    &addr,
                ],
                None,
            );
            (p, m)
        })
        .collect();
    let mut client_bytes = 0;
    for (mut p, m) in procs {
        let d = p.finish_within(limit(1.0, MAX_DRAIN));
        let rows = check_clean(&d, m, &format!("--message-bytes {m}"));
        let t = the_total(&rows);
        let count = u(t, "count");
        assert!(
            (9..=10).contains(&count) && count + u(t, "not_started") <= 10,
            "{m} B: 2 connections x 5/s x 1 s: {t}"
        );
        assert_eq!(u(t, "bytes"), count * m);
        client_bytes += u(t, "bytes");
    }
    let s = server.stop();
    assert_eq!(counter(&s, "tcp_bytes"), client_bytes, "{s:?}");
}

#[test]
fn ephemeral_rate_is_kept_over_the_run() {
    let server = Server::start(false, true);
    let d = run(
        &[
            "connect",
            "-f",
            "ephemeral",
            "-r",
            "1000",
            "-d",
            "2s",
            "--workers",
            "2",
            "--timeout",
            PATIENT,
            "--json-stream",
            "--show-only-results",
            &server.v4(),
        ],
        limit(2.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "-r 1000 -f ephemeral");
    let t = the_total(&rows);
    assert_near(
        u(t, "count"),
        2000,
        0.02,
        "ephemeral requests in 2 s at 1000/s",
    );
    assert!((1.9..=2.1).contains(&f(t, "elapsed_sec")), "{t}");
    let s = server.stop();
    assert_eq!(counter(&s, "accepted"), u(t, "count"));
}

#[test]
fn persistent_rate_is_kept_over_the_run() {
    let server = Server::start(false, true);
    let d = run(
        &[
            "connect",
            "-c",
            "10",
            "-r",
            "100",
            "-d",
            "2s",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            "--json-stream",
            "--show-only-results",
            &server.v4(),
        ],
        limit(2.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "-c 10 -r 100");
    let t = the_total(&rows);
    assert_near(u(t, "count"), 2000, 0.02, "10 connections x 100/s x 2 s");
    let s = server.stop();
    assert_eq!(counter(&s, "tcp_bytes"), u(t, "bytes"));
}

#[test]
fn closed_loop_sends_as_fast_as_replies_come() {
    let server = Server::start(false, true);
    let addr = server.v4();
    let modes: [&[&str]; 4] = [
        &["-c", "2"],
        &["-f", "ephemeral", "-c", "2"],
        &["-p", "udp"],
        &["-p", "udp", "-f", "ephemeral", "-c", "2"],
    ];
    let procs: Vec<(Proc, String)> = modes
        .iter()
        .map(|m| {
            let mut args = vec!["connect", "--rate", "0", "-d", "1", "--workers", "1"];
            args.extend_from_slice(m);
            args.extend(["--timeout", PATIENT, "--json-stream", "-i", "500ms", &addr]);
            (spawn(&args, None), m.join(" "))
        })
        .collect();
    for (mut p, what) in procs {
        let d = p.finish_within(limit(1.0, MAX_DRAIN));
        let rows = check_clean(&d, 64, &what);
        let t = the_total(&rows);
        assert!(u(t, "count") >= 500, "{what}: closed loop on loopback: {t}");
        assert_eq!(u(t, "not_started"), 0, "{what}: nothing is scheduled: {t}");
        if what.starts_with("-p udp -f ephemeral") {
            // A socket per datagram, each one setup timed.
            assert_eq!(u(t, "flows"), booked(t), "{what}: {t}");
            assert_eq!(u(t, "connect_count"), booked(t), "{what}: {t}");
        } else if what == "-p udp" {
            assert_eq!(u(t, "flows"), 10, "{what}: the default -c 10: {t}");
        }
    }
    let s = server.stop();
    assert_eq!(counter(&s, "errors"), 0, "{s:?}");
}

/// Closed-loop ephemeral once replaced finished connections during the drain, so
/// every run lasted the full drain second longer and counted a second of extra requests.
#[test]
fn closed_loop_ephemeral_stops_at_the_end_of_the_run() {
    let server = Server::start(false, true);
    let d = run(
        &[
            "connect",
            "-f",
            "ephemeral",
            "-r",
            "0",
            "-c",
            "2",
            "-d",
            "1",
            "-i",
            "250ms",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            "--json-stream",
            &server.v4(),
        ],
        limit(1.0, MAX_DRAIN),
    );
    let rows = check_clean(&d, 64, "closed-loop ephemeral");
    // Replies on loopback take microseconds: nothing should hold the run past its end.
    d.assert_within(Duration::from_millis(1600), "closed-loop ephemeral");
    let t = the_total(&rows);
    // The last (partial) window must not carry the drain's extra traffic: no window runs at
    // more than twice the rate of the busiest full one.
    let intervals = kind_rows(&rows, "interval");
    let full_max = intervals[..intervals.len() - 1]
        .iter()
        .map(|r| f(r, "rate_per_sec"))
        .fold(0.0, f64::max);
    let last = intervals.last().unwrap();
    assert!(
        f(last, "rate_per_sec") <= 2.0 * full_max,
        "last window {last} vs {full_max}/s"
    );
    let s = server.stop();
    assert_eq!(counter(&s, "accepted"), u(t, "count"));
}

/// A listener whose accept queue is full for the first ~1 s: the generator's SYN is dropped and
/// retransmitted after the kernel's initial RTO (1 s), then the connection is echoed.
struct SlowAccept {
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl SlowAccept {
    fn start() -> SlowAccept {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .expect("bind");
        // Backlog 0: one queued connection fills the accept queue (Linux).
        s.listen(0).expect("listen");
        let l: TcpListener = s.into();
        let addr = l.local_addr().expect("local_addr");
        let filler = TcpStream::connect(addr).expect("fill the accept queue");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let (first, _) = l.accept().expect("the filler");
            drop(first);
            drop(filler);
            l.set_nonblocking(true).expect("nonblocking");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut echoers = Vec::new();
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        echoers.push(thread::spawn(move || {
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = c.read(&mut buf) {
                                if n == 0 || c.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for e in echoers {
                let _ = e.join();
            }
        });
        SlowAccept {
            addr,
            thread: Some(thread),
            stop,
        }
    }
}

impl Drop for SlowAccept {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_slow_connect_is_ramp_not_measured_time() {
    let target = SlowAccept::start();
    let addr = target.addr.to_string();
    let d = run(
        &[
            "connect",
            "-c",
            "1",
            "-r",
            "100",
            "-d",
            "2",
            "--workers",
            "1",
            "--timeout",
            "3s",
            "--json-stream",
            "--show-only-results",
            &addr,
        ],
        limit(3.0, MAX_DRAIN),
    );
    d.assert_ok("slow connect");
    assert!(
        d.elapsed >= Duration::from_millis(2_900),
        "setup: the connect should have taken about 1 s before the 2 s run: {:?}",
        d.elapsed
    );
    let rows = json_rows(&d);
    let t = the_total(&rows);
    // The schedule starts once the connection is up: 1 connection x 100/s x 2 s = 200 slots,
    // every one on the books, and (but for the odd slot held behind a slow first echo) sent
    // and answered: none lost to the slow connect (it cost 50 to 150 of them before).
    let count = u(t, "count");
    assert_eq!(booked(t), 200, "{t}");
    assert!(count >= 195, "{t}");
}

// ---------------------------------------------------------------------------------------------
// Output formats
// ---------------------------------------------------------------------------------------------

#[test]
fn jsonlines_rows_check_out_field_by_field() {
    let server = Server::start(false, true);
    let before = std::time::SystemTime::now();
    let d = run(
        &[
            "connect",
            "-c",
            "4",
            "-r",
            "50",
            "-d",
            "2",
            "-i",
            "500ms",
            "--workers",
            "2",
            "--timeout",
            PATIENT,
            "--json-stream",
            &server.v4(),
        ],
        limit(2.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "jsonlines");
    assert_eq!(
        rows.last().unwrap()["kind"],
        "total",
        "the total row comes last"
    );
    let intervals = kind_rows(&rows, "interval");
    assert!(
        (4..=5).contains(&intervals.len()),
        "2 s in 500 ms windows: {rows:#?}"
    );
    for r in &intervals[..4] {
        assert!((0.45..=0.55).contains(&f(r, "elapsed_sec")), "{r}");
        assert!(u(r, "count") > 0, "{r}");
    }
    let t = the_total(&rows);
    assert!((1.95..=2.05).contains(&f(t, "elapsed_sec")), "{t}");
    assert_near(u(t, "count"), 400, 0.03, "4 x 50/s x 2 s");
    // Timestamps are wall-clock UTC, in order, and from this run.
    let stamps: Vec<&str> = rows
        .iter()
        .map(|r| r["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    // An average Gregorian year of seconds: off by a day at most, hence the one-year slack.
    let year = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 31_556_952
        + 1970;
    let stamp_year: u64 = stamps[0][..4].parse().unwrap();
    assert!(
        stamp_year.abs_diff(year) <= 1,
        "{} is not from about now (year {year})",
        stamps[0]
    );
    for key in ["latency_50p_us", "latency_999p_us", "max_behind_us"] {
        u(t, key);
    }
    let ns = &t["latency_ns"];
    assert!(
        u(ns, "min") <= u(ns, "p50") && u(ns, "p50") <= u(ns, "max"),
        "{ns}"
    );
    assert_eq!(u(ns, "max") / 1000, u(t, "latency_max_us"), "{t}");
    server.stop();
}

/// The table's data rows: lines that start with `peer`.
fn table_rows<'a>(lines: &'a [String], peer: &str) -> Vec<Vec<&'a str>> {
    lines
        .iter()
        .filter(|l| l.starts_with(peer))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

const SEPARATOR: &str = "--- A result during total execution time ---";

#[test]
fn table_has_the_go_tools_shape() {
    let server = Server::start(false, true);
    let addr = server.v4();
    let d = run(
        &[
            "connect",
            "-c",
            "2",
            "-r",
            "20",
            "-d",
            "1",
            "-i",
            "500ms",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            &addr,
        ],
        limit(1.0, Duration::ZERO),
    );
    d.assert_ok("table");
    let lines = &d.out;
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header[..9],
        [
            "PEER",
            "CNT",
            "LAT_MAX(µs)",
            "LAT_MIN(µs)",
            "LAT_MEAN(µs)",
            "LAT_90p(µs)",
            "LAT_95p(µs)",
            "LAT_99p(µs)",
            "RATE(/s)"
        ],
        "{}",
        lines[0]
    );
    assert_eq!(header.last(), Some(&"ERRORS"));
    let sep = lines
        .iter()
        .position(|l| l == SEPARATOR)
        .unwrap_or_else(|| panic!("no separator:\n{}", lines.join("\n")));
    let before = table_rows(&lines[1..sep], &addr);
    assert_eq!(before.len(), sep - 1, "only interval rows above the line");
    assert_eq!(before.len(), 2, "1 s in 500 ms windows");
    let after = table_rows(&lines[sep + 1..], &addr);
    assert_eq!(after.len(), 1, "one total row");
    for l in &lines[sep + 2..] {
        assert!(l.starts_with("# "), "notes follow the totals: {l:?}");
    }
    let total = &after[0];
    assert_eq!(total.len(), header.len(), "a value per column: {total:?}");
    let cnt = |r: &Vec<&str>| r[1].parse::<u64>().expect("CNT is a number");
    assert_eq!(before.iter().map(cnt).sum::<u64>(), cnt(total));
    assert!((38..=40).contains(&cnt(total)), "2 x 20/s x 1 s: {total:?}");
    let col = |r: &Vec<&str>, i: usize| r[i].parse::<f64>().expect("a number");
    assert!(col(total, 3) <= col(total, 5) && col(total, 5) <= col(total, 2));
    assert_eq!(total[total.len() - 1], "0", "ERRORS");
    server.stop();
}

#[test]
fn table_columns_for_ephemeral_and_udp() {
    let server = Server::start(false, true);
    let addr = server.v4();
    let eph = spawn(
        &[
            "connect",
            "-f",
            "ephemeral",
            "-r",
            "20",
            "-d",
            "1",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            &addr,
        ],
        None,
    );
    let udp = spawn(
        &[
            "connect",
            "-p",
            "udp",
            "-r",
            "20",
            "-d",
            "1",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            &addr,
        ],
        None,
    );
    for (mut p, extra, last) in [(eph, "CONN_MEAN(µs)", "ERRORS"), (udp, "RATE(/s)", "LOST")] {
        let d = p.finish_within(limit(1.0, Duration::ZERO));
        d.assert_ok(extra);
        let header: Vec<&str> = d.out[0].split_whitespace().collect();
        assert_eq!(header[..3], ["PEER", "CNT", "LAT_MAX(µs)"]);
        assert!(header.contains(&extra), "{header:?}");
        assert_eq!(header.last(), Some(&last));
        let total = table_rows(
            &d.out[d.out.iter().position(|l| l == SEPARATOR).unwrap()..],
            &addr,
        );
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].len(), header.len(), "{total:?}");
        if last == "LOST" {
            // The default -c 10: ten sockets, so ten source ports.
            let note = format!("# {addr} udp: flows=10 lost=0 ");
            assert!(d.out.iter().any(|l| l.starts_with(&note)), "{:?}", d.out);
        }
    }
    server.stop();
}

#[test]
fn show_only_results_prints_only_totals() {
    let server = Server::start(false, true);
    let addr = server.v4();
    let common = [
        "connect",
        "-c",
        "2",
        "-r",
        "20",
        "-d",
        "1",
        "-i",
        "250ms",
        "--workers",
        "1",
        "--timeout",
        PATIENT,
        "--show-only-results",
    ];
    let table = spawn(&[&common[..], &[&addr]].concat(), None);
    let json = spawn(&[&common[..], &["--json-stream", &addr]].concat(), None);
    let d = { table }.finish_within(limit(1.0, Duration::ZERO));
    d.assert_ok("table");
    assert!(d.out[0].starts_with("PEER "), "{:?}", d.out);
    assert_eq!(d.out[1], SEPARATOR, "no interval rows: {:?}", d.out);
    assert_eq!(table_rows(&d.out, &addr).len(), 1, "{:?}", d.out);
    assert!(
        d.out[3..].iter().all(|l| l.starts_with("# ")),
        "{:?}",
        d.out
    );
    let d = { json }.finish_within(limit(1.0, Duration::ZERO));
    let rows = check_clean(&d, 64, "json");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["kind"], "total");
    assert!(u(&rows[0], "count") >= 38, "{}", rows[0]);
    server.stop();
}

/// Two closed-loop requests to a target that never answers, with a timeout longer than the run
/// and its drain: they are unanswered when the run ends.
fn unanswered_tcp_run(jsonlines: bool) -> (Outcome, String) {
    let silent = Silent::start();
    let addr = silent.addr.to_string();
    let mut args = vec![
        "connect",
        "-c",
        "2",
        "-r",
        "0",
        "-d",
        "1",
        "--workers",
        "1",
        "--timeout",
        "5s",
        "--show-only-results",
    ];
    if jsonlines {
        args.push("--json-stream");
    }
    args.push(&addr);
    let d = run(&args, limit(1.0, MAX_DRAIN));
    // A target that accepts and never answers fails the run (exit 1).
    assert!(d.assert_verdict(), "silent target: the run must fail");
    assert_eq!(silent.finish(), 2, "two connections");
    (d, addr)
}

/// Requests unanswered at the end are counted lost and printed for TCP as for UDP (once they
/// were printed only for UDP).
#[test]
fn unanswered_tcp_requests_are_reported_in_json() {
    let (d, _) = unanswered_tcp_run(true);
    let rows = json_rows(&d);
    check_rows(&rows, 64);
    let t = the_total(&rows);
    assert_eq!(u(t, "count"), 0, "{t}");
    assert_eq!(u(t, "error_count"), 0, "no timeout within the run: {t}");
    assert_eq!(u(t, "lost"), 2, "the two requests in flight: {t}");
}

#[test]
fn unanswered_tcp_requests_are_reported_in_the_table() {
    let (d, addr) = unanswered_tcp_run(false);
    let total = table_rows(&d.out, &addr);
    assert_eq!(total.len(), 1, "{:?}", d.out);
    assert_eq!(total[0][1], "0", "CNT");
    assert!(
        d.out
            .iter()
            .any(|l| l.starts_with('#') && l.contains("lost=2")),
        "two requests went out and never came back; the table does not say so:\n{}",
        d.out.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Dying servers (signals to the generator: tests/faults.rs)
// ---------------------------------------------------------------------------------------------

/// One run per mode against `addr`, `duration` long, JSON Lines with 500 ms intervals.
fn spawn_modes(addr: &str, duration: &str, extra: &[&str]) -> Vec<(Proc, &'static str)> {
    let modes: [(&[&str], &'static str); 3] = [
        (&["-c", "4", "-r", "100"], "persistent"),
        (&["-f", "ephemeral", "-r", "200"], "ephemeral"),
        (&["-p", "udp", "-r", "200"], "udp"),
    ];
    modes
        .into_iter()
        .map(|(m, name)| {
            let mut args = vec!["connect", "-d", duration, "-i", "500ms", "--workers", "1"];
            args.extend_from_slice(m);
            args.extend_from_slice(extra);
            args.extend(["--json-stream", addr]);
            (spawn(&args, None), name)
        })
        .collect()
}

#[test]
fn server_killed_mid_run_is_counted_and_the_run_ends_on_time() {
    let mut server = Server::start(false, true);
    let mut procs = spawn_modes(&server.v4(), "2", &["--timeout", "500ms"]);
    for (p, _) in &mut procs {
        p.wait_line(Duration::from_secs(5), |l| l.contains("\"interval\""));
    }
    server.kill();
    for (mut p, name) in procs {
        let d = p.finish_within(limit(2.0, Duration::from_millis(500)));
        d.assert_ok(name);
        let rows = json_rows(&d);
        check_rows(&rows, 64);
        let t = the_total(&rows);
        assert!(u(t, "count") > 0, "{name}: answered before the kill: {t}");
        assert!(
            u(t, "error_count") > 0,
            "{name}: the dead server shows: {t}"
        );
        let intervals = kind_rows(&rows, "interval");
        let last = intervals.last().unwrap();
        assert_eq!(
            u(last, "count"),
            0,
            "{name}: nothing answers at the end: {last}"
        );
        if name == "udp" {
            // Datagrams to the dead port come back as ICMP port unreachable (refused, each
            // counted once), or go unanswered (lost); datagrams in flight for `--timeout` may
            // hold the end by that much.
            assert!(
                u(t, "lost") + errors(t, "refused") > 0,
                "{name}: unanswered datagrams: {t}"
            );
        } else {
            assert!(errors(t, "refused") > 0, "{name}: redials are refused: {t}");
            // Nothing of a dead server's is in flight at the end: no drain.
            d.assert_within(limit(2.0, Duration::ZERO), name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Warnings, notes, demo (bad input: tests/faults.rs)
// ---------------------------------------------------------------------------------------------

#[test]
fn ephemeral_with_connections_warns_and_runs() {
    let server = Server::start(false, true);
    let d = run(
        &[
            "connect",
            "-f",
            "ephemeral",
            "-c",
            "5",
            "-r",
            "50",
            "-d",
            "1",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            "--json-stream",
            "--show-only-results",
            &server.v4(),
        ],
        limit(1.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "-f ephemeral -c 5");
    assert_eq!(u(&rows[0], "count") + u(&rows[0], "not_started"), 50);
    let lines = d.stderr_lines();
    assert_eq!(lines.len(), 1, "one warning: {:?}", d.err);
    assert!(lines[0].contains("--connections"), "{}", lines[0]);
    let s = server.stop();
    assert_eq!(
        counter(&s, "accepted"),
        u(&rows[0], "count"),
        "not 5 kept connections"
    );
}

#[test]
fn enable_pprof_is_accepted_with_a_note() {
    let server = Server::start(false, true);
    let d = run(
        &[
            "connect",
            "--enable-pprof",
            "-c",
            "2",
            "-r",
            "10",
            "-d",
            "1",
            "--workers",
            "1",
            "--timeout",
            PATIENT,
            "--json-stream",
            "--show-only-results",
            &server.v4(),
        ],
        limit(1.0, Duration::ZERO),
    );
    let rows = check_clean(&d, 64, "--enable-pprof");
    assert!(u(&rows[0], "count") >= 18, "{}", rows[0]);
    let lines = d.stderr_lines();
    assert_eq!(lines.len(), 1, "one note: {:?}", d.err);
    assert!(lines[0].contains("pprof"), "{}", lines[0]);
    server.stop();
}

#[test]
fn demo_runs_against_a_built_in_server() {
    let d = run(&["connect", "--demo", "-d", "1"], limit(1.0, MAX_DRAIN));
    d.assert_ok("demo");
    assert!(d.err.contains("built-in echo server"), "{}", d.err);
    let sep = d
        .out
        .iter()
        .position(|l| l == SEPARATOR)
        .unwrap_or_else(|| panic!("no totals:\n{}", d.out.join("\n")));
    let total = table_rows(&d.out[sep + 1..], "127.0.0.1:");
    assert_eq!(total.len(), 1, "{:?}", d.out);
    let cnt: u64 = total[0][1].parse().expect("CNT");
    assert!(cnt > 0, "{:?}", total[0]);
}

#[test]
fn demo_run_has_no_errors() {
    for _ in 0..2 {
        let d = run(
            &[
                "connect",
                "--demo",
                "-d",
                "1",
                "--workers",
                "1",
                "--json-stream",
                "--show-only-results",
            ],
            limit(1.0, MAX_DRAIN),
        );
        let rows = check_clean(&d, 64, "demo");
        assert!(u(the_total(&rows), "count") > 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Verdict and exit status (--slo, --max-error-rate)
// ---------------------------------------------------------------------------------------------

/// `--slo` and `--max-error-rate` decide the exit status on real traffic: bounds that hold
/// pass (0); a bound that cannot hold (p99 under 1 µs on loopback) fails (1) with its one
/// stderr line; a dead target beside a live one fails the merged run, named, even with the
/// default thresholds; too many failures fail `--max-error-rate`.
#[test]
fn slo_and_max_error_rate_set_the_exit_status() {
    let server = Server::start(false, false);
    let live = server.addrs[0].to_string();
    let dead = common::DeadPort::new();
    let dead = dead.addr();
    let base = [
        "connect",
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "1s",
        "--workers",
        "1",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run(&a, limit(1.0, MAX_DRAIN))
    };

    let d = with(&["--json-stream", "--slo", "p99=10s,max=20s,errors=0%", &live]);
    assert!(!d.assert_verdict(), "bounds that hold pass:\n{}", d.text());
    let rows = json_rows(&d);
    let t = the_total(&rows);
    assert_eq!(t["verdict"], "pass", "{t}");
    assert_eq!(u(t, "count"), 200, "{t}");

    let d = with(&["--slo", "p99=1us", &live]);
    assert!(d.assert_verdict(), "p99 under 1 µs fails:\n{}", d.text());
    let lines = d.stderr_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("connperf: check failed: {live}: p99 "))
            && lines[0].ends_with("> slo 1 µs"),
        "{lines:?}"
    );
    assert!(d.out.iter().any(|l| l == "# verdict: fail"), "{}", d.text());

    let d = with(&["--merge-results-each-host", "--json-stream", &live, &dead]);
    assert!(
        d.assert_verdict(),
        "a dead target fails the merged run:\n{}",
        d.text()
    );
    let rows = json_rows(&d);
    let t = the_total(&rows);
    assert_eq!(t["peer"], "merged(2 hosts)", "{t}");
    let reasons = t["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 1, "{t}");
    assert!(
        reasons[0].as_str().unwrap().starts_with(&format!(
            "{dead}: no request completed (200 failed: refused=200"
        )),
        "{t}"
    );

    // Per target, only the dead one fails (and breaks a 60 % budget); merged, half the requests
    // failed: over a 10 % budget.
    let d = with(&["--max-error-rate", "60", &live, &dead]);
    let lines = d.stderr_lines();
    assert!(d.assert_verdict(), "{}", d.text());
    assert_eq!(lines.len(), 2, "only the dead target: {lines:?}");
    assert!(lines.iter().all(|l| l.contains(&dead)), "{lines:?}");
    assert!(
        lines[1].ends_with("errors 100 % > --max-error-rate 60 %"),
        "{lines:?}"
    );
    let d = with(&[
        "--max-error-rate",
        "10%",
        "--merge-results-each-host",
        &live,
        &dead,
    ]);
    assert!(d.assert_verdict(), "{}", d.text());
    assert!(
        d.err
            .contains("merged(2 hosts): errors 50 % > --max-error-rate 10 %"),
        "{}",
        d.err
    );
    server.stop();
}
