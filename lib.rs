//! connperf: a TCP/UDP connection load generator and echo server.
//!
//! Thread-per-core, epoll through `mio`, no async runtime. Each worker thread is pinned to a core
//! and owns its own `mio::Poll` and its shard of the sockets; nothing is shared between workers on
//! the hot path. Workers hand per-interval snapshots (HdrHistograms and counters) over a bounded
//! channel to one reporter thread, which merges and prints.
//!
//! ```text
//! argv ─argh─▶ cli::Args ─into_config()─▶ ConnectPlan { ConnectConfig { Mode, .. }, .. }
//!                         │                | ServeConfig        (all validation happens here)
//!                         │ rlimit::raise_nofile(), affinity::plan(workers)
//!                         ▼ driver::Run::start: report::Reporter::spawn, reactor::spawn
//!   worker i (thread connperf-w{i}, pinned): reactor::run (Poll + Waker + timerfd) driving
//!     driver::Worker<T> { core: client::Client, traffic: T }
//!       T = persistent::Persistent | ephemeral::Ephemeral | udp_client::UdpClient
//!           | udp_ephemeral::UdpEphemeral
//!           (the TCP modes share tcp_conn: Dialer, TcpIo::exchange; the UDP modes share
//!            udp_wire: the datagram header and socket; sockets via sockopt; the
//!            socket-per-request modes share client::Starts: schedules or closed loop)
//!       Client: clock, open report windows of Stats (HdrHistograms + counters) per target
//!                         │ ramp: client::Gate collects every worker's ramp, then
//!                         │       Run::begin sets one Clock for all and wakes them
//!                         │ per window, once its requests settled: Interval { worker, seq, .. }
//!                         ▼ bounded crossbeam channel (try_send only; a full channel folds)
//!   reporter (connperf-report): merge per seq ─▶ stdout (table | --json-stream | --jsonlines) ─▶ totals
//!                                             ├▶ --hdr-log (histlog::WindowLog)
//!                                             └▶ metrics::Live ─▶ /metrics (--metrics-addr),
//!                                                                 progress line on stderr
//! ctrl-c / --duration elapsed / test ─▶ Shutdown::trigger(): sets the flag and wakes every worker
//!
//! connect --sweep FROM:TO:STEP ─sweep::run─▶ one driver::Run per step (ramp, warm-up, measured
//!   --sweep-step, drain) ─▶ a row per step ─▶ the knee (highest step meeting the checks)
//!
//! connperf merge FILE... ─histlog::read_log─▶ merge by wall-clock window ─▶ report::print_report
//!   (histograms, and the `#connperf-counters` lines of format 2 logs; totals judged by verdict)
//!
//! connperf plot FILE... ─histlog::parse_log | JSON rows─▶ plot::Series ─plotters─▶ one SVG
//! ```
//!
//! Before argh sees argv, `args::normalize` rewrites the Go tool's spellings (`-c5`, `-d=1s`,
//! `--switch=false`, camelCase names, comma lists, a flag given twice) into argh's.
//!
//! `serve` runs the same workers with `echo::EchoWorker` handlers and a counters-only reporter
//! started by the same `report::Reporter::spawn`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// `eprintln!` that never panics. std's panics when stderr cannot be written (`2>&1 | head -1`
/// once `head` has gone, `2>/dev/full`), which turned a run's exit status (0, 1 or 2) into a
/// panic's 101. A note stderr cannot take is dropped; the exit status still says how the run
/// went. Defined before the modules, so it shadows std's in all of them.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod affinity;
mod args;
pub mod cli;
mod client;
pub mod driver;
pub mod echo;
mod ephemeral;
pub mod histlog;
pub mod metrics;
pub mod pacing;
mod persistent;
pub mod plot;
pub mod progress;
pub mod reactor;
pub mod report;
pub mod rlimit;
pub mod sockopt;
mod sweep;
mod tcp_conn;
mod udp_client;
mod udp_ephemeral;
mod udp_wire;
pub mod verdict;

/// Everything that can stop connperf before or while it starts work.
///
/// Per-connection failures never become an `Error`: they are counted by kind in the reports.
#[derive(Debug)]
pub enum Error {
    /// A bad flag value, address or file: the message names it.
    Config(String),
    /// Binding a listening socket failed.
    Bind { addr: SocketAddr, source: io::Error },
    /// Creating or driving a `mio::Poll` failed.
    Poll(io::Error),
    /// Pinning a worker to the core that `--cpus` asked for failed.
    Pin { core: usize },
    /// Reading or raising `RLIMIT_NOFILE` failed.
    Rlimit(io::Error),
    /// A worker thread panicked; its results are lost.
    WorkerPanicked { id: usize },
    /// Spawning a thread failed.
    Spawn(io::Error),
    /// Any other I/O failure during setup, with what was being done.
    Io { what: String, source: io::Error },
    /// The run ended but its totals failed checks (`PEER: reason` each): exit status 1.
    Failed(Vec<String>),
}

impl Error {
    /// Exit status for this error: 2 for usage and configuration mistakes, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => f.write_str(msg),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Poll(e) => write!(f, "event loop failed: {e}"),
            Error::Pin { core } => write!(f, "cannot pin a worker to core {core}"),
            Error::Rlimit(e) => write!(f, "cannot read or raise the open-file limit: {e}"),
            Error::WorkerPanicked { id } => write!(f, "worker {id} panicked"),
            Error::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            // One stderr line per check: `connperf: ` starts the first, this the others.
            Error::Failed(checks) => write!(
                f,
                "check failed: {}",
                checks.join("\nconnperf: check failed: ")
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Poll(e) | Error::Rlimit(e) | Error::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
