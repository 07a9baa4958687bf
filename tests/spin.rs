//! The adaptive spin of the worker loop (`--spin-us`), seen from outside: CPU time of a real
//! `connperf serve`. A test binary of its own, so that no other test shares the cores while it
//! runs: a spinning worker that finds its core shared stops spinning (by design), which would
//! make the check below meaningless.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

mod common;

use common::Server as ServeProc;

fn echo_small(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("send");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(back, msg);
}

#[test]
fn spin_us_polls_after_traffic_and_sleeps_when_idle() {
    // A 1 s window (the most allowed) makes the difference plain even on a busy machine, where
    // the spinning worker gets only part of a core.
    let server = ServeProc::start(&["-p", "tcp", "--workers", "1", "--spin-us", "1000000"]);
    let addr = server.addr();
    thread::sleep(Duration::from_millis(500));
    let idle = server.cpu_time();
    assert!(
        idle < Duration::from_millis(150),
        "idle server used {idle:?}"
    );
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echo_small(&mut s, b"wake");
    thread::sleep(Duration::from_millis(1100));
    let after = server.cpu_time();
    assert!(
        after >= idle + Duration::from_millis(100),
        "no spinning after traffic: {idle:?} then {after:?}"
    );
    // The window has passed: the worker sleeps again.
    thread::sleep(Duration::from_millis(800));
    let later = server.cpu_time();
    assert!(
        later <= after + Duration::from_millis(100),
        "still spinning 1.1-1.9 s after the last event: {after:?} then {later:?}"
    );
    drop(s);
    server.stop();
}
