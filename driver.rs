//! `connperf connect`: the client state machines of one worker.
//!
//! - persistent: long-lived TCP connections, one request in flight each, paced per connection
//!   (`--rate` per connection, phases spread) or closed loop (`--rate 0`);
//! - ephemeral: a new TCP connection per request, paced per target and split over the workers;
//! - UDP: one connected socket per worker per target, datagrams stamped with a sequence number.
//!
//! Latency is measured from each request's intended send time (no coordinated omission); the
//! service time from the actual send is kept beside it. Failures are counted by kind and the run
//! goes on: a persistent connection is redialled with backoff.
//! Leaves to others: the loop and sleeping (`reactor`), schedules (`pacing`), printing (`report`).

use crate::pacing::Pacer;
use crate::reactor::{self, fixed_token, Handler, Slab, FIXED_BASE};
use crate::report::{thread_cpu, Failure, Interval, Stats};
use crate::sockopt;
use crate::{Error, Result};
use crossbeam_channel::{Sender, TrySendError};
use mio::event::Event;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receive buffer per worker: echoes are read and checked in chunks of this size.
const RECV_BUF_LEN: usize = 64 * 1024;
/// First redial delay of a failed persistent connection; doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a stopping worker waits at most for replies in flight.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// Most sends (UDP datagrams, ephemeral connects) one target starts in one turn of the loop.
/// A generator behind schedule catches up in bursts of this size and reads replies between
/// them; one unbounded burst would overflow its own receive buffer and lose the replies.
const SEND_BURST: usize = 64;
/// Most persistent connections one worker dials in one turn of the loop (see `run_timers`).
const CONNECT_BURST: usize = 128;
/// Most timers one worker runs in one turn of the loop.
const TIMER_BURST: usize = 1024;
/// UDP datagram header: magic, worker, sequence number, send time.
pub const UDP_HEADER_LEN: usize = 24;
const UDP_MAGIC: u32 = 0x4350_5544; // "CPUD"

/// How an ephemeral connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// SO_LINGER 0: the close sends RST and leaves no TIME_WAIT on the client.
    Rst,
    /// Orderly close with FIN.
    Fin,
}

/// `--close`: `rst` or `fin`, any case; the error quotes the value in lower case.
impl std::str::FromStr for CloseMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rst" => Ok(CloseMode::Rst),
            "fin" => Ok(CloseMode::Fin),
            c => Err(format!("{c:?}: use rst or fin")),
        }
    }
}

/// One target of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As the user typed it (printed in the PEER column).
    pub name: String,
    pub addr: SocketAddr,
}

/// What kind of traffic a run sends, with the settings only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Long-lived TCP connections, each paced on its own.
    Persistent {
        /// Connections per target.
        connections: usize,
        /// Requests in flight per connection (`--depth`, pipelining).
        depth: usize,
    },
    /// A new TCP connection per request.
    Ephemeral {
        close: CloseMode,
        /// Connections in flight per worker at most.
        max_inflight: usize,
        /// Closed loop: connections kept in flight per target (`-c`).
        concurrency: usize,
    },
    /// Datagrams over one connected UDP socket per worker per target.
    Udp,
}

/// Everything `connect` needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectConfig {
    pub targets: Vec<Target>,
    pub mode: Mode,
    /// Requests per second: per connection (persistent) or per target (ephemeral, UDP); 0 means
    /// closed loop.
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub interval: Duration,
    pub message_bytes: usize,
    /// No reply (or connect) within this is a timeout (TCP) or a loss (UDP).
    pub timeout: Duration,
    /// Local addresses to spread connections over (`--source-addrs`).
    pub source_addrs: Vec<IpAddr>,
    /// SO_BUSY_POLL microseconds on client sockets.
    pub busy_poll_us: Option<u32>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            targets: Vec::new(),
            mode: Mode::Persistent {
                connections: 10,
                depth: 1,
            },
            rate: 100.0,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            interval: Duration::from_secs(5),
            message_bytes: 64,
            timeout: Duration::from_secs(1),
            source_addrs: Vec::new(),
            busy_poll_us: None,
        }
    }
}

impl ConnectConfig {
    /// Closed loop: each connection sends its next request as soon as the last one is answered.
    pub fn closed_loop(&self) -> bool {
        self.rate == 0.0
    }

    /// A new TCP connection per request.
    pub fn ephemeral(&self) -> bool {
        matches!(self.mode, Mode::Ephemeral { .. })
    }

    /// File descriptors the run may hold at once, for the rlimit check.
    pub fn fds_needed(&self, workers: usize) -> u64 {
        let t = self.targets.len() as u64;
        match self.mode {
            Mode::Udp => t * workers as u64,
            Mode::Persistent { connections, .. } => t * connections as u64,
            Mode::Ephemeral { max_inflight, .. } => {
                (max_inflight as u64).saturating_mul(workers as u64)
            }
        }
    }
}

/// The instants every worker shares.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Traffic starts.
    pub t0: Instant,
    /// Measurement starts (after `--warmup`); window 0 begins here.
    pub measure: Instant,
    /// No request starts at or after this.
    pub end: Instant,
}

impl Clock {
    /// The clock of a run starting now.
    pub fn new(cfg: &ConnectConfig, t0: Instant) -> Clock {
        let measure = t0 + cfg.warmup;
        Clock {
            t0,
            measure,
            end: measure + cfg.duration,
        }
    }
}

/// What an event (or the lack of one) says about a connection, for `pump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// Only writing makes sense: a new request, or a writable event.
    Write,
    /// Readable: read what has arrived.
    Read,
    /// The peer closed or the socket failed: read until the end of stream.
    ReadClosed,
}

/// One TCP request on the wire.
#[derive(Debug, Clone, Copy)]
struct Req {
    intended: Instant,
    sent_at: Instant,
    /// Stamped into the payload, so that an echo of another request is caught.
    seq: u64,
}

/// Where a TCP connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-blocking connect in progress. `intended` is the ephemeral request's slot.
    Connecting { started: Instant, intended: Instant },
    /// Connected; its requests are in `Conn::reqs`.
    Open,
    /// Waiting to redial after a failure.
    Backoff,
}

struct Conn {
    stream: Option<TcpStream>,
    target: u32,
    state: State,
    pacer: Option<Pacer>,
    /// Requests in flight, oldest first (at most `--depth`).
    reqs: VecDeque<Req>,
    /// Bytes written, counted from the start of `reqs[0]`.
    out: usize,
    /// Bytes of `reqs[0]`'s echo received and checked.
    got: usize,
    /// Requests sent on this connection.
    seq: u64,
    /// The instant of this connection's live timer in `Worker::timers`; other entries for it
    /// are stale.
    armed: Option<Instant>,
    backoff: Duration,
    /// Why the connection last went down: slots that fall due before it is back fail with it.
    last_error: Option<Failure>,
}

impl Conn {
    fn new(target: u32, state: State, depth: usize) -> Conn {
        Conn {
            stream: None,
            target,
            state,
            pacer: None,
            reqs: VecDeque::with_capacity(depth),
            out: 0,
            got: 0,
            seq: 0,
            armed: None,
            backoff: MIN_BACKOFF,
            last_error: None,
        }
    }
}

/// Retry pacing for a closed loop whose target refuses: a refusal is not an answer, so the
/// loop waits 10 ms, doubling to 1 s, and goes back to full speed at the first answer.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    until: Option<Instant>,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: MIN_BACKOFF,
            until: None,
        }
    }

    /// A failure: wait. Failures during a wait (other connections of the same loop) do not
    /// lengthen it.
    fn failed(&mut self, now: Instant) {
        if self.waiting(now) {
            return;
        }
        self.until = Some(now + self.delay);
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
    }

    fn answered(&mut self) {
        *self = Backoff::new();
    }

    /// True while the loop must wait; the wait ends at `self.until`.
    fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

/// One datagram awaiting its reply.
#[derive(Clone, Copy)]
struct UdpSlot {
    intended: Instant,
    sent_at: Instant,
    answered: bool,
}

struct UdpFlow {
    sock: UdpSocket,
    pacer: Option<Pacer>,
    /// Sequence number of `inflight[0]`.
    base: u64,
    next_seq: u64,
    inflight: VecDeque<UdpSlot>,
    max_answered: Option<u64>,
    /// Slots in `inflight` still waiting for their reply.
    unanswered: usize,
    /// The socket's send buffer was full: wait for a writable event, do not poll for it.
    blocked: bool,
    /// Closed loop only: pause after an ICMP refusal.
    backoff: Backoff,
}

/// One worker of the load generator.
pub struct Worker {
    id: usize,
    workers: usize,
    registry: Registry,
    cfg: Arc<ConnectConfig>,
    clock: Clock,
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections whose (re)dial time has come, dialled `CONNECT_BURST` a turn in order. A
    /// queue apart from `timers`, so that a long ramp (and connects made slow by the kernel's
    /// port search near a full port range) never holds up the sends of connections already up.
    dial_queue: VecDeque<Token>,
    /// Ephemeral: one schedule per target, this worker's share.
    pacers: Vec<Pacer>,
    inflight: usize,
    udp: Vec<UdpFlow>,
    stats: Vec<Stats>,
    send_buf: Vec<u8>,
    recv_buf: Box<[u8]>,
    tx: Sender<Interval>,
    seq: u64,
    window_start: Instant,
    next_flush: Instant,
    cpu_mark: Duration,
    /// True until the first turn of the loop after the warm-up.
    warming: bool,
    folded: Option<Interval>,
    next_sweep: Instant,
    stopping: bool,
    stopped_at: Option<Instant>,
    /// Closed-loop ephemeral: pause after a failed connection.
    closed_backoff: Backoff,
    next_source: usize,
    ports: PortWindows,
}

/// Requests up to this size fit a fresh socket's send buffer (tcp_wmem's default is 16 KiB)
/// and go out in one write.
const ONE_WRITE_BYTES: usize = 8 * 1024;

/// Ports per window.
const PORT_WINDOW: u32 = 256;

/// Each worker's walk through the local port range in windows of `PORT_WINDOW` ports. The
/// kernel picks a connect's local port by scanning the range for one free for the
/// destination; with most of the range in use (thousands of connections to one target) each
/// connect scans thousands of ports, and a 19,000-connection ramp took minutes of kernel CPU.
/// Limited to a window, the scan is short; a full window moves the worker to the next.
/// Off for ranges under 8 windows and on kernels without the option.
struct PortWindows {
    lo: u32,
    hi: u32,
    next: u32,
    on: bool,
}

impl PortWindows {
    fn new(worker: usize, workers: usize) -> PortWindows {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|x| x.parse::<u32>().ok());
                Some((it.next()??, it.next()??))
            });
        let Some((lo, hi)) = range.filter(|(lo, hi)| hi >= lo && *hi <= 65_535) else {
            return PortWindows {
                lo: 0,
                hi: 0,
                next: 0,
                on: false,
            };
        };
        let windows = (hi - lo + 1) / PORT_WINDOW;
        // Workers start spread over the range, so they do not scan each other's windows.
        let first = (worker as u64 * u64::from(windows) / workers.max(1) as u64) as u32;
        PortWindows {
            lo,
            hi,
            next: lo + first * PORT_WINDOW,
            on: windows >= 8,
        }
    }

    fn windows(&self) -> u32 {
        (self.hi - self.lo + 1) / PORT_WINDOW
    }

    /// Limit `s` to the current window; false if off (or the kernel refused: then off).
    fn narrow(&mut self, s: &Socket) -> bool {
        if !self.on {
            return false;
        }
        let top = (self.next + PORT_WINDOW - 1).min(self.hi);
        if sockopt::set_local_port_range(s, self.next as u16, top as u16).is_err() {
            self.on = false;
            return false;
        }
        true
    }

    fn advance(&mut self) {
        self.next += PORT_WINDOW;
        if self.next + PORT_WINDOW - 1 > self.hi {
            self.next = self.lo;
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Stamp a request number into the first bytes of the payload (as many as fit).
fn stamp(buf: &mut [u8], seq: u64) {
    let b = seq.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
}

fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

impl Worker {
    /// Worker `id` of `workers`, its share of the run set up on `registry`.
    pub fn new(
        id: usize,
        workers: usize,
        registry: &Registry,
        cfg: Arc<ConnectConfig>,
        clock: Clock,
        tx: Sender<Interval>,
    ) -> Result<Worker> {
        let registry = registry.try_clone().map_err(Error::Poll)?;
        let nt = cfg.targets.len();
        let mut w = Worker {
            id,
            workers,
            registry,
            clock,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            dial_queue: VecDeque::new(),
            pacers: Vec::new(),
            inflight: 0,
            udp: Vec::new(),
            stats: (0..nt).map(|_| Stats::new()).collect(),
            send_buf: pattern(cfg.message_bytes),
            recv_buf: vec![0u8; RECV_BUF_LEN.max(cfg.message_bytes.min(1 << 20))]
                .into_boxed_slice(),
            tx,
            seq: 0,
            window_start: clock.measure,
            next_flush: clock.measure + cfg.interval,
            cpu_mark: Duration::ZERO,
            warming: true,
            folded: None,
            next_sweep: clock.t0 + sweep_period(cfg.timeout),
            stopping: false,
            stopped_at: None,
            closed_backoff: Backoff::new(),
            next_source: id,
            ports: PortWindows::new(id, workers),
            cfg,
        };
        match w.cfg.mode {
            Mode::Udp => w.setup_udp()?,
            Mode::Ephemeral { .. } => {
                if !w.cfg.closed_loop() {
                    w.pacers = (0..nt)
                        .map(|_| {
                            Pacer::split(w.cfg.rate, clock.t0, id, workers).with_end(clock.end)
                        })
                        .collect();
                }
            }
            Mode::Persistent { connections, depth } => {
                for t in 0..nt {
                    for c in (id..connections).step_by(workers) {
                        let mut conn = Conn::new(t as u32, State::Backoff, depth);
                        conn.armed = Some(clock.t0);
                        // Every connection's schedule is anchored at the run's start, so the
                        // run schedules exactly connections x rate x duration requests.
                        if !w.cfg.closed_loop() {
                            conn.pacer = Some(
                                Pacer::phased(w.cfg.rate, clock.t0, c, connections)
                                    .with_end(clock.end),
                            );
                        }
                        let token = w.conns.insert(conn);
                        w.timers.push(Reverse((clock.t0, token.0)));
                    }
                }
            }
        }
        Ok(w)
    }

    fn setup_udp(&mut self) -> Result<()> {
        let cfg = self.cfg.clone();
        for (t, target) in cfg.targets.iter().enumerate() {
            let addr = target.addr;
            let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
                .map_err(|source| Error::Io {
                    what: format!("cannot open a UDP socket for {}", target.name),
                    source,
                })?;
            s.set_nonblocking(true).map_err(Error::Poll)?;
            let _ = s.set_recv_buffer_size(sockopt::UDP_SOCKET_BUFFER);
            let _ = s.set_send_buffer_size(sockopt::UDP_SOCKET_BUFFER);
            if let Some(src) = self.pick_source(addr) {
                s.bind(&SocketAddr::new(src, 0).into())
                    .map_err(|source| Error::Io {
                        what: format!("cannot bind UDP source address {src}"),
                        source,
                    })?;
            }
            s.connect(&addr.into()).map_err(|source| Error::Io {
                what: format!("cannot address {} over UDP", target.name),
                source,
            })?;
            let mut sock = UdpSocket::from_std(s.into());
            self.registry
                .register(
                    &mut sock,
                    fixed_token(t),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(Error::Poll)?;
            let pacer = (!self.cfg.closed_loop()).then(|| {
                Pacer::split(self.cfg.rate, self.clock.t0, self.id, self.workers)
                    .with_end(self.clock.end)
            });
            self.udp.push(UdpFlow {
                sock,
                pacer,
                base: 0,
                next_seq: 0,
                inflight: VecDeque::new(),
                max_answered: None,
                unanswered: 0,
                blocked: false,
                backoff: Backoff::new(),
            });
        }
        Ok(())
    }

    fn pick_source(&mut self, dst: SocketAddr) -> Option<IpAddr> {
        let n = self.cfg.source_addrs.len();
        for _ in 0..n {
            let a = self.cfg.source_addrs[self.next_source % n];
            self.next_source += 1;
            if a.is_ipv4() == dst.is_ipv4() {
                return Some(a);
            }
        }
        None
    }

    /// Record a completion that happened at `now`, unless it falls in the warm-up.
    /// Record a completion. Whether a request is measured is decided by its intended time, the
    /// same rule for every outcome, so nothing from the warm-up leaks into the results.
    fn record(&mut self, target: u32, intended: Instant, sent_at: Instant, now: Instant) {
        if intended < self.clock.measure {
            return;
        }
        let lat = now.saturating_duration_since(intended).as_nanos() as u64;
        let svc = now.saturating_duration_since(sent_at).as_nanos() as u64;
        self.stats[target as usize].record(lat, svc, self.cfg.message_bytes as u64);
    }

    /// Count a failed request intended at `intended` (measured ones only).
    fn count_error(&mut self, target: u32, kind: Failure, intended: Instant) {
        if intended >= self.clock.measure {
            self.stats[target as usize].error(kind);
        }
    }

    /// Open a non-blocking TCP connection to `target`.
    fn dial(&mut self, target: u32) -> io::Result<TcpStream> {
        let addr = self.cfg.targets[target as usize].addr;
        let mut tries = 0;
        loop {
            // Non-blocking from the start (SOCK_NONBLOCK): no fcntl pair per connection.
            let s = Socket::new(
                Domain::for_address(addr),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            let ephemeral = self.cfg.ephemeral();
            let rst = matches!(
                self.cfg.mode,
                Mode::Ephemeral {
                    close: CloseMode::Rst,
                    ..
                }
            );
            // An ephemeral request goes out in one write: Linux's Nagle (Minshall's variant)
            // holds back a small segment only while an earlier small one is unacknowledged,
            // so its tail is never held and TCP_NODELAY would be a wasted syscall. Only a
            // request bigger than a fresh socket's send buffer takes several writes.
            if !(ephemeral && self.cfg.message_bytes <= ONE_WRITE_BYTES) {
                s.set_tcp_nodelay(true)?;
            }
            if rst {
                s.set_linger(Some(Duration::ZERO))?;
            }
            if let Some(us) = self.cfg.busy_poll_us {
                let _ = s.set_busy_poll(us);
            }
            if let Some(src) = self.pick_source(addr) {
                // Let the kernel choose the port at connect time, per (source, destination),
                // so many sources multiply the usable ports (ip(7), IP_BIND_ADDRESS_NO_PORT).
                let _ = sockopt::set_bind_address_no_port(&s);
                s.bind(&SocketAddr::new(src, 0).into())?;
            }
            // Closed by RST, an ephemeral connection frees its port at once (no TIME_WAIT):
            // with few in flight the kernel's scan for a free port stays short, and the
            // connect saves the setsockopt of a window.
            let few = rst && self.conns.len() < PORT_WINDOW as usize / 2;
            let windowed = !few && self.ports.narrow(&s);
            match s.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e)
                    if windowed
                        && e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                        && tries < self.ports.windows() =>
                {
                    // This window is used up: the next one.
                    tries += 1;
                    self.ports.advance();
                    continue;
                }
                Err(e) => return Err(e),
            }
            return Ok(TcpStream::from_std(s.into()));
        }
    }

    // ---- persistent and ephemeral TCP ----

    fn start_connect(&mut self, token: Token, now: Instant) {
        let Some(c) = self.conns.get(token) else {
            return;
        };
        let target = c.target;
        match self.dial(target) {
            Ok(mut stream) => {
                if let Err(e) = self.registry.register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.fail(token, Failure::of(&e), now);
                    return;
                }
                // The writable event says when the connection is up (on loopback, at the
                // next poll: the handshake finished inside `connect`).
                let c = self.conns.get_mut(token).expect("looked up above");
                c.stream = Some(stream);
                c.state = State::Connecting {
                    started: now,
                    intended: now,
                };
            }
            Err(e) => self.fail(token, Failure::of(&e), now),
        }
    }

    /// Start an ephemeral request for `target` intended at `intended`.
    fn start_ephemeral(&mut self, target: u32, intended: Instant, now: Instant) {
        match self.dial(target) {
            Ok(mut stream) => {
                let token = self.conns.insert(Conn::new(
                    target,
                    State::Connecting {
                        started: now,
                        intended,
                    },
                    1,
                ));
                if let Err(e) = self.registry.register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.conns.remove(token);
                    self.count_error(target, Failure::of(&e), intended);
                    return;
                }
                self.conns.get_mut(token).expect("just inserted").stream = Some(stream);
                self.inflight += 1;
                if now >= self.clock.measure {
                    self.stats[target as usize]
                        .record_start(now.saturating_duration_since(intended).as_nanos() as u64);
                }
                // On loopback and other local paths the handshake finishes inside `connect`
                // (which says EINPROGRESS all the same): send the request now. A connection
                // still on its way refuses the write with EAGAIN and its writable event says
                // when; a refused one fails it with the reason. No syscall only to ask. The
                // connect time ends before the write, which on loopback also runs the
                // server's receive path.
                let up = Instant::now();
                match self.write_first(token) {
                    Ok(sent) => self.on_connected(token, up, sent),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => self.fail(token, Failure::of(&e), now),
                }
            }
            Err(e) => {
                self.count_error(target, Failure::of(&e), intended);
                if self.cfg.closed_loop() {
                    self.closed_backoff.failed(now);
                }
            }
        }
    }

    /// A connection failed (or its peer misbehaved): count it, then redial (persistent) or drop
    /// it (ephemeral).
    fn fail(&mut self, token: Token, kind: Failure, now: Instant) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        // Closing the socket (dropping it) takes it out of the epoll set: one syscall fewer
        // than deregistering first. Nothing here dups descriptors or forks.
        drop(c.stream.take());
        // Every request in flight on the connection failed with it. An ephemeral connection that
        // fails to connect carries its request; a persistent one that fails with nothing in
        // flight is a connection event, counted apart from requests.
        let measured = now >= self.clock.measure;
        let target = c.target;
        match c.state {
            State::Connecting { intended, .. } if self.cfg.ephemeral() => {
                self.count_error(target, kind, intended)
            }
            _ if c.reqs.is_empty() && measured => self.stats[target as usize].conn_error(kind),
            _ => {}
        }
        for r in std::mem::take(&mut c.reqs) {
            self.count_error(target, kind, r.intended);
        }
        c.out = 0;
        c.got = 0;
        c.last_error = Some(kind);
        if self.cfg.ephemeral() {
            self.inflight -= 1;
            if self.cfg.closed_loop() {
                self.closed_backoff.failed(now);
            }
            return;
        }
        if self.stopping {
            return;
        }
        // A new token for the redialled connection: events of the old socket cannot reach it.
        let until = now + c.backoff;
        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
        c.state = State::Backoff;
        c.armed = Some(until);
        let token = self.conns.insert(c);
        self.timers.push(Reverse((until, token.0)));
    }

    /// Write an ephemeral connection's request (sequence 1) once; how much went out.
    fn write_first(&mut self, token: Token) -> io::Result<usize> {
        let msg = self.cfg.message_bytes;
        let stream = self
            .conns
            .get_mut(token)
            .and_then(|c| c.stream.as_mut())
            .ok_or(io::ErrorKind::NotConnected)?;
        stamp(&mut self.send_buf, 1);
        loop {
            match stream.write(&self.send_buf[..msg]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// The connect of `token` completed at `now`; `sent` bytes of an ephemeral request
    /// already went out with the first write.
    fn on_connected(&mut self, token: Token, now: Instant, sent: usize) {
        let cfg = self.cfg.clone();
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let State::Connecting { started, intended } = c.state else {
            return;
        };
        c.state = State::Open;
        let target = c.target;
        if cfg.ephemeral() {
            if now >= self.clock.measure {
                self.stats[target as usize]
                    .record_connect(now.saturating_duration_since(started).as_nanos() as u64);
            }
            c.seq = 1;
            c.reqs.push_back(Req {
                intended,
                sent_at: started,
                seq: 1,
            });
            c.out = sent;
            if sent < self.cfg.message_bytes {
                self.pump(token, now, Readiness::Write);
            }
            return;
        }
        if let Some(pacer) = c.pacer.as_mut() {
            // Slots that fell due before the connection was up were never sent: they fail
            // with what kept the connection down, or, on a first slow connect, did not start.
            // After a stop they are already on the books (`on_stop`).
            let skipped = pacer.skip_to(now);
            if now >= self.clock.measure && !self.stopping {
                let s = &mut self.stats[target as usize];
                match c.last_error {
                    Some(kind) => s.errors[kind as usize] += skipped,
                    None => s.not_started += skipped,
                }
            }
        }
        if self.fill(token, now, false) {
            self.pump(token, now, Readiness::Write);
        }
    }

    /// Begin every request of a persistent connection that is due and fits under `--depth`
    /// (closed loop: fill up to the depth), and arm a timer for the next one. Returns true if
    /// any began; the caller then pumps them out.
    ///
    /// `from_timer`: the connection had room when the slot fell due, so any lateness is the
    /// generator's own (timer or loop lag) and is reported as a late start. A slot that waited
    /// for a reply (a full pipeline) was delayed by the target, not by us.
    fn fill(&mut self, token: Token, now: Instant, from_timer: bool) -> bool {
        if self.stopping || now >= self.clock.end {
            return false;
        }
        let Mode::Persistent { depth, .. } = self.cfg.mode else {
            return false;
        };
        let measure = self.clock.measure;
        let Some(c) = self.conns.get_mut(token) else {
            return false;
        };
        if c.state != State::Open {
            return false;
        }
        let mut began = false;
        while c.reqs.len() < depth {
            let intended = match c.pacer.as_mut() {
                None => now,
                Some(p) => match p.next_due() {
                    None => break,
                    Some(due) if due <= now => {
                        p.take(now);
                        due
                    }
                    Some(due) => {
                        if c.armed != Some(due) {
                            c.armed = Some(due);
                            self.timers.push(Reverse((due, token.0)));
                        }
                        break;
                    }
                },
            };
            c.seq += 1;
            c.reqs.push_back(Req {
                intended,
                sent_at: now,
                seq: c.seq,
            });
            began = true;
            if now >= measure && from_timer {
                self.stats[c.target as usize]
                    .record_start(now.saturating_duration_since(intended).as_nanos() as u64);
            }
        }
        began
    }

    /// Drive a connection: write its requests, read and check their echoes, and begin the
    /// requests that completions make room for, in a loop (never recursion).
    fn pump(&mut self, token: Token, now: Instant, ready: Readiness) {
        let mut ready = ready;
        while let Some(done) = self.pump_once(token, now, ready) {
            if !self.fill(token, done, false) {
                break;
            }
            ready = Readiness::Write;
        }
    }

    /// Write what is unsent and read what has come back. Returns the completion instant if
    /// persistent requests completed.
    fn pump_once(&mut self, token: Token, now: Instant, ready: Readiness) -> Option<Instant> {
        let read_closed = ready == Readiness::ReadClosed;
        let msg = self.cfg.message_bytes;
        let measure = self.clock.measure;
        let c = self.conns.get_mut(token)?;
        let stream = c.stream.as_mut()?;
        let stats = &mut self.stats[c.target as usize];
        let mut done: Option<Instant> = None;
        let outcome: std::result::Result<(), Failure> = 'io: loop {
            let mut progress = false;
            while c.out < c.reqs.len() * msg {
                let (idx, off) = (c.out / msg, c.out % msg);
                stamp(&mut self.send_buf, c.reqs[idx].seq);
                match stream.write(&self.send_buf[off..]) {
                    Ok(0) => break 'io Err(Failure::Reset),
                    Ok(n) => {
                        c.out += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break 'io Err(Failure::of(&e)),
                }
            }
            if ready == Readiness::Write {
                // Read only when epoll said so: right after a write the echo is almost never
                // there yet, and edge-triggered epoll reports its arrival (saves a failed read
                // per request).
                break Ok(());
            }
            if c.reqs.is_empty() {
                // Nothing is owed to us: bytes now are a lying peer, EOF is a close.
                let mut b = [0u8; 1];
                match stream.read(&mut b) {
                    Ok(0) => break 'io Err(Failure::ClosedEarly),
                    Ok(_) => break 'io Err(Failure::Mismatch),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                    Err(e) => break 'io Err(Failure::of(&e)),
                }
            }
            while c.out > c.got {
                let want = (c.out - c.got).min(self.recv_buf.len());
                match stream.read(&mut self.recv_buf[..want]) {
                    Ok(0) => break 'io Err(Failure::ClosedEarly),
                    Ok(n) => {
                        progress = true;
                        // The chunk may span the ends of several pipelined requests.
                        let mut pos = 0;
                        while pos < n {
                            let r = c.reqs[0];
                            let take = (msg - c.got).min(n - pos);
                            stamp(&mut self.send_buf, r.seq);
                            if self.recv_buf[pos..pos + take] != self.send_buf[c.got..c.got + take]
                            {
                                break 'io Err(Failure::Mismatch);
                            }
                            pos += take;
                            c.got += take;
                            if c.got == msg {
                                let t = *done.get_or_insert_with(Instant::now);
                                // An answer: the connection is healthy again.
                                c.backoff = MIN_BACKOFF;
                                c.last_error = None;
                                if r.intended >= measure {
                                    let lat = t.saturating_duration_since(r.intended);
                                    let svc = t.saturating_duration_since(r.sent_at);
                                    stats.record(
                                        lat.as_nanos() as u64,
                                        svc.as_nanos() as u64,
                                        msg as u64,
                                    );
                                }
                                c.reqs.pop_front();
                                c.out -= msg;
                                c.got = 0;
                            }
                        }
                        if n < want && !read_closed {
                            // A short read drained the socket; edge-triggered epoll reports more.
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break 'io Err(Failure::of(&e)),
                }
            }
            // With the peer's FIN in this event and nothing owed, read once more to see it.
            if !progress || (c.reqs.is_empty() && !read_closed) {
                break Ok(());
            }
        };
        if let Err(kind) = outcome {
            self.fail(token, kind, now);
            return None;
        }
        let done = done?;
        if self.cfg.ephemeral() {
            self.finish_ephemeral(token, done);
            return None;
        }
        Some(done)
    }

    fn finish_ephemeral(&mut self, token: Token, now: Instant) {
        if let Some(c) = self.conns.remove(token) {
            // Dropped with `c` below: closing takes it out of the epoll set.
            self.inflight -= 1;
            if self.cfg.closed_loop() {
                self.closed_backoff.answered();
                // Closed loop: replace the finished connection, but only inside the run.
                if !self.stopping && now < self.clock.end {
                    self.start_ephemeral(c.target, now, now);
                }
            } else {
                self.run_ephemeral_pacers(now);
            }
        }
    }

    /// Start every ephemeral request that is due, within the in-flight limit. Returns the next
    /// due instant, or `None` when nothing can start until a connection finishes.
    fn run_ephemeral_pacers(&mut self, now: Instant) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        let Mode::Ephemeral { max_inflight, .. } = self.cfg.mode else {
            return None;
        };
        let mut next: Option<Instant> = None;
        for t in 0..self.pacers.len() {
            for _ in 0..SEND_BURST {
                if self.inflight >= max_inflight {
                    return None;
                }
                let Some(intended) = self.pacers[t].take(now) else {
                    break;
                };
                self.start_ephemeral(t as u32, intended, now);
            }
            if let Some(d) = self.pacers[t].next_due() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    fn on_tcp_event(&mut self, token: Token, ev: &Event, now: Instant) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        match c.state {
            State::Connecting { .. } => {
                // A non-blocking connect reports its outcome as one event: an error (EPOLLERR,
                // with SO_ERROR saying why) or a hang-up if it failed, writable once it is
                // established. No syscall is needed to tell which on success.
                let failed = ev.is_error() || !ev.is_writable() && ev.is_write_closed();
                if failed {
                    let kind = match c.stream.as_ref().map(|s| s.take_error()) {
                        Some(Ok(Some(e)) | Err(e)) => Failure::of(&e),
                        _ => Failure::Refused,
                    };
                    self.fail(token, kind, now);
                } else if ev.is_writable() || ev.is_readable() {
                    self.on_connected(token, now, 0);
                }
            }
            State::Open => {
                let ready = if ev.is_read_closed() || ev.is_error() {
                    Readiness::ReadClosed
                } else if ev.is_readable() {
                    Readiness::Read
                } else {
                    Readiness::Write
                };
                self.pump(token, now, ready)
            }
            State::Backoff => {}
        }
    }

    /// Run due timers: redials and paced sends. At most `CONNECT_BURST` dials and
    /// `TIMER_BURST` timers a turn, so that thousands of connections coming up at once do not
    /// keep the loop from reading the events of the ones already connected (which would then
    /// time out while their replies wait unread).
    fn run_timers(&mut self, now: Instant) {
        let mut budget = TIMER_BURST;
        while let Some(&Reverse((at, tok))) = self.timers.peek() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.timers.pop();
            let token = Token(tok);
            let Some(c) = self.conns.get_mut(token) else {
                continue;
            };
            if c.armed != Some(at) {
                continue;
            }
            c.armed = None;
            let state = c.state;
            match state {
                State::Backoff if !self.stopping && now < self.clock.end => {
                    self.dial_queue.push_back(token);
                }
                State::Open if self.fill(token, now, true) => {
                    self.pump(token, now, Readiness::Write);
                }
                _ => {}
            }
        }
        let mut dials = 0;
        while dials < CONNECT_BURST && !self.stopping && now < self.clock.end {
            let Some(token) = self.dial_queue.pop_front() else {
                break;
            };
            if self
                .conns
                .get(token)
                .is_some_and(|c| c.state == State::Backoff)
            {
                dials += 1;
                self.start_connect(token, now);
            }
        }
    }

    /// Time out requests and connects older than `--timeout`; expire UDP datagrams.
    fn sweep(&mut self, now: Instant) {
        let timeout = self.cfg.timeout;
        let mut expired = Vec::new();
        for (tok, c) in self.conns.iter_mut() {
            let since = match (c.state, c.reqs.front()) {
                (State::Connecting { started, .. }, _) => started,
                (State::Open, Some(r)) => r.sent_at,
                _ => continue,
            };
            if now.saturating_duration_since(since) >= timeout {
                expired.push(tok);
            }
        }
        for tok in expired {
            self.fail(tok, Failure::Timeout, now);
        }
        for t in 0..self.udp.len() {
            self.expire_udp(t, now, false);
        }
    }

    // ---- UDP ----

    fn expire_udp(&mut self, t: usize, now: Instant, all: bool) {
        let timeout = self.cfg.timeout;
        let measure = self.clock.measure;
        let f = &mut self.udp[t];
        let s = &mut self.stats[t];
        // Answered slots stay until their timeout too, so that a second reply within it is
        // seen as a duplicate; only replies after the timeout are late.
        while let Some(slot) = f.inflight.front() {
            let old = all || now.saturating_duration_since(slot.sent_at) >= timeout;
            if !old {
                break;
            }
            if !slot.answered {
                f.unanswered -= 1;
                if slot.intended >= measure {
                    s.lost += 1;
                }
            }
            f.inflight.pop_front();
            f.base += 1;
        }
    }

    fn udp_send_due(&mut self, t: usize, now: Instant) {
        if self.stopping {
            return;
        }
        for _ in 0..SEND_BURST {
            let f = &mut self.udp[t];
            let intended = match f.pacer.as_ref() {
                Some(p) => match p.next_due() {
                    Some(d) if d <= now => d,
                    _ => return,
                },
                None => {
                    // Closed loop: one datagram in flight per worker per target.
                    if now >= self.clock.end || f.backoff.waiting(now) || f.unanswered > 0 {
                        return;
                    }
                    now
                }
            };
            let seq = f.next_seq;
            let msg = self.cfg.message_bytes;
            let buf = &mut self.send_buf[..msg];
            buf[0..4].copy_from_slice(&UDP_MAGIC.to_le_bytes());
            buf[4..8].copy_from_slice(&(self.id as u32).to_le_bytes());
            buf[8..16].copy_from_slice(&seq.to_le_bytes());
            let ts = now.saturating_duration_since(self.clock.t0).as_nanos() as u64;
            buf[16..24].copy_from_slice(&ts.to_le_bytes());
            match f.sock.send(buf) {
                Ok(_) => {
                    if let Some(p) = f.pacer.as_mut() {
                        p.take(now);
                    }
                    f.next_seq += 1;
                    f.unanswered += 1;
                    f.inflight.push_back(UdpSlot {
                        intended,
                        sent_at: now,
                        answered: false,
                    });
                    if now >= self.clock.measure {
                        self.stats[t].record_start(now.saturating_duration_since(intended).as_nanos() as u64);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.blocked = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A pending ICMP error (port unreachable) belongs to an earlier datagram:
                    // charge it to that one and send this slot again. Otherwise the error is this
                    // send's own, and the slot is spent.
                    if self.udp_icmp_error(t, &e, now) {
                        continue;
                    }
                    let f = &mut self.udp[t];
                    let paced = match f.pacer.as_mut() {
                        Some(p) => p.take(now).is_some(),
                        None => false,
                    };
                    self.count_error(t as u32, Failure::of(&e), intended);
                    if !paced {
                        return;
                    }
                }
            }
        }
    }

    /// An error reported on the UDP socket (ICMP unreachable for an earlier datagram): the
    /// oldest unanswered datagram failed with it. It is counted once, as that error and not
    /// also as lost. Returns false if no datagram was waiting (the error is not about one).
    fn udp_icmp_error(&mut self, t: usize, e: &io::Error, now: Instant) -> bool {
        let measure = self.clock.measure;
        let f = &mut self.udp[t];
        let Some(slot) = f.inflight.iter_mut().find(|s| !s.answered) else {
            return false;
        };
        slot.answered = true;
        let intended = slot.intended;
        f.unanswered -= 1;
        if intended >= measure {
            self.stats[t].error(Failure::of(e));
        }
        self.expire_udp(t, now, false);
        true
    }

    fn udp_recv(&mut self, t: usize) {
        let msg = self.cfg.message_bytes;
        loop {
            let f = &mut self.udp[t];
            let n = match f.sock.recv(&mut self.recv_buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let now = Instant::now();
                    if self.udp_icmp_error(t, &e, now) && self.udp[t].pacer.is_none() {
                        self.udp[t].backoff.failed(now);
                    }
                    continue;
                }
            };
            let now = Instant::now();
            let measured = now >= self.clock.measure;
            let b = &self.recv_buf[..n];
            // A reply is ours if its header is: then it answers one request, whose echo is
            // right or a mismatch. Anything else answers nothing (a stray datagram): counting it
            // as a failed request would count that request twice, once more when it is lost.
            let ours = n >= UDP_HEADER_LEN
                && b[0..4] == UDP_MAGIC.to_le_bytes()
                && b[4..8] == (self.id as u32).to_le_bytes();
            if !ours {
                if measured {
                    self.stats[t].stray += 1;
                }
                continue;
            }
            let intact = n == msg && b[UDP_HEADER_LEN..] == self.send_buf[UDP_HEADER_LEN..msg];
            let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
            let f = &mut self.udp[t];
            if seq < f.base {
                // Already expired and counted lost: a late reply, never a success.
                if measured {
                    self.stats[t].late += 1;
                }
                continue;
            }
            let idx = (seq - f.base) as usize;
            let Some(slot) = f.inflight.get_mut(idx) else {
                // A sequence number not sent yet.
                if measured {
                    self.stats[t].stray += 1;
                }
                continue;
            };
            if slot.answered {
                if measured {
                    self.stats[t].duplicate += 1;
                }
                continue;
            }
            slot.answered = true;
            let (intended, sent_at) = (slot.intended, slot.sent_at);
            f.unanswered -= 1;
            if intact {
                if f.max_answered.is_some_and(|m| seq < m) {
                    if measured {
                        self.stats[t].reordered += 1;
                    }
                } else {
                    f.max_answered = Some(seq);
                }
                self.record(t as u32, intended, sent_at, now);
                self.udp[t].backoff.answered();
            } else {
                // Answered, wrongly: the request failed with a mismatch.
                self.count_error(t as u32, Failure::Mismatch, intended);
            }
            self.expire_udp(t, now, false);
            if self.udp[t].pacer.is_none() {
                self.udp_send_due(t, now);
            }
        }
    }

    // ---- reporting ----

    fn flush(&mut self, upto: Instant) {
        let cpu = thread_cpu();
        let iv = Interval {
            worker: self.id,
            seq: self.seq,
            window: upto.saturating_duration_since(self.window_start),
            stats: self.stats.iter_mut().map(Stats::take).collect(),
            cpu: cpu.saturating_sub(self.cpu_mark),
            late_reports: 0,
        };
        self.cpu_mark = cpu;
        self.seq += 1;
        self.window_start = upto;
        let iv = match self.folded.take() {
            Some(mut prev) => {
                for (a, b) in prev.stats.iter_mut().zip(&iv.stats) {
                    a.merge(b);
                }
                prev.window += iv.window;
                prev.cpu += iv.cpu;
                prev.seq = iv.seq;
                prev.late_reports += 1;
                prev
            }
            None => iv,
        };
        match self.tx.try_send(iv) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(iv)) => self.folded = Some(iv),
        }
    }

    /// The end of the measured time: the scheduled end, or the stop if that came first. The
    /// drain after a stop is not measured time (replies that arrive in it still count).
    fn measured_end(&self) -> Instant {
        self.stopped_at.unwrap_or(self.clock.end)
    }

    fn in_flight(&self) -> bool {
        match self.cfg.mode {
            Mode::Udp => self.udp.iter().any(|f| f.unanswered > 0),
            _ => self.conns.iter().any(|(_, c)| match c.state {
                State::Open => !c.reqs.is_empty(),
                // A connecting ephemeral connection carries a request; a persistent one does not.
                State::Connecting { .. } => self.cfg.ephemeral(),
                State::Backoff => false,
            }),
        }
    }
}

impl Handler for Worker {
    fn on_event(&mut self, ev: &Event) {
        let now = Instant::now();
        let t = ev.token().0;
        if t >= FIXED_BASE {
            let i = t - FIXED_BASE;
            if i < self.udp.len() {
                if ev.is_readable() || ev.is_error() {
                    self.udp_recv(i);
                }
                if ev.is_writable() {
                    self.udp[i].blocked = false;
                    self.udp_send_due(i, now);
                }
            }
            return;
        }
        self.on_tcp_event(ev.token(), ev, now);
    }

    fn on_due(&mut self, now: Instant) -> Option<Instant> {
        if self.warming && now >= self.clock.measure {
            // The warm-up is over: its CPU time is not the measured period's.
            self.warming = false;
            self.cpu_mark = thread_cpu();
        }
        self.run_timers(now);
        let mut next = self.timers.peek().map(|Reverse((at, _))| *at);
        if !self.dial_queue.is_empty() && !self.stopping && now < self.clock.end {
            next = Some(now);
        }
        let mut soonest = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        if let Mode::Ephemeral {
            max_inflight,
            concurrency,
            ..
        } = self.cfg.mode
        {
            if self.cfg.closed_loop() {
                if self.closed_backoff.waiting(now) {
                    soonest(self.closed_backoff.until);
                } else if !self.stopping && now < self.clock.end {
                    let total = concurrency * self.cfg.targets.len();
                    let share = total / self.workers + usize::from(self.id < total % self.workers);
                    let want = max_inflight.min(share);
                    while self.inflight < want {
                        let t = (self.inflight % self.cfg.targets.len()) as u32;
                        let before = self.inflight;
                        self.start_ephemeral(t, now, now);
                        if self.inflight == before {
                            break;
                        }
                    }
                }
            } else {
                soonest(self.run_ephemeral_pacers(now));
            }
        }
        for t in 0..self.udp.len() {
            self.udp_send_due(t, now);
            if !self.stopping {
                let f = &self.udp[t];
                if !f.blocked {
                    soonest(f.pacer.as_ref().and_then(|p| p.next_due()));
                }
                soonest(f.backoff.until.filter(|u| *u > now && f.pacer.is_none()));
            }
        }
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now + sweep_period(self.cfg.timeout);
        }
        soonest(Some(self.next_sweep));
        if now >= self.next_flush && self.next_flush < self.measured_end() {
            let upto = self.next_flush;
            self.flush(upto);
            self.next_flush = upto + self.cfg.interval;
        }
        if self.next_flush < self.measured_end() {
            soonest(Some(self.next_flush));
        }
        next
    }

    fn on_stop(&mut self, now: Instant) -> Instant {
        self.stopping = true;
        let end = now.min(self.clock.end);
        self.stopped_at = Some(end);
        // Slots that were due but never sent are counted, not silently dropped.
        if now >= self.clock.measure {
            for (t, p) in self.pacers.iter().enumerate() {
                self.stats[t].not_started += p.backlog(end);
            }
            for (t, f) in self.udp.iter().enumerate() {
                if let Some(p) = &f.pacer {
                    self.stats[t].not_started += p.backlog(end);
                }
            }
            // A persistent connection's remaining slots: those due while it was down fail
            // with what brought it down; those due while it was up but busy did not start.
            let mut backlog = vec![0u64; self.stats.len()];
            for (_, c) in self.conns.iter_mut() {
                let Some(p) = &c.pacer else { continue };
                let n = p.backlog(end);
                match (c.state, c.last_error) {
                    (State::Open, _) | (_, None) => backlog[c.target as usize] += n,
                    (_, Some(kind)) => self.stats[c.target as usize].errors[kind as usize] += n,
                }
            }
            for (s, b) in self.stats.iter_mut().zip(backlog) {
                s.not_started += b;
            }
        }
        now + self.cfg.timeout.min(MAX_DRAIN)
    }

    fn is_drained(&self) -> bool {
        !self.in_flight()
    }

    fn on_exit(&mut self, now: Instant) {
        // Requests still unanswered when the run ends are counted lost, never dropped.
        for t in 0..self.udp.len() {
            self.expire_udp(t, now, true);
        }
        let measure = self.clock.measure;
        let mut unanswered = vec![0u64; self.stats.len()];
        for (_, c) in self.conns.iter_mut() {
            let mut sent = c.reqs.iter().filter(|r| r.intended >= measure).count() as u64;
            // An ephemeral connection still connecting carries its request.
            if let State::Connecting { intended, .. } = c.state {
                if self.cfg.ephemeral() && intended >= measure {
                    sent += 1;
                }
            }
            unanswered[c.target as usize] += sent;
        }
        for (s, n) in self.stats.iter_mut().zip(unanswered) {
            s.lost += n;
        }
        for tok in self.conns.tokens() {
            self.conns.remove(tok);
        }
        if now >= self.clock.measure {
            let upto = now.min(self.measured_end()).max(self.window_start);
            self.flush(upto);
        }
        if let Some(iv) = self.folded.take() {
            let _ = self.tx.send_timeout(iv, Duration::from_secs(1));
        }
    }
}

/// Where `--hdr-log` writes: an HdrHistogram interval log.
pub type HdrLog = crate::histlog::LogWriter<Box<dyn Write + Send>>;

/// Start the run: one `Worker` per planned worker, plus the reporter printing to `out`.
/// Returns once every worker is running.
pub struct Run {
    workers: reactor::Workers,
    reporter: std::thread::JoinHandle<crate::report::Summary>,
    /// The shared instants of the run.
    pub clock: Clock,
}

impl Run {
    /// Start workers and reporter.
    pub fn start<W: Write + Send + 'static>(
        cfg: ConnectConfig,
        report: crate::report::ReportConfig,
        plan: &crate::affinity::Plan,
        shutdown: &reactor::Shutdown,
        loop_opts: reactor::LoopOptions,
        out: W,
        hdr_log: Option<HdrLog>,
    ) -> Result<Run> {
        let (tx, rx) = crossbeam_channel::bounded(plan.workers * 64 + 16);
        let cfg = Arc::new(cfg);
        let clock = Clock::new(&cfg, Instant::now());
        // Window `seq` of the log starts at the measurement start plus `seq` intervals.
        let measure_wall = std::time::SystemTime::now() + cfg.warmup;
        let interval = cfg.interval;
        let reporter = std::thread::Builder::new()
            .name("connperf-report".into())
            .spawn(move || {
                let mut log = hdr_log;
                let peers = report.peers.clone();
                crate::report::run_reporter(&report, rx, out, |seq, length, stats| {
                    let Some(l) = log.as_mut() else { return };
                    let start = measure_wall + interval * seq as u32;
                    if let Err(e) = l.write_stats(&peers, start, length, stats) {
                        eprintln!("connperf: warning: --hdr-log stopped: {e}");
                        log = None;
                    }
                })
            })
            .map_err(Error::Spawn)?;
        let n = plan.workers;
        let workers = reactor::spawn(plan, shutdown, loop_opts, |i, registry| {
            Worker::new(i, n, registry, cfg.clone(), clock, tx.clone())
        })?;
        drop(tx);
        Ok(Run {
            workers,
            reporter,
            clock,
        })
    }

    /// Wait for the workers (after shutdown) and the reporter's summary.
    pub fn join(self) -> Result<crate::report::Summary> {
        let r = self.workers.join();
        let summary = self
            .reporter
            .join()
            .map_err(|_| Error::WorkerPanicked { id: usize::MAX })?;
        r.map(|_| summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_fits_any_message_size() {
        let mut b = pattern(3);
        stamp(&mut b, 0x0102_0304);
        assert_eq!(b, vec![4, 3, 2]);
        let mut b = pattern(10);
        stamp(&mut b, 1);
        assert_eq!(&b[..9], &[1, 0, 0, 0, 0, 0, 0, 0, b'i']);
    }

    #[test]
    fn fds_needed_by_mode() {
        let mut c = ConnectConfig {
            targets: vec![
                Target {
                    name: "a".into(),
                    addr: "127.0.0.1:1".parse().unwrap()
                };
                2
            ],
            mode: Mode::Persistent {
                connections: 100,
                depth: 1,
            },
            ..Default::default()
        };
        assert_eq!(c.fds_needed(2), 200);
        c.mode = Mode::Udp;
        assert_eq!(c.fds_needed(2), 4);
    }
}
