//! Live metrics (`--metrics-addr HOST:PORT`): what the reporter has folded in so far, served as
//! OpenMetrics text at `/metrics`, and the run's `Phase` that the main thread sets (read by the
//! `/metrics` page and by the progress line, `progress.rs`).
//!
//! Off the hot path: the workers never see any of this. The reporter thread, which already
//! merges every worker's window, folds each finished window into `Live` (one mutex, taken once
//! per window); a scrape takes the same mutex and encodes a copy with `prometheus-client`.
//! `tiny_http` serves it on its own thread.
//!
//! A scrape is one consistent moment: `connperf_windows_total` says how many reporting windows
//! its counters hold, so they equal the sum of the printed interval rows `0..windows`.
//! Latencies nothing measured are left out of the page (unknown), never written as 0.
//!
//! Leaves to others: measuring (`report`, `driver`), the command line (`cli`), the terminal
//! (`progress`).

use crate::report::{Failure, ServerCounters, Stats, ERROR_KINDS};
use crate::{Error, Result};
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The `Content-Type` of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The prefix of every metric name.
const PREFIX: &str = "connperf";

/// Label names connperf uses itself: a `--label` key may not be one of them.
pub const RESERVED_LABELS: [&str; 7] = [
    "target", "outcome", "kind", "quantile", "le", "phase", "proto",
];

/// Upper bounds (seconds) of the latency histogram's buckets: 10 µs to 10 s, 1-2.5-5 steps,
/// wide enough for loopback and WAN round trips; the exact percentiles are beside it as gauges.
const LATENCY_BUCKETS_S: [f64; 19] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The quantiles of the last window's latency served as gauges (`1` is the max).
const LATENCY_QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// The quantiles of the last window's send lag served as gauges (`1` is the max).
const SEND_LAG_QUANTILES: [f64; 3] = [0.5, 0.99, 1.0];

/// One step of a rate sweep (`Live::set_step`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub index: usize,
    /// Number of steps.
    pub of: usize,
    /// The step's offered rate, requests/s.
    pub rate_per_sec: f64,
}

/// What the run is doing now. The main thread sets it (`Live::set_phase`); the progress line
/// and the `connperf_phase` gauge read it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Phase {
    /// Setting up: nothing to show yet.
    #[default]
    Setup,
    /// Waiting for `--start-at`.
    StartAt { at: SystemTime },
    /// Connections coming up before the schedule starts.
    Ramp { since: Instant },
    /// The schedule runs: warm-up until `measure`, measured from `measure` to `end`.
    Run { measure: Instant, end: Instant },
    /// The schedule ended: waiting for replies in flight, then the report.
    Drain,
    /// `serve`: echoing since `since`.
    Serve { since: Instant },
    /// The run is over and its report printed.
    Done,
}

impl Phase {
    /// The `phase` label of the `connperf_phase` gauge.
    pub fn name(&self, now: Instant) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::StartAt { .. } => "start_at",
            Phase::Ramp { .. } => "ramp",
            Phase::Run { measure, .. } if now < *measure => "warmup",
            Phase::Run { .. } => "measure",
            Phase::Drain => "drain",
            Phase::Serve { .. } => "serve",
            Phase::Done => "done",
        }
    }
}

/// One target's counters, summed over the windows folded in so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub completed: u64,
    pub bytes: u64,
    pub errors: [u64; ERROR_KINDS],
    pub conn_errors: [u64; ERROR_KINDS],
    pub connects: u64,
    pub lost: u64,
    pub not_started: u64,
    pub late_starts: u64,
}

impl Counts {
    fn add(&mut self, s: &Stats) {
        self.completed += s.completed;
        self.bytes += s.bytes;
        for (a, b) in self.errors.iter_mut().zip(s.errors) {
            *a += b;
        }
        for (a, b) in self.conn_errors.iter_mut().zip(s.conn_errors) {
            *a += b;
        }
        self.connects += s.connect.len();
        self.lost += s.lost;
        self.not_started += s.not_started;
        self.late_starts += s.late_starts;
    }

    /// Failed requests, all kinds.
    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// The last window of one target: its latency and send lag.
#[derive(Debug, Clone)]
struct LastWindow {
    completed: u64,
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
}

/// A ramp's length, and per target the connections it brought up and those that failed.
#[derive(Debug, Clone)]
struct RampCounts {
    took: Duration,
    targets: Vec<(u64, [u64; ERROR_KINDS])>,
}

/// What `Live` holds, behind its mutex.
#[derive(Debug, Default)]
struct State {
    phase: Phase,
    /// The sweep step under way, kept across phases.
    step: Option<Step>,
    /// Target names, as typed, from the reporter.
    peers: Vec<String>,
    windows: u64,
    counts: Vec<Counts>,
    last: Vec<LastWindow>,
    last_length: Duration,
    /// The sweep step (`Step::index`) under way when the last window was folded in.
    last_step: Option<usize>,
    cpu: Duration,
    /// `serve`: the counters at the end of the last window.
    server: Option<ServerCounters>,
    /// The ramp of the run (of the latest sweep step): its length, and per target the
    /// connections up and failed.
    ramp: Option<RampCounts>,
    /// The reporter printed its totals (for `connect`, once per run; a sweep has several).
    runs_reported: u64,
    /// Scrapes served since the last report.
    scrapes_after_report: u64,
}

/// The state the reporter updates per finished window and the main thread per phase; read by
/// `/metrics` and the progress line. Cheap to share: `Arc<Live>`.
///
/// API for other parts of the run (for example `--sweep`): `set_phase` (any thread), `phase`,
/// `snapshot`. The reporter calls `fold_window` / `fold_server` and `report_printed`.
pub struct Live {
    state: Mutex<State>,
    reported: Condvar,
    /// `--label` pairs, the constant labels of every metric.
    labels: Vec<(String, String)>,
    /// The progress line on stderr, if one is drawn (`progress.rs`).
    pub(crate) screen: Mutex<crate::progress::Screen>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// A copy of what `Live` counts, for the progress line and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub phase: Phase,
    /// The sweep step under way, if any.
    pub step: Option<Step>,
    /// Windows folded in so far.
    pub windows: u64,
    /// Counts summed over the targets.
    pub counts: Counts,
    /// Requests completed per second in the last window, all targets; `None` before the first.
    pub rate_per_sec: Option<f64>,
    /// `serve`: the counters at the end of the last window.
    pub server: Option<ServerCounters>,
}

impl Live {
    /// Nothing folded in yet; `labels` are the run's `--label` pairs.
    pub fn new(labels: Vec<(String, String)>) -> Live {
        Live {
            state: Mutex::new(State::default()),
            reported: Condvar::new(),
            labels,
            screen: Mutex::new(crate::progress::Screen::default()),
        }
    }

    /// `serve`'s: echoing since `since`, every counter 0 until the first window.
    pub fn new_server(since: Instant) -> Live {
        let live = Live::new(Vec::new());
        {
            let mut st = live.lock();
            st.phase = Phase::Serve { since };
            st.server = Some(ServerCounters::default());
        }
        live
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Say what the run is doing now (`--start-at` wait, ramp, warm-up and measurement, a sweep
    /// step, the drain). Any thread; shown by the progress line and the `connperf_phase` gauge.
    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    /// What the run is doing now.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// Say which step of a `--sweep` runs now (`None`: no sweep, or it is over). It stays
    /// through the phases each step goes through (ramp, warm-up, measurement, drain): the
    /// progress line shows it before the phase, and `/metrics` has `connperf_sweep_step`.
    /// `/metrics` keeps serving the last finished window (of the step before, at another rate)
    /// until the new step's first window replaces it; the progress line's rate, which it
    /// shows beside the new step's, is unknown until then.
    pub fn set_step(&self, step: Option<Step>) {
        self.lock().step = step;
    }

    /// The reporter finished window `seq` of `length` (the workers' CPU in it: `cpu`), per
    /// target in `peers` order. Called once per window, in order, printed or not.
    pub fn fold_window(
        &self,
        peers: &[String],
        _seq: u64,
        length: Duration,
        cpu: Duration,
        stats: &[Stats],
    ) {
        let mut st = self.lock();
        if st.peers.as_slice() != peers {
            st.peers = peers.to_vec();
            st.counts.resize(peers.len(), Counts::default());
        }
        for (c, s) in st.counts.iter_mut().zip(stats) {
            c.add(s);
        }
        st.last = stats
            .iter()
            .map(|s| LastWindow {
                completed: s.completed,
                latency: s.latency.clone(),
                send_lag: s.send_lag.clone(),
            })
            .collect();
        st.last_length = length;
        st.last_step = st.step.map(|s| s.index);
        st.cpu += cpu;
        st.windows += 1;
    }

    /// The ramp is over (the schedule started): `ramp.took` long, per target the connections
    /// that came up and those that failed.
    pub fn set_ramp(&self, ramp: &crate::report::Ramp) {
        let targets = ramp
            .stats
            .iter()
            .map(|s| (s.connect.len(), s.conn_errors))
            .collect();
        self.lock().ramp = Some(RampCounts {
            took: ramp.took,
            targets,
        });
    }

    /// `serve`'s reporter: every worker reported window `seq`; `total` is the sum of their
    /// counters then (cumulative).
    pub fn fold_server(&self, seq: u64, total: &ServerCounters) {
        let mut st = self.lock();
        st.server = Some(*total);
        st.windows = st.windows.max(seq + 1);
    }

    /// The reporter printed its totals: every window is folded in. `serve` passes its final
    /// counters (the partial last window included).
    pub fn report_printed(&self, server: Option<&ServerCounters>) {
        let mut st = self.lock();
        if let Some(t) = server {
            st.server = Some(*t);
            st.windows += 1;
        }
        st.runs_reported += 1;
        st.scrapes_after_report = 0;
        st.phase = Phase::Done;
        self.reported.notify_all();
    }

    /// Wait until a scrape has been served since the last report was printed, at most
    /// `limit` or until `stop()` says so (checked every 50 ms): `--metrics-linger`.
    /// `waiting()` is called once if it has to wait (not when a scrape came already).
    pub fn wait_scraped(
        &self,
        limit: Duration,
        stop: impl Fn() -> bool,
        waiting: impl FnOnce(),
    ) -> bool {
        let deadline = Instant::now() + limit;
        let mut waiting = Some(waiting);
        let mut st = self.lock();
        loop {
            if st.scrapes_after_report > 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || stop() {
                return false;
            }
            if let Some(say) = waiting.take() {
                say();
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            st = self
                .reported
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A copy of the counts summed over the targets.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let mut counts = Counts::default();
        for c in &st.counts {
            counts.completed += c.completed;
            counts.bytes += c.bytes;
            for k in 0..ERROR_KINDS {
                counts.errors[k] += c.errors[k];
                counts.conn_errors[k] += c.conn_errors[k];
            }
            counts.connects += c.connects;
            counts.lost += c.lost;
            counts.not_started += c.not_started;
            counts.late_starts += c.late_starts;
        }
        let secs = st.last_length.as_secs_f64();
        // In a sweep, a window of the step before measured another rate: not this step's.
        let this_step = st.step.is_none() || st.last_step == st.step.map(|s| s.index);
        let rate_per_sec = (st.windows > 0 && !st.last.is_empty() && secs > 0.0 && this_step)
            .then(|| st.last.iter().map(|l| l.completed).sum::<u64>() as f64 / secs);
        Snapshot {
            phase: st.phase,
            step: st.step,
            windows: st.windows,
            counts,
            rate_per_sec,
            server: st.server,
        }
    }

    /// The `/metrics` page: OpenMetrics text, ending in `# EOF`.
    pub fn encode(self: &Arc<Self>) -> String {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())));
        let mut registry = Registry::with_prefix_and_labels(PREFIX, labels);
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        self.lock().scrapes_after_report += 1;
        self.reported.notify_all();
        out
    }
}

/// Check that `--label` keys can be Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, and not
/// one of connperf's own.
pub fn check_label_names(labels: &[(String, String)]) -> Result<()> {
    for (k, v) in labels {
        let ok_first = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_first || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Config(format!(
                "invalid --label \"{k}={v}\" with --metrics-addr: a metric label name is letters, digits and '_', not starting with a digit"
            )));
        }
        if RESERVED_LABELS.contains(&k.as_str()) || k.starts_with("__") {
            return Err(Error::Config(format!(
                "invalid --label \"{k}={v}\" with --metrics-addr: the key {k:?} is reserved for connperf's own labels"
            )));
        }
    }
    Ok(())
}

/// Encodes `Live` on each scrape.
#[derive(Debug)]
struct Exposition(Arc<Live>);

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn counter(me: &mut MetricEncoder, labels: &[(&str, &str)], v: u64) -> fmt::Result {
    me.encode_family(&labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

/// Target `p`'s counts by `Failure` kind, one counter each, labelled `kind`.
fn kind_counters(me: &mut MetricEncoder, p: &str, by_kind: &[u64; ERROR_KINDS]) -> fmt::Result {
    for k in Failure::ALL {
        counter(me, &[("target", p), ("kind", k.name())], by_kind[k.index()])?;
    }
    Ok(())
}

fn gauge(me: &mut MetricEncoder, labels: &[(&str, &str)], v: f64) -> fmt::Result {
    me.encode_family(&labels)?.encode_gauge(&v)
}

/// Buckets of `h` (ns) by `LATENCY_BUCKETS_S`, per bucket (not cumulative), `+Inf` last; and
/// the sum in seconds.
fn buckets(h: &Histogram<u64>) -> (Vec<(f64, u64)>, f64) {
    let mut b: Vec<(f64, u64)> = LATENCY_BUCKETS_S.iter().map(|&s| (s, 0)).collect();
    b.push((f64::INFINITY, 0));
    let mut sum = 0.0;
    for v in h.iter_recorded() {
        let value_s = seconds(h.highest_equivalent(v.value_iterated_to()));
        let n = v.count_at_value();
        sum += seconds(h.median_equivalent(v.value_iterated_to())) * n as f64;
        let i = b
            .iter()
            .position(|(le, _)| value_s <= *le)
            .unwrap_or(b.len() - 1);
        b[i].1 += n;
    }
    (b, sum)
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let live = &self.0;
        let st = live.lock();
        let now = Instant::now();
        let peers: Vec<&str> = st.peers.iter().map(String::as_str).collect();

        let mut me = enc.encode_descriptor(
            "phase",
            "What the run is doing now (1 for the current phase)",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut me, &[("phase", st.phase.name(now))], 1.0)?;

        if let Some(step) = st.step {
            // Plain gauges: values that change every step are no labels (a series each).
            for (name, help, v) in [
                (
                    "sweep_step",
                    "The --sweep step under way, 1-based",
                    step.index as f64,
                ),
                ("sweep_steps", "Steps the --sweep has", step.of as f64),
                (
                    "sweep_offered_rate_per_second",
                    "Requests per second the --sweep step under way offers, all targets",
                    step.rate_per_sec,
                ),
            ] {
                let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                me.encode_gauge(&v)?;
            }
        }

        let mut me = enc.encode_descriptor(
            "windows",
            "Reporting windows folded into these metrics: the counters are the sum of the printed interval rows 0 to windows-1",
            None,
            MetricType::Counter,
        )?;
        me.encode_counter::<NoLabelSet, u64, u64>(&st.windows, None)?;

        let mut me = enc.encode_descriptor(
            "reports",
            "Final reports printed (1 once the run is over; a sweep prints one per step)",
            None,
            MetricType::Counter,
        )?;
        me.encode_counter::<NoLabelSet, u64, u64>(&st.runs_reported, None)?;

        if let Some(c) = &st.server {
            return encode_server(&mut enc, c);
        }
        if peers.is_empty() {
            return Ok(());
        }
        encode_totals(&mut enc, &st, &peers)?;
        encode_last_window(&mut enc, &st, &peers)
    }
}

/// `connect`'s counters per target (and the ramp's), the generator's CPU.
fn encode_totals(enc: &mut DescriptorEncoder, st: &State, peers: &[&str]) -> fmt::Result {
    encode_requests(enc, st, peers)?;
    per_target_kinds(
        enc,
        "request_errors",
        "Failed requests by kind",
        st,
        peers,
        |c| &c.errors,
    )?;
    per_target_counters(
        enc,
        "payload",
        "Payload bytes sent and echoed back by completed requests",
        Some(&Unit::Bytes),
        st,
        peers,
        |c| c.bytes,
    )?;
    per_target_counters(
        enc,
        "connects",
        "Connections established in the measured windows (ephemeral: one per request; persistent: redials; the ramp's are not counted)",
        None,
        st,
        peers,
        |c| c.connects,
    )?;
    per_target_kinds(
        enc,
        "connection_errors",
        "Connections that failed with no request in flight, by kind",
        st,
        peers,
        |c| &c.conn_errors,
    )?;

    if let Some(ramp) = &st.ramp {
        encode_ramp(enc, ramp, peers)?;
    }

    per_target_counters(
        enc,
        "late_starts",
        "Sends more than 1 ms behind their intended time",
        None,
        st,
        peers,
        |c| c.late_starts,
    )?;

    let mut me = enc.encode_descriptor(
        "generator_cpu",
        "CPU time the generator's workers used",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    me.encode_counter::<NoLabelSet, f64, f64>(&st.cpu.as_secs_f64(), None)?;

    Ok(())
}

/// Scheduled requests per target by outcome: completed, failed, lost, not started.
fn encode_requests(enc: &mut DescriptorEncoder, st: &State, peers: &[&str]) -> fmt::Result {
    let mut me = enc.encode_descriptor(
        "requests",
        "Scheduled requests by outcome: completed (correct echo), failed (see connperf_request_errors_total), lost (UDP, no reply in --timeout), not_started (the generator's own doing)",
        None,
        MetricType::Counter,
    )?;
    for (p, c) in peers.iter().zip(&st.counts) {
        for (outcome, v) in [
            ("completed", c.completed),
            ("failed", c.failed()),
            ("lost", c.lost),
            ("not_started", c.not_started),
        ] {
            counter(&mut me, &[("target", p), ("outcome", outcome)], v)?;
        }
    }
    Ok(())
}

/// Counter family `name`: per target, `value` of its counts, labelled `target`.
fn per_target_counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    st: &State,
    peers: &[&str],
    value: impl Fn(&Counts) -> u64,
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (p, c) in peers.iter().zip(&st.counts) {
        counter(&mut me, &[("target", p)], value(c))?;
    }
    Ok(())
}

/// Counter family `name`: per target, its counts by `Failure` kind (`by_kind`), labelled
/// `target` and `kind`.
fn per_target_kinds(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    st: &State,
    peers: &[&str],
    by_kind: impl Fn(&Counts) -> &[u64; ERROR_KINDS],
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (p, c) in peers.iter().zip(&st.counts) {
        kind_counters(&mut me, p, by_kind(c))?;
    }
    Ok(())
}

/// The ramp before the schedule: its length, per target the connections up and failed.
fn encode_ramp(enc: &mut DescriptorEncoder, ramp: &RampCounts, peers: &[&str]) -> fmt::Result {
    let RampCounts {
        took,
        targets: per_target,
    } = ramp;
    let mut me = enc.encode_descriptor(
        "ramp",
        "How long bringing up the connections took before the schedule started",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    me.encode_gauge(&took.as_secs_f64())?;
    let mut me = enc.encode_descriptor(
        "ramp_connections",
        "Connections up in the ramp",
        None,
        MetricType::Gauge,
    )?;
    for (p, (up, _)) in peers.iter().zip(per_target) {
        gauge(&mut me, &[("target", p)], *up as f64)?;
    }
    let mut me = enc.encode_descriptor(
        "ramp_connection_errors",
        "Connections that failed in the ramp, by kind",
        None,
        MetricType::Gauge,
    )?;
    for (p, (_, errs)) in peers.iter().zip(per_target) {
        for k in Failure::ALL {
            gauge(
                &mut me,
                &[("target", p), ("kind", k.name())],
                errs[k.index()] as f64,
            )?;
        }
    }
    Ok(())
}

/// The last window: its length, rate, latency histogram and quantiles, send lag; nothing
/// before the first window.
fn encode_last_window(enc: &mut DescriptorEncoder, st: &State, peers: &[&str]) -> fmt::Result {
    if st.windows == 0 || st.last.is_empty() {
        return Ok(());
    }
    let secs = st.last_length.as_secs_f64();
    let mut me = enc.encode_descriptor(
        "window",
        "Length of the last reporting window",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    me.encode_gauge(&secs)?;

    if secs > 0.0 {
        let mut me = enc.encode_descriptor(
            "rate_per_second",
            "Requests completed per second in the last window",
            None,
            MetricType::Gauge,
        )?;
        for (p, l) in peers.iter().zip(&st.last) {
            gauge(&mut me, &[("target", p)], l.completed as f64 / secs)?;
        }
    }

    let mut me = enc.encode_descriptor(
        "latency",
        "Latency from each request's intended send time to its echo, last window (coordinated omission corrected)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (p, l) in peers.iter().zip(&st.last) {
        let (b, sum) = buckets(&l.latency);
        me.encode_family(&[("target", *p)])?
            .encode_histogram::<NoLabelSet>(sum, l.latency.len(), &b, None)?;
    }

    let mut me = enc.encode_descriptor(
        "latency_quantile",
        "Latency quantiles of the last window (1 is the max); absent when nothing completed",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    let latencies = st.last.iter().map(|l| &l.latency);
    quantile_gauges(&mut me, peers, latencies, &LATENCY_QUANTILES)?;

    let mut me = enc.encode_descriptor(
        "send_lag",
        "Actual minus intended send time of the last window's sends, quantiles (1 is the max): the generator's own error bar; absent with no paced send",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    let lags = st.last.iter().map(|l| &l.send_lag);
    quantile_gauges(&mut me, peers, lags, &SEND_LAG_QUANTILES)
}

/// Per target, the quantiles `qs` of its histogram (ns) in seconds, labelled `quantile`; none
/// for a target whose histogram is empty (unknown, not 0).
fn quantile_gauges<'h>(
    me: &mut MetricEncoder,
    peers: &[&str],
    hists: impl Iterator<Item = &'h Histogram<u64>>,
    qs: &[f64],
) -> fmt::Result {
    for (p, h) in peers.iter().zip(hists) {
        if h.is_empty() {
            continue;
        }
        for &q in qs {
            let v = seconds(h.value_at_quantile(q));
            gauge(me, &[("target", p), ("quantile", &q.to_string())], v)?;
        }
    }
    Ok(())
}

/// `serve`'s counters.
fn encode_server(enc: &mut DescriptorEncoder, c: &ServerCounters) -> fmt::Result {
    let plain: [(&str, &str, u64); 8] = [
        ("server_accepted", "TCP connections accepted", c.accepted),
        (
            "server_closed",
            "TCP connections closed (by either side)",
            c.closed,
        ),
        (
            "server_rejected",
            "Connections closed at once because of --max-connections",
            c.rejected,
        ),
        (
            "server_idle_closed",
            "Connections closed by --idle-timeout",
            c.idle_closed,
        ),
        (
            "server_tcp_reads",
            "TCP reads that returned data",
            c.tcp_reads,
        ),
        (
            "server_udp_datagrams",
            "UDP datagrams echoed",
            c.udp_datagrams,
        ),
        (
            "server_denied",
            "Connections and datagrams from peers --allow does not admit",
            c.denied,
        ),
        (
            "server_resets",
            "Connections reset by the peer (not an error)",
            c.resets,
        ),
    ];
    for (name, help, v) in plain {
        let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        me.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    let mut me = enc.encode_descriptor(
        "server_open",
        "TCP connections open",
        None,
        MetricType::Gauge,
    )?;
    me.encode_gauge(&c.open())?;
    let mut me = enc.encode_descriptor(
        "server_echoed",
        "Bytes echoed, by protocol",
        Some(&Unit::Bytes),
        MetricType::Counter,
    )?;
    counter(&mut me, &[("proto", "tcp")], c.tcp_bytes)?;
    counter(&mut me, &[("proto", "udp")], c.udp_bytes)?;
    let mut me =
        enc.encode_descriptor("server_errors", "Errors by kind", None, MetricType::Counter)?;
    counter(&mut me, &[("kind", "accept_fd_limit")], c.accept_fd_limit)?;
    counter(&mut me, &[("kind", "accept_other")], c.accept_errors)?;
    counter(&mut me, &[("kind", "io")], c.io_errors)?;
    Ok(())
}

/// The `/metrics` HTTP server (`tiny_http`) on its own thread, `connperf-metrics`. Stops and
/// joins on drop.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// The address bound (port 0 resolved).
    pub addr: SocketAddr,
}

impl MetricsServer {
    /// Bind `addr` and serve `live` at `/metrics`, before any load starts. The address parsed,
    /// so a bind failure (in use, not an address of this host) is a failure to run (exit 1)
    /// naming the flag and the address, as `serve -l` on a port in use is.
    pub fn start(addr: SocketAddr, live: Arc<Live>) -> Result<MetricsServer> {
        let cannot = |source| Error::Io {
            what: format!("cannot serve --metrics-addr {addr}"),
            source,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(cannot)?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| cannot(std::io::Error::other(e)))?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let srv = server.clone();
        let handle = std::thread::Builder::new()
            .name("connperf-metrics".into())
            .spawn(move || serve(&srv, &live))
            .map_err(Error::Spawn)?;
        Ok(MetricsServer {
            server,
            handle: Some(handle),
            addr: bound,
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Answer requests until `unblock`: `GET /metrics` (a query string is ignored) is the page,
/// other paths 404, other methods 405. A client that went away is no error of ours.
fn serve(server: &tiny_http::Server, live: &Arc<Live>) {
    let header = |k: &str, v: &str| {
        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header")
    };
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let resp = if path != "/metrics" {
            tiny_http::Response::from_string("not found: the metrics are at /metrics\n")
                .with_status_code(404)
        } else if !matches!(
            req.method(),
            tiny_http::Method::Get | tiny_http::Method::Head
        ) {
            tiny_http::Response::from_string("method not allowed\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET, HEAD"))
        } else {
            tiny_http::Response::from_string(live.encode())
                .with_header(header("Content-Type", CONTENT_TYPE))
        };
        let _ = req.respond(resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(latencies_us: &[u64], errors: u64) -> Stats {
        let mut s = Stats::new();
        for &l in latencies_us {
            s.record(l * 1000, l * 1000, 64);
            s.record_start(2000);
        }
        for _ in 0..errors {
            s.error(Failure::Timeout);
        }
        s
    }

    #[test]
    fn windows_fold_into_counters_and_the_last_window() {
        let live = Arc::new(Live::new(vec![("host".into(), "a".into())]));
        let peers = vec!["127.0.0.1:1".to_string()];
        let text = live.encode();
        assert!(
            text.contains("connperf_windows_total{host=\"a\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("latency"),
            "no latency before a window: {text}"
        );
        live.fold_window(
            &peers,
            0,
            Duration::from_secs(1),
            Duration::from_millis(5),
            &[stats(&[100, 200], 1)],
        );
        live.fold_window(
            &peers,
            1,
            Duration::from_millis(500),
            Duration::from_millis(5),
            &[stats(&[300], 0)],
        );
        let text = live.encode();
        for want in [
            "connperf_windows_total{host=\"a\"} 2",
            "connperf_requests_total{host=\"a\",target=\"127.0.0.1:1\",outcome=\"completed\"} 3",
            "connperf_requests_total{host=\"a\",target=\"127.0.0.1:1\",outcome=\"failed\"} 1",
            "connperf_request_errors_total{host=\"a\",target=\"127.0.0.1:1\",kind=\"timeout\"} 1",
            "connperf_payload_bytes_total{host=\"a\",target=\"127.0.0.1:1\"} 192",
            "connperf_rate_per_second{host=\"a\",target=\"127.0.0.1:1\"} 2.0",
            "connperf_latency_seconds_count{host=\"a\",target=\"127.0.0.1:1\"} 1",
            "connperf_latency_seconds_bucket{host=\"a\",le=\"0.00025\",target=\"127.0.0.1:1\"} 0",
            "connperf_latency_seconds_bucket{host=\"a\",le=\"0.0005\",target=\"127.0.0.1:1\"} 1",
            "connperf_generator_cpu_seconds_total{host=\"a\"} 0.01",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
        let snap = live.snapshot();
        assert_eq!(
            (snap.windows, snap.counts.completed, snap.counts.failed()),
            (2, 3, 1)
        );
        assert_eq!(snap.rate_per_sec, Some(2.0));
    }

    #[test]
    fn a_window_with_nothing_completed_has_no_latency_quantiles() {
        let live = Arc::new(Live::new(Vec::new()));
        live.fold_window(
            &["t".into()],
            0,
            Duration::from_secs(1),
            Duration::ZERO,
            &[stats(&[], 3)],
        );
        let text = live.encode();
        assert!(
            !text.contains("connperf_latency_quantile_seconds{"),
            "{text}"
        );
        assert!(!text.contains("connperf_send_lag_seconds{"), "{text}");
        assert!(
            text.contains("connperf_latency_seconds_count{target=\"t\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn server_counters_are_served() {
        let live = Arc::new(Live::new(Vec::new()));
        let c = ServerCounters {
            accepted: 5,
            closed: 2,
            tcp_bytes: 640,
            ..Default::default()
        };
        live.fold_server(0, &c);
        let text = live.encode();
        for want in [
            "connperf_server_accepted_total 5",
            "connperf_server_open 3",
            "connperf_server_echoed_bytes_total{proto=\"tcp\"} 640",
            "connperf_windows_total 1",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
    }

    #[test]
    fn phase_and_sweep_step_are_served() {
        let live = Arc::new(Live::new(Vec::new()));
        let now = Instant::now();
        live.set_phase(Phase::Run {
            measure: now + Duration::from_secs(60),
            end: now + Duration::from_secs(120),
        });
        assert!(live.encode().contains("connperf_phase{phase=\"warmup\"} 1"));
        assert!(!live.encode().contains("connperf_sweep_step"));
        live.set_step(Some(Step {
            index: 2,
            of: 5,
            rate_per_sec: 1000.0,
        }));
        live.set_phase(Phase::Ramp { since: now });
        let text = live.encode();
        for want in [
            "connperf_sweep_step 2.0\n",
            "connperf_sweep_steps 5.0\n",
            "connperf_sweep_offered_rate_per_second 1000.0\n",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
        assert!(text.contains("connperf_phase{phase=\"ramp\"} 1"), "{text}");
        assert_eq!(live.snapshot().step.map(|s| s.index), Some(2));
    }

    #[test]
    fn a_new_sweep_step_keeps_the_last_window_on_the_page_but_not_its_rate() {
        let live = Arc::new(Live::new(Vec::new()));
        let step = |index| {
            Some(Step {
                index,
                of: 3,
                rate_per_sec: 1000.0 * index as f64,
            })
        };
        live.set_step(step(1));
        live.fold_window(
            &["t".into()],
            0,
            Duration::from_secs(1),
            Duration::ZERO,
            &[stats(&[100, 200], 0)],
        );
        assert_eq!(live.snapshot().rate_per_sec, Some(2.0));
        live.set_step(step(2));
        let text = live.encode();
        for want in [
            "connperf_rate_per_second{target=\"t\"} 2.0",
            "connperf_latency_seconds_count{target=\"t\"} 2",
            "connperf_latency_quantile_seconds{target=\"t\",quantile=\"0.5\"}",
            "connperf_sweep_step 2.0\n",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
        assert_eq!(
            live.snapshot().rate_per_sec,
            None,
            "the progress line's rate is the new step's"
        );
        live.fold_window(
            &["t".into()],
            1,
            Duration::from_secs(1),
            Duration::ZERO,
            &[stats(&[100, 200, 300], 0)],
        );
        assert_eq!(live.snapshot().rate_per_sec, Some(3.0));
    }

    #[test]
    fn label_names_must_suit_prometheus() {
        let l = |k: &str| vec![(k.to_string(), "v".to_string())];
        assert!(check_label_names(&l("host")).is_ok());
        assert!(check_label_names(&l("_x1")).is_ok());
        for bad in ["a-b", "a.b", "1a", "target", "__x"] {
            assert!(check_label_names(&l(bad)).is_err(), "{bad}");
        }
    }

    /// The whole page, byte for byte: two targets over two windows, with a ramp, errors of
    /// both kinds, connects, late starts, send lag, a sweep step and a `--label`.
    #[test]
    fn the_page_is_pinned() {
        let live = Arc::new(Live::new(vec![("host".into(), "a".into())]));
        let peers = vec!["a:1".to_string(), "b:2".to_string()];
        live.set_step(Some(Step {
            index: 2,
            of: 3,
            rate_per_sec: 500.0,
        }));
        let mut refused = Stats::new();
        refused.conn_error(Failure::Refused);
        let mut up = Stats::new();
        up.record_connect(40_000);
        up.record_connect(90_000);
        live.set_ramp(&crate::report::Ramp {
            took: Duration::from_millis(4),
            stats: vec![up, refused],
        });
        let mut b = stats(&[50, 7000], 2);
        b.conn_error(Failure::Reset);
        b.record_connect(120_000);
        b.record_start(3_000_000);
        b.lost = 4;
        b.not_started = 5;
        live.fold_window(
            &peers,
            0,
            Duration::from_secs(1),
            Duration::from_millis(5),
            &[stats(&[100, 200], 1), b],
        );
        live.fold_window(
            &peers,
            1,
            Duration::from_millis(500),
            Duration::from_millis(7),
            &[stats(&[300, 40_000_000], 0), stats(&[], 3)],
        );
        let text = live.encode();
        assert_eq!(text, GOLDEN_PAGE);
    }

    const GOLDEN_PAGE: &str = r##"# HELP connperf_phase What the run is doing now (1 for the current phase)
# TYPE connperf_phase gauge
connperf_phase{host="a",phase="setup"} 1.0
# HELP connperf_sweep_step The --sweep step under way, 1-based
# TYPE connperf_sweep_step gauge
connperf_sweep_step{host="a"} 2.0
# HELP connperf_sweep_steps Steps the --sweep has
# TYPE connperf_sweep_steps gauge
connperf_sweep_steps{host="a"} 3.0
# HELP connperf_sweep_offered_rate_per_second Requests per second the --sweep step under way offers, all targets
# TYPE connperf_sweep_offered_rate_per_second gauge
connperf_sweep_offered_rate_per_second{host="a"} 500.0
# HELP connperf_windows Reporting windows folded into these metrics: the counters are the sum of the printed interval rows 0 to windows-1
# TYPE connperf_windows counter
connperf_windows_total{host="a"} 2
# HELP connperf_reports Final reports printed (1 once the run is over; a sweep prints one per step)
# TYPE connperf_reports counter
connperf_reports_total{host="a"} 0
# HELP connperf_requests Scheduled requests by outcome: completed (correct echo), failed (see connperf_request_errors_total), lost (UDP, no reply in --timeout), not_started (the generator's own doing)
# TYPE connperf_requests counter
connperf_requests_total{host="a",target="a:1",outcome="completed"} 4
connperf_requests_total{host="a",target="a:1",outcome="failed"} 1
connperf_requests_total{host="a",target="a:1",outcome="lost"} 0
connperf_requests_total{host="a",target="a:1",outcome="not_started"} 0
connperf_requests_total{host="a",target="b:2",outcome="completed"} 2
connperf_requests_total{host="a",target="b:2",outcome="failed"} 5
connperf_requests_total{host="a",target="b:2",outcome="lost"} 4
connperf_requests_total{host="a",target="b:2",outcome="not_started"} 5
# HELP connperf_request_errors Failed requests by kind
# TYPE connperf_request_errors counter
connperf_request_errors_total{host="a",target="a:1",kind="refused"} 0
connperf_request_errors_total{host="a",target="a:1",kind="reset"} 0
connperf_request_errors_total{host="a",target="a:1",kind="timeout"} 1
connperf_request_errors_total{host="a",target="a:1",kind="closed_early"} 0
connperf_request_errors_total{host="a",target="a:1",kind="mismatch"} 0
connperf_request_errors_total{host="a",target="a:1",kind="unreachable"} 0
connperf_request_errors_total{host="a",target="a:1",kind="addr_not_avail"} 0
connperf_request_errors_total{host="a",target="a:1",kind="fd_limit"} 0
connperf_request_errors_total{host="a",target="a:1",kind="other"} 0
connperf_request_errors_total{host="a",target="b:2",kind="refused"} 0
connperf_request_errors_total{host="a",target="b:2",kind="reset"} 0
connperf_request_errors_total{host="a",target="b:2",kind="timeout"} 5
connperf_request_errors_total{host="a",target="b:2",kind="closed_early"} 0
connperf_request_errors_total{host="a",target="b:2",kind="mismatch"} 0
connperf_request_errors_total{host="a",target="b:2",kind="unreachable"} 0
connperf_request_errors_total{host="a",target="b:2",kind="addr_not_avail"} 0
connperf_request_errors_total{host="a",target="b:2",kind="fd_limit"} 0
connperf_request_errors_total{host="a",target="b:2",kind="other"} 0
# HELP connperf_payload_bytes Payload bytes sent and echoed back by completed requests
# TYPE connperf_payload_bytes counter
# UNIT connperf_payload_bytes bytes
connperf_payload_bytes_total{host="a",target="a:1"} 256
connperf_payload_bytes_total{host="a",target="b:2"} 128
# HELP connperf_connects Connections established in the measured windows (ephemeral: one per request; persistent: redials; the ramp's are not counted)
# TYPE connperf_connects counter
connperf_connects_total{host="a",target="a:1"} 0
connperf_connects_total{host="a",target="b:2"} 1
# HELP connperf_connection_errors Connections that failed with no request in flight, by kind
# TYPE connperf_connection_errors counter
connperf_connection_errors_total{host="a",target="a:1",kind="refused"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="reset"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="timeout"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="closed_early"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="mismatch"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="unreachable"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="addr_not_avail"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="fd_limit"} 0
connperf_connection_errors_total{host="a",target="a:1",kind="other"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="refused"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="reset"} 1
connperf_connection_errors_total{host="a",target="b:2",kind="timeout"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="closed_early"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="mismatch"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="unreachable"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="addr_not_avail"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="fd_limit"} 0
connperf_connection_errors_total{host="a",target="b:2",kind="other"} 0
# HELP connperf_ramp_seconds How long bringing up the connections took before the schedule started
# TYPE connperf_ramp_seconds gauge
# UNIT connperf_ramp_seconds seconds
connperf_ramp_seconds{host="a"} 0.004
# HELP connperf_ramp_connections Connections up in the ramp
# TYPE connperf_ramp_connections gauge
connperf_ramp_connections{host="a",target="a:1"} 2.0
connperf_ramp_connections{host="a",target="b:2"} 0.0
# HELP connperf_ramp_connection_errors Connections that failed in the ramp, by kind
# TYPE connperf_ramp_connection_errors gauge
connperf_ramp_connection_errors{host="a",target="a:1",kind="refused"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="reset"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="timeout"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="closed_early"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="mismatch"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="unreachable"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="addr_not_avail"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="fd_limit"} 0.0
connperf_ramp_connection_errors{host="a",target="a:1",kind="other"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="refused"} 1.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="reset"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="timeout"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="closed_early"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="mismatch"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="unreachable"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="addr_not_avail"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="fd_limit"} 0.0
connperf_ramp_connection_errors{host="a",target="b:2",kind="other"} 0.0
# HELP connperf_late_starts Sends more than 1 ms behind their intended time
# TYPE connperf_late_starts counter
connperf_late_starts_total{host="a",target="a:1"} 0
connperf_late_starts_total{host="a",target="b:2"} 1
# HELP connperf_generator_cpu_seconds CPU time the generator's workers used
# TYPE connperf_generator_cpu_seconds counter
# UNIT connperf_generator_cpu_seconds seconds
connperf_generator_cpu_seconds_total{host="a"} 0.012
# HELP connperf_window_seconds Length of the last reporting window
# TYPE connperf_window_seconds gauge
# UNIT connperf_window_seconds seconds
connperf_window_seconds{host="a"} 0.5
# HELP connperf_rate_per_second Requests completed per second in the last window
# TYPE connperf_rate_per_second gauge
connperf_rate_per_second{host="a",target="a:1"} 4.0
connperf_rate_per_second{host="a",target="b:2"} 0.0
# HELP connperf_latency_seconds Latency from each request's intended send time to its echo, last window (coordinated omission corrected)
# TYPE connperf_latency_seconds histogram
# UNIT connperf_latency_seconds seconds
connperf_latency_seconds_sum{host="a",target="a:1"} 40.013960064
connperf_latency_seconds_count{host="a",target="a:1"} 2
connperf_latency_seconds_bucket{host="a",le="0.00001",target="a:1"} 0
connperf_latency_seconds_bucket{host="a",le="0.000025",target="a:1"} 0
connperf_latency_seconds_bucket{host="a",le="0.00005",target="a:1"} 0
connperf_latency_seconds_bucket{host="a",le="0.0001",target="a:1"} 0
connperf_latency_seconds_bucket{host="a",le="0.00025",target="a:1"} 0
connperf_latency_seconds_bucket{host="a",le="0.0005",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.001",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.0025",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.005",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.01",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.025",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.05",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.1",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.25",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="0.5",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="1.0",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="2.5",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="5.0",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="10.0",target="a:1"} 1
connperf_latency_seconds_bucket{host="a",le="+Inf",target="a:1"} 2
connperf_latency_seconds_sum{host="a",target="b:2"} 0.0
connperf_latency_seconds_count{host="a",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.00001",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.000025",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.00005",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.0001",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.00025",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.0005",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.001",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.0025",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.005",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.01",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.025",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.05",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.1",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.25",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="0.5",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="1.0",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="2.5",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="5.0",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="10.0",target="b:2"} 0
connperf_latency_seconds_bucket{host="a",le="+Inf",target="b:2"} 0
# HELP connperf_latency_quantile_seconds Latency quantiles of the last window (1 is the max); absent when nothing completed
# TYPE connperf_latency_quantile_seconds gauge
# UNIT connperf_latency_quantile_seconds seconds
connperf_latency_quantile_seconds{host="a",target="a:1",quantile="0.5"} 0.000300031
connperf_latency_quantile_seconds{host="a",target="a:1",quantile="0.9"} 40.030437375
connperf_latency_quantile_seconds{host="a",target="a:1",quantile="0.99"} 40.030437375
connperf_latency_quantile_seconds{host="a",target="a:1",quantile="0.999"} 40.030437375
connperf_latency_quantile_seconds{host="a",target="a:1",quantile="1"} 40.030437375
# HELP connperf_send_lag_seconds Actual minus intended send time of the last window's sends, quantiles (1 is the max): the generator's own error bar; absent with no paced send
# TYPE connperf_send_lag_seconds gauge
# UNIT connperf_send_lag_seconds seconds
connperf_send_lag_seconds{host="a",target="a:1",quantile="0.5"} 0.000002
connperf_send_lag_seconds{host="a",target="a:1",quantile="0.99"} 0.000002
connperf_send_lag_seconds{host="a",target="a:1",quantile="1"} 0.000002
# EOF
"##;
}
