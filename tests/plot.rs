//! `connperf plot`: SVGs from a real short run's interval log and JSON Lines, a comparison of two
//! logs, a sweep fixture, and bad inputs.
//!
//! Its own harness (libtest-mimic, `harness = false`): the tests that render the SVG need
//! `rsvg-convert` (Debian `librsvg2-bin`); where it is missing they are reported as ignored, with
//! the reason printed once to stderr, never as passed. The others always run.
//! `cargo test --test plot NAME` filters as usual.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

mod common;

use common::proc::{self, Outcome};

/// Default size of an SVG with the timeline and the spectrum (plot.rs: 50 + 420 + 260 + 460).
const TIMELINE_AND_SPECTRUM: (u32, u32) = (1200, 1190);
/// Default size of an SVG with only the sweep panel (50 + 460).
const SWEEP_ONLY: (u32, u32) = (1200, 510);

/// A sweep as `connect --sweep` prints it: steps, then the knee.
const SWEEP: &str = r#"{"kind":"step","step":0,"peer":"127.0.0.1:9100","offered_rate":1000.0,"rate_per_sec":998.7,"count":4990,"latency_ns":{"min":20000,"mean":90000.5,"p50":80000,"p90":120000,"p95":150000,"p99":300000,"p999":900000,"max":1500000},"error_count":0,"generator_cpu_sec":0.12,"verdict":"pass","reasons":[],"future_key":{"x":1}}
{"kind":"step","step":1,"peer":"127.0.0.1:9100","offered_rate":2000.0,"rate_per_sec":1999.1,"count":9990,"latency_ns":{"min":20000,"mean":95000.0,"p50":85000,"p90":130000,"p95":170000,"p99":400000,"p999":1100000,"max":2500000},"error_count":0,"generator_cpu_sec":0.2,"verdict":"pass","reasons":[]}
{"kind":"step","step":2,"peer":"127.0.0.1:9100","offered_rate":4000.0,"rate_per_sec":3990.2,"count":19950,"latency_ns":{"min":21000,"mean":120000.0,"p50":95000,"p90":200000,"p95":400000,"p99":1500000,"p999":3000000,"max":6000000},"error_count":2,"generator_cpu_sec":0.4,"verdict":"pass","reasons":[]}
{"kind":"step","step":3,"peer":"127.0.0.1:9100","offered_rate":8000.0,"rate_per_sec":6100.5,"count":30500,"latency_ns":{"min":25000,"mean":900000.0,"p50":400000,"p90":5000000,"p95":9000000,"p99":20000000,"p999":45000000,"max":60000000},"error_count":40,"generator_cpu_sec":0.8,"verdict":"fail","reasons":["p99 20 ms > 2 ms"]}
{"kind":"step","step":4,"peer":"127.0.0.1:9100","offered_rate":16000.0,"rate_per_sec":6300.0,"count":31500,"latency_ns":{"min":30000,"mean":5000000.0,"p50":3000000,"p90":40000000,"p95":60000000,"p99":90000000,"p999":null,"max":120000000},"error_count":900,"generator_cpu_sec":1.0,"verdict":"fail","reasons":["p99 90 ms > 2 ms"]}
{"kind":"knee","knee_rate":4000.0,"slo":"p99=2ms,p99.9=10ms,errors=1%","max_error_rate":100.0}
"#;

/// The files of one short real run, made once for every test.
struct Run {
    dir: PathBuf,
    hlog: String,
    jsonl: String,
}

/// `connect --demo -d 2s -i 250ms --json-stream --hdr-log` into `target/tmp/plot`.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plot");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create target/tmp/plot");
        let hlog = dir.join("run.hlog").display().to_string();
        let mut p = proc::spawn(
            &[
                "connect",
                "--demo",
                "-d",
                "2s",
                "-i",
                "250ms",
                "--json-stream",
                "--hdr-log",
                &hlog,
                "--label",
                "host=t1",
            ],
            None,
        );
        let out = p.finish(Duration::from_secs(30));
        out.assert_ok("connect --demo");
        let jsonl = dir.join("run.jsonl");
        std::fs::write(&jsonl, out.text() + "\n").expect("write run.jsonl");
        Run {
            hlog,
            jsonl: jsonl.display().to_string(),
            dir,
        }
    })
}

/// A file in the run's directory holding `content`.
fn fixture(name: &str, content: &str) -> String {
    let p = run().dir.join(name);
    std::fs::write(&p, content).expect("write fixture");
    p.display().to_string()
}

/// `connperf plot ARGS`, finished.
fn plot(args: &[&str]) -> Outcome {
    let mut argv = vec!["plot"];
    argv.extend_from_slice(args);
    proc::spawn(&argv, None).finish(Duration::from_secs(30))
}

/// Plot `files` into `out` (in the run's directory) with `extra` flags; the SVG's text.
fn plot_ok(files: &[&str], out: &str, extra: &[&str]) -> (String, String) {
    let svg = run().dir.join(out).display().to_string();
    let mut args: Vec<&str> = files.to_vec();
    args.extend(["-o", &svg]);
    args.extend_from_slice(extra);
    let o = plot(&args);
    o.assert_clean();
    assert!(o.err.is_empty(), "plot {files:?}: stderr {}", o.err);
    let text = std::fs::read_to_string(&svg).expect("read the SVG");
    assert!(text.starts_with("<svg"), "not an SVG: {}", &text[..80]);
    assert!(
        !text.contains("href") && !text.contains("url("),
        "the SVG refers to something outside itself"
    );
    (svg, text)
}

/// The contents of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn assert_has(svg: &str, want: &[&str]) {
    let t = texts(svg);
    for w in want {
        assert!(
            t.iter().any(|s| s == w),
            "no text {w:?} in the SVG; its texts: {t:?}"
        );
    }
}

/// Either latency unit, whichever the run's values picked.
fn has_latency_axis(svg: &str) -> bool {
    let t = texts(svg);
    t.iter().any(|s| s == "latency (ms)" || s == "latency (µs)")
}

/// `rsvg-convert` renders `svg` to a PNG; its (width, height) from the IHDR chunk.
fn render(svg: &str) -> (u32, u32) {
    let png = format!("{svg}.png");
    let o = Command::new("rsvg-convert")
        .args(["-o", &png, svg])
        .output()
        .expect("run rsvg-convert");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "rsvg-convert {svg}: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let b = std::fs::read(&png).expect("read the PNG");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Why rendering tests cannot run here, if they cannot.
fn rsvg_missing() -> Option<String> {
    match Command::new("rsvg-convert").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("rsvg-convert --version failed: {:?}", o.status)),
        Err(e) => Some(format!(
            "rsvg-convert not found ({e}): apt-get install librsvg2-bin"
        )),
    }
}

/// A bad input: exit 2, one stderr line, naming `name` (and whatever else `want` lists).
fn assert_rejected(args: &[&str], want: &[&str]) {
    let o = plot(args);
    assert_eq!(o.status.code(), Some(2), "plot {args:?}: {o:?}");
    let lines = o.stderr_lines();
    assert_eq!(lines.len(), 1, "plot {args:?}: stderr {:?}", o.err);
    assert!(lines[0].starts_with("connperf: "), "{}", lines[0]);
    for w in want {
        assert!(lines[0].contains(w), "{:?} does not say {w:?}", lines[0]);
    }
}

// ---- always run ----

fn hlog_has_timeline_and_spectrum() {
    let (_, svg) = plot_ok(&[&run().hlog], "hlog.svg", &[]);
    assert_has(
        &svg,
        &[
            "connperf: host=t1",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "req/s",
            "run",
            "time since start (s)",
            "per second (req/s, errors/s)",
            "percentile (1/(1−p) scale)",
            "0%",
            "90%",
            "99%",
            "99.9%",
            "99.99%",
            "99.999%",
        ],
    );
    assert!(has_latency_axis(&svg));
    // The log carries each window's counters: its errors are drawn, and no caption says they
    // are missing.
    assert!(
        texts(&svg).iter().any(|t| t.ends_with("errors/s")),
        "{:?}",
        texts(&svg)
    );
    assert!(!svg.contains("carry no errors"));
}

/// A log written before connperf logged counters (no `#connperf-` lines): its errors are
/// unknown, so none are drawn (not a line at 0) and the caption says why.
fn an_old_log_draws_no_errors_and_says_so() {
    let r = run();
    let text = std::fs::read_to_string(&r.hlog).unwrap();
    assert!(text.contains("#connperf-counters"), "{text}");
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("#connperf-"))
        .map(|l| format!("{l}\n"))
        .collect();
    let f = r.dir.join("old.hlog");
    std::fs::write(&f, old).unwrap();
    let (_, svg) = plot_ok(&[&f.display().to_string()], "old.svg", &[]);
    assert!(!texts(&svg).iter().any(|t| t.ends_with("errors/s")));
    assert!(svg.contains("carry no errors"));
}

fn jsonl_has_errors_and_percentile_markers() {
    let (_, svg) = plot_ok(&[&run().jsonl], "jsonl.svg", &["--title", "demo <run>"]);
    assert_has(
        &svg,
        &["demo &lt;run&gt;", "p99", "max", "req/s", "errors/s", "run"],
    );
    assert!(svg.contains("markers: the only percentiles a JSON total lists"));
}

fn two_logs_compare_one_line_each() {
    let r = run();
    let before = r.dir.join("before.hlog");
    let after = r.dir.join("after.hlog");
    std::fs::copy(&r.hlog, &before).unwrap();
    std::fs::copy(&r.hlog, &after).unwrap();
    let (b, a) = (before.display().to_string(), after.display().to_string());
    let (_, svg) = plot_ok(&[&b, &a], "cmp.svg", &[]);
    // p99 and max per series, one spectrum line per log.
    assert_has(
        &svg,
        &[
            "before p99",
            "before max",
            "after p99",
            "after max",
            "before req/s",
            "after req/s",
            "before",
            "after",
        ],
    );
    assert!(!texts(&svg).iter().any(|t| t == "p50"));
}

fn many_logs_get_one_legend_entry_each() {
    let r = run();
    let files: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            let f = r.dir.join(format!("{n}.hlog"));
            std::fs::copy(&r.hlog, &f).unwrap();
            f.display().to_string()
        })
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let (_, svg) = plot_ok(&args, "many.svg", &[]);
    assert_has(&svg, &["a", "b", "c", "d"]);
    assert!(svg.contains("solid: p99, dashed: max"));
    assert!(!texts(&svg).iter().any(|t| t == "a p99" || t == "a max"));
}

fn sweep_has_slo_lines_and_knee() {
    let f = fixture("sweep.jsonl", SWEEP);
    let (_, svg) = plot_ok(&[&f], "sweep.svg", &[]);
    assert_has(
        &svg,
        &[
            "p50",
            "p99",
            "p99.9",
            "SLO p99 2 ms",
            "SLO p99.9 10 ms",
            "knee: 4000 req/s offered",
            "achieved throughput (req/s)",
        ],
    );
    assert!(has_latency_axis(&svg));
    // Steps only: no timeline, no spectrum.
    assert!(!svg.contains("time since start"));
    assert!(!svg.contains("percentile (1/(1−p) scale)"));

    let none = SWEEP.replace(r#""knee_rate":4000.0"#, r#""knee_rate":null"#);
    let f = fixture("sweep-none.jsonl", &none);
    let (_, svg) = plot_ok(&[&f], "sweep-none.svg", &[]);
    assert!(svg.contains("no step met the SLO: sweep-none"));
    assert!(!svg.contains("knee:"));
}

/// `connect ARGS` against a dead port; it fails (exit 1) but writes what it saw. The port is
/// held bound (not listening) below the ephemeral range, so no other test's server can take
/// it meanwhile (a port bound and closed again could be reused by a `serve -l 127.0.0.1:0`).
fn refused(args: &[&str]) -> Outcome {
    let dead = common::DeadPort::new();
    let addr = dead.addr();
    let mut argv = vec!["connect"];
    argv.extend_from_slice(args);
    argv.push(&addr);
    let o = proc::spawn(&argv, None).finish(Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(1), "connect {argv:?}: {o:?}");
    o
}

/// A run in which nothing completed is drawn: throughput 0, its errors from the log's
/// counters, latency as gaps (not refused, not 0), alone and beside a live run.
fn a_refused_run_is_drawn() {
    let r = run();
    let dead = r.dir.join("dead.hlog").display().to_string();
    refused(&[
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "2s",
        "-i",
        "500ms",
        "--hdr-log",
        &dead,
    ]);
    let (_, svg) = plot_ok(&[&dead], "dead.svg", &[]);
    assert!(svg.contains("no request completed, latency unknown: dead"));
    assert_has(&svg, &["req/s", "errors/s", "time since start (s)"]);
    // No spectrum: nothing completed.
    assert!(!svg.contains("percentile (1/(1−p) scale)"));
    let (_, svg) = plot_ok(&[&r.hlog, &dead], "dead-live.svg", &[]);
    assert!(svg.contains("no request completed, latency unknown: dead"));
    assert_has(&svg, &["run p99", "dead req/s", "dead errors/s", "run"]);
}

/// A sweep whose first step completed nothing: its step is named with its errors.
fn a_refused_sweep_is_drawn() {
    let o = refused(&["--sweep", "1k:3k:1k", "--sweep-step", "1s", "--jsonlines"]);
    let f = fixture("dead-sweep.jsonl", &(o.text() + "\n"));
    let (_, svg) = plot_ok(&[&f], "dead-sweep.svg", &[]);
    assert!(svg.contains("no step met the SLO: dead-sweep"), "{svg}");
    assert!(
        svg.contains(
            "no request completed, latency unknown: dead-sweep step 0 (1000 req/s offered, "
        ) && !svg.contains("errors unknown"),
        "{:?}",
        texts(&svg)
    );
}

/// `-o` naming an input (however spelled) is refused before anything is written; an input
/// given twice is refused, naming both.
fn output_over_an_input_and_an_input_twice_are_refused() {
    let r = run();
    let f = r.dir.join("keep.hlog");
    std::fs::copy(&r.hlog, &f).unwrap();
    let before = std::fs::read(&f).unwrap();
    let keep = f.display().to_string();
    assert_rejected(&[&keep, "-o", &keep], &[&keep, "is the input"]);
    let other = r.dir.join("sub");
    std::fs::create_dir_all(&other).unwrap();
    let roundabout = other.join("../keep.hlog").display().to_string();
    assert_rejected(
        &[&r.hlog, &keep, "-o", &roundabout],
        &[&roundabout, "is the input"],
    );
    assert_eq!(
        std::fs::read(&f).unwrap(),
        before,
        "the input was overwritten"
    );
    assert_rejected(
        &[&keep, &roundabout, "-o", "x.svg"],
        &[&keep, &roundabout, "the same file"],
    );
    assert!(!Path::new("x.svg").exists());
}

/// A sweep of two targets: each step row's `offered_rate` is its target's, the knee's
/// `knee_rate` the total. The knee sits at `knee_step`'s points, not at the total rate.
fn a_two_target_knee_sits_at_its_step() {
    let mut text = String::new();
    for (step, rate) in [1000.0, 2000.0, 3000.0].into_iter().enumerate() {
        for peer in ["127.0.0.1:9100", "127.0.0.1:9200"] {
            text += &format!(
                concat!(
                    r#"{{"kind":"step","step":{},"peer":"{}","offered_rate":{:.1},"#,
                    r#""rate_per_sec":{:.1},"latency_ns":{{"p50":80000,"p99":{},"p999":900000}},"#,
                    r#""error_count":0}}"#,
                    "\n"
                ),
                step,
                peer,
                rate,
                rate * 0.99,
                300000 * (step + 1)
            );
        }
    }
    text += r#"{"kind":"knee","knee_rate":6000.0,"knee_step":2,"slo":"p99=2ms","max_error_rate":100.0,"steps":3,"stopped":"end","reason":"x"}"#;
    let f = fixture("sweep-two.jsonl", &(text + "\n"));
    let (_, svg) = plot_ok(&[&f], "sweep-two.svg", &[]);
    let t = texts(&svg);
    assert!(
        t.iter().any(|s| s == "knee: 6000 req/s offered in total"),
        "{t:?}"
    );
    // The axis ends past the data (2970 req/s), not past the total.
    assert!(t.iter().any(|s| s == "3000"), "{t:?}");
    assert!(!t.iter().any(|s| s == "6000" || s == "5000"), "{t:?}");
    // The SLO line runs through the legend's height: its label goes right of the legend (whose
    // box ends near x 320 px), not under it.
    let (x, _) = text_at(&svg, "SLO p99 2 ms");
    assert!(x > 330.0, "SLO label under the legend: x {x}");
}

/// Where the `<text>` reading `want` is drawn: its (x, y) attributes.
fn text_at(svg: &str, want: &str) -> (f64, f64) {
    for t in svg.split("<text").skip(1) {
        let Some(end) = t.find('>') else { continue };
        let body = &t[end + 1..];
        let Some(close) = body.find("</text>") else {
            continue;
        };
        if body[..close].trim() != want {
            continue;
        }
        let attr = |name: &str| -> f64 {
            let from = t[..end].find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
            let len = t[from..].find('"').expect("closing quote");
            t[from..from + len].parse().expect("a number")
        };
        return (attr("x"), attr("y"));
    }
    panic!("no text {want:?} in the SVG; its texts: {:?}", texts(svg));
}

/// A sweep stopped by the generator or a signal: its last step is drawn hollow and apart, and
/// the caption says why. Two sweeps' knee labels do not overprint; SLO labels sit at the left
/// edge, where the steps' lines do not run.
fn a_last_step_that_did_not_measure_the_target_is_drawn_apart() {
    let with = |stopped: &str| {
        SWEEP.replace(
            r#""max_error_rate":100.0}"#,
            &format!(r#""max_error_rate":100.0,"stopped":"{stopped}"}}"#),
        )
    };
    let gen = fixture("gen.jsonl", &with("generator"));
    let sig = fixture("sig.jsonl", &with("signal"));
    let (_, svg) = plot_ok(&[&gen], "gen.svg", &[]);
    assert!(
        svg.contains("hollow: last step: generator limit, not the target"),
        "{:?}",
        texts(&svg)
    );
    // The hollow marks of the last step (6300 req/s, p50 and p99; its p99.9 is unknown).
    let hollow = svg
        .lines()
        .filter(|l| {
            l.starts_with("<circle") && l.contains("fill=\"none\"") && !l.contains("#000000")
        })
        .count();
    assert_eq!(hollow, 2, "{svg}");
    let (_, svg) = plot_ok(&[&gen, &sig], "gen-sig.svg", &[]);
    assert!(svg.contains("hollow: gen last step: generator limit, not the target"));
    assert!(svg.contains("hollow: sig last step: cut short"));
    let (gx, gy) = text_at(&svg, "knee gen: 4000 req/s offered");
    let (sx, sy) = text_at(&svg, "knee sig: 4000 req/s offered");
    assert_eq!(gx, sx);
    assert!((gy - sy).abs() >= 14.0, "knee labels overprint: {gy} {sy}");
    // SLO labels start at the left edge, left of the first step (1000 req/s of ~7000).
    for slo in ["SLO p99 2 ms", "SLO p99.9 10 ms"] {
        let (x, _) = text_at(&svg, slo);
        assert!(x < 1200.0 * 0.2, "{slo} at x {x}");
    }
    // A sweep that ended normally has no hollow steps.
    let (_, svg) = plot_ok(&[&fixture("end.jsonl", &with("end"))], "end.svg", &[]);
    assert!(!svg.contains("hollow"));
}

/// Each series keeps its colour in every panel: a refused run (no spectrum) beside a live one
/// does not hand the live one's spectrum line the first colour.
fn a_series_has_one_colour_in_every_panel() {
    let r = run();
    let dead = r.dir.join("dead2.hlog").display().to_string();
    refused(&[
        "-c",
        "1",
        "-r",
        "100",
        "-d",
        "1s",
        "-i",
        "500ms",
        "--hdr-log",
        &dead,
    ]);
    let (_, svg) = plot_ok(&[&dead, &r.hlog], "colours.svg", &[]);
    // Strokes of the lines below the timeline (50 + 420 + 260 px): the spectrum's.
    let spectrum: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .filter(|l| {
            let points = l.split("points=\"").nth(1).unwrap_or("");
            points
                .split_whitespace()
                .filter_map(|p| p.split(',').nth(1)?.parse::<f64>().ok())
                .any(|y| y > 730.0)
        })
        .filter_map(|l| l.split("stroke=\"").nth(1)?.split('"').next())
        .filter(|c| c.starts_with('#') && *c != "#000000")
        .collect();
    // `run` is the second series: the palette's second colour, as in the timeline.
    assert!(spectrum.contains(&"#D62728"), "{spectrum:?}");
    assert!(!spectrum.contains(&"#1F77B4"), "{spectrum:?}");
}

fn stdout_output() {
    let o = plot(&[&run().hlog, "-o", "-"]);
    o.assert_clean();
    assert!(o.out[0].starts_with("<svg width=\"1200\" height=\"1190\""));
    assert_eq!(o.out.last().map(String::as_str), Some("</svg>"));
}

fn bad_inputs_are_one_line_naming_the_file() {
    let missing = run().dir.join("missing.hlog").display().to_string();
    assert_rejected(&[&missing, "-o", "x.svg"], &[&missing, "cannot read"]);
    let empty = fixture("empty.jsonl", "");
    assert_rejected(&[&empty, "-o", "x.svg"], &[&empty, "empty file"]);
    let corrupt = fixture(
        "corrupt.jsonl",
        "{\"kind\":\"knee\",\"knee_rate\":null}\n{\"kind\":\"interval\",\"peer\n",
    );
    assert_rejected(&[&corrupt, "-o", "x.svg"], &[&format!("{corrupt}:2:")]);
    let serve = fixture(
        "serve.jsonl",
        "{\"kind\":\"interval\",\"name\":\"0\",\"elapsed_sec\":1.0,\"accepted\":1}\n",
    );
    assert_rejected(
        &[&serve, "-o", "x.svg"],
        &[&serve, "no client rows to plot"],
    );
    let text = fixture("notes.txt", "hello\n");
    assert_rejected(&[&text, "-o", "x.svg"], &[&text, "bad interval log"]);
    let slo = fixture("slo.jsonl", "{\"kind\":\"knee\",\"slo\":\"p99=soon\"}\n");
    assert_rejected(&[&slo, "-o", "x.svg"], &[&format!("{slo}:1:"), "slo"]);
    // A good file beside a bad one: the bad one is named.
    assert_rejected(&[&run().hlog, &empty, "-o", "x.svg"], &[&empty]);
    assert_rejected(&[&run().hlog], &["-o"]);
    assert_rejected(&["-o", "x.svg"], &["at least one"]);
    assert_rejected(&[&run().hlog, "-o", "x.svg", "--width", "10"], &["--width"]);
    assert_rejected(
        &[&run().hlog, "-o", "x.svg", "--height", "0"],
        &["--height"],
    );
    assert!(!Path::new("x.svg").exists());
}

// ---- need rsvg-convert ----

fn renders_hlog_at_default_size() {
    let (svg, _) = plot_ok(&[&run().hlog], "r-hlog.svg", &[]);
    assert_eq!(render(&svg), TIMELINE_AND_SPECTRUM);
}

fn renders_jsonl_at_default_size() {
    let (svg, _) = plot_ok(&[&run().jsonl], "r-jsonl.svg", &[]);
    assert_eq!(render(&svg), TIMELINE_AND_SPECTRUM);
}

fn renders_comparison_at_default_size() {
    let (svg, _) = plot_ok(&[&run().hlog, &run().jsonl], "r-cmp.svg", &[]);
    assert_eq!(render(&svg), TIMELINE_AND_SPECTRUM);
}

fn renders_sweep_at_default_size() {
    let f = fixture("r-sweep.jsonl", SWEEP);
    let (svg, _) = plot_ok(&[&f], "r-sweep.svg", &[]);
    assert_eq!(render(&svg), SWEEP_ONLY);
}

fn renders_at_the_size_asked() {
    let (svg, _) = plot_ok(
        &[&run().hlog],
        "r-size.svg",
        &["--width", "800", "--height", "900"],
    );
    assert_eq!(render(&svg), (800, 900));
}

/// Every test of this file: (name, test, needs rsvg-convert).
const TESTS: &[(&str, fn(), bool)] = &[
    (
        "hlog_has_timeline_and_spectrum",
        hlog_has_timeline_and_spectrum,
        false,
    ),
    (
        "an_old_log_draws_no_errors_and_says_so",
        an_old_log_draws_no_errors_and_says_so,
        false,
    ),
    (
        "jsonl_has_errors_and_percentile_markers",
        jsonl_has_errors_and_percentile_markers,
        false,
    ),
    (
        "two_logs_compare_one_line_each",
        two_logs_compare_one_line_each,
        false,
    ),
    (
        "many_logs_get_one_legend_entry_each",
        many_logs_get_one_legend_entry_each,
        false,
    ),
    (
        "sweep_has_slo_lines_and_knee",
        sweep_has_slo_lines_and_knee,
        false,
    ),
    ("a_refused_run_is_drawn", a_refused_run_is_drawn, false),
    ("a_refused_sweep_is_drawn", a_refused_sweep_is_drawn, false),
    (
        "output_over_an_input_and_an_input_twice_are_refused",
        output_over_an_input_and_an_input_twice_are_refused,
        false,
    ),
    (
        "a_two_target_knee_sits_at_its_step",
        a_two_target_knee_sits_at_its_step,
        false,
    ),
    (
        "a_last_step_that_did_not_measure_the_target_is_drawn_apart",
        a_last_step_that_did_not_measure_the_target_is_drawn_apart,
        false,
    ),
    (
        "a_series_has_one_colour_in_every_panel",
        a_series_has_one_colour_in_every_panel,
        false,
    ),
    ("stdout_output", stdout_output, false),
    (
        "bad_inputs_are_one_line_naming_the_file",
        bad_inputs_are_one_line_naming_the_file,
        false,
    ),
    (
        "renders_hlog_at_default_size",
        renders_hlog_at_default_size,
        true,
    ),
    (
        "renders_jsonl_at_default_size",
        renders_jsonl_at_default_size,
        true,
    ),
    (
        "renders_comparison_at_default_size",
        renders_comparison_at_default_size,
        true,
    ),
    (
        "renders_sweep_at_default_size",
        renders_sweep_at_default_size,
        true,
    ),
    ("renders_at_the_size_asked", renders_at_the_size_asked, true),
];

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let missing = rsvg_missing();
    if let Some(why) = &missing {
        eprintln!("plot rendering tests ignored: {why}");
    }
    let trials = TESTS
        .iter()
        .map(|&(name, test, needs_rsvg)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_ignored_flag(needs_rsvg && missing.is_some())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
