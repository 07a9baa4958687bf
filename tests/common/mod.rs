//! The one harness of the binary tests (and, through `#[path]`, of the benches): `proc` runs a
//! `connperf` child, `listen` reads the address lines of `serve`, `json` reads its JSON rows; here, a
//! `connperf serve` child that is stopped by PID and whose final counters are read back.
// Each test crate uses only some of these.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod json;
pub mod listen;
pub mod proc;
pub mod rows;
pub mod sums;

pub use json::{booked, f, json_total, u};
pub use listen::listening_addr;

use serde_json::Value;
use std::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_connperf");

/// A running `connperf serve` (started with `--jsonlines`), killed on drop.
pub struct Server {
    pub p: proc::Proc,
    /// The port from its `"kind":"listening"` line.
    pub port: u16,
}

impl Server {
    /// `connperf serve -l 127.0.0.1:0 --jsonlines ARGS` on loopback.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "-l", "127.0.0.1:0", "--jsonlines"])
            .args(args);
        Server::spawn(cmd)
    }

    /// Start a server command built by the caller (for example under `ip netns exec`); it
    /// must pass `--jsonlines` for `stop` to find the total row.
    pub fn spawn(cmd: Command) -> Server {
        let label = format!("{cmd:?}");
        let mut p = proc::spawn_command(cmd, label, proc::StdoutTo::Lines);
        let port = p.listening(1)[0].port();
        Server { p, port }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> libc::pid_t {
        self.p.pid()
    }

    /// Send `sig` to the server process (it must still run).
    pub fn signal(&mut self, sig: i32) {
        self.p.signal(sig);
    }

    /// Wait (with a deadline) for a JSON row the server prints (with `--interval`) that
    /// satisfies `pred`; it stays among the rows `stop_rows` returns.
    pub fn wait_row(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let line = self.p.wait_line(proc::PROC_TIMEOUT, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
        });
        serde_json::from_str(&line).expect("JSON row")
    }

    /// SIGTERM, then the server's final JSON total row; it must exit 0.
    pub fn stop(self) -> Value {
        let rows = self.stop_rows();
        let total = rows.iter().rev().find(|v| v["kind"] == "total");
        total.cloned().expect("server printed a total row")
    }

    /// SIGTERM, then every JSON row the server printed; it must exit 0.
    pub fn stop_rows(mut self) -> Vec<Value> {
        self.p.signal(libc::SIGTERM);
        let o = self.p.finish(proc::PROC_TIMEOUT);
        assert!(
            o.status.success(),
            "server exit status {:?}: {}",
            o.status,
            o.err
        );
        o.out
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }

    /// CPU time the server has used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesized name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // SAFETY: sysconf has no memory arguments.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        std::time::Duration::from_millis((f[11] + f[12]) * 1000 / hz)
    }
}

/// Write `content` to `NAME` in `dir`; returns the path as a string for a command line.
pub fn write_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).expect("write temp file");
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// A port of 127.0.0.1 that refuses TCP connections and UDP datagrams while it is held. A TCP
/// socket bound to it without listening keeps anyone else from listening there, and a port
/// below the kernel's ephemeral range is never handed to a `bind(:0)` or used as a source
/// port: a freed ephemeral port can be (another test's server once took one, and a test of
/// refused connections measured its echoes).
pub struct DeadPort {
    _hold: socket2::Socket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        use socket2::{Domain, Socket, Type};
        use std::sync::atomic::{AtomicU32, Ordering};
        static CALLS: AtomicU32 = AtomicU32::new(0);
        let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(32768);
        let first = if low > 20_000 { 20_000 } else { 1024 };
        let span = low.saturating_sub(first).max(1);
        let seed = std::process::id() * 7919 + CALLS.fetch_add(1, Ordering::Relaxed) * 104_729;
        for i in 0..span {
            let port = (first + (seed + i) % span) as u16;
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            if sock.bind(&addr.into()).is_err() {
                continue;
            }
            if std::net::UdpSocket::bind(addr).is_err() {
                continue;
            }
            return DeadPort { _hold: sock, port };
        }
        panic!("no free port below the ephemeral range {low}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
