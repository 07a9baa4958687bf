//! `connperf plot`: one self-contained SVG from HdrHistogram interval logs (`connect --hdr-log`)
//! and JSON Lines (`connect --json-stream` / `--jsonlines`, `merge --jsonlines`, a sweep's
//! `step` and `knee` rows).
//!
//! The SVG stacks the panels its inputs support: the timeline (latency percentiles per window
//! on a log axis, and below it throughput and errors per second), the percentile spectrum (x on
//! HdrHistogram's 1/(1−p) scale, one line per run, target or label set) and a sweep's latency
//! against achieved throughput with the SLO's latency bounds and the knee.
//!
//! Owns: reading the inputs into `Series` (`load`), drawing them (`render`) with `plotters`'
//! SVG backend (no system libraries; text is left to the viewer's fonts). Leaves to others:
//! the interval log format (`histlog::parse_log`), the SLO syntax (`verdict::parse_slo`),
//! argument parsing (`cli`).
//!
//! A value an input does not know (a JSON `null`, an empty window) is a gap in its line, never
//! a 0. Zero latencies sit at 1 µs, the floor of the log axes.

use crate::histlog::{self, Kind};
use crate::verdict::{self, Bound};
use crate::{Error, Result};
use hdrhistogram::Histogram;
use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Default SVG width, px: wide enough for a minute of 1 s windows to stay apart.
pub const DEFAULT_WIDTH: u32 = 1200;
/// Smallest `--width`/`--height`, px: below it the axis labels overlap the plot.
pub const MIN_PX: u32 = 400;
/// Largest `--width`/`--height`, px: beyond it viewers refuse or crawl.
pub const MAX_PX: u32 = 20_000;
/// Heights of the parts at the default size, px; `--height` scales them together.
const TITLE_PX: u32 = 50;
const LATENCY_PX: u32 = 420;
const THROUGHPUT_PX: u32 = 260;
const SPECTRUM_PX: u32 = 460;
const SWEEP_PX: u32 = 460;
/// Floor of every log axis, ns: a zero latency has no logarithm.
const FLOOR_NS: f64 = 1_000.0;
/// Right end of the spectrum's x axis: 99.999 % is 10^5 on the 1/(1−p) scale.
const SPECTRUM_NINES: f64 = 5.0;
/// Most series whose every line gets its own legend entry; past it each series gets one, so
/// the legend still fits its panel.
const COMPACT_LEGEND: usize = 3;
/// Latency axis (ns) of a panel whose runs completed nothing: its lines are all gaps.
const NO_LATENCY_RANGE: (f64, f64) = (FLOOR_NS * 0.9, 1e7);
/// Font family of every text: the viewer's own sans-serif (the SVG embeds no font).
const FONT: &str = "sans-serif";

/// What to draw and where (`connperf plot` after validation).
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Interval logs and JSON Lines files.
    pub files: Vec<String>,
    /// `--title`; `None` builds one from the labels or the file names.
    pub title: Option<String>,
    /// Width, px.
    pub width: u32,
    /// Total height, px; `None` is the sum of the panels' default heights.
    pub height: Option<u32>,
}

/// One window of a timeline: where it ends and what it measured. Latencies in ns.
#[derive(Debug, Clone, Default, PartialEq)]
struct Point {
    /// End of the window, seconds since the start of its run.
    end_sec: f64,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
    /// Completed requests per second.
    rate: Option<f64>,
    /// Failed requests per second; `None` where the input does not carry errors (interval logs).
    errors: Option<f64>,
}

/// One step of a sweep. Latencies in ns.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// The row's `step`: its 0-based index in the sweep.
    index: Option<usize>,
    offered: Option<f64>,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    /// Failed requests (`error_count`); `None` where the row does not say.
    errors: Option<f64>,
}

/// A sweep's summary row.
#[derive(Debug, Clone, PartialEq)]
struct Knee {
    /// Highest offered rate that met the SLO (the total over the targets); `None` when no
    /// step did.
    rate: Option<f64>,
    /// Index of the knee's step (`knee_step`); `None` in files written before it was logged,
    /// where the step is found by its offered rate (right for one target only).
    step: Option<usize>,
    /// Why the sweep stopped (`stopped`): after `generator` or `signal` the last step did not
    /// measure the target.
    stopped: Option<String>,
    /// The SLO text as given to `--slo`, and its bounds.
    slo: Option<(String, Vec<Bound>)>,
}

/// One line of the plot: a run, target or label set.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// Which input it came from (index into the inputs).
    input: usize,
    peer: String,
    labels: Vec<(String, String)>,
    /// Legend text, set once every input is read.
    name: String,
    timeline: Vec<Point>,
    /// (x on the 1/(1−p) scale in decades, latency ns).
    spectrum: Vec<(f64, f64)>,
    /// True when `spectrum` comes from a whole histogram or distribution; false for a JSON
    /// row's few percentiles.
    spectrum_exact: bool,
    steps: Vec<Step>,
}

/// One input file, read.
#[derive(Debug, Clone, PartialEq)]
struct Input {
    /// The file's name without directory and extension; with the extension when another
    /// input has the same stem.
    stem: String,
    /// The file's name without directory.
    file_name: String,
    knee: Option<Knee>,
}

/// `connperf plot`: read the inputs, draw, write the SVG to `out` (`-` is stdout).
pub fn run(opts: &PlotOptions, out: &str) -> Result<()> {
    check_size("--width", opts.width)?;
    if let Some(h) = opts.height {
        check_size("--height", h)?;
    }
    if opts.files.is_empty() {
        return Err(Error::Config(
            "plot needs at least one interval log or JSON Lines file".into(),
        ));
    }
    check_paths(&opts.files, out)?;
    let (inputs, series) = load_all(&opts.files)?;
    let svg = render(&inputs, &series, opts)?;
    let io_err = |source| Error::Io {
        what: format!("cannot write {out}"),
        source,
    };
    if out == "-" {
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(svg.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // `connperf plot ... -o - | head`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(io_err),
        }
    } else {
        std::fs::write(out, svg).map_err(io_err)
    }
}

/// Where `path` is on disk, symlinks resolved; for a file not yet there, its directory's
/// canonical path and its name. `None` when even the directory cannot be resolved.
fn canonical(path: &Path) -> Option<std::path::PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(path.file_name()?))
}

/// Refuse an input given twice (its lines would be drawn twice under two names) and an output
/// that is one of the inputs (writing it would destroy the data).
fn check_paths(files: &[String], out: &str) -> Result<()> {
    let paths: Vec<Option<std::path::PathBuf>> =
        files.iter().map(|f| canonical(Path::new(f))).collect();
    for (i, p) in paths.iter().enumerate() {
        let Some(p) = p else { continue };
        if let Some(j) = paths[..i].iter().position(|o| o.as_ref() == Some(p)) {
            return Err(Error::Config(format!(
                "{} and {} are the same file: give each input once",
                files[j], files[i]
            )));
        }
    }
    if out != "-" {
        if let Some(o) = canonical(Path::new(out)) {
            if let Some(i) = paths.iter().position(|p| p.as_ref() == Some(&o)) {
                return Err(Error::Config(format!(
                    "-o {out} is the input {}: writing the SVG there would destroy it; choose \
                     another output file",
                    files[i]
                )));
            }
        }
    }
    Ok(())
}

fn check_size(flag: &str, px: u32) -> Result<()> {
    if (MIN_PX..=MAX_PX).contains(&px) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid {flag} {px}: use {MIN_PX} to {MAX_PX} pixels"
        )))
    }
}

/// Read every file; name the series once all are known.
fn load_all(files: &[String]) -> Result<(Vec<Input>, Vec<Series>)> {
    let mut inputs = Vec::new();
    let mut series = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (input, s) = load(Path::new(f), i)?;
        inputs.push(input);
        series.extend(s);
    }
    // `a/run.hlog` and `a/run.jsonl`, or `a/run.hlog` and `b/run.hlog`: tell them apart.
    let names: Vec<String> = inputs
        .iter()
        .zip(files)
        .map(|(input, path)| {
            let count =
                |f: fn(&Input) -> &String| inputs.iter().filter(|o| f(o) == f(input)).count();
            if count(|i| &i.stem) == 1 {
                input.stem.clone()
            } else if count(|i| &i.file_name) == 1 {
                input.file_name.clone()
            } else {
                path.clone()
            }
        })
        .collect();
    for (input, name) in inputs.iter_mut().zip(names) {
        input.stem = name;
    }
    name_series(&inputs, &mut series);
    Ok((inputs, series))
}

/// Read one file: an interval log or JSON Lines, told apart by its first character.
fn load(path: &Path, index: usize) -> Result<(Input, Vec<Series>)> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Error::Config(format!("{name}: cannot read: {e}")))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let (knee, series) = match first {
        None => return Err(Error::Config(format!("{name}: empty file"))),
        Some(b'{') => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| Error::Config(format!("{name}: not UTF-8 text: {e}")))?;
            read_jsonl(text, &name, index)?
        }
        Some(_) => (None, read_hlog(&bytes, &name, index)?),
    };
    // A run in which nothing completed is still drawn (throughput 0, its errors, latency as
    // gaps); only a file without a single row to draw is refused.
    let has_rows = series
        .iter()
        .any(|s| !s.timeline.is_empty() || !s.spectrum.is_empty() || !s.steps.is_empty());
    if !has_rows {
        return Err(Error::Config(format!(
            "{name}: no client rows to plot (want an interval log from connect --hdr-log, or JSON \
             Lines from connect --json-stream/--jsonlines or merge --jsonlines)"
        )));
    }
    Ok((
        Input {
            stem,
            file_name,
            knee,
        },
        series,
    ))
}

/// An interval log: the `latency` histograms, one series per target and label set.
fn read_hlog(bytes: &[u8], name: &str, index: usize) -> Result<Vec<Series>> {
    let log = histlog::parse_log(bytes, name)?;
    let entries = log.entries;
    let Some(origin) = entries.iter().map(|e| e.start).min() else {
        return Ok(Vec::new());
    };
    let ms_since =
        |t: std::time::SystemTime| t.duration_since(origin).unwrap_or_default().as_millis();
    // Errors per (target, window start): from the counters a format 2 log carries; a window
    // without them (a format 1 log) has unknown errors, drawn as a gap.
    let errors: BTreeMap<(String, u128), u64> = log
        .counters
        .iter()
        .map(|c| ((c.peer.clone(), ms_since(c.start)), c.stats.error_count()))
        .collect();
    // Per (peer, labels): per window start (ms since the origin): length and summed histogram.
    type Key = (String, Vec<(String, String)>);
    type Windows = BTreeMap<u128, (Duration, Histogram<u64>)>;
    let mut groups: Vec<(Key, Windows)> = Vec::new();
    for e in entries.into_iter().filter(|e| e.tag.kind == Kind::Latency) {
        let key = (e.tag.peer.clone(), e.tag.labels.clone());
        let at = match groups.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                groups.push((key, BTreeMap::new()));
                groups.len() - 1
            }
        };
        let offset_ms = ms_since(e.start);
        let slot = groups[at]
            .1
            .entry(offset_ms)
            .or_insert_with(|| (e.duration, empty_hist()));
        slot.0 = slot.0.max(e.duration);
        add(&mut slot.1, &e.hist, name)?;
    }
    let mut out = Vec::new();
    for ((peer, labels), windows) in groups {
        let mut total = empty_hist();
        let mut timeline = Vec::new();
        for (offset_ms, (length, h)) in &windows {
            add(&mut total, h, name)?;
            let errors = errors.get(&(peer.clone(), *offset_ms)).copied();
            timeline.push(hlog_point(*offset_ms, *length, h, errors));
        }
        out.push(Series {
            input: index,
            peer,
            labels,
            name: String::new(),
            timeline,
            spectrum: exact_spectrum(&total),
            spectrum_exact: true,
            steps: Vec::new(),
        });
    }
    Ok(out)
}

/// An interval log's window as a timeline point: it starts `offset_ms` after the log's first,
/// lasts `length`, holds `h` and, where the log carries counters, `errors` failed requests.
fn hlog_point(offset_ms: u128, length: Duration, h: &Histogram<u64>, errors: Option<u64>) -> Point {
    let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64);
    let secs = length.as_secs_f64();
    Point {
        end_sec: offset_ms as f64 / 1e3 + secs,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: (!h.is_empty()).then(|| h.max() as f64),
        rate: (secs > 0.0).then(|| h.len() as f64 / secs),
        errors: errors.filter(|_| secs > 0.0).map(|n| n as f64 / secs),
    }
}

/// A histogram that grows to whatever is added to it.
fn empty_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

fn add(into: &mut Histogram<u64>, h: &Histogram<u64>, name: &str) -> Result<()> {
    into.add(h)
        .map_err(|e| Error::Config(format!("{name}: cannot add its histograms: {e:?}")))
}

/// The percentile spectrum of `h` as HdrHistogram's percentile output lists it (5 steps per
/// halving of the remaining tail), on the 1/(1−p) scale; the max sits at p = 1 − 1/count.
fn exact_spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        let x = nines(q);
        if x > SPECTRUM_NINES {
            break;
        }
        pts.push((x, h.highest_equivalent(v.value_iterated_to()) as f64));
    }
    let x_max = (h.len() as f64).log10().min(SPECTRUM_NINES);
    match pts.last() {
        Some(&(x, _)) if x >= x_max => {}
        _ => pts.push((x_max, h.max() as f64)),
    }
    pts
}

/// Position of percentile `q` (a fraction) on the 1/(1−p) axis: decades, 0 for p = 0,
/// 1 for 90 %, 2 for 99 %.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

/// Index of the series with this target and labels, added if new.
fn series_at(
    series: &mut Vec<Series>,
    index: usize,
    peer: &str,
    labels: &[(String, String)],
) -> usize {
    if let Some(at) = series
        .iter()
        .position(|s| s.peer == peer && s.labels == labels)
    {
        return at;
    }
    series.push(Series {
        input: index,
        peer: peer.to_string(),
        labels: labels.to_vec(),
        name: String::new(),
        timeline: Vec::new(),
        spectrum: Vec::new(),
        spectrum_exact: false,
        steps: Vec::new(),
    });
    series.len() - 1
}

/// JSON Lines: `interval` rows make the timeline, `total` rows the spectrum, `step` and `knee`
/// rows the sweep. Other kinds and unknown keys are skipped.
fn read_jsonl(text: &str, name: &str, index: usize) -> Result<(Option<Knee>, Vec<Series>)> {
    let mut series = Vec::new();
    let mut knee = None;
    // Per series: (window length, point), in the order printed.
    let mut windows: Vec<Vec<(f64, Point)>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: String| Error::Config(format!("{name}:{}: {what}", n + 1));
        let row = parse_row(line).map_err(bad)?;
        let kind = row.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind == "knee" {
            knee = Some(knee_row(&row).map_err(bad)?);
            continue;
        }
        if !matches!(kind, "interval" | "total" | "step") {
            continue;
        }
        // Rows without a target are not a client's (serve's counters).
        let Some(peer) = row.get("peer").and_then(Value::as_str) else {
            continue;
        };
        let at = series_at(&mut series, index, peer, &row_labels(&row));
        if windows.len() < series.len() {
            windows.resize_with(series.len(), Vec::new);
        }
        let lat = row.get("latency_ns").unwrap_or(&Value::Null);
        match kind {
            "interval" => windows[at].push(interval_row(&row, lat)),
            "total" => {
                (series[at].spectrum, series[at].spectrum_exact) = json_spectrum(&row, lat);
            }
            _ => series[at].steps.push(step_row(&row, lat)),
        }
    }
    stack_windows(&mut series, windows);
    Ok((knee, series))
}

/// One line of JSON Lines as a JSON object, or why it is not one.
fn parse_row(line: &str) -> std::result::Result<Value, String> {
    let row: Value = serde_json::from_str(line).map_err(|e| {
        // serde's own position counts lines of this one line: keep the column only.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or_default();
        let shown: String = line.chars().take(40).collect();
        format!("bad JSON at column {}: {msg}: {shown:?}", e.column())
    })?;
    if !row.is_object() {
        return Err("not a JSON object".into());
    }
    Ok(row)
}

/// A sweep's `knee` row, or why its `slo` does not parse.
fn knee_row(row: &Value) -> std::result::Result<Knee, String> {
    let slo = match row.get("slo").and_then(Value::as_str) {
        Some(text) => {
            let bounds =
                verdict::parse_slo(text).map_err(|e| format!("bad \"slo\" {text:?}: {e}"))?;
            Some((text.to_string(), bounds))
        }
        None => None,
    };
    Ok(Knee {
        rate: num(row, "knee_rate"),
        step: index_at(row, "knee_step"),
        stopped: row
            .get("stopped")
            .and_then(Value::as_str)
            .map(str::to_string),
        slo,
    })
}

/// A row's `labels` object as (key, value) pairs, values that are not strings as JSON text.
fn row_labels(row: &Value) -> Vec<(String, String)> {
    match row.get("labels") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A latency in ns from a row's `latency_ns` (`lat`), `None` when unknown or negative.
fn latency_at(lat: &Value, key: &str) -> Option<f64> {
    num(lat, key).filter(|v| *v >= 0.0)
}

/// An `interval` row: its window's length (s) and its point, whose end is not yet known.
fn interval_row(row: &Value, lat: &Value) -> (f64, Point) {
    let length = num(row, "elapsed_sec").unwrap_or(0.0).max(0.0);
    let errors = num(row, "error_count")
        .filter(|e| *e >= 0.0 && length > 0.0)
        .map(|e| e / length);
    let point = Point {
        end_sec: 0.0,
        p50: latency_at(lat, "p50"),
        p90: latency_at(lat, "p90"),
        p99: latency_at(lat, "p99"),
        p999: latency_at(lat, "p999"),
        max: latency_at(lat, "max"),
        rate: num(row, "rate_per_sec").filter(|r| *r >= 0.0),
        errors,
    };
    (length, point)
}

/// A sweep's `step` row.
fn step_row(row: &Value, lat: &Value) -> Step {
    Step {
        index: index_at(row, "step"),
        offered: num(row, "offered_rate"),
        rate: num(row, "rate_per_sec").filter(|r| *r >= 0.0),
        p50: latency_at(lat, "p50"),
        p99: latency_at(lat, "p99"),
        p999: latency_at(lat, "p999"),
        errors: num(row, "error_count").filter(|e| *e >= 0.0),
    }
}

/// Each series' timeline from its windows: a window ends where the lengths so far add up.
fn stack_windows(series: &mut [Series], windows: Vec<Vec<(f64, Point)>>) {
    // Time since the run's start: the window lengths added up. The rows' wall-clock
    // `timestamp`s are when each row was printed, and the last windows of a run are printed
    // together at its stop.
    for (s, ws) in series.iter_mut().zip(windows) {
        let mut sum = 0.0;
        for (len, mut p) in ws {
            sum += len;
            p.end_sec = sum;
            s.timeline.push(p);
        }
    }
}

/// A JSON index (a non-negative integer), or `None` for anything else.
fn index_at(v: &Value, key: &str) -> Option<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// A JSON number, or `None` for null, a missing key or another type.
fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// A total row's spectrum, and whether it is whole: its `latency_distribution` ([µs, fraction,
/// count] rows, `--latency-distribution`) when it has one, else the percentiles it lists. The
/// max sits at p = 1 − 1/count.
fn json_spectrum(row: &Value, lat: &Value) -> (Vec<(f64, f64)>, bool) {
    let mut pts = Vec::new();
    let rows = row.get("latency_distribution").and_then(Value::as_array);
    for r in rows.into_iter().flatten() {
        let (Some(us), Some(q)) = (
            r.get(0).and_then(Value::as_f64),
            r.get(1).and_then(Value::as_f64),
        ) else {
            continue;
        };
        if (0.0..1.0).contains(&q) && nines(q) <= SPECTRUM_NINES && us >= 0.0 {
            pts.push((nines(q), us * 1e3));
        }
    }
    let exact = !pts.is_empty();
    if !exact {
        for (key, q) in [
            ("min", 0.0),
            ("p50", 0.5),
            ("p90", 0.9),
            ("p95", 0.95),
            ("p99", 0.99),
            ("p999", 0.999),
        ] {
            if let Some(v) = num(lat, key).filter(|v| *v >= 0.0) {
                pts.push((nines(q), v));
            }
        }
    }
    if let (Some(max), Some(count)) = (num(lat, "max"), num(row, "count")) {
        let x = count.max(1.0).log10().min(SPECTRUM_NINES);
        if max >= 0.0 && pts.last().is_none_or(|&(last, _)| x > last) {
            pts.push((x, max));
        }
    }
    (pts, exact)
}

/// Legend names: the file stem, plus the target and the labels that tell a file's series apart.
fn name_series(inputs: &[Input], series: &mut [Series]) {
    for (i, input) in inputs.iter().enumerate() {
        let of_file: Vec<usize> = (0..series.len())
            .filter(|&s| series[s].input == i)
            .collect();
        let peers_differ = of_file
            .iter()
            .any(|&s| series[s].peer != series[of_file[0]].peer);
        for &s in &of_file {
            let mut name = input.stem.clone();
            if of_file.len() > 1 {
                if peers_differ {
                    name += &format!(" {}", series[s].peer);
                }
                for (k, v) in &series[s].labels {
                    let shared = of_file
                        .iter()
                        .all(|&o| series[o].labels.iter().any(|(ok, ov)| ok == k && ov == v));
                    if !shared {
                        name += &format!(" {k}={v}");
                    }
                }
            }
            series[s].name = name;
        }
    }
}

/// `--title`, else the labels every series has, else the file names.
fn title(inputs: &[Input], series: &[Series], opts: &PlotOptions) -> String {
    if let Some(t) = &opts.title {
        return t.clone();
    }
    let common: Vec<String> = series
        .first()
        .map(|first| {
            first
                .labels
                .iter()
                .filter(|(k, v)| {
                    series
                        .iter()
                        .all(|s| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .unwrap_or_default();
    if !common.is_empty() {
        return format!("connperf: {}", common.join(" "));
    }
    let names: Vec<&str> = inputs.iter().map(|i| i.stem.as_str()).collect();
    format!("connperf: {}", names.join(" vs "))
}

/// Which panels the inputs support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Timeline,
    Spectrum,
    Sweep,
}

fn panels(series: &[Series]) -> Vec<Panel> {
    let mut out = Vec::new();
    if series.iter().any(|s| !s.timeline.is_empty()) {
        out.push(Panel::Timeline);
    }
    if series.iter().any(|s| !s.spectrum.is_empty()) {
        out.push(Panel::Spectrum);
    }
    if series.iter().any(|s| !s.steps.is_empty()) {
        out.push(Panel::Sweep);
    }
    out
}

fn default_px(p: Panel) -> u32 {
    match p {
        Panel::Timeline => LATENCY_PX + THROUGHPUT_PX,
        Panel::Spectrum => SPECTRUM_PX,
        Panel::Sweep => SWEEP_PX,
    }
}

/// The SVG height for these inputs at the default sizes.
fn default_height(panels: &[Panel]) -> u32 {
    TITLE_PX + panels.iter().map(|&p| default_px(p)).sum::<u32>()
}

/// Font size of a caption so that it fits `width_px` (a sans-serif character is about half as
/// wide as the font is high), from `max` down to 10.
fn caption_size(caption: &str, width_px: u32, max: u32) -> u32 {
    let chars = caption.chars().count().max(1) as f64;
    let fits = (f64::from(width_px) * 0.95 / (chars * 0.55)).floor() as u32;
    fits.clamp(10, max)
}

/// A plotting failure (plotters reports them as errors of its backend).
fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Io {
        what: "cannot draw the plot".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The x axis of a latency panel: its range, its name, and how its ticks read (and how many,
/// when not plotters' choice).
struct XAxis<'f> {
    range: std::ops::Range<f64>,
    desc: &'static str,
    ticks: Option<usize>,
    tick: &'f dyn Fn(&f64) -> String,
}

/// Every panel's chart builder: its caption at `caption_px`, its margins and label areas.
fn panel_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    caption_px: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, caption_px))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(80);
    builder
}

/// A panel with latency on a log axis over a linear x.
type LatencyChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, WithKeyPoints<LogCoord<f64>>>>;

/// A latency panel (timeline, spectrum, sweep): the caption at `caption_px`, `x`, and latency
/// from `lo` to `hi` (display units) on `log_axis`, its mesh drawn.
fn latency_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    caption_px: u32,
    x: XAxis,
    (lo, hi): (f64, f64),
    unit_name: &str,
) -> Result<LatencyChart<'a, DB>> {
    let mut chart = panel_builder(area, caption, caption_px)
        .build_cartesian_2d(x.range, log_axis(lo, hi))
        .map_err(draw_err)?;
    let mut mesh = chart.configure_mesh();
    if let Some(n) = x.ticks {
        mesh.x_labels(n);
    }
    mesh.x_desc(x.desc)
        .y_desc(format!("latency ({unit_name})"))
        .x_label_formatter(x.tick)
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// A panel's legend, top left on a light box.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(draw_err)
}

/// Draw every panel the inputs support into one SVG document.
fn render(inputs: &[Input], series: &[Series], opts: &PlotOptions) -> Result<String> {
    let panels = panels(series);
    let height = opts.height.unwrap_or_else(|| default_height(&panels));
    let scale = f64::from(height) / f64::from(default_height(&panels));
    let px = |p: u32| ((f64::from(p) * scale).round() as i32).max(1);
    let title = title(inputs, series, opts);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (opts.width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (head, mut rest) = root.split_vertically(px(TITLE_PX));
        head.titled(&title, (FONT, 24)).map_err(draw_err)?;
        for &p in &panels {
            let (area, below) = rest.split_vertically(px(default_px(p)));
            rest = below;
            match p {
                Panel::Timeline => {
                    let (lat, thr) = area.split_vertically(px(LATENCY_PX));
                    draw_timeline(&lat, &thr, series)?;
                }
                Panel::Spectrum => draw_spectrum(&area, series)?,
                Panel::Sweep => draw_sweep(&area, inputs, series)?,
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Colors of the series, and of a single series' percentile lines.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A series' color, the same in every panel: by its place among all the series.
fn series_color(series: &[Series], s: &Series) -> RGBColor {
    color(series.iter().position(|o| std::ptr::eq(o, s)).unwrap_or(0))
}

/// Display unit of a latency axis whose largest value is `max_ns`: (ns per unit, name).
fn unit(max_ns: f64) -> (f64, &'static str) {
    if max_ns >= 1e6 {
        (1e6, "ms")
    } else {
        (1e3, "µs")
    }
}

/// A log axis from `lo` to `hi` (ns), floored at `FLOOR_NS`, with room above for the legend.
fn log_range(values: impl Iterator<Item = f64>, headroom: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .map(|v| v.max(FLOOR_NS))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then(|| ((lo / 1.5).max(FLOOR_NS * 0.9), hi * headroom))
}

/// A log axis from `lo` to `hi` (display units) labelled 1, 2 and 5 in every decade it spans
/// (only 1 past 4 decades), light grid lines at every digit: each decade that holds data gets
/// labels near it, not just the decades plotters' own choice lands on.
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let (bold, light) = log_ticks(lo, hi);
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// The labelled and the light ticks of `log_axis`.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (bold, light);
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let labelled: &[f64] = if last - first > 4 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    for d in first..=last {
        let base = 10f64.powi(d);
        for digit in 1..=9 {
            let v = base * f64::from(digit);
            // Within the range, allowing for 0.1 * 3 != 0.3.
            if v < lo * (1.0 - 1e-9) || v > hi * (1.0 + 1e-9) {
                continue;
            }
            if labelled.contains(&f64::from(digit)) {
                bold.push(v);
            } else {
                light.push(v);
            }
        }
    }
    (bold, light)
}

/// A linear axis from 0 to a little above the largest value; never empty.
fn linear_max(values: impl Iterator<Item = f64>) -> f64 {
    let hi = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    if hi > 0.0 {
        hi * 1.15
    } else {
        1.0
    }
}

/// A tick label: up to 3 decimals, trailing zeros dropped.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A rate tick: 12000 → 12k.
fn rate_tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{}M", tick(v / 1e6))
    } else if v.abs() >= 1e4 {
        format!("{}k", tick(v / 1e3))
    } else {
        tick(v)
    }
}

/// A latency as people write it: `2 ms`, `150 µs`.
fn human_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{} s", tick(ns / 1e9))
    } else if ns >= 1e6 {
        format!("{} ms", tick(ns / 1e6))
    } else {
        format!("{} µs", tick(ns / 1e3))
    }
}

/// Runs of known values: each run is one unbroken line, an unknown value a gap.
fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => out.last_mut().expect("never empty").push((x, y)),
            _ => {
                if !out.last().expect("never empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// How a line is drawn.
#[derive(Clone, Copy)]
struct Pen {
    color: RGBColor,
    width: u32,
    dashed: bool,
    /// Mark every point (a lone point of a gappy line shows only through its mark).
    marks: bool,
}

/// Draw `lines` of one legend entry (none for `None`) on `chart`: gaps stay gaps, a lone point
/// gets a mark.
fn draw_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: Vec<Vec<(f64, f64)>>,
    pen: Pen,
    label: Option<&str>,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = pen.color.stroke_width(pen.width);
    for line in &lines {
        if pen.dashed {
            chart
                .draw_series(DashedLineSeries::new(line.clone(), 6, 4, style))
                .map_err(draw_err)?;
        } else {
            chart
                .draw_series(LineSeries::new(line.clone(), style))
                .map_err(draw_err)?;
        }
        if pen.marks || line.len() == 1 {
            chart
                .draw_series(
                    line.iter()
                        .map(|&p| Circle::new(p, 2 + pen.width, pen.color.filled())),
                )
                .map_err(draw_err)?;
        }
    }
    let Some(label) = label else {
        return Ok(());
    };
    let dashed = pen.dashed;
    let mark = if pen.marks {
        pen.color.filled()
    } else {
        TRANSPARENT.filled()
    };
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
        .map_err(draw_err)?
        .label(label)
        .legend(move |(x, y)| {
            let (a, b) = if dashed { (7, 12) } else { (10, 10) };
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (a, 0)], style)
                + PathElement::new(vec![(b, 0), (19, 0)], style)
                + Circle::new((10, 0), 3, mark)
        });
    Ok(())
}

/// Latency percentiles per window (log axis) above throughput and errors per second.
fn draw_timeline<DB: DrawingBackend>(
    lat_area: &DrawingArea<DB, Shift>,
    thr_area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<()> {
    let with: Vec<&Series> = series.iter().filter(|s| !s.timeline.is_empty()).collect();
    let t_max = linear_max(
        with.iter()
            .flat_map(|s| s.timeline.iter().map(|p| p.end_sec)),
    ) / 1.15;
    draw_window_latency(lat_area, series, &with, t_max)?;
    draw_window_throughput(thr_area, series, &with, t_max)
}

/// Picks one value of a timeline's window.
type PointPick = fn(&Point) -> Option<f64>;

/// The timeline's latency lines: p99 and max with several series, five percentiles for one.
fn window_latency_lines(many: bool) -> Vec<(&'static str, PointPick)> {
    if many {
        vec![("p99", |p| p.p99), ("max", |p| p.max)]
    } else {
        vec![
            ("p50", |p| p.p50),
            ("p90", |p| p.p90),
            ("p99", |p| p.p99),
            ("p99.9", |p| p.p999),
            ("max", |p| p.max),
        ]
    }
}

/// The upper timeline panel: the latency lines of every series with windows.
fn draw_window_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    with: &[&Series],
    t_max: f64,
) -> Result<()> {
    let many = with.len() > 1;
    let compact = with.len() > COMPACT_LEGEND;
    let lines = window_latency_lines(many);
    // The axis spans the lines drawn (p99 and max only, with several series).
    let values = with.iter().flat_map(|s| {
        s.timeline
            .iter()
            .flat_map(|p| lines.iter().filter_map(|(_, pick)| pick(p)))
    });
    let (lo, hi) = log_range(values, 6.0).unwrap_or(NO_LATENCY_RANGE);
    let (div, unit_name) = unit(hi / 6.0);
    let caption = window_latency_caption(with, compact);
    let size = caption_size(&caption, area.dim_in_pixel().0, 18);
    let x = XAxis {
        range: 0.0..t_max,
        desc: "time since start (s)",
        ticks: None,
        tick: &|v| tick(*v),
    };
    let mut chart = latency_chart(area, &caption, size, x, (lo / div, hi / div), unit_name)?;
    let floor = FLOOR_NS / div;
    for s in with {
        for (li, (pname, pick)) in lines.iter().enumerate() {
            let segs = segments(
                s.timeline
                    .iter()
                    .map(|p| (p.end_sec, pick(p).map(|v| (v / div).max(floor)))),
            );
            let (color, label) = percentile_look(series, s, many, li, pname);
            // With several series their p99 is thick, their max thin; one series' are all
            // thick. Max is dashed either way.
            let pen = Pen {
                color,
                width: if many && li > 0 { 1 } else { 2 },
                dashed: *pname == "max",
                marks: false,
            };
            // Past COMPACT_LEGEND series, one legend entry each (its p99); the caption says
            // which line is which.
            draw_line(
                &mut chart,
                segs,
                pen,
                legend_entry(compact, li == 0, &label, s),
            )?;
        }
    }
    draw_legend(&mut chart)
}

/// The upper timeline panel's caption: which line is which when compact, and the series in
/// which no request completed.
fn window_latency_caption(with: &[&Series], compact: bool) -> String {
    let mut caption = if compact {
        "latency per window (from the intended send time; solid: p99, dashed: max)".to_string()
    } else {
        "latency per window (from the intended send time)".to_string()
    };
    let none_completed: Vec<&str> = with
        .iter()
        .filter(|s| {
            s.timeline
                .iter()
                .all(|p| p.p50.is_none() && p.max.is_none())
        })
        .map(|s| s.name.as_str())
        .collect();
    if !none_completed.is_empty() {
        caption += &format!(
            "; no request completed, latency unknown: {}",
            none_completed.join(", ")
        );
    }
    caption
}

/// The color and legend text of percentile line `li` (`pname`) of `s`: with several series the
/// series' color and name, for one series a color per percentile.
fn percentile_look(
    series: &[Series],
    s: &Series,
    many: bool,
    li: usize,
    pname: &str,
) -> (RGBColor, String) {
    if many {
        (series_color(series, s), format!("{} {pname}", s.name))
    } else {
        (color(li), pname.to_string())
    }
}

/// A line's legend entry: `full` while every line has one; past `COMPACT_LEGEND` series only
/// the `main` line of `s`, under the series' name.
fn legend_entry<'t>(compact: bool, main: bool, full: &'t str, s: &'t Series) -> Option<&'t str> {
    match (compact, main) {
        (false, _) => Some(full),
        (true, true) => Some(s.name.as_str()),
        (true, false) => None,
    }
}

/// A panel with a linear y axis over a linear x.
type LinearChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The lower timeline panel: requests and errors per second of every series with windows.
fn draw_window_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    with: &[&Series],
    t_max: f64,
) -> Result<()> {
    let compact = with.len() > COMPACT_LEGEND;
    let errors_unknown = with
        .iter()
        .any(|s| s.timeline.iter().all(|p| p.errors.is_none()));
    let y_max = linear_max(with.iter().flat_map(|s| {
        s.timeline
            .iter()
            .flat_map(|p| [p.rate, p.errors].into_iter().flatten())
    })) * 1.3;
    let caption = throughput_caption(compact, errors_unknown);
    let mut chart = throughput_chart(area, &caption, t_max, y_max)?;
    for s in with {
        draw_window_rates(&mut chart, series, s, with.len() > 1, compact)?;
    }
    draw_legend(&mut chart)
}

/// The lower timeline panel's caption: which line is which when compact, and why errors are
/// missing when some input does not carry them.
fn throughput_caption(compact: bool, errors_unknown: bool) -> String {
    let mut notes = Vec::new();
    if compact {
        notes.push("solid: req/s, dashed with dots: errors/s");
    }
    if errors_unknown {
        notes.push(
            "logs written before connperf logged counters carry no errors: none drawn for them",
        );
    }
    let mut caption = "throughput and errors per window".to_string();
    if !notes.is_empty() {
        caption += &format!(" ({})", notes.join("; "));
    }
    caption
}

/// The lower timeline panel's chart: time from 0 to `t_max` s, rates from 0 to `y_max`, its
/// mesh drawn.
fn throughput_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    t_max: f64,
    y_max: f64,
) -> Result<LinearChart<'a, DB>> {
    let mut chart = panel_builder(area, caption, 16)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("per second (req/s, errors/s)")
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| rate_tick(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// One series' requests per second and, where its input carries them, its errors per second.
fn draw_window_rates<'a, DB: DrawingBackend + 'a>(
    chart: &mut LinearChart<'a, DB>,
    series: &[Series],
    s: &Series,
    many: bool,
    compact: bool,
) -> Result<()> {
    let prefix = if many {
        format!("{} ", s.name)
    } else {
        String::new()
    };
    let rate = segments(s.timeline.iter().map(|p| (p.end_sec, p.rate)));
    let pen = Pen {
        color: if many {
            series_color(series, s)
        } else {
            color(0)
        },
        width: 2,
        dashed: false,
        marks: false,
    };
    let label = format!("{prefix}req/s");
    draw_line(chart, rate, pen, legend_entry(compact, true, &label, s))?;
    if s.timeline.iter().any(|p| p.errors.is_some()) {
        let errs = segments(s.timeline.iter().map(|p| (p.end_sec, p.errors)));
        let pen = Pen {
            color: if many {
                series_color(series, s)
            } else {
                color(1)
            },
            width: 2,
            dashed: true,
            marks: true,
        };
        let label = format!("{prefix}errors/s");
        draw_line(chart, errs, pen, legend_entry(compact, false, &label, s))?;
    }
    Ok(())
}

/// The label of a spectrum tick at `x` decades: 0 %, 90 %, 99 %, 99.9 %.
fn percentile_tick(x: f64) -> String {
    let n = x.round();
    if (x - n).abs() > 1e-6 {
        return format!("{}%", tick((1.0 - 10f64.powf(-x)) * 100.0));
    }
    match n as i64 {
        i64::MIN..=0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99.{}%", "9".repeat((n - 2) as usize)).replace(".%", "%"),
    }
}

/// Latency against percentile on the 1/(1−p) axis, one line per series.
fn draw_spectrum<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<()> {
    let with: Vec<(usize, &Series)> = series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.spectrum.is_empty())
        .collect();
    let values = with
        .iter()
        .flat_map(|(_, s)| s.spectrum.iter().map(|&(_, v)| v));
    let Some((lo, hi)) = log_range(values, 4.0) else {
        return Ok(());
    };
    let (div, unit_name) = unit(hi / 4.0);
    let caption = if with.iter().all(|(_, s)| s.spectrum_exact) {
        "latency by percentile (whole run)"
    } else {
        "latency by percentile (whole run; markers: the only percentiles a JSON total lists)"
    };
    let x = XAxis {
        range: 0.0..SPECTRUM_NINES,
        desc: "percentile (1/(1−p) scale)",
        ticks: Some(6),
        tick: &|v| percentile_tick(*v),
    };
    let mut chart = latency_chart(area, caption, 18, x, (lo / div, hi / div), unit_name)?;
    let floor = FLOOR_NS / div;
    for &(i, s) in &with {
        let line: Vec<(f64, f64)> = s
            .spectrum
            .iter()
            .map(|&(x, v)| (x, (v / div).max(floor)))
            .collect();
        let pen = Pen {
            color: color(i),
            width: 2,
            dashed: false,
            marks: !s.spectrum_exact,
        };
        draw_line(&mut chart, vec![line], pen, Some(&s.name))?;
    }
    draw_legend(&mut chart)?;
    Ok(())
}

/// A sweep: p50, p99 and p99.9 against the achieved rate, the SLO's latency bounds, the knee.
fn draw_sweep<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    inputs: &[Input],
    series: &[Series],
) -> Result<()> {
    let with: Vec<&Series> = series.iter().filter(|s| !s.steps.is_empty()).collect();
    let bounds = slo_bounds(inputs);
    let values = with
        .iter()
        .flat_map(|s| {
            s.steps
                .iter()
                .flat_map(|p| [p.p50, p.p99, p.p999].into_iter().flatten())
        })
        .chain(bounds.iter().map(|b| b.1));
    let (lo, hi) = log_range(values, 6.0).unwrap_or(NO_LATENCY_RANGE);
    let knees = knee_points(inputs, &with);
    let x_max = linear_max(
        with.iter()
            .flat_map(|s| s.steps.iter().filter_map(|p| p.rate))
            .chain(knees.iter().flat_map(|k| k.2.iter().map(|p| p.0))),
    );
    let (div, unit_name) = unit(hi / 6.0);
    let compact = with.len() > COMPACT_LEGEND;
    let caption = sweep_caption(inputs, &with, compact);
    let size = caption_size(&caption, area.dim_in_pixel().0, 18);
    let x = XAxis {
        range: 0.0..x_max,
        desc: "achieved throughput (req/s)",
        ticks: None,
        tick: &|v| rate_tick(*v),
    };
    let mut chart = latency_chart(area, &caption, size, x, (lo / div, hi / div), unit_name)?;
    let axes = SweepAxes { lo, hi, div, x_max };
    let many = with.len() > 1;
    for s in &with {
        let odd = last_step_caveat(inputs, s.input).and_then(|_| last_step(s));
        draw_sweep_lines(&mut chart, series, s, odd, many, compact, axes)?;
    }
    draw_slo_bounds(&mut chart, &bounds, sweep_legend_box(&with), axes)?;
    draw_knees(&mut chart, inputs, &with, &knees, axes)?;
    draw_legend(&mut chart)
}

/// The sweep panel's scales: latency from `lo` to `hi` ns shown in units of `div` ns, achieved
/// rate from 0 to `x_max`.
#[derive(Debug, Clone, Copy)]
struct SweepAxes {
    lo: f64,
    hi: f64,
    div: f64,
    x_max: f64,
}

impl SweepAxes {
    /// A latency (ns) in display units, raised to the floor of the log axis.
    fn y(&self, ns: f64) -> f64 {
        (ns / self.div).max(FLOOR_NS / self.div)
    }
}

/// The SLOs' latency bounds (name, ns), each once however many sweeps share it.
fn slo_bounds(inputs: &[Input]) -> Vec<(String, f64)> {
    let mut bounds: Vec<(String, f64)> = Vec::new();
    for input in inputs {
        let Some((_, slo)) = input.knee.as_ref().and_then(|k| k.slo.as_ref()) else {
            continue;
        };
        for b in slo {
            let (name, d) = match b {
                Bound::Percentile(p, d) => (format!("p{}", tick(*p)), d),
                Bound::Max(d) => ("max".into(), d),
                Bound::Mean(d) => ("mean".into(), d),
                Bound::Errors(_) => continue,
            };
            let bound = (name, d.as_nanos() as f64);
            if !bounds.contains(&bound) {
                bounds.push(bound);
            }
        }
    }
    bounds
}

/// A knee as drawn: its input, its offered rate, and per series the knee step's point
/// (achieved rate, p99).
type KneeAt = (usize, f64, Vec<(f64, Option<f64>)>);

/// The knee of every input that has one. The step is found by `knee_step`, else (older files)
/// by its offered rate; when no step is found the line sits at the offered rate.
fn knee_points(inputs: &[Input], with: &[&Series]) -> Vec<KneeAt> {
    inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| {
            let knee = input.knee.as_ref()?;
            let rate = knee.rate?;
            let mut at: Vec<(f64, Option<f64>)> = with
                .iter()
                .filter(|s| s.input == i)
                .filter_map(|s| {
                    let step = s.steps.iter().find(|p| match knee.step {
                        Some(k) => p.index == Some(k),
                        None => p
                            .offered
                            .is_some_and(|o| (o - rate).abs() <= 1e-9 * rate.abs().max(1.0)),
                    })?;
                    Some((step.rate?, step.p99))
                })
                .collect();
            if at.is_empty() {
                at.push((rate, None));
            }
            Some((i, rate, at))
        })
        .collect()
}

/// Why the last step of input `input` did not measure the target, when its sweep was stopped
/// by the generator or a signal.
fn last_step_caveat(inputs: &[Input], input: usize) -> Option<&'static str> {
    match inputs[input].knee.as_ref()?.stopped.as_deref()? {
        "generator" => Some("generator limit, not the target"),
        "signal" => Some("cut short"),
        _ => None,
    }
}

/// The last step of a sweep: the one with the highest `step`, else the last row.
fn last_step(s: &Series) -> Option<&Step> {
    let by_index = s
        .steps
        .iter()
        .filter(|p| p.index.is_some())
        .max_by_key(|p| p.index);
    by_index.or(s.steps.last())
}

/// The sweep panel's caption: which line is which when compact, the SLOs, the sweeps without a
/// knee, the hollow last steps, the steps without latency.
fn sweep_caption(inputs: &[Input], with: &[&Series], compact: bool) -> String {
    let slo_text = slo_texts(inputs);
    let no_knee: Vec<&str> = inputs
        .iter()
        .filter(|i| i.knee.as_ref().is_some_and(|k| k.rate.is_none()))
        .map(|i| i.stem.as_str())
        .collect();
    let mut caption = "sweep: latency vs achieved throughput".to_string();
    if compact {
        caption += " (thin: p50, thick: p99, dashed: p99.9)";
    }
    if !slo_text.is_empty() {
        caption += &format!(" (SLO {})", slo_text.join("; "));
    }
    if !no_knee.is_empty() {
        caption += &format!("; no step met the SLO: {}", no_knee.join(", "));
    }
    // A sweep stopped by the generator or a signal: its last step measured the generator or
    // a part of a step, not the target; it is drawn hollow and unconnected.
    for (i, input) in inputs.iter().enumerate() {
        if let Some(why) = last_step_caveat(inputs, i) {
            if with.iter().any(|s| s.input == i) {
                let whose = if inputs.len() > 1 {
                    format!("{} ", input.stem)
                } else {
                    String::new()
                };
                caption += &format!("; hollow: {whose}last step: {why}");
            }
        }
    }
    let empty_steps = empty_steps(with);
    if !empty_steps.is_empty() {
        caption += &format!(
            "; no request completed, latency unknown: {}",
            empty_steps.join(", ")
        );
    }
    caption
}

/// The SLOs as given to `--slo`, each once.
fn slo_texts(inputs: &[Input]) -> Vec<String> {
    let mut slo_text: Vec<String> = Vec::new();
    for i in inputs {
        if let Some((text, _)) = i.knee.as_ref().and_then(|k| k.slo.as_ref()) {
            if !slo_text.contains(text) {
                slo_text.push(text.clone());
            }
        }
    }
    slo_text
}

/// The steps in which nothing completed, which have no latency to draw: each named with its
/// offered rate and errors, for the caption.
fn empty_steps(with: &[&Series]) -> Vec<String> {
    with.iter()
        .flat_map(|s| {
            s.steps
                .iter()
                .enumerate()
                .filter(|(_, p)| p.p50.is_none() && p.p99.is_none() && p.p999.is_none())
                .map(move |(n, p)| {
                    let offered = p.offered.map_or("?".into(), rate_tick);
                    let errors = p.errors.map_or("errors unknown".into(), |e| {
                        format!("{} errors", rate_tick(e))
                    });
                    format!("{} step {n} ({offered} req/s offered, {errors})", s.name)
                })
        })
        .collect()
}

/// One sweep's p50, p99 and p99.9 through its steps by achieved rate; its `odd` last step (one
/// that did not measure the target) is left out of the lines and drawn hollow.
fn draw_sweep_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut LatencyChart<'a, DB>,
    series: &[Series],
    s: &Series,
    odd: Option<&Step>,
    many: bool,
    compact: bool,
    axes: SweepAxes,
) -> Result<()> {
    type Pick = fn(&Step) -> Option<f64>;
    let lines: [(&str, Pick, u32); 3] = [
        ("p50", |p| p.p50, 1),
        ("p99", |p| p.p99, 2),
        ("p99.9", |p| p.p999, 1),
    ];
    let mut steps: Vec<&Step> = s
        .steps
        .iter()
        .filter(|p| p.rate.is_some() && !odd.is_some_and(|o| std::ptr::eq(o, *p)))
        .collect();
    steps.sort_by(|a, b| {
        a.rate
            .partial_cmp(&b.rate)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (li, (pname, pick, width)) in lines.iter().enumerate() {
        let segs = segments(
            steps
                .iter()
                .map(|p| (p.rate.unwrap_or(0.0), pick(p).map(|v| axes.y(v)))),
        );
        let (c, label) = percentile_look(series, s, many, li, pname);
        let pen = Pen {
            color: c,
            width: *width,
            dashed: li == 2,
            marks: true,
        };
        draw_line(chart, segs, pen, legend_entry(compact, li == 1, &label, s))?;
        if let Some((x, y)) = odd.and_then(|p| Some((p.rate?, pick(p)?))) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, axes.y(y)),
                    4 + width,
                    c.stroke_width(2),
                )))
                .map_err(draw_err)?;
        }
    }
    Ok(())
}

/// The sweep legend's box (upper left), (height, width) px, estimated from its entries: its
/// rows are about 18 px, its characters about 7 px at 13 px.
fn sweep_legend_box(with: &[&Series]) -> (i32, i32) {
    let (entries, longest) = if with.len() > COMPACT_LEGEND {
        (
            with.len(),
            with.iter().map(|s| s.name.chars().count()).max(),
        )
    } else if with.len() > 1 {
        (
            with.len() * 3,
            with.iter().map(|s| s.name.chars().count() + 6).max(),
        )
    } else {
        (3, Some(5))
    };
    let legend_h = i32::try_from(entries).unwrap_or(i32::MAX / 32) * 18 + 20;
    let legend_w = i32::try_from(longest.unwrap_or(0)).unwrap_or(i32::MAX / 32) * 7 + 60;
    (legend_h, legend_w)
}

/// The SLOs' latency bounds: dashed lines across the panel, each labelled at its left end,
/// clear of the legend box (`legend_h`, `legend_w`).
fn draw_slo_bounds<'a, DB: DrawingBackend + 'a>(
    chart: &mut LatencyChart<'a, DB>,
    bounds: &[(String, f64)],
    (legend_h, legend_w): (i32, i32),
    axes: SweepAxes,
) -> Result<()> {
    let x_max = axes.x_max;
    let (plot_x, plot_y) = chart.plotting_area().get_pixel_range();
    let plot_top = plot_y.start;
    let plot_w = f64::from((plot_x.end - plot_x.start).max(1));
    for (n, (name, ns)) in bounds.iter().enumerate() {
        let y = axes.y(*ns);
        let style = RGBColor(90, 90, 90).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y), (x_max, y)],
                10,
                5,
                style,
            ))
            .map_err(draw_err)?;
        let text = format!("SLO {name} {}", human_ns(*ns));
        // At the left edge, above its line: the steps' lines run to the right edge. Labels of
        // bounds that sit close together are staggered; a label at the height of the legend
        // (upper left) goes right of it.
        let (_, py) = chart.backend_coord(&(0.0, y));
        let beside_legend = py - 18 < plot_top + legend_h;
        let shift = if beside_legend {
            f64::from(legend_w) / plot_w
        } else {
            0.0
        };
        let x = x_max * (0.005 + shift + 0.12 * (n % 2) as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (x, y),
                (FONT, 13)
                    .into_font()
                    .color(&RGBColor(60, 60, 60))
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The knees: a vertical line at each knee step's achieved rate, a circle on its p99, and one
/// label per input in the headroom above the data.
fn draw_knees<'a, DB: DrawingBackend + 'a>(
    chart: &mut LatencyChart<'a, DB>,
    inputs: &[Input],
    with: &[&Series],
    knees: &[KneeAt],
    axes: SweepAxes,
) -> Result<()> {
    let SweepAxes { lo, hi, div, x_max } = axes;
    for (k, (input, rate, at)) in knees.iter().enumerate() {
        let style = BLACK.stroke_width(2);
        let mut xs: Vec<f64> = Vec::new();
        for &(x, p99) in at {
            if !xs.contains(&x) {
                chart
                    .draw_series(LineSeries::new(vec![(x, lo / div), (x, hi / div)], style))
                    .map_err(draw_err)?;
                xs.push(x);
            }
            if let Some(y) = p99 {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (x, axes.y(y)),
                        8,
                        BLACK.stroke_width(2),
                    )))
                    .map_err(draw_err)?;
            }
        }
        let x = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let label = knee_label(inputs, with, *input, *rate);
        // Right of the line, or left of it near the right edge, where it would be cut off.
        let (at, h) = if x > x_max * 0.7 {
            (x - x_max * 0.004, HPos::Right)
        } else {
            (x + x_max * 0.004, HPos::Left)
        };
        // In the headroom above the data, one label per input, each a line below the last (on
        // the log axis: a fixed ratio).
        let y = (hi / div) / 1.15 / (hi / lo).powf(0.06 * k as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (at, y),
                (FONT, 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(h, VPos::Top)),
            )))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// A knee's label: its offered rate (a total when its input has several series), and its
/// input's name when there are several inputs.
fn knee_label(inputs: &[Input], with: &[&Series], input: usize, rate: f64) -> String {
    let total = if with.iter().filter(|s| s.input == input).count() > 1 {
        " in total"
    } else {
        ""
    };
    if inputs.len() > 1 {
        format!(
            " knee {}: {} req/s offered{total}",
            inputs[input].stem,
            rate_tick(rate)
        )
    } else {
        format!(" knee: {} req/s offered{total}", rate_tick(rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn percentile_ticks() {
        let got: Vec<String> = (0..=5).map(|x| percentile_tick(x as f64)).collect();
        assert_eq!(got, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(nines(0.99).round(), 2.0);
    }

    #[test]
    fn unknowns_are_gaps() {
        let segs = segments(
            [
                (0.0, Some(1.0)),
                (1.0, None),
                (2.0, Some(2.0)),
                (3.0, Some(3.0)),
            ]
            .into_iter(),
        );
        assert_eq!(segs, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
        assert!(segments([(0.0, None)].into_iter()).is_empty());
    }

    #[test]
    fn log_ticks_label_every_decade_of_the_range() {
        let (bold, light) = log_ticks(0.1, 10.0);
        assert_eq!(bold, [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]);
        assert!(light.contains(&3.0) && light.iter().any(|v| (v - 0.3).abs() < 1e-12));
        // Data at 0.2-0.4 ms on a 0.15-2.4 axis: labels next to it, not only 1 and 2.
        let (bold, _) = log_ticks(0.15, 2.4);
        assert_eq!(bold, [0.2, 0.5, 1.0, 2.0]);
        let (bold, _) = log_ticks(0.0009, 1000.0);
        assert_eq!(bold.len(), 7);
        assert_eq!(log_ticks(0.0, 1.0), (vec![], vec![]));
    }

    #[test]
    fn ranges_never_collapse() {
        assert_eq!(log_range(std::iter::empty(), 2.0), None);
        let (lo, hi) = log_range([0.0, 0.0].into_iter(), 2.0).unwrap();
        assert!(lo > 0.0 && hi > lo);
        assert_eq!(linear_max([0.0].into_iter()), 1.0);
        assert_eq!(linear_max(std::iter::empty()), 1.0);
    }

    #[test]
    fn null_latencies_stay_unknown() {
        let text = concat!(
            r#"{"kind":"interval","peer":"a:1","interval":0,"elapsed_sec":1.0,"rate_per_sec":0.0,"error_count":3,"latency_ns":null}"#,
            "\n",
            r#"{"kind":"interval","peer":"a:1","interval":1,"elapsed_sec":1.0,"rate_per_sec":5.0,"error_count":0,"latency_ns":{"p50":1000,"p90":null,"p99":3000,"p999":4000,"max":5000}}"#,
            "\n"
        );
        let (_, s) = read_jsonl(text, "f", 0).unwrap();
        assert_eq!(s.len(), 1);
        let t = &s[0].timeline;
        assert_eq!((t[0].end_sec, t[1].end_sec), (1.0, 2.0));
        assert_eq!((t[0].p50, t[0].errors), (None, Some(3.0)));
        assert_eq!((t[1].p50, t[1].p90), (Some(1000.0), None));
    }

    #[test]
    fn json_spectrum_prefers_the_distribution() {
        let lat: Value =
            serde_json::from_str(r#"{"min":1000,"p50":2000,"p99":null,"max":9000}"#).unwrap();
        let row: Value = serde_json::from_str(r#"{"count":100}"#).unwrap();
        let (pts, exact) = json_spectrum(&row, &lat);
        assert!(!exact);
        assert_eq!(
            pts,
            vec![(0.0, 1000.0), (nines(0.5), 2000.0), (2.0, 9000.0)]
        );
        let row: Value = serde_json::from_str(
            r#"{"count":100,"latency_distribution":[[1.0,0.0,1],[2.0,0.5,50],[9.0,1.0,100]]}"#,
        )
        .unwrap();
        let (pts, exact) = json_spectrum(&row, &lat);
        assert!(exact);
        assert_eq!(
            pts,
            vec![(0.0, 1000.0), (nines(0.5), 2000.0), (2.0, 9000.0)]
        );
    }

    #[test]
    fn an_interval_log_gives_one_series_per_target_from_its_latency_histograms() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let labels = vec![("host".to_string(), "a".to_string())];
        let run = histlog::RunInfo {
            format: histlog::LOG_FORMAT,
            workers: 1,
            udp: false,
            ephemeral: false,
        };
        let mut log = histlog::LogWriter::new(Vec::new(), start, &labels, run).unwrap();
        let second = Duration::from_secs(1);
        let mut h = empty_hist();
        h.record(2_000_000).unwrap();
        h.record(4_000_000).unwrap();
        let empty = empty_hist();
        for (w, (a, b)) in [(&h, &empty), (&empty, &h)].into_iter().enumerate() {
            let at = start + second * w as u32;
            for (peer, hist) in [("a:1", a), ("b:2", b)] {
                for kind in [Kind::Latency, Kind::Service] {
                    log.write(&log.tag(kind, peer), at, second, hist).unwrap();
                }
            }
        }
        let s = read_hlog(&log.into_inner(), "f", 0).unwrap();
        let peers: Vec<&str> = s.iter().map(|s| s.peer.as_str()).collect();
        assert_eq!(peers, ["a:1", "b:2"]);
        assert_eq!(s[0].labels, labels);
        let a = &s[0].timeline;
        assert_eq!((a[0].end_sec, a[1].end_sec), (1.0, 2.0));
        assert_eq!((a[0].rate, a[1].rate), (Some(2.0), Some(0.0)));
        assert_eq!(a[0].max, Some(h.max() as f64));
        // An empty window's latency is unknown, not 0; errors are not in the log.
        assert_eq!((a[1].p50, a[1].max, a[0].errors), (None, None, None));
        assert_eq!(s[1].timeline[0].p99, None);
        assert!(s.iter().all(|s| s.spectrum_exact && !s.spectrum.is_empty()));
    }

    #[test]
    fn exact_spectrum_ends_at_the_max() {
        let mut h = empty_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = exact_spectrum(&h);
        let &(x, v) = s.last().unwrap();
        assert!(x >= 3.0 - 1e-9, "{x}");
        assert_eq!(v, h.highest_equivalent(h.max()) as f64);
        assert_eq!(s[0].0, 0.0);
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
