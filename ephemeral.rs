//! Ephemeral mode: a new TCP connection per request, paced per target and split over the
//! workers (`--rate` per target), or a closed loop keeping `-c` connections per target in
//! flight (`--rate 0`). Each connection connects, sends one request, reads its echo and closes
//! (RST by default, so no TIME_WAIT is left); its connect time is reported beside the latency.
//!
//! Leaves to others: connection I/O (`tcp_conn`), recording and windows (`client`).

use crate::client::{Client, PerRequest, Starts};
use crate::driver::{Mode, Traffic};
use crate::reactor::Slab;
use crate::report::Failure;
use crate::tcp_conn::{self, Completions, DialOptions, Dialer, Readiness, TcpIo, PORT_WINDOW};
use crate::Result;
use mio::event::Event;
use mio::{Interest, Token};
use std::io;
use std::time::Instant;

/// Requests up to this size fit a fresh socket's send buffer (tcp_wmem's default is 16 KiB)
/// and go out in one write.
const ONE_WRITE_BYTES: usize = 8 * 1024;

/// Where an ephemeral connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-blocking connect in progress, for the request intended at `intended`.
    Connecting { started: Instant, intended: Instant },
    /// Connected; its request is in `Conn::io`.
    Open,
}

struct Conn {
    io: TcpIo,
    target: u32,
    state: State,
}

/// A worker's share of the ephemeral connections.
pub(crate) struct Ephemeral {
    conns: Slab<Conn>,
    /// Connections open or connecting.
    inflight: usize,
    /// What starts when: the schedules, or the closed loop.
    starts: Starts,
    dialer: Dialer,
    done: Completions,
}

impl Traffic for Ephemeral {
    fn new(core: &mut Client) -> Result<Ephemeral> {
        let Mode::Ephemeral {
            close,
            max_inflight,
            concurrency,
        } = core.cfg.mode
        else {
            unreachable!("ephemeral traffic for an ephemeral run only")
        };
        let (id, workers) = (core.id, core.workers);
        Ok(Ephemeral {
            conns: Slab::new(),
            inflight: 0,
            starts: Starts::new(core, max_inflight, concurrency),
            // A request goes out in one write: Linux's Nagle (Minshall's variant) holds back
            // a small segment only while an earlier small one is unacknowledged, so its tail
            // is never held and TCP_NODELAY would be a wasted syscall. Only a request bigger
            // than a fresh socket's send buffer takes several writes.
            dialer: Dialer::new(
                &core.cfg,
                id,
                workers,
                DialOptions {
                    nodelay: core.cfg.message_bytes > ONE_WRITE_BYTES,
                    close,
                },
            ),
            done: Completions::default(),
        })
    }

    fn begin(&mut self, core: &mut Client) {
        self.starts.begin(core);
    }

    fn on_event(&mut self, core: &mut Client, ev: &Event, now: Instant) {
        let token = ev.token();
        let Some(c) = self.conns.get(token) else {
            return;
        };
        match c.state {
            State::Connecting { .. } => match tcp_conn::connect_outcome(ev, c.io.stream.as_ref()) {
                Some(Ok(())) => self.on_connected(core, token, now, 0),
                Some(Err(kind)) => self.fail(core, token, kind, now),
                None => {}
            },
            State::Open => self.pump(core, token, now, Readiness::of(ev)),
        }
    }

    fn on_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        self.start_due(core, now)
    }

    fn sweep(&mut self, core: &mut Client, now: Instant) {
        let expired = tcp_conn::timed_out(&self.conns, now, core.cfg.timeout, |c| {
            match (c.state, c.io.reqs.front()) {
                (State::Connecting { started, .. }, _) => Some(started),
                (State::Open, Some(r)) => Some(r.sent_at),
                _ => None,
            }
        });
        for token in expired {
            self.fail(core, token, Failure::Timeout, now);
        }
    }

    fn book_unsent(&mut self, core: &mut Client, end: Instant) {
        self.starts.book_unsent(core, end, self.inflight);
    }

    fn in_flight(&self) -> bool {
        // Each connection carries one request (a connecting one too) until it is answered or
        // fails, and is removed then.
        self.inflight > 0
    }

    fn on_exit(&mut self, core: &mut Client, _now: Instant) {
        // Requests still unanswered when the run ends, connecting ones included, are counted
        // lost, never dropped.
        for token in self.conns.tokens() {
            let Some(c) = self.conns.remove(token) else {
                continue;
            };
            for r in &c.io.reqs {
                core.lost(c.target, r.intended);
            }
            if let State::Connecting { intended, .. } = c.state {
                core.lost(c.target, intended);
            }
        }
    }
}

impl PerRequest for Ephemeral {
    fn starts(&mut self) -> &mut Starts {
        &mut self.starts
    }

    fn in_flight_count(&self) -> usize {
        self.inflight
    }

    /// Start a request for `target` intended at `intended`: connect, and on local paths send it
    /// at once.
    fn start(&mut self, core: &mut Client, target: u32, intended: Instant, now: Instant) {
        let addr = core.cfg.targets[target as usize].addr;
        let few = self.dialer.closes_with_rst() && self.conns.len() < PORT_WINDOW as usize / 2;
        let mut stream = match self.dialer.dial(addr, few) {
            Ok(stream) => stream,
            Err(e) => {
                core.count_error(target, Failure::of(&e), intended);
                self.starts.failed(core, now);
                return;
            }
        };
        let token = self.conns.insert(Conn {
            io: TcpIo::new(1),
            target,
            state: State::Connecting {
                started: now,
                intended,
            },
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = core.registry.register(&mut stream, token, interest) {
            self.conns.remove(token);
            core.count_error(target, Failure::of(&e), intended);
            return;
        }
        let c = self.conns.get_mut(token).expect("just inserted");
        c.io.stream = Some(stream);
        self.inflight += 1;
        core.record_start(target, intended, now);
        // On loopback and other local paths the handshake finishes inside `connect` (which
        // says EINPROGRESS all the same): send the request now. A connection still on its way
        // refuses the write with EAGAIN and its writable event says when; a refused one fails
        // it with the reason. No syscall only to ask. The connect time ends before the write,
        // which on loopback also runs the server's receive path.
        let up = Instant::now();
        match c.io.write_first(&mut core.send_buf) {
            Ok(sent) => self.on_connected(core, token, up, sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => self.fail(core, token, Failure::of(&e), now),
        }
    }
}

impl Ephemeral {
    /// The connect of `token` completed at `now`; `sent` bytes of its request already went out
    /// with the first write.
    fn on_connected(&mut self, core: &mut Client, token: Token, now: Instant, sent: usize) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let State::Connecting { started, intended } = c.state else {
            return;
        };
        if now.saturating_duration_since(started) >= core.cfg.timeout {
            // Up, but after --timeout: a timeout, however soon the sweep would have seen it.
            self.fail(core, token, Failure::Timeout, now);
            return;
        }
        c.state = State::Open;
        core.connected(c.target, started, intended, now);
        c.io.begin(intended, started);
        c.io.note_written(sent);
        if c.io.unwritten(core.cfg.message_bytes) {
            self.pump(core, token, now, Readiness::Write);
        }
    }

    /// Write the request and read its echo; a completed request ends the connection.
    fn pump(&mut self, core: &mut Client, token: Token, now: Instant, ready: Readiness) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let ex = c.io.exchange(core, c.target, ready, &mut self.done);
        match (ex.outcome, ex.answered) {
            (Err(kind), _) => self.fail(core, token, kind, now),
            (Ok(()), Some(at)) => self.finish(core, token, at),
            (Ok(()), None) => {}
        }
    }

    /// The request of `token` was answered at `now`: close the connection and start what the
    /// freed place allows.
    fn finish(&mut self, core: &mut Client, token: Token, now: Instant) {
        // Dropped here: closing takes the socket out of the epoll set.
        if self.conns.remove(token).is_none() {
            return;
        }
        self.inflight -= 1;
        self.refill(core, now, true);
    }

    /// The connection failed: its request failed with it.
    fn fail(&mut self, core: &mut Client, token: Token, kind: Failure, now: Instant) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        if let State::Connecting { intended, .. } = c.state {
            core.count_error(c.target, kind, intended);
        }
        for r in c.io.reset() {
            core.count_error(c.target, kind, r.intended);
        }
        self.inflight -= 1;
        self.starts.failed(core, now);
    }
}
