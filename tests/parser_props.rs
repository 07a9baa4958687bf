//! Property tests: no argument vector and no addresses-file content makes the parser panic.
//! Every input either parses into a config or gives an error (exit status 2 for config errors).

use connperf::cli::{parse_args, read_addrs_file, Command, Exit};
use proptest::prelude::*;
use std::sync::LazyLock;

/// The subcommands the parser knows, plus junk.
const SUBCOMMANDS: &[&str] = &["connect", "serve", "merge", "plot", "frob", ""];

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
                // merge's and plot's flags are checked by parsing; running them would read files.
                Some(Command::Merge(_)) | Some(Command::Plot(_)) | Some(Command::Completion(_))
                | None => {}
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

/// One flag as the parser's help describes it: `-c, --connections` in the Options list, and
/// `[-c <connections>]` (an option), `[--spin]` (a switch) or `[-l <listen-addr...>]`
/// (repeatable) in the Usage line.
#[derive(Debug, Clone)]
struct HelpFlag {
    long: String,
    short: Option<String>,
    takes_value: bool,
    repeatable: bool,
}

fn help_flags(sub: &str) -> Vec<HelpFlag> {
    let argv = [sub.to_string(), "--help".to_string()];
    let Err(Exit::Help(help)) = parse_args(&argv) else {
        panic!("`{sub} --help` did not print help");
    };
    let usage = help.lines().next().expect("a Usage line");
    let names = flags_of(sub);
    usage
        .split('[')
        .skip(1)
        .filter_map(|chunk| {
            let inside = chunk.split(']').next()?;
            let mut words = inside.split_whitespace();
            let name = words.next()?.to_string();
            if !name.starts_with('-') || name == "--" {
                return None;
            }
            let value = words.next();
            let (short, long) = if name.starts_with("--") {
                (None, name)
            } else {
                let i = names.iter().position(|n| *n == name)?;
                (Some(name), names[i + 1].clone())
            };
            Some(HelpFlag {
                long,
                short,
                takes_value: value.is_some(),
                repeatable: value.is_some_and(|v| v.ends_with("...>")),
            })
        })
        .collect()
}

/// Candidate values; each flag is tried with those its canonical spelling parses.
const GO_VALUES: &[&str] = &[
    "5",
    "1",
    "0",
    "100",
    "2.5",
    "1s",
    "500ms",
    "1m30s",
    "tcp",
    "udp",
    "all",
    "ephemeral",
    "persistent",
    "fin",
    "rst",
    "poisson",
    "uniform",
    "0-1",
    "50,99.9",
    "127.0.0.1:9100",
    "10.0.0.0/8",
    "k=v",
    "/tmp/x",
    "2026-01-01T00:00:00Z",
];

/// The Go tool's spellings of `flag` set to `value` (None: a switch turned on).
fn go_spellings(f: &HelpFlag, value: Option<&str>) -> Vec<Vec<String>> {
    let mut longs = vec![f.long.clone()];
    longs.extend(camel(&f.long));
    let mut out = Vec::new();
    for l in &longs {
        match value {
            Some(v) => {
                out.push(vec![l.clone(), v.to_string()]);
                out.push(vec![format!("{l}={v}")]);
            }
            None => {
                out.push(vec![l.clone()]);
                for t in ["true", "1", "True", "t"] {
                    out.push(vec![format!("{l}={t}")]);
                }
            }
        }
    }
    if let (Some(s), Some(v)) = (&f.short, value) {
        out.push(vec![s.clone(), v.to_string()]);
        out.push(vec![format!("{s}={v}")]);
        out.push(vec![format!("{s}{v}")]);
    }
    out
}

fn parsed(argv: &[String]) -> Result<String, Exit> {
    parse_args(argv).map(|a| format!("{a:?}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The values of `f` that its canonical spelling parses.
fn valid_values(sub: &str, f: &HelpFlag) -> Vec<&'static str> {
    GO_VALUES
        .iter()
        .copied()
        .filter(|v| parsed(&strings(&[sub, &f.long, v])).is_ok())
        .collect()
}

/// Every Go spelling of every flag of every subcommand parses to the same `Args` as the
/// canonical `--flag value` (or `--switch`), for every value the canonical one takes; and a
/// switch set to false is the switch left out.
#[test]
fn every_go_spelling_of_every_flag_parses_alike() {
    let connect = help_flags("connect");
    let c = connect.iter().find(|f| f.long == "--connections").unwrap();
    assert!(c.takes_value && !c.repeatable && c.short.as_deref() == Some("-c"));
    let s = connect
        .iter()
        .find(|f| f.long == "--show-only-results")
        .unwrap();
    assert!(!s.takes_value);
    assert!(
        connect
            .iter()
            .find(|f| f.long == "--label")
            .unwrap()
            .repeatable
    );
    assert!(connect.len() > 30, "{connect:?}");
    for sub in ["connect", "serve", "merge"] {
        for f in help_flags(sub).iter().filter(|f| f.long != "--help") {
            let values: Vec<Option<&str>> = if f.takes_value {
                valid_values(sub, f).into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            assert!(!values.is_empty(), "{sub} {}: no value parses", f.long);
            for v in values {
                let mut canonical = strings(&[sub, &f.long]);
                canonical.extend(v.map(str::to_string));
                let want = parsed(&canonical).expect("the canonical spelling parses");
                for spelled in go_spellings(f, v) {
                    let mut argv = vec![sub.to_string()];
                    argv.extend(spelled);
                    assert_eq!(
                        parsed(&argv).as_ref(),
                        Ok(&want),
                        "{argv:?} vs {canonical:?}"
                    );
                }
            }
            if !f.takes_value {
                let mut canonical_off = strings(&[sub]);
                canonical_off.extend(negation(&help_flags(sub), &f.long));
                for off in ["false", "0", "F"] {
                    let argv = strings(&[sub, &format!("{}={off}", f.long)]);
                    assert_eq!(parsed(&argv), parsed(&canonical_off), "{argv:?}");
                }
            }
        }
    }
}

/// How a switch is turned off canonically: left out, or `--no-SWITCH` where the command has
/// that form (`--progress`, on by default on a terminal).
fn negation(flags: &[HelpFlag], long: &str) -> Option<String> {
    let no = format!("--no-{}", long.trim_start_matches("--"));
    flags.iter().any(|f| f.long == no).then_some(no)
}

/// A flag and the values its canonical spelling parses.
type FlagValues = (HelpFlag, Vec<&'static str>);

/// Per subcommand, its flags (no `--help`) and each one's valid values.
static GO_FLAGS: LazyLock<Vec<(&'static str, Vec<FlagValues>)>> = LazyLock::new(|| {
    ["connect", "serve", "merge"]
        .into_iter()
        .map(|sub| {
            let flags = help_flags(sub)
                .into_iter()
                .filter(|f| f.long != "--help")
                .map(|f| {
                    let vals = if f.takes_value {
                        valid_values(sub, &f)
                    } else {
                        vec![]
                    };
                    (f, vals)
                })
                .collect();
            (sub, flags)
        })
        .collect()
});

/// One flag's part of a generated command line: which flag, its value, how the Go spelling
/// writes it, and whether the Go line gives it once before with another value (last wins).
#[derive(Debug, Clone)]
struct Pick {
    flag: usize,
    value: usize,
    number: Option<u32>,
    spelling: usize,
    earlier: Option<usize>,
    on: bool,
}

fn pick() -> impl Strategy<Value = Pick> {
    (
        any::<usize>(),
        any::<usize>(),
        proptest::option::of(1u32..100_000),
        any::<usize>(),
        proptest::option::of(any::<usize>()),
        any::<bool>(),
    )
        .prop_map(|(flag, value, number, spelling, earlier, on)| Pick {
            flag,
            value,
            number,
            spelling,
            earlier,
            on,
        })
}

/// Append the canonical and the Go spelling of `p` to the two command lines.
fn spell(sub: &str, flags: &[FlagValues], p: &Pick, canon: &mut Vec<String>, go: &mut Vec<String>) {
    let (f, vals) = &flags[p.flag % flags.len()];
    if !f.takes_value {
        if let Some(e) = p.earlier {
            go.push(format!("{}={}", f.long, ["false", "true"][e % 2]));
        }
        if p.on {
            canon.push(f.long.clone());
            let s = go_spellings(f, None);
            go.extend(s[p.spelling % s.len()].clone());
        } else {
            let all: Vec<HelpFlag> = flags.iter().map(|(f, _)| f.clone()).collect();
            canon.extend(negation(&all, &f.long));
            go.push(format!(
                "{}=false",
                camel(&f.long).unwrap_or(f.long.clone())
            ));
        }
        return;
    }
    let number = p.number.map(|n| n.to_string());
    let v = match &number {
        // A random number where the flag takes numbers at all.
        Some(n) if parsed(&strings(&[sub, &f.long, n])).is_ok() => n.as_str(),
        _ => vals[p.value % vals.len()],
    };
    if let (Some(e), false) = (p.earlier, f.repeatable) {
        let s = go_spellings(f, Some(vals[e % vals.len()]));
        go.extend(s[e % s.len()].clone());
    }
    canon.extend([f.long.clone(), v.to_string()]);
    let s = go_spellings(f, Some(v));
    go.extend(s[p.spelling % s.len()].clone());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    /// Whole command lines: several flags, each in a random Go spelling, some given twice
    /// (the last wins), switches as `=true`/`=false`, targets as one comma list: the same
    /// `Args` as the canonical line.
    #[test]
    fn go_command_lines_parse_like_canonical_ones(sub in 0usize..3,
                                                 picks in proptest::collection::vec(pick(), 1..6),
                                                 targets in 0usize..4) {
        let (sub, flags) = &GO_FLAGS[sub];
        let mut seen = std::collections::HashSet::new();
        let (mut canon, mut go) = (vec![sub.to_string()], vec![sub.to_string()]);
        for p in picks.iter().filter(|p| seen.insert(p.flag % flags.len())) {
            spell(sub, flags, p, &mut canon, &mut go);
        }
        if *sub != "merge" && targets > 0 {
            let addrs: Vec<String> = (0..targets).map(|i| format!("127.0.0.{}:{}", i + 1, 9100 + i)).collect();
            canon.extend(addrs.iter().cloned());
            // With --addrs-file the one positional is a file name, kept whole.
            if canon.iter().any(|a| a == "--addrs-file") {
                go.extend(addrs);
            } else {
                go.push(addrs.join(","));
            }
        }
        let want = parsed(&canon);
        prop_assume!(want.is_ok());
        prop_assert_eq!(parsed(&go), want, "{:?} vs {:?}", go, canon);
    }
}
