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
//! #labels: host=a
//! #[StartTime: 1736245800.123 (seconds since epoch)]
//! #[BaseTime: 1736245800.123 (seconds since epoch)]
//! #[MaxValueDivisor: 1000000.000]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=latency;peer=127.0.0.1:9100;host=a,0.000,1.000,0.213,HISTFAAAAC...
//! Tag=service;peer=127.0.0.1:9100;host=a,0.000,1.000,0.187,HISTFAAAAC...
//! ```
//!
//! Only histograms are logged. Merged windows therefore carry `latency`, `service`, `connect` and
//! `completed` (the latency count); bytes, errors, UDP loss, late starts and generator CPU are not
//! in the log and print as 0.

use crate::report::{self, ReportConfig, Stats, Summary, Window, MAX_NS};
use crate::{Error, Result};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    self, IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry,
    LogIteratorError,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializeError, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
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
     service (from the actual send) or connect";

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
    if key.is_empty() {
        return Err(bad("the key is empty".into()));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(bad(format!(
            "the key contains {c:?}; use letters, digits, '_', '-' and '.'"
        )));
    }
    if key == "peer" {
        return Err(bad("the key \"peer\" is reserved for the target".into()));
    }
    check_text(value).map_err(|why| {
        bad(format!(
            "the value {why}, which an interval log tag cannot hold"
        ))
    })
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
    pub fn new(mut out: W, start_time: SystemTime, labels: &[(String, String)]) -> Result<Self> {
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
        IntervalLogWriterBuilder::new()
            .add_comment(DESCRIPTION)
            .add_comment(FORMAT_VERSION)
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
    /// `connect` histogram when that holds samples (only ephemeral runs connect per request).
    /// Flushes, so that a run that dies leaves a log of whole lines.
    pub fn write_stats(
        &mut self,
        peers: &[String],
        interval_start: SystemTime,
        duration: Duration,
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
        self.flush()
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
}

impl<W: Write> WindowLog<W> {
    /// Log the windows of a run over `peers`.
    pub fn new(log: LogWriter<W>, peers: Vec<String>, interval: Duration) -> Self {
        WindowLog {
            log: Some(log),
            peers,
            interval,
        }
    }

    /// Write window `seq` of a run whose window 0 started at `origin` (the measurement start,
    /// on the wall clock), which lasted `length` (the last one is usually shorter); the
    /// `run_reporter` callback.
    pub fn on_window(&mut self, origin: SystemTime, seq: u64, length: Duration, stats: &[Stats]) {
        let Some(log) = self.log.as_mut() else { return };
        let start = origin + self.interval * seq as u32;
        if let Err(e) = log.write_stats(&self.peers, start, length, stats) {
            eprintln!("connperf: warning: --hdr-log stopped: {e}");
            self.log = None;
        }
    }

    /// The log, unless a write failed.
    pub fn into_inner(self) -> Option<LogWriter<W>> {
        self.log
    }
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
        IntervalLogWriterError::SerializeError(e) => Error::Io {
            what: "cannot encode a histogram for the --hdr-log file".into(),
            source: io::Error::other(e),
        },
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

/// Read every histogram of the interval log at `path`.
///
/// A file that is not an interval log, a line cut short, a payload that is not base64 or not a
/// histogram, a tag connperf did not write, or a log with no histograms at all is a `Config`
/// error `{path}: bad interval log at byte {offset}: {what}`, where `offset` is where the bad
/// line starts. A file that cannot be read is an `Io` error naming it.
pub fn read_log(path: &Path) -> Result<Vec<Entry>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        what: format!("cannot read interval log {}", path.display()),
        source,
    })?;
    parse_log(&bytes, &path.display().to_string())
}

/// `read_log` on bytes already in memory; `name` stands for the file in error messages.
pub fn parse_log(input: &[u8], name: &str) -> Result<Vec<Entry>> {
    parse(input).map_err(|(offset, what)| {
        Error::Config(format!("{name}: bad interval log at byte {offset}: {what}"))
    })
}

/// The entries of a log, or the byte offset of the bad line and what is wrong with it.
fn parse(input: &[u8]) -> std::result::Result<Vec<Entry>, (usize, String)> {
    if input.is_empty() {
        return Err((0, "empty file".into()));
    }
    let mut base_time = None;
    let mut start_time = None;
    let mut deserializer = Deserializer::new();
    let mut payload = Vec::new();
    let mut entries = Vec::new();
    for item in IntervalLogIterator::new(input) {
        let line = match item {
            Err(LogIteratorError::ParseError { offset }) => {
                return Err((offset, describe_bad_line(input, offset)))
            }
            Ok(LogEntry::StartTime(t)) => {
                start_time = Some(t);
                continue;
            }
            Ok(LogEntry::BaseTime(t)) => {
                base_time = Some(t);
                continue;
            }
            Ok(LogEntry::Interval(line)) => line,
        };
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
        payload.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(encoded, &mut payload)
            .map_err(|e| fail(format!("histogram is not base64: {e}")))?;
        let hist: Histogram<u64> = deserializer
            .deserialize(&mut payload.as_slice())
            .map_err(|e| fail(format!("payload is not a V2 histogram: {e}")))?;
        if hist.max() > MAX_NS {
            return Err(fail(format!(
                "histogram max {} is above connperf's largest value {MAX_NS} (1 h in ns)",
                hist.max()
            )));
        }
        let since_epoch = match (base_time, start_time) {
            (Some(base), _) => base.checked_add(line.start_timestamp()),
            (None, Some(start)) if line.start_timestamp().saturating_add(YEAR) < start => {
                start.checked_add(line.start_timestamp())
            }
            _ => Some(line.start_timestamp()),
        };
        let start = since_epoch
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .ok_or_else(|| fail("timestamp out of range".into()))?;
        entries.push(Entry {
            tag,
            start,
            duration: line.duration(),
            hist,
        });
    }
    if entries.is_empty() {
        return Err((input.len(), "no interval histograms in the file".into()));
    }
    Ok(entries)
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

/// Histograms of many logs added up per wall-clock window, ready to print.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Row names: the targets in order of first appearance, or one `merged(N hosts)` row.
    pub peers: Vec<String>,
    /// Windows that hold data, in time order; `stats[i]` belongs to `peers[i]`. Only
    /// `latency`, `service`, `connect` and `completed` (= `latency.len()`) are set.
    pub windows: Vec<Window>,
    /// The window length that lined the entries up.
    pub interval: Duration,
    /// Labels that every entry carries with the same value, in the first entry's order.
    pub labels: Vec<(String, String)>,
}

/// Add up entries from any number of logs by wall-clock window and target.
///
/// Window `k` holds the entries whose start is `k` whole `interval`s after the earliest start
/// (floor), so hosts whose runs began a fraction of an interval apart share windows. `interval`
/// defaults to the most common entry duration (the longer on a tie), and is at least the log's
/// 1 ms resolution. A window lasts `interval`, or less when its entries end sooner (the
/// run's last, partial window). With `merge_peers`, every window's targets are added into one
/// row, named as `connect --merge-results-each-host` names it (`merged(1 hosts)` for one).
pub fn merge(entries: Vec<Entry>, interval: Option<Duration>, merge_peers: bool) -> Merged {
    let interval = interval
        .unwrap_or_else(|| most_common_duration(&entries))
        .max(LOG_RESOLUTION);
    let labels = common_labels(&entries);
    let Some(earliest) = entries.iter().map(|e| e.start).min() else {
        return Merged {
            peers: Vec::new(),
            windows: Vec::new(),
            interval,
            labels,
        };
    };
    let mut peers: Vec<String> = Vec::new();
    let mut windows: BTreeMap<u64, (Vec<Stats>, SystemTime)> = BTreeMap::new();
    for e in entries {
        let peer = match peers.iter().position(|p| *p == e.tag.peer) {
            Some(i) => i,
            None => {
                peers.push(e.tag.peer.clone());
                peers.len() - 1
            }
        };
        let offset = e.start.duration_since(earliest).unwrap_or_default();
        let seq = u64::try_from(offset.as_nanos() / interval.as_nanos()).unwrap_or(u64::MAX);
        let (stats, end) = windows.entry(seq).or_insert_with(|| (Vec::new(), e.start));
        if stats.len() <= peer {
            stats.resize_with(peer + 1, Stats::new);
        }
        add_clamped(e.tag.kind.of_stats_mut(&mut stats[peer]), &e.hist);
        *end = (*end).max(e.start.checked_add(e.duration).unwrap_or(e.start));
    }
    let npeers = peers.len();
    let merge_rows = merge_peers;
    let windows = windows
        .into_iter()
        .map(|(seq, (mut stats, end))| {
            stats.resize_with(npeers, Stats::new);
            if merge_rows {
                let mut all = Stats::new();
                for s in &stats {
                    all.merge(s);
                }
                stats = vec![all];
            }
            for s in &mut stats {
                s.completed = s.latency.len();
            }
            let start = window_start(earliest, interval, seq);
            Window {
                seq,
                start,
                length: end.duration_since(start).unwrap_or_default().min(interval),
                stats,
            }
        })
        .collect();
    if merge_rows {
        peers = vec![format!("merged({npeers} hosts)")];
    }
    Merged {
        peers,
        windows,
        interval,
        labels,
    }
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

fn most_common_duration(entries: &[Entry]) -> Duration {
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

fn common_labels(entries: &[Entry]) -> Vec<(String, String)> {
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    first
        .tag
        .labels
        .iter()
        .filter(|l| entries.iter().all(|e| e.tag.labels.contains(l)))
        .cloned()
        .collect()
}

/// Print merged windows and their totals exactly as `connect` prints a run, with the output
/// options of `base` (`jsonlines`, `show_only_results`, `extra_percentiles`,
/// `latency_distribution`). Rows are `merged.peers`; connect-time columns appear when `base`
/// asks for them or any window holds connect samples. Tables end with a note on what the logs
/// do not carry.
pub fn print_merged<W: Write>(merged: &Merged, base: &ReportConfig, mut out: W) -> Summary {
    let has_connect = merged
        .windows
        .iter()
        .any(|w| w.stats.iter().any(|s| !s.connect.is_empty()));
    let cfg = ReportConfig {
        peers: merged.peers.clone(),
        merge: false,
        workers: 0,
        udp: false,
        ephemeral: base.ephemeral || has_connect,
        labels: if base.labels.is_empty() {
            merged.labels.clone()
        } else {
            base.labels.clone()
        },
        ..base.clone()
    };
    let summary = report::print_report(&cfg, &merged.windows, &mut out);
    if !cfg.jsonlines {
        // Like the report itself, go quiet if the reader has gone away (`| head`).
        let _ = writeln!(
            out,
            "# merged from interval logs: only histograms are logged, so bytes, errors, \
             UDP loss, late starts and generator CPU are not known here"
        );
        let _ = out.flush();
    }
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
        s
    }

    /// Host `h`'s run: starts `h * 350 ms` after `t0`, three 1 s windows.
    fn host_log(h: usize) -> Vec<u8> {
        let start = t0() + Duration::from_millis(350 * h as u64);
        let name = ["a", "b", "c"][h];
        let mut w = LogWriter::new(Vec::new(), start, &labels(name)).unwrap();
        let peers: Vec<String> = PEERS.iter().map(|p| p.to_string()).collect();
        for win in 0..3 {
            let stats: Vec<Stats> = (0..2).map(|p| measured(h, win, p)).collect();
            w.write_stats(&peers, start + SECOND * win as u32, SECOND, &stats)
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
    fn three_host_entries(test: &str) -> (Vec<TempFile>, Vec<Entry>) {
        let files: Vec<TempFile> = (0..3)
            .map(|h| TempFile::new(&format!("{test}-host{h}.hlog"), &host_log(h)))
            .collect();
        let entries = files.iter().flat_map(|f| read_log(&f.0).unwrap()).collect();
        (files, entries)
    }

    #[test]
    fn merging_three_hosts_gives_the_percentiles_of_the_union() {
        let (_files, entries) = three_host_entries("union");
        // 3 hosts × 3 windows × 2 targets × 3 kinds.
        assert_eq!(entries.len(), 54);
        let m = merge(entries, None, false);
        assert_eq!(m.interval, SECOND);
        assert_eq!(m.peers, PEERS);
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
                    assert_same(kind.of_stats(&win.stats[p]), &want, &what);
                }
                assert_eq!(win.stats[p].completed, win.stats[p].latency.len());
                assert_eq!(win.stats[p].bytes, 0, "the log carries no byte counts");
            }
        }

        // One target merged is still the merged row, as `connect` names it.
        let (_files, entries) = three_host_entries("union-merged-one");
        let one: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.tag.peer == PEERS[1])
            .collect();
        let m = merge(one, None, true);
        assert_eq!(m.peers, ["merged(1 hosts)"]);
        for (w, win) in m.windows.iter().enumerate() {
            assert_eq!(win.stats.len(), 1);
            let want = union(&[0, 1, 2], &[w], &[1], Kind::Latency);
            assert_same(&win.stats[0].latency, &want, &format!("merged window {w}"));
        }

        let (_files, entries) = three_host_entries("union-merged");
        let m = merge(entries, None, true);
        assert_eq!(m.peers, ["merged(2 hosts)"]);
        for (w, win) in m.windows.iter().enumerate() {
            assert_eq!(win.stats.len(), 1);
            let want = union(&[0, 1, 2], &[w], &[0, 1], Kind::Latency);
            assert_same(&win.stats[0].latency, &want, &format!("merged window {w}"));
        }
    }

    #[test]
    fn printed_totals_are_the_union_percentiles() {
        let (_files, entries) = three_host_entries("printed");
        let m = merge(entries, None, false);
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
        assert!(lines
            .last()
            .unwrap()
            .starts_with("# merged from interval logs"));
    }

    #[test]
    fn log_round_trips_through_the_crate_reader() {
        let start = t0() + Duration::from_nanos(123_456_789);
        let mut w = LogWriter::new(Vec::new(), start, &labels("a")).unwrap();
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
        let entries = parse_log(&log, "mem").unwrap();
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
        let writer = LogWriter::new(file.clone(), t0(), &[]).unwrap();
        let mut log = WindowLog::new(writer, peers, 2 * SECOND);
        let stats = [measured(0, 0, 0), measured(0, 0, 1)];
        log.on_window(origin, 0, 2 * SECOND, &stats);
        log.on_window(origin, 3, SECOND / 2, &stats);
        let entries = parse_log(&file.bytes.borrow(), "mem").unwrap();
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
        log.on_window(origin, 4, SECOND, &stats);
        file.fail.set(false);
        let len = file.bytes.borrow().len();
        log.on_window(origin, 5, SECOND, &stats);
        assert_eq!(
            file.bytes.borrow().len(),
            len,
            "a stopped log writes nothing"
        );
        assert!(log.into_inner().is_none());
    }

    #[test]
    fn write_stats_skips_empty_connect_histograms() {
        let mut w = LogWriter::new(Vec::new(), t0(), &[]).unwrap();
        let mut s = Stats::new();
        s.record(1000, 900, 10);
        w.write_stats(&[PEERS[0].to_string()], t0(), SECOND, &[s])
            .unwrap();
        let entries = parse_log(&w.into_inner(), "mem").unwrap();
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
        let m = merge(entries(), None, false);
        assert_eq!(m.interval, SECOND);
        let shape: Vec<(u64, Duration, u64)> = m
            .windows
            .iter()
            .map(|w| (w.seq, w.length, w.stats[0].completed))
            .collect();
        assert_eq!(
            shape,
            [
                (0, SECOND, 2),
                (1, SECOND, 2),
                (2, Duration::from_millis(800), 2)
            ]
        );
        assert_eq!(m.windows[1].stats[0].latency.min(), 200);
        assert_eq!(m.windows[1].stats[0].latency.max(), 500);

        let m = merge(entries(), Some(SECOND * 2), false);
        let shape: Vec<(u64, Duration, u64)> = m
            .windows
            .iter()
            .map(|w| (w.seq, w.length, w.stats[0].completed))
            .collect();
        assert_eq!(
            shape,
            [(0, SECOND * 2, 4), (1, Duration::from_millis(800), 2)]
        );

        // A target only some windows saw still gets a (empty) row in every window.
        let mut more = entries();
        more.push(entry("y:2", "a", 1000, 1000, 700));
        let m = merge(more, None, false);
        assert_eq!(m.peers, ["x:1", "y:2"]);
        assert!(m.windows.iter().all(|w| w.stats.len() == 2));
        assert_eq!(m.windows[0].stats[1].completed, 0);
        assert_eq!(m.windows[1].stats[1].completed, 1);
        assert!(merge(Vec::new(), None, true).windows.is_empty());
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

    fn valid_log() -> (Vec<u8>, usize) {
        let log = host_log(0);
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
        let entries = parse_log(&buf, "java").unwrap();
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
        let err = LogWriter::new(Vec::new(), t0(), &bad_labels)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "invalid --label \"host=a b\": the value contains whitespace, which an interval log \
             tag cannot hold"
        );
        let mut w = LogWriter::new(Vec::new(), t0(), &[]).unwrap();
        let tag = w.tag(Kind::Latency, "bad peer:1");
        let err = w.write(&tag, t0(), SECOND, &new_hist()).unwrap_err();
        assert!(err.to_string().contains("\"bad peer:1\""), "{err}");
    }
}
