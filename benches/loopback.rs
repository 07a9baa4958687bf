//! Loopback benchmark: the release `connperf` binary against itself, and beside a peer where
//! one has a matching mode: `sockperf` (rr1, udp1) or `c-epoll` (rr100, rr1000, eph, paced50k),
//! and neper's `tcp_rr` / `tcp_crr` (rr1, rr1000, eph) where the user has built neper (not
//! packaged by Debian): `NEPER_DIR=/path/to/neper`, or `tcp_rr` and `tcp_crr` on PATH.
//!
//! ```text
//! cargo bench --bench loopback                 # every scenario
//! cargo bench --bench loopback -- rr1 udp1     # some of them
//! BENCH_RUNS=5 BENCH_SECS=2 cargo bench --bench loopback
//! CONNPERF_BIN=/path/to/connperf cargo bench --bench loopback
//! ```
//!
//! Scenarios (all traffic on 127.0.0.1, 64-byte messages, closed loop unless said otherwise):
//! - `rr1`: 1 TCP connection; connperf serve/connect pinned to cores 1/0, sockperf
//!   server/ping-pong pinned the same way with taskset.
//! - `rr1-spin`: rr1 with `--spin` on client and server; its ratio is against rr1's (default,
//!   non-spinning) sockperf row, run here only when rr1 is not selected.
//! - `rr100`: 100 TCP connections, 2 client workers, 2 server workers; c-epoll `rr` with 100
//!   flows beside it (sockperf ping-pong has no multi-connection mode).
//! - `rr1000`, `rr1000-spin`: 1,000 TCP connections, 2 client workers, 2 server workers; the
//!   second with `--spin` on both sides. c-epoll `rr` with 1,000 flows beside the first only.
//! - `udp1`: 1 UDP socket; connperf vs sockperf (UDP is sockperf's default), pinned like rr1.
//! - `udp-multi`: UDP paced at 100,000 datagrams/s per target, 2 targets (the same 2-worker
//!   server twice), 2 client workers: 200,000/s offered; achieved rate and datagrams lost.
//! - `eph`: a new TCP connection per request, closed loop, `-c 100` (100 in flight, 50 per
//!   worker), 2 client workers, RST close; req/s is connections/s. c-epoll `crr` with 100 in
//!   flight beside it.
//! - `paced50k`: `-c 100 -r 500`, 2 client workers, 2 server workers: 50,000 req/s offered;
//!   achieved percent, p99, late starts, requests not started. c-epoll `paced` beside it:
//!   tcpkali-style pacing (100 connections at 500/s each, open loop, millisecond timer
//!   wake-ups as libev's, a late flow catching up at once). Both rows give p99 from the moment
//!   a request was due (the p99 column: connperf's latency) and from its send (`send_p99_us`:
//!   what tcpkali reports; connperf's service time).
//! - `mem19k`: one run (BENCH_RUNS does not apply), ~30 s: 19,000 connections at 1 req/s each
//!   (`--warmup 10s -d 10s --workers 1 --timeout 5s`) against a 1-worker server. VmRSS of the
//!   client (a 1-connection run's, then 15 s into the 19k run) and of the server (just after
//!   start, then at the same moment); KiB per connection beyond idle for each, plus the
//!   system-wide change in TCP buffer memory (/proc/net/sockstat) per connection.
//! - `syscalls`: one run: 1,000 connections closed loop for 2 s, the client under
//!   `strace -f -c`, the server under an attached `strace -f -c -p` for the same window;
//!   syscalls per request on each side (all calls but futex, and only the read/write/recv/send/
//!   epoll_wait family). req/s and CPU there are strace-bound: not comparable with the rest.
//!   Then the same run at full speed with every syscall of each side counted by
//!   `perf stat -e raw_syscalls:sys_enter` (`*_full_speed`; skipped without `perf`), which
//!   does not slow the processes down the way strace's stop per call does.
//! - `punctual`: paced sends at low CPU, default flags against a 1-worker `connperf serve`,
//!   min(BENCH_SECS, 3) s a run: `-c 10 -r 100`, `-c 10 -r 1000`, `-c 1 -r 1000`, each giving
//!   p50 from the intended send time and from the actual send (`service_p50_us`), the gap
//!   between them (how late sends left) and the generator's CPU (`gen_cpu_pct`, of one core);
//!   then `sockperf under-load --tcp --mps 1000` (pinned as rr1), which waits for each send by
//!   polling the clock: its p50 and avg round trip and its CPU.
//!
//! The c-epoll peer, `benches/peers/tcp_rr_flows.c`, is the "any epoll program" floor: what
//! neper's tcp_rr and tcp_crr and tcpkali's `--message-rate` do (neither neper nor tcpkali
//! installs here), in ~480 lines of C,
//! level-triggered epoll per thread, no io_uring, no busy polling. Its 2-thread server (one
//! SO_REUSEPORT listener and epoll per thread, echo) against its 2-thread client, peer against
//! peer like sockperf against sockperf: `rr` keeps N connections with one 64-byte request in
//! flight each; `crr` keeps N connections in flight, each non-blocking connect, send 64 B on
//! writable, read the echo, close with SO_LINGER {1, 0} (RST, like connperf's default). It counts
//! round trips completed inside `BENCH_SECS` (started once every connection is up) and has no
//! latency histogram (its note gives the mean from Little's law). It is compiled once per bench
//! process with `cc -O2 -Wall -pthread` into a temp directory removed at the end; without `cc`
//! (or if the build fails) its rows are skipped with a note.
//!
//! Each scenario runs `BENCH_RUNS` times (default 3), the tools alternating run by run, and the
//! table shows the median of each column. Client CPU seconds and max RSS come from `wait4(2)` on
//! the client process (the whole process: all threads, start-up and shut-down included). The
//! table's last column holds each scenario's own numbers (medians too).
//!
//! The connperf binary: `$CONNPERF_BIN`, else `cargo build --release` is run here and
//! `$CARGO_TARGET_DIR/release/connperf` (default `target/` under the package) is used.
//!
//! Every child is bounded in time (killed past its deadline), gets SIGKILL if this process dies
//! (PR_SET_PDEATHSIG), and is stopped and reaped on every exit path, error or panic included.

// The `Listening at` parser shared with the tests (tests/common).
#[path = "../tests/common/listen.rs"]
mod listen;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const SCENARIOS: [&str; 12] = [
    "rr1",
    "rr1-spin",
    "rr100",
    "rr1000",
    "rr1000-spin",
    "udp1",
    "udp-multi",
    "eph",
    "paced50k",
    "mem19k",
    "syscalls",
    "punctual",
];
/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may run past its `-d`/`-t` before it is killed.
const CLIENT_SLACK: Duration = Duration::from_secs(20);
/// SIGTERM → SIGKILL grace period.
const GRACE: Duration = Duration::from_secs(3);
const MSG_BYTES: u32 = 64;

// ---------------------------------------------------------------------------------------------
// Child processes: spawn, read output, wait with rusage, stop.

/// How a child ended, with its resource usage (wait4).
#[derive(Debug, Clone, Copy)]
struct Exit {
    status: i32,
    cpu_s: f64,
    utime_s: f64,
    stime_s: f64,
    maxrss_kib: i64,
    wall: Duration,
}

impl Exit {
    fn describe(&self) -> String {
        let st = self.status;
        if st & 0x7f == 0 {
            format!("exit status {}", (st >> 8) & 0xff)
        } else {
            format!("killed by signal {}", st & 0x7f)
        }
    }
    fn success(&self) -> bool {
        self.status & 0x7f == 0 && (self.status >> 8) & 0xff == 0
    }
}

fn tv_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// A running child. Dropping it kills and reaps it if that has not happened yet.
struct Proc {
    label: String,
    pid: libc::pid_t,
    started: Instant,
    exit: Option<Exit>,
    /// (is_stderr, line)
    rx: Receiver<(bool, String)>,
    out: Vec<String>,
    err: Vec<String>,
    eof: bool,
}

fn pump<R: Read + Send + 'static>(r: R, is_err: bool, tx: Sender<(bool, String)>) {
    thread::spawn(move || {
        for line in BufReader::new(r).split(b'\n') {
            let Ok(l) = line else { break };
            if tx
                .send((is_err, String::from_utf8_lossy(&l).into_owned()))
                .is_err()
            {
                break;
            }
        }
    });
}

impl Proc {
    fn spawn(label: &str, argv: &[String]) -> Res<Proc> {
        Proc::spawn_in(label, argv, None)
    }

    /// `spawn`, in directory `dir` if given (for tools that write files where they run).
    fn spawn_in(label: &str, argv: &[String], dir: Option<&Path>) -> Res<Proc> {
        let mut cmd = Command::new(&argv[0]);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Die with the bench (the spawning thread is the main thread, which lives on).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{label}: cannot start `{}`: {e}", argv.join(" ")))?;
        let (tx, rx) = mpsc::channel();
        pump(child.stdout.take().expect("piped"), false, tx.clone());
        pump(child.stderr.take().expect("piped"), true, tx);
        let pid = child.id() as libc::pid_t;
        // `Child` neither kills nor reaps on drop; from here on the pid is ours to wait4.
        drop(child);
        Ok(Proc {
            label: label.to_string(),
            pid,
            started: Instant::now(),
            exit: None,
            rx,
            out: Vec::new(),
            err: Vec::new(),
            eof: false,
        })
    }

    fn take_line(&mut self, msg: (bool, String)) {
        if msg.0 {
            self.err.push(msg.1);
        } else {
            self.out.push(msg.1);
        }
    }

    /// wait4 the child; `block` false returns None while it runs.
    fn reap(&mut self, block: bool) -> Option<Exit> {
        if let Some(e) = self.exit {
            return Some(e);
        }
        let mut status: libc::c_int = 0;
        // SAFETY: zeroed rusage is a valid value; wait4 writes into our locals.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            let flags = if block { 0 } else { libc::WNOHANG };
            // SAFETY: as above.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                let (u, s) = (tv_secs(ru.ru_utime), tv_secs(ru.ru_stime));
                let e = Exit {
                    status,
                    cpu_s: u + s,
                    utime_s: u,
                    stime_s: s,
                    maxrss_kib: ru.ru_maxrss as i64,
                    wall: self.started.elapsed(),
                };
                self.exit = Some(e);
                return Some(e);
            }
            if r == 0 {
                return None;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ECHILD: not ours any more; nothing to measure.
            let e = Exit {
                status: 0x7f,
                cpu_s: f64::NAN,
                utime_s: f64::NAN,
                stime_s: f64::NAN,
                maxrss_kib: 0,
                wall: self.started.elapsed(),
            };
            self.exit = Some(e);
            return Some(e);
        }
    }

    /// Read what output there is, for at most `until`.
    fn drain(&mut self, until: Instant) {
        while !self.eof {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => self.take_line(m),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
    }

    /// Wait until `ready()` (polled every 20 ms) says this process is `what` (listening on a
    /// port, attached to a process), for at most `START_TIMEOUT`; an error if it ends first or
    /// never gets there.
    fn wait_ready(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Res<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !ready() {
            if let Some(e) = self.reap(false) {
                self.drain(Instant::now() + Duration::from_secs(1));
                return Err(format!(
                    "{} ended ({}) before it was {what}{}",
                    self.label,
                    e.describe(),
                    self.tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not {what} after {START_TIMEOUT:?}{}",
                    self.label,
                    self.tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Wait for a stdout line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str, deadline: Instant) -> Res<String> {
        let mut seen = 0;
        loop {
            while seen < self.out.len() {
                if self.out[seen].starts_with(prefix) {
                    return Ok(self.out[seen].clone());
                }
                seen += 1;
            }
            if self.reap(false).is_some() {
                self.drain(Instant::now() + Duration::from_secs(1));
                if self.out[seen..].iter().any(|l| l.starts_with(prefix)) {
                    continue;
                }
                return Err(format!(
                    "{} ended ({}) before printing {prefix:?}{}",
                    self.label,
                    self.exit.unwrap().describe(),
                    self.tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} printed no {prefix:?} line within {:?}{}",
                    self.label,
                    START_TIMEOUT,
                    self.tail()
                ));
            }
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => self.take_line(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Poll until the child exits or `deadline`; then SIGTERM, then SIGKILL after `GRACE`.
    /// Returns the exit and whether it had to be stopped.
    fn wait_or_stop(&mut self, deadline: Instant) -> (Exit, bool) {
        loop {
            if let Some(e) = self.reap(false) {
                self.drain(Instant::now() + Duration::from_secs(2));
                return (e, false);
            }
            if Instant::now() >= deadline {
                break;
            }
            // Poll gently: the bench shares two cores with what it measures.
            match self.rx.recv_timeout(Duration::from_millis(10)) {
                Ok(m) => self.take_line(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        (self.stop(), true)
    }

    /// SIGTERM, SIGKILL after `GRACE`, reap.
    fn stop(&mut self) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        // SAFETY: signalling our own unreaped child: the pid cannot have been reused.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let until = Instant::now() + GRACE;
        while Instant::now() < until {
            if let Some(e) = self.reap(false) {
                self.drain(Instant::now() + Duration::from_secs(2));
                return e;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "loopback: {} (pid {}) ignored SIGTERM for {GRACE:?}: SIGKILL",
            self.label, self.pid
        );
        // SAFETY: as above.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let e = self.reap(true).expect("blocking wait4 returns");
        self.drain(Instant::now() + Duration::from_secs(1));
        e
    }

    fn tail(&self) -> String {
        let pick = |v: &[String]| v[v.len().saturating_sub(8)..].join("\n    ");
        let mut s = String::new();
        if !self.out.is_empty() {
            s += &format!("\n  stdout:\n    {}", pick(&self.out));
        }
        if !self.err.is_empty() {
            s += &format!("\n  stderr:\n    {}", pick(&self.err));
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap(true);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings.

struct Env {
    bin: PathBuf,
    runs: usize,
    secs: u64,
}

fn env_num(name: &str, default: u64, min: u64) -> Res<u64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(format!("{name}={v:?}: want a whole number >= {min}")),
        },
    }
}

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `$CONNPERF_BIN`, else `cargo build --release` and the binary it made.
fn find_connperf() -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("CONNPERF_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!("CONNPERF_BIN={} is not a file", p.display()));
        }
        return Ok(p);
    }
    let dir = manifest_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("loopback: cargo build --release (set CONNPERF_BIN to skip)");
    let st = Command::new(&cargo)
        .args(["build", "--release", "--bin", "connperf", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {cargo:?} build --release: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build --release failed: {st}"));
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => dir.join(t),
        None => dir.join("target"),
    };
    let bin = target.join("release").join("connperf");
    if !bin.is_file() {
        return Err(format!("no binary at {} after the build", bin.display()));
    }
    Ok(bin)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// One measured run.

#[derive(Debug, Clone, Default)]
struct Sample {
    req_s: f64,
    cpu_s: f64,
    rss_kib: f64,
    /// Client-side errors (NaN where the tool reports none).
    errors: f64,
    /// 99th-percentile latency, µs (NaN where unknown).
    p99_us: f64,
    /// Informational, for the detail lines.
    note: String,
}

/// A scenario's own number, shown as `key=median` in the table's last column.
#[derive(Debug, Clone, Copy)]
struct Extra {
    key: &'static str,
    val: f64,
    prec: usize,
}

/// What a run produced: the sample plus total requests (for requests per CPU-second).
struct Measured {
    sample: Sample,
    requests: f64,
    extras: Vec<Extra>,
    /// connperf's JSON total row (Null for sockperf).
    total: serde_json::Value,
}

impl Measured {
    fn extra(&mut self, key: &'static str, val: f64, prec: usize) {
        self.extras.push(Extra { key, val, prec });
    }
    /// A number from connperf's total row (NaN if absent).
    fn num(&self, key: &str) -> f64 {
        self.total[key].as_f64().unwrap_or(f64::NAN)
    }
}

fn measured(req_s: f64, requests: f64, exit: &Exit, note: String) -> Measured {
    Measured {
        sample: Sample {
            req_s,
            cpu_s: exit.cpu_s,
            rss_kib: exit.maxrss_kib as f64,
            errors: f64::NAN,
            p99_us: f64::NAN,
            note,
        },
        requests,
        extras: Vec::new(),
        total: serde_json::Value::Null,
    }
}

/// Start `connperf serve` and return it with the port it printed.
fn connperf_server(env: &Env, args: &[&str]) -> Res<(Proc, u16)> {
    let mut argv = vec![env.bin.display().to_string(), "serve".into()];
    argv.extend(s(args));
    let mut srv = Proc::spawn("connperf serve", &argv)?;
    let line = srv.wait_line(listen::LISTENING, Instant::now() + START_TIMEOUT)?;
    let port = listen::listening_addr(&line)
        .map(|a| a.port())
        .ok_or_else(|| format!("connperf serve: cannot read the port from {line:?}"))?;
    Ok((srv, port))
}

/// Stop a connperf server and summarize its final counters ("server total ... errors=N").
fn stop_connperf_server(mut srv: Proc) -> Res<String> {
    let e = srv.stop();
    let total = srv
        .out
        .iter()
        .find(|l| l.starts_with("server total"))
        .cloned();
    let Some(total) = total else {
        return Err(format!(
            "connperf serve printed no final counters after SIGTERM ({}){}",
            e.describe(),
            srv.tail()
        ));
    };
    let field = |k: &str| -> Option<u64> {
        total
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.parse().ok()))
    };
    let errors = field("errors=").unwrap_or(0);
    let mut note = format!(
        "server cpu {:.2}s accepted={} errors={}",
        e.cpu_s,
        field("accepted=").unwrap_or(0),
        errors
    );
    if errors > 0 {
        note += &format!(" [SERVER ERRORS: {total}]");
    }
    if !e.success() {
        note += &format!(" [server {}]", e.describe());
    }
    Ok(note)
}

/// Start `connperf connect ARGS --show-only-results --jsonlines` against `targets` copies of
/// 127.0.0.1:`port`, behind `prefix` (a wrapper such as strace) if any. Returns it with its argv.
fn spawn_client(
    env: &Env,
    prefix: &[String],
    connect: &[&str],
    port: u16,
    targets: usize,
) -> Res<(Proc, Vec<String>)> {
    let mut argv = prefix.to_vec();
    argv.extend([env.bin.display().to_string(), "connect".into()]);
    argv.extend(s(connect));
    argv.extend(["--show-only-results".into(), "--jsonlines".into()]);
    argv.extend((0..targets).map(|_| format!("127.0.0.1:{port}")));
    let cli = Proc::spawn("connperf connect", &argv)?;
    Ok((cli, argv))
}

/// Wait for a client meant to run `run_secs` (warm-up included); stopped `CLIENT_SLACK` past it.
fn wait_client(cli: &mut Proc, run_secs: f64) -> (Exit, bool) {
    cli.wait_or_stop(cli.started + Duration::from_secs_f64(run_secs) + CLIENT_SLACK)
}

/// Judge an ended connperf client and read its (single) JSON total row into a `Measured`.
fn client_result(
    cli: &Proc,
    argv: &[String],
    (exit, killed): (Exit, bool),
    run_secs: f64,
    server_note: Res<String>,
) -> Res<Measured> {
    let server_note = match server_note {
        Ok(n) => n,
        Err(e) => format!("[{e}]"),
    };
    if killed {
        return Err(format!(
            "connperf connect still running {CLIENT_SLACK:?} past its {run_secs}s: stopped ({}){}; {server_note}",
            exit.describe(),
            cli.tail()
        ));
    }
    if !exit.success() {
        return Err(format!(
            "connperf connect failed ({}): {}{}; {server_note}",
            exit.describe(),
            argv.join(" "),
            cli.tail()
        ));
    }
    let total: serde_json::Value = cli
        .out
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "total")
        .ok_or_else(|| format!("connperf connect printed no total row{}", cli.tail()))?;
    let num = |k: &str| total[k].as_f64().unwrap_or(f64::NAN);
    let count = num("count");
    let errors = num("error_count");
    let mut note = format!(
        "count={count} errors={errors} gen_cpu={:.2}s proc_cpu={:.2}s (user {:.2} sys {:.2}) wall={:.2}s lat_mean={}us p50={}us p99={}us",
        num("generator_cpu_sec"),
        exit.cpu_s,
        exit.utime_s,
        exit.stime_s,
        exit.wall.as_secs_f64(),
        total["latency_mean_us"],
        total["latency_50p_us"],
        total["latency_99p_us"],
    );
    let overrun = exit.wall.as_secs_f64() - run_secs;
    if overrun > 0.5 {
        // Start-up takes milliseconds; the rest is the client's stop/drain phase.
        note += &format!(" [client ran {overrun:.2}s past its {run_secs}s]");
    }
    if let Some(lost) = total.get("lost") {
        note += &format!(" lost={lost}");
    }
    if num("late_starts") > 0.0 || num("not_started") > 0.0 {
        note += &format!(
            " [BEHIND SCHEDULE: late_starts={} not_started={} max_behind={}us]",
            total["late_starts"], total["not_started"], total["max_behind_us"]
        );
    }
    if errors > 0.0 {
        note += &format!(" [CLIENT ERRORS: {}]", total["errors"]);
    }
    if !cli.err.is_empty() {
        note += &format!(" [stderr: {}]", cli.err.join(" | "));
    }
    note += &format!("; {server_note}");
    if count <= 0.0 {
        return Err(format!("connperf completed no requests: {note}"));
    }
    let mut m = measured(num("rate_per_sec"), count, &exit, note);
    m.sample.errors = errors;
    m.sample.p99_us = num("latency_99p_us");
    m.total = total;
    Ok(m)
}

/// One connperf run: server, client (`-d BENCH_SECS`, `targets` copies of the server's
/// address), totals.
fn connperf_run(env: &Env, serve: &[&str], connect: &[&str], targets: usize) -> Res<Measured> {
    let (srv, port) = connperf_server(env, serve)?;
    let secs = env.secs;
    let d = format!("{secs}s");
    let mut args = connect.to_vec();
    args.extend(["-d", d.as_str()]);
    let (mut cli, argv) = spawn_client(env, &[], &args, port, targets)?;
    let ended = wait_client(&mut cli, secs as f64);
    let server_note = stop_connperf_server(srv);
    client_result(&cli, &argv, ended, secs as f64, server_note)
}

/// Add the paced-load numbers: achieved percent of `target` req/s, late and missed starts.
fn paced(mut m: Measured, target: f64) -> Measured {
    let rate = m.sample.req_s;
    m.extra("target_per_s", target, 0);
    m.extra("achieved_pct", rate / target * 100.0, 1);
    for k in ["late_starts", "not_started", "max_behind_us"] {
        let v = m.num(k);
        m.extra(k, v, 0);
    }
    m
}

/// A port that was free a moment ago.
fn free_port(udp: bool) -> Res<u16> {
    let r = if udp {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    r.map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Is a UDP socket bound to 127.0.0.1:port (or a wildcard) now?
fn udp_bound(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&want))
            })
        })
        .unwrap_or(false)
}

/// Why a peer's client run does not count: it hung (and was stopped) or failed.
fn peer_failed(label: &str, killed: bool, exit: &Exit, argv: &[String], cli: &Proc) -> String {
    let how = if killed {
        "hung and was stopped"
    } else {
        "failed"
    };
    format!(
        "{label} {how} ({}): {}{}",
        exit.describe(),
        argv.join(" "),
        cli.tail()
    )
}

/// A `sockperf server` on a free port of 127.0.0.1, pinned to core 1, ready: it accepts a
/// connection (TCP) or has bound its socket (UDP). The server and its port.
fn start_sockperf_server(sockperf: &Path, tcp: bool) -> Res<(Proc, u16)> {
    let port = free_port(!tcp)?;
    let ps = port.to_string();
    let sp = sockperf.display().to_string();
    let mut argv = s(&["taskset", "-c", "1", &sp, "server"]);
    if tcp {
        argv.push("--tcp".into());
    }
    argv.extend(s(&["-i", "127.0.0.1", "-p", &ps]));
    let mut srv = Proc::spawn("sockperf server", &argv)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    srv.wait_ready(&format!("listening on {port}"), || {
        if tcp {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        } else {
            udp_bound(port)
        }
    })?;
    Ok((srv, port))
}

/// Everything a sockperf client printed, stdout then stderr, without its colour codes.
fn sockperf_text(cli: &Proc) -> Vec<String> {
    cli.out
        .iter()
        .chain(&cli.err)
        .map(|l| strip_ansi(l))
        .collect()
}

fn sockperf_run(env: &Env, sockperf: &Path, tcp: bool) -> Res<Measured> {
    let (mut srv, port) = start_sockperf_server(sockperf, tcp)?;
    let ps = port.to_string();
    let sp = sockperf.display().to_string();
    let secs = env.secs;
    let mut argv = s(&["taskset", "-c", "0", &sp, "ping-pong"]);
    if tcp {
        argv.push("--tcp".into());
    }
    argv.extend(s(&["-i", "127.0.0.1", "-p", &ps, "-t"]));
    argv.extend([
        secs.to_string(),
        "-m".into(),
        MSG_BYTES.to_string(),
        "--full-rtt".into(),
    ]);
    let mut cli = Proc::spawn("sockperf ping-pong", &argv)?;
    let (exit, killed) =
        cli.wait_or_stop(Instant::now() + Duration::from_secs(secs) + CLIENT_SLACK);
    let sexit = srv.stop();
    if killed || !exit.success() {
        return Err(peer_failed(
            "sockperf ping-pong",
            killed,
            &exit,
            &argv,
            &cli,
        ));
    }
    let text = sockperf_text(&cli);
    // sockperf: [Total Run] RunTime=5.000 sec; Warm up time=400 msec; SentMessages=..; ReceivedMessages=..
    // sockperf: [Valid Duration] RunTime=4.547 sec; SentMessages=..; ReceivedMessages=..
    // sockperf: Summary: Round trip is 60.124 usec
    let kv = |tag: &str| -> Option<(f64, f64)> {
        let l = text.iter().find(|l| l.contains(tag))?;
        let get = |k: &str| -> Option<f64> {
            let rest = &l[l.find(k)? + k.len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            v.parse().ok()
        };
        Some((get("RunTime=")?, get("ReceivedMessages=")?))
    };
    let (total_secs, total_msgs) = kv("[Total Run]").ok_or_else(|| {
        format!(
            "sockperf ping-pong printed no [Total Run] line{}",
            cli.tail()
        )
    })?;
    let valid = kv("[Valid Duration]");
    let after = |needle: &str| -> String {
        text.iter()
            .find_map(|l| {
                l.find(needle)
                    .map(|i| l[i + needle.len()..].trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    let rtt = after("Summary: Round trip is ");
    let p50 = after("percentile 50.000 =");
    let p99 = after("percentile 99.000 =");
    let dropped = after("# dropped messages =");
    let dropped = dropped.split(';').next().unwrap_or("?").trim().to_string();
    if total_secs <= 0.0 || total_msgs <= 0.0 {
        return Err(format!("sockperf exchanged no messages{}", cli.tail()));
    }
    let req_s = total_msgs / total_secs;
    let mut note = format!(
        "received={total_msgs} in {total_secs}s proc_cpu={:.2}s (user {:.2} sys {:.2}) wall={:.2}s rtt_mean={rtt} p50={p50}us p99={p99}us dropped={dropped}",
        exit.cpu_s,
        exit.utime_s,
        exit.stime_s,
        exit.wall.as_secs_f64()
    );
    if let Some((vs, vm)) = valid {
        note += &format!(" valid_window={:.0}/s", vm / vs);
    }
    note += &format!("; server cpu {:.2}s", sexit.cpu_s);
    let mut m = measured(req_s, total_msgs, &exit, note);
    m.sample.p99_us = p99.parse().unwrap_or(f64::NAN);
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// The c-epoll peer: benches/peers/tcp_rr_flows.c, neper tcp_rr/tcp_crr and tcpkali-style
// pacing in plain C and epoll.

/// Scenarios with a c-epoll row.
const C_PEER_SCENARIOS: [&str; 4] = ["rr100", "rr1000", "eph", "paced50k"];

/// The c-epoll peer's binary, in a temp directory of its own that is removed on drop.
struct CPeer {
    _dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Compile the peer with `cc -O2 -Wall -pthread` into a fresh temp directory.
fn build_c_peer(cc: &Path) -> Res<CPeer> {
    let src = manifest_dir().join("benches/peers/tcp_rr_flows.c");
    let dir = tempfile::Builder::new()
        .prefix("connperf-loopback-peer-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp directory: {e}"))?;
    let peer = CPeer {
        bin: dir.path().join("tcp_rr_flows"),
        _dir: dir,
    };
    let argv = vec![
        cc.display().to_string(),
        "-O2".into(),
        "-Wall".into(),
        "-pthread".into(),
        "-o".into(),
        peer.bin.display().to_string(),
        src.display().to_string(),
    ];
    let mut p = Proc::spawn("cc", &argv)?;
    let (exit, killed) = p.wait_or_stop(Instant::now() + Duration::from_secs(120));
    if killed || !exit.success() || !peer.bin.is_file() {
        return Err(format!(
            "`{}` failed ({}){}",
            argv.join(" "),
            exit.describe(),
            p.tail()
        ));
    }
    if !p.err.is_empty() {
        println!(
            "loopback: cc warnings for {}:\n  {}",
            src.display(),
            p.err.join("\n  ")
        );
    }
    Ok(peer)
}

/// One c-epoll run, peer against peer: its 2-thread server, then its 2-thread client in `mode`
/// `rr` (`count` persistent connections, one request in flight each), `crr` (`count`
/// connections in flight, one request each, RST close) or `paced` (`count` persistent
/// connections sending `rate` requests/s each whatever the replies), 64 B messages,
/// `BENCH_SECS`.
fn c_peer_run(env: &Env, peer: &CPeer, mode: &str, count: u32, rate: Option<u32>) -> Res<Measured> {
    let bin = peer.bin.display().to_string();
    let mut srv = Proc::spawn("c-epoll server", &s(&[&bin, "server", "0", "2"]))?;
    // "listening port=PORT threads=2"
    let line = srv.wait_line("listening port=", Instant::now() + START_TIMEOUT)?;
    let port: u16 = line["listening port=".len()..]
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("c-epoll server: cannot read the port from {line:?}"))?;
    let secs = env.secs;
    let mut argv = s(&[
        &bin,
        mode,
        "127.0.0.1",
        &port.to_string(),
        "2",
        &count.to_string(),
        &secs.to_string(),
        &MSG_BYTES.to_string(),
    ]);
    argv.extend(rate.map(|r| r.to_string()));
    let mut cli = Proc::spawn(&format!("c-epoll {mode}"), &argv)?;
    let (exit, killed) = wait_client(&mut cli, secs as f64);
    // The server only ends when stopped: ended already means it died during the run.
    let died = srv.reap(false).map(|e| e.describe());
    let sexit = srv.stop();
    if let Some(how) = died {
        return Err(format!(
            "c-epoll server ended during the run ({how}){}",
            srv.tail()
        ));
    }
    if killed || !exit.success() {
        return Err(peer_failed(
            &format!("c-epoll {mode}"),
            killed,
            &exit,
            &argv,
            &cli,
        ));
    }
    // "requests=N seconds=S errors=E cpu_user=U cpu_sys=S"
    let line = cli
        .out
        .iter()
        .find(|l| l.starts_with("requests="))
        .cloned()
        .ok_or_else(|| format!("c-epoll {mode} printed no requests= line{}", cli.tail()))?;
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.parse().ok()))
            .unwrap_or(f64::NAN)
    };
    let (requests, window, errors) = (field("requests="), field("seconds="), field("errors="));
    if !(requests > 0.0 && window > 0.0) {
        return Err(format!("c-epoll {mode} completed no requests: {line}"));
    }
    let req_s = requests / window;
    let mut note = format!(
        "requests={requests} errors={errors} proc_cpu={:.2}s (user {:.2} sys {:.2}) wall={:.2}s",
        exit.cpu_s,
        exit.utime_s,
        exit.stime_s,
        exit.wall.as_secs_f64(),
    );
    if rate.is_some() {
        note += &format!(
            " p50={}us p99={}us p99.9={}us max={}us (from send) p99={}us (from due)",
            field("p50_us="),
            field("p99_us="),
            field("p999_us="),
            field("max_us="),
            field("due_p99_us=")
        );
    } else {
        // Closed loop: mean latency = requests in flight / rate (Little's law).
        note += &format!(
            " lat_mean~{:.0}us (in flight/rate)",
            f64::from(count) / req_s * 1e6
        );
    }
    let overrun = exit.wall.as_secs_f64() - secs as f64;
    if overrun > 0.5 {
        note += &format!(" [client ran {overrun:.2}s past its {secs}s]");
    }
    if errors > 0.0 {
        note += " [CLIENT ERRORS]";
    }
    if !cli.err.is_empty() {
        note += &format!(" [stderr: {}]", cli.err.join(" | "));
    }
    note += &format!("; server cpu {:.2}s", sexit.cpu_s);
    let mut m = measured(req_s, requests, &exit, note);
    m.sample.errors = errors;
    if rate.is_some() {
        // The same columns as connperf's paced rows: p99 from the due time, and from the send.
        m.sample.p99_us = field("due_p99_us=");
        m.extra("send_p99_us", field("p99_us="), 0);
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// neper (github.com/google/neper), when installed: not packaged by Debian, so only where the
// user built it. `NEPER_DIR` names the directory with `tcp_rr` and `tcp_crr`; else PATH.

/// neper's `tcp_rr` and `tcp_crr`.
struct Neper {
    rr: PathBuf,
    crr: PathBuf,
}

fn find_neper() -> Option<Neper> {
    if let Some(dir) = std::env::var_os("NEPER_DIR") {
        let dir = PathBuf::from(dir);
        let (rr, crr) = (dir.join("tcp_rr"), dir.join("tcp_crr"));
        return (rr.is_file() && crr.is_file()).then_some(Neper { rr, crr });
    }
    Some(Neper {
        rr: which("tcp_rr")?,
        crr: which("tcp_crr")?,
    })
}

/// One neper run, neper against neper as its README runs it: `tcp_rr` (`crr` false) or
/// `tcp_crr` with `flows` flows on `threads` threads, 64 B each way, `BENCH_SECS`; `pin`
/// puts server and client on cores 1 and 0 with taskset (rr1). req/s is neper's
/// `throughput=`; client CPU comes from wait4 like every other row.
fn neper_run(
    env: &Env,
    neper: &Neper,
    crr: bool,
    flows: u32,
    threads: u32,
    pin: bool,
) -> Res<Measured> {
    let bin = if crr { &neper.crr } else { &neper.rr };
    let name = if crr { "tcp_crr" } else { "tcp_rr" };
    let (ctrl, data) = (free_port(false)?, free_port(false)?);
    // neper writes a log file per process where it runs (even with --nolog): a directory of
    // its own, removed afterwards.
    let dir = tempfile::Builder::new()
        .prefix("connperf-loopback-neper-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp directory: {e}"))?;
    neper_in(
        env,
        bin,
        name,
        dir.path(),
        [ctrl, data],
        [flows, threads],
        pin,
    )
}

fn neper_in(
    env: &Env,
    bin: &Path,
    name: &str,
    dir: &Path,
    [ctrl, data]: [u16; 2],
    [flows, threads]: [u32; 2],
    pin: bool,
) -> Res<Measured> {
    let secs = env.secs;
    let common = s(&[
        "-F",
        &flows.to_string(),
        "-T",
        &threads.to_string(),
        "-l",
        &secs.to_string(),
        "-Q",
        &MSG_BYTES.to_string(),
        "-R",
        &MSG_BYTES.to_string(),
        "-C",
        &ctrl.to_string(),
        "-P",
        &data.to_string(),
    ]);
    let taskset = |core: &str| -> Vec<String> {
        if pin {
            s(&["taskset", "-c", core])
        } else {
            Vec::new()
        }
    };
    let mut argv = taskset("1");
    argv.push(bin.display().to_string());
    argv.extend(common.iter().cloned());
    let mut srv = Proc::spawn_in(&format!("neper {name} server"), &argv, Some(dir))?;
    // Ready when its control port listens (read from /proc/net/tcp: a probe connection would
    // count as neper's client).
    srv.wait_ready(&format!("listening on {ctrl}"), || listening(ctrl))?;
    let mut argv = taskset("0");
    argv.push(bin.display().to_string());
    argv.extend(s(&["-c", "-H", "127.0.0.1"]));
    argv.extend(common);
    let mut cli = Proc::spawn_in(&format!("neper {name}"), &argv, Some(dir))?;
    let (exit, killed) =
        cli.wait_or_stop(Instant::now() + Duration::from_secs(secs) + CLIENT_SLACK);
    // The server ends with the run; stop it if it has not.
    let sexit = srv.stop();
    if killed || !exit.success() {
        return Err(peer_failed(
            &format!("neper {name}"),
            killed,
            &exit,
            &argv,
            &cli,
        ));
    }
    let field = |k: &str| -> f64 {
        cli.out
            .iter()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(f64::NAN)
    };
    let (req_s, n) = (field("throughput="), field("num_transactions="));
    if req_s.is_nan() || req_s <= 0.0 {
        return Err(format!("neper {name} printed no throughput{}", cli.tail()));
    }
    let note = format!(
        "num_transactions={n} throughput={req_s} latency_mean={:.0}us proc_cpu={:.2}s (user {:.2} sys {:.2}) wall={:.2}s; server cpu {:.2}s",
        field("latency_mean=") * 1e6,
        exit.cpu_s,
        exit.utime_s,
        exit.stime_s,
        exit.wall.as_secs_f64(),
        sexit.cpu_s
    );
    Ok(measured(req_s, n, &exit, note))
}

/// Does a socket listen on 127.0.0.1:port (or any address) now? From /proc/net/tcp.
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // f[1]: local address, f[3]: state (0A: LISTEN).
                f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
            })
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// mem19k: resident memory per connection.

/// Connections in the `mem19k` run.
const MEM_CONNS: u32 = 19_000;

/// VmRSS of a running child, KiB.
fn vm_rss_kib(p: &Proc) -> Res<f64> {
    // Only while unreaped: a reaped pid may belong to someone else by now.
    let ended = || {
        format!(
            "{} (pid {}) ended before its RSS sample{}",
            p.label,
            p.pid,
            p.tail()
        )
    };
    if p.exit.is_some() {
        return Err(ended());
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid))
        .map_err(|e| format!("{}: cannot read /proc/{}/status: {e}", p.label, p.pid))?;
    // A zombie has no VmRSS line.
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(ended)
}

/// System-wide TCP sockets in use and TCP buffer memory in KiB, from /proc/net/sockstat.
fn sockstat_tcp() -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let page_kib = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / 1024.0;
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("TCP:")) else {
        return (f64::NAN, f64::NAN);
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| -> f64 {
        f.iter()
            .position(|w| *w == k)
            .and_then(|i| f.get(i + 1)?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (get("inuse"), get("mem") * page_kib)
}

/// One `mem19k` measurement: idle RSS of both sides, then RSS 15 s into 19,000 connections.
fn mem19k_run(env: &Env) -> Res<Measured> {
    let (srv, port) = connperf_server(env, &["-l", "127.0.0.1:0", "--workers", "1", "-p", "tcp"])?;
    thread::sleep(Duration::from_millis(300));
    let srv_idle = vm_rss_kib(&srv)?;
    // The idle client: one connection, sampled 2.5 s into a 3 s run (histograms, buffers and
    // threads all set up by then).
    let base = [
        "-c",
        "1",
        "-r",
        "1",
        "--warmup",
        "1s",
        "-d",
        "2s",
        "--workers",
        "1",
        "--timeout",
        "5s",
    ];
    let (mut b, bargv) = spawn_client(env, &[], &base, port, 1)?;
    b.drain(b.started + Duration::from_millis(2500));
    let cli_idle = vm_rss_kib(&b)?;
    let ended = wait_client(&mut b, 3.0);
    let baseline = client_result(&b, &bargv, ended, 3.0, Ok("server still up".into()))
        .map_err(|e| format!("1-connection baseline run: {e}"))?;
    drop(b);
    let (inuse0, kern0) = sockstat_tcp();
    let conns = MEM_CONNS.to_string();
    let args = [
        "-c",
        conns.as_str(),
        "-r",
        "1",
        "--warmup",
        "10s",
        "-d",
        "10s",
        "--workers",
        "1",
        "--timeout",
        "5s",
    ];
    let (mut cli, argv) = spawn_client(env, &[], &args, port, 1)?;
    cli.drain(cli.started + Duration::from_secs(15));
    let cli_rss = vm_rss_kib(&cli)?;
    let srv_rss = vm_rss_kib(&srv)?;
    let (inuse1, kern1) = sockstat_tcp();
    let ended = wait_client(&mut cli, 20.0);
    let server_note = stop_connperf_server(srv);
    let mut m = client_result(&cli, &argv, ended, 20.0, server_note)?;
    let n = MEM_CONNS as f64;
    m.sample.note += &format!(
        "; baseline (1 conn) max_rss={} KiB cpu={:.2}s; sockstat TCP inuse {inuse0}->{inuse1}, mem {kern0:.0}->{kern1:.0} KiB (system-wide)",
        baseline.sample.rss_kib, baseline.sample.cpu_s
    );
    m.extra("cli_idle_kib", cli_idle, 0);
    m.extra("cli_19k_kib", cli_rss, 0);
    m.extra("cli_kib_per_conn", (cli_rss - cli_idle) / n, 3);
    m.extra("srv_idle_kib", srv_idle, 0);
    m.extra("srv_19k_kib", srv_rss, 0);
    m.extra("srv_kib_per_conn", (srv_rss - srv_idle) / n, 3);
    m.extra("kern_tcp_kib_per_conn", (kern1 - kern0) / n, 3);
    m.extra("tcp_inuse_delta", inuse1 - inuse0, 0);
    Ok(paced(m, n))
}

// ---------------------------------------------------------------------------------------------
// syscalls: strace -c on both sides.

/// A client's and a server's output file, `client.EXT` and `server.EXT` in a temp directory
/// that is removed when dropped, with their paths as strings for a command line.
fn client_server_files(ext: &str) -> Res<(tempfile::TempDir, String, String)> {
    let dir = tempfile::Builder::new()
        .prefix("connperf-loopback-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp directory: {e}"))?;
    let path = |side: &str| {
        dir.path()
            .join(format!("{side}.{ext}"))
            .display()
            .to_string()
    };
    let (c, s) = (path("client"), path("server"));
    Ok((dir, c, s))
}

/// Wait until every thread of `target` is traced by `tracer`.
fn wait_traced(target: &Proc, tracer: &mut Proc) -> Res<()> {
    let want = tracer.pid.to_string();
    let task = format!("/proc/{}/task", target.pid);
    tracer.wait_ready(&format!("attached to pid {}", target.pid), || {
        std::fs::read_dir(&task)
            .map(|d| {
                let mut n = 0;
                let all = d.flatten().all(|t| {
                    n += 1;
                    std::fs::read_to_string(t.path().join("status")).is_ok_and(|st| {
                        st.lines()
                            .find_map(|l| l.strip_prefix("TracerPid:"))
                            .is_some_and(|v| v.trim() == want)
                    })
                });
                all && n > 0
            })
            .unwrap_or(false)
    })
}

/// The rows of an `strace -c` summary: (syscall, calls), the total row left out.
fn strace_counts(path: &Path) -> Res<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for l in text.lines() {
        // "% time  seconds  usecs/call  calls  errors  syscall"; errors may be blank.
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<f64>().is_err() || f[f.len() - 1] == "total" {
            continue;
        }
        let calls = f[3]
            .parse::<f64>()
            .map_err(|_| format!("{}: cannot read the calls in {l:?}", path.display()))?;
        rows.push((f[f.len() - 1].to_string(), calls));
    }
    if rows.is_empty() {
        return Err(format!(
            "{} holds no strace summary: {:?}",
            path.display(),
            text.chars().take(300).collect::<String>()
        ));
    }
    Ok(rows)
}

/// Per request: all calls but futex, the read/write/epoll_wait family alone, and a top-6 text.
fn per_request(rows: &[(String, f64)], requests: f64) -> (f64, f64, String) {
    const IO: [&str; 13] = [
        "read",
        "readv",
        "recvfrom",
        "recvmsg",
        "recvmmsg",
        "write",
        "writev",
        "sendto",
        "sendmsg",
        "sendmmsg",
        "epoll_wait",
        "epoll_pwait",
        "epoll_pwait2",
    ];
    let sum = |f: &dyn Fn(&str) -> bool| -> f64 {
        rows.iter()
            .filter(|(n, _)| f(n))
            .map(|(_, c)| c)
            .sum::<f64>()
    };
    let all = sum(&|n| n != "futex") / requests;
    let io = sum(&|n| IO.contains(&n)) / requests;
    let mut top: Vec<&(String, f64)> = rows.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top = top
        .iter()
        .take(6)
        .map(|(n, c)| format!("{n}={:.3}", c / requests))
        .collect::<Vec<_>>()
        .join(" ");
    (all, io, top)
}

/// One `syscalls` measurement: 1,000 connections closed loop for 2 s, both sides under strace.
fn syscalls_run(env: &Env, strace: &Path) -> Res<Measured> {
    let (_files, cfile, sfile) = client_server_files("strace")?;
    let st = strace.display().to_string();
    let (srv, port) = connperf_server(env, &["-l", "127.0.0.1:0", "--workers", "2", "-p", "tcp"])?;
    let spid = srv.pid.to_string();
    let mut tracer = Proc::spawn(
        "strace -p (server)",
        &s(&[&st, "-f", "-c", "-o", &sfile, "-p", &spid]),
    )?;
    wait_traced(&srv, &mut tracer)?;
    let prefix = s(&[&st, "-f", "-c", "-o", &cfile, "--"]);
    let args = ["-c", "1000", "-r", "0", "--workers", "2", "-d", "2s"];
    let (mut cli, argv) = spawn_client(env, &prefix, &args, port, 1)?;
    let ended = wait_client(&mut cli, 2.0);
    // SIGTERM: strace detaches from the server and writes its summary.
    let texit = tracer.stop();
    let server_note = stop_connperf_server(srv);
    let mut m = client_result(&cli, &argv, ended, 2.0, server_note)?;
    let crows = strace_counts(Path::new(&cfile))?;
    let srows = strace_counts(Path::new(&sfile))
        .map_err(|e| format!("server strace ({}): {e}{}", texit.describe(), tracer.tail()))?;
    let (c_all, c_io, c_top) = per_request(&crows, m.requests);
    let (s_all, s_io, s_top) = per_request(&srows, m.requests);
    m.sample.note +=
        &format!("; per request: client {c_top}; server {s_top} (client cpu includes strace's)");
    m.extra("requests", m.requests, 0);
    m.extra("cli_sys_per_req", c_all, 2);
    m.extra("cli_io_per_req", c_io, 2);
    m.extra("srv_sys_per_req", s_all, 2);
    m.extra("srv_io_per_req", s_io, 2);
    // strace slows both sides ~15x, so 1,000 connection setups and idle polls weigh on a few
    // thousand requests. The kernel's own syscall tracepoint counts at full speed.
    match which("perf").map(|p| syscalls_full_speed(env, &p)) {
        Some(Ok((c, s))) => {
            m.extra("cli_sys_per_req_full_speed", c, 2);
            m.extra("srv_sys_per_req_full_speed", s, 2);
        }
        Some(Err(e)) => m.sample.note += &format!("; full-speed count failed: {e}"),
        None => m.sample.note += "; perf not found: no full-speed count",
    }
    Ok(m)
}

/// The first field of `perf stat -x,` output for `raw_syscalls:sys_enter`.
fn perf_count(path: &Path) -> Res<f64> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next()?.trim().parse().ok())
        .ok_or_else(|| format!("{} holds no syscall count: {text:?}", path.display()))
}

/// The syscalls scenario at full speed: every syscall of both processes counted by
/// `perf stat -e raw_syscalls:sys_enter` (a kernel tracepoint: no stop per call, unlike
/// strace). Returns (client, server) syscalls per request, everything included.
fn syscalls_full_speed(env: &Env, perf: &Path) -> Res<(f64, f64)> {
    let (_files, cfile, sfile) = client_server_files("perf")?;
    let pf = perf.display().to_string();
    let ev = "raw_syscalls:sys_enter";
    let (srv, port) = connperf_server(env, &["-l", "127.0.0.1:0", "--workers", "2", "-p", "tcp"])?;
    let spid = srv.pid.to_string();
    // Counts the server for as long as `sleep` runs: the client's run and its start and end.
    let mut counter = Proc::spawn(
        "perf stat -p (server)",
        &s(&[
            &pf, "stat", "-x,", "-e", ev, "-o", &sfile, "-p", &spid, "--", "sleep", "3",
        ]),
    )?;
    let prefix = s(&[&pf, "stat", "-x,", "-e", ev, "-o", &cfile, "--"]);
    let args = ["-c", "1000", "-r", "0", "--workers", "2", "-d", "2s"];
    let (mut cli, argv) = spawn_client(env, &prefix, &args, port, 1)?;
    let ended = wait_client(&mut cli, 2.0);
    let counted = counter.wait_or_stop(Instant::now() + Duration::from_secs(5));
    let server_note = stop_connperf_server(srv);
    let m = client_result(&cli, &argv, ended, 2.0, server_note)?;
    if counted.1 {
        return Err(format!("perf stat -p did not end{}", counter.tail()));
    }
    let requests = m.requests.max(1.0);
    Ok((
        perf_count(Path::new(&cfile))? / requests,
        perf_count(Path::new(&sfile))? / requests,
    ))
}

fn strip_ansi(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    let mut it = l.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// punctual: does a paced send leave when it is due, and at what CPU?

/// Seconds per `punctual` run: BENCH_SECS, at most this (three runs plus sockperf per round).
const PUNCTUAL_SECS: u64 = 3;

/// The `punctual` rows: connperf with default flags at three paced loads against a 1-worker
/// `connperf serve`, then `sockperf under-load` at 1,000 msg/s if sockperf is here.
fn punctual_tools<'a>(env: &'a Env, sockperf: Option<&'a Path>) -> Vec<(&'static str, Runner<'a>)> {
    let mut tools: Vec<(&'static str, Runner<'a>)> = Vec::new();
    for (tool, c, r) in [
        ("c10r100", "10", "100"),
        ("c10r1000", "10", "1000"),
        ("c1r1000", "1", "1000"),
    ] {
        tools.push((
            tool,
            Box::new(move || punctual_run(env, &["-c", c, "-r", r])),
        ));
    }
    if let Some(sp) = sockperf {
        tools.push(("sockperf", Box::new(move || sockperf_under_load(env, sp))));
    }
    tools
}

/// One connperf run for `punctual`: latency from the intended send time and from the actual
/// send (service time), their gap (how late sends left), and the generator's CPU.
fn punctual_run(env: &Env, connect: &[&str]) -> Res<Measured> {
    let (srv, port) = connperf_server(env, &["-l", "127.0.0.1:0", "--workers", "1"])?;
    let secs = env.secs.min(PUNCTUAL_SECS);
    let d = format!("{secs}s");
    let mut args = connect.to_vec();
    args.extend(["-d", d.as_str()]);
    let (mut cli, argv) = spawn_client(env, &[], &args, port, 1)?;
    let ended = wait_client(&mut cli, secs as f64);
    let server_note = stop_connperf_server(srv);
    let mut m = client_result(&cli, &argv, ended, secs as f64, server_note)?;
    let (intended, service) = (m.num("latency_50p_us"), m.num("service_50p_us"));
    m.extra("p50_us", intended, 0);
    m.extra("service_p50_us", service, 0);
    m.extra("gap_us", intended - service, 0);
    let cpu_pct = m.num("generator_cpu_sec") / m.num("elapsed_sec") * 100.0;
    m.extra("gen_cpu_pct", cpu_pct, 1);
    Ok(m)
}

/// `sockperf under-load` over TCP at 1,000 msg/s, every message answered, full round trips,
/// client and server pinned as in rr1. sockperf waits for each send time by polling the clock;
/// its latency is from the actual send. CPU is the client's, over its run and warm-up.
fn sockperf_under_load(env: &Env, sockperf: &Path) -> Res<Measured> {
    let (mut srv, port) = start_sockperf_server(sockperf, true)?;
    let ps = port.to_string();
    let sp = sockperf.display().to_string();
    let secs = env.secs.min(PUNCTUAL_SECS).to_string();
    let argv = s(&[
        "taskset",
        "-c",
        "0",
        &sp,
        "under-load",
        "--tcp",
        "-i",
        "127.0.0.1",
        "-p",
        &ps,
        "-t",
        &secs,
        "-m",
        "64",
        "--mps",
        "1000",
        "--reply-every",
        "1",
        "--full-rtt",
    ]);
    let mut cli = Proc::spawn("sockperf under-load", &argv)?;
    let (exit, killed) = wait_client(&mut cli, env.secs.min(PUNCTUAL_SECS) as f64);
    srv.stop();
    if killed || !exit.success() {
        return Err(peer_failed(
            "sockperf under-load",
            killed,
            &exit,
            &argv,
            &cli,
        ));
    }
    let text = sockperf_text(&cli);
    // sockperf: ====> avg-rtt=61.234 (std-dev=12.345)
    // sockperf: ---> percentile 50.000 =   57.099
    // sockperf: [Total Run] RunTime=3.000 sec; Warm up time=400 msec; SentMessages=3001; ReceivedMessages=3001
    let number_after = |needle: &str| -> f64 {
        text.iter()
            .find_map(|l| {
                let rest = l[l.find(needle)? + needle.len()..].trim_start();
                let v: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                v.parse().ok()
            })
            .unwrap_or(f64::NAN)
    };
    let (avg, p50, p99) = (
        number_after("avg-rtt="),
        number_after("percentile 50.000 ="),
        number_after("percentile 99.000 ="),
    );
    let (run_secs, received) = (number_after("RunTime="), number_after("ReceivedMessages="));
    if !(received > 0.0 && run_secs > 0.0) {
        return Err(format!(
            "sockperf under-load exchanged no messages{}",
            cli.tail()
        ));
    }
    let note = format!(
        "received={received} in {run_secs}s proc_cpu={:.2}s wall={:.2}s avg_rtt={avg}us p50={p50}us p99={p99}us",
        exit.cpu_s,
        exit.wall.as_secs_f64()
    );
    let mut m = measured(received / run_secs, received, &exit, note);
    m.sample.p99_us = p99;
    m.extra("p50_us", p50, 0);
    m.extra("avg_us", avg, 0);
    // Over its run and warm-up ("Warm up time=400 msec"), not the seconds it takes to exit.
    let busy_secs = run_secs + number_after("Warm up time=") / 1000.0;
    m.extra("cpu_pct", exit.cpu_s / busy_secs * 100.0, 1);
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// Scenarios, medians, the table.

#[derive(Default)]
struct Row {
    req_s: Vec<f64>,
    cpu_s: Vec<f64>,
    per_cpu: Vec<f64>,
    rss: Vec<f64>,
    errors: Vec<f64>,
    p99_us: Vec<f64>,
    /// (key, precision, values) in first-seen order.
    extras: Vec<(&'static str, usize, Vec<f64>)>,
    failures: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

type Runner<'a> = Box<dyn Fn() -> Res<Measured> + 'a>;

/// `x` with `prec` decimals, or "-" when it is not a number.
fn fmt(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".into()
    }
}

fn run_scenario(name: &str, tools: Vec<(&str, Runner)>, runs: usize) -> Vec<(String, Row)> {
    let mut rows: Vec<(String, Row)> = tools
        .iter()
        .map(|(t, _)| (t.to_string(), Row::default()))
        .collect();
    for run in 1..=runs {
        // Alternate the tools run by run, so drifting load on the machine hits both alike.
        for (i, (tool, f)) in tools.iter().enumerate() {
            let row = &mut rows[i].1;
            match f() {
                Ok(m) => {
                    let per_cpu = m.requests / m.sample.cpu_s;
                    let extras: String = m
                        .extras
                        .iter()
                        .map(|x| format!(" {}={}", x.key, fmt(x.val, x.prec)))
                        .collect();
                    println!(
                        "  {name:<11} {tool:<8} run {run}/{runs}: {:>10.0} req/s  cpu {:.2}s  {:>8.0} req/cpu-s  rss {:.0} KiB  errors {}  p99 {} us{extras} | {}",
                        m.sample.req_s,
                        m.sample.cpu_s,
                        per_cpu,
                        m.sample.rss_kib,
                        fmt(m.sample.errors, 0),
                        fmt(m.sample.p99_us, 0),
                        m.sample.note
                    );
                    row.req_s.push(m.sample.req_s);
                    row.cpu_s.push(m.sample.cpu_s);
                    row.per_cpu.push(per_cpu);
                    row.rss.push(m.sample.rss_kib);
                    row.errors.push(m.sample.errors);
                    row.p99_us.push(m.sample.p99_us);
                    for x in &m.extras {
                        match row.extras.iter_mut().find(|(k, _, _)| *k == x.key) {
                            Some((_, _, v)) => v.push(x.val),
                            None => row.extras.push((x.key, x.prec, vec![x.val])),
                        }
                    }
                }
                Err(e) => {
                    println!("  {name:<11} {tool:<8} run {run}/{runs}: FAILED: {e}");
                    row.failures.push(e);
                }
            }
        }
    }
    rows
}

/// Why a scenario has no peer row (or, with `c_peer_missing`, why the c-epoll one is missing).
fn no_peer(name: &str, c_peer_missing: Option<&str>) -> Option<String> {
    let c_missing =
        |base: &str| c_peer_missing.map(|why| format!("{base}; c-epoll peer skipped: {why}"));
    Some(match name {
        "rr100" | "rr1000" => {
            return c_missing("no sockperf peer (sockperf ping-pong has no multi-connection mode)")
        }
        "eph" => return c_missing("no sockperf peer (sockperf has no connect-per-request mode)"),
        "rr1000-spin" => {
            "no peer (sockperf ping-pong has no multi-connection mode; c-epoll does not spin: its floor is rr1000's row)".into()
        }
        "paced50k" => {
            return c_missing("no sockperf peer (sockperf paces one socket, not 100 connections); tcpkali is not installed: c-epoll paces like it")
        }
        "udp-multi" => {
            "no peer (sockperf ping-pong: one socket; no multi-worker, multi-target UDP pacing)".into()
        }
        "mem19k" => "connperf only (memory per connection; 1 run: BENCH_RUNS does not apply)".into(),
        "syscalls" => "connperf only (1 run under strace: req/s and cpu are strace-bound)".into(),
        _ => return None,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-')) // cargo bench appends --bench
        .flat_map(|a| a.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|a| !a.is_empty())
        .collect();
    for w in &wanted {
        if !SCENARIOS.contains(&w.as_str()) {
            eprintln!(
                "loopback: unknown scenario {w:?}; choose from {}",
                SCENARIOS.join(", ")
            );
            std::process::exit(2);
        }
    }
    let selected: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s))
        .collect();
    let setup = || -> Res<Env> {
        let runs = env_num("BENCH_RUNS", 3, 1)? as usize;
        let secs = env_num("BENCH_SECS", 5, 1)?;
        Ok(Env {
            bin: find_connperf()?,
            runs,
            secs,
        })
    };
    let env = match setup() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loopback: {e}");
            std::process::exit(1);
        }
    };
    let sockperf = which("sockperf");
    let have_taskset = which("taskset").is_some();
    let t0 = Instant::now();
    // The c-epoll peer, compiled once if a scenario that runs it is selected. Err: why not.
    let c_peer_build: Result<CPeer, String> =
        if selected.iter().any(|n| C_PEER_SCENARIOS.contains(n)) {
            match which("cc") {
                Some(cc) => build_c_peer(&cc).map_err(|e| format!("build failed: {e}")),
                None => Err("no C compiler (cc) found".into()),
            }
        } else {
            Err("not needed".into())
        };
    println!(
        "loopback: connperf={} runs={} secs={} cores={} sockperf={} c-epoll={} loadavg=[{}]",
        env.bin.display(),
        env.runs,
        env.secs,
        thread::available_parallelism().map_or(0, |n| n.get()),
        sockperf
            .as_ref()
            .map_or("not found (peer rows skipped)".into(), |p| p
                .display()
                .to_string()),
        match &c_peer_build {
            Ok(p) => p.bin.display().to_string(),
            Err(e) => format!("{e} (peer rows skipped)"),
        },
        loadavg()
    );
    let c_peer_missing = c_peer_build.as_ref().err().map(String::as_str);
    let c_peer = c_peer_build.as_ref().ok();
    if sockperf.is_some() && !have_taskset {
        println!("loopback: taskset not found: sockperf rows skipped");
    }
    let sockperf = sockperf.filter(|_| have_taskset);

    let strace = which("strace");
    let neper = find_neper();
    println!(
        "loopback: neper={}",
        neper.as_ref().map_or(
            "not found (set NEPER_DIR to a neper build, or put tcp_rr and tcp_crr on PATH)".into(),
            |n| n.rr.display().to_string()
        )
    );
    let neper = neper.as_ref();
    let mut table: BTreeMap<usize, Vec<(String, String, Row)>> = BTreeMap::new();
    let mut notes = Vec::new();
    let e = &env;
    // Server and client flags per scenario, for the plain `connperf_run` ones.
    const RR1_SERVE: [&str; 7] = ["-l", "127.0.0.1:0", "--workers", "1", "--cpus", "1", "-p"];
    const RR1_CONNECT: [&str; 8] = ["-c", "1", "-r", "0", "--workers", "1", "--cpus", "0"];
    const TCP2_SERVE: [&str; 6] = ["-l", "127.0.0.1:0", "--workers", "2", "-p", "tcp"];
    fn with<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
        a.iter().chain(b).copied().collect()
    }
    for (si, &name) in selected.iter().enumerate() {
        println!("{name}: loadavg=[{}]", loadavg());
        let mut tools: Vec<(&str, Runner)> = Vec::new();
        let mut runs = env.runs;
        match name {
            "rr1" => {
                tools.push((
                    "connperf",
                    Box::new(move || connperf_run(e, &with(&RR1_SERVE, &["tcp"]), &RR1_CONNECT, 1)),
                ));
                if let Some(sp) = &sockperf {
                    tools.push(("sockperf", Box::new(move || sockperf_run(e, sp, true))));
                }
                if let (Some(np), true) = (neper, have_taskset) {
                    tools.push((
                        "neper",
                        Box::new(move || neper_run(e, np, false, 1, 1, true)),
                    ));
                }
            }
            "rr1-spin" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &with(&RR1_SERVE, &["tcp", "--spin"]),
                            &with(&RR1_CONNECT, &["--spin"]),
                            1,
                        )
                    }),
                ));
                // The peer is rr1's (default) sockperf row; run it here only without rr1.
                if !selected.contains(&"rr1") {
                    if let Some(sp) = &sockperf {
                        tools.push(("sockperf", Box::new(move || sockperf_run(e, sp, true))));
                    }
                }
            }
            "rr100" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &TCP2_SERVE,
                            &["-c", "100", "-r", "0", "--workers", "2"],
                            1,
                        )
                    }),
                ));
                if let Some(cp) = c_peer {
                    tools.push((
                        "c-epoll",
                        Box::new(move || c_peer_run(e, cp, "rr", 100, None)),
                    ));
                }
            }
            "rr1000" | "rr1000-spin" => {
                let spin: &[&str] = if name == "rr1000-spin" {
                    &["--spin"]
                } else {
                    &[]
                };
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &with(&TCP2_SERVE, spin),
                            &with(&["-c", "1000", "-r", "0", "--workers", "2"], spin),
                            1,
                        )
                    }),
                ));
                if let (Some(cp), "rr1000") = (c_peer, name) {
                    tools.push((
                        "c-epoll",
                        Box::new(move || c_peer_run(e, cp, "rr", 1000, None)),
                    ));
                }
                if let (Some(np), "rr1000") = (neper, name) {
                    tools.push((
                        "neper",
                        Box::new(move || neper_run(e, np, false, 1000, 2, false)),
                    ));
                }
            }
            "udp1" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &with(&RR1_SERVE, &["udp"]),
                            &[
                                "-p",
                                "udp",
                                "-c",
                                "1",
                                "-r",
                                "0",
                                "--workers",
                                "1",
                                "--cpus",
                                "0",
                            ],
                            1,
                        )
                    }),
                ));
                if let Some(sp) = &sockperf {
                    tools.push(("sockperf", Box::new(move || sockperf_run(e, sp, false))));
                }
            }
            "udp-multi" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        let mut m = connperf_run(
                            e,
                            &["-l", "127.0.0.1:0", "--workers", "2", "-p", "udp"],
                            &[
                                "-p",
                                "udp",
                                "-r",
                                "100000",
                                "--workers",
                                "2",
                                "--merge-results-each-host",
                            ],
                            2,
                        )?;
                        let (count, lost) = (m.requests, m.num("lost"));
                        m.extra("lost", lost, 0);
                        m.extra("lost_pct", lost / (count + lost) * 100.0, 2);
                        Ok(paced(m, 200_000.0))
                    }),
                ));
            }
            "eph" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &TCP2_SERVE,
                            &["-f", "ephemeral", "-r", "0", "-c", "100", "--workers", "2"],
                            1,
                        )
                    }),
                ));
                if let Some(cp) = c_peer {
                    tools.push((
                        "c-epoll",
                        Box::new(move || c_peer_run(e, cp, "crr", 100, None)),
                    ));
                }
                if let Some(np) = neper {
                    tools.push((
                        "neper",
                        Box::new(move || neper_run(e, np, true, 100, 2, false)),
                    ));
                }
            }
            "paced50k" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &TCP2_SERVE,
                            &["-c", "100", "-r", "500", "--workers", "2"],
                            1,
                        )
                        .map(|mut m| {
                            let send_p99 = m.num("service_99p_us");
                            m.extra("send_p99_us", send_p99, 0);
                            paced(m, 50_000.0)
                        })
                    }),
                ));
                if let Some(cp) = c_peer {
                    tools.push((
                        "c-epoll",
                        Box::new(move || {
                            c_peer_run(e, cp, "paced", 100, Some(500)).map(|mut m| {
                                let rate = m.sample.req_s;
                                m.extra("target_per_s", 50_000.0, 0);
                                m.extra("achieved_pct", rate / 50_000.0 * 100.0, 1);
                                m
                            })
                        }),
                    ));
                }
            }
            "mem19k" => {
                runs = 1;
                tools.push(("connperf", Box::new(move || mem19k_run(e))));
            }
            "syscalls" => {
                runs = 1;
                let Some(st) = &strace else {
                    println!("  syscalls: strace not found: skipped");
                    notes.push("syscalls: SKIPPED: strace not found".to_string());
                    continue;
                };
                tools.push(("connperf", Box::new(move || syscalls_run(e, st))));
            }
            "punctual" => tools = punctual_tools(e, sockperf.as_deref()),
            _ => unreachable!("checked above"),
        }
        let rows = run_scenario(name, tools, runs);
        table.insert(
            si,
            rows.into_iter()
                .map(|(t, r)| (name.to_string(), t, r))
                .collect(),
        );
    }

    println!();
    println!(
        "median of {} runs, {} s each (mem19k, syscalls: 1 run; each column its own median; eph req/s = connections/s; ratio = connperf/peer req/s, the peer being sockperf (rr1, udp1) or c-epoll (rr100, rr1000, eph, paced50k); rr1-spin's peer is rr1's sockperf)",
        env.runs, env.secs
    );
    println!(
        "{:<12} {:<8} {:>10} {:>12} {:>13} {:>8} {:>6} {:>9} {:>6}  scenario-specific (medians)",
        "scenario",
        "tool",
        "req/s",
        "client_cpu_s",
        "req_per_cpu_s",
        "rss_kib",
        "errors",
        "p99_us",
        "ratio"
    );
    let mut failed = false;
    // The peer's (sockperf or c-epoll: whatever is not connperf) name and medians (req/s, req
    // per CPU-s) in each scenario that ran one.
    // Several peers in one scenario: the ratio column is against the first (sockperf or
    // c-epoll), the notes give every one.
    let mut peers: BTreeMap<&str, Vec<(&str, f64, f64)>> = BTreeMap::new();
    for (sc, t, r) in table.values().flatten().filter(|(_, t, _)| t != "connperf") {
        peers.entry(sc.as_str()).or_default().push((
            t.as_str(),
            median(&r.req_s),
            median(&r.per_cpu),
        ));
    }
    for rows in table.values() {
        for (scenario, tool, r) in rows {
            let all = peers
                .get(scenario.as_str())
                .or_else(|| (scenario == "rr1-spin").then(|| peers.get("rr1")).flatten());
            let peer = all.and_then(|v| v.first()).copied();
            let req = median(&r.req_s);
            let ratio = match (tool.as_str(), peer) {
                ("connperf", Some((_, p, _))) if p > 0.0 => fmt(req / p, 2),
                _ => "-".into(),
            };
            let extras: Vec<String> = r
                .extras
                .iter()
                .map(|(k, prec, v)| format!("{k}={}", fmt(median(v), *prec)))
                .collect();
            println!(
                "{:<12} {:<8} {:>10} {:>12} {:>13} {:>8} {:>6} {:>9} {:>6}  {}",
                scenario,
                tool,
                fmt(req, 0),
                fmt(median(&r.cpu_s), 2),
                fmt(median(&r.per_cpu), 0),
                fmt(median(&r.rss), 0),
                fmt(median(&r.errors), 0),
                fmt(median(&r.p99_us), 0),
                ratio,
                extras.join(" ")
            );
            let worst = |v: &[f64]| {
                v.iter()
                    .copied()
                    .filter(|x| x.is_finite())
                    .fold(0.0, f64::max)
            };
            let errs = worst(&r.errors);
            if errs > 0.0 {
                let who = if tool == "connperf" {
                    String::new()
                } else {
                    format!(" {tool}")
                };
                notes.push(format!(
                    "{scenario}{who}: client errors in some run (max {errs:.0})"
                ));
            }
            if tool == "connperf" {
                for &(pt, pr, pc) in all.into_iter().flatten() {
                    if pc > 0.0 && pr > 0.0 {
                        notes.push(format!(
                            "{scenario}: connperf/{pt} req/s = {}, req_per_cpu_s = {}",
                            fmt(req / pr, 2),
                            fmt(median(&r.per_cpu) / pc, 2)
                        ));
                    }
                }
                let behind: Vec<String> = r
                    .extras
                    .iter()
                    .filter(|(k, _, _)| matches!(*k, "lost" | "late_starts" | "not_started"))
                    .map(|(k, _, v)| (k, worst(v)))
                    .filter(|(_, w)| *w > 0.0)
                    .map(|(k, w)| format!("{k} up to {w:.0}"))
                    .collect();
                if !behind.is_empty() {
                    notes.push(format!(
                        "{scenario}: behind schedule or lost: {} (worst run)",
                        behind.join(", ")
                    ));
                }
            }
            if !r.failures.is_empty() {
                failed = true;
                notes.push(format!(
                    "{scenario} {tool}: {} of {} runs FAILED",
                    r.failures.len(),
                    r.failures.len() + r.req_s.len()
                ));
            }
        }
        if let Some(why) = rows
            .first()
            .and_then(|(sc, _, _)| no_peer(sc, c_peer_missing).map(|w| (sc, w)))
        {
            notes.push(format!("{}: {}", why.0, why.1));
        }
    }
    for n in notes {
        println!("# {n}");
    }
    println!(
        "# total {:.0} s, loadavg now [{}]",
        t0.elapsed().as_secs_f64(),
        loadavg()
    );
    // exit() runs no destructors: remove the peer's temp directory first.
    drop(c_peer_build);
    if failed {
        std::process::exit(1);
    }
}
