//! The part of a `connect` worker that every mode shares: its configuration and clock, the
//! per-target `Stats`, the message buffers, recording and counting by intended time, interval
//! flushing to the reporter, and the start and end of the measured period.
//!
//! Leaves to others: sockets and connection state (`persistent`, `ephemeral`, `udp_client`,
//! `udp_ephemeral`, `tcp_conn`, `udp_wire`), the loop (`reactor`), printing (`report`).

use crate::driver::{Clock, ConnectConfig};
use crate::pacing::Pacer;
use crate::report::{thread_cpu, Failure, Interval, Ramp, Stats, Unsent};
use crate::{Error, Result};
use crossbeam_channel::{Sender, TrySendError};
use mio::Registry;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Receive buffer per worker: echoes are read and checked in chunks of this size.
const RECV_BUF_LEN: usize = 64 * 1024;
/// First retry delay after a failure (a redial, or a closed loop's pause); doubles up to
/// `MAX_BACKOFF`.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(10);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a stopping worker waits at most for replies in flight.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// How long a window stays open after its end at most, for its requests to settle. It is
/// `--timeout` plus a sweep period, so that every request due in it is answered, failed or
/// lost by then, but no more than one interval (rows come at most one interval late) nor
/// this. A request settled later still is booked in the oldest window still open.
const MAX_GRACE: Duration = Duration::from_secs(10);
/// Most sends (UDP datagrams, ephemeral connects) one target starts in one turn of the loop.
/// A generator behind schedule catches up in bursts of this size and reads replies between
/// them; one unbounded burst would overflow its own receive buffer and lose the replies.
pub(crate) const SEND_BURST: usize = 64;

/// The shared core of one `connect` worker.
pub(crate) struct Client {
    pub id: usize,
    pub workers: usize,
    pub registry: Registry,
    pub cfg: Arc<ConnectConfig>,
    pub clock: Clock,
    /// The report windows still open, oldest first: each holds, per target, the requests
    /// that were due in it, and stays open until they are all settled (`--timeout` after its
    /// end), so a window's row adds up to what was scheduled in it.
    windows: VecDeque<Window>,
    /// The request payload, `--message-bytes` long; modes stamp their header into it.
    pub send_buf: Vec<u8>,
    pub recv_buf: Box<[u8]>,
    /// Set by `stop`: no request starts any more.
    pub stopping: bool,
    /// The run's start, shared with the other workers and `Run`.
    gate: Arc<Gate>,
    /// The clock is set: the schedule runs. Before, the worker ramps up (dials).
    started: bool,
    /// What the ramp measured, per target: connect times and failed connection attempts.
    ramp: Vec<Stats>,
    /// This worker told the gate that its ramp is done.
    ramp_done: bool,
    tx: Sender<Interval>,
    /// How long a window stays open after its end.
    grace: Duration,
    cpu_mark: Duration,
    /// True until the first turn of the loop after the warm-up.
    warming: bool,
    /// A window the reporter's full channel refused, folded into the next.
    folded: Option<Interval>,
    next_sweep: Instant,
    stopped_at: Option<Instant>,
}

impl Client {
    /// The core of worker `id` of `workers`, ramping up until `gate` gives the clock.
    pub fn new(
        id: usize,
        workers: usize,
        registry: &Registry,
        cfg: Arc<ConnectConfig>,
        gate: Arc<Gate>,
        tx: Sender<Interval>,
    ) -> Result<Client> {
        let now = Instant::now();
        let clock = Clock::pending(now);
        Ok(Client {
            id,
            workers,
            registry: registry.try_clone().map_err(Error::Poll)?,
            clock,
            windows: VecDeque::new(),
            send_buf: pattern(cfg.message_bytes),
            recv_buf: vec![0u8; RECV_BUF_LEN.max(cfg.message_bytes.min(1 << 20))]
                .into_boxed_slice(),
            stopping: false,
            gate,
            started: false,
            ramp: (0..cfg.targets.len()).map(|_| Stats::new()).collect(),
            ramp_done: false,
            tx,
            grace: (cfg.timeout + sweep_period(cfg.timeout))
                .min(cfg.interval)
                .min(MAX_GRACE),
            cpu_mark: Duration::ZERO,
            warming: true,
            folded: None,
            next_sweep: now + sweep_period(cfg.timeout),
            stopped_at: None,
            cfg,
        })
    }

    /// Requests may still start: not stopped, and the schedule has not ended. (Connections
    /// may be dialled during the ramp too; requests start only once `started`.)
    pub fn running(&self, now: Instant) -> bool {
        !self.stopping && now < self.clock.end
    }

    /// The clock is set; before, the worker only ramps up.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Requests may start: the schedule has begun (`t0`) and the run is not stopped. A paced
    /// slot due before the end is sent however late the worker comes to it (a pacer has no slot
    /// at or after the end); a closed loop starts nothing once the end has come.
    pub fn sending(&self, now: Instant) -> bool {
        self.started
            && now >= self.clock.t0
            && !self.stopping
            && (now < self.clock.end || !self.cfg.closed_loop())
    }

    /// When requests may start, if that is still ahead: the start of a schedule already set.
    pub fn start_ahead(&self, now: Instant) -> Option<Instant> {
        (self.started && now < self.clock.t0).then_some(self.clock.t0)
    }

    /// Once `ramped` (every connection of this worker up or failed once), tell the gate, with
    /// what the ramp measured; once the gate has the clock, take it. True when the schedule
    /// starts with this call.
    pub fn try_start(&mut self, ramped: bool) -> bool {
        if self.started || self.stopping {
            return false;
        }
        if ramped && !self.ramp_done {
            self.ramp_done = true;
            self.gate.ready(&self.ramp);
        }
        let Some(clock) = self.gate.clock() else {
            return false;
        };
        self.clock = clock;
        self.started = true;
        self.windows.push_back(Window::new(
            0,
            clock.measure,
            (clock.measure + self.cfg.interval).min(clock.end),
            self.cfg.targets.len(),
        ));
        true
    }

    /// This worker's share of `target`'s schedule, for the modes paced per target (ephemeral,
    /// UDP): the rate split over the workers. `None` in a closed loop or before the start.
    pub fn split_pacer(&self, target: usize) -> Option<Pacer> {
        if self.cfg.closed_loop() || !self.started {
            return None;
        }
        let (id, workers, clock) = (self.id, self.workers, self.clock);
        Some(
            Pacer::split(self.cfg.rate, clock.t0, id, workers)
                .with_end(clock.end)
                .with_arrival(self.cfg.arrival, (target * workers + id) as u64),
        )
    }

    /// The worker ends: if it never said its ramp was done, say so now (with what it has),
    /// so that a worker that failed or panicked does not hold up the others' start.
    pub fn leave(&mut self) {
        if !self.ramp_done {
            self.ramp_done = true;
            self.gate.ready(&self.ramp);
        }
    }

    /// A connection to `target` begun at `since` came up at `now`: its connect time, in the
    /// ramp's books before the start, else in the window's.
    /// `book_at`: the instant whose window it belongs to (the request's intended time for a
    /// connection made for one request, else `now`).
    pub fn connected(&mut self, target: u32, since: Instant, book_at: Instant, now: Instant) {
        let ns = now.saturating_duration_since(since).as_nanos() as u64;
        if !self.started {
            self.ramp[target as usize].record_connect(ns);
        } else if let Some(s) = self.stats_at(target, book_at) {
            s.record_connect(ns);
        }
    }

    /// A connection to `target` failed at `now` with nothing in flight: a connection event, in
    /// the ramp's books before the start, else in the window's.
    pub fn conn_failed(&mut self, target: u32, kind: Failure, now: Instant) {
        if !self.started {
            self.ramp[target as usize].conn_error(kind);
        } else if let Some(s) = self.stats_at(target, now) {
            s.conn_error(kind);
        }
    }

    /// The books of `target` in the window that holds `at`: `None` before the measured period
    /// (ramp, warm-up). An instant before the oldest open window (a request settled later
    /// than its window stayed open) goes to the oldest; one after the newest, to the newest.
    pub fn stats_at(&mut self, target: u32, at: Instant) -> Option<&mut Stats> {
        let i = self.window_of(at)?;
        Some(&mut self.windows[i].stats[target as usize])
    }

    /// The index of the open window that holds `at` (see `stats_at`).
    fn window_of(&self, at: Instant) -> Option<usize> {
        let newest = self.windows.len().checked_sub(1)?;
        // Almost every event belongs to the newest window: one comparison.
        if at >= self.windows[newest].start {
            return Some(newest);
        }
        if !self.measured(at) {
            return None;
        }
        let i = self.windows.iter().rposition(|w| at >= w.start);
        Some(i.unwrap_or(0))
    }

    /// Apply `f` to the books of `target` in the window that holds `at` (measured time only).
    pub fn note(&mut self, target: u32, at: Instant, f: impl FnOnce(&mut Stats)) {
        if let Some(s) = self.stats_at(target, at) {
            f(s);
        }
    }

    /// A request of `target` intended at `intended` was never answered: lost.
    pub fn lost(&mut self, target: u32, intended: Instant) {
        if let Some(s) = self.stats_at(target, intended) {
            s.lost += 1;
        }
    }

    /// Take every slot of `pacer` due by `upto` without sending it, and book each in the
    /// window it was due in, as `missed` says.
    pub fn book_slots(&mut self, target: u32, pacer: &mut Pacer, upto: Instant, missed: Missed) {
        while let Some(due) = pacer.next_due().filter(|d| *d <= upto) {
            let Some(i) = self.window_of(due) else {
                // Before the measured period: not on the books.
                let before = self.clock.measure.min(upto + Duration::from_nanos(1));
                if pacer.skip_to(before - Duration::from_nanos(1)) == 0 {
                    break;
                }
                continue;
            };
            // Every slot due before the next window starts (or by `upto`) is this window's.
            let limit = match self.windows.get(i + 1) {
                Some(next) => (next.start - Duration::from_nanos(1)).min(upto),
                None => upto,
            };
            let limit = limit.max(due);
            let n = pacer.skip_to(limit);
            let s = &mut self.windows[i].stats[target as usize];
            match missed {
                Missed::Failed(k) => s.errors[k as usize] += n,
                Missed::NotStarted(cause) => s.unsent(cause, n),
            }
        }
    }

    /// Whether an event at `at` belongs to the measured period (after the warm-up).
    pub fn measured(&self, at: Instant) -> bool {
        at >= self.clock.measure
    }

    /// Record a completion at `now`. Whether a request is measured is decided by its intended
    /// time, the same rule for every outcome, so nothing from the warm-up leaks into the results.
    pub fn record(&mut self, target: u32, intended: Instant, sent_at: Instant, now: Instant) {
        let bytes = self.cfg.message_bytes as u64;
        if let Some(s) = self.stats_at(target, intended) {
            let latency = now.saturating_duration_since(intended).as_nanos() as u64;
            let service = now.saturating_duration_since(sent_at).as_nanos() as u64;
            s.record(latency, service, bytes);
        }
    }

    /// Count a failed request intended at `intended` (measured ones only).
    pub fn count_error(&mut self, target: u32, kind: Failure, intended: Instant) {
        if let Some(s) = self.stats_at(target, intended) {
            s.error(kind);
        }
    }

    /// A socket of `target` sent a request intended at `intended`: a flow used in that window,
    /// counted once per window (`last`: the window the socket was last counted in, which it
    /// keeps) and once in the run (in its first measured window).
    pub fn note_flow(&mut self, target: u32, intended: Instant, last: &mut Option<u64>) {
        let Some(i) = self.window_of(intended) else {
            return;
        };
        let w = &mut self.windows[i];
        if *last == Some(w.seq) {
            return;
        }
        let s = &mut w.stats[target as usize];
        s.flows += 1;
        if last.is_none() {
            s.new_flows += 1;
        }
        *last = Some(w.seq);
    }

    /// A request intended at `intended` went out at `now`: how far behind schedule.
    pub fn record_start(&mut self, target: u32, intended: Instant, now: Instant) {
        if let Some(s) = self.stats_at(target, intended) {
            s.record_start(now.saturating_duration_since(intended).as_nanos() as u64);
        }
    }

    /// Start of a loop turn: once the warm-up is over, its CPU time is not the measured
    /// period's.
    pub fn begin_turn(&mut self, now: Instant) {
        if self.warming && self.measured(now) {
            self.warming = false;
            self.cpu_mark = thread_cpu();
        }
    }

    /// True (once per sweep period) when timeouts are to be checked.
    pub fn sweep_due(&mut self, now: Instant) -> bool {
        if now < self.next_sweep {
            return false;
        }
        self.next_sweep = now + sweep_period(self.cfg.timeout);
        true
    }

    /// Close the windows whose end has passed (their CPU time is taken now) and open the next.
    /// Returns the end of the last window closed, if any: the slots due by then that a mode
    /// could not send are then booked in their windows (`Traffic::settle`).
    pub fn roll(&mut self, now: Instant) -> Option<Instant> {
        let measured_end = self.measured_end();
        let targets = self.cfg.targets.len();
        let mut closed = None;
        while let Some(back) = self.windows.back_mut() {
            if back.cpu.is_some() || now < back.end {
                break;
            }
            let cpu = thread_cpu();
            back.cpu = Some(cpu.saturating_sub(self.cpu_mark));
            self.cpu_mark = cpu;
            closed = Some(back.end);
            if back.end >= measured_end {
                break;
            }
            let (seq, start) = (back.seq + 1, back.end);
            let end = (start + self.cfg.interval).min(measured_end);
            self.windows
                .push_back(Window::new(seq, start, end, targets));
        }
        closed
    }

    /// Send the closed windows whose requests have all settled. Returns the core's next
    /// deadline: the next sweep, window end or window send.
    pub fn end_turn(&mut self, now: Instant) -> Instant {
        while let Some(front) = self.windows.front() {
            // A stopped worker holds every window until it exits (`finish`): requests still
            // in flight are booked lost at the exit, and slots sent in the drain or left
            // unsent are booked then, all in the windows they were due in.
            if self.stopping || front.cpu.is_none() || now < front.end + self.grace {
                break;
            }
            let w = self.windows.pop_front().expect("looked at above");
            self.send(w);
        }
        let mut next = self.next_sweep;
        if let Some(back) = self.windows.back().filter(|w| w.cpu.is_none()) {
            next = next.min(back.end);
        }
        if let Some(front) = self.windows.front().filter(|w| w.cpu.is_some()) {
            next = next.min(front.end + self.grace);
        }
        next
    }

    /// Stop starting requests. Returns the end of the measured period (the stop, or the
    /// scheduled end if that came first).
    pub fn stop(&mut self, now: Instant) -> Instant {
        self.stopping = true;
        let end = now.min(self.clock.end);
        self.stopped_at = Some(end);
        // The open window ends with the stop; one not begun yet (a stop in the warm-up) has no
        // measured time.
        if let Some(back) = self.windows.back_mut() {
            if back.start >= end {
                self.windows.pop_back();
            } else {
                back.end = back.end.min(end);
            }
        }
        end
    }

    /// How long a stopping worker waits for replies in flight.
    pub fn drain_deadline(&self, now: Instant) -> Instant {
        now + self.cfg.timeout.min(MAX_DRAIN)
    }

    /// Every window still held, and any folded one, to the reporter.
    pub fn finish(&mut self, now: Instant) {
        self.roll(now.max(self.measured_end()));
        while let Some(w) = self.windows.pop_front() {
            self.send(w);
        }
        if let Some(iv) = self.folded.take() {
            let _ = self.tx.send_timeout(iv, Duration::from_secs(1));
        }
    }

    /// The end of the measured time: the scheduled end, or the stop if that came first. The
    /// drain after a stop is not measured time (replies that arrive in it still count).
    pub fn measured_end(&self) -> Instant {
        self.stopped_at.unwrap_or(self.clock.end)
    }

    /// Hand a window to the reporter; on a full channel, fold it into the next (the worker
    /// never blocks).
    fn send(&mut self, w: Window) {
        let iv = Interval {
            worker: self.id,
            seq: w.seq,
            window: w.end.saturating_duration_since(w.start),
            stats: w.stats,
            cpu: w.cpu.unwrap_or_default(),
            late_reports: 0,
        };
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
}

/// One report window of one worker: `[start, end)` of the measured period.
struct Window {
    seq: u64,
    start: Instant,
    end: Instant,
    /// Per target: the requests due in this window, and the events that happened in it.
    stats: Vec<Stats>,
    /// The worker's CPU time in the window, set when the window closes.
    cpu: Option<Duration>,
}

impl Window {
    fn new(seq: u64, start: Instant, end: Instant, targets: usize) -> Window {
        Window {
            seq,
            start,
            end,
            stats: (0..targets).map(|_| Stats::new()).collect(),
            cpu: None,
        }
    }
}

/// How far ahead of the moment the last worker is ready the schedule starts, so that every
/// worker has taken the clock before its first slot is due.
const START_LEAD: Duration = Duration::from_millis(2);

/// The start of a run, shared by its workers and `Run`. Each worker says when its ramp is done
/// (its connections are up or have failed once), with what the ramp measured; once all have,
/// `Run` sets one clock for all of them, so the measured schedule starts when the generator
/// is ready and the ramp is never charged to the target.
pub(crate) struct Gate {
    state: Mutex<GateState>,
    ready_cv: Condvar,
}

struct GateState {
    ready: usize,
    ramp: Vec<Stats>,
    clock: Option<Clock>,
    /// When the workers were started: the ramp's start.
    spawned: Instant,
}

impl Gate {
    /// The gate of a run with `targets` targets.
    pub fn new(targets: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                ready: 0,
                ramp: (0..targets).map(|_| Stats::new()).collect(),
                clock: None,
                spawned: Instant::now(),
            }),
            ready_cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more worker is ready (or gone), with its ramp's books.
    pub fn ready(&self, ramp: &[Stats]) {
        let mut st = self.lock();
        for (a, b) in st.ramp.iter_mut().zip(ramp) {
            a.merge(b);
        }
        st.ready += 1;
        self.ready_cv.notify_all();
    }

    /// Wait until `workers` workers are ready, or `stopped()` says to give up (checked every
    /// 20 ms); true if all are ready.
    pub fn wait_ready(&self, workers: usize, stopped: impl Fn() -> bool) -> bool {
        let mut st = self.lock();
        while st.ready < workers {
            if stopped() {
                return false;
            }
            st = self
                .ready_cv
                .wait_timeout(st, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Start the schedule `START_LEAD` from now; the clock every worker takes.
    pub fn start(&self, cfg: &ConnectConfig) -> Clock {
        let clock = Clock::new(cfg, Instant::now() + START_LEAD);
        self.lock().clock = Some(clock);
        clock
    }

    /// The run's clock, once started.
    pub fn clock(&self) -> Option<Clock> {
        self.lock().clock
    }

    /// The ramp, once the schedule started: how long it took, and its books of every worker
    /// merged per target.
    pub fn ramp(&self) -> Option<Ramp> {
        let st = self.lock();
        let clock = st.clock?;
        Some(Ramp {
            took: clock.t0.saturating_duration_since(st.spawned),
            stats: st.ramp.clone(),
        })
    }
}

/// What became of scheduled slots that were never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// They fell due while the connection was down: they fail with what took it down.
    Failed(Failure),
    /// The generator's own doing.
    NotStarted(Unsent),
}

impl Missed {
    /// Slots of a connection that is down with `last_error` (none yet: the run ended first).
    pub fn down(last_error: Option<Failure>) -> Missed {
        last_error.map_or(Missed::NotStarted(Unsent::RunEnded), Missed::Failed)
    }
}

/// `--source-addrs`, taken in turn: each worker starts at its own index, so workers spread
/// over the addresses.
pub(crate) struct Sources {
    addrs: Vec<IpAddr>,
    next: usize,
}

impl Sources {
    /// Worker `id`'s walk through `addrs`.
    pub fn new(addrs: &[IpAddr], id: usize) -> Sources {
        Sources {
            addrs: addrs.to_vec(),
            next: id,
        }
    }

    /// The next source address of `dst`'s family, if any was given.
    pub fn pick(&mut self, dst: SocketAddr) -> Option<IpAddr> {
        let n = self.addrs.len();
        for _ in 0..n {
            let a = self.addrs[self.next % n];
            self.next += 1;
            if a.is_ipv4() == dst.is_ipv4() {
                return Some(a);
            }
        }
        None
    }
}

/// Retry pacing for a closed loop whose target refuses: a refusal is not an answer, so the
/// loop waits 10 ms, doubling to 1 s, and goes back to full speed at the first answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    delay: Duration,
    /// The end of the current wait.
    pub until: Option<Instant>,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            delay: MIN_BACKOFF,
            until: None,
        }
    }

    /// A failure: wait. Failures during a wait (other connections of the same loop) do not
    /// lengthen it.
    pub fn failed(&mut self, now: Instant) {
        if self.waiting(now) {
            return;
        }
        self.until = Some(now + self.delay);
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
    }

    pub fn answered(&mut self) {
        *self = Backoff::new();
    }

    /// True while the loop must wait; the wait ends at `self.until`.
    pub fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

/// How the modes that open a socket per request (ephemeral TCP and ephemeral UDP) decide what
/// to start: one schedule per target (this worker's share of it), or a closed loop keeping
/// this worker's share of `-c` per target in flight, taking the targets in turn and pausing
/// after a failure. Both bound what is in flight by `--max-inflight`.
pub(crate) struct Starts {
    /// One schedule per target, this worker's share; empty in a closed loop.
    pacers: Vec<Pacer>,
    /// Most requests in flight (`--max-inflight`, fitted to the open-file limit).
    max_inflight: usize,
    /// Closed loop: this worker's share of the requests to keep in flight.
    concurrency: usize,
    /// Closed loop: the target of the next request, in turn.
    next_target: usize,
    /// Closed loop: pause after a failure.
    pub backoff: Backoff,
}

impl Starts {
    /// Worker `core.id`'s share of `concurrency` per target, within `max_inflight`.
    pub fn new(core: &Client, max_inflight: usize, concurrency: usize) -> Starts {
        let (id, workers) = (core.id, core.workers);
        let total = concurrency * core.cfg.targets.len();
        Starts {
            pacers: Vec::new(),
            max_inflight,
            concurrency: total / workers + usize::from(id < total % workers),
            next_target: 0,
            backoff: Backoff::new(),
        }
    }

    /// The schedule is set: take this worker's share of each target's.
    pub fn begin(&mut self, core: &Client) {
        self.pacers = (0..core.cfg.targets.len())
            .filter_map(|t| core.split_pacer(t))
            .collect();
    }

    /// A request failed (or could not start): a closed loop pauses before it starts more; a
    /// schedule goes on.
    pub fn failed(&mut self, core: &Client, now: Instant) {
        if core.cfg.closed_loop() {
            self.backoff.failed(now);
        }
    }

    /// Every place is taken: nothing starts until a request settles.
    pub fn full(&self, in_flight: usize) -> bool {
        in_flight >= self.max_inflight
    }

    /// Book the slots still due at `end` as not started: held back by `--max-inflight` if
    /// every place was taken, else simply not reached before the end.
    pub fn book_unsent(&mut self, core: &mut Client, end: Instant, in_flight: usize) {
        let cause = if self.full(in_flight) {
            Unsent::InFlightLimit
        } else {
            Unsent::RunEnded
        };
        for (target, p) in self.pacers.iter_mut().enumerate() {
            core.book_slots(target as u32, p, end, Missed::NotStarted(cause));
        }
    }
}

/// A mode that starts one request per socket, driven by its [`Starts`].
pub(crate) trait PerRequest {
    fn starts(&mut self) -> &mut Starts;
    /// Requests in flight (sockets open or connecting).
    fn in_flight_count(&self) -> usize;
    /// Start a request for `target` intended at `intended`. A failure to start is counted
    /// (and backed off from, in a closed loop) by the mode.
    fn start(&mut self, core: &mut Client, target: u32, intended: Instant, now: Instant);

    /// The reactor's `on_due`: start what the schedule or the closed loop allows now, and
    /// say when to come back.
    fn start_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        if !core.cfg.closed_loop() {
            return self.run_pacers(core, now);
        }
        if self.starts().backoff.waiting(now) {
            return self.starts().backoff.until;
        }
        self.top_up(core, now);
        core.start_ahead(now)
    }

    /// Start every request that is due, within the in-flight limit, in bursts of at most
    /// `SEND_BURST` per target. Returns the next due instant, or `None` when nothing can start
    /// until a request settles.
    fn run_pacers(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        if core.stopping {
            return None;
        }
        let mut next = None;
        for target in 0..self.starts().pacers.len() {
            for _ in 0..SEND_BURST {
                let in_flight = self.in_flight_count();
                if self.starts().full(in_flight) {
                    return None;
                }
                let Some(intended) = self.starts().pacers[target].take(now) else {
                    break;
                };
                self.start(core, target as u32, intended, now);
            }
            next = sooner(next, self.starts().pacers[target].next_due());
        }
        next
    }

    /// Closed loop: start requests, to the targets in turn, until this worker's share is in
    /// flight (or one fails to start).
    fn top_up(&mut self, core: &mut Client, now: Instant) {
        if !core.sending(now) || self.starts().backoff.waiting(now) {
            return;
        }
        let starts = self.starts();
        let want = starts.max_inflight.min(starts.concurrency);
        while self.in_flight_count() < want {
            let starts = self.starts();
            let target = starts.next_target;
            starts.next_target = (target + 1) % core.cfg.targets.len();
            let before = self.in_flight_count();
            self.start(core, target as u32, now, now);
            if self.in_flight_count() == before {
                break;
            }
        }
    }

    /// A request settled (`answered`, or failed) and freed its place: start what that allows.
    fn refill(&mut self, core: &mut Client, now: Instant, answered: bool) {
        if !core.cfg.closed_loop() {
            self.run_pacers(core, now);
            return;
        }
        if answered {
            self.starts().backoff.answered();
        } else {
            self.starts().backoff.failed(now);
        }
        self.top_up(core, now);
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload: the alphabet, repeated.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// How often timeouts are checked: a tenth of the timeout, within 1 to 100 ms.
fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_alternate_within_a_family() {
        let addrs: Vec<IpAddr> = ["10.0.0.1", "::1", "10.0.0.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut s = Sources::new(&addrs, 0);
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(s.pick(v4), Some(addrs[0]));
        assert_eq!(s.pick(v4), Some(addrs[2]));
        assert_eq!(s.pick(v6), Some(addrs[1]));
        assert_eq!(Sources::new(&[], 0).pick(v4), None);
    }

    #[test]
    fn backoff_doubles_and_resets_on_an_answer() {
        let t = Instant::now();
        let mut b = Backoff::new();
        b.failed(t);
        assert!(b.waiting(t) && !b.waiting(t + MIN_BACKOFF));
        b.failed(t + Duration::from_millis(1));
        assert_eq!(
            b.until,
            Some(t + MIN_BACKOFF),
            "a failure during a wait does not lengthen it"
        );
        b.failed(t + MIN_BACKOFF);
        assert_eq!(b.until, Some(t + MIN_BACKOFF * 3));
        b.answered();
        assert!(!b.waiting(t + MIN_BACKOFF));
    }
}
