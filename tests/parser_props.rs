//! Property tests: no argument vector and no addresses-file content makes the parser panic.
//! Every input either parses into a config or gives an error (exit status 2 for config errors).

use connperf::cli::{parse_args, read_addrs_file, Command};
use proptest::prelude::*;

/// Flags of both subcommands, Go spellings included, plus junk.
const FLAGS: &[&str] = &[
    "-p",
    "-f",
    "-c",
    "-r",
    "-d",
    "-i",
    "-l",
    "--proto",
    "--flavor",
    "--connections",
    "--rate",
    "--duration",
    "--interval",
    "--message-bytes",
    "--messageBytes",
    "--show-only-results",
    "--merge-results-each-host",
    "--addrs-file",
    "--jsonlines",
    "--cpus",
    "--workers",
    "--warmup",
    "--timeout",
    "--close",
    "--max-inflight",
    "--depth",
    "--source-addrs",
    "--busy-poll",
    "--spin",
    "--enable-pprof",
    "--pprof-addr",
    "--percentiles",
    "--latency-distribution",
    "--listen-addr",
    "--listenAddr",
    "--listen-addrs-file",
    "--protocol",
    "--max-connections",
    "--idle-timeout",
    "--backlog",
    "--allow",
    "--version",
    "--help",
    "--",
    "-",
    "--bogus",
    "-x",
];

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
        3 => proptest::sample::select(FLAGS).prop_map(str::to_string),
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        // No `:` in free text: a `name:port` would send the resolver to the network.
        1 => "[ -9;-~]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn no_argument_vector_panics(sub in proptest::sample::select(&["connect", "serve", "frob", ""][..]),
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
                Some(Command::Merge(_)) | None => {}
            }
        }
    }

    #[test]
    fn no_addrs_file_panics(content in proptest::collection::vec(any::<u8>().prop_map(|b| if b == b':' { b'!' } else { b }), 0..200),
                            lines in proptest::collection::vec("[0-9.:\\[\\]# \\t]{0,30}", 0..6)) {
        let dir = std::env::temp_dir().join(format!("connperf-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("addrs");
        for body in [content, lines.join("\n").into_bytes()] {
            std::fs::write(&f, &body).unwrap();
            match read_addrs_file(f.to_str().unwrap(), "--addrs-file") {
                Ok(v) => prop_assert!(!v.is_empty()),
                Err(e) => prop_assert!(e.to_string().contains("--addrs-file"), "{e}"),
            }
        }
    }
}
