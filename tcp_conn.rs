//! TCP connection I/O that the persistent and ephemeral modes share: opening a connection
//! (`Dialer`, with `--source-addrs` and windows of the local port range), telling how a connect
//! ended, and exchanging requests and their echoes on an open connection (`TcpIo`), which
//! returns what completed so that the mode records it in one place.
//!
//! Leaves to others: what a mode does with a connection and its schedule (`persistent`,
//! `ephemeral`), recording (`client`).

use crate::client::{Client, Sources};
use crate::driver::{CloseMode, ConnectConfig};
use crate::reactor::Slab;
use crate::report::Failure;
use crate::sockopt;
use mio::event::Event;
use mio::net::TcpStream;
use mio::Token;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Ports per window of the local port range.
pub(crate) const PORT_WINDOW: u32 = 256;

/// What an event (or the lack of one) says about an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Only writing makes sense: a new request, or a writable event.
    Write,
    /// Readable: read what has arrived.
    Read,
    /// The peer closed or the socket failed: read until the end of stream.
    ReadClosed,
}

impl Readiness {
    /// What `ev` says about an open connection.
    pub fn of(ev: &Event) -> Readiness {
        if ev.is_read_closed() || ev.is_error() {
            Readiness::ReadClosed
        } else if ev.is_readable() {
            Readiness::Read
        } else {
            Readiness::Write
        }
    }
}

/// How a non-blocking connect ended, from its event: `None` while nothing is known yet.
/// A connect reports its outcome as one event: an error (EPOLLERR, with SO_ERROR saying why)
/// or a hang-up if it failed, writable once it is established. No syscall is needed to tell
/// which on success.
pub(crate) fn connect_outcome(
    ev: &Event,
    stream: Option<&TcpStream>,
) -> Option<Result<(), Failure>> {
    if ev.is_error() || !ev.is_writable() && ev.is_write_closed() {
        let kind = match stream.map(|s| s.take_error()) {
            Some(Ok(Some(e)) | Err(e)) => Failure::of(&e),
            _ => Failure::Refused,
        };
        Some(Err(kind))
    } else if ev.is_writable() || ev.is_readable() {
        Some(Ok(()))
    } else {
        None
    }
}

/// The tokens of `conns` whose oldest wait (given by `since`) is `timeout` old at `now`.
pub(crate) fn timed_out<C>(
    conns: &Slab<C>,
    now: Instant,
    timeout: Duration,
    since: impl Fn(&C) -> Option<Instant>,
) -> Vec<Token> {
    conns
        .iter()
        .filter(|(_, c)| since(c).is_some_and(|s| now.saturating_duration_since(s) >= timeout))
        .map(|(token, _)| token)
        .collect()
}

/// One TCP request on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req {
    pub intended: Instant,
    pub sent_at: Instant,
    /// Stamped into the payload, so that an echo of another request is caught.
    pub seq: u64,
}

/// The requests one exchange completed, and when (one instant for all of them).
#[derive(Default)]
pub(crate) struct Completions {
    reqs: Vec<Req>,
    at: Option<Instant>,
}

impl Completions {
    fn clear(&mut self) {
        self.reqs.clear();
        self.at = None;
    }

    /// How many requests the exchange completed.
    pub fn len(&self) -> usize {
        self.reqs.len()
    }
}

/// What one `TcpIo::exchange` did.
pub(crate) struct Exchanged {
    /// When requests completed (all of them recorded), if any did.
    pub answered: Option<Instant>,
    /// An error: the connection failed (after the completions, which stand).
    pub outcome: Result<(), Failure>,
}

/// The request/echo stream of one TCP connection.
pub(crate) struct TcpIo {
    pub stream: Option<TcpStream>,
    /// Requests in flight, oldest first.
    pub reqs: VecDeque<Req>,
    /// Bytes written, counted from the start of `reqs[0]`.
    out: usize,
    /// Bytes of `reqs[0]`'s echo received and checked.
    got: usize,
    /// Requests begun on this connection.
    seq: u64,
}

impl TcpIo {
    /// A connection with room for `depth` requests in flight.
    pub fn new(depth: usize) -> TcpIo {
        TcpIo {
            stream: None,
            reqs: VecDeque::with_capacity(depth),
            out: 0,
            got: 0,
            seq: 0,
        }
    }

    /// Queue a request intended at `intended`, sent (as far as latency is concerned) at
    /// `sent_at`; the next `exchange` writes it.
    pub fn begin(&mut self, intended: Instant, sent_at: Instant) {
        self.seq += 1;
        self.reqs.push_back(Req {
            intended,
            sent_at,
            seq: self.seq,
        });
    }

    /// The connection went down: forget its stream and return the requests it had in flight.
    pub fn reset(&mut self) -> VecDeque<Req> {
        // Closing the socket (dropping it) takes it out of the epoll set: one syscall fewer
        // than deregistering first. Nothing here dups descriptors or forks.
        self.stream = None;
        self.out = 0;
        self.got = 0;
        std::mem::take(&mut self.reqs)
    }

    /// Write the first request (sequence 1) of a fresh connection once; how much went out.
    /// `begin` it afterwards and `note_written` what went out.
    pub fn write_first(&mut self, send_buf: &mut [u8]) -> io::Result<usize> {
        let stream = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        stamp(send_buf, 1);
        loop {
            match stream.write(send_buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// `n` bytes of the queued requests already went out (see `write_first`).
    pub fn note_written(&mut self, n: usize) {
        self.out = n;
    }

    /// True if bytes of the queued requests are still unwritten.
    pub fn unwritten(&self, msg: usize) -> bool {
        self.out < self.reqs.len() * msg
    }

    /// Write what is unsent and read what has come back, checking each echo against its
    /// request, and record each completed request of this connection to `target` (the one
    /// place TCP completions are recorded). `done` is scratch space kept by the caller.
    pub fn exchange(
        &mut self,
        core: &mut Client,
        target: u32,
        ready: Readiness,
        done: &mut Completions,
    ) -> Exchanged {
        done.clear();
        let timeout = core.cfg.timeout;
        let outcome = self.transfer(&mut core.send_buf, &mut core.recv_buf, ready, timeout, done);
        if let Some(at) = done.at {
            for r in &done.reqs {
                core.record(target, r.intended, r.sent_at, at);
            }
        }
        Exchanged {
            answered: done.at,
            outcome,
        }
    }

    /// Write and read until neither makes progress; completed requests go to `done`. An echo
    /// that completes `timeout` or more after its send is a timeout, however soon the sweep
    /// would have seen it, so timeouts under its period are enforced too.
    fn transfer(
        &mut self,
        send_buf: &mut [u8],
        recv_buf: &mut [u8],
        ready: Readiness,
        timeout: Duration,
        done: &mut Completions,
    ) -> Result<(), Failure> {
        loop {
            let wrote = self.write_some(send_buf)?;
            if ready == Readiness::Write {
                // Read only when epoll said so: right after a write the echo is almost never
                // there yet, and edge-triggered epoll reports its arrival (saves a failed read
                // per request).
                return Ok(());
            }
            if self.reqs.is_empty() {
                return self.read_unowed();
            }
            let read = self.read_echoes(send_buf, recv_buf, ready, timeout, done)?;
            // With the peer's FIN in this event and nothing owed, read once more to see it.
            if !(wrote || read) || (self.reqs.is_empty() && ready != Readiness::ReadClosed) {
                return Ok(());
            }
        }
    }

    /// Write until the queued requests are out or the socket is full. True if anything went.
    fn write_some(&mut self, send_buf: &mut [u8]) -> Result<bool, Failure> {
        let msg = send_buf.len();
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let mut progress = false;
        while self.out < self.reqs.len() * msg {
            let (idx, off) = (self.out / msg, self.out % msg);
            stamp(send_buf, self.reqs[idx].seq);
            match stream.write(&send_buf[off..]) {
                Ok(0) => return Err(Failure::Reset),
                Ok(n) => {
                    self.out += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::of(&e)),
            }
        }
        Ok(progress)
    }

    /// Nothing is owed to us: bytes now are a lying peer, EOF is a close.
    fn read_unowed(&mut self) -> Result<(), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let mut b = [0u8; 1];
        loop {
            return match stream.read(&mut b) {
                Ok(0) => Err(Failure::ClosedEarly),
                Ok(_) => Err(Failure::Mismatch),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(Failure::of(&e)),
            };
        }
    }

    /// Read and check echoes of what was written. True if anything was read.
    fn read_echoes(
        &mut self,
        send_buf: &mut [u8],
        recv_buf: &mut [u8],
        ready: Readiness,
        timeout: Duration,
        done: &mut Completions,
    ) -> Result<bool, Failure> {
        let mut progress = false;
        while self.out > self.got {
            let want = (self.out - self.got).min(recv_buf.len());
            let Some(stream) = self.stream.as_mut() else {
                return Ok(progress);
            };
            match stream.read(&mut recv_buf[..want]) {
                Ok(0) => return Err(Failure::ClosedEarly),
                Ok(n) => {
                    progress = true;
                    check_echoes(self, &recv_buf[..n], send_buf, timeout, done)?;
                    if n < want && ready != Readiness::ReadClosed {
                        // A short read drained the socket; edge-triggered epoll reports more.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::of(&e)),
            }
        }
        Ok(progress)
    }
}

/// Check a chunk of echo, which may span the ends of several pipelined requests, and move
/// each request it completes within `timeout` of its send to `done`. A request completed
/// later stays in flight and fails the connection with a timeout.
fn check_echoes(
    io: &mut TcpIo,
    chunk: &[u8],
    send_buf: &mut [u8],
    timeout: Duration,
    done: &mut Completions,
) -> Result<(), Failure> {
    let msg = send_buf.len();
    let mut pos = 0;
    while pos < chunk.len() {
        let r = io.reqs[0];
        let take = (msg - io.got).min(chunk.len() - pos);
        stamp(send_buf, r.seq);
        if chunk[pos..pos + take] != send_buf[io.got..io.got + take] {
            return Err(Failure::Mismatch);
        }
        pos += take;
        io.got += take;
        if io.got == msg {
            let at = done.at.unwrap_or_else(Instant::now);
            if at.saturating_duration_since(r.sent_at) >= timeout {
                return Err(Failure::Timeout);
            }
            done.at = Some(at);
            done.reqs.push(r);
            io.reqs.pop_front();
            io.out -= msg;
            io.got = 0;
        }
    }
    Ok(())
}

/// Stamp a request number into the first bytes of the payload (as many as fit).
fn stamp(buf: &mut [u8], seq: u64) {
    let b = seq.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
}

/// How a mode wants its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DialOptions {
    /// Set TCP_NODELAY on each connection.
    pub nodelay: bool,
    /// How connections are closed: RST (SO_LINGER 0) leaves no TIME_WAIT and frees the port
    /// at once.
    pub close: CloseMode,
}

/// Opens the non-blocking TCP connections of one worker.
pub(crate) struct Dialer {
    /// TCP_NODELAY on each connection.
    nodelay: bool,
    /// SO_LINGER 0: close with RST.
    rst: bool,
    busy_poll_us: Option<u32>,
    sources: Sources,
    ports: PortWindows,
}

impl Dialer {
    /// The dialer of worker `id` of `workers`.
    pub fn new(cfg: &ConnectConfig, id: usize, workers: usize, opts: DialOptions) -> Dialer {
        Dialer {
            nodelay: opts.nodelay,
            rst: opts.close == CloseMode::Rst,
            busy_poll_us: cfg.busy_poll_us,
            sources: Sources::new(&cfg.source_addrs, id),
            ports: PortWindows::new(id, workers),
        }
    }

    /// Connections closed by RST free their port at once.
    pub fn closes_with_rst(&self) -> bool {
        self.rst
    }

    /// Open a non-blocking TCP connection to `addr`. `few`: few connections of this worker
    /// are open and each frees its port at once (RST), so the kernel's scan for a free port
    /// stays short and the connect saves the setsockopt of a port window.
    pub fn dial(&mut self, addr: SocketAddr, few: bool) -> io::Result<TcpStream> {
        let mut tries = 0;
        loop {
            let s = self.socket(addr)?;
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

    /// A socket for `addr` with this run's options, bound to the next source address if any.
    fn socket(&mut self, addr: SocketAddr) -> io::Result<Socket> {
        // Non-blocking from the start (SOCK_NONBLOCK): no fcntl pair per connection.
        let s = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if self.nodelay {
            s.set_tcp_nodelay(true)?;
        }
        if self.rst {
            s.set_linger(Some(Duration::ZERO))?;
        }
        sockopt::busy_poll(&s, self.busy_poll_us);
        if let Some(src) = self.sources.pick(addr) {
            // Let the kernel choose the port at connect time, per (source, destination).
            let _ = sockopt::set_bind_address_no_port(&s);
            s.bind(&SocketAddr::new(src, 0).into())?;
        }
        Ok(s)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_fits_any_message_size() {
        let mut b = vec![b'a', b'b', b'c'];
        stamp(&mut b, 0x0102_0304);
        assert_eq!(b, vec![4, 3, 2]);
        let mut b: Vec<u8> = (0..10).map(|i| b'a' + i).collect();
        stamp(&mut b, 1);
        assert_eq!(&b[..9], &[1, 0, 0, 0, 0, 0, 0, 0, b'i']);
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn an_echo_chunk_completes_every_request_it_ends() {
        let t = Instant::now();
        let mut io = TcpIo::new(4);
        for _ in 0..3 {
            io.begin(t, t);
        }
        io.note_written(3 * 10);
        let mut send: Vec<u8> = (0..10).map(|i| b'a' + i).collect();
        let mut echo = Vec::new();
        for seq in 1..=3u64 {
            stamp(&mut send, seq);
            echo.extend_from_slice(&send);
        }
        let mut done = Completions::default();
        // Two and a half echoes, then the rest: two complete, then the third.
        check_echoes(&mut io, &echo[..25], &mut send, LONG, &mut done).unwrap();
        assert_eq!(done.reqs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        check_echoes(&mut io, &echo[25..], &mut send, LONG, &mut done).unwrap();
        assert_eq!(done.reqs.len(), 3);
        assert!(io.reqs.is_empty() && io.out == 0 && io.got == 0);
        // An echo of the wrong request is a mismatch.
        io.begin(t, t);
        io.note_written(10);
        assert_eq!(
            check_echoes(&mut io, &echo[..10], &mut send, LONG, &mut done),
            Err(Failure::Mismatch)
        );
    }

    #[test]
    fn an_echo_after_the_timeout_is_a_timeout_and_stays_in_flight() {
        let sent = Instant::now() - Duration::from_millis(2);
        let mut io = TcpIo::new(1);
        io.begin(sent, sent);
        io.note_written(10);
        let mut send: Vec<u8> = (0..10).map(|i| b'a' + i).collect();
        stamp(&mut send, 1);
        let echo = send.clone();
        let mut done = Completions::default();
        let r = check_echoes(
            &mut io,
            &echo,
            &mut send,
            Duration::from_millis(1),
            &mut done,
        );
        assert_eq!(r, Err(Failure::Timeout));
        assert!(done.reqs.is_empty() && done.at.is_none());
        assert_eq!(
            io.reqs.len(),
            1,
            "failed with the connection, counted once there"
        );
    }
}
