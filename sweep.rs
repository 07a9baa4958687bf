//! `connect --sweep FROM:TO:STEP`: a capacity sweep. One normal run per step (`driver::Run`:
//! start, ramp, `--warmup`, a measured `--sweep-step`, drain), each at a higher total rate, a
//! row per step per printed row (per target, or merged), stopping after the first step that
//! fails a check (`--slo`, `--max-error-rate`, something completed) or achieves under
//! `MIN_ACHIEVED` of its offered rate; then the knee: the highest step that met them.
//!
//! Rates are total req/s over all targets; each step's `--rate` divides them per connection
//! (persistent) or per target (ephemeral, UDP), as `-r` is read (`per_stream_rate`). A row's
//! `offered_rate` is what its target was offered (all of it in a merged row).
//!
//! A step that falls short because of the generator is not charged to the target: the sweep
//! stops saying that the generator could not send, and the knee is only what the steps before
//! it showed. `generator_limit` decides, per row, from what the workers booked:
//! - `not_started` (slots never sent: `--max-inflight` full, or no free slot on the
//!   connections / no worker time by the end) at least 1 % of the offered requests;
//! - `late_starts` (timer sends over 1 ms behind) at least 5 % of the sends in `send_lag`;
//! - a latency bound of `--slo` that the latency less the send lag at the same percentile
//!   would meet (the generator's lateness alone broke it).
//!
//! The send lag holds only sends made on the generator's own timer, so a request queued behind
//! a slow reply is not excused. A row failing 1 % or more of its requests (errors, lost) is the
//! target's failure whatever the generator did. Worker CPU is printed but decides nothing: the
//! adaptive spin keeps a busy worker near 100 % of a core without it being short of time.
//!
//! Leaves to others: flags and exit codes (`cli`), the run itself (`driver`), the JSON row
//! schema and the checks (`report`, `verdict`).

use crate::affinity::Plan;
use crate::driver::{ConnectConfig, Mode, Run};
use crate::metrics::{Live, Phase};
use crate::reactor::{LoopOptions, Shutdown};
use crate::report::{ReportConfig, Stats, Summary, Unsent, LATE_START_NS};
use crate::verdict::Bound;
use crate::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most steps a sweep may have: at the default 5 s a step, 200 steps are over 16 minutes.
pub const MAX_STEPS: usize = 200;
/// Highest rate a sweep may reach, req/s: `-r`'s own bound.
const MAX_SWEEP_RATE: f64 = 100_000_000.0;
/// A step passes only if every row achieved at least this share of the rate offered to it.
pub const MIN_ACHIEVED: f64 = 0.95;
/// The generator, not the target, is short when its never-started slots are at least this
/// share of a row's offered requests: a few slots unsent at the stop are not a limit.
const NOT_STARTED_SHARE: f64 = 0.01;
/// ... or when at least this share of its sends went out more than `LATE_START_NS` late.
const LATE_SEND_SHARE: f64 = 0.05;

/// `--sweep` and `--sweep-step`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Total offered rate of each step, req/s over all targets, increasing.
    pub rates: Vec<f64>,
    /// Measured time of each step.
    pub step: Duration,
    /// `--slo` as given, for the knee line.
    pub slo: Option<String>,
}

/// `1000`, `2.5k`, `1M` → req/s.
fn parse_rate_si(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1e3),
        Some(b'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{t:?} is not a rate (1000, 2.5k, 1M)"))?;
    let r = n * scale;
    if !r.is_finite() || r <= 0.0 {
        return Err(format!("{t:?} must be above 0"));
    }
    if r > MAX_SWEEP_RATE {
        return Err(format!("{t:?} is above 100M/s"));
    }
    Ok(r)
}

/// `FROM:TO:STEP` (total req/s, `k`/`M` suffixes) → the rate of each step: FROM, FROM+STEP, ...
/// up to TO (a last step that would pass TO is not run).
pub fn parse_sweep(s: &str) -> std::result::Result<Vec<f64>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [from, to, step] = parts[..] else {
        return Err("use FROM:TO:STEP in req/s, e.g. 1k:10k:1k".into());
    };
    let (from, to, step) = (
        parse_rate_si(from)?,
        parse_rate_si(to)?,
        parse_rate_si(step)?,
    );
    if to < from {
        return Err(format!("TO ({to}) is below FROM ({from})"));
    }
    // The relative slack keeps 0.1:0.3:0.1 at three steps despite binary fractions.
    let n = ((to - from) / step * (1.0 + 1e-9)).floor() + 1.0;
    if n > MAX_STEPS as f64 {
        return Err(format!(
            "{n} steps, more than {MAX_STEPS}: raise STEP or narrow FROM:TO"
        ));
    }
    Ok((0..n as usize).map(|k| from + k as f64 * step).collect())
}

/// The `--rate` of `cfg` that offers `total` req/s over all its targets: per connection for
/// persistent TCP, per target otherwise (see `ConnectConfig::rate`).
pub fn per_stream_rate(total: f64, cfg: &ConnectConfig) -> f64 {
    let targets = cfg.targets.len().max(1) as f64;
    match cfg.mode {
        Mode::Persistent { connections, .. } => total / (targets * connections as f64),
        Mode::Ephemeral { .. } | Mode::Udp { .. } | Mode::UdpEphemeral { .. } => total / targets,
    }
}

/// How a sweep's signal handler reaches the step that is running: the first signal stops the
/// sweep and the current step (its drain still runs), a second hurries both.
#[derive(Clone, Default)]
pub struct Stop {
    sweep: Shutdown,
    step: Arc<Mutex<Shutdown>>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A signal came; `hurry` for the second one.
    pub fn signal(&self, hurry: bool) {
        // The sweep's flag first: `next_step` checks it after installing a new step.
        let step = self.step.lock().unwrap_or_else(|e| e.into_inner());
        if hurry {
            self.sweep.hurry();
            step.hurry();
        } else {
            self.sweep.trigger();
            step.trigger();
        }
    }

    /// The shutdown of the whole sweep (for `--start-at`'s wait).
    pub fn sweep(&self) -> &Shutdown {
        &self.sweep
    }

    /// A fresh shutdown for the next step, already triggered if the sweep was stopped.
    fn next_step(&self) -> Shutdown {
        let s = Shutdown::new();
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = s.clone();
        if self.sweep.is_hurried() {
            s.hurry();
        } else if self.sweep.is_triggered() {
            s.trigger();
        }
        s
    }
}

/// Why a step does not count as meeting the checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// A check failed (`--slo`, `--max-error-rate`, nothing completed): the reasons.
    Slo(String),
    /// The target answered under `MIN_ACHIEVED` of the offered rate: what was missing.
    Rate(String),
    /// The generator could not send the step's rate: how that showed.
    Generator(String),
    /// A signal cut the step short.
    Signal,
}

impl Stopped {
    /// Its name in the knee row's `stopped`.
    fn key(&self) -> &'static str {
        match self {
            Stopped::Slo(_) => "slo",
            Stopped::Rate(_) => "rate",
            Stopped::Generator(_) => "generator",
            Stopped::Signal => "signal",
        }
    }

    /// Why step `index`, offered `rate` req/s in total, stopped the sweep, in words.
    fn sweep_reason(&self, index: usize, rate: f64) -> String {
        let at = format!("step {index} ({} req/s)", rate_text(rate));
        match self {
            Stopped::Slo(r) => format!("{at} failed: {r}"),
            Stopped::Rate(r) => format!("{at} fell short of its rate: {r}"),
            Stopped::Generator(r) => format!(
                "the generator could not send {} req/s on schedule ({r}); capacity of the target not reached",
                rate_text(rate)
            ),
            Stopped::Signal => format!("{at} was cut short by a signal and does not count"),
        }
    }
}

/// One printed row of a step: its name, totals and failed checks.
pub struct StepRow {
    pub name: String,
    pub stats: Stats,
    pub reasons: Vec<String>,
}

/// How far the generator fell short of a row's schedule, if it did (its own limit, not the
/// target's): slots it never started (`not_started`, by cause) at least `NOT_STARTED_SHARE`
/// of those offered, or sends more than `LATE_START_NS` behind their intended time
/// (`late_starts`) at least `LATE_SEND_SHARE` of its sends (`send_lag` counts every paced
/// send). Worker CPU is named in the message but decides nothing: the adaptive spin keeps a
/// busy worker near 100 % of its core without it being short of time. Also a latency bound of
/// `slo` broken only by the generator's send lag (`lag_breaks`).
pub fn generator_limit(
    s: &Stats,
    offered: f64,
    elapsed: Duration,
    slo: &[Bound],
) -> Option<String> {
    let expected = offered * elapsed.as_secs_f64();
    let sends = s.send_lag.len();
    let mut why = Vec::new();
    if s.not_started > 0 && s.not_started as f64 >= NOT_STARTED_SHARE * expected {
        let causes: Vec<String> = Unsent::ALL
            .iter()
            .filter(|c| s.not_started_by[**c as usize] > 0)
            .map(|c| {
                let hint = match c {
                    Unsent::InFlightLimit => "--max-inflight full",
                    Unsent::RunEnded => "no free connection slot (-c x --depth) or worker time",
                };
                format!("{}={} ({hint})", c.name(), s.not_started_by[*c as usize])
            })
            .collect();
        why.push(format!(
            "{} of {:.0} requests never started: {}",
            s.not_started,
            expected,
            causes.join(", ")
        ));
    }
    if sends > 0 && s.late_starts as f64 >= LATE_SEND_SHARE * sends as f64 {
        why.push(format!(
            "{:.0} % of sends over {} ms late, send lag p99 {} µs",
            100.0 * s.late_starts as f64 / sends as f64,
            LATE_START_NS / 1_000_000,
            s.send_lag.value_at_quantile(0.99) / 1000
        ));
    }
    why.extend(lag_breaks(s, slo));
    (!why.is_empty()).then(|| why.join("; "))
}

/// The latency bounds of `slo` that `s` breaks only by the generator's own lateness: less
/// the send lag at the same percentile (max, mean) the intended-time latency would meet the
/// bound. Percentiles do not subtract exactly; the error falls on the side of not charging the
/// target. The send lag holds only sends made on the generator's timer (a request queued
/// behind a reply on its connection is not in it), so a slow target's queueing is not excused.
fn lag_breaks(s: &Stats, slo: &[Bound]) -> Vec<String> {
    if s.completed == 0 || s.send_lag.is_empty() {
        return Vec::new();
    }
    let (h, lag) = (&s.latency, &s.send_lag);
    slo.iter()
        .filter_map(|b| {
            let (name, latency_ns, lag_ns, limit) = match *b {
                Bound::Percentile(p, limit) => (
                    format!("p{p}"),
                    h.value_at_quantile(p / 100.0),
                    lag.value_at_quantile(p / 100.0),
                    limit,
                ),
                Bound::Max(limit) => ("max".to_string(), h.max(), lag.max(), limit),
                Bound::Mean(limit) => (
                    "mean".to_string(),
                    h.mean() as u64,
                    lag.mean() as u64,
                    limit,
                ),
                Bound::Errors(_) => return None,
            };
            let limit_ns = limit.as_nanos() as u64;
            (latency_ns > limit_ns && latency_ns.saturating_sub(lag_ns) <= limit_ns).then(|| {
                format!(
                    "send lag {name} {} µs puts latency {name} {} µs over the slo's {} µs",
                    lag_ns / 1000,
                    latency_ns / 1000,
                    limit_ns / 1000
                )
            })
        })
        .collect()
}

/// At least this share of a row's answered-or-failed requests failed or were lost: the target
/// is failing whatever the generator did, so its failed checks are its own.
const TARGET_FAILING_SHARE: f64 = 0.01;

fn target_failing(s: &Stats) -> bool {
    let failed = s.error_count() + s.lost;
    let total = s.completed + failed;
    failed > 0 && failed as f64 >= TARGET_FAILING_SHARE * total as f64
}

/// A row's rate shortfall: under `MIN_ACHIEVED` of `offered`, with what the missing requests
/// became.
fn shortfall(r: &StepRow, offered: f64, elapsed: Duration) -> Option<String> {
    let s = &r.stats;
    let achieved = achieved(s, elapsed);
    (achieved < MIN_ACHIEVED * offered).then(|| {
        format!(
            "achieved {achieved:.1}/s of {offered:.1}/s offered (under {:.0} %; errors {}, lost {}, not started {})",
            MIN_ACHIEVED * 100.0,
            s.error_count(),
            s.lost,
            s.not_started
        )
    })
}

/// Whether a finished step met the checks, and if not why. The generator's shortfall wins over
/// a failed check or a low rate (what it caused, late sends inflating latency and unsent slots
/// lowering the rate, must not be charged to the target), unless the target was failing
/// requests too (`target_failing`): errors and losses are not the generator's doing.
pub fn judge_step(
    rows: &[StepRow],
    offered_per_row: f64,
    elapsed: Duration,
    slo: &[Bound],
) -> Option<Stopped> {
    let named = |f: &dyn Fn(&StepRow) -> Option<String>| -> Vec<String> {
        rows.iter()
            .filter_map(|r| f(r).map(|w| format!("{}: {w}", r.name)))
            .collect()
    };
    let generator = named(&|r| generator_limit(&r.stats, offered_per_row, elapsed, slo));
    let short = named(&|r| shortfall(r, offered_per_row, elapsed));
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|r| r.reasons.iter().map(move |x| format!("{}: {x}", r.name)))
        .collect();
    if failed.is_empty() && short.is_empty() {
        return None;
    }
    if !generator.is_empty() && !rows.iter().any(|r| target_failing(&r.stats)) {
        return Some(Stopped::Generator(generator.join("; ")));
    }
    if !failed.is_empty() {
        return Some(Stopped::Slo(failed.join("; ")));
    }
    Some(Stopped::Rate(short.join("; ")))
}

/// Completed requests per second of the measured time; 0 when nothing was measured.
fn achieved(s: &Stats, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        s.completed as f64 / secs
    } else {
        0.0
    }
}

/// What one step measured.
struct Step {
    /// Total offered rate, req/s.
    rate: f64,
    /// The rate offered to each printed row: all of `rate` in a merged row, else a target's
    /// share.
    offered_per_row: f64,
    rows: Vec<StepRow>,
    summary: Summary,
    /// `None`: the step met the checks.
    stopped: Option<Stopped>,
}

/// Run the sweep to its end, a failed step or a signal, printing to `out` as it goes. Exit
/// status: Ok if some step met the checks (a knee was found), else `Error::Failed` naming why.
pub fn run<W: Write>(
    base: &ConnectConfig,
    report: &ReportConfig,
    plan: &Plan,
    loop_opts: LoopOptions,
    sweep: &Sweep,
    stop: &Stop,
    out: W,
) -> Result<()> {
    let mut out = Printer {
        w: out,
        broken: false,
    };
    if !report.jsonlines {
        print_banner(&mut out, base, report, sweep);
    }
    let runner = StepRunner {
        base,
        report,
        step_report: step_report(report),
        plan,
        loop_opts,
        sweep,
        stop,
    };
    let steps = runner.run_steps(&mut out)?;
    let live = report.live.as_deref();
    if let Some(l) = live {
        l.set_step(None);
        l.set_phase(Phase::Done);
    }
    let _screen = live.map(|l| l.hold_screen());
    finish(&mut out, report, sweep, &steps)
}

/// The table's first lines: what each step runs, then the column header.
fn print_banner<W: Write>(
    out: &mut Printer<W>,
    base: &ConnectConfig,
    report: &ReportConfig,
    sweep: &Sweep,
) {
    out.line(&format!(
        "# sweep: {} to {} req/s in {} steps of {:.3} s (after each ramp and {:.3} s of --warmup, not measured); OFFERED/ACHIEVED per row; CPU: generator CPU, % of one core",
        rate_text(sweep.rates[0]),
        rate_text(*sweep.rates.last().expect("a sweep has a step")),
        sweep.rates.len(),
        sweep.step.as_secs_f64(),
        base.warmup.as_secs_f64()
    ));
    out.line(&table_header(report));
    out.flush();
}

/// The report of each step's own run: totals only, never printed (its output is discarded;
/// the sweep prints its rows from the summary).
fn step_report(report: &ReportConfig) -> ReportConfig {
    ReportConfig {
        show_only_results: true,
        jsonlines: false,
        latency_distribution: false,
        ..report.clone()
    }
}

/// What every step of a sweep runs with.
struct StepRunner<'a> {
    base: &'a ConnectConfig,
    report: &'a ReportConfig,
    /// `step_report(report)`.
    step_report: ReportConfig,
    plan: &'a Plan,
    loop_opts: LoopOptions,
    sweep: &'a Sweep,
    stop: &'a Stop,
}

impl StepRunner<'_> {
    /// Run the steps in turn, printing each, until one does not meet the checks, the last is
    /// done or a signal stopped the sweep: the steps run.
    fn run_steps<W: Write>(&self, out: &mut Printer<W>) -> Result<Vec<Step>> {
        let live = self.report.live.as_deref();
        let mut steps: Vec<Step> = Vec::new();
        for (i, &rate) in self.sweep.rates.iter().enumerate() {
            if self.stop.sweep.is_triggered() {
                break;
            }
            let step = self.run_step(i, rate)?;
            {
                let _screen = live.map(|l| l.hold_screen());
                print_step(out, self.report, i as u64, &step);
            }
            let done = step.stopped.is_some();
            steps.push(step);
            if done {
                break;
            }
        }
        Ok(steps)
    }

    /// Run step `i` (0-based) at `rate` total req/s and judge it.
    fn run_step(&self, i: usize, rate: f64) -> Result<Step> {
        let live = self.report.live.as_deref();
        if let Some(l) = live {
            l.set_step(Some(crate::metrics::Step {
                index: i + 1,
                of: self.sweep.rates.len(),
                rate_per_sec: rate,
            }));
            l.set_phase(Phase::Ramp {
                since: Instant::now(),
            });
        }
        let (summary, cut) = self.measure(rate, live)?;
        let offered_per_row = self.offered_per_row(rate);
        let rows = step_rows(self.report, &summary);
        let stopped = if cut {
            Some(Stopped::Signal)
        } else {
            judge_step(
                &rows,
                offered_per_row,
                summary.elapsed,
                &self.report.thresholds.slo,
            )
        };
        Ok(Step {
            rate,
            offered_per_row,
            rows,
            summary,
            stopped,
        })
    }

    /// One step's run at `rate` total req/s: start, ramp, `--warmup`, the measured
    /// `--sweep-step`, drain. Its summary, and whether a signal cut it short.
    fn measure(&self, rate: f64, live: Option<&Live>) -> Result<(Summary, bool)> {
        let shutdown = self.stop.next_step();
        let run = Run::start(
            self.step_config(rate),
            self.step_report.clone(),
            self.plan,
            &shutdown,
            self.loop_opts,
            std::io::sink(),
            None,
        )?;
        run.drive(&shutdown, live)
    }

    /// The run of a step at `rate` total req/s: `base` at that rate for `--sweep-step`.
    fn step_config(&self, rate: f64) -> ConnectConfig {
        // Windows of at most a second (none are printed) keep the progress line's rate and
        // `/metrics` current within a step; the step's totals do not depend on them.
        ConnectConfig {
            rate: per_stream_rate(rate, self.base),
            duration: self.sweep.step,
            interval: self.base.interval.min(Duration::from_secs(1)),
            ..self.base.clone()
        }
    }

    /// The rate each printed row is offered at `rate` total req/s: all of it in a merged row,
    /// else a target's share.
    fn offered_per_row(&self, rate: f64) -> f64 {
        if self.report.merge {
            rate
        } else {
            rate / self.base.targets.len().max(1) as f64
        }
    }
}

/// The printed rows of a step with their failed checks: a merged row carries every reason
/// the report gave (its own and each target's), a target's row its own.
fn step_rows(report: &ReportConfig, summary: &Summary) -> Vec<StepRow> {
    let names = crate::report::printed_row_names(report);
    names
        .into_iter()
        .zip(&summary.totals)
        .map(|(name, s)| {
            let reasons = if report.merge {
                let prefix = format!("{name}: ");
                summary
                    .failures
                    .iter()
                    .map(|f| f.strip_prefix(&prefix).unwrap_or(f).to_string())
                    .collect()
            } else {
                report.thresholds.judge(s)
            };
            StepRow {
                name,
                stats: s.clone(),
                reasons,
            }
        })
        .collect()
}

/// Writes to stdout (or anything) and goes quiet once the reader went away (`| head`).
struct Printer<W: Write> {
    w: W,
    broken: bool,
}

impl<W: Write> Printer<W> {
    fn line(&mut self, s: &str) {
        if !self.broken && writeln!(self.w, "{s}").is_err() {
            self.broken = true;
        }
    }
    fn flush(&mut self) {
        if !self.broken && self.w.flush().is_err() {
            self.broken = true;
        }
    }
}

/// `4000`, `2500.5`: a rate without needless decimals.
fn rate_text(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else if r >= 1.0 {
        format!("{r:.2}")
    } else {
        // Under 1 req/s two decimals could read 0.00: as given.
        format!("{r}")
    }
}

/// The table's column header (with a LOST column for UDP).
fn table_header(report: &ReportConfig) -> String {
    let w = peer_width(report);
    format!(
        "{:<5} {:<w$} {:<12} {:<12} {:<10} {:<10} {:<10} {:<8} {}{:<7} VERDICT",
        "STEP",
        "PEER",
        "OFFERED/s",
        "ACHIEVED/s",
        "P50(µs)",
        "P99(µs)",
        "P99.9(µs)",
        "ERRORS",
        if report.udp {
            format!("{:<8} ", "LOST")
        } else {
            String::new()
        },
        "CPU(%)"
    )
}

/// The PEER column's width: the longest printed row name, at least 20.
fn peer_width(report: &ReportConfig) -> usize {
    crate::report::printed_row_names(report)
        .iter()
        .map(|n| n.chars().count())
        .fold(20, usize::max)
}

/// The generator's CPU over the step's measured time, % of one core; `-` when there is no
/// measured time to divide by.
fn cpu_text(summary: &Summary) -> String {
    let secs = summary.elapsed.as_secs_f64();
    if secs > 0.0 {
        format!("{:.0}", 100.0 * summary.cpu.as_secs_f64() / secs)
    } else {
        "-".into()
    }
}

/// A row's verdict in a step and its reasons: its failed checks and, in a step that stopped for
/// its rate or the generator, its part in that.
fn verdict_of(step: &Step, row: &StepRow, slo: &[Bound]) -> (&'static str, Vec<String>) {
    let (offered, elapsed) = (step.offered_per_row, step.summary.elapsed);
    let mut reasons = row.reasons.clone();
    match &step.stopped {
        None => return ("pass", Vec::new()),
        Some(Stopped::Signal) => reasons = vec!["cut short by a signal".to_string()],
        Some(Stopped::Slo(_)) => {}
        Some(Stopped::Rate(_)) => reasons.extend(shortfall(row, offered, elapsed)),
        Some(Stopped::Generator(_)) => reasons.extend(
            generator_limit(&row.stats, offered, elapsed, slo)
                .map(|w| format!("generator limit: {w}")),
        ),
    }
    ("fail", reasons)
}

/// A step's rows, each with its verdict: a table line and a `# step` line per reason, or a
/// JSON step row.
fn print_step<W: Write>(out: &mut Printer<W>, report: &ReportConfig, index: u64, step: &Step) {
    let w = peer_width(report);
    for row in &step.rows {
        let (verdict, reasons) = verdict_of(step, row, &report.thresholds.slo);
        if report.jsonlines {
            out.line(&crate::report::step_json_line(
                report,
                index,
                step.offered_per_row,
                &row.name,
                &row.stats,
                &step.summary,
                &reasons,
            ));
        } else {
            out.line(&table_line(report, w, index, step, row, verdict));
            for r in &reasons {
                out.line(&format!("# step {index} {} FAIL: {r}", row.name));
            }
        }
    }
    out.flush();
}

/// A row's line in the table, under `table_header` (`w`: the PEER column's width).
fn table_line(
    report: &ReportConfig,
    w: usize,
    index: u64,
    step: &Step,
    row: &StepRow,
    verdict: &str,
) -> String {
    let s = &row.stats;
    let q = |p: f64| {
        if s.completed == 0 {
            "-".to_string()
        } else {
            (s.latency.value_at_quantile(p / 100.0) / 1000).to_string()
        }
    };
    format!(
        "{:<5} {:<w$} {:<12.2} {:<12} {:<10} {:<10} {:<10} {:<8} {}{:<7} {verdict}",
        index,
        row.name,
        step.offered_per_row,
        if step.summary.elapsed.is_zero() {
            "-".to_string()
        } else {
            format!("{:.2}", achieved(s, step.summary.elapsed))
        },
        q(50.0),
        q(99.0),
        q(99.9),
        s.error_count(),
        // UDP: datagrams never answered fail a step as errors do; without the column a
        // lossy step read "ERRORS 0".
        if report.udp {
            format!("{:<8} ", s.lost)
        } else {
            String::new()
        },
        cpu_text(&step.summary),
    )
}

/// The end of a sweep: what the checks were, the knee and why the sweep stopped.
#[derive(Serialize)]
struct KneeRow<'a> {
    kind: &'static str,
    /// Total req/s of the highest step that met the checks; `null`: none did.
    knee_rate: Option<f64>,
    /// 0-based index of that step (its rows' `step`); `null`: none met the checks. With
    /// several targets the step rows' `offered_rate` is per target while `knee_rate` is the
    /// total: a plot finds the knee's points by this index.
    knee_step: Option<usize>,
    /// `--slo` as given; `null` without one.
    slo: Option<&'a str>,
    max_error_rate: f64,
    /// Steps run (a step cut short by a signal included).
    steps: usize,
    /// `slo`, `rate`, `generator`, `end` or `signal`.
    stopped: &'static str,
    reason: String,
}

/// How a sweep ended: its knee and why it stopped.
struct Ending {
    /// 0-based index of the highest step that met the checks; `None`: none did.
    knee_step: Option<usize>,
    /// That step's total rate, req/s.
    knee: Option<f64>,
    /// `slo`, `rate`, `generator`, `end` or `signal` (`KneeRow::stopped`).
    stopped: &'static str,
    /// Why, in words.
    reason: String,
}

/// The sweep's last lines, the knee and why it stopped; Ok if it found a knee, else
/// `Error::Failed` naming why not.
fn finish<W: Write>(
    out: &mut Printer<W>,
    report: &ReportConfig,
    sweep: &Sweep,
    steps: &[Step],
) -> Result<()> {
    let end = ending(sweep, steps);
    if report.jsonlines {
        print_knee_json(out, report, sweep, steps.len(), &end);
    } else {
        print_knee_table(out, sweep, &end);
    }
    out.flush();
    match end.knee {
        Some(_) => Ok(()),
        None => Err(Error::Failed(vec![format!(
            "sweep found no knee: {}",
            end.reason
        )])),
    }
}

/// The knee of `steps` (the last step before the first that did not meet the checks) and why
/// the sweep stopped after them.
fn ending(sweep: &Sweep, steps: &[Step]) -> Ending {
    let knee_step = steps
        .iter()
        .take_while(|s| s.stopped.is_none())
        .count()
        .checked_sub(1);
    let (stopped, reason) = match steps
        .last()
        .and_then(|s| s.stopped.as_ref().map(|why| (s, why)))
    {
        None if steps.len() < sweep.rates.len() => (
            "signal",
            format!(
                "stopped by a signal after {} of {} steps",
                steps.len(),
                sweep.rates.len()
            ),
        ),
        None => (
            "end",
            format!(
                "every step met the checks, up to TO ({} req/s)",
                rate_text(sweep.rates[sweep.rates.len() - 1])
            ),
        ),
        Some((s, why)) => (why.key(), why.sweep_reason(steps.len() - 1, s.rate)),
    };
    Ending {
        knee_step,
        knee: knee_step.map(|i| steps[i].rate),
        stopped,
        reason,
    }
}

/// The knee as a JSON row (`steps`: how many ran).
fn print_knee_json<W: Write>(
    out: &mut Printer<W>,
    report: &ReportConfig,
    sweep: &Sweep,
    steps: usize,
    end: &Ending,
) {
    let row = KneeRow {
        kind: "knee",
        knee_rate: end.knee,
        knee_step: end.knee_step,
        slo: sweep.slo.as_deref(),
        max_error_rate: report.thresholds.max_error_rate,
        steps,
        stopped: end.stopped,
        reason: end.reason.clone(),
    };
    out.line(&serde_json::to_string(&row).expect("string keys and finite numbers"));
}

/// The knee and why the sweep stopped as the table's two last `#` lines.
fn print_knee_table<W: Write>(out: &mut Printer<W>, sweep: &Sweep, end: &Ending) {
    let checks = match &sweep.slo {
        Some(slo) => slo.clone(),
        None => "the checks".to_string(),
    };
    match end.knee {
        Some(k) => out.line(&format!(
            "# knee: {} req/s (highest step meeting {checks})",
            rate_text(k)
        )),
        None => out.line(&format!(
            "# knee: none (the first step, {} req/s, {})",
            rate_text(sweep.rates[0]),
            if end.stopped == "signal" {
                "did not finish".to_string()
            } else {
                format!("did not meet {checks}")
            }
        )),
    }
    out.line(&format!(
        "# sweep {}: {}",
        ended_word(end.stopped),
        end.reason
    ));
}

/// `ended` when every step met the checks, else `stopped`.
fn ended_word(stopped: &str) -> &'static str {
    if stopped == "end" {
        "ended"
    } else {
        "stopped"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Target;

    #[test]
    fn sweep_strings() {
        assert_eq!(
            parse_sweep("1k:4k:1k").unwrap(),
            vec![1000.0, 2000.0, 3000.0, 4000.0]
        );
        assert_eq!(
            parse_sweep("2.5k:1M:500k").unwrap(),
            vec![2500.0, 502_500.0]
        );
        assert_eq!(parse_sweep("100:100:1").unwrap(), vec![100.0]);
        assert_eq!(parse_sweep("0.1:0.3:0.1").unwrap().len(), 3);
        for bad in [
            "",
            "1k",
            "1k:2k",
            "1k:2k:1k:1",
            "0:1k:1k",
            "1k:2k:0",
            "2k:1k:1k",
            "-1:1k:1",
            "x:1k:1",
            "1m:2m:1m",
            "1:1000:1",
            "1k:200M:1k",
            "nan:1:1",
            "inf:inf:1",
        ] {
            assert!(parse_sweep(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn per_stream_rates_divide_the_total() {
        let t = Target {
            name: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let mut c = ConnectConfig {
            targets: vec![t.clone(), t],
            mode: Mode::Persistent {
                connections: 5,
                depth: 1,
            },
            ..Default::default()
        };
        assert_eq!(per_stream_rate(1000.0, &c), 100.0);
        c.mode = Mode::Udp { flows: 5 };
        assert_eq!(per_stream_rate(1000.0, &c), 500.0);
        c.targets.clear();
        assert_eq!(per_stream_rate(1000.0, &c), 1000.0);
    }

    fn row(completed: u64, latency_ns: u64) -> StepRow {
        let mut s = Stats::new();
        for _ in 0..completed {
            s.record(latency_ns, latency_ns, 64);
            s.record_start(1000);
        }
        StepRow {
            name: "t".into(),
            stats: s,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn a_step_at_its_rate_passes_and_one_short_is_the_target_s() {
        let sec = Duration::from_secs(1);
        assert_eq!(judge_step(&[row(1000, 50_000)], 1000.0, sec, &[]), None);
        assert_eq!(judge_step(&[row(951, 50_000)], 1000.0, sec, &[]), None);
        let mut r = row(900, 50_000);
        for _ in 0..100 {
            r.stats.error(crate::report::Failure::Timeout);
        }
        match judge_step(&[r], 1000.0, sec, &[]) {
            Some(Stopped::Rate(why)) => assert!(why.contains("achieved 900.0/s"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_check_is_the_target_s_unless_the_generator_fell_behind() {
        let sec = Duration::from_secs(1);
        let mut r = row(1000, 5_000_000);
        r.reasons = vec!["p99 5 ms > slo 2 ms".into()];
        assert_eq!(
            judge_step(&[r], 1000.0, sec, &[]),
            Some(Stopped::Slo("t: p99 5 ms > slo 2 ms".into()))
        );
        let mut late = row(1000, 5_000_000);
        for _ in 0..200 {
            late.stats.record_start(3_000_000);
        }
        late.reasons = vec!["p99 5 ms > slo 2 ms".into()];
        match judge_step(&[late], 1000.0, sec, &[]) {
            Some(Stopped::Generator(why)) => assert!(why.contains("late"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slots_the_generator_never_started_are_its_limit() {
        let sec = Duration::from_secs(1);
        let mut r = row(600, 50_000);
        r.stats.unsent(Unsent::InFlightLimit, 400);
        match judge_step(&[r], 1000.0, sec, &[]) {
            Some(Stopped::Generator(why)) => {
                assert!(why.contains("in_flight_limit=400"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // A few slots unsent at the stop are no limit.
        let mut r = row(1000, 50_000);
        r.stats.unsent(Unsent::RunEnded, 3);
        assert_eq!(generator_limit(&r.stats, 1000.0, sec, &[]), None);
    }

    /// Rows of `n` requests each `lag_ns` late to send and `service_ns` to answer.
    fn lagged(n: u64, lag_ns: u64, service_ns: u64) -> StepRow {
        let mut s = Stats::new();
        for _ in 0..n {
            s.record(lag_ns + service_ns, service_ns, 64);
            s.record_start(lag_ns);
        }
        StepRow {
            name: "t".into(),
            stats: s,
            reasons: vec!["p99 over the slo".into()],
        }
    }

    #[test]
    fn a_latency_bound_broken_by_the_send_lag_alone_is_the_generator_s() {
        let sec = Duration::from_secs(1);
        let slo = [Bound::Percentile(99.0, Duration::from_millis(2))];
        // 0.9 ms late (under LATE_START_NS: no late start) plus 1.5 ms to answer: 2.4 ms.
        match judge_step(&[lagged(1000, 900_000, 1_500_000)], 1000.0, sec, &slo) {
            Some(Stopped::Generator(why)) => assert!(why.contains("send lag p99"), "{why}"),
            other => panic!("{other:?}"),
        }
        // 0.1 ms late plus 2.5 ms to answer: the target's own.
        assert!(matches!(
            judge_step(&[lagged(1000, 100_000, 2_500_000)], 1000.0, sec, &slo),
            Some(Stopped::Slo(_))
        ));
    }

    #[test]
    fn a_failing_target_is_charged_even_when_the_generator_fell_short() {
        let sec = Duration::from_secs(1);
        let mut r = row(500, 50_000);
        r.stats.unsent(Unsent::InFlightLimit, 400);
        for _ in 0..100 {
            r.stats.error(crate::report::Failure::Timeout);
        }
        match judge_step(&[r], 1000.0, sec, &[]) {
            Some(Stopped::Rate(why)) => assert!(why.contains("errors 100"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// A finished step at `rate` req/s in total: `rows`, measured over `elapsed` with `cpu` of
    /// generator CPU, stopped for `stopped`.
    fn step(
        rate: f64,
        rows: Vec<StepRow>,
        elapsed: Duration,
        cpu: Duration,
        stopped: Option<Stopped>,
    ) -> Step {
        Step {
            rate,
            offered_per_row: rate,
            rows,
            summary: Summary {
                elapsed,
                cpu,
                ..Summary::default()
            },
            stopped,
        }
    }

    /// A step with no rows, over a second.
    fn bare(rate: f64, stopped: Option<Stopped>) -> Step {
        let sec = Duration::from_secs(1);
        step(rate, Vec::new(), sec, sec, stopped)
    }

    /// What `print_step` prints for step `index`, each row offered `offered`.
    fn printed_step(report: &ReportConfig, index: u64, offered: f64, mut step: Step) -> String {
        step.offered_per_row = offered;
        let mut out = Printer {
            w: Vec::new(),
            broken: false,
        };
        print_step(&mut out, report, index, &step);
        String::from_utf8(out.w).unwrap()
    }

    /// What `finish` prints after `steps` of a sweep of `rates` (`--slo` `slo`), and the
    /// error it returns (`None`: Ok).
    fn finished(
        rates: &[f64],
        slo: Option<&str>,
        steps: &[Step],
        jsonlines: bool,
    ) -> (String, Option<Vec<String>>) {
        let sweep = Sweep {
            rates: rates.to_vec(),
            step: Duration::from_secs(1),
            slo: slo.map(String::from),
        };
        let report = ReportConfig {
            jsonlines,
            ..Default::default()
        };
        let mut out = Printer {
            w: Vec::new(),
            broken: false,
        };
        let err = match finish(&mut out, &report, &sweep, steps) {
            Ok(()) => None,
            Err(Error::Failed(why)) => Some(why),
            Err(e) => panic!("{e:?}"),
        };
        (String::from_utf8(out.w).unwrap(), err)
    }

    #[test]
    fn a_step_prints_a_table_line_per_row_then_its_reasons() {
        let sec = Duration::from_secs(1);
        let report = ReportConfig::default();
        let pass = step(1000.0, vec![row(1000, 50_000)], sec, sec / 2, None);
        assert_eq!(
            printed_step(&report, 0, 1000.0, pass),
            "0     t                    1000.00      1000.00      50         50         50         0        50      pass\n"
        );
        let mut short = row(900, 50_000);
        short.reasons = vec!["p99 over".into()];
        let s = step(
            2000.0,
            vec![short],
            sec,
            sec,
            Some(Stopped::Rate("t: short".into())),
        );
        assert_eq!(
            printed_step(&report, 1, 1000.0, s),
            "1     t                    1000.00      900.00       50         50         50         0        100     fail\n\
             # step 1 t FAIL: p99 over\n\
             # step 1 t FAIL: achieved 900.0/s of 1000.0/s offered (under 95 %; errors 0, lost 0, not started 0)\n"
        );
        // Cut short with nothing measured: no rate, no CPU share, no latency.
        let udp = ReportConfig {
            udp: true,
            ..Default::default()
        };
        let cut = step(
            500.5,
            vec![row(0, 0)],
            Duration::ZERO,
            sec,
            Some(Stopped::Signal),
        );
        assert_eq!(
            printed_step(&udp, 2, 500.5, cut),
            "2     t                    500.50       -            -          -          -          0        0        -       fail\n\
             # step 2 t FAIL: cut short by a signal\n"
        );
    }

    #[test]
    fn the_end_of_a_sweep_names_its_knee_and_why_it_stopped() {
        let rates = [1000.0, 2000.0, 2500.5];
        let all = [bare(1000.0, None), bare(2000.0, None), bare(2500.5, None)];
        assert_eq!(
            finished(&rates, None, &all, false),
            (
                "# knee: 2500.50 req/s (highest step meeting the checks)\n\
                 # sweep ended: every step met the checks, up to TO (2500.50 req/s)\n"
                    .into(),
                None
            )
        );
        let slo = [
            bare(1000.0, None),
            bare(2000.0, Some(Stopped::Slo("t: p99 over".into()))),
        ];
        assert_eq!(
            finished(&rates, Some("p99=1ms"), &slo, false),
            (
                "# knee: 1000 req/s (highest step meeting p99=1ms)\n\
                 # sweep stopped: step 1 (2000 req/s) failed: t: p99 over\n"
                    .into(),
                None
            )
        );
        let rate = [bare(1000.0, Some(Stopped::Rate("t: short".into())))];
        assert_eq!(
            finished(&rates, Some("p99=1ms"), &rate, false),
            (
                "# knee: none (the first step, 1000 req/s, did not meet p99=1ms)\n\
                 # sweep stopped: step 0 (1000 req/s) fell short of its rate: t: short\n"
                    .into(),
                Some(vec![
                    "sweep found no knee: step 0 (1000 req/s) fell short of its rate: t: short"
                        .into()
                ])
            )
        );
        let generator = [
            bare(1000.0, None),
            bare(2000.0, None),
            bare(2500.5, Some(Stopped::Generator("t: late".into()))),
        ];
        assert_eq!(
            finished(&rates, None, &generator, false),
            (
                "# knee: 2000 req/s (highest step meeting the checks)\n\
                 # sweep stopped: the generator could not send 2500.50 req/s on schedule (t: late); capacity of the target not reached\n"
                    .into(),
                None
            )
        );
        let cut = [bare(1000.0, Some(Stopped::Signal))];
        assert_eq!(
            finished(&rates, None, &cut, false),
            (
                "# knee: none (the first step, 1000 req/s, did not finish)\n\
                 # sweep stopped: step 0 (1000 req/s) was cut short by a signal and does not count\n"
                    .into(),
                Some(vec![
                    "sweep found no knee: step 0 (1000 req/s) was cut short by a signal and does not count"
                        .into()
                ])
            )
        );
        assert_eq!(
            finished(&rates, None, &[bare(1000.0, None)], false),
            (
                "# knee: 1000 req/s (highest step meeting the checks)\n\
                 # sweep stopped: stopped by a signal after 1 of 3 steps\n"
                    .into(),
                None
            )
        );
        assert_eq!(
            finished(&rates, None, &[], false),
            (
                "# knee: none (the first step, 1000 req/s, did not finish)\n\
                 # sweep stopped: stopped by a signal after 0 of 3 steps\n"
                    .into(),
                Some(vec![
                    "sweep found no knee: stopped by a signal after 0 of 3 steps".into()
                ])
            )
        );
    }

    #[test]
    fn the_knee_row_carries_the_knee_and_why_the_sweep_stopped() {
        let rates = [1000.0, 2000.0];
        let (text, err) = finished(&rates, Some("p99=1ms"), &[bare(1000.0, None)], true);
        assert_eq!(err, None);
        assert_eq!(
            text,
            "{\"kind\":\"knee\",\"knee_rate\":1000.0,\"knee_step\":0,\"slo\":\"p99=1ms\",\"max_error_rate\":100.0,\"steps\":1,\"stopped\":\"signal\",\"reason\":\"stopped by a signal after 1 of 2 steps\"}\n"
        );
        let slo = [bare(1000.0, Some(Stopped::Slo("t: p99 over".into())))];
        let (text, err) = finished(&rates, None, &slo, true);
        assert_eq!(
            err,
            Some(vec![
                "sweep found no knee: step 0 (1000 req/s) failed: t: p99 over".into()
            ])
        );
        assert_eq!(
            text,
            "{\"kind\":\"knee\",\"knee_rate\":null,\"knee_step\":null,\"slo\":null,\"max_error_rate\":100.0,\"steps\":1,\"stopped\":\"slo\",\"reason\":\"step 0 (1000 req/s) failed: t: p99 over\"}\n"
        );
    }
}
