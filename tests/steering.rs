//! Core steering, seen from outside: a connection is served by the `connperf serve` worker
//! pinned to the core it comes from (SO_INCOMING_CPU in the workers' reuseport group).
//!
//! Its own harness (libtest-mimic, `harness = false`): where it cannot be seen (fewer than 2
//! cores, Linux before 6.1) the test is reported as ignored, with the reason on stderr, never
//! as passed.

use std::net::SocketAddr;
use std::thread;

mod common;

use common::client::{echo_small, pattern, tcp};
use common::Server as ServeProc;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let unavailable = can_run().err();
    if let Some(why) = &unavailable {
        eprintln!("steering tests ignored: {why}");
    }
    let trial = libtest_mimic::Trial::test(
        "connections_are_served_by_the_worker_on_the_core_they_come_from",
        || {
            connections_are_served_by_the_worker_on_the_core_they_come_from();
            Ok(())
        },
    )
    .with_ignored_flag(unavailable.is_some());
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Pin the calling thread to `core`.
fn pin_thread(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) acts on the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin test thread to core {core}"
        );
    }
}

/// The running kernel's (major, minor) version.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .split(['.', '-'])
        .map(|x| x.trim().parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Ok if steering can be seen here, or why not.
fn can_run() -> Result<(), String> {
    let cores = connperf::affinity::available_cores();
    if cores.len() < 2 || kernel_version() < (6, 1) {
        return Err(format!(
            "needs 2 cores and Linux 6.1+ (SO_INCOMING_CPU in reuseport groups); have {} cores, \
             kernel {:?}",
            cores.len(),
            kernel_version()
        ));
    }
    Ok(())
}

fn connections_are_served_by_the_worker_on_the_core_they_come_from() {
    let cores = connperf::affinity::available_cores();
    let (c0, c1) = (cores[0], cores[1]);
    let list = format!("{c0},{c1}");
    let server = ServeProc::start(&["-p", "tcp", "--cpus", &list]);
    let addr: SocketAddr = server.addr().parse().unwrap();
    // On loopback a SYN is processed on the core of the thread that sends it; the listener of
    // the worker pinned there must take the connection.
    let dial = |core: usize, n: usize| {
        thread::spawn(move || {
            pin_thread(core);
            (0..n)
                .map(|i| {
                    let mut s = tcp(addr);
                    echo_small(&mut s, &pattern(64, i as u64));
                    s
                })
                .collect::<Vec<_>>()
        })
        .join()
        .expect("dialer")
    };
    let from_c1 = dial(c1, 12);
    let from_c0 = dial(c0, 5);
    let rows = server.stop_rows();
    let accepted = |name: &str| {
        rows.iter()
            .rev()
            .find(|v| v["kind"] == "worker" && v["name"] == name)
            .and_then(|v| v["accepted"].as_u64())
            .unwrap_or_else(|| panic!("no row for worker {name}: {rows:#?}"))
    };
    assert_eq!(
        (accepted("w0"), accepted("w1")),
        (5, 12),
        "worker 0 is on core {c0}, worker 1 on core {c1}"
    );
    drop((from_c0, from_c1));
}
