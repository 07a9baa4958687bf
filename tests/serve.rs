//! Integration tests for `connperf serve`: the echo server in-process (`echo::Server`) and the
//! binary (`connperf serve`), over real sockets on loopback.
//!
//! Every socket has read/write timeouts, every wait has a deadline, every server started here is
//! stopped here (in-process servers by `Shutdown::trigger`, child processes by their PID).

use connperf::affinity::Plan;
use connperf::echo::{Protocols, ServeConfig, Server};
use connperf::reactor::{LoopOptions, Shutdown};
use connperf::report::ServerCounters;
use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::ExitStatus;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a child process gets to start, or to exit after SIGTERM.
const PROC_TIMEOUT: Duration = Duration::from_secs(5);

mod common;

use common::client::{echo_small, pattern, tcp, IO_TIMEOUT};
use common::proc::{spawn, Proc};

// ---------------------------------------------------------------------------------------------
// Helpers: in-process server
// ---------------------------------------------------------------------------------------------

/// A `Write` that keeps what the reporter printed, for the test to read afterwards.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("reporter output is UTF-8")
    }
}

/// An in-process echo server that is stopped when dropped, even if the test panicked.
struct Running {
    server: Option<Server>,
    shutdown: Shutdown,
    out: SharedBuf,
}

impl Running {
    fn start(cfg: ServeConfig, workers: usize) -> Running {
        let plan = Plan {
            cores: vec![],
            workers,
            strict: false,
        };
        let shutdown = Shutdown::new();
        let out = SharedBuf::default();
        let server = Server::start(cfg, &plan, &shutdown, LoopOptions::default(), out.clone())
            .expect("server starts");
        Running {
            server: Some(server),
            shutdown,
            out,
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.server.as_ref().expect("running").addrs.clone()
    }

    fn addr(&self) -> SocketAddr {
        self.addrs()[0]
    }

    /// Trigger shutdown and return the reporter's final totals.
    fn stop(mut self) -> ServerCounters {
        self.shutdown.trigger();
        let server = self.server.take().expect("running");
        stop_within(server, Duration::from_secs(5))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            // Only reached when a test failed before `stop`: stop the server, bounded in time.
            self.shutdown.trigger();
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let _ = tx.send(s.join().is_ok());
            });
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// Join a triggered server on a helper thread so a hang fails the test instead of stalling it.
fn stop_within(server: Server, limit: Duration) -> ServerCounters {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(server.join());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.expect("server joins without error"),
        Err(_) => panic!("server did not stop within {limit:?} of shutdown"),
    }
}

fn config(addrs: &[&str]) -> ServeConfig {
    ServeConfig {
        addrs: addrs
            .iter()
            .map(|a| a.parse().expect("test address"))
            .collect(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: clients
// ---------------------------------------------------------------------------------------------

/// Write `msg` from another thread while this one reads the echo (the server stops reading
/// while its echo is not taken, so a single thread would deadlock on large messages).
fn echo_big(s: &mut TcpStream, msg: Arc<Vec<u8>>) {
    let mut w = s.try_clone().expect("clone stream");
    let m = msg.clone();
    let writer = thread::spawn(move || w.write_all(&m));
    let mut back = vec![0u8; msg.len()];
    let res = s.read_exact(&mut back);
    writer
        .join()
        .expect("writer thread")
        .expect("write message");
    res.unwrap_or_else(|e| panic!("read echo of {} bytes: {e}", msg.len()));
    if let Some(i) = back.iter().zip(msg.iter()).position(|(a, b)| a != b) {
        panic!("echo of {} bytes differs first at byte {i}", msg.len());
    }
}

/// The peer must close `s` within `within`: read gives end of stream or a reset.
fn expect_closed(s: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) => {}
        Ok(n) => panic!("expected the server to close the connection, got {n} bytes"),
        Err(e) => panic!(
            "expected the server to close the connection within {within:?}, got {e} after {:?}",
            start.elapsed()
        ),
    }
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    start.elapsed()
}

fn udp_client(server: SocketAddr) -> UdpSocket {
    let local: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    let u = UdpSocket::bind(local).expect("bind UDP client");
    u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    u.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    u
}

/// Send one datagram and expect it back unchanged, from the server's address.
fn udp_echo(u: &UdpSocket, to: SocketAddr, payload: &[u8]) {
    let sent = u
        .send_to(payload, to)
        .unwrap_or_else(|e| panic!("send {} B datagram to {to}: {e}", payload.len()));
    assert_eq!(sent, payload.len(), "datagram sent whole");
    let mut buf = vec![0u8; 70_000];
    let (n, from) = u
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no echo of a {} B datagram from {to}: {e}", payload.len()));
    assert_eq!(from, to, "echo comes from the address the datagram went to");
    assert_eq!(n, payload.len(), "echoed datagram length");
    assert!(&buf[..n] == payload, "echoed datagram content differs");
}

/// Poll `cond` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: the binary
// ---------------------------------------------------------------------------------------------

/// SIGTERM the child, wait for it, and return its status, the rest of stdout and stderr.
fn terminate(mut p: Proc) -> (ExitStatus, Vec<String>, String) {
    p.signal(libc::SIGTERM);
    let o = p.finish(PROC_TIMEOUT);
    (o.status, o.out, o.err)
}

/// Run connperf with arguments that must be refused: returns (status code, stdout, stderr).
fn run_refused(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let o = spawn(args, None).finish(PROC_TIMEOUT);
    (o.status.code(), o.out, o.err)
}

/// VmRSS of a process in KiB, from /proc/PID/status.
fn vm_rss_kib(pid: libc::pid_t) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value")
}

/// A `name=value` field of a text counter line.
fn field(line: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

// ---------------------------------------------------------------------------------------------
// In-process tests
// ---------------------------------------------------------------------------------------------

/// One connection streaming without pause cannot hold a worker: another connection on the
/// same worker still gets its echoes promptly (the per-turn read budget).
#[test]
fn a_streaming_connection_does_not_starve_the_others_on_its_worker() {
    let srv = Running::start(config(&["127.0.0.1:0"]), 1);
    let addr = srv.addr();
    let stream = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stream.set_send_buffer_size(4 << 20).unwrap();
    stream.set_recv_buffer_size(4 << 20).unwrap();
    stream.connect(&addr.into()).unwrap();
    let stream: TcpStream = stream.into();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut w, mut r) = (stream.try_clone().unwrap(), stream);
    let (s1, s2) = (stop.clone(), stop.clone());
    let writer = thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        while !s1.load(std::sync::atomic::Ordering::Relaxed) {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = w.shutdown(NetShutdown::Write);
    });
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            if s2.load(std::sync::atomic::Ordering::Relaxed) && total > (64 << 20) {
                break;
            }
        }
        total
    });
    thread::sleep(Duration::from_millis(300));
    let mut p = tcp(addr);
    let mut worst = Duration::ZERO;
    let mut pings = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        echo_small(&mut p, b"ping");
        worst = worst.max(t.elapsed());
        pings += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let streamed = reader.join().unwrap();
    eprintln!("streamed {streamed} B, {pings} pings, worst {worst:?}");
    assert!(streamed > 64 << 20, "the stream did not flow: {streamed} B");
    assert!(
        worst < Duration::from_millis(100),
        "a ping waited {worst:?} behind the streaming connection ({pings} pings)"
    );
    srv.stop();
}

#[test]
fn tcp_echo_is_byte_exact_from_1_byte_to_4_mib() {
    let srv = Running::start(config(&["127.0.0.1:0"]), 2);
    let addr = srv.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "bound {addr}");
    let sizes = [1usize, 64, 64 << 10, 4 << 20];
    let mut expected = 0u64;

    // All sizes in turn on one connection: the stream must stay aligned between messages.
    let mut s = tcp(addr);
    for (i, &n) in sizes.iter().enumerate() {
        let msg = pattern(n, i as u64 + 1);
        if n <= 64 {
            echo_small(&mut s, &msg);
        } else {
            echo_big(&mut s, Arc::new(msg));
        }
        expected += n as u64;
    }
    drop(s);

    // A few bytes and the FIN together: the echo still comes back before end of stream.
    let mut s = tcp(addr);
    s.write_all(b"abc").unwrap();
    s.shutdown(NetShutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back)
        .expect("read the echo to end of stream after a half-close");
    assert_eq!(back, b"abc");
    expected += 3;
    drop(s);

    // 4 MiB then a half-close: the whole echo arrives, then the server closes its side.
    let mut s = tcp(addr);
    let msg = Arc::new(pattern(4 << 20, 99));
    let mut w = s.try_clone().unwrap();
    let m = msg.clone();
    let writer = thread::spawn(move || {
        w.write_all(&m)?;
        w.shutdown(NetShutdown::Write)
    });
    let mut back = Vec::with_capacity(msg.len());
    let res = s.read_to_end(&mut back);
    writer
        .join()
        .unwrap()
        .expect("write 4 MiB then shut down writing");
    res.expect("read the echo to end of stream after a half-close");
    assert_eq!(back.len(), msg.len(), "echo length before end of stream");
    assert!(back == *msg, "4 MiB echo after half-close differs");
    expected += msg.len() as u64;
    drop(s);

    let c = srv.stop();
    assert_eq!(c.tcp_bytes, expected, "bytes echoed == bytes sent: {c:?}");
    assert_eq!(c.accepted, 3, "{c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
}

#[test]
fn thousand_concurrent_tcp_clients_on_two_workers() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    const ROUNDS: usize = 3;
    const MSG: usize = 16;
    let srv = Running::start(config(&["127.0.0.1:0"]), 2);
    let addr = srv.addr();
    let all_open = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let all_open = all_open.clone();
            thread::spawn(move || {
                let mut conns: Vec<TcpStream> = (0..PER_THREAD).map(|_| tcp(addr)).collect();
                // All 1,000 connections are open at once from here on.
                all_open.wait();
                for round in 0..ROUNDS {
                    let msgs: Vec<Vec<u8>> = (0..PER_THREAD)
                        .map(|i| pattern(MSG, ((t * PER_THREAD + i) * ROUNDS + round) as u64))
                        .collect();
                    for (s, m) in conns.iter_mut().zip(&msgs) {
                        s.write_all(m).expect("write");
                    }
                    for (i, (s, m)) in conns.iter_mut().zip(&msgs).enumerate() {
                        let mut back = [0u8; MSG];
                        s.read_exact(&mut back)
                            .unwrap_or_else(|e| panic!("thread {t} conn {i} round {round}: {e}"));
                        assert_eq!(&back[..], &m[..], "thread {t} conn {i} round {round}");
                    }
                }
                conns.len()
            })
        })
        .collect();
    let mut clients = 0;
    for h in handles {
        clients += h.join().expect("client thread");
    }
    assert_eq!(clients, THREADS * PER_THREAD);

    let out = srv.out.clone();
    let c = srv.stop();
    let n = (THREADS * PER_THREAD) as u64;
    assert_eq!(c.accepted, n, "{c:?}");
    assert_eq!(c.tcp_bytes, n * (ROUNDS * MSG) as u64, "{c:?}");
    assert_eq!(c.closed, c.accepted, "all closed after shutdown: {c:?}");
    assert_eq!((c.errors(), c.rejected), (0, 0), "{c:?}");
    // SO_REUSEPORT spreads 1,000 connections over both workers (all on one: chance 2^-999).
    let text = out.text();
    for w in ["w0", "w1"] {
        let line = text
            .lines()
            .find(|l| l.starts_with("server worker") && l.split_whitespace().nth(2) == Some(w))
            .unwrap_or_else(|| panic!("no line for worker {w} in:\n{text}"));
        assert!(field(line, "accepted") > 0, "worker {w} took none: {line}");
    }
}

#[test]
fn udp_datagrams_of_1_and_65507_bytes_echo_unchanged() {
    let srv = Running::start(config(&["127.0.0.1:0"]), 2);
    let addr = srv.addr();
    let u = udp_client(addr);
    udp_echo(&u, addr, &[0xA5]);
    udp_echo(&u, addr, &pattern(65_507, 7));
    udp_echo(&u, addr, &pattern(100, 8));
    let c = srv.stop();
    assert_eq!(c.udp_datagrams, 3, "{c:?}");
    assert_eq!(c.udp_bytes, 1 + 65_507 + 100, "{c:?}");
    assert_eq!((c.accepted, c.errors()), (0, 0), "{c:?}");
}

#[test]
fn ipv6_loopback_echoes_tcp_and_udp() {
    let srv = Running::start(config(&["[::1]:0"]), 2);
    let addr = srv.addr();
    assert!(
        addr.is_ipv6() && addr.ip().is_loopback(),
        "bound {addr}, want [::1]"
    );
    let mut s = tcp(addr);
    echo_small(&mut s, &pattern(64, 1));
    echo_big(&mut s, Arc::new(pattern(256 << 10, 2)));
    drop(s);
    let u = udp_client(addr);
    udp_echo(&u, addr, &[1]);
    // The largest IPv6 UDP payload: the server's buffer is documented to hold it.
    udp_echo(&u, addr, &pattern(65_527, 3));
    let c = srv.stop();
    assert_eq!(c.tcp_bytes, 64 + (256 << 10), "{c:?}");
    assert_eq!((c.udp_datagrams, c.udp_bytes), (2, 1 + 65_527), "{c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
}

#[test]
fn one_server_listens_on_several_addresses() {
    let srv = Running::start(config(&["127.0.0.1:0", "127.0.0.1:0", "[::1]:0"]), 2);
    let addrs = srv.addrs();
    assert_eq!(addrs.len(), 3, "{addrs:?}");
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv4() && addrs[2].is_ipv6());
    assert_ne!(addrs[0], addrs[1], "two port-0 entries get two ports");
    for (i, &a) in addrs.iter().enumerate() {
        assert_ne!(a.port(), 0);
        let mut s = tcp(a);
        echo_small(&mut s, &pattern(100, i as u64));
        let u = udp_client(a);
        udp_echo(&u, a, &pattern(200, i as u64));
    }
    let c = srv.stop();
    assert_eq!(c.accepted, 3, "{c:?}");
    assert_eq!((c.tcp_bytes, c.udp_bytes), (300, 600), "{c:?}");
}

#[test]
fn protocol_selection_tcp_only_and_udp_only() {
    // TCP only: TCP echoes; a UDP datagram gets no reply.
    let srv = Running::start(
        ServeConfig {
            protocols: Protocols::Tcp,
            ..config(&["127.0.0.1:0"])
        },
        2,
    );
    let addr = srv.addr();
    echo_small(&mut tcp(addr), b"tcp only");
    let u = udp_client(addr);
    u.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    u.connect(addr).unwrap();
    u.send(b"anyone?").expect("send datagram");
    let mut buf = [0u8; 64];
    match u.recv(&mut buf) {
        Ok(n) => panic!("tcp-only server answered a UDP datagram with {n} bytes"),
        // No reply within the timeout, or ICMP port unreachable: both mean nobody listens.
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::ConnectionRefused
            ),
            "unexpected UDP error {e}"
        ),
    }
    let c = srv.stop();
    assert_eq!((c.accepted, c.udp_datagrams), (1, 0), "{c:?}");

    // UDP only: UDP echoes; a TCP connect is refused.
    let srv = Running::start(
        ServeConfig {
            protocols: Protocols::Udp,
            ..config(&["127.0.0.1:0"])
        },
        2,
    );
    let addr = srv.addr();
    udp_echo(&udp_client(addr), addr, b"udp only");
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(_) => panic!("udp-only server accepted a TCP connection on {addr}"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
    }
    let c = srv.stop();
    assert_eq!((c.accepted, c.udp_datagrams), (0, 1), "{c:?}");
}

#[test]
fn max_connections_closes_the_excess_at_once_and_counts_it() {
    let srv = Running::start(
        ServeConfig {
            max_connections: Some(3),
            ..config(&["127.0.0.1:0"])
        },
        2,
    );
    let addr = srv.addr();
    // Three connections, each proven accepted by an echo.
    let mut kept: Vec<TcpStream> = (0..3).map(|_| tcp(addr)).collect();
    for (i, s) in kept.iter_mut().enumerate() {
        echo_small(s, &pattern(10, i as u64));
    }
    // Two more: the kernel completes the handshake, the server closes them at once.
    let mut rejected = 0u64;
    for _ in 0..2 {
        let mut s = tcp(addr);
        let took = expect_closed(&mut s, Duration::from_secs(2));
        assert!(
            took < Duration::from_secs(1),
            "excess connection closed only after {took:?}"
        );
        rejected += 1;
    }
    // The three still echo.
    for (i, s) in kept.iter_mut().enumerate() {
        echo_small(s, &pattern(20, i as u64));
    }
    // Closing one frees a place: a new connection is served again (once the server saw the FIN).
    drop(kept.pop());
    let mut admitted = None;
    let got_in = wait_for(Duration::from_secs(3), || {
        let mut s = tcp(addr);
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if s.write_all(b"again").is_err() {
            rejected += 1;
            return false;
        }
        let mut back = [0u8; 5];
        match s.read_exact(&mut back) {
            Ok(()) => {
                assert_eq!(&back, b"again");
                admitted = Some(s);
                true
            }
            Err(_) => {
                rejected += 1;
                false
            }
        }
    });
    assert!(got_in, "no connection admitted after one of three closed");
    drop(admitted);
    drop(kept);
    let c = srv.stop();
    assert_eq!(c.rejected, rejected, "server's rejected count: {c:?}");
    assert_eq!(c.accepted, 4 + rejected, "{c:?}");
    assert_eq!(c.closed, c.accepted, "{c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
}

#[test]
fn server_counters_add_up_to_the_traffic_sent() {
    let srv = Running::start(config(&["127.0.0.1:0"]), 2);
    let addr = srv.addr();
    let mut tcp_sent = 0u64;
    for i in 0..5u64 {
        let mut s = tcp(addr);
        for k in 0..=i {
            let n = (1 + i * 1000 + k * 37) as usize;
            echo_small(&mut s, &pattern(n, i * 10 + k));
            tcp_sent += n as u64;
        }
        // Close after all echoes are in: the server reads end of stream, no reset.
        s.shutdown(NetShutdown::Write).unwrap();
        expect_closed(&mut s, Duration::from_secs(2));
    }
    let u = udp_client(addr);
    let mut udp_sent = 0u64;
    for i in 0..10u64 {
        let n = (1 + i * 500) as usize;
        udp_echo(&u, addr, &pattern(n, i));
        udp_sent += n as u64;
    }
    let out = srv.out.clone();
    let c = srv.stop();
    assert_eq!(c.tcp_bytes, tcp_sent, "TCP bytes echoed == sent: {c:?}");
    assert_eq!(c.udp_bytes, udp_sent, "UDP bytes echoed == sent: {c:?}");
    assert_eq!(c.udp_datagrams, 10, "{c:?}");
    assert_eq!((c.accepted, c.closed), (5, 5), "{c:?}");
    assert!(c.tcp_reads >= 15, "at least one read per message: {c:?}");
    assert_eq!(
        (c.rejected, c.idle_closed, c.resets, c.errors()),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.open(), 0, "{c:?}");

    // The printed lines agree with the totals returned, and the workers sum to the total.
    let text = out.text();
    let total = text
        .lines()
        .find(|l| l.starts_with("server total"))
        .unwrap_or_else(|| panic!("no `server total` line in:\n{text}"));
    assert_eq!(field(total, "tcp_bytes"), tcp_sent, "{total}");
    assert_eq!(field(total, "udp_bytes"), udp_sent, "{total}");
    assert_eq!(field(total, "accepted"), 5, "{total}");
    let workers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("server worker"))
        .collect();
    assert_eq!(workers.len(), 2, "one line per worker:\n{text}");
    let sum: u64 = workers.iter().map(|l| field(l, "tcp_bytes")).sum();
    assert_eq!(sum, tcp_sent, "worker lines sum to the total:\n{text}");
}

#[test]
fn idle_timeout_closes_an_idle_connection_only() {
    let idle = Duration::from_millis(300);
    let srv = Running::start(
        ServeConfig {
            idle_timeout: Some(idle),
            ..config(&["127.0.0.1:0"])
        },
        2,
    );
    let addr = srv.addr();
    let mut quiet = tcp(addr);
    echo_small(&mut quiet, b"hello");
    let quiet_since = Instant::now();
    // Another connection keeps talking every 50 ms, past the timeout, from another thread.
    let mut busy = tcp(addr);
    let talker = thread::spawn(move || {
        let until = Instant::now() + Duration::from_millis(900);
        let mut i = 0u64;
        while Instant::now() < until {
            echo_small(&mut busy, &pattern(8, i));
            i += 1;
            thread::sleep(Duration::from_millis(50));
        }
        busy
    });
    expect_closed(&mut quiet, Duration::from_secs(3));
    let idle_for = quiet_since.elapsed();
    assert!(
        idle_for >= idle - Duration::from_millis(100),
        "closed after {idle_for:?}, before the {idle:?} idle timeout"
    );
    assert!(
        idle_for < Duration::from_secs(2),
        "closed only after {idle_for:?}"
    );
    let mut busy = talker.join().expect("busy connection kept echoing");
    echo_small(&mut busy, b"still here");
    drop(busy);
    let c = srv.stop();
    assert_eq!(c.idle_closed, 1, "only the quiet connection: {c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// Binary tests
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_serves_then_exits_0_on_sigterm_with_totals() {
    let mut p = spawn(&["serve", "-l", "127.0.0.1:0", "--workers", "2"], None);
    let addr = p.listening(1)[0];
    assert!(addr.ip().is_loopback());
    let mut s = tcp(addr);
    echo_small(&mut s, &pattern(64, 1));
    echo_big(&mut s, Arc::new(pattern(1 << 20, 2)));
    drop(s);
    udp_echo(&udp_client(addr), addr, &pattern(512, 3));
    // A connection still open at SIGTERM is closed by the server, which then exits.
    let mut open = tcp(addr);
    echo_small(&mut open, b"open");
    let (status, lines, err) = terminate(p);
    assert_eq!(status.code(), Some(0), "exit status; stderr: {err}");
    expect_closed(&mut open, Duration::from_secs(1));
    let total = lines
        .iter()
        .find(|l| l.starts_with("server total"))
        .unwrap_or_else(|| panic!("no `server total` line in {lines:#?}"));
    assert_eq!(field(total, "tcp_bytes"), 64 + (1 << 20) + 4, "{total}");
    assert_eq!(field(total, "udp_bytes"), 512, "{total}");
    assert_eq!(field(total, "accepted"), 2, "{total}");
    assert_eq!(field(total, "open"), 0, "{total}");
    assert_eq!(field(total, "errors"), 0, "{total}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("server worker"))
            .count(),
        2,
        "{lines:#?}"
    );
}

/// `serve --jsonlines ARGS` on a free port of 127.0.0.1, two workers. Returns the child, the
/// address from its first stdout line (which must be the `"kind":"listening"` object, not the
/// text line) and that line.
fn spawn_json_server(args: &[&str]) -> (Proc, SocketAddr, String) {
    let mut argv = vec![
        "serve",
        "-l",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--jsonlines",
    ];
    argv.extend_from_slice(args);
    let mut p = spawn(&argv, None);
    let first = p
        .line_within(PROC_TIMEOUT)
        .expect("a first stdout line within 5 s");
    let v: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first:?}"));
    assert_eq!(v["kind"], "listening", "{first}");
    assert_eq!(v["proto"], "tcp+udp", "{first}");
    assert_eq!(v["workers"], 2, "{first}");
    let addr: SocketAddr = v["addr"]
        .as_str()
        .expect("addr")
        .parse()
        .expect("an address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{first}");
    assert_eq!(
        common::listening_addr(&first),
        Some(addr),
        "the harness reads it too"
    );
    (p, addr, first)
}

/// Issue 13 item 8: with `--jsonlines`, every stdout line from start to stop is a JSON object:
/// the listening object, the interval rows, the worker rows and the total, in that order.
#[test]
fn binary_jsonlines_stdout_is_only_json_from_start_to_stop() {
    let (mut p, addr, first) = spawn_json_server(&["--interval", "100ms"]);
    let mut s = tcp(addr);
    echo_small(&mut s, &pattern(1000, 1));
    drop(s);
    udp_echo(&udp_client(addr), addr, &pattern(300, 2));
    // An interval row with the traffic in it comes out before the stop.
    p.wait_line(PROC_TIMEOUT, |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["kind"] == "interval" && v["udp_bytes"].as_u64() > Some(0))
    });
    let (status, mut lines, err) = terminate(p);
    assert_eq!(status.code(), Some(0), "exit status; stderr: {err}");
    assert!(!err.contains("Listening"), "stderr: {err}");
    lines.insert(0, first);
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let kinds: Vec<&str> = rows
        .iter()
        .map(|r| r["kind"].as_str().expect("every row has a kind"))
        .collect();
    let n = kinds.len();
    assert!(n >= 5, "{kinds:?}");
    assert_eq!(kinds[0], "listening", "{kinds:?}");
    assert!(
        kinds[1..n - 3].iter().all(|k| *k == "interval"),
        "{kinds:?}"
    );
    assert_eq!(kinds[n - 3..], ["worker", "worker", "total"], "{kinds:?}");
    let total = &rows[n - 1];
    assert_eq!(total["tcp_bytes"], 1000, "{total}");
    assert_eq!(total["udp_bytes"], 300, "{total}");
    assert_eq!(total["accepted"], 1, "{total}");
    assert_eq!(total["errors"]["io"], 0, "{total}");
}

/// The counters a server row counts (all but `open`, which is the state at the row's end).
fn server_counts(r: &serde_json::Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (k, v) in r.as_object().expect("a JSON object") {
        match k.as_str() {
            "kind" | "name" | "timestamp" | "elapsed_sec" | "open" => {}
            "errors" => {
                for (e, n) in v.as_object().expect("errors by kind") {
                    out.push((format!("errors.{e}"), n.as_u64().expect("a count")));
                }
            }
            _ => out.push((k.clone(), v.as_u64().unwrap_or_else(|| panic!("{k}: {v}")))),
        }
    }
    out
}

/// Issue 13 item 8: the window in progress at the stop is printed as an interval row of its
/// real, shorter length, so the interval rows add up to the total exactly, counter by counter,
/// and their lengths to the run's. Real TCP and UDP clients, a few windows, a stop mid-window.
#[test]
fn binary_interval_rows_add_up_to_the_totals_with_the_last_partial_window() {
    const WINDOW: f64 = 0.3;
    let (mut p, addr, _) = spawn_json_server(&["--interval", "300ms"]);
    let udp = udp_client(addr);
    let mut windows_with_traffic = 0;
    for round in 0..3u64 {
        let mut s = tcp(addr);
        echo_small(&mut s, &pattern(100 + round as usize, round));
        udp_echo(&udp, addr, &pattern(50 + round as usize, round));
        if round == 2 {
            // The stop comes right after this traffic, early in a window.
            drop(s);
            break;
        }
        drop(s);
        // Wait for the window that holds this round's traffic to be printed.
        p.wait_line(PROC_TIMEOUT, |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["kind"] == "interval" && v["udp_datagrams"].as_u64() > Some(0))
        });
        windows_with_traffic += 1;
    }
    assert_eq!(windows_with_traffic, 2);
    // A connection left open at the stop: the server closes it, in the last window.
    let mut open = tcp(addr);
    echo_small(&mut open, b"open at the stop");
    let (status, lines, err) = terminate(p);
    assert_eq!(status.code(), Some(0), "exit status; stderr: {err}");
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let intervals: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["kind"] == "interval").collect();
    let total = rows.last().expect("rows");
    assert_eq!(total["kind"], "total", "{lines:#?}");
    assert!(intervals.len() >= 3, "{lines:#?}");
    // Window numbers count up; the last row is the partial window, right before the workers.
    for (i, w) in intervals.windows(2).enumerate() {
        let a: u64 = w[0]["name"].as_str().unwrap().parse().unwrap();
        let b: u64 = w[1]["name"].as_str().unwrap().parse().unwrap();
        assert!(b > a, "row {i}: window {a} then {b}: {lines:#?}");
    }
    let last = intervals.last().unwrap();
    let n = rows.len();
    assert_eq!(
        &rows[n - 4],
        *last,
        "the partial window comes before the worker rows"
    );
    let last_len = last["elapsed_sec"].as_f64().expect("elapsed_sec");
    assert!(
        last_len > 0.0 && last_len < 2.0 * WINDOW,
        "the partial window lasted {last_len} s: {last}"
    );
    // The server closes the open connection at the stop: that close is the partial window's.
    assert!(
        last["closed"].as_u64() >= Some(1),
        "the close at the stop: {last}"
    );
    assert_eq!(last["open"], 0, "{last}");
    // Counter by counter, the windows sum to the total.
    let want = server_counts(total);
    let mut got: Vec<(String, u64)> = want.iter().map(|(k, _)| (k.clone(), 0)).collect();
    for r in &intervals {
        for ((k, sum), (k2, x)) in got.iter_mut().zip(server_counts(r)) {
            assert_eq!(*k, k2, "same keys in every row");
            *sum += x;
        }
    }
    assert_eq!(got, want, "interval sums vs the total: {lines:#?}");
    assert_eq!(total["tcp_bytes"], 100 + 101 + 102 + 16, "{total}");
    assert_eq!(total["udp_bytes"], 50 + 51 + 52, "{total}");
    assert_eq!(total["accepted"], 4, "{total}");
    assert_eq!(total["closed"], 4, "{total}");
    // The lengths add up to the run's (each rounded to the microsecond).
    let lengths: f64 = intervals
        .iter()
        .map(|r| r["elapsed_sec"].as_f64().unwrap())
        .sum();
    let run = total["elapsed_sec"].as_f64().unwrap();
    assert!(
        (lengths - run).abs() < 1e-5 * intervals.len() as f64,
        "windows {lengths} s vs run {run} s"
    );
    drop(open);
}

#[test]
fn binary_refuses_bad_flags_with_one_line_and_status_2() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["serve", "-p", "sctp"], &["--protocol", "sctp"]),
        (&["serve", "--cpus", "99999"], &["--cpus", "99999"]),
        (&["serve", "-l", "127.0.0.1"], &["listen", "127.0.0.1"]),
        (&["serve", "-l", "[::1]:99999"], &["listen", "99999"]),
        (&["serve", "-l", "[::1]"], &["listen", "[::1]"]),
        (&["serve", "-p", "tcp", "--workers", "0"], &["--workers"]),
        (
            &["serve", "--listen-addrs-file", "/nonexistent"],
            &["--listen-addrs-file", "/nonexistent"],
        ),
        (&["serve", "--max-connections=-5"], &["--max-connections"]),
        (&["serve", "--max-connections", "0"], &["--max-connections"]),
        (&["serve", "--idle-timeout", "0"], &["--idle-timeout"]),
        (&["serve", "--bogus"], &["--bogus"]),
    ];
    for (args, want) in cases {
        let (code, out, err) = run_refused(args);
        assert_eq!(code, Some(2), "{args:?}: exit status; stderr {err:?}");
        let err_lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(err_lines.len(), 1, "{args:?}: one stderr line, got {err:?}");
        let line = err_lines[0];
        assert!(line.starts_with("connperf: "), "{args:?}: {line:?}");
        for w in *want {
            assert!(line.contains(w), "{args:?}: {line:?} does not name {w:?}");
        }
        assert!(out.is_empty(), "{args:?}: nothing on stdout, got {out:?}");
    }
}

#[test]
fn binary_accepts_go_camel_case_and_equals_spellings() {
    for flag in [
        &["--listenAddr", "127.0.0.1:0"][..],
        &["--listen-addr=127.0.0.1:0"],
        &[
            "--listenAddr=127.0.0.1:0",
            "--protocol=tcp",
            "--maxConnections=10",
        ],
        &["127.0.0.1:0"],
    ] {
        let mut args = vec!["serve", "--workers", "1"];
        args.extend_from_slice(flag);
        let mut p = spawn(&args, None);
        let addr = p.listening(1)[0];
        echo_small(&mut tcp(addr), b"spelling");
        let (status, lines, err) = terminate(p);
        assert_eq!(status.code(), Some(0), "{args:?}: stderr {err}");
        assert!(
            lines.iter().any(|l| l.starts_with("server total")),
            "{args:?}: {lines:#?}"
        );
    }
}

#[test]
fn binary_listen_addrs_file_with_comments_binds_every_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::write_file(
        &dir,
        "listen.addrs",
        b"# where connperf listens\n\n127.0.0.1:0   # IPv4 loopback\n  [::1]:0\n# the end\n",
    );
    let mut p = spawn(
        &["serve", "--workers", "1", "--listen-addrs-file", &path],
        None,
    );
    let addrs = p.listening(2);
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    for (i, &a) in addrs.iter().enumerate() {
        echo_small(&mut tcp(a), &pattern(33, i as u64));
        udp_echo(&udp_client(a), a, &pattern(44, i as u64));
    }
    let (status, lines, err) = terminate(p);
    assert_eq!(status.code(), Some(0), "stderr {err}");
    let total = lines
        .iter()
        .find(|l| l.starts_with("server total"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(field(total, "tcp_bytes"), 66, "{total}");
    assert_eq!(field(total, "udp_bytes"), 88, "{total}");
}

#[test]
fn peer_that_never_reads_leaves_memory_bounded_and_others_served() {
    // One worker, so the flooding peer and the well-behaved one share a loop.
    let mut p = spawn(
        &["serve", "-l", "127.0.0.1:0", "-p", "tcp", "--workers", "1"],
        None,
    );
    let addr = p.listening(1)[0];
    let mut good = tcp(addr);
    echo_small(&mut good, b"warm up");
    let rss_before = vm_rss_kib(p.pid());

    // The flood: write as much as the server will take, never read. It ends when a write
    // blocks for 500 ms (backpressure reached us), or after 256 MiB / 4 s without that.
    let flood = tcp(addr);
    flood
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut w = flood.try_clone().unwrap();
    let flooder = thread::spawn(move || {
        let chunk = pattern(1 << 20, 5);
        let start = Instant::now();
        let mut sent = 0u64;
        let blocked = loop {
            if sent >= 256 << 20 || start.elapsed() > Duration::from_secs(4) {
                break false;
            }
            match w.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break true
                }
                Err(e) => panic!("flood write: {e}"),
            }
        };
        (sent, blocked)
    });

    // Meanwhile the other client's echoes come back promptly.
    let mut slowest = Duration::ZERO;
    let mut i = 0u64;
    while !flooder.is_finished() || i < 20 {
        let t = Instant::now();
        echo_small(&mut good, &pattern(64, 100 + i));
        slowest = slowest.max(t.elapsed());
        i += 1;
        thread::sleep(Duration::from_millis(2));
    }
    let (sent, blocked) = flooder.join().expect("flood thread");
    assert!(
        blocked,
        "the flood never blocked: {sent} bytes taken without reading any echo"
    );
    assert!(
        sent < 128 << 20,
        "the server took {sent} bytes from a peer that reads nothing"
    );
    // And after the flood is stuck, too.
    for k in 0..20 {
        let t = Instant::now();
        echo_small(&mut good, &pattern(64, 10_000 + k));
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an echo took {slowest:?} while another peer flooded"
    );
    let rss_after = vm_rss_kib(p.pid());
    assert!(
        rss_after < rss_before + 32 * 1024,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB under a flood of {sent} bytes"
    );
    drop(flood);
    drop(good);
    let (status, lines, err) = terminate(p);
    assert_eq!(status.code(), Some(0), "stderr {err}");
    let total = lines
        .iter()
        .find(|l| l.starts_with("server total"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(field(total, "accepted"), 2, "{total}");
}

#[test]
fn binary_exits_1_naming_the_address_when_the_port_is_taken() {
    // A plain listener (no SO_REUSEPORT) holds the port: binding it must fail, not share it.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let (code, out, err) = run_refused(&["serve", "-p", "tcp", "--workers", "1", "-l", &taken]);
    assert_eq!(code, Some(1), "exit status; stderr {err:?}");
    assert!(
        err.lines().next().is_some_and(|l| l.contains(&taken)),
        "first stderr line names {taken}: {err:?}"
    );
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("Address already in use")),
        "first stderr line says the address is in use: {err:?}"
    );
    assert!(out.is_empty(), "no `Listening` line: {out:?}");
}

#[test]
fn second_server_on_a_port_in_use_fails_to_bind() {
    let first = Running::start(config(&["127.0.0.1:0"]), 1);
    let addr = first.addr();
    let plan = Plan {
        cores: vec![],
        workers: 1,
        strict: false,
    };
    let shutdown = Shutdown::new();
    let second = Server::start(
        ServeConfig {
            addrs: vec![addr],
            ..Default::default()
        },
        &plan,
        &shutdown,
        LoopOptions::default(),
        io::sink(),
    );
    let outcome = match second {
        Ok(s) => {
            shutdown.trigger();
            let _ = stop_within(s, Duration::from_secs(5));
            None
        }
        Err(e) => Some(e),
    };
    first.stop();
    let Some(e) = outcome else {
        panic!(
            "a second server bound {addr}, already served by a running server: the kernel now \
             splits connections and datagrams between the two"
        );
    };
    // Refused by the kernel as a port in use, and reported as a bind error on that address.
    assert!(
        matches!(&e, connperf::Error::Bind { addr: a, source }
            if *a == addr && source.kind() == io::ErrorKind::AddrInUse),
        "not address-in-use on {addr}: {e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Datagram batches and --allow (the `connperf serve` binary; core steering: tests/steering.rs)
// ---------------------------------------------------------------------------------------------

use common::Server as ServeProc;

#[test]
fn udp_bursts_from_several_senders_come_back_to_each_and_denied_ones_do_not() {
    let server = ServeProc::start(&["-p", "udp", "--workers", "1", "--allow", "127.0.0.1/32"]);
    let addr: SocketAddr = server.addr().parse().unwrap();
    // Three senders fire 100 datagrams each before reading any: the server reads and answers
    // them in batches, and each reply must reach its own sender, whole and in order.
    let payload = |who: usize, k: usize| -> Vec<u8> {
        let len = 1 + (k * 37 + who * 11) % 1400;
        (0..len).map(|i| (i + k * 3 + who * 101) as u8).collect()
    };
    let senders: Vec<UdpSocket> = (0..3).map(|_| udp_client(addr)).collect();
    for k in 0..100 {
        for (who, u) in senders.iter().enumerate() {
            u.send_to(&payload(who, k), addr).expect("send");
        }
    }
    let mut buf = vec![0u8; 70_000];
    for (who, u) in senders.iter().enumerate() {
        for k in 0..100 {
            let (n, from) = u
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("sender {who}: reply {k} missing: {e}"));
            assert_eq!(from, addr);
            assert!(
                buf[..n] == payload(who, k)[..],
                "sender {who}: reply {k} differs"
            );
        }
    }
    // A sender outside --allow gets nothing back, and is counted.
    let outsider = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    outsider
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for k in 0..10 {
        outsider.send_to(&payload(9, k), addr).expect("send");
    }
    assert!(
        outsider.recv_from(&mut buf).is_err(),
        "denied sender got a reply"
    );
    let total = server.stop();
    assert_eq!(total["udp_datagrams"], 300, "{total}");
    assert_eq!(total["denied"], 10, "{total}");
}
