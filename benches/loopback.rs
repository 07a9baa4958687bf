//! Loopback benchmark: the release `connperf` binary against itself, and beside `sockperf`
//! where sockperf has a matching mode.
//!
//! ```text
//! cargo bench --bench loopback                 # every scenario
//! cargo bench --bench loopback -- rr1 udp1     # some of them
//! BENCH_RUNS=5 BENCH_SECS=2 cargo bench --bench loopback
//! CONNPERF_BIN=/path/to/connperf cargo bench --bench loopback
//! ```
//!
//! Scenarios (all traffic on 127.0.0.1, 64-byte messages, closed loop):
//! - `rr1`: 1 TCP connection; connperf serve/connect pinned to cores 1/0, sockperf
//!   server/ping-pong pinned the same way with taskset.
//! - `rr100`: 100 TCP connections, 2 client workers, 2 server workers (connperf only: sockperf
//!   ping-pong has no multi-connection mode).
//! - `udp1`: 1 UDP socket; connperf vs sockperf (UDP is sockperf's default), pinned like rr1.
//! - `eph`: a new TCP connection per request, `-c 100`, 2 client workers (connperf only);
//!   req/s is connections/s.
//!
//! Each scenario runs `BENCH_RUNS` times (default 3), the tools alternating run by run, and the
//! table shows the median of each column. Client CPU seconds and max RSS come from `wait4(2)` on
//! the client process (the whole process: all threads, start-up and shut-down included).
//!
//! The connperf binary: `$CONNPERF_BIN`, else `cargo build --release` is run here and
//! `$CARGO_TARGET_DIR/release/connperf` (default `target/` under the package) is used.
//!
//! Every child is bounded in time (killed past its deadline), gets SIGKILL if this process dies
//! (PR_SET_PDEATHSIG), and is stopped and reaped on every exit path, error or panic included.

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

const SCENARIOS: [&str; 4] = ["rr1", "rr100", "udp1", "eph"];
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
        let mut cmd = Command::new(&argv[0]);
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
    /// Informational, for the detail lines.
    note: String,
}

/// What a run produced: the sample plus total requests (for requests per CPU-second).
struct Measured {
    sample: Sample,
    requests: f64,
}

fn measured(req_s: f64, requests: f64, exit: &Exit, note: String) -> Measured {
    Measured {
        sample: Sample {
            req_s,
            cpu_s: exit.cpu_s,
            rss_kib: exit.maxrss_kib as f64,
            note,
        },
        requests,
    }
}

/// Start `connperf serve` and return it with the port it printed.
fn connperf_server(env: &Env, args: &[&str]) -> Res<(Proc, u16)> {
    let mut argv = vec![env.bin.display().to_string(), "serve".into()];
    argv.extend(s(args));
    let mut srv = Proc::spawn("connperf serve", &argv)?;
    let line = srv.wait_line("Listening at ", Instant::now() + START_TIMEOUT)?;
    // "Listening at 127.0.0.1:PORT (tcp, 1 workers)"
    let addr = line["Listening at ".len()..]
        .split_whitespace()
        .next()
        .unwrap_or("");
    let port = addr
        .parse::<SocketAddr>()
        .map(|a| a.port())
        .map_err(|_| format!("connperf serve: cannot read the port from {line:?}"))?;
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

/// One connperf run: server, client, totals.
fn connperf_run(env: &Env, serve: &[&str], connect: &[&str]) -> Res<Measured> {
    let (srv, port) = connperf_server(env, serve)?;
    let secs = env.secs;
    let mut argv = vec![env.bin.display().to_string(), "connect".into()];
    argv.extend(s(connect));
    argv.extend([
        "-d".into(),
        format!("{secs}s"),
        "--show-only-results".into(),
        "--jsonlines".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let mut cli = Proc::spawn("connperf connect", &argv)?;
    let (exit, killed) =
        cli.wait_or_stop(Instant::now() + Duration::from_secs(secs) + CLIENT_SLACK);
    let server_note = stop_connperf_server(srv);
    if killed {
        return Err(format!(
            "connperf connect still running {CLIENT_SLACK:?} past its {secs}s: stopped ({}){}",
            exit.describe(),
            cli.tail()
        ));
    }
    if !exit.success() {
        return Err(format!(
            "connperf connect failed ({}): {}{}",
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
    let overrun = exit.wall.as_secs_f64() - secs as f64;
    if overrun > 0.5 {
        // Start-up takes milliseconds; the rest is the client's stop/drain phase.
        note += &format!(" [client ran {overrun:.2}s past -d {secs}s]");
    }
    if let Some(lost) = total.get("lost") {
        note += &format!(" lost={lost}");
    }
    if errors > 0.0 {
        note += &format!(" [CLIENT ERRORS: {}]", total["errors"]);
    }
    if !cli.err.is_empty() {
        note += &format!(" [stderr: {}]", cli.err.join(" | "));
    }
    match server_note {
        Ok(n) => note += &format!("; {n}"),
        Err(e) => note += &format!("; [{e}]"),
    }
    if count <= 0.0 {
        return Err(format!("connperf completed no requests: {note}"));
    }
    Ok(measured(num("rate_per_sec"), count, &exit, note))
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

fn sockperf_run(env: &Env, sockperf: &Path, tcp: bool) -> Res<Measured> {
    let port = free_port(!tcp)?;
    let ps = port.to_string();
    let sp = sockperf.display().to_string();
    let mut argv = s(&["taskset", "-c", "1", &sp, "server"]);
    if tcp {
        argv.push("--tcp".into());
    }
    argv.extend(s(&["-i", "127.0.0.1", "-p", &ps]));
    let mut srv = Proc::spawn("sockperf server", &argv)?;
    // Ready when it accepts a connection (TCP) or has bound its socket (UDP).
    let deadline = Instant::now() + START_TIMEOUT;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    loop {
        let ready = if tcp {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        } else {
            udp_bound(port)
        };
        if ready {
            break;
        }
        if let Some(e) = srv.reap(false) {
            srv.drain(Instant::now() + Duration::from_secs(1));
            return Err(format!(
                "sockperf server ended ({}) before listening on {port}{}",
                e.describe(),
                srv.tail()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "sockperf server not listening on {port} after {START_TIMEOUT:?}{}",
                srv.tail()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
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
        return Err(format!(
            "sockperf ping-pong {} ({}): {}{}",
            if killed {
                "hung and was stopped"
            } else {
                "failed"
            },
            exit.describe(),
            argv.join(" "),
            cli.tail()
        ));
    }
    let text: Vec<String> = cli
        .out
        .iter()
        .chain(&cli.err)
        .map(|l| strip_ansi(l))
        .collect();
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
    Ok(measured(req_s, total_msgs, &exit, note))
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
// Scenarios, medians, the table.

#[derive(Default)]
struct Row {
    req_s: Vec<f64>,
    cpu_s: Vec<f64>,
    per_cpu: Vec<f64>,
    rss: Vec<f64>,
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
                    println!(
                        "  {name:<6} {tool:<9} run {run}/{runs}: {:>10.0} req/s  cpu {:.2}s  {:>8.0} req/cpu-s  rss {:.0} KiB | {}",
                        m.sample.req_s, m.sample.cpu_s, per_cpu, m.sample.rss_kib, m.sample.note
                    );
                    row.req_s.push(m.sample.req_s);
                    row.cpu_s.push(m.sample.cpu_s);
                    row.per_cpu.push(per_cpu);
                    row.rss.push(m.sample.rss_kib);
                }
                Err(e) => {
                    println!("  {name:<6} {tool:<9} run {run}/{runs}: FAILED: {e}");
                    row.failures.push(e);
                }
            }
        }
    }
    rows
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
    println!(
        "loopback: connperf={} runs={} secs={} cores={} sockperf={} loadavg=[{}]",
        env.bin.display(),
        env.runs,
        env.secs,
        thread::available_parallelism().map_or(0, |n| n.get()),
        sockperf
            .as_ref()
            .map_or("not found (peer rows skipped)".into(), |p| p
                .display()
                .to_string()),
        loadavg()
    );
    if sockperf.is_some() && !have_taskset {
        println!("loopback: taskset not found: sockperf rows skipped");
    }
    let sockperf = sockperf.filter(|_| have_taskset);

    let mut table: BTreeMap<usize, Vec<(String, String, Row)>> = BTreeMap::new();
    let e = &env;
    for (si, &name) in selected.iter().enumerate() {
        println!("{name}: loadavg=[{}]", loadavg());
        let mut tools: Vec<(&str, Runner)> = Vec::new();
        match name {
            "rr1" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &[
                                "-l",
                                "127.0.0.1:0",
                                "--workers",
                                "1",
                                "--cpus",
                                "1",
                                "-p",
                                "tcp",
                            ],
                            &["-c", "1", "-r", "0", "--workers", "1", "--cpus", "0"],
                        )
                    }),
                ));
                if let Some(sp) = &sockperf {
                    tools.push(("sockperf", Box::new(move || sockperf_run(e, sp, true))));
                }
            }
            "rr100" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &["-l", "127.0.0.1:0", "--workers", "2", "-p", "tcp"],
                            &["-c", "100", "-r", "0", "--workers", "2"],
                        )
                    }),
                ));
            }
            "udp1" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &[
                                "-l",
                                "127.0.0.1:0",
                                "--workers",
                                "1",
                                "--cpus",
                                "1",
                                "-p",
                                "udp",
                            ],
                            &["-p", "udp", "-r", "0", "--workers", "1", "--cpus", "0"],
                        )
                    }),
                ));
                if let Some(sp) = &sockperf {
                    tools.push(("sockperf", Box::new(move || sockperf_run(e, sp, false))));
                }
            }
            "eph" => {
                tools.push((
                    "connperf",
                    Box::new(move || {
                        connperf_run(
                            e,
                            &["-l", "127.0.0.1:0", "--workers", "2", "-p", "tcp"],
                            &["-f", "ephemeral", "-r", "0", "-c", "100", "--workers", "2"],
                        )
                    }),
                ));
            }
            _ => unreachable!("checked above"),
        }
        let rows = run_scenario(name, tools, env.runs);
        table.insert(
            si,
            rows.into_iter()
                .map(|(t, r)| (name.to_string(), t, r))
                .collect(),
        );
    }

    let fmt = |x: f64, prec: usize| {
        if x.is_finite() {
            format!("{x:.prec$}")
        } else {
            "-".into()
        }
    };
    println!();
    println!(
        "median of {} runs, {} s each (each column its own median; eph req/s = connections/s; ratio = connperf/sockperf req/s)",
        env.runs, env.secs
    );
    println!(
        "{:<9} {:<9} {:>12} {:>13} {:>14} {:>9} {:>7}",
        "scenario", "tool", "req/s", "client_cpu_s", "req_per_cpu_s", "rss_kib", "ratio"
    );
    let mut failed = false;
    let mut notes = Vec::new();
    for rows in table.values() {
        let peer = rows
            .iter()
            .find(|(_, t, _)| t == "sockperf")
            .map(|(_, _, r)| (median(&r.req_s), median(&r.per_cpu)));
        for (scenario, tool, r) in rows {
            let req = median(&r.req_s);
            let ratio = match (tool.as_str(), peer) {
                ("connperf", Some((p, _))) if p > 0.0 => fmt(req / p, 2),
                _ => "-".into(),
            };
            println!(
                "{:<9} {:<9} {:>12} {:>13} {:>14} {:>9} {:>7}",
                scenario,
                tool,
                fmt(req, 0),
                fmt(median(&r.cpu_s), 2),
                fmt(median(&r.per_cpu), 0),
                fmt(median(&r.rss), 0),
                ratio
            );
            if tool == "connperf" {
                if let Some((_, pc)) = peer {
                    if pc > 0.0 {
                        notes.push(format!(
                            "{scenario}: connperf/sockperf req_per_cpu_s = {}",
                            fmt(median(&r.per_cpu) / pc, 2)
                        ));
                    }
                }
            }
            if !r.failures.is_empty() {
                failed = true;
                notes.push(format!(
                    "{scenario} {tool}: {} of {} runs FAILED",
                    r.failures.len(),
                    env.runs
                ));
            }
        }
        if rows.len() == 1 && rows[0].0 != "udp1" && rows[0].0 != "rr1" {
            notes.push(format!(
                "{}: no sockperf peer (sockperf ping-pong has no multi-connection or connect-per-request mode)",
                rows[0].0
            ));
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
    if failed {
        std::process::exit(1);
    }
}
