//! Measurements and their output: each worker's per-target `Stats` (HdrHistograms and counters),
//! the `Interval` message a worker sends per reporting window, the reporter thread that merges
//! windows across workers and prints them as a table or JSON Lines, and the echo server's counters.
//! `Reporter::spawn` starts that thread and its bounded channel for `connect` and `serve` alike.
//! A JSON line's schema is a derived `Serialize` struct: `Row` for `connect`, `ServerRow` for
//! `serve`; keys come out in the order of its fields, the Go tool's keys first.
//!
//! Leaves to others: sockets and clocks (`driver`, `echo`). Everything here can be tested with
//! made-up samples.

use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest latency a histogram holds: one hour in ns. Larger samples are clamped and counted.
pub const MAX_NS: u64 = 3_600_000_000_000;
/// HdrHistogram precision: 3 significant digits (0.1 % relative error).
pub const SIGFIGS: u8 = 3;

/// Why a request or connection failed (a kind of failure, not an `io::ErrorKind`). Counted per
/// kind, never fatal to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connection refused (nothing listening, or a RST to the SYN).
    Refused,
    /// Connection reset by the peer.
    Reset,
    /// No answer within `--timeout` (connect or reply).
    Timeout,
    /// The peer closed (FIN) before the whole echo arrived.
    ClosedEarly,
    /// The echo differs from what was sent, or more bytes came than were sent.
    Mismatch,
    /// Network or host unreachable.
    Unreachable,
    /// No local address or port available (EADDRNOTAVAIL).
    AddrNotAvail,
    /// Out of file descriptors (EMFILE/ENFILE).
    FdLimit,
    /// Anything else.
    Other,
}

/// Number of `Failure`s.
pub const ERROR_KINDS: usize = 9;

impl Failure {
    /// All kinds, in report order.
    pub const ALL: [Failure; ERROR_KINDS] = [
        Failure::Refused,
        Failure::Reset,
        Failure::Timeout,
        Failure::ClosedEarly,
        Failure::Mismatch,
        Failure::Unreachable,
        Failure::AddrNotAvail,
        Failure::FdLimit,
        Failure::Other,
    ];

    /// The snake_case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::ClosedEarly => "closed_early",
            Failure::Mismatch => "mismatch",
            Failure::Unreachable => "unreachable",
            Failure::AddrNotAvail => "addr_not_avail",
            Failure::FdLimit => "fd_limit",
            Failure::Other => "other",
        }
    }

    /// Classify an I/O error.
    pub fn of(e: &io::Error) -> Failure {
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => return Failure::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => return Failure::Reset,
            K::TimedOut => return Failure::Timeout,
            K::AddrNotAvailable => return Failure::AddrNotAvail,
            K::UnexpectedEof => return Failure::ClosedEarly,
            _ => {}
        }
        match e.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::ENETDOWN) => {
                Failure::Unreachable
            }
            Some(libc::EMFILE) | Some(libc::ENFILE) => Failure::FdLimit,
            _ => Failure::Other,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a scheduled request never started. Only the generator's own reasons: a request that
/// falls due while its connection is down fails with what took the connection down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// `--max-inflight` connections were open: no room for another.
    InFlightLimit,
    /// The run ended (or was stopped) before the generator got to it.
    RunEnded,
}

/// Number of `Unsent` causes.
pub const UNSENT_CAUSES: usize = 2;

impl Unsent {
    /// All causes, in report order.
    pub const ALL: [Unsent; UNSENT_CAUSES] = [Unsent::InFlightLimit, Unsent::RunEnded];

    /// The snake_case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Unsent::InFlightLimit => "in_flight_limit",
            Unsent::RunEnded => "run_ended",
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, SIGFIGS).expect("constant histogram bounds are valid")
}

/// What one worker measured for one target in one window (or, merged, for many).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency from the intended send time to completion, ns (coordinated omission corrected).
    pub latency: Histogram<u64>,
    /// Service time from the actual send to completion, ns (uncorrected).
    pub service: Histogram<u64>,
    /// Connect time (SYN to established), ns; ephemeral mode only.
    pub connect: Histogram<u64>,
    /// Requests completed with a correct echo.
    pub completed: u64,
    /// Payload bytes sent and echoed back by completed requests.
    pub bytes: u64,
    /// Failed requests by kind.
    pub errors: [u64; ERROR_KINDS],
    /// Persistent connections that went down with no request in flight (refused redials, idle
    /// closes by the peer), by kind. Not requests: the slots they cost are in `errors`.
    pub conn_errors: [u64; ERROR_KINDS],
    /// Sends that went out more than `LATE_START_NS` after their intended time.
    pub late_starts: u64,
    /// Largest gap between a send's intended and actual time, ns.
    pub max_behind_ns: u64,
    /// UDP datagrams with no reply within `--timeout`.
    pub lost: u64,
    /// UDP replies that came after `--timeout` (already counted lost).
    pub late: u64,
    /// UDP replies received twice.
    pub duplicate: u64,
    /// UDP replies that overtook a later request's reply.
    pub reordered: u64,
    /// UDP datagrams that answered no request of this run: too short, or a header that is not
    /// ours (magic, worker, sequence). Events, not requests: the request they might have
    /// answered is still lost or answered.
    pub stray: u64,
    /// UDP sockets (so source ports) that sent in this window.
    pub flows: u64,
    /// UDP sockets that sent for the first time in the run in this window: summed over the
    /// windows, the distinct sockets of the run.
    pub new_flows: u64,
    /// Scheduled requests that never started, all causes: always the generator's own doing.
    pub not_started: u64,
    /// `not_started` by cause, indexed by `Unsent`.
    pub not_started_by: [u64; UNSENT_CAUSES],
    /// Actual send − intended send of every request sent on schedule, ns: each run's own
    /// error bar on its latency (a send late by the generator shows up here, not only there).
    pub send_lag: Histogram<u64>,
    /// Samples above `MAX_NS`, recorded as `MAX_NS`.
    pub clamped: u64,
    /// Only the histograms are known (merged from an interval log written before the logs
    /// carried counters): every counter above is unknown, printed `-` and `null`, never 0.
    /// `completed` is then the latency histogram's count. Merging in unknown counters makes
    /// the sum unknown.
    pub counters_unknown: bool,
}

/// A send more than this behind its intended time counts as a late start.
pub const LATE_START_NS: u64 = 1_000_000;

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Stats {
        Stats {
            latency: new_hist(),
            service: new_hist(),
            connect: new_hist(),
            completed: 0,
            bytes: 0,
            errors: [0; ERROR_KINDS],
            conn_errors: [0; ERROR_KINDS],
            late_starts: 0,
            max_behind_ns: 0,
            lost: 0,
            late: 0,
            duplicate: 0,
            reordered: 0,
            stray: 0,
            flows: 0,
            new_flows: 0,
            not_started: 0,
            not_started_by: [0; UNSENT_CAUSES],
            send_lag: new_hist(),
            clamped: 0,
            counters_unknown: false,
        }
    }

    /// `n` scheduled requests never started, for `cause`.
    pub fn unsent(&mut self, cause: Unsent, n: u64) {
        self.not_started += n;
        self.not_started_by[cause as usize] += n;
    }

    /// Record one completed request.
    pub fn record(&mut self, latency_ns: u64, service_ns: u64, bytes: u64) {
        self.completed += 1;
        self.bytes += bytes;
        if latency_ns > MAX_NS {
            self.clamped += 1;
        }
        self.latency.saturating_record(latency_ns.max(1));
        self.service.saturating_record(service_ns.max(1));
    }

    /// Record how late a send went out relative to its intended time.
    pub fn record_start(&mut self, behind_ns: u64) {
        if behind_ns > LATE_START_NS {
            self.late_starts += 1;
        }
        self.max_behind_ns = self.max_behind_ns.max(behind_ns);
        self.send_lag.saturating_record(behind_ns.max(1));
    }

    /// Record a connect time.
    pub fn record_connect(&mut self, ns: u64) {
        self.connect.saturating_record(ns.max(1));
    }

    /// Count one failure.
    pub fn error(&mut self, kind: Failure) {
        self.errors[kind.index()] += 1;
    }

    /// Count one connection-level failure.
    pub fn conn_error(&mut self, kind: Failure) {
        self.conn_errors[kind.index()] += 1;
    }

    /// Total failures of all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so add cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.connect.add(&other.connect);
        self.completed += other.completed;
        self.bytes += other.bytes;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        for (a, b) in self.conn_errors.iter_mut().zip(other.conn_errors) {
            *a += b;
        }
        self.late_starts += other.late_starts;
        self.max_behind_ns = self.max_behind_ns.max(other.max_behind_ns);
        self.lost += other.lost;
        self.late += other.late;
        self.duplicate += other.duplicate;
        self.reordered += other.reordered;
        self.stray += other.stray;
        self.flows += other.flows;
        self.new_flows += other.new_flows;
        self.not_started += other.not_started;
        for (a, b) in self.not_started_by.iter_mut().zip(other.not_started_by) {
            *a += b;
        }
        let _ = self.send_lag.add(&other.send_lag);
        self.clamped += other.clamped;
        self.counters_unknown |= other.counters_unknown;
    }
}

/// One worker's report for one window, sent to the reporter.
#[derive(Debug)]
pub struct Interval {
    /// The worker that measured it.
    pub worker: usize,
    /// Window number: window `seq` covers `[start + seq * interval, start + (seq + 1) * interval)`.
    pub seq: u64,
    /// How long the window really lasted (the last one is usually shorter).
    pub window: Duration,
    /// Per target, in target order.
    pub stats: Vec<Stats>,
    /// CPU time the worker thread used in the window.
    pub cpu: Duration,
    /// Windows this worker had to fold into this one because the channel was full.
    pub late_reports: u64,
}

/// How the reporter prints.
#[derive(Debug, Clone, Default)]
pub struct ReportConfig {
    /// Target names as the user typed them, in target order.
    pub peers: Vec<String>,
    /// Merge all targets into one row (`--merge-results-each-host`).
    pub merge: bool,
    /// JSON Lines instead of a table (`connect --jsonlines` and `--json-stream`).
    pub jsonlines: bool,
    /// Print only the totals (`--show-only-results`; `connect --jsonlines` without
    /// `--json-stream`).
    pub show_only_results: bool,
    /// Number of workers that send intervals.
    pub workers: usize,
    /// Percentiles to print besides the fixed columns (e.g. 50, 99.9).
    pub extra_percentiles: Vec<f64>,
    /// UDP run: print loss columns.
    pub udp: bool,
    /// Ephemeral run: print connect time.
    pub ephemeral: bool,
    /// Print the full percentile spectrum of each total row (`--latency-distribution`).
    pub latency_distribution: bool,
    /// `--label KEY=VALUE` pairs stamped into every JSON line.
    pub labels: Vec<(String, String)>,
    /// The seed of `--arrival poisson` (printed, so the run can be repeated).
    pub seed: Option<u64>,
    /// What each total row must meet (`--max-error-rate`, `--slo`).
    pub thresholds: crate::verdict::Thresholds,
    /// Live metrics and progress (`--metrics-addr`, `--progress`): every finished window is
    /// folded in, and the printing holds the progress line off the terminal.
    pub live: Option<std::sync::Arc<crate::metrics::Live>>,
}

/// Everything the reporter printed, for tests and for the exit summary.
#[derive(Debug, Default)]
pub struct Summary {
    /// Totals per printed row (per target, or one merged row).
    pub totals: Vec<Stats>,
    /// Total measured time.
    pub elapsed: Duration,
    /// Total worker CPU time.
    pub cpu: Duration,
    /// Windows folded because the reporter fell behind.
    pub late_reports: u64,
    /// The checks the totals failed, `PEER: reason` each; none: the run passed.
    pub failures: Vec<String>,
}

/// Writes to stdout (or anything) and goes quiet after the reader went away (`| head`).
struct Out<W: Write> {
    w: W,
    broken: bool,
}

impl<W: Write> Out<W> {
    /// Write to `w`, not broken yet.
    fn new(w: W) -> Out<W> {
        Out { w, broken: false }
    }

    fn line(&mut self, s: &str) {
        if self.broken {
            return;
        }
        if self
            .w
            .write_all(s.as_bytes())
            .and_then(|_| self.w.write_all(b"\n"))
            .is_err()
        {
            self.broken = true;
        }
    }
    fn flush(&mut self) {
        if !self.broken && self.w.flush().is_err() {
            self.broken = true;
        }
    }
}

/// One window as the reporter gathers it from the workers, until it is printed.
struct Pending {
    stats: Vec<Stats>,
    window: Duration,
    cpu: Duration,
}

impl Pending {
    fn new(targets: usize) -> Pending {
        Pending {
            stats: (0..targets).map(|_| Stats::new()).collect(),
            window: Duration::ZERO,
            cpu: Duration::ZERO,
        }
    }

    /// Add one worker's report of this window; the window lasted as long as its longest report.
    fn add(&mut self, iv: &Interval) {
        for (t, s) in self.stats.iter_mut().zip(&iv.stats) {
            t.merge(s);
        }
        self.window = self.window.max(iv.window);
        self.cpu += iv.cpu;
    }
}

/// The reporter thread's name (`connect` and `serve` alike).
pub const REPORTER_THREAD: &str = "connperf-report";

/// Messages the reporter's channel holds per worker before `try_send` fails and a worker folds
/// its window into the next (`late_reports`): 64 windows of a stalled stdout.
const CHANNEL_PER_WORKER: usize = 64;

/// Channel room on top of the per-worker share.
const CHANNEL_SLACK: usize = 16;

/// The reporter thread (`connperf-report`), started by `Reporter::spawn`: it owns the receiving
/// end of the workers' bounded channel and returns what it printed once every sender is gone.
pub struct Reporter<T> {
    handle: std::thread::JoinHandle<T>,
}

impl<T: Send + 'static> Reporter<T> {
    /// Make the bounded channel for `workers` workers and run `report(rx)` on thread
    /// `connperf-report`; returns the sender to clone into each worker. Drop every sender to
    /// end the report.
    pub fn spawn<M: Send + 'static>(
        workers: usize,
        report: impl FnOnce(Receiver<M>) -> T + Send + 'static,
    ) -> Result<(Sender<M>, Reporter<T>)> {
        let (tx, rx) = crossbeam_channel::bounded(workers * CHANNEL_PER_WORKER + CHANNEL_SLACK);
        let handle = std::thread::Builder::new()
            .name(REPORTER_THREAD.into())
            .spawn(move || report(rx))
            .map_err(Error::Spawn)?;
        Ok((tx, Reporter { handle }))
    }

    /// Wait for the report to end (after every sender is dropped) and return its result. A
    /// panicked reporter is `WorkerPanicked` with id `usize::MAX`, the id of no worker.
    pub fn join(self) -> Result<T> {
        self.handle
            .join()
            .map_err(|_| Error::WorkerPanicked { id: usize::MAX })
    }
}

/// Receive intervals until every worker has hung up; print each window once all workers have
/// reported it (or a later one), then the totals. `on_window(seq, length, cpu, stats)` sees
/// every finished window, printed or not, with the generator CPU spent in it (the `--hdr-log`
/// writer); so does `cfg.live` (`--metrics-addr`, the progress line), which is told when the
/// report is printed.
pub fn run_reporter<W: Write>(
    cfg: &ReportConfig,
    rx: Receiver<Interval>,
    out: W,
    mut on_window: impl FnMut(u64, Duration, Duration, &[Stats]),
    ramp: impl FnOnce() -> Option<Ramp>,
) -> Summary {
    let mut out = Out::new(out);
    let mut gather = Gather::new(cfg.peers.len(), cfg.workers);
    let mut totals: Vec<Stats> = (0..cfg.peers.len()).map(|_| Stats::new()).collect();
    let mut summary = Summary::default();
    let mut elapsed_by_worker = vec![Duration::ZERO; cfg.workers];
    if !cfg.jsonlines {
        let _screen = cfg.live.as_ref().map(|l| l.hold_screen());
        out.line(&table_header(cfg));
        out.flush();
    }
    for iv in rx.iter() {
        summary.late_reports += iv.late_reports;
        summary.cpu += iv.cpu;
        if let Some(e) = elapsed_by_worker.get_mut(iv.worker) {
            *e += iv.window;
        }
        for (t, s) in totals.iter_mut().zip(&iv.stats) {
            t.merge(s);
        }
        gather.add(&iv);
        if gather.all_reported() {
            let done = gather.reported_by_all();
            print_windows_upto(cfg, &mut out, &mut gather, done, &mut on_window);
        }
    }
    print_windows_upto(cfg, &mut out, &mut gather, None, &mut on_window);
    summary.elapsed = elapsed_by_worker.into_iter().max().unwrap_or_default();
    let screen = cfg.live.as_ref().map(|l| l.hold_screen());
    print_end(cfg, &mut out, &totals, &mut summary, ramp().as_ref());
    out.flush();
    drop(screen);
    if let Some(live) = &cfg.live {
        live.report_printed(None);
    }
    summary
}

/// The windows the reporter has from some workers and has not printed yet, and the latest
/// window each worker reported.
struct Gather {
    pending: BTreeMap<u64, Pending>,
    worker_seq: Vec<Option<u64>>,
    targets: usize,
}

impl Gather {
    /// Nothing received yet from `workers` workers measuring `targets` targets.
    fn new(targets: usize, workers: usize) -> Gather {
        Gather {
            pending: BTreeMap::new(),
            worker_seq: vec![None; workers],
            targets,
        }
    }

    /// Fold one worker's interval into its window.
    fn add(&mut self, iv: &Interval) {
        let targets = self.targets;
        self.pending
            .entry(iv.seq)
            .or_insert_with(|| Pending::new(targets))
            .add(iv);
        if let Some(w) = self.worker_seq.get_mut(iv.worker) {
            *w = Some(w.map_or(iv.seq, |s| s.max(iv.seq)));
        }
    }

    /// Every worker has reported some window.
    fn all_reported(&self) -> bool {
        self.worker_seq.iter().all(|s| s.is_some())
    }

    /// The last window every worker has reported (or a later one): finished.
    fn reported_by_all(&self) -> Option<u64> {
        self.worker_seq.iter().flatten().min().copied()
    }

    /// Take out the first pending window if it is not after `upto` (any, with `None`).
    fn pop_upto(&mut self, upto: Option<u64>) -> Option<(u64, Pending)> {
        let (&seq, _) = self.pending.first_key_value()?;
        if upto.is_some_and(|u| seq > u) {
            return None;
        }
        self.pending.remove_entry(&seq)
    }
}

/// Finish the pending windows up to `upto` (all, with `None`) in order: each goes to
/// `on_window` and `cfg.live`, and its rows are printed unless `show_only_results`.
fn print_windows_upto<W: Write>(
    cfg: &ReportConfig,
    out: &mut Out<W>,
    gather: &mut Gather,
    upto: Option<u64>,
    on_window: &mut impl FnMut(u64, Duration, Duration, &[Stats]),
) {
    while let Some((seq, p)) = gather.pop_upto(upto) {
        on_window(seq, p.window, p.cpu, &p.stats);
        if let Some(live) = &cfg.live {
            live.fold_window(&cfg.peers, seq, p.window, p.cpu, &p.stats);
        }
        if !cfg.show_only_results {
            let _screen = cfg.live.as_ref().map(|l| l.hold_screen());
            let span = Span {
                kind: "interval",
                seq: Some(seq),
                length: p.window,
                cpu: p.cpu,
                end: SystemTime::now(),
                ramp: None,
                verdicts: None,
            };
            print_rows(cfg, out, &span, &p.stats);
            out.flush();
        }
    }
}

/// The end of a run's report: the totals with their verdicts, the ramp, the notes and the
/// distributions. Sets the summary's total rows and failed checks.
fn print_end<W: Write>(
    cfg: &ReportConfig,
    out: &mut Out<W>,
    totals: &[Stats],
    summary: &mut Summary,
    ramp: Option<&Ramp>,
) {
    let verdicts = judge_rows(cfg, totals);
    let span = Span {
        kind: "total",
        seq: None,
        length: summary.elapsed,
        cpu: summary.cpu,
        end: SystemTime::now(),
        ramp,
        verdicts: Some(&verdicts),
    };
    let rows = print_totals(cfg, out, totals, &span);
    let names = row_names(cfg);
    if !cfg.jsonlines {
        if let Some(r) = ramp {
            print_ramp(cfg, out, r);
        }
        print_notes(cfg, out, &rows, summary);
        print_verdicts(out, &names, &verdicts);
    }
    print_distributions(cfg, out, totals);
    summary.totals = rows;
    summary.failures = named_failures(&names, verdicts.iter().map(Vec::as_slice));
}

/// Each printed total row's failed checks: the row's own and, in a merged row, each target's
/// (named), so that a dead target is not hidden in the sum of the live ones.
fn judge_rows(cfg: &ReportConfig, totals: &[Stats]) -> Vec<Vec<String>> {
    let t = &cfg.thresholds;
    rows_of(cfg, totals)
        .iter()
        .map(|(_, s)| {
            let mut reasons = t.judge(s);
            if cfg.merge && cfg.peers.len() > 1 {
                for (peer, target) in cfg.peers.iter().zip(totals) {
                    reasons.extend(t.judge(target).into_iter().map(|r| format!("{peer}: {r}")));
                }
            }
            reasons
        })
        .collect()
}

/// The printed rows' names (the targets, or the one merged row).
fn row_names(cfg: &ReportConfig) -> Vec<String> {
    rows_of(cfg, &vec![Stats::new(); cfg.peers.len()])
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// `# PEER FAIL: reason` per failed check, then `# verdict: pass` or `# verdict: fail`.
fn print_verdicts<W: Write>(out: &mut Out<W>, names: &[String], verdicts: &[Vec<String>]) {
    print_failed_checks(out, names, verdicts);
    let failed = verdicts.iter().any(|v| !v.is_empty());
    out.line(if failed {
        "# verdict: fail"
    } else {
        "# verdict: pass"
    });
}

/// `# PEER FAIL: reason` per failed check, row by row.
fn print_failed_checks<W: Write>(out: &mut Out<W>, names: &[String], verdicts: &[Vec<String>]) {
    for (peer, reasons) in names.iter().zip(verdicts) {
        for r in reasons {
            out.line(&format!("# {peer} FAIL: {r}"));
        }
    }
}

/// `NAME: reason` per failed check, row by row: what `Summary::failures` holds.
fn named_failures<'v>(
    names: &[String],
    verdicts: impl IntoIterator<Item = &'v [String]>,
) -> Vec<String> {
    names
        .iter()
        .zip(verdicts)
        .flat_map(|(name, reasons)| reasons.iter().map(move |r| format!("{name}: {r}")))
        .collect()
}

/// `# PEER ramp: 10 connections up in 0.004 s (connect p50 40 µs, p99 90 µs)[; failed: refused=2]`
fn print_ramp<W: Write>(cfg: &ReportConfig, out: &mut Out<W>, ramp: &Ramp) {
    for (peer, s) in rows_of(cfg, &ramp.stats) {
        let Some(r) = RampUs::of(ramp.took, &s) else {
            continue;
        };
        let failed = failure_list(&s.conn_errors);
        let connect = match (r.ramp_connect_50p_us, r.ramp_connect_99p_us) {
            (Some(p50), Some(p99)) => format!(" (connect p50 {p50} µs, p99 {p99} µs)"),
            _ => String::new(),
        };
        out.line(&format!(
            "# {peer} ramp: {} connections up in {:.3} s{connect}{}",
            r.ramp_connections,
            r.ramp_sec,
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {failed}")
            }
        ));
    }
}

/// The Go tool's line between the interval rows and the totals (tables only).
const TOTALS_HEADING: &str = "--- A result during total execution time ---";

/// The totals block: the Go tool's separator line (tables only) and a row per target or merged.
fn print_totals<W: Write>(
    cfg: &ReportConfig,
    out: &mut Out<W>,
    totals: &[Stats],
    span: &Span,
) -> Vec<Stats> {
    if !cfg.jsonlines {
        out.line(TOTALS_HEADING);
    }
    print_rows(cfg, out, span, totals)
}

/// With `--latency-distribution` in table mode, the spectrum of each total row.
fn print_distributions<W: Write>(cfg: &ReportConfig, out: &mut Out<W>, totals: &[Stats]) {
    if cfg.jsonlines || !cfg.latency_distribution {
        return;
    }
    for (peer, s) in rows_of(cfg, totals) {
        out.line(&format!(
            "# latency distribution of {peer} (µs, intended-time latency)"
        ));
        out.line(&percentile_distribution(&s.latency));
    }
}

/// One row of a report assembled outside the reporter thread (`print_report`).
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// The JSON `peer`: a target, or `merged(N hosts)`.
    pub peer: String,
    /// The row's JSON `labels` (in place of `ReportConfig::labels`).
    pub labels: Vec<(String, String)>,
    /// A breakdown row (`merge --by KEY`): the label whose one value it holds, which the table
    /// shows after the peer as `PEER{KEY=VALUE}`.
    pub by: Option<(String, String)>,
    /// The ramp before the schedule, for the total row: its `stats` hold this row alone.
    pub ramp: Option<Ramp>,
    /// A row merging several targets: the checks each target failed on its own (`PEER:
    /// reason`), so a dead target is not hidden in the sum of the live ones (as in `connect
    /// --merge-results-each-host`).
    pub target_failures: Vec<String>,
}

impl ReportRow {
    /// The row's PEER column: the peer, then `{KEY=VALUE}` for a breakdown row.
    pub fn table_name(&self) -> String {
        match &self.by {
            Some((k, v)) => format!("{}{{{k}={v}}}", self.peer),
            None => self.peer.clone(),
        }
    }
}

/// One reporting window assembled outside the reporter thread, for example merged from
/// HdrHistogram interval logs (`histlog`).
#[derive(Debug, Clone)]
pub struct Window {
    /// Window number, counted from the first window of the run.
    pub seq: u64,
    /// Wall-clock start of the window; the JSON `timestamp` is its end, `start + length`.
    pub start: SystemTime,
    /// How long the window lasted: what `rate_per_sec` divides by.
    pub length: Duration,
    /// Per row of `print_report`, in order; `None`: the row has no data in this window, and
    /// no line.
    pub rows: Vec<Option<Cell>>,
    /// The generator CPU of the whole window (all rows' generators once), if known.
    pub cpu: Option<Duration>,
}

/// One row's part of a `Window`.
#[derive(Debug, Clone)]
pub struct Cell {
    /// What the row measured in the window.
    pub stats: Stats,
    /// The CPU its generators spent in the window.
    pub cpu: Duration,
    /// How much of the window the row was active: what its `rate_per_sec` divides by, and
    /// what its total's active time adds up.
    pub length: Duration,
}

/// Print finished windows the way `run_reporter` prints live ones: the table header (none for
/// JSON Lines), the lines of each window unless `show_only_results` (a row absent from a
/// window has no line there), then each row's totals over its own active time (the windows it
/// is in), the notes of the rows whose counters are known and, with `latency_distribution`,
/// the spectrum of each total row. Rows are `rows`, not `cfg.peers`.
pub fn print_report<W: Write>(
    cfg: &ReportConfig,
    rows: &[ReportRow],
    windows: &[Window],
    out: W,
) -> Summary {
    let mut out = Out::new(out);
    let lines = ReportLines::new(cfg, rows);
    if !cfg.jsonlines {
        out.line(&table_header(&lines.table_cfg));
    }
    let tally = print_windows(&lines, windows, &mut out);
    if !cfg.jsonlines {
        out.line(TOTALS_HEADING);
    }
    let verdicts = judge_report_rows(cfg, &tally.totals, rows);
    print_report_totals(&lines, &tally, &verdicts, &mut out);
    if !cfg.jsonlines {
        print_row_ramps(&lines, &mut out);
        print_known_notes(&lines, &tally, &mut out);
        print_report_verdicts(&mut out, &lines.names, &verdicts);
    }
    print_distributions(&lines.table_cfg, &mut out, &tally.totals);
    out.flush();
    let failed = verdicts.iter().map(|v| v.as_deref().unwrap_or(&[]));
    Summary {
        failures: named_failures(&lines.names, failed),
        cpu: tally.cpu.unwrap_or_default(),
        elapsed: tally.elapsed,
        totals: tally.totals,
        ..Summary::default()
    }
}

/// How `print_report` prints its rows: the table's config (the rows' names as its peers,
/// nothing merged) and each row's JSON config (the row's own labels).
struct ReportLines<'a> {
    cfg: &'a ReportConfig,
    rows: &'a [ReportRow],
    names: Vec<String>,
    table_cfg: ReportConfig,
    row_cfgs: Vec<ReportConfig>,
}

impl<'a> ReportLines<'a> {
    /// The table's and each row's config for `rows` under `cfg`.
    fn new(cfg: &'a ReportConfig, rows: &'a [ReportRow]) -> Self {
        let names: Vec<String> = rows.iter().map(ReportRow::table_name).collect();
        let table_cfg = ReportConfig {
            peers: names.clone(),
            merge: false,
            ..cfg.clone()
        };
        let row_cfgs = rows
            .iter()
            .map(|r| ReportConfig {
                labels: r.labels.clone(),
                ..table_cfg.clone()
            })
            .collect();
        ReportLines {
            cfg,
            rows,
            names,
            table_cfg,
            row_cfgs,
        }
    }

    /// Row `i`'s line over `span`, JSON or table. A total row's `verdict`: the checks it
    /// failed, or `None` when its counters are unknown (logs written before counters were
    /// logged), so whether it failed is unknown too.
    fn line<W: Write>(
        &self,
        out: &mut Out<W>,
        i: usize,
        span: &Span,
        s: &Stats,
        verdict: Option<&Option<Vec<String>>>,
    ) {
        if !self.cfg.jsonlines {
            out.line(&table_row(&self.table_cfg, &self.names[i], s, span.length));
            return;
        }
        let ts = iso8601(span.end);
        let mut row = Row::new(&self.row_cfgs[i], span, &ts, &self.rows[i].peer, s);
        if let (Some(r), Some(rs)) = (span.ramp, span.ramp.and_then(|r| r.stats.first())) {
            row.ramp = RampUs::of(r.took, rs);
        }
        match verdict {
            Some(Some(reasons)) => row.set_verdict(reasons),
            Some(None) => {
                row.verdict = Some("unknown");
                row.reasons = Some(&[]);
            }
            None => {}
        }
        out.line(&json_line(&row));
    }
}

/// What `print_report` adds up over the windows: per row its totals, generator CPU, active
/// time and the end of its last window; the report's length, and its generator CPU (`None`
/// once a window's is unknown).
struct ReportTally {
    totals: Vec<Stats>,
    row_cpu: Vec<Duration>,
    active: Vec<Duration>,
    row_end: Vec<SystemTime>,
    elapsed: Duration,
    cpu: Option<Duration>,
}

/// Add up `windows` row by row, printing each row's line in each window it is in unless
/// `show_only_results`.
fn print_windows<W: Write>(
    lines: &ReportLines,
    windows: &[Window],
    out: &mut Out<W>,
) -> ReportTally {
    let n = lines.rows.len();
    let mut t = ReportTally {
        totals: (0..n).map(|_| Stats::new()).collect(),
        row_cpu: vec![Duration::ZERO; n],
        active: vec![Duration::ZERO; n],
        row_end: vec![UNIX_EPOCH; n],
        elapsed: Duration::ZERO,
        cpu: Some(Duration::ZERO),
    };
    for w in windows {
        t.elapsed += w.length;
        t.cpu = t.cpu.zip(w.cpu).map(|(a, b)| a + b);
        let end = w.start + w.length;
        for (i, cell) in w.rows.iter().enumerate().take(n) {
            let Some(c) = cell else { continue };
            t.totals[i].merge(&c.stats);
            t.row_cpu[i] += c.cpu;
            t.active[i] += c.length;
            t.row_end[i] = t.row_end[i].max(end);
            if !lines.cfg.show_only_results {
                let span = Span {
                    kind: "interval",
                    seq: Some(w.seq),
                    length: c.length,
                    cpu: c.cpu,
                    end,
                    ramp: None,
                    verdicts: None,
                };
                lines.line(out, i, &span, &c.stats, None);
            }
        }
    }
    t
}

/// Each `print_report` row's verdict: the checks its totals failed, then those its targets
/// failed on their own; `None` when its counters are unknown.
fn judge_report_rows(
    cfg: &ReportConfig,
    totals: &[Stats],
    rows: &[ReportRow],
) -> Vec<Option<Vec<String>>> {
    totals
        .iter()
        .zip(rows)
        .map(|(s, r)| {
            (!s.counters_unknown).then(|| {
                let mut reasons = cfg.thresholds.judge(s);
                reasons.extend(r.target_failures.iter().cloned());
                reasons
            })
        })
        .collect()
}

/// `print_report`'s total rows: each over its own active time, ending with its last window,
/// with its ramp and its verdict.
fn print_report_totals<W: Write>(
    lines: &ReportLines,
    tally: &ReportTally,
    verdicts: &[Option<Vec<String>>],
    out: &mut Out<W>,
) {
    for (i, s) in tally.totals.iter().enumerate() {
        let span = Span {
            kind: "total",
            seq: None,
            length: tally.active[i],
            cpu: tally.row_cpu[i],
            end: tally.row_end[i],
            ramp: lines.rows[i].ramp.as_ref(),
            verdicts: None,
        };
        lines.line(out, i, &span, s, Some(&verdicts[i]));
    }
}

/// `# ROW ramp: ...` for each `print_report` row with a ramp.
fn print_row_ramps<W: Write>(lines: &ReportLines, out: &mut Out<W>) {
    for (name, r) in lines.names.iter().zip(lines.rows) {
        if let Some(ramp) = &r.ramp {
            let one = ReportConfig {
                peers: vec![name.clone()],
                ..lines.table_cfg.clone()
            };
            print_ramp(&one, out, ramp);
        }
    }
}

/// The notes on what is known: those of the rows with counters, and the CPU of every
/// generator (unless some window's is unknown).
fn print_known_notes<W: Write>(lines: &ReportLines, tally: &ReportTally, out: &mut Out<W>) {
    let (known_names, known): (Vec<String>, Vec<Stats>) = lines
        .names
        .iter()
        .zip(&tally.totals)
        .filter(|(_, s)| !s.counters_unknown)
        .map(|(n, s)| (n.clone(), s.clone()))
        .unzip();
    let notes_cfg = ReportConfig {
        peers: known_names,
        ..lines.table_cfg.clone()
    };
    let notes_summary = Summary {
        elapsed: if tally.cpu.is_some() {
            tally.elapsed
        } else {
            Duration::ZERO
        },
        cpu: tally.cpu.unwrap_or_default(),
        ..Summary::default()
    };
    print_notes(&notes_cfg, out, &known, &notes_summary);
}

/// `print_report`'s verdict lines: `print_verdicts` when every row was judged; else the
/// failed checks, a line per row whose verdict is unknown (logs without counters: their
/// errors are unknown, so is their verdict), and `# verdict: fail` or `# verdict: unknown`.
fn print_report_verdicts<W: Write>(
    out: &mut Out<W>,
    names: &[String],
    verdicts: &[Option<Vec<String>>],
) {
    let unknown: Vec<&String> = names
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n)
        .collect();
    let (judged_names, judged): (Vec<String>, Vec<Vec<String>>) = names
        .iter()
        .zip(verdicts)
        .filter_map(|(n, v)| v.clone().map(|v| (n.clone(), v)))
        .unzip();
    print_failed_checks(out, &judged_names, &judged);
    for n in &unknown {
        out.line(&format!(
            "# {n} verdict unknown: its logs carry no error counts"
        ));
    }
    out.line(if judged.iter().any(|v| !v.is_empty()) {
        "# verdict: fail"
    } else if !unknown.is_empty() {
        "# verdict: unknown"
    } else {
        "# verdict: pass"
    });
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

fn us_f(ns: f64) -> u64 {
    (ns / 1000.0) as u64
}

fn rate(count: u64, window: Duration) -> f64 {
    let s = window.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// The PEER column's width: the Go tool's 20, or the longest name a row prints (the targets',
/// or the one `merged(N hosts)`).
fn peer_width(cfg: &ReportConfig) -> usize {
    if cfg.merge && cfg.peers.len() > 1 {
        let merged = format!("merged({} hosts)", cfg.peers.len());
        return merged.chars().count().max(20);
    }
    cfg.peers
        .iter()
        .map(|p| p.chars().count())
        .fold(20, usize::max)
}

/// The table's header: the Go tool's columns (and its `µs`), then ours; no trailing blanks.
fn table_header(cfg: &ReportConfig) -> String {
    let mut h = format!(
        "{:<w$} {:<10} {:<15} {:<15} {:<15} {:<15} {:<15} {:<15} {:<10}",
        "PEER",
        "CNT",
        "LAT_MAX(µs)",
        "LAT_MIN(µs)",
        "LAT_MEAN(µs)",
        "LAT_90p(µs)",
        "LAT_95p(µs)",
        "LAT_99p(µs)",
        "RATE(/s)",
        w = peer_width(cfg)
    );
    for p in table_extras(cfg) {
        h.push_str(&format!(" {:<15}", format!("LAT_{}p(µs)", pct_label(p))));
    }
    if cfg.ephemeral {
        h.push_str(&format!(" {:<15} {:<15}", "CONN_MEAN(µs)", "CONN_99p(µs)"));
    }
    h.push_str(&format!(" {:<8}", "ERRORS"));
    if cfg.udp {
        h.push_str(&format!(" {:<8}", "LOST"));
    }
    h.truncate(h.trim_end().len());
    h
}

/// The `--percentiles` columns of the table: each once, and none of the fixed ones (90, 95, 99).
fn table_extras(cfg: &ReportConfig) -> Vec<f64> {
    let mut ps: Vec<f64> = Vec::new();
    for &p in &cfg.extra_percentiles {
        if ![90.0, 95.0, 99.0].contains(&p) && !ps.contains(&p) {
            ps.push(p);
        }
    }
    ps
}

/// `99.9` → `99.9`, `50` → `50`.
fn pct_label(p: f64) -> String {
    let s = format!("{p}");
    s.trim_end_matches(".0").to_string()
}

/// Rows to print for one window: per target, or merged into one, `merged(N hosts)` even for
/// one target (as the Go tool names it, so scripts find the row by that name).
fn rows_of(cfg: &ReportConfig, stats: &[Stats]) -> Vec<(String, Stats)> {
    if cfg.merge {
        let mut m = Stats::new();
        for s in stats {
            m.merge(s);
        }
        vec![(format!("merged({} hosts)", stats.len()), m)]
    } else {
        cfg.peers
            .iter()
            .cloned()
            .zip(stats.iter().cloned())
            .collect()
    }
}

/// What a printed row covers, besides its target's stats.
struct Span<'a> {
    /// `interval` or `total`.
    kind: &'static str,
    /// The window number of an interval row; none for totals.
    seq: Option<u64>,
    /// How long the row's measurement lasted: what `rate_per_sec` divides by.
    length: Duration,
    /// Generator CPU time spent in it.
    cpu: Duration,
    /// Wall-clock end, the JSON `timestamp`.
    end: SystemTime,
    /// Total rows: the ramp that came before the measured period.
    ramp: Option<&'a Ramp>,
    /// Total rows: each printed row's failed checks (none: it passed).
    verdicts: Option<&'a [Vec<String>]>,
}

/// The ramp before a run's schedule started: how long it took, and per target the connect
/// times of the connections it brought up and the attempts that failed (`connect`,
/// `conn_errors`).
#[derive(Debug, Clone)]
pub struct Ramp {
    pub took: Duration,
    pub stats: Vec<Stats>,
}

/// A ramp's figures for one row (runs that ramp up connections only).
#[derive(Serialize)]
struct RampUs<'a> {
    ramp_sec: f64,
    ramp_connections: u64,
    /// Connect-time figures: `null` when no connection came up (unknown, not 0).
    ramp_connect_50p_us: Option<u64>,
    ramp_connect_99p_us: Option<u64>,
    ramp_connect_max_us: Option<u64>,
    ramp_failed: FailureCounts<'a>,
}

impl<'a> RampUs<'a> {
    fn of(took: Duration, s: &'a Stats) -> Option<RampUs<'a>> {
        if s.connect.is_empty() && s.conn_errors.iter().all(|&n| n == 0) {
            return None;
        }
        let [_, _, p50, p99, max] = summary_us(&s.connect);
        let known = |v: u64| (!s.connect.is_empty()).then_some(v);
        Some(RampUs {
            ramp_sec: round6(took.as_secs_f64()),
            ramp_connections: s.connect.len(),
            ramp_connect_50p_us: known(p50),
            ramp_connect_99p_us: known(p99),
            ramp_connect_max_us: known(max),
            ramp_failed: FailureCounts(&s.conn_errors),
        })
    }
}

fn print_rows<W: Write>(
    cfg: &ReportConfig,
    out: &mut Out<W>,
    span: &Span,
    stats: &[Stats],
) -> Vec<Stats> {
    let rows = rows_of(cfg, stats);
    let ramps = span.ramp.map(|r| rows_of(cfg, &r.stats));
    let ts = iso8601(span.end);
    for (i, (peer, s)) in rows.iter().enumerate() {
        if cfg.jsonlines {
            let mut row = Row::new(cfg, span, &ts, peer, s);
            if let (Some(r), Some(rs)) = (span.ramp, &ramps) {
                row.ramp = RampUs::of(r.took, &rs[i].1);
            }
            if let Some(reasons) = span.verdicts.and_then(|v| v.get(i)) {
                row.set_verdict(reasons);
            }
            out.line(&json_line(&row));
        } else {
            out.line(&table_row(cfg, peer, s, span.length));
        }
    }
    rows.into_iter().map(|(_, s)| s).collect()
}

fn table_row(cfg: &ReportConfig, peer: &str, s: &Stats, window: Duration) -> String {
    // A latency nothing measured is unknown: `-`, never 0.
    let h = &s.latency;
    let known = |v: u64| {
        if s.completed == 0 {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let q = |p: f64| known(us(h.value_at_quantile(p / 100.0)));
    let mut r = format!(
        "{:<w$} {:<10} {:<15} {:<15} {:<15} {:<15} {:<15} {:<15} {:<10.2}",
        peer,
        s.completed,
        known(us(h.max())),
        known(us(h.min())),
        known(us_f(h.mean())),
        q(90.0),
        q(95.0),
        q(99.0),
        rate(s.completed, window),
        w = peer_width(cfg)
    );
    for p in table_extras(cfg) {
        r.push_str(&format!(" {:<15}", q(p)));
    }
    if cfg.ephemeral {
        let c = &s.connect;
        let (cm, c99) = if c.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                us_f(c.mean()).to_string(),
                us(c.value_at_quantile(0.99)).to_string(),
            )
        };
        r.push_str(&format!(" {cm:<15} {c99:<15}"));
    }
    // Counters a merged log did not carry are unknown: `-` as well.
    let counter = |v: u64| {
        if s.counters_unknown {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    r.push_str(&format!(" {:<8}", counter(s.error_count())));
    if cfg.udp {
        r.push_str(&format!(" {:<8}", counter(s.lost)));
    }
    r.truncate(r.trim_end().len());
    r
}

/// One `--jsonlines` row as text, its keys in the order of the struct's fields: the Go tool's
/// keys first, as the Go tool printed them.
fn json_line<T: Serialize>(row: &T) -> String {
    serde_json::to_string(row).expect("rows have string keys and finite-or-null numbers")
}

/// The JSON keys of the percentiles every row has.
const FIXED_PERCENTILE_KEYS: [&str; 5] = [
    "latency_50p_us",
    "latency_90p_us",
    "latency_95p_us",
    "latency_99p_us",
    "latency_999p_us",
];

/// One `connect --jsonlines` row: the Go tool's keys first, then connperf's.
#[derive(Serialize)]
struct Row<'a> {
    peer: &'a str,
    count: u64,
    /// Latencies are `null` when nothing completed: unknown, not 0.
    latency_max_us: Option<u64>,
    latency_min_us: Option<u64>,
    latency_mean_us: Option<u64>,
    latency_90p_us: Option<u64>,
    latency_95p_us: Option<u64>,
    latency_99p_us: Option<u64>,
    rate_per_sec: f64,
    timestamp: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Labels::is_empty")]
    labels: Labels<'a>,
    /// `--arrival poisson` runs only: the seed of the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// The window number; absent from total rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<u64>,
    elapsed_sec: f64,
    latency_50p_us: Option<u64>,
    latency_999p_us: Option<u64>,
    /// `--percentiles`: `latency_{P without the dot}p_us`, e.g. `latency_9999p_us`.
    #[serde(flatten)]
    extra_percentiles: Percentiles,
    latency_ns: Option<LatencyNs>,
    #[serde(flatten)]
    service: ServiceUs,
    /// Ephemeral runs only.
    #[serde(flatten)]
    connect: Option<ConnectUs>,
    /// Counters are `null` when only the histograms are known (`Stats::counters_unknown`).
    bytes: Option<u64>,
    error_count: Option<u64>,
    errors: Option<FailureCounts<'a>>,
    connection_errors: Option<FailureCounts<'a>>,
    late_starts: Option<u64>,
    max_behind_us: Option<u64>,
    /// Actual send − intended send, µs: the run's own error bar.
    #[serde(flatten)]
    send_lag: SendLagUs,
    not_started: Option<u64>,
    not_started_by: Option<UnsentCounts<'a>>,
    lost: Option<u64>,
    /// UDP runs only.
    #[serde(flatten)]
    udp: Option<UdpCounts>,
    clamped: Option<u64>,
    generator_cpu_sec: Option<f64>,
    /// Total rows of runs that ramp up connections: the ramp.
    #[serde(flatten)]
    ramp: Option<RampUs<'a>>,
    /// `--latency-distribution`, total rows only: `[value µs, percentile, total count]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_distribution: Option<Vec<(f64, f64, u64)>>,
    /// Total rows of `connect`: `pass` or `fail` (`--max-error-rate`, `--slo`, and some
    /// request completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'static str>,
    /// Total rows of `connect`: the checks that failed, one sentence each (empty on a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [String]>,
}

/// Intended-time latency in ns (`latency_ns`).
#[derive(Serialize)]
struct LatencyNs {
    min: u64,
    mean: f64,
    p50: u64,
    p90: u64,
    p95: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// Uncorrected service time (completion − actual send), µs.
#[derive(Serialize)]
struct ServiceUs {
    service_min_us: Option<u64>,
    service_mean_us: Option<u64>,
    service_50p_us: Option<u64>,
    service_99p_us: Option<u64>,
    service_max_us: Option<u64>,
}

/// Connect time (SYN to established), µs.
#[derive(Serialize)]
struct ConnectUs {
    connect_count: u64,
    connect_min_us: Option<u64>,
    connect_mean_us: Option<u64>,
    connect_50p_us: Option<u64>,
    connect_99p_us: Option<u64>,
    connect_max_us: Option<u64>,
}

/// The UDP-only counters.
#[derive(Serialize)]
struct UdpCounts {
    late: Option<u64>,
    duplicate: Option<u64>,
    stray: Option<u64>,
    reordered: Option<u64>,
    /// Sockets (source ports) used: in the window, or distinct ones in the run (total rows).
    flows: Option<u64>,
}

/// `--label` pairs as one JSON object.
struct Labels<'a>(&'a [(String, String)]);

impl Labels<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The `--percentiles` keys and their values, in the order given; each key once, and none
/// that every row has already (`--percentiles 50` is `latency_50p_us`).
struct Percentiles(Vec<(String, Option<u64>)>);

impl Percentiles {
    fn new(ps: &[f64], value: impl Fn(f64) -> Option<u64>) -> Percentiles {
        let mut keys: Vec<(String, Option<u64>)> = Vec::new();
        for &p in ps {
            let key = format!("latency_{}p_us", pct_label(p).replace('.', ""));
            if !FIXED_PERCENTILE_KEYS.contains(&key.as_str())
                && !keys.iter().any(|(k, _)| *k == key)
            {
                keys.push((key, value(p)));
            }
        }
        Percentiles(keys)
    }
}

impl Serialize for Percentiles {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The send lag's p50, p99 and max, µs (`null` with no paced send).
#[derive(Serialize, Default)]
struct SendLagUs {
    send_lag_50p_us: Option<u64>,
    send_lag_99p_us: Option<u64>,
    send_lag_max_us: Option<u64>,
}

impl SendLagUs {
    fn of(h: &Histogram<u64>) -> SendLagUs {
        let [_, _, p50, p99, max] = summary_opt(h);
        SendLagUs {
            send_lag_50p_us: p50,
            send_lag_99p_us: p99,
            send_lag_max_us: max,
        }
    }
}

/// Requests not started by `Unsent` cause, as an object keyed by `Unsent::name`.
struct UnsentCounts<'a>(&'a [u64; UNSENT_CAUSES]);

impl Serialize for UnsentCounts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(Unsent::ALL.iter().map(|k| (k.name(), self.0[*k as usize])))
    }
}

/// Counts by `Failure`, as an object keyed by `Failure::name`.
struct FailureCounts<'a>(&'a [u64; ERROR_KINDS]);

impl Serialize for FailureCounts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(Failure::ALL.iter().map(|k| (k.name(), self.0[k.index()])))
    }
}

/// min, mean, p50, p99 and max of `h` in whole µs; all 0 when it is empty.
/// `summary_us`, each `None` (unknown, printed `null`) for an empty histogram.
fn summary_opt(h: &Histogram<u64>) -> [Option<u64>; 5] {
    if h.is_empty() {
        [None; 5]
    } else {
        summary_us(h).map(Some)
    }
}

fn summary_us(h: &Histogram<u64>) -> [u64; 5] {
    if h.is_empty() {
        return [0; 5];
    }
    let q = |p: f64| us(h.value_at_quantile(p));
    [us(h.min()), us_f(h.mean()), q(0.5), q(0.99), us(h.max())]
}

impl<'a> Row<'a> {
    /// The row of `peer` over `span`; `ts` is `span.end` formatted once for all its rows.
    fn new(cfg: &'a ReportConfig, span: &Span, ts: &'a str, peer: &'a str, s: &'a Stats) -> Self {
        let h = &s.latency;
        let empty = s.completed == 0;
        let q = |p: f64| (!empty).then(|| us(h.value_at_quantile(p / 100.0)));
        let unless_empty = |v: u64| (!empty).then_some(v);
        let known = !s.counters_unknown;
        let counter = |v: u64| known.then_some(v);
        Row {
            peer,
            count: s.completed,
            latency_max_us: unless_empty(us(h.max())),
            latency_min_us: unless_empty(us(h.min())),
            latency_mean_us: unless_empty(us_f(h.mean())),
            latency_90p_us: q(90.0),
            latency_95p_us: q(95.0),
            latency_99p_us: q(99.0),
            rate_per_sec: round2(rate(s.completed, span.length)),
            timestamp: ts,
            kind: span.kind,
            labels: Labels(&cfg.labels),
            seed: cfg.seed,
            interval: span.seq,
            elapsed_sec: round6(span.length.as_secs_f64()),
            latency_50p_us: q(50.0),
            latency_999p_us: q(99.9),
            extra_percentiles: Percentiles::new(&cfg.extra_percentiles, q),
            latency_ns: LatencyNs::of(s),
            service: ServiceUs::of(&s.service),
            connect: cfg.ephemeral.then(|| ConnectUs::of(&s.connect)),
            bytes: counter(s.bytes),
            error_count: counter(s.error_count()),
            errors: known.then_some(FailureCounts(&s.errors)),
            connection_errors: known.then_some(FailureCounts(&s.conn_errors)),
            late_starts: counter(s.late_starts),
            max_behind_us: counter(us(s.max_behind_ns)),
            // Unknown counters (a format-1 log): all three null, as with no paced send.
            send_lag: if known {
                SendLagUs::of(&s.send_lag)
            } else {
                SendLagUs::default()
            },
            not_started: counter(s.not_started),
            not_started_by: known.then_some(UnsentCounts(&s.not_started_by)),
            lost: counter(s.lost),
            udp: cfg.udp.then_some(UdpCounts {
                late: counter(s.late),
                duplicate: counter(s.duplicate),
                stray: counter(s.stray),
                reordered: counter(s.reordered),
                flows: counter(if span.kind == "total" {
                    s.new_flows
                } else {
                    s.flows
                }),
            }),
            clamped: counter(s.clamped),
            generator_cpu_sec: known.then_some(round6(span.cpu.as_secs_f64())),
            ramp: None,
            latency_distribution: (cfg.latency_distribution && span.kind == "total").then(|| {
                spectrum(h)
                    .into_iter()
                    .map(|(v, q, n)| (round6(v as f64 / 1000.0), q, n))
                    .collect()
            }),
            verdict: None,
            reasons: None,
        }
    }

    /// A judged total row: `pass` with no failed check, else `fail` and the checks.
    fn set_verdict(&mut self, reasons: &'a [String]) {
        self.verdict = Some(if reasons.is_empty() { "pass" } else { "fail" });
        self.reasons = Some(reasons);
    }
}

impl LatencyNs {
    /// `s.latency`; `None` (unknown, `null`) when no request completed.
    fn of(s: &Stats) -> Option<Self> {
        let h = &s.latency;
        if s.completed == 0 {
            return None;
        }
        // As percentages over 100, like every other percentile of the row: 99.9 / 100.0 is
        // not the f64 nearest 0.999, and a bucket boundary could tell them apart.
        let q = |p: f64| h.value_at_quantile(p / 100.0);
        Some(LatencyNs {
            min: h.min(),
            mean: round2(h.mean()),
            p50: q(50.0),
            p90: q(90.0),
            p95: q(95.0),
            p99: q(99.0),
            p999: q(99.9),
            max: h.max(),
        })
    }
}

impl ServiceUs {
    fn of(h: &Histogram<u64>) -> Self {
        let [service_min_us, service_mean_us, service_50p_us, service_99p_us, service_max_us] =
            summary_opt(h);
        ServiceUs {
            service_min_us,
            service_mean_us,
            service_50p_us,
            service_99p_us,
            service_max_us,
        }
    }
}

impl ConnectUs {
    fn of(h: &Histogram<u64>) -> Self {
        let [connect_min_us, connect_mean_us, connect_50p_us, connect_99p_us, connect_max_us] =
            summary_opt(h);
        ConnectUs {
            connect_count: h.len(),
            connect_min_us,
            connect_mean_us,
            connect_50p_us,
            connect_99p_us,
            connect_max_us,
        }
    }
}

/// The names of the rows a report prints: the targets, or the one merged row.
pub fn printed_row_names(cfg: &ReportConfig) -> Vec<String> {
    row_names(cfg)
}

/// One `connect --sweep` step row (`"kind":"step"`): every key of a total row, plus the step's
/// number and the rate offered to this row (req/s: to its target, or to all in a merged row).
#[derive(Serialize)]
struct StepRow<'a> {
    step: u64,
    offered_rate: f64,
    #[serde(flatten)]
    row: Row<'a>,
}

/// The JSON line of row `peer` (totals `s`) of sweep step `step`, measured over
/// `summary.elapsed` with `summary.cpu` of generator CPU; `reasons` are its failed checks
/// (none: `"verdict":"pass"`).
pub fn step_json_line(
    cfg: &ReportConfig,
    step: u64,
    offered_rate: f64,
    peer: &str,
    s: &Stats,
    summary: &Summary,
    reasons: &[String],
) -> String {
    let span = Span {
        kind: "step",
        seq: None,
        length: summary.elapsed,
        cpu: summary.cpu,
        end: SystemTime::now(),
        ramp: None,
        verdicts: None,
    };
    let ts = iso8601(span.end);
    let mut row = Row::new(cfg, &span, &ts, peer, s);
    row.set_verdict(reasons);
    json_line(&StepRow {
        step,
        offered_rate: round2(offered_rate),
        row,
    })
}

fn print_notes<W: Write>(cfg: &ReportConfig, out: &mut Out<W>, rows: &[Stats], summary: &Summary) {
    for (peer, s) in row_names(cfg).iter().zip(rows) {
        if let Some(line) = failures_note(peer, s) {
            out.line(&line);
        }
        if !cfg.udp && s.lost > 0 {
            out.line(&format!(
                "# {peer} lost={}: requests sent and never answered by the end of the run",
                s.lost
            ));
        }
        if cfg.udp {
            out.line(&format!(
                "# {peer} udp: flows={} lost={} late={} duplicate={} reordered={} stray={}",
                s.new_flows, s.lost, s.late, s.duplicate, s.reordered, s.stray
            ));
        }
        if s.late_starts > 0 || s.not_started > 0 {
            let causes: Vec<String> = Unsent::ALL
                .iter()
                .filter(|c| s.not_started_by[**c as usize] > 0)
                .map(|c| format!("{}={}", c.name(), s.not_started_by[*c as usize]))
                .collect();
            out.line(&format!(
                "# {peer} generator behind schedule: {} late starts (>1 ms), max {} µs behind, {} not started{}",
                s.late_starts,
                us(s.max_behind_ns),
                s.not_started,
                if causes.is_empty() { String::new() } else { format!(" ({})", causes.join(" ")) }
            ));
        }
        if !s.send_lag.is_empty() {
            let [_, _, p50, p99, max] = summary_us(&s.send_lag);
            out.line(&format!(
                "# {peer} send lag (actual - intended send): p50 {p50} µs, p99 {p99} µs, max {max} µs"
            ));
        }
    }
    if let Some(seed) = cfg.seed {
        out.line(&format!(
            "# arrival: poisson, --seed {seed} repeats this schedule"
        ));
    }
    let secs = summary.elapsed.as_secs_f64();
    if secs > 0.0 {
        let cpu = summary.cpu.as_secs_f64();
        let share = 100.0 * cpu / secs;
        // The workers' CPU includes their start (and the ramp's last moments), outside the
        // measured time: over a very short run that alone is a share of thousands of percent.
        let share = if secs >= MIN_CPU_SHARE_SECS && share <= 100.0 * cfg.workers.max(1) as f64 {
            format!("{share:.0} % of one core")
        } else {
            "too short a run for a share".to_string()
        };
        out.line(&format!(
            "# generator cpu: {cpu:.2} s over {secs:.2} s ({share})"
        ));
    }
}

/// The shortest measured time whose generator CPU share the notes print.
const MIN_CPU_SHARE_SECS: f64 = 0.1;

/// One account of what failed for `peer`: requests by kind, then connection attempts (with
/// no request in flight) by kind; `None` if nothing failed.
/// `# PEER errors: refused=1000; connection attempts failed: refused=60`
fn failures_note(peer: &str, s: &Stats) -> Option<String> {
    let requests = failure_list(&s.errors);
    let attempts = failure_list(&s.conn_errors);
    match (requests.is_empty(), attempts.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("# {peer} errors: {requests}")),
        (true, false) => Some(format!("# {peer} connection attempts failed: {attempts}")),
        (false, false) => Some(format!(
            "# {peer} errors: {requests}; connection attempts failed: {attempts}"
        )),
    }
}

/// `refused=3 timeout=2`: the kinds with a count, in report order; empty if none.
pub(crate) fn failure_list(counts: &[u64; ERROR_KINDS]) -> String {
    let kinds: Vec<String> = Failure::ALL
        .iter()
        .filter(|k| counts[k.index()] > 0)
        .map(|k| format!("{}={}", k.name(), counts[k.index()]))
        .collect();
    kinds.join(" ")
}

/// Quantile iteration points, 5 ticks per half distance as HdrHistogram's own output uses:
/// (value ns, percentile as a fraction, total count up to it).
fn spectrum(h: &Histogram<u64>) -> Vec<(u64, f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                h.highest_equivalent(v.value_iterated_to()),
                v.quantile_iterated_to(),
                v.count_since_last_iteration(),
            )
        })
        .scan(0u64, |total, (v, q, n)| {
            *total += n;
            Some((v, q, *total))
        })
        .collect()
}

/// HdrHistogram's standard percentile distribution text (as `outputPercentileDistribution`
/// prints it, values in µs), readable by the usual HdrHistogram plotters.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for (v, q, total) in spectrum(h) {
        let us = v as f64 / 1000.0;
        if q < 1.0 {
            s.push_str(&format!(
                "{us:12.3} {q:14.12} {total:10} {:14.2}\n",
                1.0 / (1.0 - q)
            ));
        } else {
            s.push_str(&format!("{us:12.3} {q:14.12} {total:10}\n"));
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / 1000.0,
            h.stdev() / 1000.0,
            h.max() as f64 / 1000.0,
        )
    };
    s.push_str(&format!(
        "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]\n"
    ));
    s.push_str(&format!(
        "#[Max     = {max:12.3}, Total count    = {:12}]\n",
        h.len()
    ));
    s.push_str(&format!(
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    ));
    s
}

/// HdrHistogram's sub-bucket count for a precision: the power of two covering 2 × 10^sigfig.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// `2025-01-07T10:30:00.123Z` (UTC, milliseconds).
pub fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days, Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// CPU time used by the calling thread so far.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The echo server's counters for one worker (cumulative since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// TCP connections accepted.
    pub accepted: u64,
    /// TCP connections closed (by either side, reaped or refused).
    pub closed: u64,
    /// Accepted connections closed at once because of `--max-connections`.
    pub rejected: u64,
    /// Connections closed by `--idle-timeout`.
    pub idle_closed: u64,
    /// TCP reads that returned data.
    pub tcp_reads: u64,
    /// TCP bytes echoed (written back).
    pub tcp_bytes: u64,
    /// UDP datagrams echoed.
    pub udp_datagrams: u64,
    /// UDP bytes echoed.
    pub udp_bytes: u64,
    /// Connections and datagrams from peers that `--allow` does not admit, dropped unanswered.
    pub denied: u64,
    /// Connections reset by the peer. Not an error: clients that close with RST (connperf's
    /// ephemeral default) do this by design.
    pub resets: u64,
    /// Accept failures for lack of file descriptors (EMFILE/ENFILE); accept backs off.
    pub accept_fd_limit: u64,
    /// Other accept failures.
    pub accept_errors: u64,
    /// Other read/write errors.
    pub io_errors: u64,
}

impl ServerCounters {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }

    fn add(&mut self, o: &ServerCounters) {
        self.accepted += o.accepted;
        self.closed += o.closed;
        self.rejected += o.rejected;
        self.idle_closed += o.idle_closed;
        self.tcp_reads += o.tcp_reads;
        self.tcp_bytes += o.tcp_bytes;
        self.udp_datagrams += o.udp_datagrams;
        self.udp_bytes += o.udp_bytes;
        self.denied += o.denied;
        self.resets += o.resets;
        self.accept_fd_limit += o.accept_fd_limit;
        self.accept_errors += o.accept_errors;
        self.io_errors += o.io_errors;
    }

    /// Errors of all kinds (peer resets are reported apart: see `resets`).
    pub fn errors(&self) -> u64 {
        self.accept_fd_limit + self.accept_errors + self.io_errors
    }
}

/// A worker's cumulative counters at the end of window `seq`, taken at `at`; `last` on its
/// final message.
#[derive(Debug, Clone, Copy)]
pub struct ServerSnapshot {
    pub worker: usize,
    pub seq: u64,
    pub counters: ServerCounters,
    pub at: Instant,
    pub last: bool,
}

/// Print the echo server's counters: one line per window (if `interval_rows`), and per worker
/// plus a total at the end. Returns the final totals. `start` is when the workers started.
///
/// With `interval_rows`, the window in progress when the server stops is printed too, as an
/// interval row of its real (shorter) length, before the worker and total rows: the interval
/// rows then add up to the total exactly.
///
/// `live` (`--metrics-addr`) gets the total at the end of each window every worker has
/// reported, with or without interval rows, and the final total.
pub fn run_server_reporter<W: Write>(
    workers: usize,
    jsonlines: bool,
    interval_rows: bool,
    start: Instant,
    rx: Receiver<ServerSnapshot>,
    out: W,
    live: Option<&crate::metrics::Live>,
) -> ServerCounters {
    let mut out = Out::new(out);
    let mut tally = ServerTally::new(workers, start);
    for snap in rx.iter() {
        let Some(seq) = tally.add(&snap) else {
            continue;
        };
        let total = tally.total();
        if let Some(l) = live {
            l.fold_server(seq, &total);
        }
        if interval_rows {
            out.line(&tally.interval_line(jsonlines, seq, total));
            out.flush();
        }
    }
    let total = tally.total();
    if interval_rows {
        // The last, partial window: what the interval rows so far have not counted.
        out.line(&tally.interval_line(jsonlines, tally.next_window, total));
    }
    print_server_end(&mut out, jsonlines, &tally, &total);
    out.flush();
    if let Some(l) = live {
        l.report_printed(Some(&total));
    }
    total
}

/// What the echo server's reporter keeps: each worker's latest counters and when it took
/// them, how many workers reported each window not yet complete, and what the interval rows
/// printed so far counted, up to when.
struct ServerTally {
    workers: usize,
    start: Instant,
    latest: Vec<ServerCounters>,
    latest_at: Vec<Instant>,
    seen: BTreeMap<u64, usize>,
    printed: ServerCounters,
    printed_at: Instant,
    next_window: u64,
}

impl ServerTally {
    /// Nothing reported yet by the `workers` workers, started at `start`.
    fn new(workers: usize, start: Instant) -> ServerTally {
        ServerTally {
            workers,
            start,
            latest: vec![ServerCounters::default(); workers],
            latest_at: vec![start; workers],
            seen: BTreeMap::new(),
            printed: ServerCounters::default(),
            printed_at: start,
            next_window: 0,
        }
    }

    /// Take a snapshot in: `Some(seq)` when it is the last of the workers' reports of window
    /// `seq` (a worker's final snapshot completes no window).
    fn add(&mut self, snap: &ServerSnapshot) -> Option<u64> {
        if let Some(l) = self.latest.get_mut(snap.worker) {
            *l = snap.counters;
            self.latest_at[snap.worker] = snap.at;
        }
        if snap.last {
            return None;
        }
        let n = self.seen.entry(snap.seq).or_insert(0);
        *n += 1;
        if *n != self.workers {
            return None;
        }
        self.seen.remove(&snap.seq);
        Some(snap.seq)
    }

    /// Every worker's latest counters, summed.
    fn total(&self) -> ServerCounters {
        sum(&self.latest)
    }

    /// When the latest counters were taken (`start` before any).
    fn last_at(&self) -> Instant {
        self.latest_at.iter().copied().max().unwrap_or(self.start)
    }

    /// The interval row of window `seq`, ending with the latest counters (summed: `total`):
    /// what they gained since the last interval row, over the time since it. Marks them
    /// printed.
    fn interval_line(&mut self, jsonlines: bool, seq: u64, total: ServerCounters) -> String {
        let delta = diff(&total, &self.printed);
        let at = self.last_at();
        let length = at.saturating_duration_since(self.printed_at);
        let line = server_line(
            jsonlines,
            "interval",
            &format!("{seq}"),
            length,
            &delta,
            &total,
        );
        self.printed = total;
        self.printed_at = at;
        self.next_window = seq + 1;
        line
    }
}

/// The end of the echo server's report: a row per worker over its own time, then the total
/// (`total`) over the run's.
fn print_server_end<W: Write>(
    out: &mut Out<W>,
    jsonlines: bool,
    tally: &ServerTally,
    total: &ServerCounters,
) {
    for (i, c) in tally.latest.iter().enumerate() {
        let length = tally.latest_at[i].saturating_duration_since(tally.start);
        out.line(&server_line(
            jsonlines,
            "worker",
            &format!("w{i}"),
            length,
            c,
            c,
        ));
    }
    let length = tally.last_at().saturating_duration_since(tally.start);
    out.line(&server_line(
        jsonlines, "total", "total", length, total, total,
    ));
}

fn sum(cs: &[ServerCounters]) -> ServerCounters {
    let mut t = ServerCounters::default();
    for c in cs {
        t.add(c);
    }
    t
}

fn diff(a: &ServerCounters, b: &ServerCounters) -> ServerCounters {
    ServerCounters {
        accepted: a.accepted - b.accepted.min(a.accepted),
        closed: a.closed - b.closed.min(a.closed),
        rejected: a.rejected - b.rejected.min(a.rejected),
        idle_closed: a.idle_closed - b.idle_closed.min(a.idle_closed),
        tcp_reads: a.tcp_reads - b.tcp_reads.min(a.tcp_reads),
        tcp_bytes: a.tcp_bytes - b.tcp_bytes.min(a.tcp_bytes),
        udp_datagrams: a.udp_datagrams - b.udp_datagrams.min(a.udp_datagrams),
        udp_bytes: a.udp_bytes - b.udp_bytes.min(a.udp_bytes),
        denied: a.denied - b.denied.min(a.denied),
        resets: a.resets - b.resets.min(a.resets),
        accept_fd_limit: a.accept_fd_limit - b.accept_fd_limit.min(a.accept_fd_limit),
        accept_errors: a.accept_errors - b.accept_errors.min(a.accept_errors),
        io_errors: a.io_errors - b.io_errors.min(a.io_errors),
    }
}

/// One `serve --jsonlines` row.
#[derive(Serialize)]
struct ServerRow<'a> {
    /// `interval`, `worker` or `total`.
    kind: &'a str,
    /// The window number, `w{i}`, or `total`.
    name: &'a str,
    timestamp: &'a str,
    /// The row's length: its window's (the last one usually shorter), or the run's.
    elapsed_sec: f64,
    accepted: u64,
    open: u64,
    closed: u64,
    rejected: u64,
    idle_closed: u64,
    tcp_reads: u64,
    tcp_bytes: u64,
    udp_datagrams: u64,
    udp_bytes: u64,
    denied: u64,
    resets: u64,
    errors: ServerErrors,
}

/// The echo server's errors by kind.
#[derive(Serialize)]
struct ServerErrors {
    accept_fd_limit: u64,
    accept_other: u64,
    io: u64,
}

impl<'a> ServerRow<'a> {
    /// `c` is what the row counts; `now` gives the open count.
    fn new(
        kind: &'a str,
        name: &'a str,
        ts: &'a str,
        length: Duration,
        c: &ServerCounters,
        now: &ServerCounters,
    ) -> Self {
        ServerRow {
            kind,
            name,
            timestamp: ts,
            elapsed_sec: round6(length.as_secs_f64()),
            accepted: c.accepted,
            open: now.open(),
            closed: c.closed,
            rejected: c.rejected,
            idle_closed: c.idle_closed,
            tcp_reads: c.tcp_reads,
            tcp_bytes: c.tcp_bytes,
            udp_datagrams: c.udp_datagrams,
            udp_bytes: c.udp_bytes,
            denied: c.denied,
            resets: c.resets,
            errors: ServerErrors {
                accept_fd_limit: c.accept_fd_limit,
                accept_other: c.accept_errors,
                io: c.io_errors,
            },
        }
    }
}

/// `c` is what the row counts (a window's delta, or cumulative) over `length`; `now` gives the
/// open count. The text row's `key=value` pairs are all integers (`elapsed_ms`), so that a
/// reader can parse every one as a counter.
fn server_line(
    jsonlines: bool,
    kind: &str,
    name: &str,
    length: Duration,
    c: &ServerCounters,
    now: &ServerCounters,
) -> String {
    if jsonlines {
        let ts = iso8601(SystemTime::now());
        json_line(&ServerRow::new(kind, name, &ts, length, c, now))
    } else {
        format!(
            "server {kind:<8} {name:<6} accepted={} open={} closed={} rejected={} idle_closed={} \
             tcp_reads={} tcp_bytes={} udp_datagrams={} udp_bytes={} denied={} resets={} errors={} (accept_fd_limit={} accept_other={} io={}) elapsed_ms={}",
            c.accepted, now.open(), c.closed, c.rejected, c.idle_closed, c.tcp_reads, c.tcp_bytes,
            c.udp_datagrams, c.udp_bytes, c.denied, c.resets, c.errors(), c.accept_fd_limit, c.accept_errors, c.io_errors,
            length.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_736_245_800_123);
        assert_eq!(iso8601(t), "2025-01-07T10:30:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }

    fn interval(worker: usize, seq: u64, samples: &[&[u64]]) -> Interval {
        Interval {
            worker,
            seq,
            window: Duration::from_secs(1),
            stats: samples
                .iter()
                .map(|xs| {
                    let mut s = Stats::new();
                    for &x in *xs {
                        s.record(x, x, 10);
                    }
                    s
                })
                .collect(),
            cpu: Duration::from_millis(10),
            late_reports: 0,
        }
    }

    fn run(cfg: &ReportConfig, ivs: Vec<Interval>) -> (String, Summary) {
        let (tx, rx) = crossbeam_channel::unbounded();
        for iv in ivs {
            tx.send(iv).unwrap();
        }
        drop(tx);
        let mut buf = Vec::new();
        let s = run_reporter(cfg, rx, &mut buf, |_, _, _, _| {}, || None);
        (String::from_utf8(buf).unwrap(), s)
    }

    /// A target with requests on the books and none answered fails, named in the JSON total
    /// row, the table's `#` lines and the summary that sets the exit status; a merged row names
    /// it too; a healthy one passes.
    #[test]
    fn total_rows_carry_the_verdict() {
        let iv = || {
            let mut iv = interval(0, 0, &[&[1000, 2000], &[]]);
            for _ in 0..3 {
                iv.stats[1].error(Failure::Refused);
            }
            iv
        };
        let mut cfg = ReportConfig {
            peers: vec!["up:1".into(), "dead:2".into()],
            workers: 1,
            jsonlines: true,
            ..Default::default()
        };
        let (text, summary) = run(&cfg, vec![iv()]);
        let totals: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["kind"] == "total")
            .collect();
        assert_eq!(totals[0]["verdict"], "pass", "{text}");
        assert_eq!(totals[0]["reasons"], serde_json::json!([]));
        assert_eq!(totals[1]["verdict"], "fail", "{text}");
        let reason = "no request completed (3 failed: refused=3)";
        assert_eq!(totals[1]["reasons"], serde_json::json!([reason]));
        assert_eq!(summary.failures, vec![format!("dead:2: {reason}")]);
        assert!(
            !text.contains("\"kind\":\"interval\",\"verdict"),
            "intervals carry none"
        );

        cfg.jsonlines = false;
        cfg.merge = true;
        let (text, summary) = run(&cfg, vec![iv()]);
        assert!(
            text.contains(&format!("# merged(2 hosts) FAIL: dead:2: {reason}\n")),
            "{text}"
        );
        assert!(text.ends_with("# verdict: fail\n"), "{text}");
        assert_eq!(
            summary.failures,
            vec![format!("merged(2 hosts): dead:2: {reason}")]
        );
    }

    #[test]
    fn windows_merge_across_workers_and_rows_sum_to_totals() {
        let cfg = ReportConfig {
            peers: vec!["a:1".into(), "b:2".into()],
            workers: 2,
            jsonlines: true,
            ..Default::default()
        };
        let ivs = vec![
            interval(0, 0, &[&[1000, 2000], &[5000]]),
            interval(1, 0, &[&[3000], &[]]),
            interval(0, 1, &[&[4000], &[6000, 7000]]),
            interval(1, 1, &[&[], &[8000]]),
        ];
        let (text, summary) = run(&cfg, ivs);
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 6, "{text}");
        let count = |r: &Value| r["count"].as_u64().unwrap();
        assert_eq!(rows[0]["peer"], "a:1");
        assert_eq!(count(&rows[0]), 3);
        assert_eq!(rows[0]["latency_max_us"], 3);
        assert_eq!(count(&rows[1]), 1);
        assert_eq!(count(&rows[2]) + count(&rows[0]), count(&rows[4]));
        assert_eq!(count(&rows[3]) + count(&rows[1]), count(&rows[5]));
        assert_eq!(rows[4]["kind"], "total");
        assert_eq!(summary.totals[1].completed, 4);
        assert_eq!(rows[5]["latency_max_us"], 8);
        assert_eq!(rows[5]["bytes"], 40);
    }

    #[test]
    fn merged_rows_and_table_shape() {
        let cfg = ReportConfig {
            peers: vec!["a:1".into(), "b:2".into()],
            workers: 1,
            merge: true,
            ..Default::default()
        };
        let (text, summary) = run(&cfg, vec![interval(0, 0, &[&[1000], &[2000]])]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("PEER "));
        assert!(lines[1].starts_with("merged(2 hosts)"));
        assert_eq!(lines[2], "--- A result during total execution time ---");
        assert!(
            lines[3].starts_with("merged(2 hosts)      2 "),
            "{}",
            lines[3]
        );
        assert_eq!(summary.totals.len(), 1);
    }

    #[test]
    fn show_only_results_prints_only_totals() {
        let cfg = ReportConfig {
            peers: vec!["a:1".into()],
            workers: 1,
            show_only_results: true,
            ..Default::default()
        };
        let (text, _) = run(
            &cfg,
            vec![interval(0, 0, &[&[1000]]), interval(0, 1, &[&[1000]])],
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("a:1")).collect();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].starts_with("a:1                  2 "));
    }

    #[test]
    fn a_window_waits_for_every_worker() {
        let cfg = ReportConfig {
            peers: vec!["a:1".into()],
            workers: 2,
            jsonlines: true,
            ..Default::default()
        };
        // Worker 1 reports window 0 only after worker 0 has sent windows 0 and 1.
        let ivs = vec![
            interval(0, 0, &[&[1000]]),
            interval(0, 1, &[&[1000]]),
            interval(1, 0, &[&[1000]]),
            interval(1, 1, &[&[1000]]),
        ];
        let (text, _) = run(&cfg, ivs);
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[0]["interval"], 0);
        assert_eq!(rows[0]["count"], 2);
        assert_eq!(rows[1]["interval"], 1);
        assert_eq!(rows[1]["count"], 2);
    }

    #[test]
    fn percentiles_match_sorted_samples_within_precision() {
        // Several workers, several windows, two targets merged: every printed percentile must
        // match the sorted raw samples to HdrHistogram's 3-significant-digit bound.
        let mut raw: Vec<u64> = Vec::new();
        let mut ivs = Vec::new();
        let mut x: u64 = 12345;
        for seq in 0..3 {
            for worker in 0..3 {
                let mut per_target: Vec<Vec<u64>> = vec![vec![], vec![]];
                for i in 0..2000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Log-uniform over 1 µs .. 100 ms.
                    let v =
                        (1000.0 * 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 5.0)) as u64;
                    per_target[i % 2].push(v);
                    raw.push(v);
                }
                let refs: Vec<&[u64]> = per_target.iter().map(|v| v.as_slice()).collect();
                ivs.push(interval(worker, seq, &refs));
            }
        }
        raw.sort_unstable();
        let cfg = ReportConfig {
            peers: vec!["a:1".into(), "b:2".into()],
            workers: 3,
            merge: true,
            jsonlines: true,
            extra_percentiles: vec![50.0, 99.9, 99.99],
            ..Default::default()
        };
        let (text, _) = run(&cfg, ivs);
        let total: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(total["count"].as_u64().unwrap(), raw.len() as u64);
        let ns = &total["latency_ns"];
        for (key, p) in [
            ("p50", 50.0),
            ("p90", 90.0),
            ("p95", 95.0),
            ("p99", 99.0),
            ("p999", 99.9),
        ] {
            let rank = ((p / 100.0) * raw.len() as f64).ceil() as usize;
            let want = raw[rank.max(1) - 1] as f64;
            let got = ns[key].as_u64().unwrap() as f64;
            assert!(
                (got - want).abs() <= want * 0.001 + 1.0,
                "{key}: got {got}, sorted samples say {want}"
            );
        }
        assert!(ns["max"].as_u64().unwrap() >= *raw.last().unwrap());
        let want99_99 = raw[(0.9999 * raw.len() as f64).ceil() as usize - 1] as f64 / 1000.0;
        let got = total["latency_9999p_us"].as_u64().unwrap() as f64;
        assert!(
            (got - want99_99).abs() <= want99_99 * 0.001 + 1.0,
            "p99.99 {got} vs {want99_99}"
        );
    }

    #[test]
    fn distribution_text_has_hdrhistogram_shape() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = percentile_distribution(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first[0], "1.000");
        let last_data = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        assert!(last_data.contains(" 1.000000000000 "), "{last_data}");
        assert!(last_data.trim_end().ends_with("1000"));
        assert!(
            text.contains("#[Max     =     1000.447, Total count    =         1000]")
                || text.contains("Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048"));
    }

    /// Replace every `"timestamp":"…"` value (wall clock) with a fixed one.
    fn mask_timestamps(text: &str) -> String {
        let key = "\"timestamp\":\"";
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(key) {
            out.push_str(&rest[..i + key.len()]);
            out.push('T');
            rest = &rest[i + key.len()..];
            rest = &rest[rest.find('"').expect("closing quote")..];
        }
        out.push_str(rest);
        out
    }

    /// Stats with every counter set to a different value, so a swapped field shows.
    fn busy_stats() -> Stats {
        let mut s = Stats::new();
        for (i, x) in [1500u64, 2500, 40_000, 1_234_567].into_iter().enumerate() {
            s.record(x, x / 2 + i as u64, 64);
            s.record_connect(x / 3);
        }
        s.record(MAX_NS + 1, 7, 64);
        s.record_start(2_500_000);
        s.record_start(10);
        for (i, k) in Failure::ALL.into_iter().enumerate() {
            s.errors[k.index()] = 10 + i as u64;
            s.conn_errors[k.index()] = 20 + i as u64;
        }
        s.lost = 31;
        s.late = 32;
        s.duplicate = 33;
        s.reordered = 34;
        s.stray = 35;
        s.not_started = 36;
        s.flows = 37;
        s.new_flows = 38;
        s
    }

    /// `json_rows_are_pinned` with every optional key: output of the map-built rows.
    const GOLDEN_FULL: &[&str] = &[
        r#"{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":4.0,"timestamp":"T","kind":"interval","labels":{"zone":"b","host":"x\ty"},"interval":0,"elapsed_sec":1.25,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_9999p_us":3601330077,"latency_1p_us":1,"latency_755p_us":1234,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":12.345678}"#,
        r#"{"peer":"b\"\\:2","count":0,"latency_max_us":null,"latency_min_us":null,"latency_mean_us":null,"latency_90p_us":null,"latency_95p_us":null,"latency_99p_us":null,"rate_per_sec":0.0,"timestamp":"T","kind":"interval","labels":{"zone":"b","host":"x\ty"},"interval":0,"elapsed_sec":1.25,"latency_50p_us":null,"latency_999p_us":null,"latency_9999p_us":null,"latency_1p_us":null,"latency_755p_us":null,"latency_ns":null,"service_min_us":null,"service_mean_us":null,"service_50p_us":null,"service_99p_us":null,"service_max_us":null,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":0,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":12.345678}"#,
        r#"{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":4.0,"timestamp":"T","kind":"total","labels":{"zone":"b","host":"x\ty"},"elapsed_sec":1.25,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_9999p_us":3601330077,"latency_1p_us":1,"latency_755p_us":1234,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":38,"clamped":1,"generator_cpu_sec":12.345678,"latency_distribution":[[1.5,0.0,1],[1.5,0.1,1],[1.5,0.2,1],[2.501,0.30000000000000004,2],[2.501,0.4,2],[40.031,0.5,3],[40.031,0.55,3],[1234.943,0.6000000000000001,4],[1234.943,0.6500000000000001,4],[1234.943,0.7000000000000002,4],[1234.943,0.7500000000000002,4],[1234.943,0.7750000000000002,4],[3601330077.695,0.8000000000000003,5],[3601330077.695,1.0,5]],"verdict":"pass","reasons":[]}"#,
        r#"{"peer":"b\"\\:2","count":0,"latency_max_us":null,"latency_min_us":null,"latency_mean_us":null,"latency_90p_us":null,"latency_95p_us":null,"latency_99p_us":null,"rate_per_sec":0.0,"timestamp":"T","kind":"total","labels":{"zone":"b","host":"x\ty"},"elapsed_sec":1.25,"latency_50p_us":null,"latency_999p_us":null,"latency_9999p_us":null,"latency_1p_us":null,"latency_755p_us":null,"latency_ns":null,"service_min_us":null,"service_mean_us":null,"service_50p_us":null,"service_99p_us":null,"service_max_us":null,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":0,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":12.345678,"latency_distribution":[],"verdict":"pass","reasons":[]}"#,
    ];

    /// `json_rows_are_pinned` with no optional key: output of the map-built rows.
    const GOLDEN_BARE: &[&str] = &[
        r#"{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.0,"timestamp":"T","kind":"interval","interval":3,"elapsed_sec":1.0,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"clamped":1,"generator_cpu_sec":0.01}"#,
        r#"{"peer":"b:2","count":0,"latency_max_us":null,"latency_min_us":null,"latency_mean_us":null,"latency_90p_us":null,"latency_95p_us":null,"latency_99p_us":null,"rate_per_sec":0.0,"timestamp":"T","kind":"interval","interval":3,"elapsed_sec":1.0,"latency_50p_us":null,"latency_999p_us":null,"latency_ns":null,"service_min_us":null,"service_mean_us":null,"service_50p_us":null,"service_99p_us":null,"service_max_us":null,"bytes":0,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"clamped":0,"generator_cpu_sec":0.01}"#,
        r#"{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.0,"timestamp":"T","kind":"total","elapsed_sec":1.0,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"clamped":1,"generator_cpu_sec":0.01,"verdict":"pass","reasons":[]}"#,
        r#"{"peer":"b:2","count":0,"latency_max_us":null,"latency_min_us":null,"latency_mean_us":null,"latency_90p_us":null,"latency_95p_us":null,"latency_99p_us":null,"rate_per_sec":0.0,"timestamp":"T","kind":"total","elapsed_sec":1.0,"latency_50p_us":null,"latency_999p_us":null,"latency_ns":null,"service_min_us":null,"service_mean_us":null,"service_50p_us":null,"service_99p_us":null,"service_max_us":null,"bytes":0,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"clamped":0,"generator_cpu_sec":0.01,"verdict":"pass","reasons":[]}"#,
    ];

    /// The exact JSON text with every optional key present (labels, interval, extra
    /// percentiles including ones that repeat fixed keys, connect, UDP, distribution) and with
    /// all of them absent (and an empty row). Keys in field order: the Go tool's first, as it printed them.
    #[test]
    fn json_rows_are_pinned() {
        let mut iv = interval(0, 0, &[&[]]);
        iv.stats = vec![busy_stats(), Stats::new()];
        iv.window = Duration::from_millis(1250);
        iv.cpu = Duration::from_micros(12_345_678);
        let full = ReportConfig {
            peers: vec!["a:1".into(), "b\"\\:2".into()],
            workers: 1,
            jsonlines: true,
            extra_percentiles: vec![50.0, 99.99, 1.0, 75.5, 99.9],
            udp: true,
            ephemeral: true,
            latency_distribution: true,
            labels: vec![("zone".into(), "b".into()), ("host".into(), "x\ty".into())],
            ..Default::default()
        };
        let (text, _) = run(&full, vec![iv]);
        let text = mask_timestamps(&text);
        assert_eq!(text.lines().collect::<Vec<_>>(), GOLDEN_FULL);
        assert!(text.ends_with('\n'));

        let mut iv = interval(0, 3, &[&[]]);
        iv.stats = vec![busy_stats(), Stats::new()];
        let bare = ReportConfig {
            peers: vec!["a:1".into(), "b:2".into()],
            workers: 1,
            jsonlines: true,
            ..Default::default()
        };
        let (text, _) = run(&bare, vec![iv]);
        let text = mask_timestamps(&text);
        assert_eq!(text.lines().collect::<Vec<_>>(), GOLDEN_BARE);
        assert!(text.ends_with('\n'));
    }

    /// `server_json_rows_are_pinned`: keys in field order; the second interval row is the partial
    /// window at the stop.
    const GOLDEN_SERVER: &[&str] = &[
        r#"{"kind":"interval","name":"0","timestamp":"T","elapsed_sec":1.0,"accepted":102,"open":52,"closed":50,"rejected":106,"idle_closed":108,"tcp_reads":110,"tcp_bytes":112,"udp_datagrams":114,"udp_bytes":116,"denied":118,"resets":120,"errors":{"accept_fd_limit":122,"accept_other":124,"io":126}}"#,
        r#"{"kind":"interval","name":"1","timestamp":"T","elapsed_sec":0.5,"accepted":1000,"open":552,"closed":500,"rejected":1000,"idle_closed":1000,"tcp_reads":1000,"tcp_bytes":1000,"udp_datagrams":1000,"udp_bytes":1000,"denied":1000,"resets":1000,"errors":{"accept_fd_limit":1000,"accept_other":1000,"io":1000}}"#,
        r#"{"kind":"worker","name":"w0","timestamp":"T","elapsed_sec":1.5,"accepted":1001,"open":501,"closed":500,"rejected":1003,"idle_closed":1004,"tcp_reads":1005,"tcp_bytes":1006,"udp_datagrams":1007,"udp_bytes":1008,"denied":1009,"resets":1010,"errors":{"accept_fd_limit":1011,"accept_other":1012,"io":1013}}"#,
        r#"{"kind":"worker","name":"w1","timestamp":"T","elapsed_sec":1.0,"accepted":101,"open":51,"closed":50,"rejected":103,"idle_closed":104,"tcp_reads":105,"tcp_bytes":106,"udp_datagrams":107,"udp_bytes":108,"denied":109,"resets":110,"errors":{"accept_fd_limit":111,"accept_other":112,"io":113}}"#,
        r#"{"kind":"total","name":"total","timestamp":"T","elapsed_sec":1.5,"accepted":1102,"open":552,"closed":550,"rejected":1106,"idle_closed":1108,"tcp_reads":1110,"tcp_bytes":1112,"udp_datagrams":1114,"udp_bytes":1116,"denied":1118,"resets":1120,"errors":{"accept_fd_limit":1122,"accept_other":1124,"io":1126}}"#,
    ];

    /// The exact JSON text of the echo server's rows: keys in field order.
    #[test]
    fn server_json_rows_are_pinned() {
        let c = |k: u64| ServerCounters {
            accepted: k + 1,
            closed: k / 2,
            rejected: k + 3,
            idle_closed: k + 4,
            tcp_reads: k + 5,
            tcp_bytes: k + 6,
            udp_datagrams: k + 7,
            udp_bytes: k + 8,
            denied: k + 9,
            resets: k + 10,
            accept_fd_limit: k + 11,
            accept_errors: k + 12,
            io_errors: k + 13,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let start = Instant::now();
        // Worker 0 stops half-way through window 1: the last interval row is 0.5 s long and
        // holds what window 0 did not count.
        for (worker, seq, k, ms, last) in [
            (0, 0, 0, 1000, false),
            (1, 0, 100, 1000, false),
            (0, 1, 1000, 1500, true),
        ] {
            let counters = c(k);
            tx.send(ServerSnapshot {
                worker,
                seq,
                counters,
                at: start + Duration::from_millis(ms),
                last,
            })
            .unwrap();
        }
        drop(tx);
        let mut buf = Vec::new();
        run_server_reporter(2, true, true, start, rx, &mut buf, None);
        let text = mask_timestamps(&String::from_utf8(buf).unwrap());
        assert_eq!(text.lines().collect::<Vec<_>>(), GOLDEN_SERVER);
    }

    /// The text rows: the partial window at the stop too, and every `key=value` an integer.
    #[test]
    fn server_text_rows_have_the_partial_window_and_integer_values() {
        let c = |k: u64| ServerCounters {
            accepted: k,
            tcp_bytes: 10 * k,
            ..Default::default()
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let start = Instant::now();
        for (seq, k, ms, last) in [(0, 3, 1000, false), (1, 5, 2000, false), (2, 6, 2250, true)] {
            tx.send(ServerSnapshot {
                worker: 0,
                seq,
                counters: c(k),
                at: start + Duration::from_millis(ms),
                last,
            })
            .unwrap();
        }
        drop(tx);
        let mut buf = Vec::new();
        run_server_reporter(1, false, true, start, rx, &mut buf, None);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, GOLDEN_SERVER_TEXT);
        let rows: Vec<(String, BTreeMap<String, u64>)> = text
            .lines()
            .map(|l| {
                let head: Vec<&str> = l.split_whitespace().take(3).collect();
                let kv = l
                    .split_whitespace()
                    .filter_map(|t| t.split_once('='))
                    .map(|(k, v)| {
                        let v = v.trim_end_matches(')');
                        (k.trim_start_matches('(').to_string(), v.parse().unwrap())
                    })
                    .collect();
                (head.join(" "), kv)
            })
            .collect();
        let heads: Vec<&str> = rows.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(
            heads,
            [
                "server interval 0",
                "server interval 1",
                "server interval 2",
                "server worker w0",
                "server total total"
            ],
            "{text}"
        );
        let col = |i: usize, k: &str| rows[i].1[k];
        assert_eq!(
            [col(0, "accepted"), col(1, "accepted"), col(2, "accepted")],
            [3, 2, 1]
        );
        assert_eq!(col(2, "tcp_bytes"), 10, "{text}");
        assert_eq!(
            [
                col(0, "elapsed_ms"),
                col(1, "elapsed_ms"),
                col(2, "elapsed_ms")
            ],
            [1000, 1000, 250]
        );
        assert_eq!(col(4, "accepted"), 6);
        assert_eq!(col(4, "elapsed_ms"), 2250);
    }

    #[test]
    fn reporter_runs_on_its_named_thread_until_the_senders_are_gone() {
        let (tx, reporter) = Reporter::spawn(3, |rx: Receiver<u64>| {
            let name = std::thread::current().name().map(String::from);
            (rx.iter().sum::<u64>(), name)
        })
        .unwrap();
        assert_eq!(tx.capacity(), Some(3 * 64 + 16));
        let tx2 = tx.clone();
        tx.send(5).unwrap();
        drop(tx);
        tx2.send(7).unwrap();
        drop(tx2);
        let (sum, name) = reporter.join().unwrap();
        assert_eq!(sum, 12);
        assert_eq!(name.as_deref(), Some("connperf-report"));
    }

    #[test]
    fn a_panicked_reporter_is_an_error() {
        let (tx, reporter) = Reporter::spawn(1, |rx: Receiver<()>| {
            rx.recv().unwrap();
            panic!("test panic in the reporter");
        })
        .unwrap();
        tx.send(()).unwrap();
        match reporter.join() {
            Err(Error::WorkerPanicked { id }) => assert_eq!(id, usize::MAX),
            other => panic!("want WorkerPanicked, got {other:?}"),
        }
    }

    #[test]
    fn io_errors_are_classified() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(Failure::of(&e), Failure::Refused);
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(Failure::of(&e), Failure::FdLimit);
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(Failure::of(&e), Failure::Unreachable);
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Failure::of(&e), Failure::Reset);
    }

    /// `print_report`'s rows for the pinned outputs: one with labels, a ramp and every counter;
    /// a breakdown row of a merged row whose target failed on its own; one from logs without
    /// counters.
    fn report_rows() -> Vec<ReportRow> {
        let mut ramp = Stats::new();
        ramp.record_connect(40_000);
        ramp.record_connect(90_000);
        ramp.conn_error(Failure::Refused);
        let row = |peer: &str| ReportRow {
            peer: peer.into(),
            labels: Vec::new(),
            by: None,
            ramp: None,
            target_failures: Vec::new(),
        };
        vec![
            ReportRow {
                labels: vec![("host".into(), "a".into())],
                ramp: Some(Ramp {
                    took: Duration::from_millis(4),
                    stats: vec![ramp],
                }),
                ..row("a:1")
            },
            ReportRow {
                labels: vec![("zone".into(), "b".into())],
                by: Some(("zone".into(), "b".into())),
                target_failures: vec!["b:2: no request completed (3 failed: refused=3)".into()],
                ..row("merged(2 hosts)")
            },
            row("old:3"),
        ]
    }

    /// Three windows of `report_rows`: the merged row is absent from the second; without
    /// `cpu_known`, the third window's generator CPU is unknown.
    fn report_windows(cpu_known: bool) -> Vec<Window> {
        let start = UNIX_EPOCH + Duration::from_millis(1_736_245_800_123);
        let mut merged = Stats::new();
        for x in [5000, 7000, 9000] {
            merged.record(x, x, 32);
        }
        merged.error(Failure::Timeout);
        let mut old = Stats::new();
        old.record(3000, 3000, 0);
        old.counters_unknown = true;
        let cell = |stats: &Stats, ms: u64| Cell {
            stats: stats.clone(),
            cpu: Duration::from_millis(ms),
            length: Duration::from_millis(1000 - ms),
        };
        (0..3u64)
            .map(|seq| Window {
                seq,
                start: start + Duration::from_secs(seq),
                length: Duration::from_secs(1),
                rows: vec![
                    Some(cell(&busy_stats(), 10 + seq)),
                    (seq != 1).then(|| cell(&merged, 20 + seq)),
                    Some(cell(&old, 30 + seq)),
                ],
                cpu: (cpu_known || seq < 2).then(|| Duration::from_millis(40 + seq)),
            })
            .collect()
    }

    /// Every option `print_report` and `run_reporter` print differently with.
    fn full_cfg(jsonlines: bool) -> ReportConfig {
        ReportConfig {
            peers: vec!["a:1".into(), "b:2".into()],
            workers: 2,
            jsonlines,
            extra_percentiles: vec![50.0, 99.9],
            udp: true,
            ephemeral: true,
            latency_distribution: true,
            labels: vec![("run".into(), "r".into())],
            seed: Some(7),
            thresholds: crate::verdict::Thresholds {
                max_error_rate: 5.0,
                slo: crate::verdict::parse_slo("p99=1ms").unwrap(),
            },
            ..Default::default()
        }
    }

    /// The exact text of `print_report` (`connperf merge`), table and JSON, and its summary:
    /// with every row kind, then without the row whose counters are unknown, only the totals,
    /// and a window whose CPU is unknown.
    #[test]
    fn print_report_output_is_pinned() {
        let rows = report_rows();
        let mut outs = Vec::new();
        for (show_only_results, jsonlines) in
            [(false, false), (false, true), (true, false), (true, true)]
        {
            let cfg = ReportConfig {
                show_only_results,
                ..full_cfg(jsonlines)
            };
            let n = if show_only_results { 2 } else { 3 };
            let mut buf = Vec::new();
            let s = print_report(
                &cfg,
                &rows[..n],
                &report_windows(!show_only_results),
                &mut buf,
            );
            let text = String::from_utf8(buf).unwrap();
            assert_eq!(s.totals.len(), n);
            outs.push(format!(
                "{text}{:?} {:?} {:?}\n",
                s.failures, s.elapsed, s.cpu
            ));
        }
        assert_eq!(outs.concat(), GOLDEN_REPORT);
    }

    /// The exact text of `run_reporter`'s table with a ramp, every option and failed checks, per
    /// target and merged; and of its JSON rows with the ramp and verdicts (timestamps masked).
    #[test]
    fn reporter_table_and_ramp_are_pinned() {
        let ivs = || {
            let mut a = interval(0, 0, &[&[1000, 2000], &[]]);
            a.stats[1] = busy_stats();
            let b = interval(1, 0, &[&[3000], &[4_000_000]]);
            let mut c = interval(0, 1, &[&[5000], &[]]);
            c.window = Duration::from_millis(400);
            let d = interval(1, 1, &[&[], &[6000]]);
            vec![a, b, c, d]
        };
        let ramp = || {
            let mut up = Stats::new();
            up.record_connect(40_000);
            up.record_connect(90_000);
            let mut refused = Stats::new();
            refused.conn_error(Failure::Refused);
            refused.conn_error(Failure::Refused);
            Some(Ramp {
                took: Duration::from_millis(4),
                stats: vec![up, refused],
            })
        };
        let report = |cfg: &ReportConfig| {
            let (tx, rx) = crossbeam_channel::unbounded();
            for iv in ivs() {
                tx.send(iv).unwrap();
            }
            drop(tx);
            let mut buf = Vec::new();
            let s = run_reporter(cfg, rx, &mut buf, |_, _, _, _| {}, ramp);
            (mask_timestamps(&String::from_utf8(buf).unwrap()), s)
        };
        let mut outs = Vec::new();
        for (merge, jsonlines) in [(false, false), (true, false), (false, true), (true, true)] {
            let cfg = ReportConfig {
                merge,
                ..full_cfg(jsonlines)
            };
            let (text, summary) = report(&cfg);
            outs.push(format!("{text}{:?}\n", summary.failures));
        }
        assert_eq!(outs.concat(), GOLDEN_REPORTER);
    }

    const GOLDEN_REPORT: &str = r##"PEER                    CNT        LAT_MAX(µs)     LAT_MIN(µs)     LAT_MEAN(µs)    LAT_90p(µs)     LAT_95p(µs)     LAT_99p(µs)     RATE(/s)   LAT_50p(µs)     LAT_99.9p(µs)   CONN_MEAN(µs)   CONN_99p(µs)    ERRORS   LOST
a:1                     5          3601330077      1               720051522       3601330077      3601330077      3601330077      5.05       40              3601330077      106             411             126      31
merged(2 hosts){zone=b} 3          9               5               7               9               9               9               3.06       7               9               -               -               1        0
old:3                   1          3               3               3               3               3               3               1.03       3               3               -               -               -        -
a:1                     5          3601330077      1               720051522       3601330077      3601330077      3601330077      5.06       40              3601330077      106             411             126      31
old:3                   1          3               3               3               3               3               3               1.03       3               3               -               -               -        -
a:1                     5          3601330077      1               720051522       3601330077      3601330077      3601330077      5.06       40              3601330077      106             411             126      31
merged(2 hosts){zone=b} 3          9               5               7               9               9               9               3.07       7               9               -               -               1        0
old:3                   1          3               3               3               3               3               3               1.03       3               3               -               -               -        -
--- A result during total execution time ---
a:1                     15         3601330077      1               720051522       3601330077      3601330077      3601330077      5.06       40              3601330077      106             411             378      93
merged(2 hosts){zone=b} 6          9               5               7               9               9               9               3.06       7               9               -               -               2        0
old:3                   3          3               3               3               3               3               3               1.03       3               3               -               -               -        -
# a:1 ramp: 2 connections up in 0.004 s (connect p50 40 µs, p99 90 µs); failed: refused=1
# a:1 errors: refused=30 reset=33 timeout=36 closed_early=39 mismatch=42 unreachable=45 addr_not_avail=48 fd_limit=51 other=54; connection attempts failed: refused=60 reset=63 timeout=66 closed_early=69 mismatch=72 unreachable=75 addr_not_avail=78 fd_limit=81 other=84
# a:1 udp: flows=114 lost=93 late=96 duplicate=99 reordered=102 stray=105
# a:1 generator behind schedule: 3 late starts (>1 ms), max 2500 µs behind, 108 not started
# a:1 send lag (actual - intended send): p50 0 µs, p99 2500 µs, max 2500 µs
# merged(2 hosts){zone=b} errors: timeout=2
# merged(2 hosts){zone=b} udp: flows=0 lost=0 late=0 duplicate=0 reordered=0 stray=0
# arrival: poisson, --seed 7 repeats this schedule
# generator cpu: 0.12 s over 3.00 s (4 % of one core)
# a:1 FAIL: errors 96.914 % > --max-error-rate 5 %
# a:1 FAIL: p99 3601.3 s > slo 1 ms
# merged(2 hosts){zone=b} FAIL: errors 25 % > --max-error-rate 5 %
# merged(2 hosts){zone=b} FAIL: b:2: no request completed (3 failed: refused=3)
# old:3 verdict unknown: its logs carry no error counts
# verdict: fail
# latency distribution of a:1 (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       1.500 0.000000000000          3           1.00
       1.500 0.100000000000          3           1.11
       1.500 0.200000000000          3           1.25
       2.501 0.300000000000          6           1.43
       2.501 0.400000000000          6           1.67
      40.031 0.500000000000          9           2.00
      40.031 0.550000000000          9           2.22
    1234.943 0.600000000000         12           2.50
    1234.943 0.650000000000         12           2.86
    1234.943 0.700000000000         12           3.33
    1234.943 0.750000000000         12           4.00
    1234.943 0.775000000000         12           4.44
3601330077.695 0.800000000000         15           5.00
3601330077.695 1.000000000000         15
#[Mean    = 720051522.864, StdDeviation   = 1440102406.504]
#[Max     = 3601330077.695, Total count    =           15]
#[Buckets =           32, SubBuckets     =         2048]
# latency distribution of merged(2 hosts){zone=b} (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       5.003 0.000000000000          2           1.00
       5.003 0.100000000000          2           1.11
       5.003 0.200000000000          2           1.25
       5.003 0.300000000000          2           1.43
       7.003 0.400000000000          4           1.67
       7.003 0.500000000000          4           2.00
       7.003 0.550000000000          4           2.22
       7.003 0.600000000000          4           2.50
       7.003 0.650000000000          4           2.86
       9.007 0.700000000000          6           3.33
       9.007 1.000000000000          6
#[Mean    =        7.003, StdDeviation   =        1.634]
#[Max     =        9.007, Total count    =            6]
#[Buckets =           32, SubBuckets     =         2048]
# latency distribution of old:3 (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       3.001 0.000000000000          3           1.00
       3.001 1.000000000000          3
#[Mean    =        3.001, StdDeviation   =        0.000]
#[Max     =        3.001, Total count    =            3]
#[Buckets =           32, SubBuckets     =         2048]
["a:1: errors 96.914 % > --max-error-rate 5 %", "a:1: p99 3601.3 s > slo 1 ms", "merged(2 hosts){zone=b}: errors 25 % > --max-error-rate 5 %", "merged(2 hosts){zone=b}: b:2: no request completed (3 failed: refused=3)"] 3s 123ms
{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.05,"timestamp":"2025-01-07T10:30:01.123Z","kind":"interval","labels":{"host":"a"},"seed":7,"interval":0,"elapsed_sec":0.99,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":0.01}
{"peer":"merged(2 hosts)","count":3,"latency_max_us":9,"latency_min_us":5,"latency_mean_us":7,"latency_90p_us":9,"latency_95p_us":9,"latency_99p_us":9,"rate_per_sec":3.06,"timestamp":"2025-01-07T10:30:01.123Z","kind":"interval","labels":{"zone":"b"},"seed":7,"interval":0,"elapsed_sec":0.98,"latency_50p_us":7,"latency_999p_us":9,"latency_ns":{"min":5000,"mean":7002.67,"p50":7003,"p90":9007,"p95":9007,"p99":9007,"p999":9007,"max":9007},"service_min_us":5,"service_mean_us":7,"service_50p_us":7,"service_99p_us":9,"service_max_us":9,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":96,"error_count":1,"errors":{"refused":0,"reset":0,"timeout":1,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.02}
{"peer":"old:3","count":1,"latency_max_us":3,"latency_min_us":3,"latency_mean_us":3,"latency_90p_us":3,"latency_95p_us":3,"latency_99p_us":3,"rate_per_sec":1.03,"timestamp":"2025-01-07T10:30:01.123Z","kind":"interval","seed":7,"interval":0,"elapsed_sec":0.97,"latency_50p_us":3,"latency_999p_us":3,"latency_ns":{"min":3000,"mean":3001.0,"p50":3001,"p90":3001,"p95":3001,"p99":3001,"p999":3001,"max":3001},"service_min_us":3,"service_mean_us":3,"service_50p_us":3,"service_99p_us":3,"service_max_us":3,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":null,"error_count":null,"errors":null,"connection_errors":null,"late_starts":null,"max_behind_us":null,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":null,"not_started_by":null,"lost":null,"late":null,"duplicate":null,"stray":null,"reordered":null,"flows":null,"clamped":null,"generator_cpu_sec":null}
{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.06,"timestamp":"2025-01-07T10:30:02.123Z","kind":"interval","labels":{"host":"a"},"seed":7,"interval":1,"elapsed_sec":0.989,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":0.011}
{"peer":"old:3","count":1,"latency_max_us":3,"latency_min_us":3,"latency_mean_us":3,"latency_90p_us":3,"latency_95p_us":3,"latency_99p_us":3,"rate_per_sec":1.03,"timestamp":"2025-01-07T10:30:02.123Z","kind":"interval","seed":7,"interval":1,"elapsed_sec":0.969,"latency_50p_us":3,"latency_999p_us":3,"latency_ns":{"min":3000,"mean":3001.0,"p50":3001,"p90":3001,"p95":3001,"p99":3001,"p999":3001,"max":3001},"service_min_us":3,"service_mean_us":3,"service_50p_us":3,"service_99p_us":3,"service_max_us":3,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":null,"error_count":null,"errors":null,"connection_errors":null,"late_starts":null,"max_behind_us":null,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":null,"not_started_by":null,"lost":null,"late":null,"duplicate":null,"stray":null,"reordered":null,"flows":null,"clamped":null,"generator_cpu_sec":null}
{"peer":"a:1","count":5,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.06,"timestamp":"2025-01-07T10:30:03.123Z","kind":"interval","labels":{"host":"a"},"seed":7,"interval":2,"elapsed_sec":0.988,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":320,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":0.012}
{"peer":"merged(2 hosts)","count":3,"latency_max_us":9,"latency_min_us":5,"latency_mean_us":7,"latency_90p_us":9,"latency_95p_us":9,"latency_99p_us":9,"rate_per_sec":3.07,"timestamp":"2025-01-07T10:30:03.123Z","kind":"interval","labels":{"zone":"b"},"seed":7,"interval":2,"elapsed_sec":0.978,"latency_50p_us":7,"latency_999p_us":9,"latency_ns":{"min":5000,"mean":7002.67,"p50":7003,"p90":9007,"p95":9007,"p99":9007,"p999":9007,"max":9007},"service_min_us":5,"service_mean_us":7,"service_50p_us":7,"service_99p_us":9,"service_max_us":9,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":96,"error_count":1,"errors":{"refused":0,"reset":0,"timeout":1,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.022}
{"peer":"old:3","count":1,"latency_max_us":3,"latency_min_us":3,"latency_mean_us":3,"latency_90p_us":3,"latency_95p_us":3,"latency_99p_us":3,"rate_per_sec":1.03,"timestamp":"2025-01-07T10:30:03.123Z","kind":"interval","seed":7,"interval":2,"elapsed_sec":0.968,"latency_50p_us":3,"latency_999p_us":3,"latency_ns":{"min":3000,"mean":3001.0,"p50":3001,"p90":3001,"p95":3001,"p99":3001,"p999":3001,"max":3001},"service_min_us":3,"service_mean_us":3,"service_50p_us":3,"service_99p_us":3,"service_max_us":3,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":null,"error_count":null,"errors":null,"connection_errors":null,"late_starts":null,"max_behind_us":null,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":null,"not_started_by":null,"lost":null,"late":null,"duplicate":null,"stray":null,"reordered":null,"flows":null,"clamped":null,"generator_cpu_sec":null}
{"peer":"a:1","count":15,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.06,"timestamp":"2025-01-07T10:30:03.123Z","kind":"total","labels":{"host":"a"},"seed":7,"elapsed_sec":2.967,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":12,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":960,"error_count":378,"errors":{"refused":30,"reset":33,"timeout":36,"closed_early":39,"mismatch":42,"unreachable":45,"addr_not_avail":48,"fd_limit":51,"other":54},"connection_errors":{"refused":60,"reset":63,"timeout":66,"closed_early":69,"mismatch":72,"unreachable":75,"addr_not_avail":78,"fd_limit":81,"other":84},"late_starts":3,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":108,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":93,"late":96,"duplicate":99,"stray":105,"reordered":102,"flows":114,"clamped":3,"generator_cpu_sec":0.033,"ramp_sec":0.004,"ramp_connections":2,"ramp_connect_50p_us":40,"ramp_connect_99p_us":90,"ramp_connect_max_us":90,"ramp_failed":{"refused":1,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"latency_distribution":[[1.5,0.0,3],[1.5,0.1,3],[1.5,0.2,3],[2.501,0.30000000000000004,6],[2.501,0.4,6],[40.031,0.5,9],[40.031,0.55,9],[1234.943,0.6000000000000001,12],[1234.943,0.6500000000000001,12],[1234.943,0.7000000000000002,12],[1234.943,0.7500000000000002,12],[1234.943,0.7750000000000002,12],[3601330077.695,0.8000000000000003,15],[3601330077.695,1.0,15]],"verdict":"fail","reasons":["errors 96.914 % > --max-error-rate 5 %","p99 3601.3 s > slo 1 ms"]}
{"peer":"merged(2 hosts)","count":6,"latency_max_us":9,"latency_min_us":5,"latency_mean_us":7,"latency_90p_us":9,"latency_95p_us":9,"latency_99p_us":9,"rate_per_sec":3.06,"timestamp":"2025-01-07T10:30:03.123Z","kind":"total","labels":{"zone":"b"},"seed":7,"elapsed_sec":1.958,"latency_50p_us":7,"latency_999p_us":9,"latency_ns":{"min":5000,"mean":7002.67,"p50":7003,"p90":9007,"p95":9007,"p99":9007,"p999":9007,"max":9007},"service_min_us":5,"service_mean_us":7,"service_50p_us":7,"service_99p_us":9,"service_max_us":9,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":192,"error_count":2,"errors":{"refused":0,"reset":0,"timeout":2,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.042,"latency_distribution":[[5.003,0.0,2],[5.003,0.1,2],[5.003,0.2,2],[5.003,0.30000000000000004,2],[7.003,0.4,4],[7.003,0.5,4],[7.003,0.55,4],[7.003,0.6000000000000001,4],[7.003,0.6500000000000001,4],[9.007,0.7000000000000002,6],[9.007,1.0,6]],"verdict":"fail","reasons":["errors 25 % > --max-error-rate 5 %","b:2: no request completed (3 failed: refused=3)"]}
{"peer":"old:3","count":3,"latency_max_us":3,"latency_min_us":3,"latency_mean_us":3,"latency_90p_us":3,"latency_95p_us":3,"latency_99p_us":3,"rate_per_sec":1.03,"timestamp":"2025-01-07T10:30:03.123Z","kind":"total","seed":7,"elapsed_sec":2.907,"latency_50p_us":3,"latency_999p_us":3,"latency_ns":{"min":3000,"mean":3001.0,"p50":3001,"p90":3001,"p95":3001,"p99":3001,"p999":3001,"max":3001},"service_min_us":3,"service_mean_us":3,"service_50p_us":3,"service_99p_us":3,"service_max_us":3,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":null,"error_count":null,"errors":null,"connection_errors":null,"late_starts":null,"max_behind_us":null,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":null,"not_started_by":null,"lost":null,"late":null,"duplicate":null,"stray":null,"reordered":null,"flows":null,"clamped":null,"generator_cpu_sec":null,"latency_distribution":[[3.001,0.0,3],[3.001,1.0,3]],"verdict":"unknown","reasons":[]}
["a:1: errors 96.914 % > --max-error-rate 5 %", "a:1: p99 3601.3 s > slo 1 ms", "merged(2 hosts){zone=b}: errors 25 % > --max-error-rate 5 %", "merged(2 hosts){zone=b}: b:2: no request completed (3 failed: refused=3)"] 3s 123ms
PEER                    CNT        LAT_MAX(µs)     LAT_MIN(µs)     LAT_MEAN(µs)    LAT_90p(µs)     LAT_95p(µs)     LAT_99p(µs)     RATE(/s)   LAT_50p(µs)     LAT_99.9p(µs)   CONN_MEAN(µs)   CONN_99p(µs)    ERRORS   LOST
--- A result during total execution time ---
a:1                     15         3601330077      1               720051522       3601330077      3601330077      3601330077      5.06       40              3601330077      106             411             378      93
merged(2 hosts){zone=b} 6          9               5               7               9               9               9               3.06       7               9               -               -               2        0
# a:1 ramp: 2 connections up in 0.004 s (connect p50 40 µs, p99 90 µs); failed: refused=1
# a:1 errors: refused=30 reset=33 timeout=36 closed_early=39 mismatch=42 unreachable=45 addr_not_avail=48 fd_limit=51 other=54; connection attempts failed: refused=60 reset=63 timeout=66 closed_early=69 mismatch=72 unreachable=75 addr_not_avail=78 fd_limit=81 other=84
# a:1 udp: flows=114 lost=93 late=96 duplicate=99 reordered=102 stray=105
# a:1 generator behind schedule: 3 late starts (>1 ms), max 2500 µs behind, 108 not started
# a:1 send lag (actual - intended send): p50 0 µs, p99 2500 µs, max 2500 µs
# merged(2 hosts){zone=b} errors: timeout=2
# merged(2 hosts){zone=b} udp: flows=0 lost=0 late=0 duplicate=0 reordered=0 stray=0
# arrival: poisson, --seed 7 repeats this schedule
# a:1 FAIL: errors 96.914 % > --max-error-rate 5 %
# a:1 FAIL: p99 3601.3 s > slo 1 ms
# merged(2 hosts){zone=b} FAIL: errors 25 % > --max-error-rate 5 %
# merged(2 hosts){zone=b} FAIL: b:2: no request completed (3 failed: refused=3)
# verdict: fail
# latency distribution of a:1 (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       1.500 0.000000000000          3           1.00
       1.500 0.100000000000          3           1.11
       1.500 0.200000000000          3           1.25
       2.501 0.300000000000          6           1.43
       2.501 0.400000000000          6           1.67
      40.031 0.500000000000          9           2.00
      40.031 0.550000000000          9           2.22
    1234.943 0.600000000000         12           2.50
    1234.943 0.650000000000         12           2.86
    1234.943 0.700000000000         12           3.33
    1234.943 0.750000000000         12           4.00
    1234.943 0.775000000000         12           4.44
3601330077.695 0.800000000000         15           5.00
3601330077.695 1.000000000000         15
#[Mean    = 720051522.864, StdDeviation   = 1440102406.504]
#[Max     = 3601330077.695, Total count    =           15]
#[Buckets =           32, SubBuckets     =         2048]
# latency distribution of merged(2 hosts){zone=b} (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       5.003 0.000000000000          2           1.00
       5.003 0.100000000000          2           1.11
       5.003 0.200000000000          2           1.25
       5.003 0.300000000000          2           1.43
       7.003 0.400000000000          4           1.67
       7.003 0.500000000000          4           2.00
       7.003 0.550000000000          4           2.22
       7.003 0.600000000000          4           2.50
       7.003 0.650000000000          4           2.86
       9.007 0.700000000000          6           3.33
       9.007 1.000000000000          6
#[Mean    =        7.003, StdDeviation   =        1.634]
#[Max     =        9.007, Total count    =            6]
#[Buckets =           32, SubBuckets     =         2048]
["a:1: errors 96.914 % > --max-error-rate 5 %", "a:1: p99 3601.3 s > slo 1 ms", "merged(2 hosts){zone=b}: errors 25 % > --max-error-rate 5 %", "merged(2 hosts){zone=b}: b:2: no request completed (3 failed: refused=3)"] 3s 0ns
{"peer":"a:1","count":15,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":720051522,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.06,"timestamp":"2025-01-07T10:30:03.123Z","kind":"total","labels":{"host":"a"},"seed":7,"elapsed_sec":2.967,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":720051522864.2,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":127,"service_50p_us":1,"service_99p_us":617,"service_max_us":617,"connect_count":12,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":960,"error_count":378,"errors":{"refused":30,"reset":33,"timeout":36,"closed_early":39,"mismatch":42,"unreachable":45,"addr_not_avail":48,"fd_limit":51,"other":54},"connection_errors":{"refused":60,"reset":63,"timeout":66,"closed_early":69,"mismatch":72,"unreachable":75,"addr_not_avail":78,"fd_limit":81,"other":84},"late_starts":3,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":108,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":93,"late":96,"duplicate":99,"stray":105,"reordered":102,"flows":114,"clamped":3,"generator_cpu_sec":0.033,"ramp_sec":0.004,"ramp_connections":2,"ramp_connect_50p_us":40,"ramp_connect_99p_us":90,"ramp_connect_max_us":90,"ramp_failed":{"refused":1,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"latency_distribution":[[1.5,0.0,3],[1.5,0.1,3],[1.5,0.2,3],[2.501,0.30000000000000004,6],[2.501,0.4,6],[40.031,0.5,9],[40.031,0.55,9],[1234.943,0.6000000000000001,12],[1234.943,0.6500000000000001,12],[1234.943,0.7000000000000002,12],[1234.943,0.7500000000000002,12],[1234.943,0.7750000000000002,12],[3601330077.695,0.8000000000000003,15],[3601330077.695,1.0,15]],"verdict":"fail","reasons":["errors 96.914 % > --max-error-rate 5 %","p99 3601.3 s > slo 1 ms"]}
{"peer":"merged(2 hosts)","count":6,"latency_max_us":9,"latency_min_us":5,"latency_mean_us":7,"latency_90p_us":9,"latency_95p_us":9,"latency_99p_us":9,"rate_per_sec":3.06,"timestamp":"2025-01-07T10:30:03.123Z","kind":"total","labels":{"zone":"b"},"seed":7,"elapsed_sec":1.958,"latency_50p_us":7,"latency_999p_us":9,"latency_ns":{"min":5000,"mean":7002.67,"p50":7003,"p90":9007,"p95":9007,"p99":9007,"p999":9007,"max":9007},"service_min_us":5,"service_mean_us":7,"service_50p_us":7,"service_99p_us":9,"service_max_us":9,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":192,"error_count":2,"errors":{"refused":0,"reset":0,"timeout":2,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.042,"latency_distribution":[[5.003,0.0,2],[5.003,0.1,2],[5.003,0.2,2],[5.003,0.30000000000000004,2],[7.003,0.4,4],[7.003,0.5,4],[7.003,0.55,4],[7.003,0.6000000000000001,4],[7.003,0.6500000000000001,4],[9.007,0.7000000000000002,6],[9.007,1.0,6]],"verdict":"fail","reasons":["errors 25 % > --max-error-rate 5 %","b:2: no request completed (3 failed: refused=3)"]}
["a:1: errors 96.914 % > --max-error-rate 5 %", "a:1: p99 3601.3 s > slo 1 ms", "merged(2 hosts){zone=b}: errors 25 % > --max-error-rate 5 %", "merged(2 hosts){zone=b}: b:2: no request completed (3 failed: refused=3)"] 3s 0ns
"##;
    const GOLDEN_REPORTER: &str = r##"PEER                 CNT        LAT_MAX(µs)     LAT_MIN(µs)     LAT_MEAN(µs)    LAT_90p(µs)     LAT_95p(µs)     LAT_99p(µs)     RATE(/s)   LAT_50p(µs)     LAT_99.9p(µs)   CONN_MEAN(µs)   CONN_99p(µs)    ERRORS   LOST
a:1                  3          3               1               2               3               3               3               3.00       2               3               -               -               0        0
b:2                  6          3601330077      1               600043602       3601330077      3601330077      3601330077      6.00       40              3601330077      106             411             126      31
a:1                  1          5               5               5               5               5               5               1.00       5               5               -               -               0        0
b:2                  1          6               6               6               6               6               6               1.00       6               6               -               -               0        0
--- A result during total execution time ---
a:1                  4          5               1               2               5               5               5               2.00       2               5               -               -               0        0
b:2                  7          3601330077      1               514323088       3601330077      3601330077      3601330077      3.50       40              3601330077      106             411             126      31
# a:1 ramp: 2 connections up in 0.004 s (connect p50 40 µs, p99 90 µs)
# b:2 ramp: 0 connections up in 0.004 s; failed: refused=2
# a:1 udp: flows=0 lost=0 late=0 duplicate=0 reordered=0 stray=0
# b:2 errors: refused=10 reset=11 timeout=12 closed_early=13 mismatch=14 unreachable=15 addr_not_avail=16 fd_limit=17 other=18; connection attempts failed: refused=20 reset=21 timeout=22 closed_early=23 mismatch=24 unreachable=25 addr_not_avail=26 fd_limit=27 other=28
# b:2 udp: flows=38 lost=31 late=32 duplicate=33 reordered=34 stray=35
# b:2 generator behind schedule: 1 late starts (>1 ms), max 2500 µs behind, 36 not started
# b:2 send lag (actual - intended send): p50 0 µs, p99 2500 µs, max 2500 µs
# arrival: poisson, --seed 7 repeats this schedule
# generator cpu: 0.04 s over 2.00 s (2 % of one core)
# b:2 FAIL: errors 95.732 % > --max-error-rate 5 %
# b:2 FAIL: p99 3601.3 s > slo 1 ms
# verdict: fail
# latency distribution of a:1 (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       1.000 0.000000000000          1           1.00
       1.000 0.100000000000          1           1.11
       1.000 0.200000000000          1           1.25
       2.000 0.300000000000          2           1.43
       2.000 0.400000000000          2           1.67
       2.000 0.500000000000          2           2.00
       3.001 0.550000000000          3           2.22
       3.001 0.600000000000          3           2.50
       3.001 0.650000000000          3           2.86
       3.001 0.700000000000          3           3.33
       5.003 0.750000000000          4           4.00
       5.003 1.000000000000          4
#[Mean    =        2.751, StdDeviation   =        1.480]
#[Max     =        5.003, Total count    =            4]
#[Buckets =           32, SubBuckets     =         2048]
# latency distribution of b:2 (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       1.500 0.000000000000          1           1.00
       1.500 0.100000000000          1           1.11
       2.501 0.200000000000          2           1.25
       6.003 0.300000000000          3           1.43
       6.003 0.400000000000          3           1.67
      40.031 0.500000000000          4           2.00
      40.031 0.550000000000          4           2.22
    1234.943 0.600000000000          5           2.50
    1234.943 0.650000000000          5           2.86
    1234.943 0.700000000000          5           3.33
    4001.791 0.750000000000          6           4.00
    4001.791 0.775000000000          6           4.44
    4001.791 0.800000000000          6           5.00
    4001.791 0.825000000000          6           5.71
    4001.791 0.850000000000          6           6.67
3601330077.695 0.875000000000          7           8.00
3601330077.695 1.000000000000          7
#[Mean    = 514323088.727, StdDeviation   = 1259826972.633]
#[Max     = 3601330077.695, Total count    =            7]
#[Buckets =           32, SubBuckets     =         2048]
["b:2: errors 95.732 % > --max-error-rate 5 %", "b:2: p99 3601.3 s > slo 1 ms"]
PEER                 CNT        LAT_MAX(µs)     LAT_MIN(µs)     LAT_MEAN(µs)    LAT_90p(µs)     LAT_95p(µs)     LAT_99p(µs)     RATE(/s)   LAT_50p(µs)     LAT_99.9p(µs)   CONN_MEAN(µs)   CONN_99p(µs)    ERRORS   LOST
merged(2 hosts)      9          3601330077      1               400029069       3601330077      3601330077      3601330077      9.00       3               3601330077      106             411             126      31
merged(2 hosts)      2          6               5               5               6               6               6               2.00       5               6               -               -               0        0
--- A result during total execution time ---
merged(2 hosts)      11         3601330077      1               327296512       4001            3601330077      3601330077      5.50       5               3601330077      106             411             126      31
# merged(2 hosts) ramp: 2 connections up in 0.004 s (connect p50 40 µs, p99 90 µs); failed: refused=2
# merged(2 hosts) errors: refused=10 reset=11 timeout=12 closed_early=13 mismatch=14 unreachable=15 addr_not_avail=16 fd_limit=17 other=18; connection attempts failed: refused=20 reset=21 timeout=22 closed_early=23 mismatch=24 unreachable=25 addr_not_avail=26 fd_limit=27 other=28
# merged(2 hosts) udp: flows=38 lost=31 late=32 duplicate=33 reordered=34 stray=35
# merged(2 hosts) generator behind schedule: 1 late starts (>1 ms), max 2500 µs behind, 36 not started
# merged(2 hosts) send lag (actual - intended send): p50 0 µs, p99 2500 µs, max 2500 µs
# arrival: poisson, --seed 7 repeats this schedule
# generator cpu: 0.04 s over 2.00 s (2 % of one core)
# merged(2 hosts) FAIL: errors 93.452 % > --max-error-rate 5 %
# merged(2 hosts) FAIL: p99 3601.3 s > slo 1 ms
# merged(2 hosts) FAIL: b:2: errors 95.732 % > --max-error-rate 5 %
# merged(2 hosts) FAIL: b:2: p99 3601.3 s > slo 1 ms
# verdict: fail
# latency distribution of merged(2 hosts) (µs, intended-time latency)
       Value     Percentile TotalCount 1/(1-Percentile)

       1.000 0.000000000000          1           1.00
       1.500 0.100000000000          2           1.11
       2.000 0.200000000000          3           1.25
       2.501 0.300000000000          4           1.43
       3.001 0.400000000000          5           1.67
       5.003 0.500000000000          6           2.00
       6.003 0.550000000000          7           2.22
       6.003 0.600000000000          7           2.50
      40.031 0.650000000000          8           2.86
      40.031 0.700000000000          8           3.33
    1234.943 0.750000000000          9           4.00
    1234.943 0.775000000000          9           4.44
    1234.943 0.800000000000          9           5.00
    4001.791 0.825000000000         10           5.71
    4001.791 0.850000000000         10           6.67
    4001.791 0.875000000000         10           8.00
    4001.791 0.887500000000         10           8.89
    4001.791 0.900000000000         10          10.00
3601330077.695 0.912500000000         11          11.43
3601330077.695 1.000000000000         11
#[Mean    = 327296512.009, StdDeviation   = 1035000773.364]
#[Max     = 3601330077.695, Total count    =           11]
#[Buckets =           32, SubBuckets     =         2048]
["merged(2 hosts): errors 93.452 % > --max-error-rate 5 %", "merged(2 hosts): p99 3601.3 s > slo 1 ms", "merged(2 hosts): b:2: errors 95.732 % > --max-error-rate 5 %", "merged(2 hosts): b:2: p99 3601.3 s > slo 1 ms"]
{"peer":"a:1","count":3,"latency_max_us":3,"latency_min_us":1,"latency_mean_us":2,"latency_90p_us":3,"latency_95p_us":3,"latency_99p_us":3,"rate_per_sec":3.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":0,"elapsed_sec":1.0,"latency_50p_us":2,"latency_999p_us":3,"latency_ns":{"min":1000,"mean":2000.33,"p50":2000,"p90":3001,"p95":3001,"p99":3001,"p999":3001,"max":3001},"service_min_us":1,"service_mean_us":2,"service_50p_us":2,"service_99p_us":3,"service_max_us":3,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":30,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.02}
{"peer":"b:2","count":6,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":600043602,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":6.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":0,"elapsed_sec":1.0,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":600043602514.83,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":773,"service_50p_us":1,"service_99p_us":4001,"service_max_us":4001,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":330,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":0.02}
{"peer":"a:1","count":1,"latency_max_us":5,"latency_min_us":5,"latency_mean_us":5,"latency_90p_us":5,"latency_95p_us":5,"latency_99p_us":5,"rate_per_sec":1.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":1,"elapsed_sec":1.0,"latency_50p_us":5,"latency_999p_us":5,"latency_ns":{"min":5000,"mean":5002.0,"p50":5003,"p90":5003,"p95":5003,"p99":5003,"p999":5003,"max":5003},"service_min_us":5,"service_mean_us":5,"service_50p_us":5,"service_99p_us":5,"service_max_us":5,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":10,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.02}
{"peer":"b:2","count":1,"latency_max_us":6,"latency_min_us":6,"latency_mean_us":6,"latency_90p_us":6,"latency_95p_us":6,"latency_99p_us":6,"rate_per_sec":1.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":1,"elapsed_sec":1.0,"latency_50p_us":6,"latency_999p_us":6,"latency_ns":{"min":6000,"mean":6002.0,"p50":6003,"p90":6003,"p95":6003,"p99":6003,"p999":6003,"max":6003},"service_min_us":6,"service_mean_us":6,"service_50p_us":6,"service_99p_us":6,"service_max_us":6,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":10,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.02}
{"peer":"a:1","count":4,"latency_max_us":5,"latency_min_us":1,"latency_mean_us":2,"latency_90p_us":5,"latency_95p_us":5,"latency_99p_us":5,"rate_per_sec":2.0,"timestamp":"T","kind":"total","labels":{"run":"r"},"seed":7,"elapsed_sec":2.0,"latency_50p_us":2,"latency_999p_us":5,"latency_ns":{"min":1000,"mean":2750.75,"p50":2000,"p90":5003,"p95":5003,"p99":5003,"p999":5003,"max":5003},"service_min_us":1,"service_mean_us":2,"service_50p_us":2,"service_99p_us":5,"service_max_us":5,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":40,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.04,"ramp_sec":0.004,"ramp_connections":2,"ramp_connect_50p_us":40,"ramp_connect_99p_us":90,"ramp_connect_max_us":90,"ramp_failed":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"latency_distribution":[[1.0,0.0,1],[1.0,0.1,1],[1.0,0.2,1],[2.0,0.30000000000000004,2],[2.0,0.4,2],[2.0,0.5,2],[3.001,0.55,3],[3.001,0.6000000000000001,3],[3.001,0.6500000000000001,3],[3.001,0.7000000000000002,3],[5.003,0.7500000000000002,4],[5.003,1.0,4]],"verdict":"pass","reasons":[]}
{"peer":"b:2","count":7,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":514323088,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":3.5,"timestamp":"T","kind":"total","labels":{"run":"r"},"seed":7,"elapsed_sec":2.0,"latency_50p_us":40,"latency_999p_us":3601330077,"latency_ns":{"min":1500,"mean":514323088727.29,"p50":40031,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":663,"service_50p_us":6,"service_99p_us":4001,"service_max_us":4001,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":340,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":38,"clamped":1,"generator_cpu_sec":0.04,"ramp_sec":0.004,"ramp_connections":0,"ramp_connect_50p_us":null,"ramp_connect_99p_us":null,"ramp_connect_max_us":null,"ramp_failed":{"refused":2,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"latency_distribution":[[1.5,0.0,1],[1.5,0.1,1],[2.501,0.2,2],[6.003,0.30000000000000004,3],[6.003,0.4,3],[40.031,0.5,4],[40.031,0.55,4],[1234.943,0.6000000000000001,5],[1234.943,0.6500000000000001,5],[1234.943,0.7000000000000002,5],[4001.791,0.7500000000000002,6],[4001.791,0.7750000000000002,6],[4001.791,0.8000000000000003,6],[4001.791,0.8250000000000003,6],[4001.791,0.8500000000000003,6],[3601330077.695,0.8750000000000003,7],[3601330077.695,1.0,7]],"verdict":"fail","reasons":["errors 95.732 % > --max-error-rate 5 %","p99 3601.3 s > slo 1 ms"]}
["b:2: errors 95.732 % > --max-error-rate 5 %", "b:2: p99 3601.3 s > slo 1 ms"]
{"peer":"merged(2 hosts)","count":9,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":400029069,"latency_90p_us":3601330077,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":9.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":0,"elapsed_sec":1.0,"latency_50p_us":3,"latency_999p_us":3601330077,"latency_ns":{"min":1000,"mean":400029069010.0,"p50":3001,"p90":3601330077695,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":516,"service_50p_us":2,"service_99p_us":4001,"service_max_us":4001,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":360,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":37,"clamped":1,"generator_cpu_sec":0.02}
{"peer":"merged(2 hosts)","count":2,"latency_max_us":6,"latency_min_us":5,"latency_mean_us":5,"latency_90p_us":6,"latency_95p_us":6,"latency_99p_us":6,"rate_per_sec":2.0,"timestamp":"T","kind":"interval","labels":{"run":"r"},"seed":7,"interval":1,"elapsed_sec":1.0,"latency_50p_us":5,"latency_999p_us":6,"latency_ns":{"min":5000,"mean":5502.0,"p50":5003,"p90":6003,"p95":6003,"p99":6003,"p999":6003,"max":6003},"service_min_us":5,"service_mean_us":5,"service_50p_us":5,"service_99p_us":6,"service_max_us":6,"connect_count":0,"connect_min_us":null,"connect_mean_us":null,"connect_50p_us":null,"connect_99p_us":null,"connect_max_us":null,"bytes":20,"error_count":0,"errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"connection_errors":{"refused":0,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"late_starts":0,"max_behind_us":0,"send_lag_50p_us":null,"send_lag_99p_us":null,"send_lag_max_us":null,"not_started":0,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":0,"late":0,"duplicate":0,"stray":0,"reordered":0,"flows":0,"clamped":0,"generator_cpu_sec":0.02}
{"peer":"merged(2 hosts)","count":11,"latency_max_us":3601330077,"latency_min_us":1,"latency_mean_us":327296512,"latency_90p_us":4001,"latency_95p_us":3601330077,"latency_99p_us":3601330077,"rate_per_sec":5.5,"timestamp":"T","kind":"total","labels":{"run":"r"},"seed":7,"elapsed_sec":2.0,"latency_50p_us":5,"latency_999p_us":3601330077,"latency_ns":{"min":1000,"mean":327296512008.55,"p50":5003,"p90":4001791,"p95":3601330077695,"p99":3601330077695,"p999":3601330077695,"max":3601330077695},"service_min_us":0,"service_mean_us":423,"service_50p_us":3,"service_99p_us":4001,"service_max_us":4001,"connect_count":4,"connect_min_us":0,"connect_mean_us":106,"connect_50p_us":0,"connect_99p_us":411,"connect_max_us":411,"bytes":380,"error_count":126,"errors":{"refused":10,"reset":11,"timeout":12,"closed_early":13,"mismatch":14,"unreachable":15,"addr_not_avail":16,"fd_limit":17,"other":18},"connection_errors":{"refused":20,"reset":21,"timeout":22,"closed_early":23,"mismatch":24,"unreachable":25,"addr_not_avail":26,"fd_limit":27,"other":28},"late_starts":1,"max_behind_us":2500,"send_lag_50p_us":0,"send_lag_99p_us":2500,"send_lag_max_us":2500,"not_started":36,"not_started_by":{"in_flight_limit":0,"run_ended":0},"lost":31,"late":32,"duplicate":33,"stray":35,"reordered":34,"flows":38,"clamped":1,"generator_cpu_sec":0.04,"ramp_sec":0.004,"ramp_connections":2,"ramp_connect_50p_us":40,"ramp_connect_99p_us":90,"ramp_connect_max_us":90,"ramp_failed":{"refused":2,"reset":0,"timeout":0,"closed_early":0,"mismatch":0,"unreachable":0,"addr_not_avail":0,"fd_limit":0,"other":0},"latency_distribution":[[1.0,0.0,1],[1.5,0.1,2],[2.0,0.2,3],[2.501,0.30000000000000004,4],[3.001,0.4,5],[5.003,0.5,6],[6.003,0.55,7],[6.003,0.6000000000000001,7],[40.031,0.6500000000000001,8],[40.031,0.7000000000000002,8],[1234.943,0.7500000000000002,9],[1234.943,0.7750000000000002,9],[1234.943,0.8000000000000003,9],[4001.791,0.8250000000000003,10],[4001.791,0.8500000000000003,10],[4001.791,0.8750000000000003,10],[4001.791,0.8875000000000003,10],[4001.791,0.9000000000000002,10],[3601330077.695,0.9125000000000002,11],[3601330077.695,1.0,11]],"verdict":"fail","reasons":["errors 93.452 % > --max-error-rate 5 %","p99 3601.3 s > slo 1 ms","b:2: errors 95.732 % > --max-error-rate 5 %","b:2: p99 3601.3 s > slo 1 ms"]}
["merged(2 hosts): errors 93.452 % > --max-error-rate 5 %", "merged(2 hosts): p99 3601.3 s > slo 1 ms", "merged(2 hosts): b:2: errors 95.732 % > --max-error-rate 5 %", "merged(2 hosts): b:2: p99 3601.3 s > slo 1 ms"]
"##;
    const GOLDEN_SERVER_TEXT: &str = r##"server interval 0      accepted=3 open=3 closed=0 rejected=0 idle_closed=0 tcp_reads=0 tcp_bytes=30 udp_datagrams=0 udp_bytes=0 denied=0 resets=0 errors=0 (accept_fd_limit=0 accept_other=0 io=0) elapsed_ms=1000
server interval 1      accepted=2 open=5 closed=0 rejected=0 idle_closed=0 tcp_reads=0 tcp_bytes=20 udp_datagrams=0 udp_bytes=0 denied=0 resets=0 errors=0 (accept_fd_limit=0 accept_other=0 io=0) elapsed_ms=1000
server interval 2      accepted=1 open=6 closed=0 rejected=0 idle_closed=0 tcp_reads=0 tcp_bytes=10 udp_datagrams=0 udp_bytes=0 denied=0 resets=0 errors=0 (accept_fd_limit=0 accept_other=0 io=0) elapsed_ms=250
server worker   w0     accepted=6 open=6 closed=0 rejected=0 idle_closed=0 tcp_reads=0 tcp_bytes=60 udp_datagrams=0 udp_bytes=0 denied=0 resets=0 errors=0 (accept_fd_limit=0 accept_other=0 io=0) elapsed_ms=2250
server total    total  accepted=6 open=6 closed=0 rejected=0 idle_closed=0 tcp_reads=0 tcp_bytes=60 udp_datagrams=0 udp_bytes=0 denied=0 resets=0 errors=0 (accept_fd_limit=0 accept_other=0 io=0) elapsed_ms=2250
"##;
}
