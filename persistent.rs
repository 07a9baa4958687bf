//! Persistent mode: long-lived TCP connections, each with up to `--depth` requests in flight,
//! paced per connection (`--rate` per connection, phases spread over the connections) or in a
//! closed loop (`--rate 0`). A connection that fails is redialled with backoff; the slots that
//! fall due while it is down fail with what brought it down.
//!
//! Leaves to others: connection I/O (`tcp_conn`), recording and windows (`client`).

use crate::client::{sooner, Client, Missed, MAX_BACKOFF, MIN_BACKOFF};
use crate::driver::{CloseMode, Mode, Traffic};
use crate::pacing::Pacer;
use crate::reactor::Slab;
use crate::report::{Failure, Unsent};
use crate::tcp_conn::{self, Completions, DialOptions, Dialer, Readiness, TcpIo};
use crate::Result;
use mio::event::Event;
use mio::{Interest, Token};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// Most connections one worker dials in one turn of the loop (see `run_timers`).
const CONNECT_BURST: usize = 128;
/// Most timers one worker runs in one turn of the loop.
const TIMER_BURST: usize = 1024;

/// Where a persistent connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-blocking connect in progress.
    Connecting { started: Instant },
    /// Connected; its requests are in `Conn::io`.
    Open,
    /// Waiting to (re)dial: at the start, or after a failure.
    Down,
}

struct Conn {
    io: TcpIo,
    target: u32,
    state: State,
    /// Up or failed at least once: its part of the ramp is done.
    ramped: bool,
    /// This connection's schedule; `None` in a closed loop.
    pacer: Option<Pacer>,
    /// The instant of this connection's live timer in `Persistent::timers`; other entries for
    /// it are stale.
    armed: Option<Instant>,
    /// The next redial delay.
    backoff: Duration,
    /// Why the connection last went down: slots that fall due before it is back fail with it.
    last_error: Option<Failure>,
}

/// A worker's share of the persistent connections.
pub(crate) struct Persistent {
    conns: Slab<Conn>,
    /// Paced sends and redials, by instant.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections whose (re)dial time has come, dialled `CONNECT_BURST` a turn in order. A
    /// queue apart from `timers`, so that a long ramp (and connects made slow by the kernel's
    /// port search near a full port range) never holds up the sends of connections already up.
    dial_queue: VecDeque<Token>,
    dialer: Dialer,
    depth: usize,
    /// Connections whose ramp is not done yet.
    ramping: usize,
    /// Requests sent (or queued to send) and not yet answered or failed, on all connections.
    in_flight: usize,
    done: Completions,
}

impl Traffic for Persistent {
    fn new(core: &mut Client) -> Result<Persistent> {
        let Mode::Persistent { connections, depth } = core.cfg.mode else {
            unreachable!("persistent traffic for a persistent run only")
        };
        let now = Instant::now();
        let mut p = Persistent {
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            dial_queue: VecDeque::new(),
            // Requests are small and a reply gates the next: no Nagle delay. Connections live
            // for the run and close with FIN.
            dialer: Dialer::new(
                &core.cfg,
                core.id,
                core.workers,
                DialOptions {
                    nodelay: true,
                    close: CloseMode::Fin,
                },
            ),
            depth,
            ramping: 0,
            in_flight: 0,
            done: Completions::default(),
        };
        // The ramp: every connection is dialled now, `CONNECT_BURST` a turn.
        for target in 0..core.cfg.targets.len() {
            for _ in (core.id..connections).step_by(core.workers) {
                let token = p.conns.insert(Conn {
                    io: TcpIo::new(depth),
                    target: target as u32,
                    state: State::Down,
                    ramped: false,
                    pacer: None,
                    armed: Some(now),
                    backoff: MIN_BACKOFF,
                    last_error: None,
                });
                p.timers.push(Reverse((now, token.0)));
                p.ramping += 1;
            }
        }
        Ok(p)
    }

    fn ramped(&self) -> bool {
        self.ramping == 0
    }

    fn begin(&mut self, core: &mut Client) {
        let Mode::Persistent { connections, .. } = core.cfg.mode else {
            return;
        };
        let clock = core.clock;
        // This worker's connections are c = id, id + workers, ... of each target, in the
        // order they were made.
        let mut index = vec![core.id; core.cfg.targets.len()];
        for (token, c) in self.conns.iter_mut() {
            let i = &mut index[c.target as usize];
            let n = *i;
            *i += core.workers;
            // Every connection's schedule is anchored at the start, so the run schedules
            // exactly connections x rate x duration requests.
            c.pacer = (!core.cfg.closed_loop()).then(|| {
                Pacer::phased(core.cfg.rate, clock.t0, n, connections)
                    .with_end(clock.end)
                    .with_arrival(
                        core.cfg.arrival,
                        (c.target as usize * connections + n) as u64,
                    )
            });
            if c.state == State::Open {
                c.armed = Some(clock.t0);
                self.timers.push(Reverse((clock.t0, token.0)));
            }
        }
    }

    fn on_event(&mut self, core: &mut Client, ev: &Event, now: Instant) {
        let token = ev.token();
        let Some(c) = self.conns.get(token) else {
            return;
        };
        match c.state {
            State::Connecting { .. } => match tcp_conn::connect_outcome(ev, c.io.stream.as_ref()) {
                Some(Ok(())) => self.on_connected(core, token, now),
                Some(Err(kind)) => self.fail(core, token, kind, now),
                None => {}
            },
            State::Open => self.pump(core, token, now, Readiness::of(ev)),
            State::Down => {}
        }
    }

    fn on_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        self.run_timers(core, now);
        self.dial_due(core, now);
        let next = self.timers.peek().map(|Reverse((at, _))| *at);
        if !self.dial_queue.is_empty() && core.running(now) {
            return sooner(next, Some(now));
        }
        next
    }

    fn sweep(&mut self, core: &mut Client, now: Instant) {
        let expired = tcp_conn::timed_out(&self.conns, now, core.cfg.timeout, |c| {
            match (c.state, c.io.reqs.front()) {
                (State::Connecting { started }, _) => Some(started),
                (State::Open, Some(r)) => Some(r.sent_at),
                _ => None,
            }
        });
        for token in expired {
            self.fail(core, token, Failure::Timeout, now);
        }
    }

    fn book_unsent(&mut self, core: &mut Client, end: Instant) {
        // A connection's remaining slots: those due while it was down fail with what brought
        // it down. One up and waiting for a reply keeps its due slots: each reply in the drain
        // lets the next go (late, measured by its intended time, so the target's delay shows);
        // what is left at the exit did not start (`on_exit`).
        for (_, c) in self.conns.iter_mut() {
            let Some(p) = &mut c.pacer else { continue };
            let missed = match c.state {
                State::Open if !c.io.reqs.is_empty() => continue,
                State::Open => Missed::NotStarted(Unsent::RunEnded),
                _ => Missed::down(c.last_error),
            };
            core.book_slots(c.target, p, end, missed);
        }
    }

    fn settle(&mut self, core: &mut Client, now: Instant) {
        // Slots that fall due while a connection is down fail with what brought it down, in
        // the window they were due in (not when it comes back, or at the end).
        if core.stopping {
            return;
        }
        for (_, c) in self.conns.iter_mut() {
            if c.state == State::Open {
                continue;
            }
            if let Some(p) = &mut c.pacer {
                core.book_slots(c.target, p, now, Missed::down(c.last_error));
            }
        }
    }

    fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    fn on_exit(&mut self, core: &mut Client, _now: Instant) {
        // Requests still unanswered when the run ends are counted lost, never dropped; slots
        // due in the measured period that the drain did not reach did not start.
        let end = core.measured_end();
        for token in self.conns.tokens() {
            let Some(mut c) = self.conns.remove(token) else {
                continue;
            };
            for r in &c.io.reqs {
                core.lost(c.target, r.intended);
            }
            if let (Some(p), true) = (&mut c.pacer, core.stopping) {
                let missed = match c.state {
                    State::Open => Missed::NotStarted(Unsent::RunEnded),
                    _ => Missed::down(c.last_error),
                };
                core.book_slots(c.target, p, end, missed);
            }
        }
    }
}

impl Persistent {
    /// Run due timers: redials and paced sends, at most `TIMER_BURST` a turn, so that
    /// thousands of connections coming up at once do not keep the loop from reading the
    /// events of the ones already connected (which would then time out while their replies
    /// wait unread).
    fn run_timers(&mut self, core: &mut Client, now: Instant) {
        let mut budget = TIMER_BURST;
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.timers.pop();
            let token = Token(index);
            let Some(c) = self.conns.get_mut(token) else {
                continue;
            };
            if c.armed != Some(at) {
                continue;
            }
            c.armed = None;
            let state = c.state;
            match state {
                State::Down if core.running(now) => self.dial_queue.push_back(token),
                State::Open if self.fill(core, token, now, true) => {
                    self.pump(core, token, now, Readiness::Write);
                }
                _ => {}
            }
        }
    }

    /// Dial at most `CONNECT_BURST` of the queued connections.
    fn dial_due(&mut self, core: &mut Client, now: Instant) {
        let mut dials = 0;
        while dials < CONNECT_BURST && core.running(now) {
            let Some(token) = self.dial_queue.pop_front() else {
                break;
            };
            if self
                .conns
                .get(token)
                .is_some_and(|c| c.state == State::Down)
            {
                dials += 1;
                self.connect(core, token, now);
            }
        }
    }

    fn connect(&mut self, core: &mut Client, token: Token, now: Instant) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let addr = core.cfg.targets[c.target as usize].addr;
        let registered = self.dialer.dial(addr, false).and_then(|mut stream| {
            core.registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .map(|()| stream)
        });
        match registered {
            Ok(stream) => {
                // The writable event says when the connection is up (on loopback, at the
                // next poll: the handshake finished inside `connect`).
                c.io.stream = Some(stream);
                c.state = State::Connecting { started: now };
            }
            Err(e) => self.fail(core, token, Failure::of(&e), now),
        }
    }

    /// The connection failed (or its peer misbehaved): count it, then redial after a backoff,
    /// under a new token, so events of the old socket cannot reach the new one.
    fn fail(&mut self, core: &mut Client, token: Token, kind: Failure, now: Instant) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        if !c.ramped {
            c.ramped = true;
            self.ramping -= 1;
        }
        // Every request in flight failed with the connection; one that failed with nothing in
        // flight is a connection event, counted apart from requests.
        let reqs = c.io.reset();
        self.in_flight -= reqs.len();
        if reqs.is_empty() {
            core.conn_failed(c.target, kind, now);
        }
        for r in reqs {
            core.count_error(c.target, kind, r.intended);
        }
        c.last_error = Some(kind);
        if core.stopping {
            // Gone for good: its slots still due in the measured period fail with it.
            if let Some(p) = &mut c.pacer {
                core.book_slots(c.target, p, core.measured_end(), Missed::down(Some(kind)));
            }
            return;
        }
        let until = now + c.backoff;
        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
        c.state = State::Down;
        c.armed = Some(until);
        let token = self.conns.insert(c);
        self.timers.push(Reverse((until, token.0)));
    }

    /// The connect of `token` completed at `now`.
    fn on_connected(&mut self, core: &mut Client, token: Token, now: Instant) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let State::Connecting { started } = c.state else {
            return;
        };
        if now.saturating_duration_since(started) >= core.cfg.timeout {
            // Up, but after --timeout: a timeout, however soon the sweep would have seen it.
            self.fail(core, token, Failure::Timeout, now);
            return;
        }
        c.state = State::Open;
        if !c.ramped {
            c.ramped = true;
            self.ramping -= 1;
        }
        core.connected(c.target, started, now, now);
        if let Some(pacer) = c.pacer.as_mut() {
            // Slots that fell due while the connection was down were never sent: they fail
            // with what kept it down. After a stop they are already on the books
            // (`book_unsent`).
            if core.stopping {
                pacer.skip_to(now);
            } else {
                core.book_slots(c.target, pacer, now, Missed::down(c.last_error));
            }
        }
        if self.fill(core, token, now, false) {
            self.pump(core, token, now, Readiness::Write);
        }
    }

    /// Begin every request that is due and fits under `--depth` (closed loop: fill up to the
    /// depth), and arm a timer for the next one. Returns true if any began; the caller then
    /// pumps them out.
    ///
    /// `from_timer`: the connection had room when the slot fell due, so any lateness is the
    /// generator's own (timer or loop lag) and is reported as a late start. A slot that waited
    /// for a reply (a full pipeline) was delayed by the target, not by us.
    fn fill(&mut self, core: &mut Client, token: Token, now: Instant, from_timer: bool) -> bool {
        // Stopped and draining: only slots due in the measured period still go (a reply
        // freed their place); nothing new.
        let draining = core.stopping && core.started();
        if !draining && !core.sending(now) {
            return false;
        }
        let last_due = core.measured_end();
        let Some(c) = self.conns.get_mut(token) else {
            return false;
        };
        if c.state != State::Open {
            return false;
        }
        let mut began = false;
        while c.io.reqs.len() < self.depth {
            let intended = match c.pacer.as_mut() {
                None if draining => break,
                None => now,
                Some(p) => match p.next_due() {
                    None => break,
                    Some(due) if draining && due > last_due => break,
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
            c.io.begin(intended, now);
            self.in_flight += 1;
            began = true;
            if from_timer {
                core.record_start(c.target, intended, now);
            }
        }
        began
    }

    /// Drive a connection: write its requests, read and check their echoes, and begin the
    /// requests that completions make room for, in a loop (never recursion).
    fn pump(&mut self, core: &mut Client, token: Token, now: Instant, ready: Readiness) {
        let mut ready = ready;
        while let Some(done) = self.exchange(core, token, now, ready) {
            if !self.fill(core, token, done, false) {
                break;
            }
            ready = Readiness::Write;
        }
    }

    /// One exchange on the connection (which records what completed). Returns the completion
    /// instant if requests completed and the connection is still up.
    fn exchange(
        &mut self,
        core: &mut Client,
        token: Token,
        now: Instant,
        ready: Readiness,
    ) -> Option<Instant> {
        let c = self.conns.get_mut(token)?;
        let ex = c.io.exchange(core, c.target, ready, &mut self.done);
        self.in_flight -= self.done.len();
        if ex.answered.is_some() {
            // An answer: the connection is healthy again.
            c.backoff = MIN_BACKOFF;
            c.last_error = None;
        }
        if let Err(kind) = ex.outcome {
            self.fail(core, token, kind, now);
            return None;
        }
        ex.answered
    }
}
