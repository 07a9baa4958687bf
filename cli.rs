//! The command line: argh structs, Go-compatible argument spelling, validation into
//! `ServeConfig` / `ConnectConfig`, and orchestration of a run (limits, signals, exit codes).
//!
//! Leaves to others: the loop (`reactor`), the sockets (`echo`, `driver`), output (`report`).

use crate::affinity::{self, Plan};
use crate::driver::{CloseMode, ConnectConfig, Mode, Run, Target, UDP_HEADER_LEN};
use crate::echo::{Cidr, Protocols, ServeConfig, Server};
use crate::pacing::Arrival;
use crate::reactor::{LoopOptions, Shutdown};
use crate::report::ReportConfig;
use crate::sweep::Sweep;
use crate::{rlimit, Error, Result};
use argh::{ArgsInfo, FromArgs};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default `--spin-us`: long enough to catch a loopback or LAN reply (15–60 µs here) without a
/// wakeup, short enough that the adaptive window gives it up quickly when traffic is sparse.
pub const DEFAULT_SPIN_US: u64 = 100;

/// Largest message: 16 MiB. Larger would make the per-worker send buffer the memory problem.
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Default ephemeral connections in flight per worker, lowered to fit the open-file limit.
const DEFAULT_MAX_INFLIGHT: usize = 10_000;
/// Default `--sweep-step`: long enough for a p99.9 over thousands of requests at modest rates.
const DEFAULT_SWEEP_STEP: Duration = Duration::from_secs(5);
/// Default `--percentiles` of `connect` and `merge`: the one tail column the Go tool lacks.
const DEFAULT_PERCENTILES: [f64; 1] = [99.9];
/// Largest UDP payload over IPv4: the 65,535-byte packet less its 20-byte IP and 8-byte UDP
/// headers.
const MAX_UDP_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6: the 65,535-byte payload length (the 40-byte IPv6 header is not
/// counted in it) less the 8-byte UDP header.
const MAX_UDP_PAYLOAD_V6: usize = 65_527;
/// Most `--connections` per target: a sanity bound, far above what one host's descriptors allow.
const MAX_CONNECTIONS: u64 = 10_000_000;
/// Most `--depth`: requests in flight on one persistent connection.
const MAX_DEPTH: u64 = 4096;

/// `--proto`: TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

/// `--flavor`: how TCP connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    #[default]
    Persistent,
    Ephemeral,
}

/// `--arrival`: how a schedule spaces its slots (the seed of a Poisson one comes from
/// `--seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrivalKind {
    #[default]
    Uniform,
    Poisson,
}

/// `uniform` or `poisson`, any case; the error quotes the value in lower case.
impl FromStr for ArrivalKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "uniform" => Ok(ArrivalKind::Uniform),
            "poisson" => Ok(ArrivalKind::Poisson),
            a => Err(format!("{a:?}: use uniform or poisson")),
        }
    }
}

/// `tcp` or `udp`, any case; the error quotes the value in lower case.
impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            p => Err(format!("{p:?}: use tcp or udp")),
        }
    }
}

/// `persistent` or `ephemeral`, any case; the error quotes the value in lower case.
impl FromStr for Flavor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "persistent" => Ok(Flavor::Persistent),
            "ephemeral" => Ok(Flavor::Ephemeral),
            f => Err(format!("{f:?}: use persistent or ephemeral")),
        }
    }
}

/// A keyword flag that may be left out: its type's `Default` then.
fn keyword_or_default<T: FromStr<Err = String> + Default>(
    flag: &str,
    value: Option<&str>,
) -> Result<T> {
    value.map_or_else(|| Ok(T::default()), |v| parse_keyword(flag, v))
}

/// A keyword flag (`--proto tcp`) through its type's `FromStr`: `invalid --proto "sctp": use tcp or udp`.
fn parse_keyword<T: FromStr<Err = String>>(flag: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|e| Error::Config(format!("invalid {flag} {e}")))
}

#[derive(FromArgs, ArgsInfo, Debug)]
/// connperf: TCP/UDP connection load generator and echo server (thread-per-core, epoll).
#[argh(
    example = "connperf serve -l 127.0.0.1:9100\nconnperf connect -c 10 -r 1000 -d 10s 127.0.0.1:9100",
    note = "The Go tool's spellings work too: -h, -c=5, -c5, --flag=value, --switch=true|false,\ncamelCase names, comma lists (-l a:1,b:2; targets a:1,b:2); the last of a repeated flag wins."
)]
pub struct Args {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Command>,
}

// Parsed once per process: the size of the connect variant costs nothing, and argh's
// subcommand derive takes the argument structs themselves, not boxes.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum Command {
    Serve(ServeArgs),
    Connect(ConnectArgs),
    Merge(MergeArgs),
    Plot(PlotArgs),
    Completion(CompletionArgs),
}

#[derive(FromArgs, ArgsInfo, Debug, Default)]
/// Print a shell completion script: bash, zsh or fish.
#[argh(
    subcommand,
    name = "completion",
    example = "source <(connperf completion bash)\nconnperf completion fish > ~/.config/fish/completions/connperf.fish"
)]
pub struct CompletionArgs {
    /// the shell: bash, zsh or fish
    #[argh(positional)]
    pub shell: Option<String>,
}

#[derive(FromArgs, ArgsInfo, Debug, Default)]
/// Combine HdrHistogram interval logs (`connect --hdr-log`) from many hosts into one report.
#[argh(
    subcommand,
    name = "merge",
    example = "connperf merge host1.hlog host2.hlog host3.hlog\nconnperf merge --merge-results-each-host --by host --jsonlines logs/*.hlog",
    note = "Windows are aligned by wall-clock time; percentiles come from the merged histograms,\nnever from averaging, and counters (errors, bytes, loss, ...) are summed. Logs written\nbefore counters were logged merge with their counters unknown (-, null). The same log\ntwice, or two logs with the same labels over the same time, is refused."
)]
pub struct MergeArgs {
    /// interval log files written by `connperf connect --hdr-log`
    #[argh(positional)]
    pub files: Vec<String>,
    /// window length to align on (default: the logs' own interval)
    #[argh(option, short = 'i', from_str_fn(parse_interval))]
    pub interval: Option<Duration>,
    /// merge all targets into one row
    #[argh(switch)]
    pub merge_results_each_host: bool,
    /// print only the totals
    #[argh(switch)]
    pub show_only_results: bool,
    /// print JSON Lines instead of a table
    #[argh(switch)]
    pub jsonlines: bool,
    /// extra percentile columns (default 99.9)
    #[argh(option)]
    pub percentiles: Option<String>,
    /// print the full latency percentile spectrum at the end
    #[argh(switch)]
    pub latency_distribution: bool,
    /// also a row per value of label KEY (e.g. --by host), beside the merged rows
    #[argh(option, arg_name = "KEY")]
    pub by: Option<String>,
    /// fail (exit 1) if more than PCT % of a total row's requests failed (default 100: only a
    /// row with nothing completed fails)
    #[argh(option)]
    pub max_error_rate: Option<String>,
    /// fail (exit 1) unless every total row meets these bounds, e.g.
    /// p99=2ms,p99.9=10ms,max=1s,mean=1ms,errors=0.1%
    #[argh(option)]
    pub slo: Option<String>,
    /// merge the same log given twice, or two logs with the same labels over the same time
    #[argh(switch)]
    pub allow_duplicates: bool,
}

#[derive(FromArgs, ArgsInfo, Debug, Default)]
/// Draw interval logs and JSON Lines outputs as one self-contained SVG.
#[argh(
    subcommand,
    name = "plot",
    example = "connperf plot run.hlog -o run.svg\nconnperf plot before.hlog after.hlog -o cmp.svg --title 'tuning: before vs after'\nconnperf plot sweep.jsonl -o sweep.svg",
    note = "Inputs: interval logs (connect --hdr-log) and JSON Lines (connect --json-stream or\n--jsonlines, merge --jsonlines, a sweep's step and knee rows). The SVG stacks the panels\nthe inputs support: latency percentiles per window (log axis) over throughput and errors/s;\nthe percentile spectrum (1/(1-p) axis), one line per file, target or label set; a sweep's\nlatency vs achieved req/s with the SLO's bounds and the knee. An unknown value is a gap.\nThe default height grows with the number of panels."
)]
pub struct PlotArgs {
    /// interval logs and JSON Lines files to draw
    #[argh(positional)]
    pub files: Vec<String>,
    /// the SVG file to write (- for stdout); required
    #[argh(option, short = 'o')]
    pub output: Option<String>,
    /// title above the panels (default: the labels common to the inputs, else the file names)
    #[argh(option)]
    pub title: Option<String>,
    /// width in pixels (default 1200)
    #[argh(option, from_str_fn(parse_count))]
    pub width: Option<u64>,
    /// height in pixels (default: 50 plus 680 for the timeline and 460 per other panel)
    #[argh(option, from_str_fn(parse_count))]
    pub height: Option<u64>,
}

#[derive(FromArgs, ArgsInfo, Debug, Default)]
/// Run the TCP/UDP echo server.
#[argh(
    subcommand,
    name = "serve",
    example = "connperf serve                      # 0.0.0.0:9100, TCP and UDP\nconnperf serve -l 127.0.0.1:0 -p tcp   # a free port, printed as `Listening at ...`",
    note = "SIGINT/SIGTERM stop accepting, close, print the final counters and exit 0."
)]
pub struct ServeArgs {
    /// addresses to listen on (host:port); default 0.0.0.0:9100
    #[argh(positional)]
    pub addrs: Vec<String>,
    /// address to listen on (host:port), repeatable
    #[argh(option, short = 'l')]
    pub listen_addr: Vec<String>,
    /// file of whitespace-separated host:port entries to listen on (# starts a comment)
    #[argh(option)]
    pub listen_addrs_file: Option<String>,
    /// protocol: tcp, udp or all (default all)
    #[argh(option, short = 'p')]
    pub protocol: Option<String>,
    /// print counters every interval (e.g. 5s), and the partial one at the stop; default: only at shutdown
    #[argh(option, from_str_fn(parse_interval))]
    pub interval: Option<Duration>,
    /// close connections beyond this many open at once (counted as rejected)
    #[argh(option, from_str_fn(parse_count))]
    pub max_connections: Option<u64>,
    /// close connections idle this long (e.g. 30s); default off
    #[argh(option, from_str_fn(parse_duration))]
    pub idle_timeout: Option<Duration>,
    /// listen backlog (default 4096)
    #[argh(option, from_str_fn(parse_count))]
    pub backlog: Option<u64>,
    /// SO_BUSY_POLL microseconds on accepted TCP and on UDP sockets
    #[argh(option, from_str_fn(parse_count))]
    pub busy_poll: Option<u64>,
    /// never sleep in epoll_wait: lowest latency, each worker's core at 100 %
    #[argh(switch)]
    pub spin: bool,
    /// after an event, poll up to USECS for the next before sleeping (adaptive; default 100; 0 = off)
    #[argh(option, from_str_fn(parse_count))]
    pub spin_us: Option<u64>,
    /// cores to pin workers to, e.g. 0-3,6 (worker i on the i-th core)
    #[argh(option)]
    pub cpus: Option<String>,
    /// number of worker threads (default: one per available core)
    #[argh(option, from_str_fn(parse_count))]
    pub workers: Option<u64>,
    /// stdout as JSON Lines only: a "listening" object per address, then the counters
    #[argh(switch)]
    pub jsonlines: bool,
    /// answer only these peers: comma-separated addresses or CIDR blocks (TCP and UDP)
    #[argh(option)]
    pub allow: Option<String>,
    /// serve the counters as OpenMetrics text at http://HOST:PORT/metrics (:PORT: every IPv4 interface, 0.0.0.0; port 0: a free one, printed on stderr)
    #[argh(option)]
    pub metrics_addr: Option<String>,
}

#[derive(FromArgs, ArgsInfo, Debug, Default)]
/// Generate load against one or many echo servers and report latency.
#[argh(
    subcommand,
    name = "connect",
    example = "connperf connect 127.0.0.1:9100                          # 10 connections, 100 req/s each, 10 s\nconnperf connect -f ephemeral -r 1000 -d 15s host:9100  # 1,000 new connections/s\nconnperf connect -p udp -r 10000 --jsonlines host:9100   # UDP datagrams, totals as JSON Lines",
    note = "Latency is measured from each request's intended send time (no coordinated omission).\nWith --demo and no address, connect runs against a built-in echo server on 127.0.0.1."
)]
pub struct ConnectArgs {
    /// targets (host:port), or with --addrs-file one file of them
    #[argh(positional)]
    pub addrs: Vec<String>,
    /// protocol: tcp or udp (default tcp)
    #[argh(option, short = 'p')]
    pub proto: Option<String>,
    /// persistent or ephemeral: a new connection per request, or with udp a new socket (source port) per datagram (default persistent)
    #[argh(option, short = 'f')]
    pub flavor: Option<String>,
    /// connections per target to keep (persistent), or UDP flows per target (sockets, so source ports; default 10)
    #[argh(option, short = 'c', from_str_fn(parse_count))]
    pub connections: Option<u64>,
    /// requests/s: per connection (persistent), per target (ephemeral, udp); 0 = closed loop (default 100)
    #[argh(option, short = 'r', from_str_fn(parse_rate))]
    pub rate: Option<f64>,
    /// measurement period (default 10s)
    #[argh(option, short = 'd', from_str_fn(parse_duration))]
    pub duration: Option<Duration>,
    /// message size in bytes, 1 to 16 MiB (default 64)
    #[argh(option, from_str_fn(parse_count))]
    pub message_bytes: Option<u64>,
    /// interval between reports: 5, 5s, 500ms (default 5s)
    #[argh(option, short = 'i', from_str_fn(parse_interval))]
    pub interval: Option<Duration>,
    /// print only the totals
    #[argh(switch)]
    pub show_only_results: bool,
    /// merge the results of all targets into one row
    #[argh(switch)]
    pub merge_results_each_host: bool,
    /// the one positional argument is a file of host:port entries (# starts a comment)
    #[argh(switch)]
    pub addrs_file: bool,
    /// no address: run against a built-in echo server on 127.0.0.1 (a demo)
    #[argh(switch)]
    pub demo: bool,
    /// print the totals as JSON Lines instead of a table (as the Go tool: no interval rows)
    #[argh(switch)]
    pub jsonlines: bool,
    /// print JSON Lines with a row per target per interval, then the totals (wins over --jsonlines)
    #[argh(switch)]
    pub json_stream: bool,
    /// cores to pin workers to, e.g. 0-3,6
    #[argh(option)]
    pub cpus: Option<String>,
    /// number of worker threads (default: one per available core)
    #[argh(option, from_str_fn(parse_count))]
    pub workers: Option<u64>,
    /// run this long before measuring (measured but excluded from results)
    #[argh(option, from_str_fn(parse_duration_zero))]
    pub warmup: Option<Duration>,
    /// connect/reply timeout; an unanswered UDP datagram counts lost after it (default 1s)
    #[argh(option, from_str_fn(parse_duration))]
    pub timeout: Option<Duration>,
    /// how ephemeral connections close: rst (default, no TIME_WAIT) or fin
    #[argh(option)]
    pub close: Option<String>,
    /// ephemeral connections (udp: sockets) in flight per worker at most (default: 10000, or what the open-file limit allows)
    #[argh(option, from_str_fn(parse_count))]
    pub max_inflight: Option<u64>,
    /// requests in flight per persistent connection (pipelining; default 1)
    #[argh(option, from_str_fn(parse_count))]
    pub depth: Option<u64>,
    /// how paced sends are spread in time: uniform (one every 1/rate; default) or poisson (exponential gaps of the same mean)
    #[argh(option)]
    pub arrival: Option<String>,
    /// seed of --arrival poisson, to repeat a run's schedule (default: from the clock; the report prints it)
    #[argh(option, from_str_fn(parse_count))]
    pub seed: Option<u64>,
    /// local addresses to spread connections over: a list (a,b) or a CIDR (10.0.0.0/29)
    #[argh(option)]
    pub source_addrs: Option<String>,
    /// SO_BUSY_POLL microseconds on client sockets (TCP and UDP)
    #[argh(option, from_str_fn(parse_count))]
    pub busy_poll: Option<u64>,
    /// never sleep in epoll_wait: lowest latency, each worker's core at 100 %
    #[argh(switch)]
    pub spin: bool,
    /// after an event, poll up to USECS for the next before sleeping (adaptive; default 100; 0 = off)
    #[argh(option, from_str_fn(parse_count))]
    pub spin_us: Option<u64>,
    /// extra percentile columns after the Go tool's (default 99.9), e.g. 50,99.9,99.99
    #[argh(option)]
    pub percentiles: Option<String>,
    /// fail (exit 1) if more than PCT % of a target's requests failed (default 100: only a
    /// target with nothing completed fails)
    #[argh(option)]
    pub max_error_rate: Option<String>,
    /// fail (exit 1) unless every target meets these bounds, e.g.
    /// p99=2ms,p99.9=10ms,max=1s,mean=1ms,errors=0.1%
    #[argh(option)]
    pub slo: Option<String>,
    /// print the full latency percentile spectrum (HdrHistogram text format) at the end
    #[argh(switch)]
    pub latency_distribution: bool,
    /// write each interval's histograms to FILE as an HdrHistogram interval log (for `connperf merge`)
    #[argh(option)]
    pub hdr_log: Option<String>,
    /// KEY=VALUE stamped into JSON lines and --hdr-log tags (repeatable)
    #[argh(option)]
    pub label: Vec<String>,
    /// wait until this wall-clock time (RFC 3339 or Unix seconds; at most 24 h ahead) before starting, so many hosts start together; a time already past starts at once
    #[argh(option)]
    pub start_at: Option<String>,
    /// how late a --start-at already past may be and still start (with a note); later is an error (default 10s)
    #[argh(option, from_str_fn(parse_duration_zero))]
    pub start_late_max: Option<Duration>,
    /// capacity sweep: one step per total rate FROM, FROM+STEP, ... up to TO req/s over all
    /// targets (k and M suffixes: 1k:10k:1k), a row per step, stopping after the first step that
    /// fails a check (--slo, --max-error-rate) or achieves under 95 % of its rate; then the knee
    #[argh(option)]
    pub sweep: Option<String>,
    /// measured time of each --sweep step, after its ramp and --warmup (default 5s)
    #[argh(option, from_str_fn(parse_duration))]
    pub sweep_step: Option<Duration>,
    /// accepted for the Go tool's scripts; has no effect (profile with `perf record`)
    #[argh(switch)]
    pub enable_pprof: bool,
    /// accepted for the Go tool's scripts; has no effect
    #[argh(option)]
    pub pprof_addr: Option<String>,
    /// serve live counters and the last window's latency as OpenMetrics text at http://HOST:PORT/metrics (:PORT: every IPv4 interface, 0.0.0.0; port 0: a free one, printed on stderr)
    #[argh(option)]
    pub metrics_addr: Option<String>,
    /// after the run, keep serving --metrics-addr until it is scraped once or this long has passed (default 0: exit at once)
    #[argh(option, from_str_fn(parse_duration_zero))]
    pub metrics_linger: Option<Duration>,
    /// show a progress line on stderr (default: when stderr is a terminal)
    #[argh(switch)]
    pub progress: bool,
    /// never show the progress line (as --progress=false)
    #[argh(switch)]
    pub no_progress: bool,
}

/// Parse a duration: `5` (seconds), `1.5s`, `500ms`, `250us`, `1m30s`, `2h`. Must be above 0.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration_zero(s)?;
    if d.is_zero() {
        return Err("must be above 0".into());
    }
    Ok(d)
}

/// A report interval: a duration of at least 1 ms (finer would print rows, not measurements).
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(d)
}

/// As `parse_duration`, but 0 is allowed.
pub fn parse_duration_zero(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?} lacks a unit after its last number"))?;
        if num_len == 0 {
            return Err(format!("{s:?} is not a duration (try 10s, 500ms, 1m30s)"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in {s:?} (use ns, us, ms, s, m, h)"
                ))
            }
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total)
}

fn secs_to_duration(secs: f64) -> std::result::Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err("must be a non-negative duration".into());
    }
    if secs > 366.0 * 86_400.0 {
        return Err("is longer than a year".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A non-negative integer.
pub fn parse_count(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    t.parse::<u64>().map_err(|_| {
        if t.starts_with('-') {
            "must not be negative".to_string()
        } else if t.is_empty() {
            "empty value".to_string()
        } else {
            format!("{t:?} is not a whole number")
        }
    })
}

/// A rate per second: non-negative, finite, fractional allowed.
pub fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    let r: f64 = t.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !r.is_finite() {
        return Err("must be finite".into());
    }
    if r < 0.0 {
        return Err("must not be negative".into());
    }
    if r > 100_000_000.0 {
        return Err("is above 100,000,000/s".into());
    }
    Ok(r)
}

/// Resolve `host:port` (IPv6 in brackets) to one socket address.
pub fn parse_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if s.starts_with('[') && s.ends_with(']') {
        return Err(format!("address {s:?} has no port (write {s}:9100)"));
    }
    if s.parse::<IpAddr>().is_ok() || s.matches(':').count() > 1 && !s.starts_with('[') {
        return Err(format!(
            "address {s:?} has no port, or is IPv6 without brackets (write [::1]:9100)"
        ));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("address {s:?} has no port (write host:port)"));
    };
    if host.is_empty() {
        return Err(format!("address {s:?} has no host"));
    }
    let port: u16 = match port.parse::<u64>() {
        Ok(p) if p <= 65535 => p as u16,
        Ok(_) => return Err(format!("port in {s:?} is above 65535")),
        Err(_) => return Err(format!("port in {s:?} is not a number")),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("host {host:?} resolves to no address"))
}

/// Read a file of whitespace-separated `host:port` entries; `#` starts a comment. Errors name
/// the file and line.
pub fn read_addrs_file(path: &str, flag: &str) -> Result<Vec<(String, SocketAddr)>> {
    let p = Path::new(path);
    if p.is_dir() {
        return Err(Error::Config(format!(
            "invalid {flag} {path:?}: is a directory"
        )));
    }
    let bytes = std::fs::read(p)
        .map_err(|e| Error::Config(format!("invalid {flag} {path:?}: cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::Config(format!(
            "invalid {flag} {path:?} line {line}: not text (binary data)"
        ))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        for entry in content.split_whitespace() {
            let addr = parse_addr(entry).map_err(|e| {
                Error::Config(format!("invalid {flag} {path:?} line {}: {e}", i + 1))
            })?;
            out.push((entry.to_string(), addr));
        }
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "invalid {flag} {path:?}: it lists no addresses"
        )));
    }
    Ok(out)
}

/// Parse `--source-addrs`: a comma-separated list of IPs, or one CIDR block (its host
/// addresses, at most 65,536).
pub fn parse_source_addrs(s: &str) -> std::result::Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("empty entry".into());
        }
        match part.split_once('/') {
            None => out.push(
                part.parse::<IpAddr>()
                    .map_err(|_| format!("{part:?} is not an IP address"))?,
            ),
            Some((ip, len)) => {
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("{part:?} is not a CIDR block"))?;
                let len: u32 = len
                    .parse()
                    .map_err(|_| format!("{part:?} has a bad prefix length"))?;
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                if len > bits || bits - len > 16 {
                    return Err(format!(
                        "{part:?}: prefix length must be {}..={bits}",
                        bits - 16
                    ));
                }
                let n = 1u128 << (bits - len);
                let base = match ip {
                    IpAddr::V4(v) => u32::from(v) as u128 & !(n - 1),
                    IpAddr::V6(v) => u128::from(v) & !(n - 1),
                };
                // Skip the network and broadcast addresses of IPv4 blocks larger than /31.
                let (lo, hi) = if ip.is_ipv4() && n > 2 {
                    (1, n - 1)
                } else {
                    (0, n)
                };
                for k in lo..hi {
                    out.push(match ip {
                        IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from((base + k) as u32)),
                        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(base + k)),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// `--start-late-max` by default: how late a `--start-at` already past may be and still start.
const START_LATE_MAX: Duration = Duration::from_secs(10);
/// How far ahead a `--start-at` may be: further is a mistake (a wrong date or unit), not a wait.
const START_AT_MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// When a run with `--start-at` starts, seen at one moment.
#[derive(Debug, PartialEq)]
enum StartAt {
    /// The time is this far ahead: wait.
    Wait(Duration),
    /// The time passed this long ago (at most `--start-late-max`): start now.
    Late(Duration),
}

/// Where `at` stands from `now`: a wait of at most 24 h, or a start at most `late_max` late;
/// anything else is a usage error (a badly skewed clock, a wrong date).
fn start_at_wait(at: SystemTime, now: SystemTime, late_max: Duration) -> Result<StartAt> {
    match at.duration_since(now) {
        Ok(ahead) if ahead > START_AT_MAX_AHEAD => Err(Error::Config(format!(
            "invalid --start-at: {:.1} h ahead, more than 24 h",
            ahead.as_secs_f64() / 3600.0
        ))),
        Ok(ahead) => Ok(StartAt::Wait(ahead)),
        Err(past) if past.duration() > late_max => Err(Error::Config(format!(
            "invalid --start-at: {:.1} s in the past, more than --start-late-max ({:.1} s); check this host's clock or raise --start-late-max",
            past.duration().as_secs_f64(),
            late_max.as_secs_f64()
        ))),
        Err(past) => Ok(StartAt::Late(past.duration())),
    }
}

/// `--start-at`: Unix seconds (`1764097200`, fractions allowed) or RFC 3339
/// (`2026-11-25T19:00:00Z`, `2026-11-25T20:00:00.5+01:00`).
pub fn parse_start_at(s: &str) -> std::result::Result<SystemTime, String> {
    let t = s.trim();
    if !t.is_ascii() {
        return Err("use RFC 3339 (2026-11-25T19:00:00Z) or Unix seconds".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e11).contains(&secs) {
            return Err("not a plausible Unix time".into());
        }
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let bad = || "use RFC 3339 (2026-11-25T19:00:00Z) or Unix seconds".to_string();
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| t.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut rest = &t[19..];
    let mut frac = 0f64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = format!("0.{}", &r[..n]).parse().map_err(|_| bad())?;
        rest = &r[n..];
    }
    let offset = utc_offset_secs(rest).ok_or_else(bad)?;
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    if secs < 0 {
        return Err("is before 1970".into());
    }
    Ok(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_secs_f64(frac))
}

/// An RFC 3339 offset (`Z`, `+01:00`, `-05:30`) in seconds east of UTC.
fn utc_offset_secs(o: &str) -> Option<i64> {
    match o {
        "Z" | "z" => Some(0),
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            Some(sign * (oh * 3600 + om * 60))
        }
        _ => None,
    }
}

/// Days from 1970-01-01 to the given civil date: Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, mo: i64, d: i64) -> i64 {
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `50,99.9,99.99` → percentiles, each above 0 and at most 100, in the order given; one given
/// twice (`50,50`, `99.9,99.90`) is kept once.
pub fn parse_percentiles(s: &str) -> std::result::Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let p: f64 = part
            .parse()
            .map_err(|_| format!("{part:?} is not a number"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("{part} is not in (0, 100]"));
        }
        // Each percentile's JSON key is `latency_{p without its dot}p_us`; one that would
        // overwrite a fixed key of another percentile (9.9 -> latency_99p_us) is refused.
        let key = format!("{p}").trim_end_matches(".0").replace('.', "");
        for (fixed, fixed_key) in [
            (50.0, "50"),
            (90.0, "90"),
            (95.0, "95"),
            (99.0, "99"),
            (99.9, "999"),
        ] {
            if key == fixed_key && p != fixed {
                return Err(format!(
                    "{part} would be printed as the p{fixed} column; use {fixed} or another value"
                ));
            }
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// `--percentiles` of `connect` and `merge`, or `DEFAULT_PERCENTILES`.
fn percentiles_or_default(flag: Option<&str>) -> Result<Vec<f64>> {
    match flag {
        Some(p) => parse_percentiles(p)
            .map_err(|e| Error::Config(format!("invalid --percentiles {p:?}: {e}"))),
        None => Ok(DEFAULT_PERCENTILES.to_vec()),
    }
}

fn plan_of(cpus: &Option<String>, workers: Option<u64>) -> Result<Plan> {
    let list = match cpus {
        Some(s) => Some(
            affinity::parse_cpu_list(s)
                .map_err(|e| Error::Config(format!("invalid --cpus {s:?}: {e}")))?,
        ),
        None => None,
    };
    let workers = match workers {
        Some(0) => {
            return Err(Error::Config(
                "invalid --workers 0: must be at least 1".into(),
            ))
        }
        Some(n) if n > 1024 => {
            return Err(Error::Config(format!(
                "invalid --workers {n}: at most 1024"
            )))
        }
        Some(n) => Some(n as usize),
        None => None,
    };
    affinity::plan(list.as_deref(), workers)
}

fn busy_poll(v: Option<u64>) -> Result<Option<u32>> {
    match v {
        Some(n) if n > 1_000_000 => Err(Error::Config(format!(
            "invalid --busy-poll {n}: at most 1000000 µs"
        ))),
        Some(n) => Ok(Some(n as u32)),
        None => Ok(None),
    }
}

/// `--spin-us`, at most a second (a longer window would only burn a core).
fn spin_for(v: Option<u64>) -> Result<Duration> {
    match v {
        Some(n) if n > 1_000_000 => Err(Error::Config(format!(
            "invalid --spin-us {n}: at most 1000000 µs"
        ))),
        Some(n) => Ok(Duration::from_micros(n)),
        None => Ok(Duration::from_micros(DEFAULT_SPIN_US)),
    }
}

/// A validated `serve` run.
#[derive(Debug)]
pub struct ServePlan {
    /// With `--metrics-addr`, `cfg.live` holds the state served there.
    pub cfg: ServeConfig,
    pub plan: Plan,
    pub loop_opts: LoopOptions,
    /// `--metrics-addr`, resolved (`:PORT` is every address).
    pub metrics_addr: Option<SocketAddr>,
}

impl ServeArgs {
    /// Validate into everything `run_serve` needs.
    pub fn into_config(self) -> Result<ServePlan> {
        let protocols = match &self.protocol {
            Some(p) => parse_keyword("--protocol", p)?,
            None => ServeConfig::default().protocols,
        };
        let addrs = self.listen_addrs()?;
        let backlog = backlog(self.backlog)?;
        if self.max_connections == Some(0) {
            return Err(Error::Config(
                "invalid --max-connections 0: must be at least 1".into(),
            ));
        }
        let plan = plan_of(&self.cpus, self.workers)?;
        let metrics_addr = metrics_addr(self.metrics_addr.as_deref())?;
        let cfg = ServeConfig {
            addrs,
            protocols,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            interval: self.interval,
            backlog,
            busy_poll_us: busy_poll(self.busy_poll)?,
            jsonlines: self.jsonlines,
            allow: allow(self.allow.as_deref())?,
            live: metrics_addr
                .map(|_| Arc::new(crate::metrics::Live::new_server(std::time::Instant::now()))),
        };
        Ok(ServePlan {
            cfg,
            plan,
            loop_opts: LoopOptions {
                spin: self.spin,
                spin_for: spin_for(self.spin_us)?,
            },
            metrics_addr,
        })
    }

    /// The positional addresses, then `--listen-addr`, then the `--listen-addrs-file` entries;
    /// none means `ServeConfig::default()`'s.
    fn listen_addrs(&self) -> Result<Vec<SocketAddr>> {
        let mut addrs = Vec::new();
        for a in &self.addrs {
            addrs.push(
                parse_addr(a).map_err(|e| Error::Config(format!("invalid listen address: {e}")))?,
            );
        }
        for a in &self.listen_addr {
            addrs.push(
                parse_addr(a).map_err(|e| Error::Config(format!("invalid --listen-addr: {e}")))?,
            );
        }
        if let Some(f) = &self.listen_addrs_file {
            addrs.extend(
                read_addrs_file(f, "--listen-addrs-file")?
                    .into_iter()
                    .map(|(_, a)| a),
            );
        }
        if addrs.is_empty() {
            addrs = ServeConfig::default().addrs;
        }
        Ok(addrs)
    }
}

/// `--backlog`: at least 1; listen(2) takes an int, so larger values are capped to `i32::MAX`.
fn backlog(given: Option<u64>) -> Result<i32> {
    match given {
        Some(0) => Err(Error::Config(
            "invalid --backlog 0: must be at least 1".into(),
        )),
        Some(b) => Ok(b.min(i32::MAX as u64) as i32),
        None => Ok(ServeConfig::default().backlog),
    }
}

/// `--metrics-addr HOST:PORT`, or `:PORT` for every IPv4 interface (`0.0.0.0:PORT`, the usual
/// exporter spelling). Text that is no address is a usage error (exit 2).
fn metrics_addr(given: Option<&str>) -> Result<Option<SocketAddr>> {
    given
        .map(|a| {
            let a = a.trim();
            let all = a
                .strip_prefix(':')
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .map(|p| format!("0.0.0.0:{p}"));
            parse_addr(all.as_deref().unwrap_or(a))
                .map_err(|e| Error::Config(format!("invalid --metrics-addr: {e}")))
        })
        .transpose()
}

/// Serve `live` at `--metrics-addr` (a bind failure is exit 1, naming the flag) and say where.
fn start_metrics(
    addr: Option<SocketAddr>,
    live: Option<&Arc<crate::metrics::Live>>,
) -> Result<Option<crate::metrics::MetricsServer>> {
    let (Some(addr), Some(live)) = (addr, live) else {
        return Ok(None);
    };
    let server = crate::metrics::MetricsServer::start(addr, live.clone())?;
    eprintln!("connperf: metrics at http://{}/metrics", server.addr);
    Ok(Some(server))
}

/// `--allow`: comma-separated addresses or CIDR blocks; none answers everyone.
fn allow(given: Option<&str>) -> Result<Vec<Cidr>> {
    match given {
        Some(a) => a
            .split(',')
            .map(|p| Cidr::parse(p.trim()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Config(format!("invalid --allow: {e}"))),
        None => Ok(Vec::new()),
    }
}

/// A validated `connect` run.
#[derive(Debug)]
pub struct ConnectPlan {
    /// No target was given: the run goes to a built-in echo server, which `run_connect` starts
    /// and names with `aim_at_demo`; until then `cfg.targets` and `report.peers` are empty.
    pub demo: bool,
    pub cfg: ConnectConfig,
    pub report: ReportConfig,
    pub plan: Plan,
    pub loop_opts: LoopOptions,
    /// `--hdr-log` path.
    pub hdr_log: Option<String>,
    /// `--start-at`.
    pub start_at: Option<SystemTime>,
    /// `--start-late-max`.
    pub start_late_max: Duration,
    /// One-line notes for stderr (flags without effect in this mode, and the like).
    pub warnings: Vec<String>,
    /// `--sweep`: the steps; `cfg` is then the first step's run.
    pub sweep: Option<Sweep>,
    /// `--metrics-addr`; the state it serves is `report.live`.
    pub metrics_addr: Option<SocketAddr>,
    /// `--metrics-linger`.
    pub metrics_linger: Duration,
    /// Draw the progress line (`--progress`, or stderr is a terminal), from `report.live`.
    pub progress: bool,
}

impl ConnectPlan {
    /// The demo run, aimed at the built-in echo server listening at `addr`.
    fn aim_at_demo(self, addr: SocketAddr) -> ConnectPlan {
        let name = addr.to_string();
        ConnectPlan {
            cfg: ConnectConfig {
                targets: vec![Target {
                    name: name.clone(),
                    addr,
                }],
                ..self.cfg
            },
            report: ReportConfig {
                peers: vec![name],
                ..self.report
            },
            ..self
        }
    }
}

impl ConnectArgs {
    /// Validate into a run. `--demo` (with no target address) makes a demo run
    /// (`ConnectPlan::demo`). An
    /// ephemeral run without `--max-inflight` raises and reads the open-file limit.
    pub fn into_config(self) -> Result<ConnectPlan> {
        let mut warnings = Vec::new();
        let sweep = self.sweep(&mut warnings)?;
        let (mut cfg, plan) = self.connect_config(&mut warnings, sweep.is_some())?;
        if let Some(sw) = &sweep {
            cfg.rate = crate::sweep::per_stream_rate(sw.rates[0], &cfg);
            cfg.duration = sw.step;
            warnings.extend(sparse_sweep_note(&cfg, sw.rates[0]));
        }
        let mut report = self.report_config(&cfg, plan.workers)?;
        let metrics_addr = metrics_addr(self.metrics_addr.as_deref())?;
        if metrics_addr.is_some() {
            crate::metrics::check_label_names(&report.labels)?;
        } else if self.metrics_linger.is_some() {
            warnings.push("--metrics-linger has no effect without --metrics-addr; ignored".into());
        }
        let progress = !self.no_progress && (self.progress || std::io::stderr().is_terminal());
        if metrics_addr.is_some() || progress {
            report.live = Some(Arc::new(crate::metrics::Live::new(report.labels.clone())));
        }
        let start_late_max = self.start_late_max.unwrap_or(START_LATE_MAX);
        let start_at = self.start_at(start_late_max, &mut warnings)?;
        let loop_opts = LoopOptions {
            spin: self.spin,
            spin_for: spin_for(self.spin_us)?,
        };
        Ok(ConnectPlan {
            demo: cfg.targets.is_empty(),
            cfg,
            report,
            plan,
            loop_opts,
            hdr_log: self.hdr_log,
            start_at,
            start_late_max,
            warnings,
            sweep,
            metrics_addr,
            metrics_linger: self.metrics_linger.unwrap_or_default(),
            progress,
        })
    }

    /// `--sweep` and `--sweep-step`, and the flags a sweep cannot take: `-r` (each step sets
    /// the rate), `--hdr-log` (one log per run, and a sweep is many) and
    /// `--latency-distribution` (a total-row spectrum; steps have none). `-d`, `-i` and
    /// `--show-only-results` have no effect and are noted.
    fn sweep(&self, warnings: &mut Vec<String>) -> Result<Option<Sweep>> {
        let Some(text) = &self.sweep else {
            if self.sweep_step.is_some() {
                warnings.push("--sweep-step has no effect without --sweep; ignored".into());
            }
            return Ok(None);
        };
        let rates = crate::sweep::parse_sweep(text)
            .map_err(|e| Error::Config(format!("invalid --sweep {text:?}: {e}")))?;
        let clash = [
            (self.rate.is_some(), "-r/--rate (each step sets the rate)"),
            (self.hdr_log.is_some(), "--hdr-log"),
            (self.latency_distribution, "--latency-distribution"),
        ];
        if let Some((_, flag)) = clash.iter().find(|(given, _)| *given) {
            return Err(Error::Config(format!(
                "--sweep cannot be combined with {flag}"
            )));
        }
        for (given, flag, why) in [
            (
                self.duration.is_some(),
                "-d/--duration",
                "--sweep-step sets each step's measured time",
            ),
            (
                self.interval.is_some(),
                "-i/--interval",
                "a sweep prints a row per step, no interval rows",
            ),
            (
                self.show_only_results,
                "--show-only-results",
                "a sweep prints only its step rows",
            ),
        ] {
            if given {
                warnings.push(format!(
                    "{flag} has no effect with --sweep ({why}); ignored"
                ));
            }
        }
        Ok(Some(Sweep {
            rates,
            step: self.sweep_step.unwrap_or(DEFAULT_SWEEP_STEP),
            slo: self.slo.clone(),
        }))
    }

    /// `--start-at`, checked against the clock now (too far ahead, or later than `late_max`, is
    /// a usage error before anything starts; `wait_for_start` checks again when the wait begins).
    fn start_at(
        &self,
        late_max: Duration,
        warnings: &mut Vec<String>,
    ) -> Result<Option<SystemTime>> {
        let Some(t) = &self.start_at else {
            if self.start_late_max.is_some() {
                warnings.push("--start-late-max has no effect without --start-at; ignored".into());
            }
            return Ok(None);
        };
        let at = parse_start_at(t)
            .map_err(|e| Error::Config(format!("invalid --start-at {t:?}: {e}")))?;
        start_at_wait(at, SystemTime::now(), late_max)?;
        Ok(Some(at))
    }

    /// The engine's half of the flags and the worker plan (the in-flight default depends on
    /// it). The checks keep their old order, so a command line with several mistakes still
    /// reports the same one.
    fn connect_config(
        &self,
        warnings: &mut Vec<String>,
        sweep: bool,
    ) -> Result<(ConnectConfig, Plan)> {
        let defaults = ConnectConfig::default();
        let proto: Proto = keyword_or_default("--proto", self.proto.as_deref())?;
        let flavor: Flavor = keyword_or_default("--flavor", self.flavor.as_deref())?;
        let close: CloseMode = keyword_or_default("--close", self.close.as_deref())?;
        let targets = self.targets()?;
        let message_bytes = message_bytes(self.message_bytes, proto, &targets)?;
        let connections = connections(self.connections)?;
        let rate = self.rate.unwrap_or(defaults.rate);
        // A sweep's steps are paced: never a closed loop.
        let paced = if sweep { defaults.rate } else { rate };
        warnings.extend(self.ignored_flags(proto, flavor, paced));
        let max_inflight = given_max_inflight(self.max_inflight)?;
        let source_addrs = source_addrs(self.source_addrs.as_deref(), &targets)?;
        let depth = depth(self.depth, proto, flavor, warnings)?;
        let plan = plan_of(&self.cpus, self.workers)?;
        let busy_poll_us = busy_poll(self.busy_poll)?;
        let mode = match (proto, flavor) {
            (Proto::Udp, Flavor::Persistent) => Mode::Udp { flows: connections },
            (Proto::Udp, Flavor::Ephemeral) => Mode::UdpEphemeral {
                max_inflight: max_inflight_or_fit(max_inflight, plan.workers)?,
                concurrency: connections,
            },
            (Proto::Tcp, Flavor::Persistent) => Mode::Persistent { connections, depth },
            (Proto::Tcp, Flavor::Ephemeral) => Mode::Ephemeral {
                close,
                max_inflight: max_inflight_or_fit(max_inflight, plan.workers)?,
                concurrency: connections,
            },
        };
        let cfg = ConnectConfig {
            targets,
            mode,
            rate,
            duration: self.duration.unwrap_or(defaults.duration),
            warmup: self.warmup.unwrap_or(defaults.warmup),
            interval: self.interval.unwrap_or(defaults.interval),
            message_bytes,
            timeout: self.timeout.unwrap_or(defaults.timeout),
            source_addrs,
            busy_poll_us,
            arrival: self.arrival(warnings)?,
        };
        if !sweep {
            warnings.extend(sparse_schedule_note(&cfg));
        }
        Ok((cfg, plan))
    }

    /// `--arrival` and `--seed`; a Poisson run without a seed gets one from the clock.
    fn arrival(&self, warnings: &mut Vec<String>) -> Result<Arrival> {
        let kind: ArrivalKind = keyword_or_default("--arrival", self.arrival.as_deref())?;
        if kind == ArrivalKind::Uniform {
            if self.seed.is_some() {
                warnings.push("--seed has no effect without --arrival poisson; ignored".into());
            }
            return Ok(Arrival::Uniform);
        }
        let seed = self.seed.unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64
        });
        Ok(Arrival::Poisson { seed })
    }

    /// The reporter's half of the flags.
    fn report_config(&self, cfg: &ConnectConfig, workers: usize) -> Result<ReportConfig> {
        Ok(ReportConfig {
            peers: cfg.targets.iter().map(|t| t.name.clone()).collect(),
            merge: self.merge_results_each_host,
            // `--jsonlines` prints only the totals, as the Go tool does; `--json-stream` (iperf3's
            // name) adds the interval rows, and wins when both are given.
            jsonlines: self.jsonlines || self.json_stream,
            show_only_results: self.show_only_results || (self.jsonlines && !self.json_stream),
            workers,
            extra_percentiles: percentiles_or_default(self.percentiles.as_deref())?,
            latency_distribution: self.latency_distribution,
            udp: cfg.udp(),
            ephemeral: cfg.ephemeral(),
            labels: self
                .label
                .iter()
                .map(|l| crate::histlog::parse_label(l))
                .collect::<Result<_>>()?,
            seed: match cfg.arrival {
                Arrival::Poisson { seed } => Some(seed),
                Arrival::Uniform => None,
            },
            thresholds: self.thresholds()?,
            live: None,
        })
    }

    /// `--max-error-rate` and `--slo`.
    fn thresholds(&self) -> Result<crate::verdict::Thresholds> {
        thresholds(self.max_error_rate.as_deref(), self.slo.as_deref())
    }

    /// The targets: the positional addresses, or the entries of the `--addrs-file`; none with
    /// `--demo`. No address without `--demo` is a usage error: an empty `$TARGETS` in a
    /// script must not quietly benchmark a built-in server.
    fn targets(&self) -> Result<Vec<Target>> {
        match (self.demo, self.addrs.is_empty()) {
            (true, false) => {
                return Err(Error::Config(
                    "--demo runs against a built-in server and takes no address".into(),
                ))
            }
            (false, true) if !self.addrs_file => {
                return Err(Error::Config(
                    "no target address: give host:port (to try connperf locally: `make run`, or `connperf connect --demo`)".into(),
                ))
            }
            (true, true) => return Ok(Vec::new()),
            _ => {}
        }
        let named = if self.addrs_file {
            match self.addrs.as_slice() {
                [f] => read_addrs_file(f, "--addrs-file")?,
                _ => {
                    return Err(Error::Config(format!(
                        "--addrs-file takes exactly one positional argument, the file (got {})",
                        self.addrs.len()
                    )))
                }
            }
        } else {
            let mut v = Vec::new();
            for a in &self.addrs {
                v.push((
                    a.clone(),
                    parse_addr(a).map_err(|e| Error::Config(format!("invalid target: {e}")))?,
                ));
            }
            v
        };
        Ok(named
            .into_iter()
            .map(|(name, addr)| Target { name, addr })
            .collect())
    }

    /// Notes for flags that were given but mean nothing in this mode.
    fn ignored_flags(&self, proto: Proto, flavor: Flavor, rate: f64) -> Vec<String> {
        let mut notes = Vec::new();
        let closed = rate == 0.0;
        if self.connections.is_some() && flavor == Flavor::Ephemeral && !closed {
            notes.push(
                "--connections has no effect with --flavor ephemeral at a fixed --rate (it sets persistent connections and UDP flows); ignored".into(),
            );
        }
        if self.close.is_some() && !(proto == Proto::Tcp && flavor == Flavor::Ephemeral) {
            notes.push("--close has no effect outside --flavor ephemeral; ignored".into());
        }
        if self.enable_pprof || self.pprof_addr.is_some() {
            notes.push(
                "--enable-pprof/--pprof-addr have no meaning here; profile with `perf record -g -p PID` (worker threads are named connperf-w0, connperf-w1, ...)".into(),
            );
        }
        notes
    }
}

/// `-c` and `--depth` when not given: those of `ConnectConfig::default()`, a persistent TCP run.
fn persistent_defaults() -> (usize, usize) {
    match ConnectConfig::default().mode {
        Mode::Persistent { connections, depth } => (connections, depth),
        other => unreachable!("ConnectConfig::default() is persistent TCP, not {other:?}"),
    }
}

/// `--message-bytes`: 1 to 16 MiB; over UDP at least the header every datagram carries and at
/// most one datagram: 65,527 bytes when every target is IPv6, else 65,507 (the `--demo` server
/// is IPv4).
fn message_bytes(given: Option<u64>, proto: Proto, targets: &[Target]) -> Result<usize> {
    let n = given.unwrap_or(ConnectConfig::default().message_bytes as u64);
    if n == 0 || n > MAX_MESSAGE_BYTES {
        return Err(Error::Config(format!(
            "invalid --message-bytes {n}: must be 1 to {MAX_MESSAGE_BYTES} (16 MiB)"
        )));
    }
    let n = n as usize;
    if proto == Proto::Udp {
        let (max, over) = udp_payload_max(targets);
        if n < UDP_HEADER_LEN || n > max {
            return Err(Error::Config(format!(
                "invalid --message-bytes {n}: a UDP message must be {UDP_HEADER_LEN} (its header: sequence number and send time) to {max} bytes{over}"
            )));
        }
    }
    Ok(n)
}

/// The largest UDP payload to every target, and what limits it (for the error message).
fn udp_payload_max(targets: &[Target]) -> (usize, &'static str) {
    let all_v6 = !targets.is_empty() && targets.iter().all(|t| t.addr.is_ipv6());
    if all_v6 {
        (MAX_UDP_PAYLOAD_V6, " (IPv6)")
    } else if targets.iter().any(|t| t.addr.is_ipv6()) {
        (MAX_UDP_PAYLOAD_V4, " (IPv4: not every target is IPv6)")
    } else {
        (MAX_UDP_PAYLOAD_V4, " (IPv4)")
    }
}

/// A note when `--rate` × `--duration` is under one request for every stream of the schedule
/// (a persistent connection; for ephemeral and UDP runs, a target), saying how many requests
/// the (uniform) schedule holds in the measured time: none at all with `-r 0.0001 -d 1s`. The
/// run still goes ahead: it may be meant to check connecting, and it reports what it measured.
fn sparse_schedule_note(cfg: &ConnectConfig) -> Option<String> {
    sparse_schedule(cfg).map(|(n, unit)| {
        format!(
            "-r {} for -d {:?} is under one request per {unit}: the schedule holds {n} request{} in the measured time{}",
            cfg.rate,
            cfg.duration,
            if n == 1 { "" } else { "s" },
            if n == 0 { ", so nothing will be measured" } else { "" }
        )
    })
}

/// As `sparse_schedule_note`, for the first step of a `--sweep` (which has no `-r` or `-d`).
fn sparse_sweep_note(cfg: &ConnectConfig, total: f64) -> Option<String> {
    sparse_schedule(cfg).map(|(n, unit)| {
        format!(
            "the first --sweep step, {total} req/s ({} per {unit}), for --sweep-step {:?} is under one request per {unit}: it holds {n} request{}{}",
            cfg.rate,
            cfg.duration,
            if n == 1 { "" } else { "s" },
            if n == 0 { ", so nothing will be measured" } else { "" }
        )
    })
}

/// A schedule with under one request per stream in the measured time: the requests it holds
/// in all, and what a stream is (`connection` or `target`).
fn sparse_schedule(cfg: &ConnectConfig) -> Option<(u64, &'static str)> {
    if cfg.closed_loop() {
        return None;
    }
    let r = cfg.rate;
    let per_stream = r * cfg.duration.as_secs_f64();
    if per_stream >= 1.0 {
        return None;
    }
    // Slot k of a stream whose first slot is `phase` periods after the start is due at
    // `(phase + k) / r` s; it is measured if that falls in [warmup, warmup + duration).
    let (from, to) = (
        r * cfg.warmup.as_secs_f64(),
        r * (cfg.warmup + cfg.duration).as_secs_f64(),
    );
    let slots = |phase: f64| -> u64 {
        let lo = (from - phase).ceil().max(0.0);
        let hi = (to - phase).ceil().max(0.0);
        (hi - lo).max(0.0) as u64
    };
    let (per_target, unit) = match cfg.mode {
        Mode::Persistent { connections, .. } => (
            (0..connections)
                .map(|c| slots((c as f64 + 0.5) / connections as f64))
                .sum::<u64>(),
            "connection",
        ),
        // The target's one schedule, shared by its flows or workers: slots 0, 1, 2, ...
        Mode::Udp { .. } | Mode::UdpEphemeral { .. } | Mode::Ephemeral { .. } => {
            (slots(0.0), "target")
        }
    };
    let n = per_target * cfg.targets.len().max(1) as u64;
    Some((n, unit))
}

/// `-c`: 1 to `MAX_CONNECTIONS`.
fn connections(given: Option<u64>) -> Result<usize> {
    let n = given.unwrap_or(persistent_defaults().0 as u64);
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(Error::Config(format!(
            "invalid --connections {n}: must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    Ok(n as usize)
}

/// `--depth`: 1 to `MAX_DEPTH`; a note when the mode has no pipelining.
fn depth(
    given: Option<u64>,
    proto: Proto,
    flavor: Flavor,
    warnings: &mut Vec<String>,
) -> Result<usize> {
    match given {
        None => Ok(persistent_defaults().1),
        Some(0) => Err(Error::Config(
            "invalid --depth 0: must be at least 1".into(),
        )),
        Some(d) if d > MAX_DEPTH => Err(Error::Config(format!(
            "invalid --depth {d}: at most {MAX_DEPTH}"
        ))),
        Some(d) => {
            if proto == Proto::Udp || flavor == Flavor::Ephemeral {
                warnings.push("--depth has no effect outside persistent TCP; ignored".into());
            }
            Ok(d as usize)
        }
    }
}

/// `--max-inflight` as given: at least 1.
fn given_max_inflight(given: Option<u64>) -> Result<Option<usize>> {
    match given {
        Some(0) => Err(Error::Config(
            "invalid --max-inflight 0: must be at least 1".into(),
        )),
        n => Ok(n.map(|n| n as usize)),
    }
}

/// The ephemeral in-flight cap: `--max-inflight` as given, or else the default fitted under the
/// open-file limit (which this raises first), so that a dead target fills the in-flight window
/// rather than the descriptor table.
fn max_inflight_or_fit(given: Option<usize>, workers: usize) -> Result<usize> {
    match given {
        Some(n) => Ok(n),
        None => Ok(fit_max_inflight(rlimit::raise_nofile()?, workers)),
    }
}

/// `DEFAULT_MAX_INFLIGHT`, or each worker's share of the open-file limit less the slack if
/// that is smaller (but at least 1).
fn fit_max_inflight(limit: rlimit::NoFile, workers: usize) -> usize {
    let per_worker = limit.soft.saturating_sub(rlimit::SLACK_FDS) / workers as u64;
    DEFAULT_MAX_INFLIGHT.min(per_worker.max(1) as usize)
}

/// `--source-addrs`, which must hold an address of each target's family.
fn source_addrs(given: Option<&str>, targets: &[Target]) -> Result<Vec<IpAddr>> {
    let Some(s) = given else {
        return Ok(Vec::new());
    };
    let addrs = parse_source_addrs(s)
        .map_err(|e| Error::Config(format!("invalid --source-addrs {s:?}: {e}")))?;
    let unmatched = targets
        .iter()
        .find(|t| !addrs.iter().any(|a| a.is_ipv4() == t.addr.is_ipv4()));
    match unmatched {
        Some(t) if !addrs.is_empty() => Err(Error::Config(format!(
            "invalid --source-addrs: no address of the same family as target {}",
            t.name
        ))),
        _ => Ok(addrs),
    }
}

/// Why `parse_args` returned no `Args`: what to print, and so the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `--help`: the help text, for stdout; status 0.
    Help(String),
    /// A usage error: one line, for stderr; status 2.
    Usage(String),
}

/// Parse argv (without the program name) into `Args`, or the early exit to take.
pub fn parse_args(argv: &[String]) -> std::result::Result<Args, Exit> {
    parse_args_noting(argv, &mut Vec::new())
}

/// `parse_args`, adding to `notes` what rewriting the Go tool's spellings has to say
/// (`note: -d given twice; the last (2s) is used`), for stderr.
pub fn parse_args_noting(
    argv: &[String],
    notes: &mut Vec<String>,
) -> std::result::Result<Args, Exit> {
    let norm = crate::args::normalize(argv).map_err(Exit::Usage)?;
    notes.extend(norm.notes);
    let args = norm.argv;
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Args::from_args(&["connperf"], &refs).map_err(|early| match early.status {
        Ok(()) => Exit::Help(early.output),
        Err(()) => {
            let first = early
                .output
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            Exit::Usage(first.trim().to_string())
        }
    })
}

/// Install SIGINT/SIGTERM handling: the first signal triggers `shutdown` (stop, drain what is
/// in flight, report); a second hurries it (the drain ends at once; the report is still printed
/// and the exit status is the run's). `timeout` sends two: one to the child, one to its process
/// group. A third is the escape hatch for a hung process: exit at once with status 130, without
/// the report.
/// Returns the count of signals received (`--metrics-linger` ends at the next one).
fn install_signals(shutdown: &Shutdown) -> Arc<AtomicUsize> {
    let s = shutdown.clone();
    install_signal_handler(move |hurry| if hurry { s.hurry() } else { s.trigger() })
}

/// As `install_signals`, calling `on(false)` for the first signal and `on(true)` for the
/// second (a sweep passes both to its current step). Returns the count of signals received.
fn install_signal_handler(on: impl Fn(bool) + Send + 'static) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let _ = ctrlc::set_handler(move || match hits.fetch_add(1, Ordering::SeqCst) {
        0 => on(false),
        1 => {
            eprintln!("connperf: signalled again: stopping without the drain (a third signal exits at once, without the report)");
            on(true);
        }
        _ => std::process::exit(130),
    });
    counted
}

/// Raise the open-file limit and check `needed` descriptors against it: short, a warning
/// (sockets beyond it fail with EMFILE and are counted). `udp_flows` (flows per target,
/// targets): UDP flows are opened before the run starts, so flows beyond the limit could not
/// be counted the way excess connections are: a usage error instead, naming both numbers.
fn check_fds(needed: u64, udp_flows: Option<(usize, usize)>) -> Result<()> {
    let lim = rlimit::raise_nofile()?;
    let Some(msg) = rlimit::shortfall(lim, needed) else {
        return Ok(());
    };
    if let Some((flows, targets)) = udp_flows {
        return Err(Error::Config(format!(
            "-p udp -c {flows} opens {flows} sockets per target ({needed} for {targets} target(s)) but the open-file limit is {}: lower -c or raise the limit (`ulimit -n`)",
            lim.soft
        )));
    }
    eprintln!("connperf: warning: {msg}");
    Ok(())
}

/// `connperf serve`.
pub fn run_serve(args: ServeArgs) -> Result<()> {
    let ServePlan {
        cfg,
        plan,
        loop_opts: opts,
        metrics_addr,
    } = args.into_config()?;
    let _metrics = start_metrics(metrics_addr, cfg.live.as_ref())?;
    let per_addr = match cfg.protocols {
        Protocols::All => 2,
        _ => 1,
    };
    check_fds(
        ((cfg.addrs.len() * plan.workers * per_addr) as u64)
            .saturating_add(cfg.max_connections.unwrap_or(0)),
        None,
    )?;
    let shutdown = Shutdown::new();
    install_signals(&shutdown);
    let protos = match cfg.protocols {
        Protocols::Tcp => "tcp",
        Protocols::Udp => "udp",
        Protocols::All => "tcp+udp",
    };
    let jsonlines = cfg.jsonlines;
    let server = Server::start(
        cfg,
        &plan,
        &shutdown,
        opts,
        std::io::BufWriter::new(std::io::stdout()),
    )?;
    {
        let mut out = std::io::stdout().lock();
        for a in &server.addrs {
            let _ = writeln!(
                out,
                "{}",
                listening_line(jsonlines, *a, protos, plan.workers)
            );
        }
        let _ = out.flush();
    }
    while !shutdown.wait_timeout(Duration::from_secs(3600)) {}
    server.join()?;
    Ok(())
}

/// What `serve` prints once per bound address: `Listening at ADDR (PROTOS, N workers)`, or
/// with `--jsonlines` a JSON object (`"kind":"listening"`), so that stdout is JSON only.
fn listening_line(jsonlines: bool, addr: SocketAddr, protos: &str, workers: usize) -> String {
    #[derive(serde::Serialize)]
    struct Listening<'a> {
        kind: &'a str,
        addr: String,
        proto: &'a str,
        workers: usize,
    }
    if jsonlines {
        let row = Listening {
            kind: "listening",
            addr: addr.to_string(),
            proto: protos,
            workers,
        };
        serde_json::to_string(&row).expect("string keys")
    } else {
        format!("Listening at {addr} ({protos}, {workers} workers)")
    }
}

/// `connperf connect`.
pub fn run_connect(args: ConnectArgs) -> Result<()> {
    let plan = args.into_config()?;
    for w in &plan.warnings {
        eprintln!("connperf: note: {w}");
    }
    let live = plan.report.live.clone();
    let metrics = start_metrics(plan.metrics_addr, live.as_ref())?;
    let linger = plan.metrics_linger;
    let progress = match (&live, plan.progress) {
        (Some(l), true) => Some(crate::progress::Progress::start(l.clone())?),
        _ => None,
    };
    let shutdown = Shutdown::new();
    let sweep_stop = plan.sweep.as_ref().map(|_| crate::sweep::Stop::new());
    let signals = match &sweep_stop {
        Some(stop) => {
            let stop = stop.clone();
            install_signal_handler(move |hurry| stop.signal(hurry))
        }
        None => install_signals(&shutdown),
    };
    // The demo server stops only after the client has drained, or its closing connections
    // would count as client errors.
    let demo_shutdown = Shutdown::new();
    let (plan, demo_server) = if plan.demo {
        let server = start_demo(plan.cfg.mode, &demo_shutdown)?;
        (plan.aim_at_demo(server.addrs[0]), Some(server))
    } else {
        (plan, None)
    };
    // A sweep's signals reach its own shutdown, which also ends the --start-at wait.
    let waits_on = sweep_stop.as_ref().map_or(&shutdown, |s| s.sweep()).clone();
    let joined = match (sweep_stop, start_load(plan, &waits_on)) {
        (Some(stop), Ok(Some(Load::Sweep(plan)))) => run_sweep(plan, &stop),
        (_, Ok(Some(Load::Sweep(_)))) => unreachable!("a sweep plan always has its Stop"),
        (_, Ok(Some(Load::Run(run)))) => run_to_end(run, &shutdown, live.as_deref()),
        (_, Ok(None)) => {
            eprintln!("connperf: stopped by a signal while waiting for --start-at; nothing was sent, no report");
            Ok(())
        }
        (_, Err(e)) => {
            shutdown.trigger();
            Err(e)
        }
    };
    if let Some(p) = progress {
        p.stop();
    }
    if let (Some(live), Some(m)) = (&live, &metrics) {
        // A run that failed a check is served too: its final numbers are the ones to see.
        let reported = matches!(joined, Ok(()) | Err(Error::Failed(_)));
        if reported && !linger.is_zero() {
            let seen = signals.load(Ordering::SeqCst);
            live.wait_scraped(
                linger,
                || signals.load(Ordering::SeqCst) > seen,
                || {
                    eprintln!(
                        "connperf: serving the final metrics at http://{}/metrics until scraped or {linger:?}",
                        m.addr
                    )
                },
            );
        }
    }
    demo_shutdown.trigger();
    let demo = demo_server.map_or(Ok(()), |s| s.join().map(|_| ()));
    joined.and(demo)
}

/// Let a started run go to its end (or a signal), stop it and wait for its report: an error
/// naming each failed check if its totals failed one (exit status 1).
fn run_to_end(run: Run, shutdown: &Shutdown, live: Option<&crate::metrics::Live>) -> Result<()> {
    if let Some(l) = live {
        l.set_phase(crate::metrics::Phase::Ramp {
            since: std::time::Instant::now(),
        });
    }
    let (summary, _) = run.drive(shutdown, live)?;
    if summary.failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(summary.failures))
    }
}

/// The demo's echo server: one worker on a free port of 127.0.0.1, speaking the run's protocol.
fn start_demo(mode: Mode, shutdown: &Shutdown) -> Result<Server> {
    let cfg = ServeConfig {
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        protocols: if matches!(mode, Mode::Udp { .. } | Mode::UdpEphemeral { .. }) {
            Protocols::Udp
        } else {
            Protocols::Tcp
        },
        ..Default::default()
    };
    let plan = Plan {
        cores: Vec::new(),
        workers: 1,
        strict: false,
    };
    // The demo server never spins (`serve`'s default would spin for DEFAULT_SPIN_US after each
    // event): on the generator's own cores it would take CPU from the run it serves.
    let no_spin = LoopOptions {
        spin: false,
        spin_for: Duration::ZERO,
    };
    let server = Server::start(cfg, &plan, shutdown, no_spin, std::io::sink())?;
    eprintln!(
        "connperf: --demo: running against a built-in echo server at {} (give host:port to test a real server)",
        server.addrs[0]
    );
    Ok(server)
}

/// What `start_load` got going.
enum Load {
    /// A run, started.
    Run(Run),
    /// A sweep, ready to run its steps (`run_sweep`).
    Sweep(Box<ConnectPlan>),
}

/// A sweep whose checks (descriptors, `--start-at`) are done: its steps, each a run.
fn run_sweep(plan: Box<ConnectPlan>, stop: &crate::sweep::Stop) -> Result<()> {
    let sweep = plan.sweep.as_ref().expect("Load::Sweep holds a sweep");
    crate::sweep::run(
        &plan.cfg,
        &plan.report,
        &plan.plan,
        plan.loop_opts,
        sweep,
        stop,
        std::io::BufWriter::new(std::io::stdout()),
    )
}

/// Check the descriptors the run needs, open `--hdr-log`, wait for `--start-at`, then start
/// the workers and the reporter (a sweep starts its own per step). `None`: a signal came
/// during the wait, so nothing started.
fn start_load(plan: ConnectPlan, shutdown: &Shutdown) -> Result<Option<Load>> {
    let udp_flows = match plan.cfg.mode {
        Mode::Udp { flows } => Some((flows, plan.cfg.targets.len())),
        _ => None,
    };
    check_fds(plan.cfg.fds_needed(plan.plan.workers), udp_flows)?;
    let hdr_log = match &plan.hdr_log {
        Some(path) => Some(open_hdr_log(path, &plan.report, plan.plan.workers)?),
        None => None,
    };
    if let Some(at) = plan.start_at {
        if !wait_for_start(
            at,
            plan.start_late_max,
            shutdown,
            plan.report.live.as_deref(),
        )? {
            // Nothing ran, so there is no log either: a header alone would pass for a run
            // that measured nothing.
            if let (Some(log), Some(path)) = (hdr_log, &plan.hdr_log) {
                drop(log);
                let _ = std::fs::remove_file(path);
            }
            return Ok(None);
        }
    }
    if plan.sweep.is_some() {
        return Ok(Some(Load::Sweep(Box::new(plan))));
    }
    Run::start(
        plan.cfg,
        plan.report,
        &plan.plan,
        shutdown,
        plan.loop_opts,
        std::io::BufWriter::new(std::io::stdout()),
        hdr_log,
    )
    .map(|run| Some(Load::Run(run)))
}

/// Create the `--hdr-log` file and write its header.
fn open_hdr_log(
    path: &str,
    report: &ReportConfig,
    workers: usize,
) -> Result<crate::driver::HdrLog> {
    let f = std::fs::File::create(path)
        .map_err(|e| Error::Config(format!("invalid --hdr-log {path:?}: {e}")))?;
    let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(f));
    let run = crate::histlog::RunInfo {
        format: crate::histlog::LOG_FORMAT,
        workers,
        udp: report.udp,
        ephemeral: report.ephemeral,
    };
    crate::histlog::LogWriter::new(out, SystemTime::now(), &report.labels, run)
}

/// Sleep until `--start-at`; a time already past (by at most `late_max`) starts at once with a
/// note saying how late. False if a signal ended the wait: the run is not started, so there is
/// no report of zeros.
fn wait_for_start(
    at: SystemTime,
    late_max: Duration,
    shutdown: &Shutdown,
    live: Option<&crate::metrics::Live>,
) -> Result<bool> {
    match start_at_wait(at, SystemTime::now(), late_max)? {
        StartAt::Late(late) => {
            eprintln!(
                "connperf: note: starting {:.3} s late: --start-at had already passed",
                late.as_secs_f64()
            );
            Ok(true)
        }
        StartAt::Wait(wait) => {
            eprintln!(
                "connperf: waiting {:.1} s for --start-at",
                wait.as_secs_f64()
            );
            if let Some(l) = live {
                l.set_phase(crate::metrics::Phase::StartAt { at });
            }
            Ok(!shutdown.wait_timeout(wait))
        }
    }
}

/// `--max-error-rate` and `--slo` (connect and merge).
fn thresholds(
    max_error_rate: Option<&str>,
    slo: Option<&str>,
) -> Result<crate::verdict::Thresholds> {
    let mut t = crate::verdict::Thresholds::default();
    if let Some(v) = max_error_rate {
        t.max_error_rate = crate::verdict::parse_pct(v)
            .map_err(|e| Error::Config(format!("invalid --max-error-rate {v:?}: {e}")))?;
    }
    if let Some(v) = slo {
        t.slo = crate::verdict::parse_slo(v)
            .map_err(|e| Error::Config(format!("invalid --slo {v:?}: {e}")))?;
    }
    Ok(t)
}

/// `connperf merge`.
pub fn run_merge(args: MergeArgs) -> Result<()> {
    if args.files.is_empty() {
        return Err(Error::Config(
            "merge needs at least one interval log file".into(),
        ));
    }
    if let Some(key) = &args.by {
        crate::histlog::check_by(key)?;
    }
    let mut logs = Vec::new();
    for f in &args.files {
        let mut log = crate::histlog::read_log(Path::new(f))?;
        log.name = f.clone();
        logs.push(log);
    }
    if !args.allow_duplicates {
        crate::histlog::check_duplicates(&logs)?;
    }
    let longest = logs
        .iter()
        .flat_map(|l| &l.entries)
        .map(|e| e.duration)
        .max();
    if let (Some(want), Some(longest)) = (args.interval, longest) {
        // A logged window cannot be split: its counts would land in a shorter window and
        // multiply the rate.
        if want < longest {
            return Err(Error::Config(format!(
                "invalid --interval {want:?}: shorter than the logs' own windows ({longest:?})"
            )));
        }
    }
    let mut merged = crate::histlog::merge(
        &logs,
        args.interval,
        args.merge_results_each_host,
        args.by.as_deref(),
    )?;
    if merged.windows.is_empty() {
        return Err(Error::Config("the logs hold no intervals to merge".into()));
    }
    let base = ReportConfig {
        jsonlines: args.jsonlines,
        show_only_results: args.show_only_results,
        extra_percentiles: percentiles_or_default(args.percentiles.as_deref())?,
        latency_distribution: args.latency_distribution,
        thresholds: thresholds(args.max_error_rate.as_deref(), args.slo.as_deref())?,
        ..Default::default()
    };
    if args.merge_results_each_host {
        // Judge each target on its own too, as `connect --merge-results-each-host` does: the
        // per-target merge, printed nowhere, names the targets that failed.
        let per_target = crate::histlog::merge(&logs, args.interval, false, None)?;
        let quiet = ReportConfig {
            jsonlines: true,
            show_only_results: true,
            latency_distribution: false,
            ..base.clone()
        };
        let judged = crate::histlog::print_merged(&per_target, &quiet, std::io::sink());
        if per_target.rows.len() > 1 {
            for row in merged.rows.iter_mut().filter(|r| r.by.is_none()) {
                row.target_failures = judged.failures.clone();
            }
        }
    }
    let summary =
        crate::histlog::print_merged(&merged, &base, std::io::BufWriter::new(std::io::stdout()));
    if summary.failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(summary.failures))
    }
}

/// `connperf plot`.
pub fn run_plot(args: PlotArgs) -> Result<()> {
    let out = args
        .output
        .ok_or_else(|| Error::Config("plot needs -o FILE.svg (or -o - for stdout)".into()))?;
    let px = |flag: &str, v: u64| {
        u32::try_from(v).map_err(|_| Error::Config(format!("invalid {flag} {v}: too large")))
    };
    let opts = crate::plot::PlotOptions {
        files: args.files,
        title: args.title,
        width: px(
            "--width",
            args.width.unwrap_or(crate::plot::DEFAULT_WIDTH.into()),
        )?,
        height: args.height.map(|h| px("--height", h)).transpose()?,
    };
    crate::plot::run(&opts, &out)
}

/// `connperf completion SHELL`: the completion script on stdout.
fn run_completion(shell: &str) -> Result<()> {
    let script = crate::args::completion_script(shell).ok_or_else(|| {
        Error::Config(match shell {
            "" => "completion needs a shell: bash, zsh or fish".to_string(),
            _ => format!("unknown shell {shell:?}: use bash, zsh or fish"),
        })
    })?;
    let _ = std::io::stdout().write_all(script.as_bytes());
    Ok(())
}

/// The program: parse, run, map errors to exit codes. Returns the exit status.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut notes = Vec::new();
    let parsed = parse_args_noting(&argv, &mut notes);
    for note in notes {
        eprintln!("connperf: {note}");
    }
    let args = match parsed {
        Ok(a) => a,
        Err(Exit::Help(help)) => {
            let _ = std::io::stdout().write_all(help.as_bytes());
            return 0;
        }
        Err(Exit::Usage(line)) => {
            eprintln!("connperf: {line}");
            return 2;
        }
    };
    if args.version {
        // A closed stdout (`| head -0`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "connperf {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let res = match args.cmd {
        Some(Command::Serve(s)) => run_serve(s),
        Some(Command::Connect(c)) => run_connect(c),
        Some(Command::Merge(m)) => run_merge(m),
        Some(Command::Plot(p)) => run_plot(p),
        Some(Command::Completion(c)) => run_completion(c.shell.as_deref().unwrap_or("")),
        None => {
            eprintln!("connperf: a subcommand is needed: serve, connect, merge or plot (see connperf --help)");
            return 2;
        }
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            // Like every stderr line (lib.rs `eprintln!`): a closed stderr keeps the status.
            let _ = std::io::stderr().write_all(error_report(&e).as_bytes());
            e.exit_code()
        }
    }
}

/// The stderr text of a failed run: `connperf: {e}`, then a `caused by:` line for each cause
/// that no message above already states. Every `Error` variant with a source writes it into its
/// own message (`cannot listen on ADDR: Address already in use`), and an `io::Error`'s `source`
/// is its inner error's source, so the chain to print starts at the source's source.
fn error_report(e: &Error) -> String {
    let mut out = format!("connperf: {e}\n");
    let mut cause = std::error::Error::source(e).and_then(|s| s.source());
    while let Some(c) = cause {
        out.push_str(&format!("  caused by: {c}\n"));
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// The `serve` listening line: text for the table, a JSON object with `--jsonlines`.
    #[test]
    fn listening_lines() {
        let a: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        assert_eq!(
            listening_line(false, a, "tcp+udp", 2),
            "Listening at 127.0.0.1:9100 (tcp+udp, 2 workers)"
        );
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(
            listening_line(true, v6, "tcp", 1),
            r#"{"kind":"listening","addr":"[::1]:80","proto":"tcp","workers":1}"#
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        for bad in ["", "0", "-1", "5x", "s", "abc", "1e999", "5s3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration_zero("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn keywords_parse_in_any_case_and_quote_the_bad_one() {
        assert_eq!("UDP".parse::<Proto>(), Ok(Proto::Udp));
        assert_eq!("Ephemeral".parse::<Flavor>(), Ok(Flavor::Ephemeral));
        assert_eq!("FIN".parse::<CloseMode>(), Ok(CloseMode::Fin));
        assert_eq!("All".parse::<Protocols>(), Ok(Protocols::All));
        let e = parse_keyword::<Proto>("--proto", "SCTP").unwrap_err();
        assert_eq!(e.to_string(), "invalid --proto \"sctp\": use tcp or udp");
        let e = parse_keyword::<Flavor>("--flavor", "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --flavor \"x\": use persistent or ephemeral"
        );
        let e = parse_keyword::<CloseMode>("--close", "Maybe").unwrap_err();
        assert_eq!(e.to_string(), "invalid --close \"maybe\": use rst or fin");
        let e = parse_keyword::<Protocols>("--protocol", "sctp").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --protocol \"sctp\": use tcp, udp or all"
        );
    }

    #[test]
    fn help_and_usage_errors_are_early_exits() {
        match parse_args(&s(&["connect", "--help"])) {
            Err(Exit::Help(text)) => assert!(text.contains("--message-bytes"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_args(&s(&["connect", "--bogus"])).unwrap_err(),
            Exit::Usage("Unrecognized argument: --bogus".into())
        );
    }

    #[test]
    fn errors_name_their_cause_once() {
        let e = Error::Bind {
            addr: "127.0.0.1:9100".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            error_report(&e),
            format!(
                "connperf: cannot listen on 127.0.0.1:9100: {}\n",
                std::io::Error::from(std::io::ErrorKind::AddrInUse)
            )
        );
        // A cause the messages do not state is still printed.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot encode")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::Io {
            what: "cannot write the --hdr-log file".into(),
            source: std::io::Error::other(Outer(std::io::Error::other("disk full"))),
        };
        assert_eq!(
            error_report(&e),
            "connperf: cannot write the --hdr-log file: cannot encode\n  caused by: disk full\n"
        );
    }

    /// The help texts state the defaults in words; they must say what the code does.
    #[test]
    fn help_states_the_defaults_the_code_uses() {
        let help = |argv: &[&str]| match parse_args(&s(argv)) {
            Err(Exit::Help(text)) => text.split_whitespace().collect::<Vec<_>>().join(" "),
            other => panic!("{other:?}"),
        };
        let d = ConnectConfig::default();
        let Mode::Persistent { connections, depth } = d.mode else {
            panic!("{:?}", d.mode)
        };
        let secs = |t: Duration| format!("{}s", t.as_secs_f64());
        let p = DEFAULT_PERCENTILES.map(|p| p.to_string()).join(",");
        let connect = help(&["connect", "--help"]);
        for want in [
            format!("source ports; default {connections})"),
            format!("closed loop (default {})", d.rate),
            format!("measurement period (default {})", secs(d.duration)),
            format!("16 MiB (default {})", d.message_bytes),
            format!("500ms (default {})", secs(d.interval)),
            format!("lost after it (default {})", secs(d.timeout)),
            format!("(pipelining; default {depth})"),
            format!("(default: {DEFAULT_MAX_INFLIGHT}, or"),
            format!("(adaptive; default {DEFAULT_SPIN_US};"),
            format!("Go tool's (default {p})"),
            format!("ramp and --warmup (default {})", secs(DEFAULT_SWEEP_STEP)),
        ] {
            assert!(connect.contains(&want), "connect --help lacks {want:?}");
        }
        assert!(help(&["merge", "--help"]).contains(&format!("(default {p})")));
        let serve = help(&["serve", "--help"]);
        let sd = ServeConfig::default();
        for want in [
            format!("default {}", sd.addrs[0]),
            format!("backlog (default {})", sd.backlog),
            format!("(adaptive; default {DEFAULT_SPIN_US};"),
        ] {
            assert!(serve.contains(&want), "serve --help lacks {want:?}");
        }
    }

    #[test]
    fn start_at_times() {
        let at = |s: &str| {
            parse_start_at(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
        };
        assert_eq!(at("1764097200"), Duration::from_secs(1_764_097_200));
        assert_eq!(
            at("2025-01-07T10:30:00Z"),
            Duration::from_secs(1_736_245_800)
        );
        assert_eq!(
            at("2025-01-07T11:30:00+01:00"),
            Duration::from_secs(1_736_245_800)
        );
        assert_eq!(
            at("2025-01-07T10:30:00.25Z"),
            Duration::from_millis(1_736_245_800_250)
        );
        assert_eq!(at("2000-02-29T00:00:00Z"), Duration::from_secs(951_782_400));
        for bad in [
            "",
            "tomorrow",
            "2025-13-01T00:00:00Z",
            "2025-01-07T10:30:00",
            "2025-01-07 10:30",
            "-5",
            "2025-01-07T10:30:00+0\u{e9}00",
        ] {
            assert!(parse_start_at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn start_at_waits_up_to_a_day_and_starts_up_to_late_max_late() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_097_200);
        let max = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert_eq!(
            start_at_wait(now + s(30), now, max).unwrap(),
            StartAt::Wait(s(30))
        );
        assert_eq!(
            start_at_wait(now + s(86_400), now, max).unwrap(),
            StartAt::Wait(s(86_400))
        );
        assert_eq!(
            start_at_wait(now - s(2), now, max).unwrap(),
            StartAt::Late(s(2))
        );
        assert_eq!(
            start_at_wait(now - s(10), now, max).unwrap(),
            StartAt::Late(s(10))
        );
        for (at, needle) in [(now - s(11), "--start-late-max"), (now + s(86_401), "24 h")] {
            let e = start_at_wait(at, now, max).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
        assert_eq!(
            start_at_wait(now - s(60), now, s(120)).unwrap(),
            StartAt::Late(s(60))
        );
    }

    #[test]
    fn percentiles_never_collide_with_the_fixed_keys() {
        assert_eq!(
            parse_percentiles("50,99.9,99.99").unwrap(),
            vec![50.0, 99.9, 99.99]
        );
        for bad in ["9.9", "9.5", "0", "101", "x", "99,9.9"] {
            assert!(parse_percentiles(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("127.0.0.1:9100").unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[::1]:9100").unwrap(),
            "[::1]:9100".parse().unwrap()
        );
        assert!(parse_addr("localhost:9100").unwrap().ip().is_loopback());
        for bad in [
            "127.0.0.1",
            "::1:9100",
            "::1",
            "localhost",
            "host:99999",
            "host:x",
            ":80",
            "",
            "no-such-host.invalid:80",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn source_addrs() {
        let v = parse_source_addrs("10.0.0.0/30").unwrap();
        assert_eq!(
            v,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(parse_source_addrs("10.0.0.1,::1").unwrap().len(), 2);
        assert!(parse_source_addrs("10.0.0.0/8").is_err());
        assert!(parse_source_addrs("x").is_err());
    }

    fn connect(argv: &[&str]) -> Result<ConnectPlan> {
        match parse_args(&s(argv)) {
            Ok(Args {
                cmd: Some(Command::Connect(c)),
                ..
            }) => c.into_config(),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(Error::Config(format!("{e:?}"))),
        }
    }

    #[test]
    fn connect_defaults_match_the_go_tool() {
        let p = connect(&["connect", "127.0.0.1:9100"]).unwrap();
        let want = ConnectConfig {
            targets: vec![Target {
                name: "127.0.0.1:9100".into(),
                addr: "127.0.0.1:9100".parse().unwrap(),
            }],
            ..Default::default()
        };
        assert_eq!(p.cfg, want);
        assert!(!p.report.jsonlines && !p.report.merge && !p.report.show_only_results);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn no_target_is_a_demo_aimed_once_its_server_listens() {
        let p = connect(&["connect", "-p", "udp", "--demo"]).unwrap();
        assert!(p.demo && p.cfg.targets.is_empty() && p.report.peers.is_empty());
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let p = p.aim_at_demo(addr);
        assert_eq!(
            p.cfg.targets,
            vec![Target {
                name: "127.0.0.1:40000".into(),
                addr
            }]
        );
        assert_eq!(p.report.peers, vec!["127.0.0.1:40000".to_string()]);
        assert_eq!(p.cfg.mode, Mode::Udp { flows: 10 });
        assert!(!connect(&["connect", "127.0.0.1:1"]).unwrap().demo);
    }

    #[test]
    fn no_target_without_demo_is_a_usage_error() {
        for args in [&["connect"][..], &["connect", "-d", "1s", "-p", "udp"]] {
            let e = connect(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("--demo") && msg.contains("make run"), "{msg}");
        }
        let e = connect(&["connect", "--demo", "127.0.0.1:1"]).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("--demo"), "{e}");
    }

    #[test]
    fn max_inflight_is_as_given_or_fits_the_open_file_limit() {
        let p = connect(&[
            "connect",
            "-f",
            "ephemeral",
            "--max-inflight",
            "7",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(
            p.cfg.mode,
            Mode::Ephemeral {
                close: CloseMode::Rst,
                max_inflight: 7,
                concurrency: 10
            }
        );
        let limit = |soft| rlimit::NoFile { soft, hard: soft };
        assert_eq!(fit_max_inflight(limit(1 << 20), 4), DEFAULT_MAX_INFLIGHT);
        assert_eq!(fit_max_inflight(limit(1024), 2), (1024 - 64) / 2);
        assert_eq!(fit_max_inflight(limit(10), 4), 1);
    }

    #[test]
    fn udp_connections_are_flows_and_ephemeral_udp_a_socket_per_datagram() {
        let p = connect(&["connect", "-p", "udp", "-c", "50", "127.0.0.1:1"]).unwrap();
        assert_eq!(p.cfg.mode, Mode::Udp { flows: 50 });
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.cfg.fds_needed(2), 50);
        let args = [
            "connect",
            "-p",
            "udp",
            "-f",
            "ephemeral",
            "--max-inflight",
            "7",
        ];
        let p = connect(&[&args[..], &["-r", "0", "-c", "3", "127.0.0.1:1"]].concat()).unwrap();
        assert_eq!(
            p.cfg.mode,
            Mode::UdpEphemeral {
                max_inflight: 7,
                concurrency: 3
            }
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(p.report.udp && p.report.ephemeral);
        let p = connect(&[&args[..], &["-c", "3", "127.0.0.1:1"]].concat()).unwrap();
        assert_eq!(p.warnings.len(), 1, "-c at a fixed rate: {:?}", p.warnings);
    }

    #[test]
    fn connect_short_flags_and_go_style() {
        let p = connect(&[
            "connect",
            "-p",
            "udp",
            "-r",
            "0.5",
            "-d",
            "3",
            "-i",
            "500ms",
            "--messageBytes=100",
            "--show-only-results",
            "--merge-results-each-host",
            "--jsonlines",
            "[::1]:1",
            "127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(p.cfg.mode, Mode::Udp { flows: 10 });
        assert_eq!(p.cfg.rate, 0.5);
        assert_eq!(p.cfg.duration, Duration::from_secs(3));
        assert_eq!(p.cfg.interval, Duration::from_millis(500));
        assert_eq!(p.cfg.message_bytes, 100);
        assert_eq!(p.cfg.targets.len(), 2);
        assert!(p.report.merge && p.report.jsonlines && p.report.show_only_results);
    }

    #[test]
    fn jsonlines_is_totals_only_and_json_stream_adds_intervals() {
        let report = |flags: &[&str]| {
            let mut argv = vec!["connect"];
            argv.extend_from_slice(flags);
            argv.push("127.0.0.1:1");
            let r = connect(&argv).unwrap().report;
            (r.jsonlines, r.show_only_results)
        };
        assert_eq!(report(&[]), (false, false));
        assert_eq!(report(&["--jsonlines"]), (true, true));
        assert_eq!(report(&["--json-stream"]), (true, false));
        assert_eq!(report(&["--jsonlines", "--json-stream"]), (true, false));
        assert_eq!(report(&["--json-stream", "--jsonlines"]), (true, false));
        assert_eq!(
            report(&["--json-stream", "--show-only-results"]),
            (true, true)
        );
    }

    #[test]
    fn connect_mistakes_are_config_errors() {
        for argv in [
            &["connect", "--message-bytes", "0", "127.0.0.1:1"][..],
            &["connect", "--message-bytes", "16777217", "127.0.0.1:1"],
            &["connect", "-r", "-1", "127.0.0.1:1"],
            &["connect", "127.0.0.1"],
            &["connect", "-p", "sctp", "127.0.0.1:1"],
            &["connect", "-f", "sometimes", "127.0.0.1:1"],
            &["connect", "--cpus", "99999", "127.0.0.1:1"],
            &["connect", "--addrs-file", "/nonexistent/file"],
            &["connect", "-d", "0", "127.0.0.1:1"],
        ] {
            let e = connect(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }

    #[test]
    fn a_sweep_offers_its_total_rate_over_every_target_and_connection() {
        let p = connect(&[
            "connect",
            "--sweep",
            "1k:3k:1k",
            "-c",
            "5",
            "127.0.0.1:1",
            "127.0.0.1:2",
        ])
        .unwrap();
        let sweep = p.sweep.expect("a sweep");
        assert_eq!(sweep.rates, vec![1000.0, 2000.0, 3000.0]);
        assert_eq!(sweep.step, DEFAULT_SWEEP_STEP);
        assert_eq!(sweep.slo, None);
        assert_eq!(p.cfg.rate, 100.0, "1000/s over 2 targets x 5 connections");
        assert_eq!(p.cfg.duration, DEFAULT_SWEEP_STEP);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let p = connect(&[
            "connect",
            "-p",
            "udp",
            "--sweep",
            "2k:2k:1",
            "--sweep-step",
            "500ms",
            "--slo",
            "p99=2ms",
            "127.0.0.1:1",
            "127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(p.cfg.rate, 1000.0, "per target over UDP");
        assert_eq!(p.cfg.duration, Duration::from_millis(500));
        assert_eq!(p.sweep.unwrap().slo.as_deref(), Some("p99=2ms"));
    }

    #[test]
    fn sweep_mistakes_are_usage_errors_and_idle_flags_notes() {
        for (argv, needle) in [
            (&["--sweep", "1k:2k"][..], "FROM:TO:STEP"),
            (&["--sweep", "2k:1k:1k"], "below FROM"),
            (&["--sweep", "0:1k:1k"], "above 0"),
            (&["--sweep", "1:100k:1"], "steps"),
            (&["--sweep", "1k:2k:1k", "-r", "5"], "-r/--rate"),
            (&["--sweep", "1k:2k:1k", "-r", "0"], "-r/--rate"),
            (&["--sweep", "1k:2k:1k", "--hdr-log", "x"], "--hdr-log"),
            (
                &["--sweep", "1k:2k:1k", "--latency-distribution"],
                "--latency-distribution",
            ),
            (&["--sweep", "1k:2k:1k", "--sweep-step", "0"], "above 0"),
        ] {
            let e = connect(&[&["connect"], argv, &["127.0.0.1:1"]].concat()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
            assert!(e.to_string().contains(needle), "{argv:?}: {e}");
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
        let p = connect(&[
            "connect",
            "--sweep",
            "1k:2k:1k",
            "-d",
            "3s",
            "-i",
            "1s",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("-d/--duration"), "{:?}", p.warnings);
        let p = connect(&["connect", "--sweep-step", "1s", "127.0.0.1:1"]).unwrap();
        assert!(p.sweep.is_none());
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    }

    #[test]
    fn flags_without_effect_warn() {
        let p = connect(&[
            "connect",
            "-f",
            "ephemeral",
            "-c",
            "5",
            "--enable-pprof",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    }

    #[test]
    fn addrs_file_names_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("connperf-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("addrs");
        std::fs::write(
            &f,
            "# targets\n127.0.0.1:1 [::1]:2\n\n127.0.0.1:3 # third\n",
        )
        .unwrap();
        let v = read_addrs_file(f.to_str().unwrap(), "--addrs-file").unwrap();
        assert_eq!(v.len(), 3);
        std::fs::write(&f, "127.0.0.1:1\nnot-an-address\n").unwrap();
        let e = read_addrs_file(f.to_str().unwrap(), "--addrs-file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(read_addrs_file(f.to_str().unwrap(), "--addrs-file").is_err());
        std::fs::write(&f, [0xffu8, 0xfe, 0]).unwrap();
        assert!(read_addrs_file(f.to_str().unwrap(), "--addrs-file")
            .unwrap_err()
            .to_string()
            .contains("binary"));
        assert!(read_addrs_file(dir.to_str().unwrap(), "--addrs-file")
            .unwrap_err()
            .to_string()
            .contains("directory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
