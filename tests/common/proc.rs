//! A `connperf` child process for the binary tests: stdout line by line, stderr at the end, the
//! exit instant and peak RSS recorded by a waiter thread, killed by its PID on drop.

use super::listen::listening_addr;
use super::BIN;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Deadline for what should be quick: a listening line, the close of stdout after exit.
pub const PROC_TIMEOUT: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A connperf child process. A waiter thread polls it every 5 ms, recording its peak RSS and
/// reaping it, so its exit instant is known however late the test looks. Dropping it while it runs sends SIGCONT (it
/// may be stopped) and SIGKILL to its PID.
pub struct Proc {
    pub child: Child,
    pub label: String,
    pub started: Instant,
    /// Lines taken by `wait_line`; `finish` puts them back in front of the rest.
    kept: Vec<String>,
    lines: Receiver<String>,
    /// Stderr line by line as it comes (`wait_err_line`); all of it is in `finish`'s outcome.
    err_lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    exit: Receiver<Exit>,
    exited: Option<Exit>,
}

#[derive(Clone, Copy)]
struct Exit {
    status: ExitStatus,
    at: Instant,
    max_rss_kib: u64,
}

/// How a child process ended and what it printed.
#[derive(Debug)]
pub struct Outcome {
    pub label: String,
    pub status: ExitStatus,
    pub out: Vec<String>,
    pub err: String,
    /// From spawn to exit.
    pub elapsed: Duration,
    /// When the waiter saw it exit.
    pub exited_at: Instant,
    /// Peak resident set size (VmHWM, as last seen while it ran).
    pub max_rss_kib: u64,
}

/// Where a child's stdout goes.
pub enum StdoutTo {
    /// A pipe read line by line into `Proc::lines`.
    Lines,
    /// A pipe left in `Proc::child.stdout` for the test to read (or close).
    Raw,
    /// Anything else.
    Other(Stdio),
}

/// `connperf ARGS` with stdout read line by line; `nofile` sets RLIMIT_NOFILE in the child.
pub fn spawn(args: &[&str], nofile: Option<u64>) -> Proc {
    spawn_with(args, nofile, StdoutTo::Lines)
}

pub fn spawn_with(args: &[&str], nofile: Option<u64>, stdout: StdoutTo) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(n) = nofile {
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed: it calls setrlimit(2) (async-signal-safe) on a
        // stack value and builds an io::Error from errno (no allocation), touching no locks.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    spawn_command(cmd, args.join(" "), stdout)
}

/// Start `cmd` (a connperf command line built by the caller, for example under
/// `ip netns exec`), named `label` in failures.
pub fn spawn_command(mut cmd: Command, label: String, stdout: StdoutTo) -> Proc {
    let (stdio, read_lines) = match stdout {
        StdoutTo::Lines => (Stdio::piped(), true),
        StdoutTo::Raw => (Stdio::piped(), false),
        StdoutTo::Other(s) => (s, false),
    };
    cmd.stdin(Stdio::null())
        .stdout(stdio)
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn connperf");
    let pid = child.id() as libc::pid_t;
    let mut err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    if read_lines {
        let out = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    let stderr = thread::spawn(move || {
        let mut b = Vec::new();
        let mut r = BufReader::new(&mut err);
        loop {
            let from = b.len();
            match r.read_until(b'\n', &mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = err_tx.send(String::from_utf8_lossy(&b[from..]).into_owned());
                }
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    });
    let (etx, erx) = mpsc::channel();
    thread::spawn(move || {
        // Poll rather than block: between polls the child is not reaped, so its /proc entry is
        // its own, and VmHWM (peak RSS of its own address space, unlike wait4's ru_maxrss, which
        // also counts the test process it was forked from) can be read.
        let mut peak = 0;
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: waitpid on the PID of our own child, writing into a local.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
            if let Some(kib) = vm_hwm_kib(pid) {
                peak = peak.max(kib);
            }
            thread::sleep(ms(5));
        }
        let _ = etx.send(Exit {
            status: ExitStatus::from_raw(status),
            at: Instant::now(),
            max_rss_kib: peak,
        });
    });
    Proc {
        child,
        label,
        started,
        kept: Vec::new(),
        lines: rx,
        err_lines: err_rx,
        stderr: Some(stderr),
        exit: erx,
        exited: None,
    }
}

impl Proc {
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// True once the process has exited (and been reaped).
    pub fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.exit.try_recv().ok();
        }
        self.exited.is_some()
    }

    pub fn signal(&mut self, sig: libc::c_int) {
        assert!(!self.has_exited(), "`connperf {}` ended early", self.label);
        // SAFETY: kill(2) on the PID of our child, which has not been reaped (checked above).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({sig}) {}: {}",
            self.label,
            io::Error::last_os_error()
        );
    }

    /// SIGCONT + SIGKILL if still running, and wait (bounded) for the reaper.
    pub fn kill(&mut self) {
        if !self.has_exited() {
            // SAFETY: signals to our own, not yet reaped child.
            unsafe {
                libc::kill(self.pid(), libc::SIGCONT);
                libc::kill(self.pid(), libc::SIGKILL);
            }
            self.exited = self.exit.recv_timeout(PROC_TIMEOUT).ok();
        }
    }

    /// The next stdout line within `limit`.
    pub fn line_within(&mut self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Wait for a stdout line matching `pred` within `limit`; it and every line before it are
    /// kept for `finish`. The child is killed and the test fails if none comes.
    pub fn wait_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.kept.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => {
                    self.kill();
                    panic!(
                        "no expected line from `connperf {}` within {limit:?} ({e:?}); got:\n{}",
                        self.label,
                        self.kept.join("\n")
                    );
                }
            }
        }
    }

    /// Wait for a stderr line matching `pred` within `limit` (the line still ends up in
    /// `finish`'s `err`). The child is killed and the test fails if none comes.
    pub fn wait_err_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(e) => {
                    self.kill();
                    panic!(
                        "no expected stderr line from `connperf {}` within {limit:?} ({e:?}); got:\n{}",
                        self.label,
                        seen.concat()
                    );
                }
            }
        }
    }

    /// Wait (with a deadline) until the child has a handler installed for `sig` (SigCgt in
    /// /proc/PID/status): for a signal sent while it prints nothing.
    pub fn wait_catching(&mut self, sig: libc::c_int) {
        self.wait_status_mask("SigCgt:", sig, true, "a handler for");
    }

    /// Wait (with a deadline) until a `sig` sent to the child is no longer pending (SigPnd and
    /// ShdPnd in /proc/PID/status): it has been delivered, so the same signal sent again is a
    /// second one, not merged with the first.
    pub fn wait_delivered(&mut self, sig: libc::c_int) {
        self.wait_status_mask("ShdPnd:", sig, false, "delivery of");
        self.wait_status_mask("SigPnd:", sig, false, "delivery of");
    }

    fn wait_status_mask(&mut self, field: &str, sig: libc::c_int, set: bool, what: &str) {
        let bit = 1u64 << (sig - 1);
        let deadline = Instant::now() + PROC_TIMEOUT;
        loop {
            let mask = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with(field))?.to_string();
                    u64::from_str_radix(line[field.len()..].trim(), 16).ok()
                });
            if mask.is_some_and(|m| (m & bit != 0) == set) {
                return;
            }
            assert!(
                !self.has_exited() && Instant::now() < deadline,
                "`connperf {}`: no {what} signal {sig} within {PROC_TIMEOUT:?}",
                self.label
            );
            thread::sleep(ms(1));
        }
    }

    /// Read `n` listening lines (`Listening at ADDR (...)`, or with `--jsonlines` the
    /// `"kind":"listening"` object): the first `n` lines, not kept for `finish`. Returns their
    /// addresses, none with port 0.
    pub fn listening(&mut self, n: usize) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| {
                let Some(line) = self.line_within(PROC_TIMEOUT) else {
                    self.kill();
                    let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
                    panic!(
                        "`connperf {}`: no listening line {i} of {n} (status {:?}, stderr {err:?})",
                        self.label,
                        self.exited.map(|e| e.status)
                    );
                };
                let addr = listening_addr(&line)
                    .unwrap_or_else(|| panic!("expected a listening line, got {line:?}"));
                assert_ne!(addr.port(), 0, "port 0 resolved in {line:?}");
                addr
            })
            .collect()
    }

    /// Wait (at most `limit` from now) for the process to exit; then every stdout line and all
    /// of stderr.
    pub fn finish(&mut self, limit: Duration) -> Outcome {
        self.finish_by(Instant::now() + limit)
    }

    /// As `finish`, waiting at most `limit` from the start.
    pub fn finish_within(&mut self, limit: Duration) -> Outcome {
        self.finish_by(self.started + limit)
    }

    /// As `finish`, waiting at most until `deadline`.
    pub fn finish_by(&mut self, deadline: Instant) -> Outcome {
        let limit = deadline.saturating_duration_since(self.started);
        if self.exited.is_none() {
            self.exited = self
                .exit
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok();
        }
        let Some(exit) = self.exited else {
            self.kill();
            let err = self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            panic!(
                "`connperf {}` still running {limit:?} after its start; stderr: {err}",
                self.label
            );
        };
        let mut out = std::mem::take(&mut self.kept);
        let drain_deadline = Instant::now() + PROC_TIMEOUT;
        loop {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout of {} not closed", self.label),
            }
        }
        let err = self
            .stderr
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default();
        Outcome {
            label: self.label.clone(),
            status: exit.status,
            out,
            err,
            elapsed: exit.at.saturating_duration_since(self.started),
            exited_at: exit.at,
            max_rss_kib: exit.max_rss_kib,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Outcome {
    /// Exit status 0, nothing panicked.
    pub fn assert_clean(&self) {
        assert!(
            !self.err.contains("panicked"),
            "`connperf {}` panicked: {}",
            self.label,
            self.err
        );
        assert_eq!(
            self.status.code(),
            Some(0),
            "`connperf {}` exit status {:?}; stderr: {}",
            self.label,
            self.status,
            self.err
        );
    }

    pub fn text(&self) -> String {
        self.out.join("\n")
    }

    /// Nothing panicked, and the exit status is the verdict the report printed (`# verdict:`
    /// in a table, `"verdict"` in the JSON total rows): 0 for pass; for fail 1, with a
    /// `connperf: check failed: ...` stderr line per failed check. True if it failed.
    pub fn assert_verdict(&self) -> bool {
        assert!(
            !self.err.contains("panicked"),
            "`connperf {}` panicked: {}",
            self.label,
            self.err
        );
        let total = |l: &&String| l.starts_with('{') && l.contains("\"kind\":\"total\"");
        let said = |v: &str| {
            self.out.iter().any(|l| *l == format!("# verdict: {v}"))
                || self
                    .out
                    .iter()
                    .filter(total)
                    .any(|l| l.contains(&format!("\"verdict\":\"{v}\"")))
        };
        let failed = said("fail");
        assert!(
            failed || said("pass"),
            "`connperf {}` printed no verdict:\n{}",
            self.label,
            self.text()
        );
        assert_eq!(
            self.status.code(),
            Some(i32::from(failed)),
            "`connperf {}`: exit status and verdict disagree; stderr: {}\nstdout:\n{}",
            self.label,
            self.err,
            self.text()
        );
        let checks = self
            .err
            .lines()
            .filter(|l| l.starts_with("connperf: check failed: "))
            .count();
        assert_eq!(
            checks > 0,
            failed,
            "`connperf {}` stderr: {}",
            self.label,
            self.err
        );
        failed
    }

    /// The non-blank lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.err.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    /// Exit status 0 (`what` names the run in the failure).
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.text(),
            self.err
        );
    }

    /// Exited within `limit` of its start.
    pub fn assert_within(&self, limit: Duration, what: &str) {
        assert!(
            self.elapsed <= limit,
            "{what}: took {:?}, more than {limit:?}\nstdout:\n{}",
            self.elapsed,
            self.text()
        );
    }
}

/// Peak RSS (VmHWM) of a process in KiB; None once it has exited.
pub fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
