//! The adaptive spin of the worker loop (`--spin-us`), seen from outside: CPU time of a real
//! `connperf serve`. A test binary of its own, so that no other test shares the cores while it
//! runs: a spinning worker that finds its core shared stops spinning (by design), which would
//! make the check below meaningless. If something else kept the server's core busy all the
//! same, the check cannot be made: the test is reported as ignored, with the reason (its own
//! harness, libtest-mimic, `harness = false`), never as passed.

use libtest_mimic::{Completion, Trial};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

mod common;

use common::client::echo_small;
use common::Server as ServeProc;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let trial = Trial::ignorable_test("spin_us_polls_after_traffic_and_sleeps_when_idle", || {
        Ok(spin_us_polls_after_traffic_and_sleeps_when_idle())
    });
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Busy time of `core` so far (all threads, from /proc/stat: everything but idle and iowait).
fn core_busy(core: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("cpu{core}")))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: u64 = v.iter().sum::<u64>() - v.get(3)? - v.get(4)?;
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(busy * 1000 / hz))
}

/// Passes, fails (panics) or, where the server's core was shared, is ignored with the reason.
fn spin_us_polls_after_traffic_and_sleeps_when_idle() -> Completion {
    // A 1 s window (the most allowed) makes the difference plain even on a busy machine, where
    // the spinning worker gets only part of a core.
    let core = connperf::affinity::available_cores()
        .into_iter()
        .next()
        .unwrap_or(0);
    let cpus = core.to_string();
    let server = ServeProc::start(&["-p", "tcp", "--cpus", &cpus, "--spin-us", "1000000"]);
    let addr = server.addr();
    // This thread (the client) now stays off the server's core when there is another (after
    // the spawn: the server inherits nothing of it): a client woken on the server's core would
    // make the server see its core shared.
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_CLR(core, &mut set);
            if (0..libc::CPU_SETSIZE as usize).any(|c| libc::CPU_ISSET(c, &set)) {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
    }
    thread::sleep(Duration::from_millis(500));
    let idle = server.cpu_time();
    assert!(
        idle < Duration::from_millis(150),
        "idle server used {idle:?}"
    );
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let busy_before = core_busy(core);
    echo_small(&mut s, b"wake");
    thread::sleep(Duration::from_millis(1100));
    let after = server.cpu_time();
    if after < idle + Duration::from_millis(100) {
        // Not spinning: fine only if the core was shared (busy with other threads), where the
        // worker stops spinning by design.
        let others = busy_before
            .zip(core_busy(core))
            .map(|(b, a)| a.saturating_sub(b).saturating_sub(after - idle));
        if others.is_some_and(|o| o >= Duration::from_millis(300)) {
            drop(s);
            server.stop();
            return Completion::ignored_with(format!(
                "core {core} was busy with other threads for {:?} of 1.1 s, so the worker \
                 rightly did not spin",
                others.unwrap_or_default()
            ));
        }
        panic!("no spinning after traffic: {idle:?} then {after:?} (others on core {core}: {others:?})");
    }
    // The window has passed: the worker sleeps again.
    thread::sleep(Duration::from_millis(800));
    let later = server.cpu_time();
    assert!(
        later <= after + Duration::from_millis(100),
        "still spinning 1.1-1.9 s after the last event: {after:?} then {later:?}"
    );
    drop(s);
    server.stop();
    Completion::Completed
}
