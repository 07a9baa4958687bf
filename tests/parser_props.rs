//! Property tests: no argument vector and no addresses-file content makes the parser panic.
//! Every input either parses into a config or gives an error (exit status 2 for config errors).

use connperf::cli::{parse_args, read_addrs_file, Command, Exit};
use proptest::prelude::*;
use std::sync::LazyLock;

/// The subcommands the parser knows, plus junk.
const SUBCOMMANDS: &[&str] = &["connect", "serve", "merge", "frob", ""];

/// Arguments that are no flag of any subcommand.
const JUNK: &[&str] = &["--", "-", "--bogus", "-x", "--help", "help"];

/// The flags of `SUB`, read from the parser's own `SUB --help` (argh lists every option there),
/// so a flag added to cli.rs is generated here without anyone listing it.
fn flags_of(sub: &str) -> Vec<String> {
    let argv = [sub.to_string(), "--help".to_string()];
    let Err(Exit::Help(help)) = parse_args(&argv) else {
        panic!("`{sub} --help` did not print help");
    };
    let options = help
        .split_once("\nOptions:\n")
        .unwrap_or_else(|| panic!("no Options section in `{sub} --help`:\n{help}"))
        .1;
    options
        .lines()
        .take_while(|l| !l.trim().is_empty())
        // Option lines start `  -p, --proto  description`; continuation lines are indented
        // further and start with a word.
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .take_while(|w| w.starts_with('-'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Go tool's camelCase spelling of a kebab-case long flag (`--message-bytes` →
/// `--messageBytes`), which the parser also accepts; None for a flag without a dash inside.
fn camel(flag: &str) -> Option<String> {
    let name = flag.strip_prefix("--")?;
    name.contains('-').then(|| {
        let mut parts = name.split('-');
        let mut out = format!("--{}", parts.next().unwrap_or(""));
        for p in parts {
            let mut c = p.chars();
            if let Some(first) = c.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(c);
            }
        }
        out
    })
}

/// Every flag of every subcommand, in both spellings, plus junk.
static FLAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut all: Vec<String> = ["connect", "serve", "merge"]
        .into_iter()
        .flat_map(flags_of)
        .collect();
    let camels: Vec<String> = all.iter().filter_map(|f| camel(f)).collect();
    all.extend(camels);
    all.extend(JUNK.iter().map(|j| j.to_string()));
    all.sort();
    all.dedup();
    all
});

/// Values that poke at the edges.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "1.5",
    "1e309",
    "NaN",
    "inf",
    "18446744073709551616",
    "99999999999",
    "5s",
    "500ms",
    "1m30s",
    "5x",
    "s",
    "µs",
    "0-3,6",
    "3-1",
    ",",
    "127.0.0.1:9100",
    "[::1]:9100",
    "::1:9100",
    "localhost:0",
    "host:99999",
    "10.0.0.0/30",
    "10.0.0.0/8",
    "tcp",
    "udp",
    "all",
    "persistent",
    "ephemeral",
    "rst",
    "fin",
    "50,99.9",
    "101",
    "/nonexistent",
    "/dev/null",
    "/",
    "--rate=5",
    "--flavor=ephemeral",
    "=",
    "ü",
    "\u{0}",
];

fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FLAGS.clone()),
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        // The `--flag=value` spelling.
        1 => (proptest::sample::select(FLAGS.clone()), proptest::sample::select(VALUES))
            .prop_map(|(f, v)| format!("{f}={v}")),
        // No `:` in free text: a `name:port` would send the resolver to the network.
        1 => "[ -9;-~]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn no_argument_vector_panics(sub in proptest::sample::select(SUBCOMMANDS),
                                 rest in proptest::collection::vec(arg(), 0..8)) {
        let mut argv = vec![sub.to_string()];
        argv.extend(rest);
        // Resolving hostnames would make this slow and network-dependent: skip vectors that
        // name a host other than loopback addresses.
        prop_assume!(!argv.iter().any(|a| a.contains("localhost")));
        if let Ok(args) = parse_args(&argv) {
            match args.cmd {
                Some(Command::Connect(c)) => {
                    if let Err(e) = c.into_config() {
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
                Some(Command::Serve(s)) => {
                    if let Err(e) = s.into_config() {
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
                // merge's flags are checked by parsing; running it would read the files.
                Some(Command::Merge(_)) | Some(Command::Completion(_)) | None => {}
            }
        }
    }

    #[test]
    fn no_addrs_file_panics(content in proptest::collection::vec(any::<u8>().prop_map(|b| if b == b':' { b'!' } else { b }), 0..200),
                            lines in proptest::collection::vec("[0-9.:\\[\\]# \\t]{0,30}", 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("addrs");
        for body in [content, lines.join("\n").into_bytes()] {
            std::fs::write(&f, &body).unwrap();
            match read_addrs_file(f.to_str().unwrap(), "--addrs-file") {
                Ok(v) => prop_assert!(!v.is_empty()),
                Err(e) => prop_assert!(e.to_string().contains("--addrs-file"), "{e}"),
            }
        }
    }
}

/// The flag list is really derived: every subcommand's help names its flags, including those
/// an older hand-kept list missed.
#[test]
fn the_generated_flags_are_the_parsers() {
    for (sub, some) in [
        (
            "connect",
            &[
                "-p",
                "--proto",
                "--hdr-log",
                "--label",
                "--start-at",
                "--spin-us",
                "--pprof-addr",
            ][..],
        ),
        (
            "serve",
            &[
                "-l",
                "--listen-addr",
                "--listen-addrs-file",
                "--allow",
                "--spin-us",
            ][..],
        ),
        (
            "merge",
            &["-i", "--interval", "--merge-results-each-host"][..],
        ),
    ] {
        let flags = flags_of(sub);
        for f in some {
            assert!(flags.iter().any(|x| x == f), "{sub}: {f} not in {flags:?}");
        }
        // Every flag the help names is one the parser takes (as a switch or with a value).
        for f in &flags {
            let argv: Vec<String> = [sub, f.as_str()].iter().map(|s| s.to_string()).collect();
            if let Err(Exit::Usage(e)) = parse_args(&argv) {
                assert!(
                    !e.contains("Unrecognized argument"),
                    "{sub} {f}: help names a flag the parser rejects: {e}"
                );
            }
        }
    }
    assert!(FLAGS.iter().any(|f| f == "--messageBytes"), "{:?}", *FLAGS);
    assert!(FLAGS.iter().any(|f| f == "--hdrLog"), "{:?}", *FLAGS);
}
