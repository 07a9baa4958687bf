//! The Go tool's command lines run unchanged: its spellings (`-c5`, `-c=5`, `-d1s`,
//! `--switch=true|false`, camelCase names, comma lists, `-h`, a flag given twice) and
//! `connperf completion`, each driven through the real binary against a real server on
//! loopback. Every load run is bounded (`-d 1s` or less) and ends by itself.

mod common;

use common::proc::{spawn, Outcome};
use common::{json_total, u, Server, BIN};
use serde_json::Value;
use std::time::Duration;

/// Deadline for a run of at most 1 s plus its start and ramp.
const RUN_LIMIT: Duration = Duration::from_secs(15);

/// `connperf ARGS` to its end.
fn run(args: &[&str]) -> Outcome {
    spawn(args, None).finish(RUN_LIMIT)
}

/// `line` split on spaces, with `ADDR` replaced by `addr`.
fn words(line: &str, addr: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|w| w.replace("ADDR", addr))
        .collect()
}

/// Run a command line from the list: it must exit 0 with nothing on stderr but notes.
fn run_line(line: &str, addr: &str) -> Outcome {
    let argv = words(line, addr);
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = run(&refs);
    o.assert_ok(line);
    for l in o.stderr_lines() {
        assert!(l.starts_with("connperf: note:"), "{line}: stderr {l:?}");
    }
    o
}

/// The total rows of `--jsonlines` output.
fn totals(o: &Outcome) -> Vec<Value> {
    o.out
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "total")
        .collect()
}

/// A Go tool user's command lines, spelled as the Go tool's README and flag tables spell them
/// (`ADDR` is a live server), with what each must print.
#[test]
fn go_tool_command_lines_run_unchanged() {
    let server = Server::start(&[]);
    let addr = server.addr();

    // The table, totals only: `--show-only-results=true` is the switch, not a target "true".
    let o = run_line(
        "connect -c5 -r=100 -d1s --show-only-results=true ADDR",
        &addr,
    );
    let text = o.text();
    assert!(
        text.contains("--- A result during total execution time ---"),
        "{text}"
    );
    let rows: Vec<&String> = o.out.iter().filter(|l| l.starts_with(&addr)).collect();
    assert_eq!(rows.len(), 1, "one total row, no intervals:\n{text}");
    let cnt: u64 = rows[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (400..=500).contains(&cnt),
        "5 x 100/s for 1 s: {cnt}\n{text}"
    );

    let lines = [
        "connect -c=2 -r 50 -d=500ms --jsonlines ADDR",
        "connect --connections=2 --rate=50 --duration=500ms --messageBytes=32 --jsonlines=true ADDR",
        "connect -p=tcp -f=ephemeral -r100 -d500ms --jsonlines ADDR",
        "connect -p udp -r=200 -d 500ms --message-bytes=48 --jsonlines ADDR",
        "connect -c1 -r=20 -d=1s -i=500ms --showOnlyResults=false --json-stream=true ADDR",
        "connect -c2 -r100 -d500ms --merge-results-each-host=true --jsonlines ADDR,ADDR",
        "connect -c2 -r100 -d500ms --jsonlines ADDR,ADDR",
        "connect -c 1 -d500ms --enablePprof=true --pprofAddr=127.0.0.1:6060 --jsonlines ADDR",
    ];
    for line in lines {
        let o = run_line(line, &addr);
        let totals = totals(&o);
        assert!(!totals.is_empty(), "{line}: no total row\n{}", o.text());
        for t in &totals {
            assert!(u(t, "count") > 0, "{line}: {t}");
            assert_eq!(u(t, "error_count"), 0, "{line}: {t}");
        }
        let t = &totals[0];
        match line {
            l if l.contains("messageBytes=32") => assert_eq!(u(t, "bytes"), u(t, "count") * 32),
            l if l.contains("-i=500ms") => {
                let intervals = o.out.iter().filter(|l| l.contains("\"interval\"")).count();
                assert_eq!(intervals, 2, "{line}:\n{}", o.text());
            }
            l if l.contains("merge-results-each-host=true") => {
                assert_eq!(totals.len(), 1, "{line}");
                assert_eq!(t["peer"], "merged(2 hosts)", "{line}");
            }
            l if l.contains("ADDR,ADDR") => assert_eq!(totals.len(), 2, "{line}"),
            _ => assert_eq!(totals.len(), 1, "{line}"),
        }
    }
    let counted = u(&server.stop(), "tcp_reads");
    assert!(counted > 0);
}

/// `serve -l a:1,b:2` listens on both, as `-l a:1 -l b:2` does; a comma list of targets
/// reaches both.
#[test]
fn serve_takes_a_comma_list_of_listen_addresses() {
    let mut serve = spawn(
        &[
            "serve",
            "-l",
            "127.0.0.1:0,127.0.0.1:0",
            "-p=tcp",
            "--jsonlines=true",
        ],
        None,
    );
    let addrs = serve.listening(2);
    assert_ne!(addrs[0], addrs[1]);
    let targets = format!("{},{}", addrs[0], addrs[1]);
    let o = run_line(
        &format!("connect -c1 -r50 -d500ms --jsonlines {targets}"),
        "",
    );
    let peers: Vec<String> = totals(&o).iter().map(|t| t["peer"].to_string()).collect();
    assert_eq!(
        peers,
        [format!("\"{}\"", addrs[0]), format!("\"{}\"", addrs[1])]
    );
    serve.signal(libc::SIGTERM);
    let s = serve.finish(RUN_LIMIT);
    s.assert_ok("serve");
    let total = totals(&s).pop().expect("server total row");
    assert_eq!(u(&total, "accepted"), 2, "{total}");
}

/// `-d 1s -d 500ms`: the last is used, and one note says so.
#[test]
fn a_flag_given_twice_takes_the_last_with_a_note() {
    let server = Server::start(&["-p", "tcp"]);
    let o = run_line(
        "connect -c 1 -d 1s -d 500ms -r 10 -r=20 --jsonlines ADDR",
        &server.addr(),
    );
    assert_eq!(
        o.stderr_lines(),
        [
            "connperf: note: -d given twice; the last (500ms) is used",
            "connperf: note: -r given twice; the last (20) is used",
        ]
    );
    let t = json_total(&o.text());
    assert_eq!(t["elapsed_sec"], 0.5, "{t}");
    assert_eq!(u(&t, "count"), 10, "1 connection x 20/s for 0.5 s: {t}");
}

/// `-h` is `--help` on the top level and on every subcommand: usage on stdout, exit 0.
#[test]
fn dash_h_is_help_everywhere() {
    for sub in ["", "serve", "connect", "merge", "completion"] {
        let mut argv: Vec<&str> = vec![];
        if !sub.is_empty() {
            argv.push(sub);
        }
        argv.push("-h");
        let o = run(&argv);
        o.assert_ok(&format!("{argv:?}"));
        let want = format!("Usage: connperf {sub}").trim_end().to_string();
        assert!(o.out[0].starts_with(&want), "{argv:?}: {:?}", o.out[0]);
        assert!(o.err.is_empty(), "{argv:?}: {}", o.err);
    }
}

/// A switch given a value other than true or false, and an unknown shell: one line naming it,
/// exit 2, no panic.
#[test]
fn bad_go_spellings_are_usage_errors() {
    for (argv, want) in [
        (
            &["connect", "--show-only-results=maybe", "127.0.0.1:9"][..],
            "connperf: invalid --show-only-results=maybe: a switch takes true or false (or none)",
        ),
        (
            &["serve", "--jsonlines=yes"][..],
            "connperf: invalid --jsonlines=yes: a switch takes true or false (or none)",
        ),
        (
            &["completion", "tcsh"][..],
            "connperf: unknown shell \"tcsh\": use bash, zsh or fish",
        ),
        (
            &["completion"][..],
            "connperf: completion needs a shell: bash, zsh or fish",
        ),
    ] {
        let o = run(argv);
        assert_eq!(o.status.code(), Some(2), "{argv:?}: {}", o.err);
        assert_eq!(o.stderr_lines(), [want], "{argv:?}");
        assert!(o.out.is_empty(), "{argv:?}");
    }
}

/// `connperf completion bash`, sourced by bash: `complete -p connperf` names its function,
/// which completes subcommands, flags of a subcommand, and shells.
#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let script = format!(
        r#"source <("{BIN}" completion bash) || exit 9
complete -p connperf
try() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _connperf; echo "${{COMPREPLY[*]}}"; }}
try connperf con
try connperf connect --mes
try connperf connect -c 5 --show
try connperf serve --listen
try connperf completion ''
"#
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "complete -F _connperf connperf",
            "connect",
            "--message-bytes",
            "--show-only-results",
            "--listen-addr --listen-addrs-file",
            "bash zsh fish --help -h",
        ],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// zsh and fish scripts name the subcommands and flags; they exit 0.
#[test]
fn zsh_and_fish_completion_scripts() {
    for (shell, want) in [
        (
            "zsh",
            &["compdef _connperf connperf", "--message-bytes", "-c"][..],
        ),
        (
            "fish",
            &[
                "complete -c connperf",
                "-s c -l connections -r",
                "-l show-only-results -d",
            ][..],
        ),
    ] {
        let o = run(&["completion", shell]);
        o.assert_ok(shell);
        let text = o.text();
        for w in want {
            assert!(text.contains(w), "{shell}: no {w:?} in\n{text}");
        }
    }
}

/// README.md's flag tables name every flag of `serve` and `connect` with its short form as
/// the binary's help lists it (`-c/--connections`), and the tables' flags are the binary's.
#[test]
fn readme_flag_tables_match_the_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for sub in ["serve", "connect"] {
        let o = run(&[sub, "--help"]);
        o.assert_ok(sub);
        let help = o.text();
        let options = help.split_once("\nOptions:\n").expect("Options").1;
        let mut longs = vec![];
        for line in options.lines().filter(|l| l.starts_with("  -")) {
            let names: Vec<&str> = line
                .split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .take_while(|w| w.starts_with('-'))
                .collect();
            let spelled = match names[..] {
                [short, long] => format!("`{short}/{long}"),
                [long] => format!("`{long}"),
                _ => panic!("{line:?}"),
            };
            assert!(readme.contains(&spelled), "README lacks {spelled}` ({sub})");
            longs.push(*names.last().unwrap());
        }
        // The other way: each `--flag` in the subcommand's table is one the help lists.
        let table = readme
            .split(&format!("### `connperf {sub}`"))
            .nth(1)
            .and_then(|t| t.split("\n\n").find(|p| p.starts_with("| flag |")))
            .expect("a flag table");
        for w in table.split(['`', ' ', ',', '/', '|']) {
            if w.strip_prefix("--")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_lowercase()))
            {
                assert!(
                    longs.contains(&w),
                    "README's {sub} table names {w}, which --help lacks"
                );
            }
        }
    }
}
