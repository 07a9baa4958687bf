//! Fault injection: `connperf connect` and `connperf serve` (always separate processes) against
//! targets that refuse, never answer, reset, half-close, short-change, over-answer, corrupt, die
//! and come back, stall under SIGSTOP, run out of descriptors, get flooded with idle sockets; the
//! client signalled at any moment or with its stdout gone; and the command line's answer to bad
//! input.
//!
//! Every row checks the same contract: the client ends within its duration plus `GRACE`, exits 0,
//! prints its final report (the table's result line, and in a concurrent `--json-stream` run a
//! `"kind":"total"` row), counts every failure under a named kind, never panics, and stays small.
//!
//! Rules: traffic only on 127.0.0.1; port 0 wherever possible (the restart test reuses the port
//! its first server got); every wait has a deadline; every process started here is killed by its
//! PID in a Drop guard, so nothing outlives a failed test.

use serde_json::Value;
use socket2::SockRef;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream,
    UdpSocket,
};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod common;

use common::proc::{spawn, spawn_with, Outcome, Proc, StdoutTo, PROC_TIMEOUT};
use common::{f, rows, u, write_file, DeadPort};
use connperf::report::Failure;

/// How long past its `--duration` a client may take to end: startup, the drain of replies in
/// flight (at most `--timeout`, capped at 1 s), and a loaded 2-core machine.
const GRACE: Duration = Duration::from_millis(2500);
/// The error kinds every JSON row names, in report order: the code's own list.
fn kinds() -> Vec<&'static str> {
    Failure::ALL.iter().map(|k| k.name()).collect()
}
/// Memory bound for any client run here, in KiB: a base plus 4 MiB per worker (one per core;
/// each holds receive buffers and a window's histograms). Runs take about 10 MiB on 2 cores.
fn max_client_rss_kib() -> u64 {
    rss_bound_kib(32)
}

/// Tighter bound for runs against targets that stall: nothing may pile up while waiting.
fn stall_rss_kib() -> u64 {
    rss_bound_kib(16)
}

fn rss_bound_kib(base_mib: u64) -> u64 {
    let cores = thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    (base_mib + 4 * cores) * 1024
}
/// The table's result line.
const RESULT_LINE: &str = "--- A result during total execution time ---";
/// Message size the misbehaving servers expect.
const MSG: usize = 64;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// User + system CPU seconds a live process has used, from /proc/PID/stat.
fn cpu_secs(pid: libc::pid_t) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let rest = &s[s.rfind(')').expect("comm field") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm)": field 3 (state) is f[0], so utime (14) is f[11] and stime (15) f[12].
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf takes an integer and has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / hz as f64
}

/// Wait until the process runs its reporter thread (so argument parsing and signal handlers are
/// done and the run has begun).
fn wait_running(p: &Proc) {
    let deadline = Instant::now() + PROC_TIMEOUT;
    loop {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", p.pid())) {
            let running = tasks.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "connperf-report")
            });
            if running {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "`connperf {}` did not start its run",
            p.label
        );
        thread::sleep(ms(2));
    }
}

// ---------------------------------------------------------------------------------------------
// connperf serve
// ---------------------------------------------------------------------------------------------

/// `connperf serve -p tcp --jsonlines` on one address; killed on drop.
struct Server {
    p: Proc,
    addr: SocketAddr,
}

impl Server {
    fn start(listen: &str, extra: &[&str], nofile: Option<u64>) -> Server {
        let mut args = vec!["serve", "-l", listen, "-p", "tcp", "--jsonlines"];
        args.extend_from_slice(extra);
        let mut p = spawn(&args, nofile);
        let addr = p.listening(1)[0];
        Server { p, addr }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    fn pid(&self) -> libc::pid_t {
        self.p.pid()
    }

    /// SIGTERM; it must exit 0 in time and print its JSON total row, which is returned.
    fn stop(mut self) -> (Value, Outcome) {
        self.p.signal(libc::SIGTERM);
        let o = self.p.finish(PROC_TIMEOUT);
        o.assert_clean();
        let total = o
            .out
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "total")
            .unwrap_or_else(|| panic!("no server total row in {:?}", o.out));
        (total, o)
    }
}

// ---------------------------------------------------------------------------------------------
// connperf connect: a table run and a --json-stream run side by side
// ---------------------------------------------------------------------------------------------

struct Pair {
    table: Outcome,
    json: Outcome,
    /// Every JSON row, the total last.
    rows: Vec<Value>,
}

/// Start `connperf connect ARGS` twice at once: as a table and with `--json-stream`.
fn start_pair(args: &[&str], nofile: Option<u64>) -> (Proc, Proc) {
    let mut t = vec!["connect"];
    t.extend_from_slice(args);
    let mut j = t.clone();
    j.push("--json-stream");
    (spawn(&t, nofile), spawn(&j, nofile))
}

/// Wait for both runs and check the contract common to every row of the fault matrix.
fn finish_pair(mut t: Proc, mut j: Proc, duration: Duration) -> Pair {
    let limit = duration + GRACE + Duration::from_secs(10);
    let table = t.finish(limit);
    let json = j.finish(limit);
    for o in [&table, &json] {
        o.assert_verdict();
        assert!(
            o.elapsed <= duration + GRACE,
            "`connperf {}` took {:?} for a {duration:?} run",
            o.label,
            o.elapsed
        );
        assert!(
            o.max_rss_kib <= max_client_rss_kib(),
            "`connperf {}` grew to {} KiB",
            o.label,
            o.max_rss_kib
        );
    }
    check_table(&table);
    let rows = check_json(&json);
    // Captured by the test harness; shown when a test fails.
    println!(
        "`connperf {}` ({:?}, {} KiB):\n{}",
        table.label,
        table.elapsed,
        table.max_rss_kib,
        table.text()
    );
    println!(
        "`connperf {}` ({:?}, {} KiB): {}",
        json.label,
        json.elapsed,
        json.max_rss_kib,
        rows.last().expect("total")
    );
    Pair { table, json, rows }
}

fn run_pair(args: &[&str], duration: Duration) -> Pair {
    let (t, j) = start_pair(args, None);
    finish_pair(t, j, duration)
}

/// The table ends with the result line and a total row whose ERRORS equals the sum of the kinds
/// named in the `# PEER errors:` note.
fn check_table(o: &Outcome) {
    let row = table_total(o);
    let errors: u64 = row["ERRORS"].parse().expect("ERRORS column");
    let kinds = table_error_kinds(o);
    assert_eq!(
        kinds.values().sum::<u64>(),
        errors,
        "ERRORS column vs named kinds in `{}`:\n{}",
        o.label,
        o.text()
    );
}

/// The table's total row (after the result line) as column name → value.
fn table_total(o: &Outcome) -> HashMap<String, String> {
    let pos = o
        .out
        .iter()
        .position(|l| l == RESULT_LINE)
        .unwrap_or_else(|| panic!("no result line from `{}`:\n{}", o.label, o.text()));
    let row = o
        .out
        .get(pos + 1)
        .unwrap_or_else(|| panic!("no total row from `{}`:\n{}", o.label, o.text()));
    table_row(&o.out[0], row)
}

/// One table row as column name → value (names from the header; no cell contains spaces).
fn table_row(header: &str, row: &str) -> HashMap<String, String> {
    let h: Vec<&str> = header.split_whitespace().collect();
    let r: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(h.len(), r.len(), "row {row:?} under header {header:?}");
    h.iter()
        .zip(r)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The interval rows of a table (between the header and the result line).
fn table_intervals(o: &Outcome) -> Vec<HashMap<String, String>> {
    let pos = o
        .out
        .iter()
        .position(|l| l == RESULT_LINE)
        .expect("result line");
    o.out[1..pos]
        .iter()
        .map(|r| table_row(&o.out[0], r))
        .collect()
}

/// `# PEER errors: refused=3 timeout=2; connection attempts failed: refused=7` → {refused: 3,
/// timeout: 2}, the requests' part; every kind must be known.
fn table_error_kinds(o: &Outcome) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for l in &o.out {
        if let Some((_, list)) = l.split_once(" errors: ").filter(|_| l.starts_with("# ")) {
            let requests = list.split(';').next().unwrap_or_default();
            for kv in requests.split_whitespace() {
                let (k, v) = kv.split_once('=').expect("kind=count");
                assert!(kinds().contains(&k), "unknown error kind {k:?} in {l:?}");
                m.insert(k.to_string(), v.parse().expect("count"));
            }
        }
    }
    m
}

/// Every stdout line is a JSON object naming all error kinds (summing to `error_count`); the
/// last is the total.
fn check_json(o: &Outcome) -> Vec<Value> {
    let rows: Vec<Value> = o
        .out
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON line {l:?} from `{}`: {e}", o.label))
        })
        .collect();
    let last = rows
        .last()
        .unwrap_or_else(|| panic!("no output from `{}`", o.label));
    assert_eq!(last["kind"], "total", "last row of `{}`: {last}", o.label);
    for r in &rows {
        let errs = r["errors"].as_object().expect("errors object");
        let mut names: Vec<&str> = errs.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = kinds();
        want.sort_unstable();
        assert_eq!(names, want, "error kinds in {r}");
        let sum: u64 = errs.values().map(|v| v.as_u64().expect("count")).sum();
        assert_eq!(sum, u(r, "error_count"), "kinds sum to error_count: {r}");
        assert_eq!(
            errs["other"], 0,
            "a failure fell into `other` in `{}`: {r}",
            o.label
        );
    }
    rows
}

impl Pair {
    fn total(&self) -> &Value {
        self.rows.last().expect("total row")
    }

    fn err(&self, kind: &str) -> u64 {
        u(&self.total()["errors"], kind)
    }

    fn intervals(&self) -> Vec<&Value> {
        self.rows
            .iter()
            .filter(|r| r["kind"] == "interval")
            .collect()
    }

    fn table_kinds(&self) -> HashMap<String, u64> {
        table_error_kinds(&self.table)
    }
}

// ---------------------------------------------------------------------------------------------
// Misbehaving targets (std sockets in threads)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Accept and hold the socket: never read, never answer.
    Hold,
    /// Read part of a message, then close with SO_LINGER 0 (RST).
    Reset,
    /// Read a message, echo its first 10 bytes, then shutdown(Write) (FIN) and wait.
    HalfClose,
    /// Read a message, echo half of it, then stall.
    Short,
    /// Echo every message plus 10 bytes nobody asked for.
    Extra,
    /// Echo every byte flipped.
    Flip,
    /// A correct echo.
    Echo,
}

/// A TCP server on 127.0.0.1:0 that treats every connection per its `Fault`. Dropping it stops
/// accepting and closes held sockets; per-connection threads end at EOF or a 3 s socket timeout.
struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(fault: Fault) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, acc) = (stop.clone(), accepted.clone());
        let acceptor = thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        acc.fetch_add(1, Ordering::Relaxed);
                        let _ = s.set_nonblocking(false);
                        if fault == Fault::Hold {
                            held.push(s);
                        } else {
                            thread::spawn(move || misbehave(fault, s));
                        }
                    }
                    Err(_) => thread::sleep(ms(2)),
                }
            }
        });
        Fake {
            addr,
            stop,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

/// Read until the peer closes (or the socket times out).
fn drain(s: &mut TcpStream) {
    let mut b = [0u8; 4096];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

fn misbehave(fault: Fault, mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; MSG];
    match fault {
        Fault::Hold => drain(&mut s),
        Fault::Reset => {
            let mut part = [0u8; 10];
            if s.read(&mut part).is_ok() {
                // Unread bytes plus linger 0: the close sends RST.
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        Fault::HalfClose => {
            if s.read_exact(&mut buf).is_ok() && s.write_all(&buf[..10]).is_ok() {
                let _ = s.shutdown(NetShutdown::Write);
                drain(&mut s);
            }
        }
        Fault::Short => {
            if s.read_exact(&mut buf).is_ok() && s.write_all(&buf[..MSG / 2]).is_ok() {
                drain(&mut s);
            }
        }
        Fault::Extra => {
            while s.read_exact(&mut buf).is_ok() {
                let mut v = buf.to_vec();
                v.extend_from_slice(b"0123456789");
                if s.write_all(&v).is_err() {
                    break;
                }
            }
        }
        Fault::Flip | Fault::Echo => loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if fault == Fault::Flip {
                buf[..n].iter_mut().for_each(|b| *b ^= 0xff);
            }
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Refused
// ---------------------------------------------------------------------------------------------

/// An address on `ip` where nothing listens (TCP): bound to port 0, then closed.
fn closed_tcp_port(ip: IpAddr) -> String {
    let l = TcpListener::bind((ip, 0)).expect("bind");
    let a = l.local_addr().expect("local_addr");
    drop(l);
    a.to_string()
}

/// An address on `ip` where no UDP socket is bound.
fn closed_udp_port(ip: IpAddr) -> String {
    let s = UdpSocket::bind((ip, 0)).expect("bind");
    let a = s.local_addr().expect("local_addr");
    drop(s);
    a.to_string()
}

/// UDP to a closed loopback port: each datagram's ICMP port unreachable comes back at once (the
/// kernel does not rate-limit ICMP on loopback) and surfaces on the socket as ECONNREFUSED, so
/// every datagram that went out is counted refused, once: none answered, none counted twice,
/// none missing. (Should a burst of ICMP errors ever share the socket's one error slot, the
/// datagram whose error was overwritten is lost instead; the identity still holds.)
fn assert_udp_refused_once(t: &Value, scheduled: u64, what: &str) {
    let refused = u(&t["errors"], "refused");
    assert!(refused > 0, "{what}: refusals counted: {t}");
    assert_eq!(u(t, "count"), 0, "{what}: {t}");
    assert_eq!(u(t, "error_count"), refused, "{what}: only refusals: {t}");
    assert_eq!(
        refused + u(t, "lost") + u(t, "not_started"),
        scheduled,
        "{what}: each of {scheduled} datagrams counted once: {t}"
    );
}

#[test]
fn refused_is_counted_in_every_mode() {
    // Every mode and family, one JSON run each (from tests/connect.rs).
    let tcp4 = closed_tcp_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let tcp6 = closed_tcp_port(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let udp4 = closed_udp_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let cases: [(&[&str], &str, &str); 11] = [
        (&["-c", "2", "-r", "10"], "persistent", &tcp4),
        (&["-c", "2", "-r", "10"], "persistent ipv6", &tcp6),
        (&["-c", "2", "-r", "0"], "persistent closed loop", &tcp4),
        (&["-f", "ephemeral", "-r", "100"], "ephemeral rst", &tcp4),
        (
            &["-f", "ephemeral", "--close", "fin", "-r", "100"],
            "ephemeral fin",
            &tcp4,
        ),
        (
            &["-f", "ephemeral", "-c", "2", "-r", "0"],
            "ephemeral closed loop",
            &tcp4,
        ),
        (&["-p", "udp", "-r", "100"], "udp", &udp4),
        (&["-p", "udp", "-r", "0"], "udp closed loop", &udp4),
        // 100 datagrams with a timeout shorter than the drain: each counted once.
        (
            &["-p", "udp", "-r", "100", "--timeout", "300ms"],
            "udp counted once",
            &udp4,
        ),
        (
            &["-p", "udp", "-f", "ephemeral", "-r", "100"],
            "udp ephemeral",
            &udp4,
        ),
        (
            &["-p", "udp", "-f", "ephemeral", "-c", "2", "-r", "0"],
            "udp ephemeral closed loop",
            &udp4,
        ),
    ];
    let procs: Vec<(Proc, &str)> = cases
        .iter()
        .map(|(m, name, addr)| {
            let mut args = vec!["connect", "-d", "1", "--workers", "1"];
            args.extend_from_slice(m);
            if !m.contains(&"--timeout") {
                args.extend(["--timeout", "500ms"]);
            }
            args.extend(["--jsonlines", "--show-only-results", addr]);
            (spawn(&args, None), *name)
        })
        .collect();
    for (mut p, name) in procs {
        let d = p.finish_within(rows::limit(1.0, Duration::from_millis(500)));
        assert!(d.assert_verdict(), "{name}: a refused target fails the run");
        let rows = rows::json_rows(&d);
        rows::check_rows(&rows, 64);
        let t = rows::the_total(&rows);
        assert_eq!(u(t, "count"), 0, "{name}: {t}");
        // A paced run's slots fail as refused requests; a closed loop has no slots, so its
        // refused dials are connection errors.
        let refused =
            rows::errors(t, "refused") + t["connection_errors"]["refused"].as_u64().unwrap_or(0);
        assert!(refused > 0, "{name}: refusals counted: {t}");
        if ["udp", "udp counted once", "udp ephemeral"].contains(&name) {
            assert_udp_refused_once(t, 100, name);
        }
        if !name.starts_with("udp") {
            // A refused connect leaves nothing in flight: the run ends without a drain.
            d.assert_within(rows::limit(1.0, Duration::ZERO), name);
        }
    }

    // Each mode as a table and as JSON side by side, with the fault-matrix contract.
    let dead = DeadPort::new();
    let addr = dead.addr();
    let d = Duration::from_secs(1);
    let modes: [&[&str]; 3] = [&["-f", "persistent"], &["-f", "ephemeral"], &["-p", "udp"]];
    let started: Vec<_> = modes
        .iter()
        .map(|m| {
            let mut a = m.to_vec();
            a.extend_from_slice(&["-d", "1s", "-i", "500ms", "--timeout", "300ms", &addr]);
            start_pair(&a, None)
        })
        .collect();
    for (m, (t, j)) in modes.iter().zip(started) {
        let p = finish_pair(t, j, d);
        let total = p.total();
        assert_eq!(u(total, "count"), 0, "{m:?}: {total}");
        if m[1] == "udp" {
            // 100 datagrams/s for 1 s (the default rate).
            assert_udp_refused_once(total, 100, "udp");
            assert!(
                p.table_kinds().get("refused").is_some_and(|&n| n > 0),
                "{m:?}:\n{}",
                p.table.text()
            );
        } else {
            // 10 connections redialled with backoff (persistent), 100 new ones/s (ephemeral).
            assert!(p.err("refused") >= 10, "{m:?}: {total}");
            assert_eq!(p.err("refused"), u(total, "error_count"), "{m:?}: {total}");
            assert!(
                p.table_kinds().get("refused").is_some_and(|&n| n >= 10),
                "{m:?}:\n{}",
                p.table.text()
            );
        }
    }
}

/// Closed loop (`-r 0`) against a dead port for 1 s: every failure is counted as refused (as a
/// request or, for persistent connections, a connection error), and
/// the generator waits between attempts instead of spinning.
fn closed_loop_against_refused(mode: &[&str]) {
    let dead = DeadPort::new();
    let addr = dead.addr();
    let d = Duration::from_secs(1);
    let mut a = mode.to_vec();
    a.extend_from_slice(&[
        "-r",
        "0",
        "-d",
        "1s",
        "-i",
        "500ms",
        "--timeout",
        "300ms",
        &addr,
    ]);
    let p = run_pair(&a, d);
    let total = p.total();
    // A closed loop has no schedule: refused dials with no request in flight are connection
    // errors; ephemeral and UDP requests fail as refused requests.
    let refused = p.err("refused") + u(&total["connection_errors"], "refused");
    assert!(refused > 0, "{mode:?}: {total}");
    let cpu = f(total, "generator_cpu_sec");
    assert!(
        cpu < 0.5 * d.as_secs_f64(),
        "{mode:?}: generator CPU {cpu} s in a {d:?} run against a dead port: {total}"
    );
    assert!(
        p.err("refused") < 10_000,
        "{mode:?}: a dead port is retried with backoff, not hammered: {total}"
    );
}

#[test]
fn closed_loop_persistent_against_a_refusing_target_backs_off() {
    closed_loop_against_refused(&["-f", "persistent", "-c", "10"]);
}

#[test]

fn closed_loop_ephemeral_against_a_refusing_target_backs_off() {
    closed_loop_against_refused(&["-f", "ephemeral", "-c", "10"]);
}

#[test]

fn closed_loop_udp_against_a_refusing_target_backs_off() {
    closed_loop_against_refused(&["-p", "udp"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Accepts, never answers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_target_that_never_answers_times_out() {
    let hold = Fake::start(Fault::Hold);
    let addr = hold.addr();

    // Every mode, one JSON run each (from tests/connect.rs); UDP to a bound socket that never
    // answers.
    let quiet_udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp = quiet_udp.local_addr().unwrap().to_string();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["-c", "2", "-r", "10"], "persistent", &addr),
        (&["-c", "2", "-r", "0"], "persistent closed loop", &addr),
        (&["-f", "ephemeral", "-r", "50"], "ephemeral", &addr),
        (&["-p", "udp", "-r", "50"], "udp", &udp),
    ];
    let procs: Vec<(Proc, &str)> = cases
        .iter()
        .map(|(m, name, addr)| {
            let mut args = vec!["connect", "-d", "1", "--workers", "1", "--timeout", "300ms"];
            args.extend_from_slice(m);
            args.extend(["--jsonlines", "--show-only-results", addr]);
            (spawn(&args, None), *name)
        })
        .collect();
    for (mut p, name) in procs {
        let d = p.finish_within(rows::limit(1.0, Duration::from_millis(300)));
        assert!(d.assert_verdict(), "{name}: a refused target fails the run");
        let rows = rows::json_rows(&d);
        rows::check_rows(&rows, 64);
        let t = rows::the_total(&rows);
        assert_eq!(u(t, "count"), 0, "{name}: {t}");
        if name == "udp" {
            assert!(u(t, "lost") >= 40, "{name}: 50 datagrams, no replies: {t}");
            assert_eq!(
                u(t, "error_count"),
                0,
                "{name}: a bound socket sends no ICMP: {t}"
            );
        } else {
            assert!(
                rows::errors(t, "timeout") > 0,
                "{name}: timeouts counted: {t}"
            );
            assert_eq!(
                rows::errors(t, "timeout"),
                u(t, "error_count"),
                "{name}: only timeouts: {t}"
            );
        }
        if name == "ephemeral" {
            assert!(
                rows::errors(t, "timeout") >= 40,
                "{name}: each of 50 times out: {t}"
            );
        }
    }
    drop(quiet_udp);

    // Both TCP flavors as a table and as JSON side by side, with the fault-matrix contract.
    let d = ms(1500);
    let common = [
        "-d",
        "1500ms",
        "-i",
        "500ms",
        "--timeout",
        "300ms",
        addr.as_str(),
    ];
    let flavors = ["persistent", "ephemeral"];
    let started: Vec<_> = flavors
        .iter()
        .map(|fl| {
            let mut a = vec!["-f", fl];
            a.extend_from_slice(&common);
            start_pair(&a, None)
        })
        .collect();
    for (fl, (t, j)) in flavors.iter().zip(started) {
        let p = finish_pair(t, j, d);
        let total = p.total();
        assert_eq!(u(total, "count"), 0, "{fl}: {total}");
        assert!(p.err("timeout") >= 4, "{fl}: {total}");
        assert_eq!(p.err("timeout"), u(total, "error_count"), "{fl}: {total}");
        assert!(p.table_kinds().contains_key("timeout"), "{fl}");
        for o in [&p.table, &p.json] {
            assert!(
                o.max_rss_kib <= stall_rss_kib(),
                "{fl}: `connperf {}` grew to {} KiB",
                o.label,
                o.max_rss_kib
            );
        }
    }
    assert!(
        hold.accepted.load(Ordering::Relaxed) > 0,
        "the generator connected"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Server killed and restarted on the same port
// ---------------------------------------------------------------------------------------------

#[test]
fn persistent_connections_come_back_after_the_server_restarts() {
    let first = Server::start("127.0.0.1:0", &[], None);
    let port = first.addr.port();
    let addr = first.addr();
    let d = Duration::from_secs(3);
    let (t, j) = start_pair(
        &[
            "-c",
            "4",
            "-r",
            "100",
            "-d",
            "3s",
            "-i",
            "500ms",
            "--timeout",
            "300ms",
            &addr,
        ],
        None,
    );
    let mut j = j;
    // Windows of 500 ms, each row printed once its requests have settled (--timeout plus a
    // sweep after the window's end): the kill after the first row (in window 1), the restart
    // after the next (in window 2).
    wait_interval_rows(&mut j, 1);
    let mut first = first;
    first.p.signal(libc::SIGKILL);
    let killed = first.p.finish(PROC_TIMEOUT);
    assert_eq!(killed.status.signal(), Some(libc::SIGKILL));
    wait_interval_rows(&mut j, 1);
    let second = Server::start(&format!("127.0.0.1:{port}"), &[], None);
    let p = finish_pair(t, j, d);
    let (srv, _) = second.stop();

    let total = p.total();
    assert!(p.err("refused") > 0, "redials during the gap: {total}");
    // A connection with a request in flight fails that request; an idle one is a connection
    // error.
    let conn = |k: &str| u(&total["connection_errors"], k);
    assert!(
        p.err("closed_early") + p.err("reset") + conn("closed_early") + conn("reset") > 0,
        "connections lost at the kill: {total}"
    );
    assert!(
        u(&srv, "accepted") >= 8,
        "both clients reconnected their 4 connections: {srv}"
    );
    let json: Vec<u64> = p.intervals().iter().map(|r| u(r, "count")).collect();
    let table: Vec<u64> = table_intervals(&p.table)
        .iter()
        .map(|r| r["CNT"].parse().unwrap())
        .collect();
    for (what, c) in [("json", &json), ("table", &table)] {
        // Windows of 500 ms: 0 before the kill, the gap in 1-3, 4-5 after the restart.
        assert!(c.len() >= 6, "{what}: {c:?}");
        let before = c[0];
        assert!(before > 100, "{what}: traffic before the kill: {c:?}");
        let gap = c[1..4].iter().min().copied().unwrap_or(before);
        assert!(gap < before / 2, "{what}: the gap shows: {c:?}");
        assert!(
            c[4] > 0 && c[5] > before / 2,
            "{what}: traffic is back: {c:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Misbehaving servers
// ---------------------------------------------------------------------------------------------

/// Run 4 persistent connections for 1.5 s against `fault` (one request in flight each, and in a
/// third run four pipelined with `--depth 4`): `kind` is counted, far more often than there are
/// connections (each is recycled and fails again), still in the last window.
fn misbehaving(fault: Fault, kind: &str, at_least: u64) {
    let fake = Fake::start(fault);
    let addr = fake.addr();
    let msg = MSG.to_string();
    let args = [
        "-c",
        "4",
        "-r",
        "100",
        "-d",
        "1500ms",
        "-i",
        "500ms",
        "--timeout",
        "300ms",
        "--message-bytes",
        &msg,
        &addr,
    ];
    let d = ms(1500);
    let (t, j) = start_pair(&args, None);
    let mut deep_args = vec!["connect", "--json-stream", "--depth", "4"];
    deep_args.extend_from_slice(&args);
    let mut deep = spawn(&deep_args, None);
    let p = finish_pair(t, j, d);
    let total = p.total();
    assert!(
        p.err(kind) >= at_least,
        "{fault:?}: {kind} at least {at_least}: {total}"
    );
    let iv = p.intervals();
    let last = iv.last().expect("interval rows");
    assert!(
        u(&last["errors"], kind) > 0,
        "{fault:?}: still failing (and redialling) in the last window: {last}"
    );
    assert!(
        p.table_kinds().get(kind).is_some_and(|&n| n > 0),
        "{fault:?}: table names {kind}:\n{}",
        p.table.text()
    );

    let o = deep.finish(d + GRACE + Duration::from_secs(10));
    o.assert_verdict();
    assert!(o.elapsed <= d + GRACE, "--depth 4 run took {:?}", o.elapsed);
    assert!(
        o.max_rss_kib <= max_client_rss_kib(),
        "{} KiB",
        o.max_rss_kib
    );
    let rows = check_json(&o);
    let deep_total = rows.last().unwrap();
    println!("`connperf {}`: {deep_total}", o.label);
    assert!(
        u(&deep_total["errors"], kind) >= at_least,
        "{fault:?} with --depth 4: {kind} at least {at_least}: {deep_total}"
    );
    assert!(
        fake.accepted.load(Ordering::Relaxed) as u64 >= at_least,
        "connections were recycled"
    );
}

#[test]
fn a_reset_mid_message_is_counted_and_the_connection_redialled() {
    misbehaving(Fault::Reset, "reset", 40);
}

#[test]
fn a_half_close_mid_message_is_closed_early() {
    misbehaving(Fault::HalfClose, "closed_early", 40);
}

#[test]
fn a_short_echo_then_stall_times_out() {
    misbehaving(Fault::Short, "timeout", 9);
}

#[test]
fn extra_bytes_after_the_echo_are_a_mismatch() {
    misbehaving(Fault::Extra, "mismatch", 40);
}

#[test]
fn a_corrupted_echo_is_a_mismatch() {
    misbehaving(Fault::Flip, "mismatch", 40);
}

// ---------------------------------------------------------------------------------------------
// 5. Server stopped (SIGSTOP) for longer than the run
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stopped_server_times_out_and_the_run_ends_on_time() {
    let mut server = Server::start("127.0.0.1:0", &[], None);
    let addr = server.addr();
    let common = [
        "-d",
        "1500ms",
        "-i",
        "500ms",
        "--timeout",
        "300ms",
        addr.as_str(),
    ];
    let flavors = ["persistent", "ephemeral"];
    let mut started: Vec<_> = flavors
        .iter()
        .map(|fl| {
            let mut a = vec!["-f", fl];
            a.extend_from_slice(&common);
            start_pair(&a, None)
        })
        .collect();
    // Stopped once the first JSON run's first 500 ms window is out: answered before the stop.
    wait_interval_rows(&mut started[0].1, 1);
    server.p.signal(libc::SIGSTOP);
    for (fl, (t, j)) in flavors.iter().zip(started) {
        let p = finish_pair(t, j, ms(1500));
        let total = p.total();
        assert!(u(total, "count") > 0, "{fl}: answered before the stop");
        assert!(p.err("timeout") > 0, "{fl}: {total}");
        assert!(p.table_kinds().contains_key("timeout"), "{fl}");
        for o in [&p.table, &p.json] {
            assert!(
                o.max_rss_kib <= stall_rss_kib(),
                "{fl}: `connperf {}` grew to {} KiB",
                o.label,
                o.max_rss_kib
            );
        }
    }
    server.p.signal(libc::SIGCONT);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// 6. Out of file descriptors
// ---------------------------------------------------------------------------------------------

#[test]
fn a_client_out_of_descriptors_warns_counts_and_does_not_spin() {
    let server = Server::start("127.0.0.1:0", &[], None);
    let addr = server.addr();
    let d = Duration::from_secs(2);
    let (t, j) = start_pair(
        &[
            "-c",
            "1000",
            "-r",
            "10",
            "-d",
            "2s",
            "-i",
            "1s",
            "--timeout",
            "500ms",
            &addr,
        ],
        Some(256),
    );
    let p = finish_pair(t, j, d);
    for err in [&p.table.err, &p.json.err] {
        assert!(
            err.contains("limit is 256"),
            "a warning names the limit: {err:?}"
        );
    }
    let total = p.total();
    assert!(p.err("fd_limit") > 0, "{total}");
    assert!(
        p.err("fd_limit") < 20_000,
        "descriptor failures are retried with backoff, not in a loop: {total}"
    );
    assert!(
        u(total, "count") > 1000,
        "the connections that fit still work: {total}"
    );
    let cpu = f(total, "generator_cpu_sec");
    assert!(
        cpu < 0.5 * d.as_secs_f64(),
        "generator CPU {cpu} s over a {d:?} run: a busy loop? {total}"
    );
    assert!(p.table_kinds().contains_key("fd_limit"));
    server.stop();
}

#[test]
fn a_server_out_of_descriptors_backs_off_and_stays_responsive() {
    let server = Server::start("127.0.0.1:0", &[], Some(256));
    let addr = server.addr();
    let started = Instant::now();
    let p = run_pair(
        &[
            "-c",
            "1000",
            "-r",
            "10",
            "-d",
            "1500ms",
            "-i",
            "500ms",
            "--timeout",
            "300ms",
            &addr,
        ],
        ms(1500),
    );
    // The server holds about 190 connections: one of the two clients may get them all.
    let table_count: u64 = table_total(&p.table)["CNT"].parse().unwrap();
    assert!(
        u(p.total(), "count") + table_count > 0,
        "the accepted connections were served"
    );
    // Once the flood is gone the server answers a new connection at once.
    let mut s = TcpStream::connect_timeout(&server.addr, PROC_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(PROC_TIMEOUT)).unwrap();
    s.write_all(b"still there?").unwrap();
    let mut back = [0u8; 12];
    s.read_exact(&mut back).expect("echo after the flood");
    assert_eq!(&back, b"still there?");
    drop(s);
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(server.pid());
    assert!(
        cpu < 0.5 * wall,
        "server CPU {cpu} s over {wall} s: a busy loop?"
    );
    let (total, o) = server.stop();
    assert!(
        u(&total["errors"], "accept_fd_limit") > 0,
        "accept fd-limit errors counted: {total}"
    );
    assert!(
        o.err.contains("out of file descriptors"),
        "a warning names the cause: {}",
        o.err
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Signals
// ---------------------------------------------------------------------------------------------

/// Wait until `p` (a `connect` run) has printed `n` interval rows: JSON rows with
/// `"kind":"interval"`, or table rows (after the header, before the result line).
fn wait_interval_rows(p: &mut Proc, n: usize) {
    for _ in 0..n {
        p.wait_line(PROC_TIMEOUT, |l| {
            l.contains("\"kind\":\"interval\"") || (!l.starts_with('{') && !l.starts_with("PEER"))
        });
    }
}

/// Start a pair, signal both once each has printed `rows` interval rows (or, for 0, once it
/// runs; the table with SIGINT, the JSON run with SIGTERM), and check each printed totals and
/// exited 0 promptly. Returns the pair and when the signal went, from the table run's start.
fn signalled(args: &[&str], rows: usize) -> (Pair, Duration) {
    let (mut t, mut j) = start_pair(args, None);
    wait_running(&t);
    wait_running(&j);
    t.wait_catching(libc::SIGINT);
    j.wait_catching(libc::SIGTERM);
    wait_interval_rows(&mut t, rows);
    wait_interval_rows(&mut j, rows);
    let signalled_at = t.started.elapsed();
    t.signal(libc::SIGINT);
    j.signal(libc::SIGTERM);
    // Drain is at most 1 s; a stopped run must not go on to its full --duration.
    let p = finish_pair(t, j, signalled_at);
    (p, signalled_at)
}

#[test]
fn sigint_during_the_connection_ramp_up_prints_totals() {
    let server = Server::start("127.0.0.1:0", &[], None);
    let addr = server.addr();
    let (p, at) = signalled(
        &[
            "-c",
            "2000",
            "-r",
            "1",
            "-d",
            "5s",
            "-i",
            "500ms",
            "--timeout",
            "500ms",
            &addr,
        ],
        0,
    );
    assert!(at < Duration::from_secs(1), "signalled at {at:?}");
    assert!(f(p.total(), "elapsed_sec") < 2.0, "{}", p.total());
    server.stop();
}

#[test]
fn sigint_mid_run_prints_totals_of_the_run_so_far() {
    let server = Server::start("127.0.0.1:0", &[], None);
    let addr = server.addr();
    // After the second 500 ms window: about 1 s into the run.
    let (p, at) = signalled(
        &["-c", "10", "-r", "100", "-d", "3s", "-i", "500ms", &addr],
        2,
    );
    let total = p.total();
    let elapsed = f(total, "elapsed_sec");
    assert!(
        elapsed <= at.as_secs_f64() + 0.3,
        "totals cover the run until the signal at {at:?}: {total}"
    );
    assert!(u(total, "count") > 500, "{total}");
    assert_eq!(u(total, "error_count"), 0, "{total}");
    server.stop();

    // Each mode (from tests/connect.rs), against a server for TCP and UDP, signalled after its
    // second interval row (about 1 s into a 10 s run).
    let server = common::Server::start(&["--workers", "1"]);
    let addr = server.addr();
    let modes: [(&[&str], &str); 3] = [
        (&["-c", "4", "-r", "100"], "persistent"),
        (&["-f", "ephemeral", "-r", "200"], "ephemeral"),
        (&["-p", "udp", "-r", "200"], "udp"),
    ];
    let mut procs: Vec<(Proc, &str)> = modes
        .into_iter()
        .map(|(m, name)| {
            let mut args = vec!["connect", "-d", "10s", "-i", "500ms", "--workers", "1"];
            args.extend_from_slice(m);
            args.extend(["--timeout", "3s", "--json-stream", &addr]);
            (spawn(&args, None), name)
        })
        .collect();
    for (p, _) in &mut procs {
        wait_interval_rows(p, 2);
    }
    let mut sent = Vec::new();
    for (mut p, name) in procs {
        let at = Instant::now();
        p.signal(libc::SIGINT);
        sent.push((p, name, at));
    }
    for (mut p, name, at) in sent {
        let d = p.finish_by(at + Duration::from_secs(2));
        assert!(
            d.exited_at - at <= Duration::from_secs(2),
            "{name}: exit {:?} after SIGINT",
            d.exited_at - at
        );
        let rows = rows::check_clean(&d, 64, name);
        let t = rows::the_total(&rows);
        assert_eq!(rows.last().unwrap(), t, "{name}: totals last");
        let elapsed = f(t, "elapsed_sec");
        assert!(
            (0.9..3.0).contains(&elapsed),
            "{name}: measured until the signal, not 10 s: {t}"
        );
    }
    server.stop();
}

#[test]
fn sigint_in_the_last_interval_prints_totals() {
    let server = Server::start("127.0.0.1:0", &[], None);
    let addr = server.addr();
    // After the third 1 s window's row, in the last window. A window's row comes once its
    // replies are in (here --timeout and a sweep, about 125 ms after it ends), so the signal
    // goes about 3.1 s into a 4 s run (a 2 s run's third row of four came at its very end).
    let (p, _) = signalled(
        &[
            "-c",
            "10",
            "-r",
            "100",
            "-d",
            "4s",
            "-i",
            "1s",
            "--timeout",
            "100ms",
            &addr,
        ],
        3,
    );
    assert!(u(p.total(), "count") > 1000, "{}", p.total());
    assert!(p.intervals().len() >= 3, "{:?}", p.rows);
    server.stop();
}

/// A second SIGINT ends the drain at once (the target holds every request, so the drain would
/// take its full second) and the report is still printed, with the run's exit status (0).
#[test]
fn a_second_sigint_ends_the_drain_at_once_and_still_reports() {
    let hold = Fake::start(Fault::Hold);
    let addr = hold.addr();
    let mut c = spawn(
        &[
            "connect",
            "-d",
            "10s",
            "--timeout",
            "10s",
            "-i",
            "250ms",
            &addr,
        ],
        None,
    );
    wait_interval_rows(&mut c, 1);
    c.signal(libc::SIGINT);
    // The first SIGINT taken, the second is one more (not merged with it while pending).
    c.wait_delivered(libc::SIGINT);
    c.signal(libc::SIGINT);
    let second = c.started.elapsed();
    let o = c.finish(PROC_TIMEOUT);
    // The run's own status: a target that never answered fails it.
    assert!(o.assert_verdict(), "{}", o.text());
    assert!(
        o.elapsed < second + ms(500),
        "exited {:?} after the second SIGINT",
        o.elapsed - second
    );
    check_table(&o);
}

/// `timeout --preserve-status ARGS… connperf CMD…`: `timeout` is the test's child and does the
/// signalling itself, as in the issue: the signal to connperf, then the same to its process
/// group (connperf again). `--preserve-status` makes connperf's own exit status timeout's.
fn under_timeout(timeout_args: &[&str], args: &[&str]) -> Proc {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("--preserve-status")
        .args(timeout_args)
        .arg(common::BIN)
        .args(args);
    let label = format!(
        "timeout {} connperf {}",
        timeout_args.join(" "),
        args.join(" ")
    );
    common::proc::spawn_command(cmd, label, StdoutTo::Lines)
}

/// Run `runs` copies of `start()` in batches of `batch` at a time and hand each outcome to
/// `check`, which gets the run's number.
fn in_batches(
    runs: usize,
    batch: usize,
    start: impl Fn(usize) -> Proc,
    check: impl Fn(usize, &Outcome),
) {
    for first in (0..runs).step_by(batch) {
        let procs: Vec<(usize, Proc)> = (first..runs.min(first + batch))
            .map(|i| (i, start(i)))
            .collect();
        for (i, mut p) in procs {
            let o = p.finish(PROC_TIMEOUT);
            check(i, &o);
        }
    }
}

/// Issue 13: `timeout -s INT 1.5 connperf connect -d 10s …` once exited 130 without a report
/// in 1 run of 4 (the group signal came as a second SIGINT). 20 runs against a real server,
/// every other one `--jsonlines`: each exits 0 with its totals.
#[test]
fn connect_under_timeout_always_reports() {
    let server = common::Server::start(&[]);
    let addr = server.addr();
    in_batches(
        20,
        5,
        |i| {
            let mut args = vec!["connect", "-d", "10s", "-r", "200"];
            if i % 2 == 1 {
                args.push("--jsonlines");
            }
            args.push(&addr);
            under_timeout(&["-s", "INT", "1.5"], &args)
        },
        |i, o| {
            o.assert_clean();
            let count: u64 = if i % 2 == 1 {
                u(check_json(o).last().unwrap(), "count")
            } else {
                check_table(o);
                table_total(o)["CNT"].parse().expect("CNT column")
            };
            assert!(
                count > 0,
                "run {i}: no requests in the totals:\n{}",
                o.text()
            );
        },
    );
}

/// Issue 13: `timeout 1 connperf serve …` lost its final counters in about half the runs. 20
/// runs (SIGTERM from `timeout`, twice): each exits 0 with its `server total` line.
#[test]
fn serve_under_timeout_always_prints_its_final_counters() {
    in_batches(
        20,
        5,
        |_| under_timeout(&["1"], &["serve", "-l", "127.0.0.1:0", "--workers", "1"]),
        |i, o| {
            o.assert_clean();
            assert!(
                o.out
                    .first()
                    .is_some_and(|l| l.starts_with("Listening at ")),
                "run {i}:\n{}",
                o.text()
            );
            assert!(
                o.out.iter().any(|l| l.starts_with("server total ")),
                "run {i}: no final counters:\n{}\nstderr: {}",
                o.text(),
                o.err
            );
        },
    );
}

#[test]

fn sigint_with_replies_outstanding_reports_the_time_until_the_signal() {
    let hold = Fake::start(Fault::Hold);
    let addr = hold.addr();
    let mut c = spawn(
        &[
            "connect",
            "-d",
            "5s",
            "--timeout",
            "10s",
            "-i",
            "1s",
            "--json-stream",
            &addr,
        ],
        None,
    );
    // Signalled in the first window, once the target holds all 10 connections (each with its
    // request unanswered) and the handler is in.
    let deadline = Instant::now() + PROC_TIMEOUT;
    while hold.accepted.load(Ordering::Relaxed) < 10 {
        assert!(Instant::now() < deadline, "the generator did not connect");
        thread::sleep(ms(2));
    }
    c.wait_catching(libc::SIGINT);
    c.signal(libc::SIGINT);
    let o = c.finish(PROC_TIMEOUT);
    // The exit status is the verdict: fail once a request was in flight (the target answers
    // none), pass if the signal came before the first slot was due.
    let failed = o.assert_verdict();
    let rows = check_json(&o);
    let total = rows.last().unwrap();
    // The requests in flight (at most one per connection) are lost, on the books although the
    // window they were due in closed at the stop: windows are held until the drain ends.
    let lost = u(total, "lost");
    assert!(lost <= 10 && failed == (lost > 0), "{total}");
    assert_eq!(u(total, "count"), 0, "{total}");
    // The run was measured until the signal; the 1 s drain for unanswered requests after the
    // signal is not measured time (as it is not after a normal end at --duration).
    assert!(f(total, "elapsed_sec") < 0.8, "{total}");
    assert!(
        rows.iter().filter(|r| r["kind"] == "interval").count() <= 1,
        "no interval rows for windows after the stop: {rows:?}"
    );
}

/// `--start-at` as Unix seconds, `offset_secs` from now (negative: in the past).
fn start_at_from_now(offset_secs: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!("{:.3}", now + offset_secs)
}

/// A 1 s `--jsonlines` run (10 connections at 100/s) with `extra` flags against `addr`: exit 0,
/// a total row with the run's requests in it. Returns the outcome.
fn late_start_runs(extra: &[&str], addr: &str) -> Outcome {
    let mut args = vec!["connect", "-d", "1s", "-i", "500ms", "--jsonlines"];
    args.extend_from_slice(extra);
    args.push(addr);
    let o = spawn(&args, None).finish(PROC_TIMEOUT);
    o.assert_clean();
    let total = check_json(&o).pop().unwrap();
    assert!(u(&total, "count") > 500, "{total}");
    assert_eq!(u(&total, "error_count"), 0, "{total}");
    o
}

/// The `N.NNN` in stderr's `starting N.NNN s late` note.
fn late_by(o: &Outcome) -> f64 {
    let note = o
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains(" s late"))
        .unwrap_or_else(|| panic!("no late-start note: {}", o.err));
    let n = note
        .split("starting ")
        .nth(1)
        .and_then(|r| r.split(' ').next());
    n.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {note:?}"))
}

/// Issue 13: a `--start-at` already past (one slow ssh of a many-host run) starts at once,
/// with a note naming how late, up to `--start-late-max` (default 10 s).
#[test]
fn a_start_at_a_little_past_starts_at_once_with_a_note() {
    let server = common::Server::start(&[]);
    let addr = server.addr();
    let o = late_start_runs(&["--start-at", &start_at_from_now(-2.0)], &addr);
    let late = late_by(&o);
    assert!((2.0..5.0).contains(&late), "late by {late}: {}", o.err);

    let at = start_at_from_now(-60.0);
    let o = late_start_runs(&["--start-at", &at, "--start-late-max", "2m"], &addr);
    let late = late_by(&o);
    assert!((60.0..63.0).contains(&late), "late by {late}: {}", o.err);
}

/// A `--start-at` later than `--start-late-max` (a badly skewed clock), or more than 24 h ahead
/// (a wrong date: 99999999999 was a wait of 3,000 years), is a usage error: one line, exit 2,
/// no traffic, no report.
#[test]
fn a_start_at_too_late_or_too_far_ahead_is_a_usage_error() {
    let echo = Fake::start(Fault::Echo);
    let addr = echo.addr();
    let cases: [(String, &str); 3] = [
        (start_at_from_now(-60.0), "--start-late-max"),
        (start_at_from_now(25.0 * 3600.0), "24 h"),
        ("99999999999".to_string(), "24 h"),
    ];
    for (at, needle) in cases {
        let o =
            spawn(&["connect", "--start-at", &at, "-d", "1s", &addr], None).finish(PROC_TIMEOUT);
        assert_eq!(o.status.code(), Some(2), "--start-at {at}: {}", o.err);
        let lines = o.stderr_lines();
        assert_eq!(lines.len(), 1, "--start-at {at}: {lines:?}");
        assert!(lines[0].contains(needle), "--start-at {at}: {lines:?}");
        assert!(o.out.is_empty(), "--start-at {at}: {:?}", o.out);
    }
    assert_eq!(echo.accepted.load(Ordering::Relaxed), 0, "no traffic");
}

/// A signal during the wait for `--start-at` ends it at once, with exit 0 (a stop by signal is
/// a clean stop) and a one-line note instead of a report of zeros: nothing ran.
#[test]
fn a_signal_while_waiting_for_start_at_exits_without_a_report() {
    let echo = Fake::start(Fault::Echo);
    let addr = echo.addr();
    let at = start_at_from_now(30.0);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("run.hlog").display().to_string();
    let mut t = spawn(
        &[
            "connect",
            "--start-at",
            &at,
            "-d",
            "1s",
            "--hdr-log",
            &log,
            &addr,
        ],
        None,
    );
    let mut j = spawn(
        &[
            "connect",
            "--start-at",
            &at,
            "-d",
            "1s",
            "--jsonlines",
            &addr,
        ],
        None,
    );
    // The wait for --start-at is 30 s and prints nothing: signal once the handlers are in.
    t.wait_catching(libc::SIGINT);
    j.wait_catching(libc::SIGTERM);
    let at = Instant::now();
    t.signal(libc::SIGINT);
    j.signal(libc::SIGTERM);
    for p in [&mut t, &mut j] {
        let o = p.finish_by(at + ms(1000));
        o.assert_clean();
        assert!(o.out.is_empty(), "no report: {:?}", o.out);
        let lines = o.stderr_lines();
        assert!(
            lines.last().is_some_and(|l| l.contains("--start-at")
                && l.contains("signal")
                && l.contains("no report")),
            "{lines:?}"
        );
    }
    assert_eq!(echo.accepted.load(Ordering::Relaxed), 0, "no traffic");
    // The --hdr-log file made before the wait is removed: no run, no log.
    assert!(!std::path::Path::new(&log).exists(), "{log} is left behind");
}

// ---------------------------------------------------------------------------------------------
// 10. Stdout closed
// ---------------------------------------------------------------------------------------------

#[test]
fn stdout_closed_after_one_line_exits_quietly() {
    let echo = Fake::start(Fault::Echo);
    let addr = echo.addr();
    let mut p = spawn_with(
        &["connect", "-c", "2", "-i", "200ms", "-d", "2s", &addr],
        None,
        StdoutTo::Raw,
    );
    {
        let mut out = BufReader::new(p.child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("first line");
        assert!(line.starts_with("PEER"), "{line:?}");
    } // the read end is closed here
    let d = Duration::from_secs(2);
    let o = p.finish(d + GRACE + Duration::from_secs(10));
    o.assert_clean();
    assert!(o.elapsed <= d + GRACE, "took {:?}", o.elapsed);
    assert!(
        o.err.trim().is_empty(),
        "a quiet exit, got stderr {:?}",
        o.err
    );
}

/// A pipe whose read end is already closed: any write to the other end fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Stdio::from(w)
}

/// Run connperf with stdout a closed pipe; with `term`, SIGTERM it once it is running.
fn run_with_closed_stdout(args: &[&str], term: bool) -> Outcome {
    let mut p = spawn_with(args, None, StdoutTo::Other(closed_pipe()));
    if term {
        wait_running(&p);
        p.wait_catching(libc::SIGTERM);
        p.signal(libc::SIGTERM);
    }
    p.finish(Duration::from_secs(10))
}

#[test]
fn stdout_closed_from_the_start_is_not_an_error() {
    let echo = Fake::start(Fault::Echo);
    let addr = echo.addr();
    let cases: [(&[&str], bool); 4] = [
        (&["connect", "-d", "500ms", "-i", "100ms", &addr], false),
        (
            &[
                "connect",
                "--json-stream",
                "-d",
                "500ms",
                "-i",
                "100ms",
                &addr,
            ],
            false,
        ),
        (&["--help"], false),
        (&["serve", "-l", "127.0.0.1:0", "-p", "tcp"], true),
    ];
    for (args, term) in cases {
        run_with_closed_stdout(args, term).assert_clean();
    }
}

#[test]

fn version_with_stdout_closed_does_not_panic() {
    run_with_closed_stdout(&["--version"], false).assert_clean();
}

// ---------------------------------------------------------------------------------------------
// 11. Slowloris and --max-connections
// ---------------------------------------------------------------------------------------------

/// Open `n` idle TCP connections to `addr` (never sending).
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&addr, PROC_TIMEOUT)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect()
}

/// How many of `socks` the server has closed (EOF or reset), without blocking.
fn closed_by_peer(socks: &[TcpStream]) -> usize {
    let mut b = [0u8; 16];
    socks
        .iter()
        .filter(|s| {
            let mut r: &TcpStream = s;
            r.set_nonblocking(true).unwrap();
            let got = r.read(&mut b);
            r.set_nonblocking(false).unwrap();
            match got {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            }
        })
        .count()
}

#[test]
fn slowloris_idle_connections_do_not_hurt_an_active_client() {
    let server = Server::start("127.0.0.1:0", &["--idle-timeout", "500ms"], None);
    let idle = idle_connections(server.addr, 2000);
    let addr = server.addr();
    let p = run_pair(
        &["-c", "4", "-r", "100", "-d", "1500ms", "-i", "500ms", &addr],
        ms(1500),
    );
    let total = p.total();
    assert_eq!(u(total, "error_count"), 0, "{total}");
    assert!(u(total, "count") > 4 * 100, "{total}");
    let p99 = u(total, "latency_99p_us");
    assert!(p99 < 100_000, "p99 {p99} µs with 2,000 idle peers: {total}");
    assert!(p.table_kinds().is_empty(), "{}", p.table.text());
    let deadline = Instant::now() + PROC_TIMEOUT;
    while closed_by_peer(&idle) < idle.len() && Instant::now() < deadline {
        thread::sleep(ms(50));
    }
    assert_eq!(
        closed_by_peer(&idle),
        idle.len(),
        "the server closed every idle connection"
    );
    let (srv, _) = server.stop();
    assert!(u(&srv, "idle_closed") >= 2000, "{srv}");
}

#[test]
fn max_connections_rejects_the_excess_without_spinning() {
    let server = Server::start("127.0.0.1:0", &["--max-connections", "100"], None);
    let cpu_before = cpu_secs(server.pid());
    let socks = idle_connections(server.addr, 300);
    let deadline = Instant::now() + PROC_TIMEOUT;
    while closed_by_peer(&socks) < 200 && Instant::now() < deadline {
        thread::sleep(ms(20));
    }
    assert_eq!(closed_by_peer(&socks), 200, "the excess is closed");
    let mid = cpu_secs(server.pid());
    thread::sleep(ms(500));
    let after = cpu_secs(server.pid());
    assert!(
        after - mid < 0.1,
        "server used {} s CPU in 0.5 s holding 100 idle connections",
        after - mid
    );
    assert!(after - cpu_before < 0.5, "{} s", after - cpu_before);
    let (srv, _) = server.stop();
    assert_eq!(u(&srv, "rejected"), 200, "{srv}");
    assert_eq!(u(&srv, "accepted"), 300, "{srv}");
    drop(socks);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// A temporary directory, removed on drop.
#[test]
fn bad_input_is_one_line_exit_2_and_no_traffic() {
    // A sink on one port for TCP and UDP: nothing may reach it.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    sink.set_nonblocking(true).unwrap();
    let target = sink.local_addr().unwrap();
    let usink = UdpSocket::bind(target).unwrap();
    usink.set_nonblocking(true).unwrap();
    let t = target.to_string();

    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing").to_str().unwrap().to_string();
    let empty = write_file(&dir, "empty", b"");
    let comments = write_file(&dir, "comments", b"# nothing here\n\n   \n");
    let binary = write_file(&dir, "binary", &[0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1]);
    let bad_line = write_file(
        &dir,
        "bad-line",
        format!("# targets\n\n{t}  # ok\n{t} not-an-address\n").as_bytes(),
    );
    let dir_path = dir.path().to_str().unwrap().to_string();
    let bad_line_3 = write_file(
        &dir,
        "bad-line-3",
        b"# targets\n127.0.0.1:1\nnot-an-address\n127.0.0.1:2\n",
    );

    // (arguments after `connperf`, any of these must appear in the one stderr line)
    let flag_cases: &[(&[&str], &[&str])] = &[
        (&["-d", "5x"], &["-d"]),
        (&["-d", ""], &["-d"]),
        (&["-d", "-1"], &["-d"]),
        (&["-d", "0"], &["-d"]),
        (&["-d", "99999999999"], &["-d"]),
        (&["-d", "abc"], &["-d"]),
        (&["-i", "-1"], &["-i"]),
        (&["-i", "0"], &["-i"]),
        (&["-i", ""], &["-i"]),
        (&["-i", "5x"], &["-i"]),
        // Finer than 1 ms would print rows, not measurements.
        (&["-i", "1ns"], &["-i"]),
        (&["--timeout", "0"], &["--timeout"]),
        (&["--timeout", "-1"], &["--timeout"]),
        (&["--timeout", "1e999"], &["--timeout"]),
        (&["--timeout", "10parsecs"], &["--timeout"]),
        (&["--warmup", "-1"], &["--warmup"]),
        (&["--warmup", "5x"], &["--warmup"]),
        (&["-c", "0"], &["-c", "--connections"]),
        (&["-c", ""], &["-c", "--connections"]),
        (&["-c", "-5"], &["-c", "--connections"]),
        (&["-c", "abc"], &["-c", "--connections"]),
        (&["-c", "1.5"], &["-c", "--connections"]),
        (&["-c", "99999999999999999999"], &["-c", "--connections"]),
        (&["-c", "10000001"], &["-c", "--connections"]),
        (&["--message-bytes", "1e9"], &["--message-bytes"]),
        (&["--message-bytes", "0"], &["--message-bytes"]),
        (&["--message-bytes", ""], &["--message-bytes"]),
        (&["--message-bytes", "-5"], &["--message-bytes"]),
        (&["--message-bytes", "16777217"], &["--message-bytes"]),
        (
            &["-p", "udp", "--message-bytes", "65508"],
            &["--message-bytes"],
        ),
        (&["-r", "abc"], &["-r", "--rate"]),
        (&["-r", "-1"], &["-r", "--rate"]),
        (&["-r", ""], &["-r", "--rate"]),
        (&["-r", "inf"], &["-r", "--rate"]),
        (&["-r", "nan"], &["-r", "--rate"]),
        (&["-r", "1e9"], &["-r", "--rate"]),
        (&["--workers", "0"], &["--workers"]),
        (&["--workers", ""], &["--workers"]),
        (&["--workers", "-1"], &["--workers"]),
        (&["--workers", "99999"], &["--workers"]),
        (&["--cpus", "9999"], &["--cpus"]),
        (&["--cpus", ""], &["--cpus"]),
        (&["--cpus", "abc"], &["--cpus"]),
        (&["--max-inflight", "0"], &["--max-inflight"]),
        (&["--depth", "0"], &["--depth"]),
        (&["--depth", "-1"], &["--depth"]),
        (&["--depth", ""], &["--depth"]),
        (&["--depth", "99999"], &["--depth"]),
        (&["--max-inflight", "-1"], &["--max-inflight"]),
        (&["--busy-poll", "99999999"], &["--busy-poll"]),
        (&["--busy-poll", "-1"], &["--busy-poll"]),
        (&["--spin-us", "99999999"], &["--spin-us"]),
        (&["--spin-us", "-1"], &["--spin-us"]),
        (&["--spin-us", "1e3"], &["--spin-us"]),
        (&["--close", "maybe"], &["--close"]),
        (&["--percentiles", "101"], &["--percentiles"]),
        (&["--percentiles", "0"], &["--percentiles"]),
        (&["--percentiles", "abc"], &["--percentiles"]),
        (&["--percentiles", "50,,99"], &["--percentiles"]),
        (&["-p", "sctp"], &["--proto"]),
        (&["-f", "sometimes"], &["--flavor"]),
        (&["--source-addrs", "not-an-ip"], &["--source-addrs"]),
        (&["--bogus"], &["--bogus"]),
        (&["--bogus", "1"], &["--bogus"]),
        (&["-Z"], &["-Z"]),
        (&["--messageBytes=abc"], &["--message-bytes"]),
    ];
    let mut cases: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (args, needles) in flag_cases {
        let mut a = vec!["connect".to_string()];
        a.extend(own(args));
        a.push(t.clone());
        cases.push((a, own(needles)));
    }
    let other_cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["frobnicate"], vec!["frobnicate"]),
        (vec!["frobnicate", &t], vec!["frobnicate"]),
        (vec!["connect", "127.0.0.1"], vec!["127.0.0.1", "port"]),
        (vec!["connect", "127.0.0.1:"], vec!["127.0.0.1:"]),
        (vec!["connect", "127.0.0.1:70000"], vec!["65535"]),
        (vec!["connect", "[::1]:99999"], vec!["65535"]),
        (vec!["connect", "127.0.0.1:http"], vec!["127.0.0.1:http"]),
        (
            vec!["connect", "no-such-host.invalid:80"],
            vec!["no-such-host.invalid"],
        ),
        (vec!["connect", "::1:9100"], vec!["::1:9100"]),
        (vec!["connect", "[::1]"], vec!["[::1]"]),
        (vec!["connect", ":80"], vec![":80"]),
        (vec!["connect", ""], vec!["empty"]),
        (vec!["connect", &t, "127.0.0.1"], vec!["127.0.0.1"]),
        (
            vec!["connect", "--addrs-file", &missing],
            vec!["--addrs-file"],
        ),
        (
            vec!["connect", "--addrs-file", &empty],
            vec!["no addresses"],
        ),
        (
            vec!["connect", "--addrs-file", &comments],
            vec!["no addresses"],
        ),
        (
            vec!["connect", "--addrs-file", &dir_path],
            vec!["directory"],
        ),
        (vec!["connect", "--addrs-file", &binary], vec!["binary"]),
        (vec!["connect", "--addrs-file", &bad_line], vec!["line 4"]),
        (
            vec!["connect", "--addrs-file", &bad_line, &t],
            vec!["--addrs-file"],
        ),
        (vec!["connect", "--addrs-file"], vec!["--addrs-file"]),
        // No address (an empty $TARGETS) is no run, and names the way to a demo.
        (vec!["connect"], vec!["--demo"]),
        (vec!["connect", "-d", "1s", "-p", "udp"], vec!["make run"]),
        (vec!["connect", "--demo", &t], vec!["--demo"]),
        (vec!["connect", "--slo", "p99", &t], vec!["--slo"]),
        (vec!["connect", "--slo", "p100=1ms", &t], vec!["--slo"]),
        (vec!["connect", "--slo", "q99=1ms", &t], vec!["--slo"]),
        (
            vec!["connect", "--max-error-rate", "101", &t],
            vec!["--max-error-rate"],
        ),
        (
            vec!["connect", "--max-error-rate", "x", &t],
            vec!["--max-error-rate"],
        ),
        (vec!["connect", "-c"], vec!["-c"]),
        (vec!["serve", "-l", "127.0.0.1"], vec!["--listen-addr"]),
        (
            vec!["serve", "--max-connections", "0"],
            vec!["--max-connections"],
        ),
        (
            vec!["serve", "--idle-timeout", "5x"],
            vec!["--idle-timeout"],
        ),
        (vec!["serve", "--spin-us", "2000000"], vec!["--spin-us"]),
        (
            vec![
                "serve",
                "-l",
                "127.0.0.1:0",
                "-p",
                "tcp",
                "--interval",
                "1ns",
            ],
            vec!["--interval"],
        ),
        // From tests/connect.rs: the one line names what was wrong.
        (
            vec!["connect", "-d", "1", "--message-bytes", "0", "127.0.0.1:1"],
            vec!["--message-bytes"],
        ),
        (
            vec![
                "connect",
                "-d",
                "1",
                "--message-bytes",
                "16777217",
                "127.0.0.1:1",
            ],
            vec!["--message-bytes"],
        ),
        (
            vec!["connect", "-d", "1", "-r", "-1", "127.0.0.1:1"],
            vec!["negative"],
        ),
        (
            vec!["connect", "-d", "1", "--rate=-1", "127.0.0.1:1"],
            vec!["negative"],
        ),
        (vec!["connect", "-d", "1", "127.0.0.1"], vec!["127.0.0.1"]),
        (vec!["connect", "-d", "1", "[::1]"], vec!["[::1]"]),
        (
            vec!["connect", "-d", "1", "no-such-host.invalid:80"],
            vec!["no-such-host.invalid"],
        ),
        (
            vec!["connect", "-d", "1", "--addrs-file", &bad_line_3],
            vec!["line 3"],
        ),
        (
            vec!["connect", "-d", "1", "-p", "sctp", "127.0.0.1:1"],
            vec!["sctp"],
        ),
    ];
    for (a, n) in other_cases {
        cases.push((own(&a), own(&n)));
    }

    let mut failures = Vec::new();
    for (args, needles) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = spawn(&argv, None);
        // Name resolution may be slow where no resolver answers; nothing else is.
        let o = p.finish(Duration::from_secs(30));
        let lines: Vec<&str> = o.err.lines().collect();
        let ok = o.status.code() == Some(2)
            && o.out.is_empty()
            && lines.len() == 1
            && lines[0].starts_with("connperf: ")
            && needles.iter().any(|n| lines[0].contains(n.as_str()));
        if !ok {
            failures.push(format!(
                "{args:?}: status {:?}, stdout {:?}, stderr {:?} (wanted one `connperf: ` line naming one of {needles:?})",
                o.status, o.out, o.err
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad inputs mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        matches!(sink.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "a refused command line reached the TCP target"
    );
    let mut b = [0u8; 64];
    assert!(
        matches!(usink.recv_from(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "a refused command line reached the UDP target"
    );
}
