//! The progress line of `connect`: drawn on stderr under a terminal (a pseudo-terminal made
//! by util-linux `script`) as one line rewritten with `\r` and `ESC[K`, never mixed into the
//! report; absent when stderr is a pipe unless `--progress` asks for it, and `--progress=false`
//! turns it off on a terminal.
//!
//! Its own harness (libtest-mimic): without `script` the terminal tests are reported as
//! ignored, with the reason, never as passed.

mod common;

use common::proc::{self, PROC_TIMEOUT};
use common::{DeadPort, Server, BIN};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Progress text starts a redraw with a carriage return.
const REDRAW: &str = "\rconnperf: ";
/// Clear to the end of the line.
const EL: &str = "\x1b[K";

/// `script` from util-linux, or why not.
fn script_available() -> Result<(), String> {
    match Command::new("script").arg("--version").output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("util-linux") => Ok(()),
        Ok(o) => Err(format!(
            "`script` is not util-linux's: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => Err(format!("no `script` (util-linux) to make a terminal: {e}")),
    }
}

/// Run `connperf ARGS` with stdout and stderr on one pseudo-terminal; what the terminal got,
/// and the exit status (`script -e` returns the child's).
fn under_terminal(args: &[&str]) -> (String, Option<i32>) {
    let cmd = std::iter::once(BIN)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait script") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`{cmd}` under script still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (reader.join().expect("reader"), status.code())
}

/// What a terminal shows for `text`: `\r` returns to column 0, `ESC[K` clears to the end of
/// the line, other characters overwrite.
fn render(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            let mut screen: Vec<char> = Vec::new();
            let mut col = 0;
            let mut rest = line;
            while let Some(c) = rest.chars().next() {
                if let Some(after) = rest.strip_prefix(EL) {
                    screen.truncate(col);
                    rest = after;
                    continue;
                }
                rest = &rest[c.len_utf8()..];
                if c == '\r' {
                    col = 0;
                } else {
                    if col < screen.len() {
                        screen[col] = c;
                    } else {
                        screen.push(c);
                    }
                    col += 1;
                }
            }
            screen.into_iter().collect()
        })
        .filter(|l: &String| !l.is_empty())
        .collect()
}

/// The report on the screen is whole: no progress text left in it, the header, rows, totals
/// and verdict each on a line of their own.
fn assert_report_intact(text: &str, addr: &str, intervals: bool) {
    let screen = render(text);
    // What only the progress line says (the notes on stderr, `connperf: waiting 2.0 s for
    // --start-at`, are lines of their own and stay).
    let progress = [
        "warm-up: ",
        " left",
        "req/s",
        "waiting for --start-at: ",
        "ramp: connecting",
        "replies in flight",
    ];
    for l in &screen {
        assert!(
            !progress.iter().any(|p| l.contains(p)),
            "progress left on the screen: {l:?}\nin:\n{}",
            screen.join("\n")
        );
    }
    let pos = |pred: &dyn Fn(&String) -> bool| screen.iter().position(pred);
    let sep = pos(&|l| l == "--- A result during total execution time ---")
        .unwrap_or_else(|| panic!("no totals separator:\n{}", screen.join("\n")));
    assert!(screen[sep + 1].starts_with(addr), "{}", screen.join("\n"));
    assert_eq!(screen.last().map(String::as_str), Some("# verdict: pass"));
    let rows_before = screen[..sep].iter().filter(|l| l.starts_with(addr)).count();
    assert_eq!(rows_before > 0, intervals, "{}", screen.join("\n"));
    if !screen.iter().any(|l| l.starts_with("PEER ")) {
        panic!("no table header:\n{}", screen.join("\n"));
    }
}

fn progress_under_a_terminal_rewrites_one_line() {
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let addr = server.addr();
    let (text, code) = under_terminal(&[
        "connect",
        &addr,
        "--workers",
        "1",
        "-c",
        "1",
        "-r",
        "50",
        "-d",
        "1500ms",
        "-i",
        "500ms",
        "--warmup",
        "600ms",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("{REDRAW}warm-up: ")), "{text:?}");
    assert!(text.contains(" of 1.5 s, "), "{text:?}");
    assert!(text.contains(" errors"), "{text:?}");
    assert!(text.matches(REDRAW).count() >= 4, "few redraws: {text:?}");
    assert!(text.matches(EL).count() >= 4, "{text:?}");
    assert_report_intact(&text, &addr, true);
    server.stop();
}

/// Before the reporter folds in a window (the default `-i 5s` is longer than the run) the
/// line does not know the errors: it says `- errors`, never `0 errors`, though every request
/// fails against a port where nothing listens.
fn progress_errors_are_unknown_before_the_first_window() {
    let dead = DeadPort::new();
    let addr = dead.addr();
    let (text, _code) = under_terminal(&[
        "connect",
        &addr,
        "--workers",
        "1",
        "-c",
        "2",
        "-r",
        "100",
        "-d",
        "1500ms",
    ]);
    assert!(text.contains(" of 1.5 s, "), "{text:?}");
    assert!(text.contains("- req/s, - errors"), "{text:?}");
    assert!(!text.contains(" 0 errors"), "errors shown as 0: {text:?}");
}

fn progress_shows_the_start_at_wait_with_show_only_results() {
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let addr = server.addr();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = (now.as_secs() + 2).to_string();
    let (text, code) = under_terminal(&[
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
        "--start-at",
        &at,
        "--show-only-results",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("{REDRAW}waiting for --start-at: ")),
        "{text:?}"
    );
    assert!(text.contains(" of 0.5 s, "), "{text:?}");
    assert_report_intact(&text, &addr, false);
    server.stop();
}

fn progress_false_turns_it_off_on_a_terminal() {
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let addr = server.addr();
    let (text, code) = under_terminal(&[
        "connect",
        &addr,
        "--workers",
        "1",
        "-c",
        "1",
        "-r",
        "50",
        "-d",
        "600ms",
        "--progress=false",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(REDRAW), "{text:?}");
    assert!(!text.contains(EL), "{text:?}");
    server.stop();
}

fn no_progress_on_a_pipe_unless_asked() {
    let server = Server::start(&["-p", "tcp", "--workers", "1"]);
    let addr = server.addr();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "connect",
            &addr,
            "--workers",
            "1",
            "-c",
            "1",
            "-r",
            "50",
            "-d",
            "600ms",
        ];
        args.extend_from_slice(extra);
        let o = proc::spawn(&args, None).finish(PROC_TIMEOUT * 2);
        o.assert_clean();
        o
    };
    let quiet = run(&[]);
    assert!(
        !quiet.err.contains('\r') && !quiet.err.contains(EL),
        "progress on a pipe: {:?}",
        quiet.err
    );
    assert!(quiet.err.is_empty(), "stderr: {:?}", quiet.err);
    let asked = run(&["--progress"]);
    assert!(asked.err.contains(REDRAW), "{:?}", asked.err);
    // The line is cleared at the end: the last thing on stderr is the clear.
    assert!(asked.err.ends_with(&format!("\r{EL}")), "{:?}", asked.err);
    assert!(!asked.out.iter().any(|l| l.contains("connperf: ")));
    server.stop();
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let no_script = script_available().err();
    if let Some(why) = &no_script {
        eprintln!("terminal tests ignored: {why}");
    }
    let terminal: [(&str, fn()); 4] = [
        (
            "progress_under_a_terminal_rewrites_one_line",
            progress_under_a_terminal_rewrites_one_line,
        ),
        (
            "progress_shows_the_start_at_wait_with_show_only_results",
            progress_shows_the_start_at_wait_with_show_only_results,
        ),
        (
            "progress_errors_are_unknown_before_the_first_window",
            progress_errors_are_unknown_before_the_first_window,
        ),
        (
            "progress_false_turns_it_off_on_a_terminal",
            progress_false_turns_it_off_on_a_terminal,
        ),
    ];
    let mut trials: Vec<libtest_mimic::Trial> = terminal
        .into_iter()
        .map(|(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_ignored_flag(no_script.is_some())
        })
        .collect();
    trials.push(libtest_mimic::Trial::test(
        "no_progress_on_a_pipe_unless_asked",
        || {
            no_progress_on_a_pipe_unless_asked();
            Ok(())
        },
    ));
    libtest_mimic::run(&args, trials).exit();
}
