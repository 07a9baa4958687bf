//! `connperf serve`: the echo server.
//!
//! Each worker owns one `SO_REUSEPORT` TCP listener and one `SO_REUSEPORT` UDP socket per listen
//! address, so the kernel spreads connections and datagrams over the workers, plus the TCP
//! connections it accepted. Bytes are echoed from one buffer per worker; a connection holds a
//! buffer only while the peer is not reading its echo, and then the server stops reading that
//! connection (backpressure), so a peer can never make it hold more than one read's worth.
//! Leaves to others: argument parsing (`cli`), printing (`report`), the loop (`reactor`).

use crate::affinity::Plan;
use crate::reactor::{self, fixed_token, Handler, Slab, FIXED_BASE};
use crate::report::{ServerCounters, ServerSnapshot};
use crate::sockopt;
use crate::{Error, Result};
use crossbeam_channel::Sender;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Size of each worker's echo buffer: the largest UDP payload (65,527 bytes over IPv6) fits, and
/// TCP reads of this size keep syscalls per byte low.
const BUF_LEN: usize = 64 * 1024;
/// Pause before retrying `accept` after EMFILE/ENFILE: the queued connection stays queued, and
/// retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// TCP Fast Open queue length for listeners (tcp(7), TCP_FASTOPEN).
const FASTOPEN_QLEN: libc::c_int = 256;

/// Which protocols `serve` listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    Tcp,
    Udp,
    All,
}

/// `--protocol`: `tcp`, `udp` or `all`, any case; the error quotes the value in lower case.
impl std::str::FromStr for Protocols {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocols::Tcp),
            "udp" => Ok(Protocols::Udp),
            "all" => Ok(Protocols::All),
            p => Err(format!("{p:?}: use tcp, udp or all")),
        }
    }
}

impl Protocols {
    fn tcp(self) -> bool {
        self != Protocols::Udp
    }
    fn udp(self) -> bool {
        self != Protocols::Tcp
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Addresses to listen on; port 0 picks a free port (the same for all workers and both
    /// protocols of that address).
    pub addrs: Vec<SocketAddr>,
    pub protocols: Protocols,
    /// Close connections beyond this many open at once (counted as rejected).
    pub max_connections: Option<u64>,
    /// Close connections idle this long.
    pub idle_timeout: Option<Duration>,
    /// Print counters every interval (else only at shutdown).
    pub interval: Option<Duration>,
    /// Listen backlog.
    pub backlog: i32,
    /// SO_BUSY_POLL microseconds on accepted sockets.
    pub busy_poll_us: Option<u32>,
    /// JSON Lines output.
    pub jsonlines: bool,
    /// Answer only peers inside these blocks (`--allow`); empty answers everyone.
    pub allow: Vec<Cidr>,
    /// Live metrics (`--metrics-addr`): the reporter folds every window in. Without
    /// `interval`, workers then report every `LIVE_INTERVAL` (no rows are printed for it).
    pub live: Option<Arc<crate::metrics::Live>>,
}

/// How often workers report to a `--metrics-addr` server that has no `--interval`.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(1);

impl ServeConfig {
    /// How often a worker sends its counters to the reporter, if at all.
    fn report_every(&self) -> Option<Duration> {
        self.interval
            .or_else(|| self.live.as_ref().map(|_| LIVE_INTERVAL))
    }
}

/// An address block such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `ADDR/LEN` or a bare address (a block of one).
    pub fn parse(s: &str) -> std::result::Result<Cidr, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => bits,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(format!("{s:?} has a bad prefix length (0 to {bits})")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// True if `ip` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (!0u128 << (width - bits)) & (!0u128 >> (128 - width))
            }
        };
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = mask(u32::from(self.prefix), 32);
                (u128::from(u32::from(n)) & m) == (u128::from(u32::from(a)) & m)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = mask(u32::from(self.prefix), 128);
                (u128::from(n) & m) == (u128::from(a) & m)
            }
            _ => false,
        }
    }
}

fn allowed(allow: &[Cidr], ip: IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|c| c.contains(ip))
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addrs: vec![SocketAddr::from(([0, 0, 0, 0], 9100))],
            protocols: Protocols::All,
            max_connections: None,
            idle_timeout: None,
            interval: None,
            backlog: 4096,
            busy_poll_us: None,
            jsonlines: false,
            allow: Vec::new(),
            live: None,
        }
    }
}

/// The sockets one worker will own.
pub struct WorkerSockets {
    listeners: Vec<TcpListener>,
    udps: Vec<UdpSocket>,
}

/// What binding found: the bound addresses (port 0 resolved) and each worker's sockets.
pub struct Bound {
    /// The addresses actually bound, in `--listen-addr` order.
    pub addrs: Vec<SocketAddr>,
    /// One entry per worker.
    pub sockets: Vec<WorkerSockets>,
    /// Set when TCP_FASTOPEN could not be enabled (a warning, not an error).
    pub fastopen_failed: Option<io::Error>,
}

fn bind_tcp(
    addr: SocketAddr,
    cfg: &ServeConfig,
    core: Option<usize>,
    fastopen_failed: &mut Option<io::Error>,
) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    prefer_core(&s, core);
    // Accepted connections inherit these from the listener: no setsockopt per accept.
    s.set_tcp_nodelay(true)?;
    sockopt::busy_poll(&s, cfg.busy_poll_us);
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(cfg.backlog)?;
    if let Err(e) = sockopt::set_tcp_fastopen(&s, FASTOPEN_QLEN) {
        fastopen_failed.get_or_insert(e);
    }
    Ok(TcpListener::from_std(s.into()))
}

/// Ask the kernel to hand this SO_REUSEPORT socket the connections whose packets are processed
/// on `core` (SO_INCOMING_CPU, honoured by reuseport groups since Linux 6.1): the worker pinned
/// there then takes them, with no cross-core wakeup per request. On loopback the packets of a
/// connection are processed on the core of the thread that sent them, so a client worker pinned
/// to core c is served by the server worker on core c. Best effort: older kernels hash.
fn prefer_core(s: &Socket, core: Option<usize>) {
    if let Some(c) = core {
        let _ = s.set_cpu_affinity(c);
    }
}

fn bind_udp(addr: SocketAddr, cfg: &ServeConfig, core: Option<usize>) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // SO_REUSEPORT only: SO_REUSEADDR on UDP would let any other process bind the port too.
    s.set_reuse_port(true)?;
    prefer_core(&s, core);
    // Room for bursts of datagrams between two reads (capped by net.core.rmem_max and wmem_max).
    let _ = s.set_recv_buffer_size(sockopt::UDP_SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(sockopt::UDP_SOCKET_BUFFER);
    sockopt::busy_poll(&s, cfg.busy_poll_us);
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(UdpSocket::from_std(s.into()))
}

/// Fail with EADDRINUSE if another process already serves `addr`. Our own sockets use
/// SO_REUSEPORT, which would otherwise let a second server silently share the port and take
/// half its traffic; a socket without it cannot bind while any other socket holds the port.
fn probe_free(addr: SocketAddr, protocols: Protocols) -> io::Result<()> {
    if protocols.tcp() {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // SO_REUSEADDR so that TIME_WAIT leftovers of a restarted server do not count.
        s.set_reuse_address(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.bind(&addr.into())?;
    }
    if protocols.udp() {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.bind(&addr.into())?;
    }
    Ok(())
}

/// Sockets of one address for every worker; port 0 is resolved by the first socket bound, and
/// the other workers and the other protocol reuse that port.
fn bind_addr(
    cfg: &ServeConfig,
    want: SocketAddr,
    plan: &Plan,
    fastopen_failed: &mut Option<io::Error>,
) -> io::Result<(SocketAddr, Vec<TcpListener>, Vec<UdpSocket>)> {
    let mut addr = want;
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    // With one worker there is no choice to steer.
    let steer = plan.workers > 1;
    for i in 0..plan.workers {
        let core = plan.core_for(i).filter(|_| steer);
        if cfg.protocols.tcp() {
            let l = bind_tcp(addr, cfg, core, fastopen_failed)?;
            if addr.port() == 0 {
                addr = l.local_addr()?;
            }
            tcp.push(l);
        }
        if cfg.protocols.udp() {
            let u = bind_udp(addr, cfg, core)?;
            if addr.port() == 0 {
                addr = u.local_addr()?;
            }
            udp.push(u);
        }
    }
    Ok((addr, tcp, udp))
}

/// Bind every address for every worker.
pub fn bind(cfg: &ServeConfig, plan: &Plan) -> Result<Bound> {
    let mut sockets: Vec<WorkerSockets> = (0..plan.workers)
        .map(|_| WorkerSockets {
            listeners: Vec::new(),
            udps: Vec::new(),
        })
        .collect();
    let mut addrs = Vec::with_capacity(cfg.addrs.len());
    let mut fastopen_failed = None;
    for &want in &cfg.addrs {
        if want.port() != 0 {
            probe_free(want, cfg.protocols).map_err(|source| Error::Bind { addr: want, source })?;
        }
        // Port 0 with both protocols: the free TCP port may be taken for UDP; pick another.
        let mut tries = if want.port() == 0 { 8 } else { 1 };
        let (addr, tcp, udp) = loop {
            tries -= 1;
            match bind_addr(cfg, want, plan, &mut fastopen_failed) {
                Ok(b) => break b,
                Err(e) if tries > 0 && e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => return Err(Error::Bind { addr: want, source }),
            }
        };
        let (mut tcp, mut udp) = (tcp.into_iter(), udp.into_iter());
        for ws in sockets.iter_mut() {
            ws.listeners.extend(tcp.next());
            ws.udps.extend(udp.next());
        }
        addrs.push(addr);
    }
    Ok(Bound {
        addrs,
        sockets,
        fastopen_failed,
    })
}

/// State shared by all workers of one server, touched only on accept and close.
#[derive(Default)]
pub struct Shared {
    /// Connections open across all workers (for `--max-connections`).
    pub open: AtomicU64,
    /// Set once the "out of file descriptors" warning has been printed.
    fd_warned: AtomicBool,
}

struct EchoConn {
    stream: TcpStream,
    /// Echo bytes the peer has not taken yet; empty (and unallocated) almost always.
    pending: Vec<u8>,
    pending_off: usize,
    last_active: Instant,
    /// An event said the peer closed its side (FIN): read on to the end of stream, also in a
    /// later turn if the read budget ran out first (edge-triggered epoll says it only once).
    peer_closed: bool,
}

enum Step {
    Continue,
    Close,
    /// The read budget ran out with data still waiting: come back next loop turn.
    More,
}

/// Full reads (of `BUF_LEN`) one TCP connection gets per turn of the loop, and full batches
/// one UDP socket gets: a peer that streams without pause then cannot hold the worker, and
/// the other connections on it, its timers and its reports go on. The rest waits one turn.
const TCP_READ_BUDGET: usize = 16;
const UDP_BATCH_BUDGET: usize = 8;

/// Datagrams taken and answered per `recvmmsg` / `sendmmsg` call.
const UDP_BATCH: usize = 32;
/// Room per datagram: the largest UDP payload (65,507 bytes) fits, so none is truncated.
const UDP_SLOT: usize = 64 * 1024;

/// Buffers for reading and answering a batch of datagrams with one syscall each way. The
/// slots are allocated zeroed and become resident only as far as datagrams fill them.
struct UdpBatch {
    data: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// How many datagrams the last `recv` read.
    read: usize,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `msgs` point only into this value's own heap buffers
// (which do not move when the value does) and are rebuilt before every syscall that reads them.
unsafe impl Send for UdpBatch {}

impl UdpBatch {
    fn new(n: usize) -> UdpBatch {
        UdpBatch {
            data: vec![0; n * UDP_SLOT],
            lens: vec![0; n],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (empty) value.
            addrs: vec![unsafe { std::mem::zeroed() }; n],
            addr_lens: vec![0; n],
            read: 0,
            iovs: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
        }
    }

    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Point `msgs[k]` at slot `slots[k]`'s data (`len` bytes) and address.
    fn build(&mut self, slots: std::ops::Range<usize>, recv: bool) {
        self.iovs.clear();
        self.msgs.clear();
        let base = self.data.as_mut_ptr();
        for i in slots.clone() {
            let len = if recv { UDP_SLOT } else { self.lens[i] };
            self.iovs.push(libc::iovec {
                // SAFETY: slot i lies inside `data` (i < capacity).
                iov_base: unsafe { base.add(i * UDP_SLOT) }.cast(),
                iov_len: len,
            });
        }
        for (k, i) in slots.enumerate() {
            // SAFETY: mmsghdr is plain data; the fields that matter are set below.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = if recv {
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
            } else {
                self.addr_lens[i]
            };
            m.msg_hdr.msg_iov = &mut self.iovs[k];
            m.msg_hdr.msg_iovlen = 1;
            self.msgs.push(m);
        }
    }

    /// Read up to a batch of datagrams; returns how many.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.capacity();
        self.build(0..n, true);
        // SAFETY: msgs holds n headers whose name and iov pointers point into our own
        // buffers, which outlive the call; the kernel writes at most the lengths given.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = r as usize;
        for k in 0..r {
            self.lens[k] = self.msgs[k].msg_len as usize;
            self.addr_lens[k] = self.msgs[k].msg_hdr.msg_namelen;
        }
        self.read = r;
        Ok(r)
    }

    /// The sender of datagram `i`.
    fn from(&self, i: usize) -> Option<SocketAddr> {
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is this platform's own address type, and recvmmsg filled
        // `addrs[i]` and its length `addr_lens[i]`.
        let addr = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = self.addrs[i];
            socket2::SockAddr::new(storage, self.addr_lens[i])
        };
        addr.as_socket()
    }

    /// Keep, in order at the front, the datagrams just read whose sender passes `ok`; returns
    /// how many were kept (all of them unless `--allow` is set).
    fn keep(&mut self, ok: impl Fn(SocketAddr) -> bool) -> usize {
        let mut kept = 0;
        for i in 0..self.read {
            if !self.from(i).is_some_and(&ok) {
                continue;
            }
            if kept != i {
                let len = self.lens[i];
                self.data
                    .copy_within(i * UDP_SLOT..i * UDP_SLOT + len, kept * UDP_SLOT);
                self.lens[kept] = len;
                self.addrs[kept] = self.addrs[i];
                self.addr_lens[kept] = self.addr_lens[i];
            }
            kept += 1;
        }
        kept
    }

    /// Send datagrams `from..to` back to their senders; returns how many the kernel took.
    fn send(&mut self, fd: RawFd, from: usize, to: usize) -> io::Result<usize> {
        self.build(from..to, false);
        // SAFETY: as in `recv`; the kernel only reads the buffers here.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                (to - from) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Bytes in datagrams `from..to`.
    fn bytes(&self, from: usize, to: usize) -> u64 {
        self.lens[from..to].iter().map(|&l| l as u64).sum()
    }

    /// Copies of datagrams `from..to` with their senders, to send later.
    fn take(&self, from: usize, to: usize) -> impl Iterator<Item = (Vec<u8>, SocketAddr)> + '_ {
        (from..to).filter_map(move |i| {
            let data = self.data[i * UDP_SLOT..i * UDP_SLOT + self.lens[i]].to_vec();
            Some((data, self.from(i)?))
        })
    }
}

/// One worker of the echo server.
pub struct EchoWorker {
    id: usize,
    registry: Registry,
    cfg: Arc<ServeConfig>,
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    udps: Vec<UdpSocket>,
    /// Replies the kernel would not take yet (send buffer full), per UDP socket; at most one
    /// batch, as the socket is not read again until they are gone.
    udp_pending: Vec<VecDeque<(Vec<u8>, SocketAddr)>>,
    udp_batch: UdpBatch,
    /// Connections and UDP sockets whose budget ran out this turn with data waiting.
    more: Vec<Token>,
    conns: Slab<EchoConn>,
    buf: Box<[u8]>,
    counters: ServerCounters,
    tx: Sender<ServerSnapshot>,
    seq: u64,
    next_report: Option<Instant>,
    accept_paused_until: Option<Instant>,
    next_sweep: Option<Instant>,
    stopping: bool,
}

impl EchoWorker {
    /// A worker owning `sockets`, registered with `registry`.
    pub fn new(
        id: usize,
        registry: &Registry,
        sockets: WorkerSockets,
        cfg: Arc<ServeConfig>,
        shared: Arc<Shared>,
        tx: Sender<ServerSnapshot>,
        start: Instant,
    ) -> Result<EchoWorker> {
        let registry = registry.try_clone().map_err(Error::Poll)?;
        let WorkerSockets {
            mut listeners,
            mut udps,
        } = sockets;
        for (i, l) in listeners.iter_mut().enumerate() {
            registry
                .register(l, fixed_token(i), Interest::READABLE)
                .map_err(Error::Poll)?;
        }
        let base = listeners.len();
        for (j, u) in udps.iter_mut().enumerate() {
            registry
                .register(
                    u,
                    fixed_token(base + j),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(Error::Poll)?;
        }
        let udp_pending = (0..udps.len()).map(|_| VecDeque::new()).collect();
        let udp_batch = UdpBatch::new(if udps.is_empty() { 0 } else { UDP_BATCH });
        Ok(EchoWorker {
            id,
            registry,
            next_report: cfg.report_every().map(|i| start + i),
            next_sweep: cfg.idle_timeout.map(|t| start + sweep_period(t)),
            cfg,
            shared,
            listeners,
            udps,
            udp_pending,
            udp_batch,
            more: Vec::new(),
            conns: Slab::new(),
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            counters: ServerCounters::default(),
            tx,
            seq: 0,
            accept_paused_until: None,
            stopping: false,
        })
    }

    fn accept(&mut self, li: usize, now: Instant) {
        if self.stopping || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let res = match self.listeners.get(li) {
                Some(l) => l.accept(),
                None => return,
            };
            match res {
                Ok((stream, peer)) => {
                    if !allowed(&self.cfg.allow, peer.ip()) {
                        self.counters.denied += 1;
                        drop(stream);
                        continue;
                    }
                    self.counters.accepted += 1;
                    let open = self.shared.open.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.cfg.max_connections.is_some_and(|m| open > m) {
                        self.shared.open.fetch_sub(1, Ordering::Relaxed);
                        self.counters.rejected += 1;
                        self.counters.closed += 1;
                        drop(stream);
                        continue;
                    }
                    let token = self.conns.insert(EchoConn {
                        stream,
                        pending: Vec::new(),
                        pending_off: 0,
                        last_active: now,
                        peer_closed: false,
                    });
                    let c = self.conns.get_mut(token).expect("just inserted");
                    if self
                        .registry
                        .register(
                            &mut c.stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.counters.io_errors += 1;
                        self.close(token);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE)
                            | Some(libc::ENFILE)
                            | Some(libc::ENOBUFS)
                            | Some(libc::ENOMEM)
                    ) {
                        self.counters.accept_fd_limit += 1;
                        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                        if !self.shared.fd_warned.swap(true, Ordering::Relaxed) {
                            eprintln!(
                                "connperf: warning: out of file descriptors accepting connections ({e}); \
                                 backing off, counted as accept_fd_limit. Raise `ulimit -n` or use --max-connections"
                            );
                        }
                        return;
                    }
                    // ECONNABORTED and friends: the connection died in the queue.
                    self.counters.accept_errors += 1;
                }
            }
        }
    }

    fn on_conn(&mut self, token: Token) {
        let step = match self.conns.get_mut(token) {
            Some(c) => echo_tcp(
                c,
                &mut self.buf,
                &mut self.counters,
                self.cfg.idle_timeout.is_some(),
            ),
            None => return,
        };
        match step {
            Step::Continue => {}
            Step::Close => self.close(token),
            Step::More => self.more.push(token),
        }
    }

    /// Give the connections and sockets whose budget ran out last turn their next turn.
    fn serve_more(&mut self) {
        let queued = std::mem::take(&mut self.more);
        for token in queued {
            self.on_ready(token, false);
        }
    }

    /// Serve what is ready on `token`, unless it already waits in `more` for its next turn
    /// (serving it now too would give it two budgets in one turn). `read_closed`: the event
    /// said the peer closed its side, which a connection remembers either way.
    fn on_ready(&mut self, token: Token, read_closed: bool) {
        let t = token.0;
        if read_closed && t < FIXED_BASE {
            if let Some(c) = self.conns.get_mut(token) {
                c.peer_closed = true;
            }
        }
        if self.more.contains(&token) {
            return;
        }
        if t >= FIXED_BASE {
            let i = t - FIXED_BASE;
            if i < self.listeners.len() {
                self.accept(i, Instant::now());
            } else if self.on_udp(i - self.listeners.len()) {
                self.more.push(token);
            }
        } else {
            self.on_conn(token);
        }
    }

    fn close(&mut self, token: Token) {
        // Dropping the connection closes its socket, which takes it out of the epoll set: no
        // deregister call needed (nothing here dups descriptors or forks).
        if self.conns.remove(token).is_some() {
            self.counters.closed += 1;
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Echo the datagrams waiting on UDP socket `j`: up to `UDP_BATCH` read by one `recvmmsg`
    /// and answered by one `sendmmsg`, until the socket has no more or `UDP_BATCH_BUDGET`
    /// full batches went by (then true: more may be waiting).
    fn on_udp(&mut self, j: usize) -> bool {
        let (Some(sock), Some(pending)) = (self.udps.get(j), self.udp_pending.get_mut(j)) else {
            return false;
        };
        let c = &mut self.counters;
        let fd = sock.as_raw_fd();
        for _ in 0..UDP_BATCH_BUDGET {
            // Replies held back by a full send buffer go first, in order.
            while let Some((data, to)) = pending.front() {
                match sock.send_to(data, *to) {
                    Ok(_) => {
                        c.udp_datagrams += 1;
                        c.udp_bytes += data.len() as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => c.io_errors += 1,
                }
                pending.pop_front();
            }
            let n = match self.udp_batch.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // A socket error (an ICMP error for an earlier reply) is reported once.
                    c.io_errors += 1;
                    continue;
                }
            };
            let allow = &self.cfg.allow;
            let kept = self.udp_batch.keep(|from| allowed(allow, from.ip()));
            c.denied += (n - kept) as u64;
            let mut sent = 0;
            while sent < kept {
                match self.udp_batch.send(fd, sent, kept) {
                    Ok(m) => {
                        c.udp_datagrams += m as u64;
                        c.udp_bytes += self.udp_batch.bytes(sent, sent + m);
                        sent += m;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Keep the unsent replies and stop reading until the socket drains.
                        pending.extend(self.udp_batch.take(sent, kept));
                        return false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // sendmmsg failed on reply `sent`: count it, go on with the rest.
                        c.io_errors += 1;
                        sent += 1;
                    }
                }
            }
            if n < self.udp_batch.capacity() {
                // Fewer than asked for: the queue was empty. A datagram arriving later raises
                // a new event.
                return false;
            }
        }
        true
    }

    fn sweep_idle(&mut self, now: Instant) {
        let Some(t) = self.cfg.idle_timeout else {
            return;
        };
        let idle: Vec<Token> = self
            .conns
            .iter_mut()
            .filter(|(_, c)| now.saturating_duration_since(c.last_active) >= t)
            .map(|(tok, _)| tok)
            .collect();
        for tok in idle {
            self.counters.idle_closed += 1;
            self.close(tok);
        }
    }

    fn send_snapshot(&mut self, last: bool) {
        let snap = ServerSnapshot {
            worker: self.id,
            seq: self.seq,
            counters: self.counters,
            at: Instant::now(),
            last,
        };
        // The reporter never falls far behind; if it did, the next snapshot is cumulative anyway.
        let _ = self.tx.try_send(snap);
        self.seq += 1;
    }
}

fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Echo what the connection has to give. Returns `Close` when it should be closed.
fn echo_tcp(
    c: &mut EchoConn,
    buf: &mut [u8],
    counters: &mut ServerCounters,
    track_idle: bool,
) -> Step {
    if track_idle {
        c.last_active = Instant::now();
    }
    for _ in 0..TCP_READ_BUDGET {
        // Backpressure: while echo bytes are unsent, read nothing.
        while c.pending_off < c.pending.len() {
            match c.stream.write(&c.pending[c.pending_off..]) {
                Ok(0) => return Step::Close,
                Ok(n) => {
                    c.pending_off += n;
                    counters.tcp_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(counters, &e),
            }
        }
        if !c.pending.is_empty() {
            c.pending = Vec::new();
            c.pending_off = 0;
        }
        let n = match c.stream.read(buf) {
            Ok(0) => return Step::Close,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(counters, &e),
        };
        counters.tcp_reads += 1;
        let mut off = 0;
        while off < n {
            match c.stream.write(&buf[off..n]) {
                Ok(0) => return Step::Close,
                Ok(w) => {
                    off += w;
                    counters.tcp_bytes += w as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.pending = buf[off..n].to_vec();
                    c.pending_off = 0;
                    return Step::Continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(counters, &e),
            }
        }
        // A short read took everything the socket held; with edge-triggered epoll any later
        // arrival (data or FIN) raises a new event, so skip the read that would say WouldBlock.
        // If an event already carried the FIN, read on to see the end of stream.
        if n < buf.len() && !c.peer_closed {
            return Step::Continue;
        }
    }
    Step::More
}

fn fail(counters: &mut ServerCounters, e: &io::Error) -> Step {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => counters.resets += 1,
        _ => counters.io_errors += 1,
    }
    Step::Close
}

impl Handler for EchoWorker {
    fn on_event(&mut self, ev: &Event) {
        self.on_ready(ev.token(), ev.is_read_closed() || ev.is_error());
    }

    fn on_due(&mut self, now: Instant) -> Option<Instant> {
        if let Some(t) = self.accept_paused_until {
            if now >= t {
                self.accept_paused_until = None;
                for i in 0..self.listeners.len() {
                    self.accept(i, now);
                }
            }
        }
        if let Some(t) = self.next_report {
            if now >= t {
                self.send_snapshot(false);
                let iv = self
                    .cfg
                    .report_every()
                    .expect("next_report implies an interval");
                // Skip windows missed while stalled in one step, never one by one.
                let missed = (now - t).as_nanos() / iv.as_nanos();
                self.next_report = Some(t + iv * (missed as u32 + 1));
            }
        }
        if let Some(t) = self.next_sweep {
            if now >= t {
                self.sweep_idle(now);
                self.next_sweep = self.cfg.idle_timeout.map(|i| now + sweep_period(i));
            }
        }
        self.serve_more();
        let again = (!self.more.is_empty()).then_some(now);
        [
            self.accept_paused_until,
            self.next_report,
            self.next_sweep,
            again,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_stop(&mut self, now: Instant) -> Instant {
        self.stopping = true;
        for mut l in self.listeners.drain(..) {
            let _ = self.registry.deregister(&mut l);
        }
        for tok in self.conns.tokens() {
            self.close(tok);
        }
        now
    }

    fn is_drained(&self) -> bool {
        true
    }

    fn on_exit(&mut self, _now: Instant) {
        self.send_snapshot(true);
    }
}

/// A running server: its bound addresses, the workers, and the reporter.
pub struct Server {
    /// Addresses bound, port 0 resolved.
    pub addrs: Vec<SocketAddr>,
    workers: reactor::Workers,
    reporter: crate::report::Reporter<ServerCounters>,
}

impl Server {
    /// Bind and start `plan.workers` workers; counters go to `out`.
    pub fn start<W: Write + Send + 'static>(
        cfg: ServeConfig,
        plan: &crate::affinity::Plan,
        shutdown: &reactor::Shutdown,
        loop_opts: reactor::LoopOptions,
        out: W,
    ) -> Result<Server> {
        let bound = bind(&cfg, plan)?;
        if let Some(e) = &bound.fastopen_failed {
            eprintln!("connperf: warning: TCP_FASTOPEN not enabled on listeners: {e}");
        }
        let workers_n = plan.workers;
        let jsonlines = cfg.jsonlines;
        let interval_rows = cfg.interval.is_some();
        let start = Instant::now();
        let live = cfg.live.clone();
        let (tx, reporter) = crate::report::Reporter::spawn(workers_n, move |rx| {
            crate::report::run_server_reporter(
                workers_n,
                jsonlines,
                interval_rows,
                start,
                rx,
                out,
                live.as_deref(),
            )
        })?;
        let cfg = Arc::new(cfg);
        let shared = Arc::new(Shared::default());
        let mut sockets = bound.sockets.into_iter();
        let workers = reactor::spawn(plan, shutdown, loop_opts, |i, registry| {
            let s = sockets.next().expect("one socket set per worker");
            EchoWorker::new(
                i,
                registry,
                s,
                cfg.clone(),
                shared.clone(),
                tx.clone(),
                start,
            )
        })?;
        drop(tx);
        Ok(Server {
            addrs: bound.addrs,
            workers,
            reporter,
        })
    }

    /// Wait for the workers (after `Shutdown::trigger`) and the reporter; returns the totals.
    pub fn join(self) -> Result<ServerCounters> {
        let r = self.workers.join();
        let totals = self.reporter.join()?;
        r.map(|_| totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted connections get TCP_NODELAY (and SO_BUSY_POLL) from the listener, not from a
    /// setsockopt per accept: the echo of a message written in pieces must not wait on Nagle.
    #[test]
    fn accepted_connections_inherit_listener_options() {
        let cfg = ServeConfig {
            busy_poll_us: Some(7),
            ..ServeConfig::default()
        };
        let mut failed = None;
        let l = bind_tcp("127.0.0.1:0".parse().unwrap(), &cfg, None, &mut failed).unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        let a = socket2::SockRef::from(&a);
        assert!(a.tcp_nodelay().unwrap(), "TCP_NODELAY not inherited");
        // Raising SO_BUSY_POLL needs CAP_NET_ADMIN; without it the listener kept 0 as well.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(a.busy_poll().unwrap(), 7, "SO_BUSY_POLL not inherited");
        }
    }

    /// `serve --busy-poll` reaches the UDP sockets too (it used to be set on TCP only).
    #[test]
    fn udp_sockets_get_busy_poll() {
        let cfg = ServeConfig {
            busy_poll_us: Some(7),
            ..ServeConfig::default()
        };
        let u = bind_udp("127.0.0.1:0".parse().unwrap(), &cfg, None).unwrap();
        // Raising SO_BUSY_POLL needs CAP_NET_ADMIN; without it the socket binds without it.
        let want = if unsafe { libc::geteuid() } == 0 {
            7
        } else {
            0
        };
        assert_eq!(socket2::SockRef::from(&u).busy_poll().unwrap(), want);
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
