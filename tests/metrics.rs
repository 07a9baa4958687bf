//! `--metrics-addr`: the `/metrics` page of `connect` and `serve`, scraped with a real HTTP
//! client (ureq) while the binary runs. The counters must equal the printed rows they cover:
//! `connperf_windows_total` says how many interval rows that is.

mod common;

use common::proc::{self, Proc, PROC_TIMEOUT};
use common::rows::{check_rows, kind_rows};
use common::{u, DeadPort, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A scraped page, parsed.
struct Page {
    text: String,
    samples: Vec<Sample>,
}

impl Page {
    fn parse(text: String) -> Page {
        assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (head, value) = l.rsplit_once(' ').expect("NAME VALUE");
                let value: f64 = value.parse().unwrap_or_else(|e| panic!("{l:?}: {e}"));
                let (name, labels) = match head.split_once('{') {
                    Some((n, rest)) => {
                        let inner = rest.strip_suffix('}').expect("labels end in }");
                        let labels = inner
                            .split("\",")
                            .filter(|p| !p.is_empty())
                            .map(|p| {
                                let (k, v) = p.split_once("=\"").expect("key=\"value\"");
                                (k.to_string(), v.trim_end_matches('"').to_string())
                            })
                            .collect();
                        (n.to_string(), labels)
                    }
                    None => (head.to_string(), Vec::new()),
                };
                (name, labels, value)
            })
            .collect();
        Page { text, samples }
    }

    /// The sum of the samples of `name` that carry every label in `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> u64 {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        assert!(
            !matching.is_empty(),
            "no {name} {want:?} in the page:\n{}",
            self.text
        );
        matching.iter().map(|s| s.2).sum::<f64>() as u64
    }

    fn windows(&self) -> u64 {
        self.sum("connperf_windows_total", &[])
    }
}

/// GET `url`: status 200, the OpenMetrics content type, and the page parsed.
fn scrape(url: &str) -> Page {
    let mut resp = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, OPENMETRICS);
    Page::parse(resp.body_mut().read_to_string().expect("body"))
}

/// The `/metrics` URL from the `connperf: metrics at http://ADDR/metrics` stderr line.
fn metrics_url(p: &mut Proc) -> String {
    let line = p.wait_err_line(PROC_TIMEOUT, |l| l.starts_with("connperf: metrics at "));
    let url = line.trim().trim_start_matches("connperf: metrics at ");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics") && !url.contains(":0/"),
        "{line:?}"
    );
    url.to_string()
}

/// Read stdout JSON rows into `rows` until one satisfies `pred` (or one already did).
fn rows_until(p: &mut Proc, rows: &mut Vec<Value>, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !rows.iter().any(&pred) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = p
            .line_within(left)
            .unwrap_or_else(|| panic!("no expected row; got {rows:#?}"));
        rows.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")));
    }
}

fn is_interval(r: &Value, seq: u64) -> bool {
    r["kind"] == "interval" && r["interval"].as_u64() == Some(seq)
}

/// The page's counters equal the sum of `rows` (interval rows of one target, or its total).
fn assert_page_matches(page: &Page, rows: &[&Value], what: &str) {
    let sum = |key: &str| rows.iter().map(|r| u(r, key)).sum::<u64>();
    let outcome = |o: &str| page.sum("connperf_requests_total", &[("outcome", o)]);
    let got = [
        outcome("completed"),
        outcome("failed"),
        outcome("lost"),
        outcome("not_started"),
        page.sum("connperf_payload_bytes_total", &[]),
        page.sum("connperf_request_errors_total", &[]),
    ];
    let want = [
        sum("count"),
        sum("error_count"),
        sum("lost"),
        sum("not_started"),
        sum("bytes"),
        sum("error_count"),
    ];
    assert_eq!(
        got,
        want,
        "{what}: page counters (completed, failed, lost, not_started, bytes, errors by kind) differ from the rows:\n{}",
        page.text
    );
}

#[test]
fn connect_scrapes_equal_the_printed_rows_and_the_last_equals_the_total() {
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let addr = server.addr();
    let mut p = proc::spawn(
        &[
            "connect",
            &addr,
            "--workers",
            "1",
            "-c",
            "2",
            "-r",
            "200",
            "-d",
            "3s",
            "-i",
            "500ms",
            "--json-stream",
            "--label",
            "run=t1",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "20s",
        ],
        None,
    );
    let url = metrics_url(&mut p);
    let mut rows = Vec::new();

    // Other paths are not the page.
    let other = url.replace("/metrics", "/other");
    match ureq::get(&other).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        r => panic!("GET {other}: want 404, got {r:?}"),
    }

    let mut last_completed = 0;
    let mut last_windows = 0;
    for scrape_no in 0..2 {
        // Two windows more than the last scrape saw: the counters must have grown.
        rows_until(&mut p, &mut rows, |r| is_interval(r, last_windows + 1));
        let page = scrape(&url);
        let w = page.windows();
        assert!(
            w > last_windows,
            "scrape {scrape_no}: windows {w} did not grow"
        );
        // The page may hold a window the reporter has not printed yet: wait for its row.
        rows_until(&mut p, &mut rows, |r| is_interval(r, w - 1));
        let covered: Vec<&Value> = rows
            .iter()
            .filter(|r| r["kind"] == "interval" && u(r, "interval") < w)
            .collect();
        assert_eq!(covered.len() as u64, w, "one target, one row per window");
        assert_page_matches(&page, &covered, &format!("scrape {scrape_no}"));
        let completed = page.sum("connperf_requests_total", &[("outcome", "completed")]);
        assert!(
            completed > last_completed,
            "completed did not grow: {completed}"
        );
        assert!(
            page.text.contains("run=\"t1\""),
            "--label missing:\n{}",
            page.text
        );
        assert!(
            page.text.contains(&format!("target=\"{addr}\"")),
            "target label missing:\n{}",
            page.text
        );
        assert!(
            page.sum("connperf_latency_seconds_count", &[]) > 0,
            "{}",
            page.text
        );
        assert_eq!(
            page.sum("connperf_ramp_connections", &[]),
            2,
            "-c 2 came up in the ramp:\n{}",
            page.text
        );
        last_completed = completed;
        last_windows = w;
    }

    // The run ends; the process lingers until the final state has been scraped once.
    rows_until(&mut p, &mut rows, |r| r["kind"] == "total");
    // The reporter marks the report printed once it has flushed it: scrape until it has.
    let deadline = Instant::now() + PROC_TIMEOUT;
    let page = loop {
        let page = scrape(&url);
        if page.sum("connperf_reports_total", &[]) == 1 {
            break page;
        }
        assert!(Instant::now() < deadline, "never reported:\n{}", page.text);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(page.sum("connperf_phase", &[("phase", "done")]), 1);
    let total = kind_rows(&rows, "total")[0].clone();
    assert_page_matches(&page, &[&total], "final scrape");
    let intervals = kind_rows(&rows, "interval").len() as u64;
    assert_eq!(page.windows(), intervals, "every printed window is in");

    let o = p.finish(PROC_TIMEOUT);
    o.assert_clean();
    for l in &o.out {
        rows.push(serde_json::from_str(l).expect("JSON row"));
    }
    check_rows(&rows, 64);
    server.stop();
}

#[test]
fn serve_counters_equal_the_servers_own_report() {
    let mut server = Server::start(&[
        "-p",
        "tcp",
        "--workers",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let url = metrics_url(&mut server.p);
    let before = scrape(&url);
    assert_eq!(before.sum("connperf_server_accepted_total", &[]), 0);

    let mut c = proc::spawn(
        &[
            "connect",
            &server.addr(),
            "--workers",
            "1",
            "-c",
            "2",
            "-r",
            "100",
            "-d",
            "1s",
            "--jsonlines",
        ],
        None,
    );
    let o = c.finish(PROC_TIMEOUT * 2);
    o.assert_clean();
    let sent: Value = serde_json::from_str(o.out.last().expect("total row")).unwrap();
    let count = u(&sent, "count");
    assert!(count > 0);

    // The server folds its counters in every second (no --interval): wait until they hold
    // every echo and every close.
    let deadline = Instant::now() + PROC_TIMEOUT;
    let page = loop {
        let page = scrape(&url);
        let closed = page.sum("connperf_server_closed_total", &[]);
        let bytes = page.sum("connperf_server_echoed_bytes_total", &[("proto", "tcp")]);
        if closed == 2 && bytes == count * 64 {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the page never caught up:\n{}",
            page.text
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(page.windows() > before.windows());
    let total = server.stop();
    for (metric, labels, key) in [
        ("connperf_server_accepted_total", vec![], "accepted"),
        ("connperf_server_closed_total", vec![], "closed"),
        ("connperf_server_tcp_reads_total", vec![], "tcp_reads"),
        (
            "connperf_server_echoed_bytes_total",
            vec![("proto", "tcp")],
            "tcp_bytes",
        ),
        ("connperf_server_resets_total", vec![], "resets"),
        ("connperf_server_rejected_total", vec![], "rejected"),
    ] {
        assert_eq!(
            page.sum(metric, &labels),
            u(&total, key),
            "{metric} vs the total row {total}"
        );
    }
    assert_eq!(page.sum("connperf_server_errors_total", &[]), 0);
    assert_eq!(page.sum("connperf_server_open", &[]), 0);
}

/// `--metrics-addr` text that is no address, or a bad `--label`, is a usage error before any
/// load: exit 2, one stderr line naming the flag, nothing on stdout.
#[test]
fn bad_metrics_addr_or_label_is_a_usage_error_before_the_run() {
    let dead = DeadPort::new();
    let dead = dead.addr();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--metrics-addr", "nohost"],
            "connperf: invalid --metrics-addr",
        ),
        (
            &["--metrics-addr", ":http"],
            "connperf: invalid --metrics-addr",
        ),
        (
            &["--metrics-addr", ":70000"],
            "connperf: invalid --metrics-addr",
        ),
        (
            &["--metrics-addr", "127.0.0.1:0", "--label", "a-b=1"],
            "connperf: invalid --label \"a-b=1\" with --metrics-addr",
        ),
        (
            &["--metrics-addr", "127.0.0.1:0", "--label", "target=1"],
            "connperf: invalid --label \"target=1\" with --metrics-addr",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["connect", dead.as_str(), "-d", "1s"];
        args.extend_from_slice(extra);
        let o = proc::spawn(&args, None).finish(PROC_TIMEOUT);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", o.err);
        let lines = o.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}: {}", o.err);
        assert!(lines[0].starts_with(want), "{args:?}: {}", o.err);
        assert!(o.out.is_empty(), "{args:?} printed {:?}", o.out);
    }
}

/// A `--metrics-addr` that parses but cannot be bound (in use, or not an address of this
/// host) is a failure to run, as `serve -l` on a port in use is: exit 1 before any load, one
/// stderr line naming the flag and the address, nothing on stdout.
#[test]
fn metrics_addr_that_cannot_be_bound_exits_1_before_the_run() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let dead = DeadPort::new();
    let dead = dead.addr();
    // 192.0.2.1 (TEST-NET-1) is no address of this host: EADDRNOTAVAIL.
    for addr in [taken.as_str(), "192.0.2.1:0"] {
        for cmd in [
            vec!["connect", dead.as_str(), "-d", "1s"],
            vec!["serve", "-l", "127.0.0.1:0"],
        ] {
            let mut args = cmd.clone();
            args.extend_from_slice(&["--metrics-addr", addr]);
            let o = proc::spawn(&args, None).finish(PROC_TIMEOUT);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", o.err);
            let lines = o.stderr_lines();
            assert_eq!(lines.len(), 1, "{args:?}: {}", o.err);
            let want = format!("connperf: cannot serve --metrics-addr {addr}: ");
            assert!(lines[0].starts_with(&want), "{args:?}: {}", o.err);
            assert!(o.out.is_empty(), "{args:?} printed {:?}", o.out);
        }
    }
}

/// `--metrics-addr :PORT` (the usual exporter spelling) is every IPv4 interface, 0.0.0.0.
#[test]
fn metrics_addr_colon_port_is_every_interface() {
    let dead = DeadPort::new();
    let dead = dead.addr();
    let mut p = proc::spawn(
        &[
            "connect",
            &dead,
            "-c",
            "1",
            "-r",
            "10",
            "-d",
            "3s",
            "--metrics-addr",
            ":0",
        ],
        None,
    );
    let line = p.wait_err_line(PROC_TIMEOUT, |l| l.starts_with("connperf: metrics at "));
    let url = line.trim().trim_start_matches("connperf: metrics at ");
    let port = url
        .strip_prefix("http://0.0.0.0:")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("not 0.0.0.0: {line:?}"));
    assert_ne!(port, "0", "{line:?}");
    let page = scrape(&format!("http://127.0.0.1:{port}/metrics"));
    assert!(page.text.contains("connperf_phase{"), "{}", page.text);
    p.kill();
}

/// Mid-sweep the page keeps the last finished window (latency, rate) and the ramp, and says
/// which step runs with plain gauges, not labels whose values change every step.
#[test]
fn a_scrape_mid_sweep_has_the_last_window_the_ramp_and_the_step() {
    let server = Server::start(&["--workers", "1"]);
    let addr = server.addr();
    let mut p = proc::spawn(
        &[
            "connect",
            &addr,
            "--workers",
            "1",
            "--sweep",
            "1k:3k:1k",
            "--sweep-step",
            "1s",
            "--jsonlines",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        None,
    );
    let url = metrics_url(&mut p);
    p.wait_line(Duration::from_secs(15), |l| l.contains("\"kind\":\"step\""));
    let has = |page: &Page, name: &str| page.samples.iter().any(|(n, _, _)| n == name);
    let check = |page: &Page| {
        for name in [
            "connperf_latency_seconds_count",
            "connperf_latency_quantile_seconds",
            "connperf_rate_per_second",
            "connperf_window_seconds",
            "connperf_ramp_seconds",
            "connperf_ramp_connections",
            "connperf_sweep_step",
            "connperf_sweep_steps",
            "connperf_sweep_offered_rate_per_second",
        ] {
            assert!(has(page, name), "no {name} mid-sweep:\n{}", page.text);
        }
        assert!(
            !page.text.contains("steps=") && !page.text.contains("offered_rate_per_second="),
            "step values as labels:\n{}",
            page.text
        );
        assert_eq!(page.sum("connperf_sweep_steps", &[]), 3, "{}", page.text);
    };
    // Right after step 0's row: step 1 may not have started yet, or it has.
    let first = scrape(&url);
    check(&first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = scrape(&url);
        if page.sum("connperf_sweep_step", &[]) >= 2 || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    check(&page);
    let step = page.sum("connperf_sweep_step", &[]);
    assert!(step >= 2, "{}", page.text);
    assert_eq!(
        page.sum("connperf_sweep_offered_rate_per_second", &[]),
        1000 * step,
        "{}",
        page.text
    );
    let o = p.finish(Duration::from_secs(15));
    assert_eq!(o.status.code(), Some(0), "{}", o.err);
    server.stop();
}

/// `--metrics-linger` says on stderr that it waits, where, and how long at most; unscraped, it
/// exits after that long.
#[test]
fn metrics_linger_says_it_waits() {
    let server = Server::start(&["--workers", "1"]);
    let addr = server.addr();
    let mut p = proc::spawn(
        &[
            "connect",
            &addr,
            "--workers",
            "1",
            "-c",
            "1",
            "-r",
            "50",
            "-d",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "1500ms",
        ],
        None,
    );
    let url = metrics_url(&mut p);
    let line = p.wait_err_line(PROC_TIMEOUT, |l| l.contains("final metrics"));
    assert_eq!(
        line.trim(),
        format!("connperf: serving the final metrics at {url} until scraped or 1.5s")
    );
    let o = p.finish(PROC_TIMEOUT);
    o.assert_clean();
    assert!(o.elapsed >= Duration::from_millis(1900), "{:?}", o.elapsed);
    server.stop();
}

/// A run that failed its checks lingers too (its final numbers are the ones to see), then
/// exits 1.
#[test]
fn a_failed_run_lingers_too() {
    let dead = DeadPort::new();
    let addr = dead.addr();
    let mut p = proc::spawn(
        &[
            "connect",
            &addr,
            "--workers",
            "1",
            "-c",
            "1",
            "-r",
            "50",
            "-d",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "1s",
        ],
        None,
    );
    let url = metrics_url(&mut p);
    p.wait_err_line(PROC_TIMEOUT, |l| l.contains("final metrics"));
    // Scraped during the linger: the refusals are there, and the scrape ends the wait.
    let page = scrape(&url);
    assert!(
        page.sum("connperf_request_errors_total", &[("kind", "refused")]) > 0,
        "{}",
        page.text
    );
    let o = p.finish(PROC_TIMEOUT);
    assert_eq!(o.status.code(), Some(1), "{}", o.err);
}
