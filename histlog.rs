//! HdrHistogram interval logs: `--hdr-log FILE` writes every window's histograms (per target:
//! intended-time latency, uncorrected service time, connect time) as a standard interval log
//! (the layout of Java's `HistogramLogWriter`: V2 compressed histograms, tags, StartTime and
//! BaseTime headers) that the `hdrhistogram` crate's `IntervalLogIterator` and HdrHistogram's
//! other log readers read; `connperf merge FILE...` reads such logs from many load-generating
//! hosts, lines their windows up by wall-clock time and adds the histograms, so percentiles come
//! from merged histograms and never from averaging.
//!
//! Owns: the tag encoding (`Tag`, `parse_label`), `LogWriter`, `WindowLog` (a run's windows
//! into the log, as the reporter finishes them), `read_log` / `parse_log`, `merge` and
//! `print_merged`. Leaves to others: the clock (callers pass `SystemTime`s), argument
//! parsing (`cli`), and every table and JSON format (`report::print_report`).
//!
//! A log as `LogWriter` writes it (values in ns; the third column is the window's max in ms,
//! HdrHistogram's convention, set by `MAX_VALUE_DIVISOR`):
//!
//! ```text
//! #connperf interval log: latency histograms in ns; tags are KIND;peer=TARGET[;KEY=VALUE...] ...
//! #[Histogram log format version 1.3]
//! #connperf-run {"format":2,"workers":1,"udp":false,"ephemeral":false}
//! #labels: host=a
//! #[StartTime: 1736245800.123 (seconds since epoch)]
//! #[BaseTime: 1736245800.123 (seconds since epoch)]
//! #[MaxValueDivisor: 1000000.000]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! #connperf-ramp {"peer":"127.0.0.1:9100","took_ns":7840123,"connect":"HISTFAAAAC...","connection_errors":{...}}
//! Tag=latency;peer=127.0.0.1:9100;host=a,0.000,1.000,0.213,HISTFAAAAC...
//! Tag=service;peer=127.0.0.1:9100;host=a,0.000,1.000,0.187,HISTFAAAAC...
//! #connperf-counters {"start":0.0,"length":1.0,"peer":"127.0.0.1:9100","labels":[["host","a"]],"completed":1000,...,"send_lag":"HISTFAAAAC..."}
//! #connperf-window {"start":0.0,"length":1.0,"cpu_ns":41234567}
//! ```
//!
//! Log format 2 (the `#connperf-run` header line says which) adds, after each window's
//! histograms, one `#connperf-counters` line per target with every `Stats` counter that no
//! logged histogram holds (completed, bytes, errors and connection errors by kind, late starts,
//! max behind, UDP lost/late/duplicate/reordered/stray/flows, not started by cause, clamped) and
//! the send-lag histogram, then one `#connperf-window` line with the generator CPU of the
//! window (the whole host's, all targets). Before the first window, one `#connperf-ramp` line
//! per target holds the ramp (connect times and failed attempts before the schedule started). They are comment lines, which HdrHistogram's readers
//! (this crate's `IntervalLogIterator`, Java's `HistogramLogReader` and so
//! `HistogramLogProcessor`) skip. Logs without them (format 1, before counters were logged)
//! still merge: their counters are unknown (`Stats::counters_unknown`), printed `-` and `null`.

use crate::report::{
    self, Cell, Failure, ReportConfig, ReportRow, Stats, Summary, Unsent, Window, ERROR_KINDS,
    MAX_NS,
};
use crate::{Error, Result};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    self, IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry,
    LogIteratorError,
};
use hdrhistogram::serialization::{
    Deserializer, Serializer as _, V2DeflateSerializeError, V2DeflateSerializer,
};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Divisor of the log's max-value column: ns → ms, the unit HdrHistogram's tools assume there.
/// The histogram payload keeps ns.
pub const MAX_VALUE_DIVISOR: f64 = 1e6;

/// Java's `HistogramLogWriter` writes this version line; readers use it to pick the format.
const FORMAT_VERSION: &str = "[Histogram log format version 1.3]";

/// The column legend Java's writer puts after the header; every reader skips it.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// First header comment: says what the numbers and tags mean to a person opening the file.
const DESCRIPTION: &str = "connperf interval log: latency histograms in ns; tags are \
     KIND;peer=TARGET[;KEY=VALUE...] with KIND latency (from the intended send time), \
     service (from the actual send) or connect; each window's counters follow its histograms \
     on #connperf-counters lines (one per target) and a #connperf-window line";

/// The connperf log format `LogWriter` writes: 2 added the counter and window lines. Logs
/// without a `#connperf-run` line are format 1 (histograms only).
pub const LOG_FORMAT: u32 = 2;

/// Header line with the log format and how the run was made (`RunInfo`).
const RUN_PREFIX: &str = "#connperf-run ";
/// Per window and target: the counters (`CounterLine`).
const COUNTERS_PREFIX: &str = "#connperf-counters ";
/// Per window: the generator CPU (`WindowLine`).
const WINDOW_PREFIX: &str = "#connperf-window ";
/// Once per target, before the first window: the ramp (`RampLine`).
const RAMP_PREFIX: &str = "#connperf-ramp ";

/// How the logged run was made, from the `#connperf-run` header line: what the merged report
/// needs to print the columns and keys `connect` printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// The log format (`LOG_FORMAT` when written).
    pub format: u32,
    /// Worker threads of the run.
    pub workers: usize,
    /// A UDP run (loss columns and keys).
    pub udp: bool,
    /// An ephemeral run (connect-time columns and keys).
    pub ephemeral: bool,
}

/// One `#connperf-counters` line: a target's counters in one window. Counts by kind are keyed
/// by `Failure::name` / `Unsent::name`; an unknown key or kind is an error (a newer writer's
/// counter would otherwise be dropped from the sums without a word).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterLine {
    /// Seconds since BaseTime, as the histogram lines of the window write it.
    start: f64,
    length: f64,
    peer: String,
    labels: Vec<(String, String)>,
    completed: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    connection_errors: BTreeMap<String, u64>,
    late_starts: u64,
    max_behind_ns: u64,
    lost: u64,
    late: u64,
    duplicate: u64,
    reordered: u64,
    stray: u64,
    flows: u64,
    new_flows: u64,
    not_started: u64,
    not_started_by: BTreeMap<String, u64>,
    clamped: u64,
    /// The send-lag histogram, V2 deflate in base64 like the histogram lines.
    send_lag: String,
}

/// One `#connperf-ramp` line: how one target's connections came up before the schedule
/// started (`report::Ramp`), written once, before the first window.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RampLine {
    peer: String,
    /// How long the whole ramp took (all targets).
    took_ns: u64,
    /// Connect times of the connections it brought up, V2 deflate in base64.
    connect: String,
    connection_errors: BTreeMap<String, u64>,
}

/// One `#connperf-window` line: the generator CPU of a window, once per host (not per target).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowLine {
    start: f64,
    length: f64,
    cpu_ns: u64,
}

/// A timestamp as the crate's line writer prints it (`{:.3}` of seconds), read back as f64:
/// the counter lines of a window carry the very start of its histogram lines.
fn log_seconds(d: Duration) -> f64 {
    let s = d.as_secs() as f64 + f64::from(d.subsec_nanos()) / 1e9;
    format!("{s:.3}").parse().unwrap_or(0.0)
}

/// `log_seconds` back to a duration, to the log's 1 ms; `None` if negative or not finite.
fn of_log_seconds(x: f64) -> Option<Duration> {
    let ms = (x * 1000.0).round();
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then(|| Duration::from_millis(ms as u64))
}

/// With a StartTime but no BaseTime, Java's `HistogramLogReader` takes an interval timestamp
/// as a delta from StartTime when it is more than a year smaller than StartTime, else as
/// absolute. `read_log` follows it so that logs from other tools line up the same way.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Timestamps in a log have 3 decimals: windows shorter than this cannot be told apart.
const LOG_RESOLUTION: Duration = Duration::from_millis(1);

/// What a logged histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// From the intended send time to completion (coordinated omission corrected): `Stats::latency`.
    Latency,
    /// From the actual send to completion (uncorrected): `Stats::service`.
    Service,
    /// Connect time, SYN to established: `Stats::connect`.
    Connect,
}

impl Kind {
    /// All kinds, in the order a window's histograms are written.
    pub const ALL: [Kind; 3] = [Kind::Latency, Kind::Service, Kind::Connect];

    /// The name used as the first part of a tag.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Service => "service",
            Kind::Connect => "connect",
        }
    }

    fn of_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    fn of_stats(self, s: &Stats) -> &Histogram<u64> {
        match self {
            Kind::Latency => &s.latency,
            Kind::Service => &s.service,
            Kind::Connect => &s.connect,
        }
    }

    fn of_stats_mut(self, s: &mut Stats) -> &mut Histogram<u64> {
        match self {
            Kind::Latency => &mut s.latency,
            Kind::Service => &mut s.service,
            Kind::Connect => &mut s.connect,
        }
    }
}

/// What one logged histogram is: its kind, the target it measured and the run's labels.
///
/// Written as `KIND;peer=PEER;KEY=VALUE;...` (for example
/// `latency;peer=127.0.0.1:9100;host=a`). Interval log tags end at `,` and HdrHistogram's
/// readers split on whitespace, and `;` separates the parts, so no part may hold those
/// characters: `encode` rejects them rather than inventing an escape other tools would not undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// What the histogram measures.
    pub kind: Kind,
    /// The target as the user typed it (`127.0.0.1:9100`, `[::1]:9100`, `echo.lan:7`).
    pub peer: String,
    /// `--label KEY=VALUE` pairs, in the order given.
    pub labels: Vec<(String, String)>,
}

impl Tag {
    /// The tag of a `kind` histogram of `peer` in a run labelled `labels`.
    pub fn new(kind: Kind, peer: &str, labels: &[(String, String)]) -> Tag {
        Tag {
            kind,
            peer: peer.to_string(),
            labels: labels.to_vec(),
        }
    }

    /// The tag's text, or a `Config` error naming the peer or label that cannot go in a tag.
    pub fn encode(&self) -> Result<String> {
        check_text(&self.peer).map_err(|why| {
            Error::Config(format!(
                "target {:?} cannot go in an interval log tag: it {why}",
                self.peer
            ))
        })?;
        let mut s = format!("{};peer={}", self.kind.name(), self.peer);
        for (key, value) in &self.labels {
            check_label(key, value)?;
            s.push(';');
            s.push_str(key);
            s.push('=');
            s.push_str(value);
        }
        Ok(s)
    }

    /// Parse a tag that `encode` wrote; the error says what is wrong with it.
    pub fn parse(s: &str) -> std::result::Result<Tag, String> {
        let want = "want KIND;peer=TARGET[;KEY=VALUE...]";
        let mut parts = s.split(';');
        let kind_name = parts.next().unwrap_or_default();
        let kind = Kind::of_name(kind_name).ok_or_else(|| {
            format!("tag {s:?} is not a connperf tag: unknown kind {kind_name:?} ({want})")
        })?;
        let mut peer = None;
        let mut labels = Vec::new();
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("tag {s:?}: part {part:?} is not KEY=VALUE ({want})"))?;
            if key == "peer" {
                if peer.replace(value.to_string()).is_some() {
                    return Err(format!("tag {s:?} names the peer twice"));
                }
            } else {
                labels.push((key.to_string(), value.to_string()));
            }
        }
        let peer = peer.ok_or_else(|| format!("tag {s:?} has no peer= part ({want})"))?;
        Ok(Tag { kind, peer, labels })
    }
}

/// What keeps `s` out of a tag part ("is empty", "contains ','"), if anything.
fn check_text(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    match s
        .chars()
        .find(|&c| c == ',' || c == ';' || c.is_whitespace() || c.is_control())
    {
        Some(c) if c.is_whitespace() => Err("contains whitespace".into()),
        Some(c) if c.is_control() => Err(format!("contains the control character {c:?}")),
        Some(c) => Err(format!("contains {c:?}")),
        None => Ok(()),
    }
}

/// Check that `key=value` can be stamped into log tags and JSON lines: the key is letters,
/// digits, `_`, `-` or `.` and is not `peer`; the value is not empty and holds no `,`, `;`,
/// whitespace or control characters. The error names the label.
pub fn check_label(key: &str, value: &str) -> Result<()> {
    let bad = |why: String| {
        Error::Config(format!(
            "invalid --label {:?}: {why}",
            format!("{key}={value}")
        ))
    };
    if let Some(why) = key_problem(key) {
        return Err(bad(why));
    }
    check_text(value).map_err(|why| {
        bad(format!(
            "the value {why}, which an interval log tag cannot hold"
        ))
    })
}

/// What keeps `key` from being a label key, if anything.
fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the key is empty".into());
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Some(format!(
            "the key contains {c:?}; use letters, digits, '_', '-' and '.'"
        ));
    }
    (key == "peer").then(|| "the key \"peer\" is reserved for the target".into())
}

/// Check `merge --by KEY`: a key `--label` could have set.
pub fn check_by(key: &str) -> Result<()> {
    match key_problem(key) {
        Some(why) => Err(Error::Config(format!("invalid --by {key:?}: {why}"))),
        None => Ok(()),
    }
}

/// Parse and check one `--label KEY=VALUE` argument (see `check_label`).
pub fn parse_label(arg: &str) -> Result<(String, String)> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("invalid --label {arg:?}: want KEY=VALUE")))?;
    check_label(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

/// Writes an HdrHistogram interval log to any `Write`.
///
/// The header (description, format version, labels, StartTime and BaseTime, max-value divisor,
/// legend) goes out in `new`; each `write` adds one histogram line whose timestamp is relative
/// to BaseTime. Lines are formatted by the `hdrhistogram` crate's own interval log writer.
pub struct LogWriter<W: Write> {
    out: W,
    /// StartTime and BaseTime, cut to the whole ms that the header can hold, so that
    /// BaseTime + relative timestamp is the true start to within the log's 1 ms resolution.
    base: SystemTime,
    labels: Vec<(String, String)>,
    /// Builds the crate's line writer. That writer borrows its output for its whole life, so it
    /// cannot live in a struct that owns the output: each `write` builds one over `scratch`.
    line: IntervalLogWriterBuilder,
    /// Bytes that building a line writer puts before the line (the MaxValueDivisor comment).
    line_prefix_len: usize,
    serializer: V2DeflateSerializer,
    scratch: Vec<u8>,
}

impl<W: Write> LogWriter<W> {
    /// Write the log header to `out`; windows are timed from `start_time`. `labels` go into a
    /// header comment here, and into the tags `tag` and `write_stats` make.
    pub fn new(
        mut out: W,
        start_time: SystemTime,
        labels: &[(String, String)],
        run: RunInfo,
    ) -> Result<Self> {
        for (key, value) in labels {
            check_label(key, value)?;
        }
        let since_epoch = start_time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let base = UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64);
        let mut serializer = V2DeflateSerializer::new();
        let labels_comment = if labels.is_empty() {
            "labels: none".to_string()
        } else {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("labels: {}", pairs.join(" "))
        };
        let run = RunInfo {
            format: LOG_FORMAT,
            ..run
        };
        let run_comment = format!(
            "{}{}",
            &RUN_PREFIX[1..],
            serde_json::to_string(&run).expect("plain struct")
        );
        IntervalLogWriterBuilder::new()
            .add_comment(DESCRIPTION)
            .add_comment(FORMAT_VERSION)
            .add_comment(&run_comment)
            .add_comment(&labels_comment)
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(MAX_VALUE_DIVISOR)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(write_error)?;
        out.write_all(LEGEND.as_bytes()).map_err(write_error)?;
        let mut line = IntervalLogWriterBuilder::new();
        line.with_max_value_divisor(MAX_VALUE_DIVISOR);
        let mut prefix = Vec::new();
        line.begin_log_with(&mut prefix, &mut serializer)
            .map_err(write_error)?;
        Ok(LogWriter {
            out,
            base,
            labels: labels.to_vec(),
            line,
            line_prefix_len: prefix.len(),
            serializer,
            scratch: Vec::new(),
        })
    }

    /// The tag of a `kind` histogram of `peer`, carrying this log's labels.
    pub fn tag(&self, kind: Kind, peer: &str) -> Tag {
        Tag::new(kind, peer, &self.labels)
    }

    /// Append one histogram (values in ns) measured over `duration` from `interval_start`
    /// (a start before the log's start time is logged as the log's start). A tag that cannot
    /// be written is a `Config` error naming the peer or label.
    pub fn write(
        &mut self,
        tag: &Tag,
        interval_start: SystemTime,
        duration: Duration,
        h: &Histogram<u64>,
    ) -> Result<()> {
        let text = tag.encode()?;
        let log_tag = interval_log::Tag::new(&text)
            .expect("Tag::encode rejects ',', whitespace and control characters");
        let since_base = interval_start.duration_since(self.base).unwrap_or_default();
        self.scratch.clear();
        self.line
            .begin_log_with(&mut self.scratch, &mut self.serializer)
            .map_err(write_error)?
            .write_histogram(h, since_base, duration, Some(log_tag))
            .map_err(line_error)?;
        let line = self.scratch.get(self.line_prefix_len..).unwrap_or_default();
        self.out.write_all(line).map_err(write_error)
    }

    /// Write one window of a run: per target, its `latency` and `service` histograms, and its
    /// `connect` histogram when that holds samples (only ephemeral runs connect per request);
    /// then per target its `#connperf-counters` line, then the `#connperf-window` line with
    /// `cpu`, the generator CPU of the window. Flushes, so that a run that dies leaves a log of
    /// whole lines.
    pub fn write_stats(
        &mut self,
        peers: &[String],
        interval_start: SystemTime,
        duration: Duration,
        cpu: Duration,
        stats: &[Stats],
    ) -> Result<()> {
        for (peer, s) in peers.iter().zip(stats) {
            for kind in Kind::ALL {
                let h = kind.of_stats(s);
                if kind == Kind::Connect && h.is_empty() {
                    continue;
                }
                let tag = self.tag(kind, peer);
                self.write(&tag, interval_start, duration, h)?;
            }
        }
        let since_base = interval_start.duration_since(self.base).unwrap_or_default();
        let (start, length) = (log_seconds(since_base), log_seconds(duration));
        for (peer, s) in peers.iter().zip(stats) {
            let send_lag = self.encode(&s.send_lag)?;
            let line = CounterLine {
                start,
                length,
                peer: peer.clone(),
                labels: self.labels.clone(),
                completed: s.completed,
                bytes: s.bytes,
                errors: by_failure(&s.errors),
                connection_errors: by_failure(&s.conn_errors),
                late_starts: s.late_starts,
                max_behind_ns: s.max_behind_ns,
                lost: s.lost,
                late: s.late,
                duplicate: s.duplicate,
                reordered: s.reordered,
                stray: s.stray,
                flows: s.flows,
                new_flows: s.new_flows,
                not_started: s.not_started,
                not_started_by: by_name(&s.not_started_by, unsent_causes()),
                clamped: s.clamped,
                send_lag,
            };
            let json = serde_json::to_string(&line).expect("plain struct");
            writeln!(self.out, "{COUNTERS_PREFIX}{json}").map_err(write_error)?;
        }
        let window = WindowLine {
            start,
            length,
            cpu_ns: u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX),
        };
        let json = serde_json::to_string(&window).expect("plain struct");
        writeln!(self.out, "{WINDOW_PREFIX}{json}").map_err(write_error)?;
        self.flush()
    }

    /// Write the ramp before the schedule started: one `#connperf-ramp` line per target.
    pub fn write_ramp(&mut self, peers: &[String], ramp: &report::Ramp) -> Result<()> {
        for (peer, s) in peers.iter().zip(&ramp.stats) {
            self.tag(Kind::Connect, peer).encode()?;
            let line = RampLine {
                peer: peer.clone(),
                took_ns: u64::try_from(ramp.took.as_nanos()).unwrap_or(u64::MAX),
                connect: self.encode(&s.connect)?,
                connection_errors: by_failure(&s.conn_errors),
            };
            let json = serde_json::to_string(&line).expect("plain struct");
            writeln!(self.out, "{RAMP_PREFIX}{json}").map_err(write_error)?;
        }
        Ok(())
    }

    /// `h` as V2 deflate in base64, as the histogram lines hold it.
    fn encode(&mut self, h: &Histogram<u64>) -> Result<String> {
        self.scratch.clear();
        self.serializer
            .serialize(h, &mut self.scratch)
            .map_err(encode_error)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(&self.scratch))
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(write_error)
    }

    /// The underlying writer (unflushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// `--hdr-log` as the reporter drives it: each finished window of a run goes to the log, timed
/// from the wall-clock start of window 0. A write that fails warns once on stderr and stops the
/// log; the run and its report go on.
pub struct WindowLog<W: Write> {
    /// `None` once a write failed.
    log: Option<LogWriter<W>>,
    /// Target names, in target order.
    peers: Vec<String>,
    /// The reporting interval: window `seq` starts at `origin + seq * interval`.
    interval: Duration,
    /// The ramp is in the log.
    ramp_written: bool,
}

impl<W: Write> WindowLog<W> {
    /// Log the windows of a run over `peers`.
    pub fn new(log: LogWriter<W>, peers: Vec<String>, interval: Duration) -> Self {
        WindowLog {
            log: Some(log),
            peers,
            interval,
            ramp_written: false,
        }
    }

    /// Write window `seq` of a run whose window 0 started at `origin` (the measurement start,
    /// on the wall clock), which lasted `length` (the last one is usually shorter) and cost
    /// the generator `cpu`; before the first window written, the run's `ramp` if it has one.
    /// The `run_reporter` callback.
    pub fn on_window(
        &mut self,
        origin: SystemTime,
        seq: u64,
        length: Duration,
        cpu: Duration,
        stats: &[Stats],
        ramp: impl FnOnce() -> Option<report::Ramp>,
    ) {
        let Some(log) = self.log.as_mut() else { return };
        let start = origin + self.interval * seq as u32;
        let mut written = Ok(());
        if !self.ramp_written {
            self.ramp_written = true;
            if let Some(r) = ramp() {
                written = log.write_ramp(&self.peers, &r);
            }
        }
        let written =
            written.and_then(|()| log.write_stats(&self.peers, start, length, cpu, stats));
        if let Err(e) = written {
            eprintln!("connperf: warning: --hdr-log stopped: {e}");
            self.log = None;
        }
    }

    /// The log, unless a write failed.
    pub fn into_inner(self) -> Option<LogWriter<W>> {
        self.log
    }
}

/// Counts by `Failure`, keyed by name.
fn by_failure(counts: &[u64; ERROR_KINDS]) -> BTreeMap<String, u64> {
    by_name(counts, failure_kinds())
}

/// Each failure kind's name and index in a `[u64; ERROR_KINDS]`.
fn failure_kinds() -> impl Iterator<Item = (&'static str, usize)> + Clone {
    Failure::ALL.iter().map(|k| (k.name(), k.index()))
}

/// Each not-started cause's name and index in a `[u64; UNSENT_CAUSES]`.
fn unsent_causes() -> impl Iterator<Item = (&'static str, usize)> + Clone {
    Unsent::ALL.iter().map(|c| (c.name(), *c as usize))
}

/// `counts` by name, as a counter line holds them; `kinds` names each index.
fn by_name<const N: usize>(
    counts: &[u64; N],
    kinds: impl Iterator<Item = (&'static str, usize)>,
) -> BTreeMap<String, u64> {
    kinds
        .map(|(name, i)| (name.to_string(), counts[i]))
        .collect()
}

/// A counter line's counts by name back into their array; a name not among `kinds` is
/// `unknown {what} "NAME"`.
fn from_names<const N: usize>(
    counts: &BTreeMap<String, u64>,
    kinds: impl Iterator<Item = (&'static str, usize)> + Clone,
    what: &str,
) -> std::result::Result<[u64; N], String> {
    let mut out = [0; N];
    for (name, &n) in counts {
        let (_, i) = kinds
            .clone()
            .find(|(k, _)| k == name)
            .ok_or_else(|| format!("unknown {what} {name:?}"))?;
        out[i] = n;
    }
    Ok(out)
}

fn write_error(source: io::Error) -> Error {
    Error::Io {
        what: "cannot write the --hdr-log file".into(),
        source,
    }
}

fn line_error(e: IntervalLogWriterError<V2DeflateSerializeError>) -> Error {
    match e {
        IntervalLogWriterError::IoError(source) => write_error(source),
        IntervalLogWriterError::SerializeError(e) => encode_error(e),
    }
}

fn encode_error(e: V2DeflateSerializeError) -> Error {
    Error::Io {
        what: "cannot encode a histogram for the --hdr-log file".into(),
        source: io::Error::other(e),
    }
}

/// One histogram read from an interval log.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it measures, and for which target and labels.
    pub tag: Tag,
    /// Wall-clock start of its window: the log's BaseTime plus the line's timestamp. Without a
    /// BaseTime, Java's reader's rule applies: the timestamp is relative to StartTime when it is
    /// over a year smaller than StartTime, else (and when there is no StartTime) absolute.
    pub start: SystemTime,
    /// Length of its window.
    pub duration: Duration,
    /// The samples, ns.
    pub hist: Histogram<u64>,
}

/// Everything read from one interval log.
#[derive(Debug, Clone)]
pub struct Log {
    /// The file as given (for messages).
    pub name: String,
    /// Its canonical path, when read from a file.
    pub path: Option<PathBuf>,
    /// A hash of its bytes: the same log under two names has the same one.
    pub digest: u64,
    /// The histograms.
    pub entries: Vec<Entry>,
    /// Per window and target, the counters (format 2; none in a format 1 log).
    pub counters: Vec<Counters>,
    /// Per window, the generator CPU (format 2).
    pub windows: Vec<WindowCpu>,
    /// Per target, the ramp before the schedule (format 2, runs that ramp up connections):
    /// how long it took, and the connect times and failed attempts in a `Stats`.
    pub ramps: Vec<(String, Duration, Stats)>,
    /// The `#connperf-run` header: `None` in a log written before counters were logged, whose
    /// counters are then unknown.
    pub run: Option<RunInfo>,
}

impl Log {
    /// The labels every histogram of the log carries (the run's `--label`s).
    pub fn labels(&self) -> Vec<(String, String)> {
        common_labels(self.entries.iter().map(|e| &e.tag.labels))
    }

    /// Wall-clock start of the first window and end of the last.
    fn span(&self) -> Option<(SystemTime, SystemTime)> {
        let start = self.entries.iter().map(|e| e.start).min()?;
        let end = self.entries.iter().map(Entry::end).max()?;
        Some((start, end))
    }
}

/// One `#connperf-counters` line read back: a target's counters in one window, in a `Stats`
/// whose latency, service and connect histograms are empty (they are on the histogram lines).
#[derive(Debug, Clone)]
pub struct Counters {
    pub peer: String,
    pub start: SystemTime,
    pub duration: Duration,
    pub stats: Stats,
}

/// One `#connperf-window` line read back: the host's generator CPU in one window.
#[derive(Debug, Clone, Copy)]
pub struct WindowCpu {
    pub start: SystemTime,
    pub duration: Duration,
    pub cpu: Duration,
}

impl Entry {
    fn end(&self) -> SystemTime {
        self.start.checked_add(self.duration).unwrap_or(self.start)
    }
}

/// Read the interval log at `path`: its histograms and, in a format 2 log, its counters.
///
/// A file that is not an interval log, a line cut short, a payload that is not base64 or not a
/// histogram, a tag connperf did not write, a counter line that does not parse, or a log with
/// no histograms at all is a `Config` error `{path}: bad interval log at byte {offset}: {what}`,
/// where `offset` is where the bad line starts. A file that cannot be read is an `Io` error
/// naming it.
pub fn read_log(path: &Path) -> Result<Log> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        what: format!("cannot read interval log {}", path.display()),
        source,
    })?;
    let mut log = parse_log(&bytes, &path.display().to_string())?;
    log.path = std::fs::canonicalize(path).ok();
    Ok(log)
}

/// `read_log` on bytes already in memory; `name` stands for the file in error messages.
pub fn parse_log(input: &[u8], name: &str) -> Result<Log> {
    let mut log = parse(input).map_err(|(offset, what)| {
        Error::Config(format!("{name}: bad interval log at byte {offset}: {what}"))
    })?;
    log.name = name.to_string();
    Ok(log)
}

/// The log, or the byte offset of the bad line and what is wrong with it.
fn parse(input: &[u8]) -> std::result::Result<Log, (usize, String)> {
    if input.is_empty() {
        return Err((0, "empty file".into()));
    }
    let mut decoder = HistDecoder::new();
    let (entries, clock) = read_histograms(input, &mut decoder)?;
    if entries.is_empty() {
        return Err((input.len(), "no interval histograms in the file".into()));
    }
    let mut log = Log {
        name: String::new(),
        path: None,
        digest: digest(input),
        entries,
        counters: Vec::new(),
        windows: Vec::new(),
        ramps: Vec::new(),
        run: None,
    };
    read_connperf_lines(input, clock, &mut decoder, &mut log)?;
    if log.run.is_none()
        && !(log.counters.is_empty() && log.windows.is_empty() && log.ramps.is_empty())
    {
        return Err((0, "counter lines but no #connperf-run header line".into()));
    }
    Ok(log)
}

/// The StartTime and BaseTime headers of a log: what puts its timestamps on the wall clock.
#[derive(Debug, Clone, Copy, Default)]
struct LogClock {
    start_time: Option<Duration>,
    base_time: Option<Duration>,
}

impl LogClock {
    /// A line's timestamp on the wall clock (`absolute` with these headers).
    fn absolute(self, ts: Duration) -> Option<SystemTime> {
        absolute(self.base_time, self.start_time, ts)
    }
}

/// Decodes base64 V2 histograms, reusing one deserializer and one buffer for all lines.
struct HistDecoder {
    deserializer: Deserializer,
    payload: Vec<u8>,
}

/// Why a base64 V2 histogram did not decode, with the decoder's message.
enum BadHistogram {
    NotBase64(String),
    NotV2(String),
}

impl std::fmt::Display for BadHistogram {
    /// `is not base64: ...` or `is not a V2 histogram: ...`, to follow what was decoded.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHistogram::NotBase64(e) => write!(f, "is not base64: {e}"),
            BadHistogram::NotV2(e) => write!(f, "is not a V2 histogram: {e}"),
        }
    }
}

impl HistDecoder {
    /// A decoder with an empty buffer.
    fn new() -> HistDecoder {
        HistDecoder {
            deserializer: Deserializer::new(),
            payload: Vec::new(),
        }
    }

    /// A V2 histogram in base64, as histogram, counter and ramp lines hold it.
    fn decode(&mut self, text: &str) -> std::result::Result<Histogram<u64>, BadHistogram> {
        self.payload.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(text, &mut self.payload)
            .map_err(|e| BadHistogram::NotBase64(e.to_string()))?;
        self.deserializer
            .deserialize(&mut self.payload.as_slice())
            .map_err(|e| BadHistogram::NotV2(e.to_string()))
    }
}

/// The histogram lines of a log as entries, in file order, and the log's clock headers.
fn read_histograms(
    input: &[u8],
    decoder: &mut HistDecoder,
) -> std::result::Result<(Vec<Entry>, LogClock), (usize, String)> {
    let mut clock = LogClock::default();
    let mut entries = Vec::new();
    for item in IntervalLogIterator::new(input) {
        match item {
            Err(LogIteratorError::ParseError { offset }) => {
                return Err((offset, describe_bad_line(input, offset)))
            }
            Ok(LogEntry::StartTime(t)) => clock.start_time = Some(t),
            Ok(LogEntry::BaseTime(t)) => clock.base_time = Some(t),
            Ok(LogEntry::Interval(line)) => {
                entries.push(histogram_entry(input, &line, clock, decoder)?)
            }
        }
    }
    Ok((entries, clock))
}

/// One histogram line as an entry: its tag, decoded histogram and wall-clock start, timed
/// by the headers read before it.
fn histogram_entry(
    input: &[u8],
    line: &interval_log::IntervalLogHistogram<'_>,
    clock: LogClock,
    decoder: &mut HistDecoder,
) -> std::result::Result<Entry, (usize, String)> {
    let encoded = line.encoded_histogram();
    let offset = line_start(input, encoded.as_bytes());
    let fail = |what: String| (offset, what);
    let tag = match line.tag() {
        Some(t) => Tag::parse(t.as_str()).map_err(fail)?,
        None => {
            return Err(fail(
                "histogram has no Tag= (connperf tags every line)".into(),
            ))
        }
    };
    let hist = decoder.decode(encoded).map_err(|e| {
        fail(match e {
            BadHistogram::NotBase64(e) => format!("histogram is not base64: {e}"),
            BadHistogram::NotV2(e) => format!("payload is not a V2 histogram: {e}"),
        })
    })?;
    if hist.max() > MAX_NS {
        return Err(fail(format!(
            "histogram max {} is above connperf's largest value {MAX_NS} (1 h in ns)",
            hist.max()
        )));
    }
    let start = clock
        .absolute(line.start_timestamp())
        .ok_or_else(|| fail("timestamp out of range".into()))?;
    Ok(Entry {
        tag,
        start,
        duration: line.duration(),
        hist,
    })
}

/// Read the `#connperf-` comment lines of a log (run header, counters, ramps, window CPU)
/// into `log`, timed by the log's final clock headers.
fn read_connperf_lines(
    input: &[u8],
    clock: LogClock,
    decoder: &mut HistDecoder,
    log: &mut Log,
) -> std::result::Result<(), (usize, String)> {
    // The iterator has checked that every line ends in a newline.
    let mut offset = 0;
    for line in input.split_inclusive(|&b| b == b'\n') {
        let at = offset;
        offset += line.len();
        if line.starts_with(b"#connperf-") {
            ConnperfLine { at, clock }.read_into(line, decoder, log)?;
        }
    }
    Ok(())
}

/// One `#connperf-` line being read: where it starts (for errors) and the log's clock.
struct ConnperfLine {
    at: usize,
    clock: LogClock,
}

impl ConnperfLine {
    /// `what` is wrong with this line.
    fn fail(&self, what: String) -> (usize, String) {
        (self.at, what)
    }

    /// A start field (seconds since the log's base) on the wall clock.
    fn time(&self, secs: f64, what: &str) -> std::result::Result<SystemTime, (usize, String)> {
        of_log_seconds(secs)
            .and_then(|d| self.clock.absolute(d))
            .ok_or_else(|| self.fail(format!("{what} {secs} out of range")))
    }

    /// A length field (seconds) as a duration.
    fn length(&self, secs: f64) -> std::result::Result<Duration, (usize, String)> {
        of_log_seconds(secs).ok_or_else(|| self.fail(format!("length {secs} out of range")))
    }

    /// The JSON after `prefix`, as the line type that prefix announces.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        json: &str,
        prefix: &str,
    ) -> std::result::Result<T, (usize, String)> {
        serde_json::from_str(json)
            .map_err(|e| self.fail(format!("bad {} line: {e}", prefix.trim_end())))
    }

    /// Add the line to `log` by its prefix; a `#connperf-` line of another kind is skipped.
    fn read_into(
        &self,
        line: &[u8],
        decoder: &mut HistDecoder,
        log: &mut Log,
    ) -> std::result::Result<(), (usize, String)> {
        let text = std::str::from_utf8(line)
            .map_err(|_| self.fail("connperf line is not UTF-8".into()))?
            .trim_end();
        if let Some(json) = text.strip_prefix(RUN_PREFIX) {
            log.run = Some(self.run(json)?);
        } else if let Some(json) = text.strip_prefix(COUNTERS_PREFIX) {
            log.counters.push(self.counters(json, decoder)?);
        } else if let Some(json) = text.strip_prefix(RAMP_PREFIX) {
            log.ramps.push(self.ramp(json, decoder)?);
        } else if let Some(json) = text.strip_prefix(WINDOW_PREFIX) {
            log.windows.push(self.window(json)?);
        }
        Ok(())
    }

    /// A `#connperf-run` line; a format newer than this connperf reads is an error.
    fn run(&self, json: &str) -> std::result::Result<RunInfo, (usize, String)> {
        let run: RunInfo = self.json(json, RUN_PREFIX)?;
        if run.format > LOG_FORMAT {
            return Err(self.fail(format!(
                "log format {} is newer than this connperf reads ({LOG_FORMAT})",
                run.format
            )));
        }
        Ok(run)
    }

    /// A `#connperf-counters` line: a target's counters in one window.
    fn counters(
        &self,
        json: &str,
        decoder: &mut HistDecoder,
    ) -> std::result::Result<Counters, (usize, String)> {
        let c: CounterLine = self.json(json, COUNTERS_PREFIX)?;
        let stats = counter_stats(&c, decoder).map_err(|e| self.fail(e))?;
        Ok(Counters {
            start: self.time(c.start, "start")?,
            duration: self.length(c.length)?,
            peer: c.peer,
            stats,
        })
    }

    /// A `#connperf-ramp` line: a target, how long the ramp took, and its connect times and
    /// failed attempts.
    fn ramp(
        &self,
        json: &str,
        decoder: &mut HistDecoder,
    ) -> std::result::Result<(String, Duration, Stats), (usize, String)> {
        let r: RampLine = self.json(json, RAMP_PREFIX)?;
        let mut s = Stats::new();
        s.conn_errors =
            failure_counts(&r.connection_errors, "connection_errors").map_err(|e| self.fail(e))?;
        let h = decoder
            .decode(&r.connect)
            .map_err(|e| self.fail(format!("ramp connect {e}")))?;
        add_clamped(&mut s.connect, &h);
        Ok((r.peer, Duration::from_nanos(r.took_ns), s))
    }

    /// A `#connperf-window` line: the host's generator CPU in one window.
    fn window(&self, json: &str) -> std::result::Result<WindowCpu, (usize, String)> {
        let w: WindowLine = self.json(json, WINDOW_PREFIX)?;
        Ok(WindowCpu {
            start: self.time(w.start, "start")?,
            duration: self.length(w.length)?,
            cpu: Duration::from_nanos(w.cpu_ns),
        })
    }
}

/// A line's timestamp on the wall clock: BaseTime plus the timestamp. Without a BaseTime,
/// Java's reader's rule: relative to StartTime when it is over a year smaller than StartTime,
/// else (and when there is no StartTime) absolute.
fn absolute(
    base_time: Option<Duration>,
    start_time: Option<Duration>,
    ts: Duration,
) -> Option<SystemTime> {
    let since_epoch = match (base_time, start_time) {
        (Some(base), _) => base.checked_add(ts),
        (None, Some(start)) if ts.saturating_add(YEAR) < start => start.checked_add(ts),
        _ => Some(ts),
    };
    since_epoch.and_then(|d| UNIX_EPOCH.checked_add(d))
}

/// A hash of a log's bytes (FNV-1a, 64 bits): stable, and enough to tell two logs apart.
fn digest(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `Stats` of a counter line; the error says what is wrong with it.
fn counter_stats(c: &CounterLine, decoder: &mut HistDecoder) -> std::result::Result<Stats, String> {
    let mut s = Stats::new();
    s.completed = c.completed;
    s.bytes = c.bytes;
    s.errors = failure_counts(&c.errors, "errors")?;
    s.conn_errors = failure_counts(&c.connection_errors, "connection_errors")?;
    s.late_starts = c.late_starts;
    s.max_behind_ns = c.max_behind_ns;
    s.lost = c.lost;
    s.late = c.late;
    s.duplicate = c.duplicate;
    s.reordered = c.reordered;
    s.stray = c.stray;
    s.flows = c.flows;
    s.new_flows = c.new_flows;
    s.not_started_by = from_names(&c.not_started_by, unsent_causes(), "not_started_by cause")?;
    s.not_started = c.not_started;
    s.clamped = c.clamped;
    let h = decoder
        .decode(&c.send_lag)
        .map_err(|e| format!("send_lag {e}"))?;
    add_clamped(&mut s.send_lag, &h);
    Ok(s)
}

/// Counts keyed by `Failure::name`; an unknown kind is an error.
fn failure_counts(
    counts: &BTreeMap<String, u64>,
    what: &str,
) -> std::result::Result<[u64; ERROR_KINDS], String> {
    from_names(counts, failure_kinds(), &format!("{what} kind"))
}

/// Offset of the start of the line that holds `field`, a slice of `input`.
fn line_start(input: &[u8], field: &[u8]) -> usize {
    let at = (field.as_ptr() as usize)
        .checked_sub(input.as_ptr() as usize)
        .filter(|&at| at <= input.len())
        .unwrap_or(0);
    input[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1)
}

/// Why the line at `offset` is neither a histogram, a comment nor the legend.
fn describe_bad_line(input: &[u8], offset: usize) -> String {
    let rest = input.get(offset..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == b'\n');
    let line = &rest[..end.unwrap_or(rest.len())];
    let shown = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
    match end {
        None => format!("line does not end in a newline (file truncated?): {shown:?}"),
        Some(_) => {
            format!("not an interval log line (want [Tag=T,]START,LENGTH,MAX,BASE64): {shown:?}")
        }
    }
}

/// Many logs added up per wall-clock window, ready to print.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The rows: per target (or one `merged(N hosts)` row), then with `--by KEY` the same per
    /// value of that label.
    pub rows: Vec<ReportRow>,
    /// Windows that hold data, in time order; `rows[i]` of a window belongs to `rows[i]`.
    pub windows: Vec<Window>,
    /// The window length that lined the entries up.
    pub interval: Duration,
    /// Labels that every log carries with the same value, in the first log's order.
    pub labels: Vec<(String, String)>,
    /// The logs without counters (format 1): their rows' counters are unknown.
    pub unknown: Vec<String>,
    /// The runs together: workers summed, UDP or ephemeral if any was.
    pub run: RunInfo,
}

/// What goes into one row of a merged window: a target's cell from one log.
#[derive(Default)]
struct CellSum {
    stats: Stats,
    latency_lines: u32,
    counter_lines: u32,
    /// Sum of the durations of its latency lines (or, with none, of its counter lines).
    latency_time: Duration,
    counter_time: Duration,
}

/// A row of the merge: one target or all of them, from all logs or those with one `--by` value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowKey {
    peer: Option<usize>,
    by: Option<String>,
}

/// Add up logs by wall-clock window and target.
///
/// Window `k` holds the lines whose start is `k` whole `interval`s after the earliest start
/// (floor), so hosts whose runs began a fraction of an interval apart share windows. `interval`
/// defaults to the most common histogram duration (the longer on a tie), and is at least the
/// log's 1 ms resolution. A window lasts `interval`, or less when its lines end sooner (the
/// run's last, partial window); a row is active in a window for as long as its longest log
/// there was, and a row with nothing in a window has no cell there. With `merge_peers`, every
/// window's targets are added into one row, named as `connect --merge-results-each-host` names
/// it (`merged(1 hosts)` for one). With `by = Some(KEY)`, each value of the label KEY gets its
/// rows too, after the merged ones; a log without that label is a `Config` error naming it.
///
/// Counters are summed exactly where every log of a cell has them; a cell of a log without
/// counters (or with a window's counter line missing) has them unknown, and so has any sum
/// it is in.
pub fn merge(
    logs: &[Log],
    interval: Option<Duration>,
    merge_peers: bool,
    by: Option<&str>,
) -> Result<Merged> {
    let interval = interval
        .unwrap_or_else(|| most_common_duration(logs.iter().flat_map(|l| &l.entries)))
        .max(LOG_RESOLUTION);
    let log_labels: Vec<Vec<(String, String)>> = logs.iter().map(Log::labels).collect();
    let labels = common_labels(log_labels.iter());
    let by_value = by_values(logs, &log_labels, by)?;
    let run = RunInfo::combined(logs);
    let unknown: Vec<String> = logs
        .iter()
        .filter(|l| l.run.is_none())
        .map(|l| l.name.clone())
        .collect();
    let Some(earliest) = earliest_start(logs) else {
        return Ok(Merged {
            rows: Vec::new(),
            windows: Vec::new(),
            interval,
            labels,
            unknown,
            run,
        });
    };
    let mut buckets = Buckets::new(earliest, interval);
    for (l, log) in logs.iter().enumerate() {
        buckets.add_log(l, log);
    }
    let pairs = buckets.pairs();
    let keys = row_keys(buckets.peers.len(), merge_peers, &by_value, &pairs);
    let plan = RowPlan {
        logs,
        log_labels,
        by,
        by_value,
        peers: buckets.peers,
        pairs,
        keys,
    };
    let rows: Vec<ReportRow> = plan
        .keys
        .iter()
        .map(|key| plan.report_row(key, &labels))
        .collect();
    let windows = buckets
        .windows
        .into_iter()
        .map(|(seq, sums)| plan.window(window_start(earliest, interval, seq), seq, sums, interval))
        .collect();
    Ok(Merged {
        rows,
        windows,
        interval,
        labels,
        unknown,
        run,
    })
}

/// Each log's value of the `--by` label (all `None` without `--by`); a log without that label
/// is a `Config` error naming it.
fn by_values(
    logs: &[Log],
    log_labels: &[Vec<(String, String)>],
    by: Option<&str>,
) -> Result<Vec<Option<String>>> {
    let Some(key) = by else {
        return Ok(vec![None; logs.len()]);
    };
    logs.iter()
        .zip(log_labels)
        .map(|(log, labels)| {
            let value = labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            value.map(Some).ok_or_else(|| {
                Error::Config(format!(
                    "--by {key}: {} has no {key} label (run connect with --label {key}=VALUE)",
                    log.name
                ))
            })
        })
        .collect()
}

impl RunInfo {
    /// The runs of `logs` together: the newest format, workers summed, UDP or ephemeral if
    /// any was.
    fn combined(logs: &[Log]) -> RunInfo {
        let mut run = RunInfo::default();
        for r in logs.iter().filter_map(|l| l.run) {
            run.format = run.format.max(r.format);
            run.workers += r.workers;
            run.udp |= r.udp;
            run.ephemeral |= r.ephemeral;
        }
        run
    }
}

/// The earliest start of any histogram, counter or window line of `logs`.
fn earliest_start(logs: &[Log]) -> Option<SystemTime> {
    let starts = logs.iter().flat_map(|l| {
        let e = l.entries.iter().map(|e| e.start);
        let c = l.counters.iter().map(|c| c.start);
        e.chain(c).chain(l.windows.iter().map(|w| w.start))
    });
    starts.min()
}

/// One merged window being filled: the cells by (log, target), the CPU by log, and the
/// latest end of its histogram lines.
struct WindowSums {
    cells: BTreeMap<(usize, usize), CellSum>,
    cpu: BTreeMap<usize, Duration>,
    end: SystemTime,
}

/// The lines of all logs sorted into windows `interval` long from `earliest`, with the
/// targets numbered in the order they first appear.
struct Buckets {
    earliest: SystemTime,
    interval: Duration,
    peers: Vec<String>,
    windows: BTreeMap<u64, WindowSums>,
}

impl Buckets {
    /// No lines yet.
    fn new(earliest: SystemTime, interval: Duration) -> Buckets {
        Buckets {
            earliest,
            interval,
            peers: Vec::new(),
            windows: BTreeMap::new(),
        }
    }

    /// The number of the target `peer`, numbering it if it is new.
    fn peer_index(&mut self, peer: &str) -> usize {
        match self.peers.iter().position(|p| p == peer) {
            Some(i) => i,
            None => {
                self.peers.push(peer.to_string());
                self.peers.len() - 1
            }
        }
    }

    /// The window a line starting at `start` falls in, opened (ending at `start`) if new.
    fn window(&mut self, start: SystemTime) -> &mut WindowSums {
        let offset = start.duration_since(self.earliest).unwrap_or_default();
        let seq = u64::try_from(offset.as_nanos() / self.interval.as_nanos()).unwrap_or(u64::MAX);
        self.windows.entry(seq).or_insert_with(|| WindowSums {
            cells: BTreeMap::new(),
            cpu: BTreeMap::new(),
            end: start,
        })
    }

    /// Add log number `l`: its histograms and counters into its cells, its CPU by window.
    fn add_log(&mut self, l: usize, log: &Log) {
        for e in &log.entries {
            let p = self.peer_index(&e.tag.peer);
            let window = self.window(e.start);
            let cell = window.cells.entry((l, p)).or_default();
            add_clamped(e.tag.kind.of_stats_mut(&mut cell.stats), &e.hist);
            if e.tag.kind == Kind::Latency {
                cell.latency_lines += 1;
                cell.latency_time += e.duration;
            }
            window.end = window.end.max(e.end());
        }
        for c in &log.counters {
            let p = self.peer_index(&c.peer);
            let cell = self.window(c.start).cells.entry((l, p)).or_default();
            cell.stats.merge(&c.stats);
            cell.counter_lines += 1;
            cell.counter_time += c.duration;
        }
        for w in &log.windows {
            *self.window(w.start).cpu.entry(l).or_default() += w.cpu;
        }
    }

    /// Which (log, target) pairs hold anything.
    fn pairs(&self) -> BTreeSet<(usize, usize)> {
        self.windows
            .values()
            .flat_map(|w| w.cells.keys().copied())
            .collect()
    }
}

/// The rows of a merge: per target (or one for all with `merge_peers`), then the same for
/// each `--by` value in order of first appearance, a per-target row only where that value's
/// logs have the target.
fn row_keys(
    npeers: usize,
    merge_peers: bool,
    by_value: &[Option<String>],
    pairs: &BTreeSet<(usize, usize)>,
) -> Vec<RowKey> {
    let mut keys: Vec<RowKey> = if merge_peers {
        vec![RowKey {
            peer: None,
            by: None,
        }]
    } else {
        (0..npeers)
            .map(|p| RowKey {
                peer: Some(p),
                by: None,
            })
            .collect()
    };
    let mut values: Vec<&String> = Vec::new();
    for v in by_value.iter().flatten() {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    for v in values {
        let has = |p: usize| {
            pairs
                .iter()
                .any(|&(l, q)| q == p && by_value[l].as_ref() == Some(v))
        };
        if merge_peers {
            keys.push(RowKey {
                peer: None,
                by: Some(v.clone()),
            });
        } else {
            keys.extend((0..npeers).filter(|&p| has(p)).map(|p| RowKey {
                peer: Some(p),
                by: Some(v.clone()),
            }));
        }
    }
    keys
}

/// The logs of a merge and the rows they go into: what naming rows and folding each
/// window's cells into them needs.
struct RowPlan<'a> {
    logs: &'a [Log],
    log_labels: Vec<Vec<(String, String)>>,
    /// The `--by` key, if any.
    by: Option<&'a str>,
    /// Each log's value of the `--by` label.
    by_value: Vec<Option<String>>,
    /// The targets, numbered as `RowKey::peer` and the cells number them.
    peers: Vec<String>,
    /// The (log, target) pairs that hold anything.
    pairs: BTreeSet<(usize, usize)>,
    keys: Vec<RowKey>,
}

impl RowPlan<'_> {
    /// Whether log `l`'s target `p` goes into the row `key`.
    fn in_row(&self, key: &RowKey, l: usize, p: usize) -> bool {
        key.peer.is_none_or(|kp| kp == p)
            && key
                .by
                .as_ref()
                .is_none_or(|v| self.by_value[l].as_ref() == Some(v))
    }

    /// A merged row is named as `connect --merge-results-each-host` names it, by the targets
    /// it holds: a `--by` row's are those of its logs, as that host's own run named it.
    fn merged_name(&self, key: &RowKey) -> String {
        let n = (0..self.peers.len())
            .filter(|&p| {
                self.pairs
                    .iter()
                    .any(|&(l, q)| q == p && self.in_row(key, l, q))
            })
            .count();
        format!("merged({n} hosts)")
    }

    /// The row `key`: its name, labels (`labels`, or those common to its `--by` value's
    /// logs), `--by` pair and ramp.
    fn report_row(&self, key: &RowKey, labels: &[(String, String)]) -> ReportRow {
        let peer = key
            .peer
            .map_or_else(|| self.merged_name(key), |p| self.peers[p].clone());
        let ramp = row_ramp(self.logs, &self.peers, &self.pairs, |l, p| {
            self.in_row(key, l, p)
        });
        let (labels, by) = match (self.by, &key.by) {
            (Some(k), Some(v)) => {
                let of_value = (0..self.logs.len())
                    .filter(|&l| self.by_value[l].as_ref() == Some(v))
                    .map(|l| &self.log_labels[l]);
                (common_labels(of_value), Some((k.to_string(), v.clone())))
            }
            _ => (labels.to_vec(), None),
        };
        ReportRow {
            peer,
            labels,
            by,
            ramp,
            target_failures: Vec::new(),
        }
    }

    /// The window `seq` starting at `start`: each row's cell folded from the cells of
    /// `sums`, and the CPU of its logs when every one logged it.
    fn window(&self, start: SystemTime, seq: u64, sums: WindowSums, interval: Duration) -> Window {
        let length = sums
            .end
            .duration_since(start)
            .unwrap_or_default()
            .min(interval);
        let cells: Vec<LogCell> = sums
            .cells
            .into_iter()
            .map(|((l, p), c)| {
                let (stats, time) = c.finish(self.logs[l].run.is_some(), interval);
                ((l, p), stats, time)
            })
            .collect();
        let rows = self
            .keys
            .iter()
            .map(|key| self.row_cell(key, &cells, &sums.cpu))
            .collect();
        let cpu_known = cells
            .iter()
            .all(|((l, _), _, _)| self.logs[*l].run.is_some());
        Window {
            seq,
            start,
            length,
            rows,
            cpu: cpu_known.then(|| sums.cpu.values().sum()),
        }
    }

    /// The cell of row `key` in a window: its cells' stats added up, active as long as the
    /// longest of them, with the CPU of the logs they come from; `None` if it has none.
    fn row_cell(
        &self,
        key: &RowKey,
        cells: &[LogCell],
        cpu: &BTreeMap<usize, Duration>,
    ) -> Option<Cell> {
        let mut mine = cells
            .iter()
            .filter(|((l, p), _, _)| self.in_row(key, *l, *p));
        let first = mine.next()?;
        let mut stats = first.1.clone();
        let mut length = first.2;
        let mut logs_in = vec![first.0 .0];
        for ((l, _), s, t) in mine {
            stats.merge(s);
            length = length.max(*t);
            if !logs_in.contains(l) {
                logs_in.push(*l);
            }
        }
        let cpu = logs_in.iter().filter_map(|l| cpu.get(l)).sum();
        Some(Cell { stats, cpu, length })
    }
}

/// A finished cell of a window: its (log, target), its stats, how long it was active.
type LogCell = ((usize, usize), Stats, Duration);

impl CellSum {
    /// The cell's stats (histograms only when its counters are unknown: `counters_logged`
    /// false, or not one counter line per latency line) and how long it was active, from its
    /// latency lines or else its counter lines, at most `interval`.
    fn finish(self, counters_logged: bool, interval: Duration) -> (Stats, Duration) {
        let known = counters_logged && self.counter_lines == self.latency_lines;
        let time = if self.latency_lines > 0 {
            self.latency_time
        } else {
            self.counter_time
        };
        let stats = if known {
            self.stats
        } else {
            histograms_only(self.stats)
        };
        (stats, time.min(interval))
    }
}

/// The ramp of a row: the ramps of its (log, target) pairs added up, taking the longest time
/// (hosts ramp at once). `None` when no log of the row logged one, or when a log of the row
/// has no counters (format 1): a sum of some hosts' ramps would pass for all of theirs.
/// `pairs` are the (log, target) pairs that hold anything.
fn row_ramp(
    logs: &[Log],
    peers: &[String],
    pairs: &BTreeSet<(usize, usize)>,
    in_row: impl Fn(usize, usize) -> bool,
) -> Option<report::Ramp> {
    let mut took = Duration::ZERO;
    let mut stats = Stats::new();
    let mut any = false;
    for (l, log) in logs.iter().enumerate() {
        let mine = |peer: &str| {
            peers
                .iter()
                .position(|p| p == peer)
                .is_some_and(|p| in_row(l, p))
        };
        let in_it = pairs
            .range((l, 0)..=(l, usize::MAX))
            .any(|&(_, p)| in_row(l, p));
        if !in_it {
            continue;
        }
        log.run?;
        for (peer, t, s) in &log.ramps {
            if mine(peer) {
                any = true;
                took = took.max(*t);
                stats.merge(s);
            }
        }
    }
    any.then(|| report::Ramp {
        took,
        stats: vec![stats],
    })
}

/// Stats with the histograms of `s` and every counter unknown: `completed` is the latency
/// count, the rest is not printed.
fn histograms_only(s: Stats) -> Stats {
    Stats {
        completed: s.latency.len(),
        latency: s.latency,
        service: s.service,
        connect: s.connect,
        counters_unknown: true,
        ..Stats::new()
    }
}

/// Refuse logs given twice: the same file, the same contents, or two logs with the same
/// labels (`host=a` twice) whose runs overlap in time. The error names both files.
pub fn check_duplicates(logs: &[Log]) -> Result<()> {
    let hint = "(--allow-duplicates merges them anyway)";
    let labels: Vec<Vec<(String, String)>> = logs.iter().map(Log::labels).collect();
    let spans: Vec<Option<(SystemTime, SystemTime)>> = logs.iter().map(Log::span).collect();
    for (j, b) in logs.iter().enumerate() {
        for (i, a) in logs[..j].iter().enumerate() {
            if a.path.is_some() && a.path == b.path {
                return Err(Error::Config(format!(
                    "{} and {} are the same file: its counts would be added twice {hint}",
                    a.name, b.name
                )));
            }
            if a.digest == b.digest {
                return Err(Error::Config(format!(
                    "{} and {} hold the same log: its counts would be added twice {hint}",
                    a.name, b.name
                )));
            }
            if labels[i].is_empty() || labels[i] != labels[j] {
                continue;
            }
            if let (Some((s1, e1)), Some((s2, e2))) = (spans[i], spans[j]) {
                if s1 < e2 && s2 < e1 {
                    let shown: Vec<String> =
                        labels[i].iter().map(|(k, v)| format!("{k}={v}")).collect();
                    return Err(Error::Config(format!(
                        "{} and {} are both labelled {} over overlapping times: the same \
                         host's log twice? {hint}",
                        a.name,
                        b.name,
                        shown.join(",")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `earliest + seq * interval`, saturating where the arithmetic would overflow.
fn window_start(earliest: SystemTime, interval: Duration, seq: u64) -> SystemTime {
    let offset = interval
        .as_nanos()
        .saturating_mul(u128::from(seq))
        .min(u128::from(u64::MAX));
    earliest
        .checked_add(Duration::from_nanos(offset as u64))
        .unwrap_or(earliest)
}

/// Add `h` into `acc`, a histogram of `Stats`' bounds. `read_log` rejects values above `MAX_NS`,
/// so only hand-made entries can exceed `acc`'s range: their largest values are clamped to it.
fn add_clamped(acc: &mut Histogram<u64>, h: &Histogram<u64>) {
    if acc.add(h).is_err() {
        for v in h.iter_recorded() {
            acc.saturating_record_n(v.value_iterated_to().min(MAX_NS), v.count_at_value());
        }
    }
}

fn most_common_duration<'a>(entries: impl Iterator<Item = &'a Entry>) -> Duration {
    let mut counts: BTreeMap<Duration, usize> = BTreeMap::new();
    for e in entries {
        *counts.entry(e.duration).or_default() += 1;
    }
    // max_by_key keeps the last of equal counts, and the map iterates durations in ascending
    // order: a tie goes to the longer duration.
    counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(d, _)| d)
        .unwrap_or(Duration::from_secs(1))
}

/// The labels all of `sets` carry with the same value, in the first set's order.
fn common_labels<'a>(
    mut sets: impl Iterator<Item = &'a Vec<(String, String)>> + Clone,
) -> Vec<(String, String)> {
    let Some(first) = sets.clone().next() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|l| sets.all(|s| s.contains(l)))
        .cloned()
        .collect()
}

/// Print merged windows and their totals as `connect` prints a run, with the output options of
/// `base` (`jsonlines`, `show_only_results`, `extra_percentiles`, `latency_distribution`):
/// connect-time columns when a run was ephemeral or any window holds connect samples, loss
/// columns when a run was UDP. Tables end with a note naming the logs whose counters are
/// unknown, if any.
pub fn print_merged<W: Write>(merged: &Merged, base: &ReportConfig, mut out: W) -> Summary {
    let has_connect = merged
        .windows
        .iter()
        .any(|w| w.rows.iter().flatten().any(|c| !c.stats.connect.is_empty()));
    // The table's peers (the rows' names) and "nothing merged" are print_report's to set.
    let cfg = ReportConfig {
        workers: merged.run.workers,
        udp: base.udp || merged.run.udp,
        ephemeral: base.ephemeral || merged.run.ephemeral || has_connect,
        labels: merged.labels.clone(),
        ..base.clone()
    };
    let summary = report::print_report(&cfg, &merged.rows, &merged.windows, &mut out);
    if !cfg.jsonlines && !merged.unknown.is_empty() {
        // Like the report itself, go quiet if the reader has gone away (`| head`).
        let _ = writeln!(
            out,
            "# merged from interval logs: {} carry histograms only (written before connperf \
             log format {LOG_FORMAT}), so bytes, errors, loss, late starts and generator CPU \
             of the rows they are in are unknown (-)",
            merged.unknown.join(", ")
        );
    }
    let _ = out.flush();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    const PEERS: [&str; 2] = ["127.0.0.1:9100", "[::1]:9200"];
    const SECOND: Duration = Duration::from_secs(1);

    fn new_hist() -> Histogram<u64> {
        Stats::new().latency
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_736_245_800_000)
    }

    fn labels(host: &str) -> Vec<(String, String)> {
        vec![
            ("host".to_string(), host.to_string()),
            ("run".to_string(), "r1".to_string()),
        ]
    }

    /// A file in the temp dir, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("connperf-histlog-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Deterministic, log-uniform samples over 1 µs .. 100 ms.
    fn samples(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (1000.0 * 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 5.0)) as u64
            })
            .collect()
    }

    /// What host `h` measured for target `p` in window `w`: latency, service and connect
    /// samples, with different counts everywhere.
    fn measured(h: usize, w: usize, p: usize) -> Stats {
        let mut s = Stats::new();
        let seed = (h * 100 + w * 10 + p) as u64;
        for x in samples(seed, 500 + 137 * h + 71 * w + 29 * p) {
            s.record(x + 5_000, x, 64);
        }
        for x in samples(seed + 7, 50 + 13 * h) {
            s.record_connect(x / 10);
        }
        // Counters the histograms do not hold, different everywhere too.
        for _ in 0..(3 + h + w + p) {
            s.error(Failure::Refused);
        }
        s.error(Failure::Timeout);
        s.conn_error(Failure::Reset);
        for x in samples(seed + 11, 20 + h) {
            s.record_start(x);
        }
        s.lost += (h + p) as u64;
        s.unsent(Unsent::RunEnded, (w + 1) as u64);
        s.unsent(Unsent::InFlightLimit, h as u64);
        s
    }

    /// Generator CPU of host `h` in window `w`.
    fn cpu(h: usize, w: usize) -> Duration {
        Duration::from_micros(1_000 * (h as u64 + 1) + 7 * w as u64)
    }

    /// Host `h`'s ramp: connect times per target, and for host c one refused attempt.
    fn ramp_of(h: usize) -> report::Ramp {
        let stats = (0..2)
            .map(|p| {
                let mut s = Stats::new();
                for x in samples((h * 10 + p + 500) as u64, 4 + h) {
                    s.record_connect(x);
                }
                if h == 2 {
                    s.conn_error(Failure::Refused);
                }
                s
            })
            .collect();
        report::Ramp {
            took: Duration::from_millis(5 + h as u64),
            stats,
        }
    }

    fn ramp() -> report::Ramp {
        ramp_of(0)
    }

    fn run_info() -> RunInfo {
        RunInfo {
            format: LOG_FORMAT,
            workers: 2,
            udp: false,
            ephemeral: true,
        }
    }

    /// Host `h`'s run: starts `h * 350 ms` after `t0`, three 1 s windows.
    fn host_log(h: usize) -> Vec<u8> {
        let start = t0() + Duration::from_millis(350 * h as u64);
        let name = ["a", "b", "c"][h];
        let mut w = LogWriter::new(Vec::new(), start, &labels(name), run_info()).unwrap();
        let peers: Vec<String> = PEERS.iter().map(|p| p.to_string()).collect();
        w.write_ramp(&peers, &ramp_of(h)).unwrap();
        for win in 0..3 {
            let stats: Vec<Stats> = (0..2).map(|p| measured(h, win, p)).collect();
            let at = start + SECOND * win as u32;
            w.write_stats(&peers, at, SECOND, cpu(h, win), &stats)
                .unwrap();
        }
        w.into_inner()
    }

    fn union(hosts: &[usize], windows: &[usize], peers: &[usize], kind: Kind) -> Histogram<u64> {
        let mut u = new_hist();
        for &h in hosts {
            for &w in windows {
                for &p in peers {
                    u.add(kind.of_stats(&measured(h, w, p))).unwrap();
                }
            }
        }
        u
    }

    /// Every counter equal (and known), the send-lag histogram too.
    fn assert_same_counters(got: &Stats, want: &Stats, what: &str) {
        assert!(!got.counters_unknown, "{what}: counters unknown");
        assert_eq!(got.completed, want.completed, "{what}: completed");
        assert_eq!(got.bytes, want.bytes, "{what}: bytes");
        assert_eq!(got.errors, want.errors, "{what}: errors");
        assert_eq!(got.conn_errors, want.conn_errors, "{what}: conn_errors");
        assert_eq!(got.late_starts, want.late_starts, "{what}: late_starts");
        assert_eq!(got.max_behind_ns, want.max_behind_ns, "{what}: max_behind");
        assert_eq!(
            (got.lost, got.late, got.duplicate, got.reordered, got.stray),
            (
                want.lost,
                want.late,
                want.duplicate,
                want.reordered,
                want.stray
            ),
            "{what}: udp"
        );
        assert_eq!((got.flows, got.new_flows), (want.flows, want.new_flows));
        assert_eq!(got.not_started, want.not_started, "{what}: not_started");
        assert_eq!(got.not_started_by, want.not_started_by, "{what}: by cause");
        assert_eq!(got.clamped, want.clamped, "{what}: clamped");
        assert_same(&got.send_lag, &want.send_lag, &format!("{what}: send lag"));
    }

    /// Same samples: equal bucket by bucket, and so every statistic the report prints.
    fn assert_same(got: &Histogram<u64>, want: &Histogram<u64>, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: count");
        assert_eq!(got.min(), want.min(), "{what}: min");
        assert_eq!(got.max(), want.max(), "{what}: max");
        assert_eq!(got.mean(), want.mean(), "{what}: mean");
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                got.value_at_quantile(q),
                want.value_at_quantile(q),
                "{what}: quantile {q}"
            );
        }
        assert!(got == want, "{what}: buckets differ");
    }

    /// The three hosts' logs written to files named after `test` (tests run in parallel),
    /// and read back.
    fn three_host_logs(test: &str) -> (Vec<TempFile>, Vec<Log>) {
        let files: Vec<TempFile> = (0..3)
            .map(|h| TempFile::new(&format!("{test}-host{h}.hlog"), &host_log(h)))
            .collect();
        let logs = files.iter().map(|f| read_log(&f.0).unwrap()).collect();
        (files, logs)
    }

    /// Row names of a merge.
    fn names(m: &Merged) -> Vec<String> {
        m.rows.iter().map(ReportRow::table_name).collect()
    }

    /// Row `i` of window `win`, which must be there.
    fn cell(win: &Window, i: usize) -> &Stats {
        &win.rows[i].as_ref().expect("a row in this window").stats
    }

    #[test]
    fn merging_three_hosts_gives_the_percentiles_of_the_union() {
        let (_files, logs) = three_host_logs("union");
        // 3 hosts × 3 windows × 2 targets × 3 kinds.
        assert_eq!(logs.iter().map(|l| l.entries.len()).sum::<usize>(), 54);
        let m = merge(&logs, None, false, None).unwrap();
        assert_eq!(m.interval, SECOND);
        assert_eq!(names(&m), PEERS);
        assert_eq!(m.labels, [("run".to_string(), "r1".to_string())]);
        assert_eq!(m.windows.len(), 3);
        for (w, win) in m.windows.iter().enumerate() {
            assert_eq!(win.seq, w as u64);
            assert_eq!(win.start, t0() + SECOND * w as u32);
            assert_eq!(win.length, SECOND);
            for p in 0..2 {
                for kind in Kind::ALL {
                    let want = union(&[0, 1, 2], &[w], &[p], kind);
                    let what = format!("window {w} peer {p} {}", kind.name());
                    assert_same(kind.of_stats(cell(win, p)), &want, &what);
                }
                let s = cell(win, p);
                assert_eq!(s.completed, s.latency.len());
                let mut sum = Stats::new();
                for h in 0..3 {
                    sum.merge(&measured(h, w, p));
                }
                assert_same_counters(s, &sum, &format!("window {w} peer {p}"));
                let c = win.rows[p].as_ref().unwrap();
                assert_eq!(c.cpu, cpu(0, w) + cpu(1, w) + cpu(2, w));
                assert_eq!(c.length, SECOND);
            }
            assert_eq!(win.cpu, Some(cpu(0, w) + cpu(1, w) + cpu(2, w)));
        }
        assert_eq!(m.run.workers, 6);
        assert!(m.unknown.is_empty());

        // One target merged is still the merged row, as `connect` names it.
        let (_files, mut logs) = three_host_logs("union-merged-one");
        for l in &mut logs {
            l.entries.retain(|e| e.tag.peer == PEERS[1]);
            l.counters.retain(|c| c.peer == PEERS[1]);
        }
        let m = merge(&logs, None, true, None).unwrap();
        assert_eq!(names(&m), ["merged(1 hosts)"]);
        for (w, win) in m.windows.iter().enumerate() {
            assert_eq!(win.rows.len(), 1);
            let want = union(&[0, 1, 2], &[w], &[1], Kind::Latency);
            assert_same(&cell(win, 0).latency, &want, &format!("merged window {w}"));
        }

        let (_files, logs) = three_host_logs("union-merged");
        let m = merge(&logs, None, true, None).unwrap();
        assert_eq!(names(&m), ["merged(2 hosts)"]);
        for (w, win) in m.windows.iter().enumerate() {
            assert_eq!(win.rows.len(), 1);
            let want = union(&[0, 1, 2], &[w], &[0, 1], Kind::Latency);
            assert_same(&cell(win, 0).latency, &want, &format!("merged window {w}"));
            // The host's CPU once, not once per target.
            assert_eq!(
                win.rows[0].as_ref().unwrap().cpu,
                cpu(0, w) + cpu(1, w) + cpu(2, w)
            );
        }
    }

    #[test]
    fn printed_totals_are_the_union_percentiles() {
        let (_files, logs) = three_host_logs("printed");
        let m = merge(&logs, None, false, None).unwrap();
        let cfg = ReportConfig {
            jsonlines: true,
            extra_percentiles: vec![99.9],
            ..Default::default()
        };
        let mut buf = Vec::new();
        let summary = print_merged(&m, &cfg, &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // 3 windows × 2 targets, then 2 totals.
        assert_eq!(rows.len(), 8, "{text}");
        assert_eq!(rows[0]["kind"], "interval");
        assert_eq!(rows[0]["timestamp"], "2025-01-07T10:30:01.000Z");
        assert_eq!(rows[0]["rate_per_sec"].as_f64().unwrap(), {
            let n = union(&[0, 1, 2], &[0], &[0], Kind::Latency).len() as f64;
            (n * 100.0).round() / 100.0
        });
        for p in 0..2 {
            let total = &rows[6 + p];
            assert_eq!(total["kind"], "total");
            assert_eq!(total["peer"], PEERS[p]);
            let want = union(&[0, 1, 2], &[0, 1, 2], &[p], Kind::Latency);
            assert_eq!(total["count"].as_u64().unwrap(), want.len());
            let ns = &total["latency_ns"];
            for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
                assert_eq!(
                    ns[key].as_u64().unwrap(),
                    want.value_at_quantile(q),
                    "{key}"
                );
            }
            assert_eq!(ns["min"].as_u64().unwrap(), want.min());
            assert_eq!(ns["max"].as_u64().unwrap(), want.max());
            let connect = union(&[0, 1, 2], &[0, 1, 2], &[p], Kind::Connect);
            assert_eq!(total["connect_count"].as_u64().unwrap(), connect.len());
            let service = union(&[0, 1, 2], &[0, 1, 2], &[p], Kind::Service);
            assert_eq!(
                total["service_99p_us"].as_u64().unwrap(),
                service.value_at_quantile(0.99) / 1000
            );
            let mut sum = Stats::new();
            for h in 0..3 {
                for w in 0..3 {
                    sum.merge(&measured(h, w, p));
                }
            }
            assert_eq!(total["error_count"].as_u64().unwrap(), sum.error_count());
            assert_eq!(total["errors"]["refused"].as_u64().unwrap(), sum.errors[0]);
            assert_eq!(total["bytes"].as_u64().unwrap(), sum.bytes);
            assert_eq!(total["lost"].as_u64().unwrap(), sum.lost);
            assert_eq!(total["not_started"].as_u64().unwrap(), sum.not_started);
            assert_eq!(total["late_starts"].as_u64().unwrap(), sum.late_starts);
            let all_cpu: Duration = (0..3).flat_map(|h| (0..3).map(move |w| cpu(h, w))).sum();
            assert_eq!(
                total["generator_cpu_sec"].as_f64().unwrap(),
                all_cpu.as_secs_f64()
            );
        }
        assert_eq!(summary.elapsed, SECOND * 3);
        assert_eq!(summary.totals.len(), 2);

        let table_cfg = ReportConfig::default();
        let mut buf = Vec::new();
        print_merged(&m, &table_cfg, &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("PEER "), "{text}");
        assert!(lines[0].contains("CONN_99p"), "{text}");
        assert!(lines[1].starts_with("127.0.0.1:9100 "), "{text}");
        assert_eq!(lines[7], "--- A result during total execution time ---");
        assert!(
            !text.contains("# merged from interval logs"),
            "every counter is known: {text}"
        );
        assert!(text.contains("# 127.0.0.1:9100 errors: refused="), "{text}");
        assert!(text.contains("# generator cpu: "), "{text}");
    }

    #[test]
    fn log_round_trips_through_the_crate_reader() {
        let start = t0() + Duration::from_nanos(123_456_789);
        let mut w = LogWriter::new(Vec::new(), start, &labels("a"), run_info()).unwrap();
        let mut h = new_hist();
        for v in [1_000, 2_500, 40_000, 1_234_567] {
            h.record(v).unwrap();
        }
        let tag = w.tag(Kind::Service, PEERS[1]);
        w.write(&tag, start + Duration::from_millis(1500), SECOND, &h)
            .unwrap();
        w.write(
            &Tag::new(Kind::Connect, PEERS[0], &[]),
            start + Duration::from_millis(2500),
            Duration::from_millis(250),
            &new_hist(),
        )
        .unwrap();
        let log = w.into_inner();
        let text = String::from_utf8(log.clone()).unwrap();
        assert_eq!(text.matches("#[MaxValueDivisor: 1000000.000]").count(), 1);
        assert!(
            text.contains("\n#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        assert!(text.contains("\n#labels: host=a run=r1\n"), "{text}");
        assert!(text.contains(LEGEND), "{text}");

        let base = Duration::from_millis(1_736_245_800_123);
        let mut got = IntervalLogIterator::new(&log).map(|e| e.unwrap());
        assert_eq!(got.next(), Some(LogEntry::StartTime(base)));
        assert_eq!(got.next(), Some(LogEntry::BaseTime(base)));
        let Some(LogEntry::Interval(first)) = got.next() else {
            panic!("want an interval: {text}")
        };
        assert_eq!(
            first.tag().unwrap().as_str(),
            "service;peer=[::1]:9200;host=a;run=r1"
        );
        // The start was cut to whole ms for BaseTime: 1.5 s after it, to the ms.
        assert_eq!(first.start_timestamp(), Duration::from_millis(1500));
        assert_eq!(first.duration(), SECOND);
        assert_eq!(first.max(), 1.235);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(first.encoded_histogram())
            .unwrap();
        let back: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(back.len(), 4);
        assert!(back == h);
        let Some(LogEntry::Interval(second)) = got.next() else {
            panic!("want a second interval: {text}")
        };
        assert_eq!(
            second.tag().unwrap().as_str(),
            "connect;peer=127.0.0.1:9100"
        );
        assert_eq!(second.start_timestamp(), Duration::from_millis(2500));
        assert_eq!(second.duration(), Duration::from_millis(250));
        assert_eq!(got.next(), None);

        // And through our own reader, with absolute times.
        let entries = parse_log(&log, "mem").unwrap().entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].tag,
            Tag::new(Kind::Service, PEERS[1], &labels("a"))
        );
        assert_eq!(
            entries[0].start,
            UNIX_EPOCH + base + Duration::from_millis(1500)
        );
        assert!(entries[0].hist == h);
        assert_eq!(entries[1].hist.len(), 0);
    }

    #[test]
    fn hdrhistogram_readers_skip_the_counter_lines() {
        let log = host_log(1);
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(
            text.contains("\n#connperf-run {\"format\":2,\"workers\":2,"),
            "the header says the format: {text}"
        );
        assert_eq!(text.matches("\n#connperf-counters {").count(), 3 * 2);
        assert_eq!(text.matches("\n#connperf-window {").count(), 3);
        // The crate's reader: every histogram, nothing else, no error.
        let mut intervals = 0;
        for e in IntervalLogIterator::new(&log) {
            match e.unwrap() {
                LogEntry::Interval(h) => {
                    assert!(h.tag().is_some());
                    intervals += 1;
                }
                LogEntry::StartTime(_) | LogEntry::BaseTime(_) => {}
            }
        }
        assert_eq!(intervals, 3 * 2 * 3);
        // Java's HistogramLogReader skips every line that starts with '#' but its StartTime
        // and BaseTime ones, and the legend.
        for line in text.lines().filter(|l| l.contains("connperf-")) {
            assert!(line.starts_with('#') && !line.starts_with("#["), "{line}");
        }
        // Our reader: the histograms, and the counters back as written.
        let read = parse_log(&log, "mem").unwrap();
        assert_eq!(read.entries.len(), 18);
        assert_eq!(read.run, Some(run_info()));
        assert_eq!((read.counters.len(), read.windows.len()), (6, 3));
        for (i, c) in read.counters.iter().enumerate() {
            let (w, p) = (i / 2, i % 2);
            assert_eq!(c.peer, PEERS[p]);
            let start = t0() + Duration::from_millis(350) + SECOND * w as u32;
            assert_eq!((c.start, c.duration), (start, SECOND));
            assert_same_counters(&c.stats, &measured(1, w, p), &format!("{w} {p}"));
        }
        assert_eq!(read.windows[2].cpu, cpu(1, 2));
        assert_eq!(read.ramps.len(), 2);
        for (p, (peer, took, s)) in read.ramps.iter().enumerate() {
            assert_eq!((peer.as_str(), *took), (PEERS[p], ramp_of(1).took));
            assert_same(&s.connect, &ramp_of(1).stats[p].connect, "ramp");
        }
    }

    /// `host_log(h)` as a log written before counters were logged: histogram lines only.
    fn format1_log(h: usize) -> Vec<u8> {
        let text = String::from_utf8(host_log(h)).unwrap();
        let kept: String = text
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("#connperf-"))
            .collect();
        kept.into_bytes()
    }

    #[test]
    fn logs_without_counters_merge_with_counters_unknown() {
        let old = parse_log(&format1_log(0), "old.hlog").unwrap();
        assert!(old.run.is_none() && old.counters.is_empty());
        let new = parse_log(&host_log(1), "new.hlog").unwrap();
        let m = merge(&[old.clone(), new.clone()], None, false, Some("host")).unwrap();
        assert_eq!(m.unknown, ["old.hlog"]);
        assert_eq!(
            names(&m),
            [
                PEERS[0].to_string(),
                PEERS[1].to_string(),
                format!("{}{{host=a}}", PEERS[0]),
                format!("{}{{host=a}}", PEERS[1]),
                format!("{}{{host=b}}", PEERS[0]),
                format!("{}{{host=b}}", PEERS[1]),
            ]
        );
        let win = &m.windows[1];
        // The sum with an unknown is unknown; the count still comes from the histograms.
        assert!(cell(win, 0).counters_unknown);
        let both = union(&[0, 1], &[1], &[0], Kind::Latency);
        assert_eq!(cell(win, 0).completed, both.len());
        assert!(cell(win, 2).counters_unknown, "host a: format 1");
        assert_same_counters(cell(win, 4), &measured(1, 1, 0), "host b: format 2");
        assert_eq!(win.cpu, None);

        let json = ReportConfig {
            jsonlines: true,
            ..Default::default()
        };
        let mut buf = Vec::new();
        print_merged(&m, &json, &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let totals: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["kind"] == "total")
            .collect();
        assert_eq!(totals.len(), 6, "{text}");
        for key in [
            "bytes",
            "error_count",
            "errors",
            "connection_errors",
            "late_starts",
            "max_behind_us",
            "not_started",
            "not_started_by",
            "lost",
            "clamped",
            "generator_cpu_sec",
            "send_lag_99p_us",
        ] {
            for r in [&totals[0], &totals[2]] {
                assert!(r[key].is_null(), "{key} unknown, not 0: {r}");
            }
            assert!(
                !totals[4][key].is_null(),
                "{key} known for host b: {}",
                totals[4]
            );
        }
        assert_eq!(totals[0]["count"].as_u64().unwrap(), {
            union(&[0, 1], &[0, 1, 2], &[0], Kind::Latency).len()
        });
        assert_eq!(totals[2]["labels"]["host"], "a");
        assert_eq!(totals[4]["labels"]["host"], "b");
        assert_eq!(totals[4]["labels"]["run"], "r1");
        assert!(totals[0]["labels"].get("host").is_none(), "{}", totals[0]);

        let mut buf = Vec::new();
        print_merged(&m, &ReportConfig::default(), &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let total_lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("---"))
            .skip(1)
            .take(6)
            .collect();
        for (i, l) in total_lines.iter().enumerate() {
            let errors = l.split_whitespace().last().unwrap();
            if i < 4 {
                assert_eq!(errors, "-", "unknown, not 0: {l}\n{text}");
            } else {
                assert!(errors.parse::<u64>().unwrap() > 0, "{l}");
            }
        }
        assert!(
            text.contains("# merged from interval logs: old.hlog carry histograms only"),
            "{text}"
        );
        assert!(!text.contains("# generator cpu"), "unknown: {text}");

        // A format 2 log missing a window's counter line: that window's counters are unknown.
        let mut cut = new.clone();
        cut.counters.remove(2);
        let m = merge(&[cut], None, false, None).unwrap();
        assert!(!cell(&m.windows[0], 0).counters_unknown);
        assert!(cell(&m.windows[1], 0).counters_unknown);
        assert!(!cell(&m.windows[1], 1).counters_unknown);
    }

    #[test]
    fn by_label_gives_each_hosts_own_sums() {
        let (_files, logs) = three_host_logs("by");
        let m = merge(&logs, None, true, Some("host")).unwrap();
        assert_eq!(
            names(&m),
            [
                "merged(2 hosts)",
                "merged(2 hosts){host=a}",
                "merged(2 hosts){host=b}",
                "merged(2 hosts){host=c}"
            ]
        );
        for (w, win) in m.windows.iter().enumerate() {
            for h in 0..3 {
                let mut want = measured(h, w, 0);
                want.merge(&measured(h, w, 1));
                assert_same_counters(cell(win, 1 + h), &want, &format!("host {h} window {w}"));
                assert_eq!(win.rows[1 + h].as_ref().unwrap().cpu, cpu(h, w));
            }
        }
        assert_eq!(
            m.rows[2].labels,
            [
                ("host".to_string(), "b".to_string()),
                ("run".to_string(), "r1".to_string())
            ]
        );
        assert_eq!(m.rows[0].labels, [("run".to_string(), "r1".to_string())]);
        // Each host's ramp is its own; the merged one took as long as the longest.
        for h in 0..3 {
            let r = m.rows[1 + h].ramp.as_ref().unwrap();
            assert_eq!(r.took, ramp_of(h).took);
            let mut want = ramp_of(h).stats[0].clone();
            want.merge(&ramp_of(h).stats[1]);
            assert_same(&r.stats[0].connect, &want.connect, "host ramp");
            assert_eq!(r.stats[0].conn_errors, want.conn_errors);
        }
        let all = m.rows[0].ramp.as_ref().unwrap();
        assert_eq!(all.took, ramp_of(2).took);
        assert_eq!(
            all.stats[0].conn_errors[0], 2,
            "host c's two refused attempts"
        );

        let err = merge(&logs, None, false, Some("zone")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with("--by zone: ") && err.to_string().contains("host0"),
            "{err}"
        );
    }

    #[test]
    fn the_same_log_twice_is_refused() {
        let (files, logs) = three_host_logs("dup");
        check_duplicates(&logs).unwrap();
        let twice = [logs[0].clone(), logs[1].clone(), logs[0].clone()];
        let err = check_duplicates(&twice).unwrap_err().to_string();
        assert!(err.contains("the same file"), "{err}");
        assert_eq!(err.matches(&logs[0].name).count(), 2, "{err}");

        // The same contents under another name.
        let copy = TempFile::new("dup-copy.hlog", &host_log(0));
        let copied = read_log(&copy.0).unwrap();
        let err = check_duplicates(&[logs[0].clone(), copied])
            .unwrap_err()
            .to_string();
        assert!(err.contains("hold the same log"), "{err}");
        assert!(err.contains("dup-copy.hlog"), "{err}");

        // Another log of host a over the same time: different contents, same labels.
        let mut again = parse_log(&format1_log(0), "a-again.hlog").unwrap();
        let err = check_duplicates(&[logs[0].clone(), again.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("both labelled host=a,run=r1 over overlapping times"),
            "{err}"
        );
        // A later run of host a is not the same host's log twice.
        for e in &mut again.entries {
            e.start += SECOND * 10;
        }
        check_duplicates(&[logs[0].clone(), again]).unwrap();
        drop(files);
    }

    /// A log file that fails every write while `fail` is set.
    #[derive(Clone, Default)]
    struct FlakyFile {
        bytes: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        fail: std::rc::Rc<std::cell::Cell<bool>>,
    }

    impl Write for FlakyFile {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.fail.get() {
                return Err(io::Error::other("disk full"));
            }
            self.bytes.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn window_log_times_windows_from_the_origin_and_stops_at_the_first_error() {
        let file = FlakyFile::default();
        let peers: Vec<String> = PEERS.iter().map(|p| p.to_string()).collect();
        let origin = t0() + Duration::from_millis(250);
        let writer = LogWriter::new(file.clone(), t0(), &[], run_info()).unwrap();
        let mut log = WindowLog::new(writer, peers, 2 * SECOND);
        let stats = [measured(0, 0, 0), measured(0, 0, 1)];
        log.on_window(origin, 0, 2 * SECOND, SECOND, &stats, || Some(ramp()));
        log.on_window(origin, 3, SECOND / 2, SECOND, &stats, || {
            panic!("the ramp is logged once")
        });
        let entries = parse_log(&file.bytes.borrow(), "mem").unwrap().entries;
        let latency: Vec<(SystemTime, Duration)> = entries
            .iter()
            .filter(|e| e.tag.kind == Kind::Latency && e.tag.peer == PEERS[1])
            .map(|e| (e.start, e.duration))
            .collect();
        assert_eq!(
            latency,
            [(origin, 2 * SECOND), (origin + 6 * SECOND, SECOND / 2)]
        );
        assert_eq!(
            entries.len(),
            2 * 2 * 3,
            "latency, service, connect per peer"
        );

        file.fail.set(true);
        log.on_window(origin, 4, SECOND, SECOND, &stats, || {
            panic!("the ramp is logged once")
        });
        file.fail.set(false);
        let len = file.bytes.borrow().len();
        log.on_window(origin, 5, SECOND, SECOND, &stats, || {
            panic!("the ramp is logged once")
        });
        assert_eq!(
            file.bytes.borrow().len(),
            len,
            "a stopped log writes nothing"
        );
        assert!(log.into_inner().is_none());
    }

    #[test]
    fn write_stats_skips_empty_connect_histograms() {
        let mut w = LogWriter::new(Vec::new(), t0(), &[], run_info()).unwrap();
        let mut s = Stats::new();
        s.record(1000, 900, 10);
        w.write_stats(&[PEERS[0].to_string()], t0(), SECOND, SECOND, &[s])
            .unwrap();
        let entries = parse_log(&w.into_inner(), "mem").unwrap().entries;
        let kinds: Vec<Kind> = entries.iter().map(|e| e.tag.kind).collect();
        assert_eq!(kinds, [Kind::Latency, Kind::Service]);
    }

    fn entry(peer: &str, host: &str, start_ms: u64, duration_ms: u64, v: u64) -> Entry {
        let mut hist = new_hist();
        hist.record(v).unwrap();
        Entry {
            tag: Tag::new(Kind::Latency, peer, &labels(host)),
            start: t0() + Duration::from_millis(start_ms),
            duration: Duration::from_millis(duration_ms),
            hist,
        }
    }

    /// Entries as the format 1 logs (histograms only) of the hosts they are labelled with.
    fn logs_of(entries: Vec<Entry>) -> Vec<Log> {
        let mut logs: Vec<Log> = Vec::new();
        for e in entries {
            match logs
                .iter_mut()
                .find(|l| l.entries[0].tag.labels == e.tag.labels)
            {
                Some(l) => l.entries.push(e),
                None => logs.push(Log {
                    name: format!("{}.hlog", e.tag.labels[0].1),
                    path: None,
                    digest: logs.len() as u64,
                    entries: vec![e],
                    counters: Vec::new(),
                    windows: Vec::new(),
                    ramps: Vec::new(),
                    run: None,
                }),
            }
        }
        logs
    }

    #[test]
    fn windows_align_by_wall_clock() {
        // Host a starts at 0, host b 300 ms later; both end on a 500 ms window. Values stay
        // below 2048, where 3 significant digits record them exactly.
        let entries = || {
            vec![
                entry("x:1", "a", 0, 1000, 100),
                entry("x:1", "a", 1000, 1000, 200),
                entry("x:1", "a", 2000, 500, 300),
                entry("x:1", "b", 300, 1000, 400),
                entry("x:1", "b", 1300, 1000, 500),
                entry("x:1", "b", 2300, 500, 600),
            ]
        };
        let m = merge(&logs_of(entries()), None, false, None).unwrap();
        assert_eq!(m.interval, SECOND);
        let shape: Vec<(u64, Duration, u64)> = m
            .windows
            .iter()
            .map(|w| (w.seq, w.length, cell(w, 0).completed))
            .collect();
        assert_eq!(
            shape,
            [
                (0, SECOND, 2),
                (1, SECOND, 2),
                (2, Duration::from_millis(800), 2)
            ]
        );
        assert_eq!(cell(&m.windows[1], 0).latency.min(), 200);
        assert_eq!(cell(&m.windows[1], 0).latency.max(), 500);
        // The last window's row was active as long as its hosts' last windows lasted.
        assert_eq!(
            m.windows[2].rows[0].as_ref().unwrap().length,
            Duration::from_millis(500)
        );

        let m = merge(&logs_of(entries()), Some(SECOND * 2), false, None).unwrap();
        let shape: Vec<(u64, Duration, u64)> = m
            .windows
            .iter()
            .map(|w| (w.seq, w.length, cell(w, 0).completed))
            .collect();
        assert_eq!(
            shape,
            [(0, SECOND * 2, 4), (1, Duration::from_millis(800), 2)]
        );

        // A target only some windows saw has a row in those windows only, and its total rate
        // is over its own active time.
        let mut more = entries();
        more.push(entry("y:2", "a", 1000, 1000, 700));
        let m = merge(&logs_of(more), None, false, None).unwrap();
        assert_eq!(names(&m), ["x:1", "y:2"]);
        assert!(m.windows.iter().all(|w| w.rows.len() == 2));
        assert!(m.windows[0].rows[1].is_none());
        assert_eq!(cell(&m.windows[1], 1).completed, 1);
        assert!(m.windows[2].rows[1].is_none());
        let cfg = ReportConfig {
            jsonlines: true,
            ..Default::default()
        };
        let mut buf = Vec::new();
        print_merged(&m, &cfg, &mut buf);
        let rows: Vec<Value> = String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &Value| r["peer"] == "y:2")
            .collect();
        assert_eq!(
            rows.len(),
            2,
            "one interval row, the window it was in; the total"
        );
        assert_eq!(rows[0]["interval"], 1);
        let total = &rows[1];
        assert_eq!(total["kind"], "total");
        assert_eq!(total["elapsed_sec"].as_f64(), Some(1.0), "{total}");
        assert_eq!(
            total["rate_per_sec"].as_f64(),
            Some(1.0),
            "not 1/2.8 s: {total}"
        );
        assert!(merge(&[], None, true, None).unwrap().windows.is_empty());
    }

    fn bad(contents: &[u8], name: &str) -> String {
        let f = TempFile::new(name, contents);
        let err = read_log(&f.0).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: bad interval log at byte ", f.0.display())),
            "{msg}"
        );
        msg
    }

    /// A log that ends in a histogram line (its last window's counter lines cut off), and
    /// where that line starts.
    fn valid_log() -> (Vec<u8>, usize) {
        let mut log = host_log(0);
        let text = String::from_utf8(log.clone()).unwrap();
        let tag = text.rfind("\nTag=").unwrap() + 1;
        log.truncate(tag + text[tag..].find('\n').unwrap() + 1);
        let last_line = log[..log.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        (log, last_line)
    }

    #[test]
    fn truncated_log_names_file_and_offset() {
        let (log, last_line) = valid_log();
        let msg = bad(&log[..last_line + 40], "truncated.hlog");
        assert!(
            msg.contains(&format!(
                "at byte {last_line}: line does not end in a newline"
            )),
            "{msg}"
        );
        let cut_in_header = bad(&log[..30], "header.hlog");
        assert!(
            cut_in_header.contains("at byte 0: line does not end"),
            "{cut_in_header}"
        );
    }

    #[test]
    fn garbage_payloads_name_file_and_offset() {
        let (log, last_line) = valid_log();
        let line = String::from_utf8(log[last_line..].to_vec()).unwrap();
        let fields: Vec<&str> = line.trim_end().split(',').collect();
        let prefix = fields[..4].join(",");

        let mut not_base64 = log[..last_line].to_vec();
        not_base64.extend_from_slice(format!("{prefix},@@not*base64@@\n").as_bytes());
        let msg = bad(&not_base64, "garbage.hlog");
        assert!(
            msg.contains(&format!("at byte {last_line}: histogram is not base64")),
            "{msg}"
        );

        let mut not_hist = log[..last_line].to_vec();
        not_hist.extend_from_slice(format!("{prefix},aGVsbG8gd29ybGQ=\n").as_bytes());
        let msg = bad(&not_hist, "nothist.hlog");
        assert!(
            msg.contains(&format!(
                "at byte {last_line}: payload is not a V2 histogram"
            )),
            "{msg}"
        );

        let mut few_fields = log[..last_line].to_vec();
        few_fields.extend_from_slice(b"Tag=latency;peer=a:1,0.000,1.000\n");
        few_fields.extend_from_slice(&log[last_line..]);
        let msg = bad(&few_fields, "fields.hlog");
        assert!(
            msg.contains(&format!("at byte {last_line}: not an interval log line")),
            "{msg}"
        );
        assert!(msg.contains("Tag=latency;peer=a:1,0.000,1.000"), "{msg}");

        let mut foreign_tag = log[..last_line].to_vec();
        let rest = String::from_utf8(log[last_line..].to_vec()).unwrap();
        let tag_end = rest.find(',').unwrap();
        foreign_tag.extend_from_slice(format!("Tag=jhiccup{}", &rest[tag_end..]).as_bytes());
        let msg = bad(&foreign_tag, "foreign.hlog");
        assert!(
            msg.contains(&format!("at byte {last_line}: tag \"jhiccup\"")),
            "{msg}"
        );
    }

    #[test]
    fn bad_counter_lines_name_file_and_offset() {
        let text = String::from_utf8(host_log(0)).unwrap();
        let at = text.find("\n#connperf-counters").unwrap() + 1;
        let unknown_kind = format!(
            "{}{}",
            &text[..at],
            text[at..].replacen("\"refused\":", "\"bogus\":", 1)
        );
        let msg = bad(unknown_kind.as_bytes(), "kind.hlog");
        assert!(
            msg.contains(&format!("at byte {at}: unknown errors kind \"bogus\"")),
            "{msg}"
        );
        // A counter this connperf does not know would be dropped from the sums: refused.
        let new_counter = text.replacen("{\"start\":", "{\"retries\":3,\"start\":", 1);
        let msg = bad(new_counter.as_bytes(), "field.hlog");
        assert!(
            msg.contains(&format!(
                "at byte {at}: bad #connperf-counters line: unknown field"
            )),
            "{msg}"
        );
        let newer = text.replacen("{\"format\":2,", "{\"format\":3,", 1);
        let msg = bad(newer.as_bytes(), "newer.hlog");
        assert!(
            msg.contains("log format 3 is newer than this connperf reads (2)"),
            "{msg}"
        );
    }

    #[test]
    fn non_logs_are_rejected_with_file_and_offset() {
        let msg = bad(b"{\"peer\": \"a:1\", \"count\": 3}\n", "json.hlog");
        assert!(msg.contains("at byte 0: not an interval log line"), "{msg}");
        let msg = bad(b"", "empty.hlog");
        assert!(msg.ends_with("at byte 0: empty file"), "{msg}");
        let header_only = b"#[BaseTime: 1.000 (seconds since epoch)]\n";
        let msg = bad(header_only, "nohist.hlog");
        assert!(
            msg.ends_with("at byte 41: no interval histograms in the file"),
            "{msg}"
        );

        let missing = std::env::temp_dir().join("connperf-histlog-no-such-file.hlog");
        let err = read_log(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("no-such-file.hlog"), "{err}");
    }

    #[test]
    fn logs_of_other_writers_get_absolute_times() {
        let mut h = new_hist();
        h.record(5).unwrap();
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        {
            let mut w = IntervalLogWriterBuilder::new()
                .with_start_time(t0())
                .begin_log_with(&mut buf, &mut ser)
                .unwrap();
            let tag = interval_log::Tag::new("latency;peer=a:1");
            // StartTime only: a small timestamp is a delta, a Unix time is absolute.
            w.write_histogram(&h, SECOND * 2, SECOND, tag).unwrap();
            let abs = t0().duration_since(UNIX_EPOCH).unwrap() + SECOND * 5;
            w.write_histogram(&h, abs, SECOND, tag).unwrap();
        }
        let entries = parse_log(&buf, "java").unwrap().entries;
        assert_eq!(entries[0].start, t0() + SECOND * 2);
        assert_eq!(entries[1].start, t0() + SECOND * 5);
    }

    #[test]
    fn tags_with_labels_round_trip() {
        let tag = Tag::new(Kind::Connect, "[::1]:9100", &labels("db-1.eu"));
        let text = tag.encode().unwrap();
        assert_eq!(text, "connect;peer=[::1]:9100;host=db-1.eu;run=r1");
        assert_eq!(Tag::parse(&text).unwrap(), tag);
        let eq_in_value = Tag::new(Kind::Latency, "a:1", &[("k".into(), "x=y".into())]);
        assert_eq!(
            Tag::parse(&eq_in_value.encode().unwrap()).unwrap(),
            eq_in_value
        );
        assert!(Tag::parse("latency;host=a")
            .unwrap_err()
            .contains("no peer="));
        assert!(Tag::parse("bogus;peer=a")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(Tag::parse("latency;peer=a;junk")
            .unwrap_err()
            .contains("\"junk\""));
    }

    #[test]
    fn labels_that_cannot_go_in_a_tag_are_rejected() {
        assert_eq!(
            parse_label("host=a").unwrap(),
            ("host".to_string(), "a".to_string())
        );
        for (arg, why) in [
            ("host=a b", "whitespace"),
            ("host=a,b", "','"),
            ("host=a;b", "';'"),
            ("host=a\tb", "whitespace"),
            ("host=", "empty"),
            ("=a", "key is empty"),
            ("ho st=a", "key contains ' '"),
            ("peer=a", "reserved"),
            ("hosta", "want KEY=VALUE"),
        ] {
            let err = parse_label(arg).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.exit_code(), 2);
            assert!(
                msg.starts_with(&format!("invalid --label {arg:?}")),
                "{msg}"
            );
            assert!(msg.contains(why), "{arg}: {msg}");
        }
        let bad_labels = [("host".to_string(), "a b".to_string())];
        let err = LogWriter::new(Vec::new(), t0(), &bad_labels, run_info())
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "invalid --label \"host=a b\": the value contains whitespace, which an interval log \
             tag cannot hold"
        );
        let mut w = LogWriter::new(Vec::new(), t0(), &[], run_info()).unwrap();
        let tag = w.tag(Kind::Latency, "bad peer:1");
        let err = w.write(&tag, t0(), SECOND, &new_hist()).unwrap_err();
        assert!(err.to_string().contains("\"bad peer:1\""), "{err}");
    }
}
