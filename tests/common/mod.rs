//! The one harness of the binary tests (and, through `#[path]`, of the benches): `proc` runs a
//! `connperf` child, `listen` reads its `Listening at` lines, `json` reads its JSON rows; here, a
//! `connperf serve` child that is stopped by PID and whose final counters are read back.
// Each test crate uses only some of these.
#![allow(dead_code, unused_imports)]

pub mod json;
pub mod listen;
pub mod proc;

pub use json::{f, json_total, u};
pub use listen::listening_addr;

use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_connperf");

/// A running `connperf serve` (started with `--jsonlines`), killed on drop.
pub struct Server {
    pub child: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
    /// The port from its `Listening at ADDR ...` line.
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
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = lines.next().expect("a Listening line").expect("read");
        let port = listening_addr(&first)
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .port();
        Server {
            child,
            lines: Some(lines),
            port,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Send `sig` to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill sends a signal to the child we spawned; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then the server's final JSON total row; it must exit 0.
    pub fn stop(self) -> Value {
        let rows = self.stop_rows();
        let total = rows.iter().rev().find(|v| v["kind"] == "total");
        total.cloned().expect("server printed a total row")
    }

    /// SIGTERM, then every JSON row the server printed; it must exit 0.
    pub fn stop_rows(mut self) -> Vec<Value> {
        self.signal(libc::SIGTERM);
        let rows = self
            .lines
            .take()
            .expect("lines")
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .collect();
        assert!(
            self.child.wait().expect("wait").success(),
            "server exit status"
        );
        rows
    }

    /// CPU time the server has used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
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

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write `content` to `NAME` in `dir`; returns the path as a string for a command line.
pub fn write_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).expect("write temp file");
    p.to_str().expect("UTF-8 temp path").to_string()
}
