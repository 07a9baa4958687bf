//! The event loop of one worker thread, shared by the echo server and the load generator.
//!
//! Owns: the `mio::Poll` turn (poll timeout from the nearest deadline, a `timerfd` for deadlines
//! finer than epoll's milliseconds, armed early by the worker's learned wake-up lateness), the
//! stop `Waker`, the generation-checked `Slab` that maps tokens to connections, the `Handler`
//! trait that `echo` and `driver` implement, spawning and pinning the worker threads, and
//! `Shutdown`.
//! Leaves to others: what a connection does (`echo`, `driver`), pacing policy, output.

use crate::affinity::Plan;
use crate::{Error, Result};
use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Token of the worker's stop waker.
pub const WAKER: Token = Token(usize::MAX);
/// Token of the worker's deadline timer.
pub const TIMER: Token = Token(usize::MAX - 1);
/// Tokens from here up (below `TIMER`) are for a handler's fixed sockets: listeners, UDP sockets.
/// Slab tokens stay below 2^63, far under this.
pub const FIXED_BASE: usize = usize::MAX - (1 << 20);

/// Events taken per `poll`: enough to batch 1,000 busy connections in one call, small enough to
/// stay in cache.
const EVENTS_CAPACITY: usize = 1024;
/// A deadline closer than this is waited out by polling without sleeping: arming a timer and
/// sleeping costs more (two syscalls and a wakeup of ~50 µs on a VM) than the wait itself. Not
/// with `--spin-us 0`, and not on a shared core (see `Contention`).
const SPIN_BELOW: Duration = Duration::from_micros(50);
/// Timer slack for worker threads: the default 50 µs would blur paced sends at high rates.
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// The token of a fixed socket number `i` of a handler (listener or UDP socket).
pub fn fixed_token(i: usize) -> Token {
    Token(FIXED_BASE + i)
}

/// What a worker's loop drives. Implemented by `echo::EchoWorker` and `driver::Worker`.
pub trait Handler {
    /// A readiness event for one of the handler's sockets (never `WAKER` or `TIMER`).
    fn on_event(&mut self, event: &Event);
    /// Run whatever is due at `now`; return the next instant something will be due.
    fn on_due(&mut self, now: Instant) -> Option<Instant>;
    /// Shutdown began: stop starting new work. Returns how long to keep serving what is in flight.
    fn on_stop(&mut self, now: Instant) -> Instant;
    /// True when nothing is in flight any more, so the loop may end before the drain deadline.
    fn is_drained(&self) -> bool;
    /// Replies are awaited, so the spin window after an event may catch one. A client with
    /// nothing in flight has nothing to catch before its next deadline: it sleeps at once
    /// (waking early for the deadline) instead of spinning out the window. Asked every turn:
    /// keep it a field read.
    fn awaiting(&self) -> bool {
        true
    }
    /// The loop ended: flush final reports.
    fn on_exit(&mut self, now: Instant);
}

/// Connections indexed by token, with a generation in each token so that an event for a freed
/// slot can never reach the connection that reuses it.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    gen: u32,
    val: Option<T>,
}

/// Generation bits are kept below 31 so every slab token stays under 2^63 (< `FIXED_BASE`).
const GEN_MASK: u32 = (1 << 31) - 1;

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slab<T> {
    /// An empty slab.
    pub fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store `val` and return its token.
    pub fn insert(&mut self, val: T) -> Token {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let e = &mut self.entries[idx as usize];
            e.val = Some(val);
            return encode(idx, e.gen);
        }
        let idx =
            u32::try_from(self.entries.len()).expect("fewer than 2^32 connections per worker");
        self.entries.push(Entry {
            gen: 0,
            val: Some(val),
        });
        encode(idx, 0)
    }

    /// Look up a token; `None` if the slot was freed since the token was issued.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        let (idx, gen) = decode(token);
        match self.entries.get_mut(idx) {
            Some(e) if e.gen == gen => e.val.as_mut(),
            _ => None,
        }
    }

    /// Shared lookup, as `get_mut`.
    pub fn get(&self, token: Token) -> Option<&T> {
        let (idx, gen) = decode(token);
        match self.entries.get(idx) {
            Some(e) if e.gen == gen => e.val.as_ref(),
            _ => None,
        }
    }

    /// Free a token's slot and return its value. The slot's generation moves on, so the old token
    /// (and any event queued with it) no longer matches.
    pub fn remove(&mut self, token: Token) -> Option<T> {
        let (idx, gen) = decode(token);
        let e = self.entries.get_mut(idx)?;
        if e.gen != gen {
            return None;
        }
        let val = e.val.take()?;
        e.gen = (e.gen + 1) & GEN_MASK;
        self.free.push(idx as u32);
        self.len -= 1;
        Some(val)
    }

    /// Tokens of all live entries.
    pub fn tokens(&self) -> Vec<Token> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.val.is_some())
            .map(|(i, e)| encode(i as u32, e.gen))
            .collect()
    }

    /// Iterate over live entries with their tokens.
    pub fn iter(&self) -> impl Iterator<Item = (Token, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.val.as_ref().map(|v| (encode(i as u32, e.gen), v)))
    }

    /// Iterate mutably over live entries with their tokens.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(i, e)| e.val.as_mut().map(|v| (encode(i as u32, e.gen), v)))
    }
}

fn encode(idx: u32, gen: u32) -> Token {
    Token(((gen as usize) << 32) | idx as usize)
}

fn decode(token: Token) -> (usize, u32) {
    (token.0 & 0xffff_ffff, ((token.0 >> 32) as u32) & GEN_MASK)
}

/// Stop signal shared by the ctrl-c handler, the duration timer and tests.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    flag: AtomicBool,
    /// `hurry` ran: end the drain now.
    hurried: AtomicBool,
    wakers: Mutex<Vec<Arc<Waker>>>,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Shutdown {
    /// A shutdown that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every worker to stop, and wake those sleeping in `poll`.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::Release);
        self.wake();
        *self.inner.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.inner.cv.notify_all();
    }

    /// Stop, and end any drain at once: workers exit without waiting for what is in flight
    /// (it is counted lost on exit, as at the drain deadline). For a second signal.
    pub fn hurry(&self) {
        self.inner.hurried.store(true, Ordering::Release);
        self.trigger();
    }

    /// True once `hurry` ran.
    pub fn is_hurried(&self) -> bool {
        self.inner.hurried.load(Ordering::Acquire)
    }

    /// Wake every worker sleeping in `poll`, so that it runs `on_due` (say, because the run's
    /// clock was just set), without asking it to stop.
    pub fn wake(&self) {
        for w in self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            // A failed wake only means the eventfd is full, so a wake is already pending.
            let _ = w.wake();
        }
    }

    /// True once `trigger` ran.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Wait until triggered or `timeout` passes; true if triggered.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.inner.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = self
                .inner
                .cv
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn add_waker(&self, w: Arc<Waker>) {
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(w);
        // A trigger that raced with registration must still reach this worker.
        if self.is_triggered() {
            let _ = self
                .inner
                .wakers
                .lock()
                .map(|v| v.iter().for_each(|w| drop(w.wake())));
        }
    }
}

/// A `timerfd` armed for the nearest deadline, so that deadlines finer than epoll's millisecond
/// timeout are met (see timerfd_create(2)).
struct Timer {
    fd: OwnedFd,
    armed: Option<Instant>,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create has no memory arguments; on success we own the returned fd.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed: None })
    }

    fn arm(&mut self, deadline: Instant, now: Instant) {
        if self.armed == Some(deadline) {
            return;
        }
        let d = deadline
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: spec is a valid itimerspec on our stack; old_value may be null.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc == 0 {
            self.armed = Some(deadline);
        }
    }

    /// The timer went off. Its expiration count is left unread: every expiry wakes the fd's
    /// waiters, so the edge-triggered registration reports the next one all the same, and
    /// the next `arm` resets the count. One syscall fewer per timed wake-up.
    fn fired(&mut self) {
        self.armed = None;
    }
}

/// Options of the loop itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// Never sleep in `poll` (`--spin`): lowest latency, one core at 100 %.
    pub spin: bool,
    /// The most a worker polls without sleeping after an event before it sleeps (`--spin-us`):
    /// a reply that comes back within the window costs no wakeup. The window adapts (see
    /// [`SpinWindow`]), so sparse traffic costs no spinning. Zero: never spin, not even to wait
    /// out a deadline a few microseconds away, and never wake before a deadline ([`WakeMargin`]).
    pub spin_for: Duration,
}

/// An adaptive poll-before-sleep window, after the guest halt-polling of Linux
/// (`cpuidle-haltpoll`): waking a sleeping thread costs tens of microseconds on a VM, more than a
/// short spin. After each event the worker polls without sleeping for `window`. When it slept
/// instead and the next event came within `max`, spinning would have caught it: the window
/// grows. When it slept longer than `max`, spinning was wasted: the window halves, down to none,
/// so a worker whose events come far apart does not spin at all.
#[derive(Debug, Clone, Copy)]
pub struct SpinWindow {
    max: Duration,
    window: Duration,
}

/// The smallest window worth spinning; below it the window is zero.
const SPIN_MIN: Duration = Duration::from_micros(4);

impl SpinWindow {
    /// A window of at most `max` (zero: never spin), starting full.
    pub fn new(max: Duration) -> SpinWindow {
        SpinWindow { max, window: max }
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The worker slept `slept` and was woken by an event.
    pub fn woke_after(&mut self, slept: Duration) {
        if self.max.is_zero() {
            return;
        }
        self.window = if slept <= self.max {
            (self.window * 2).clamp(SPIN_MIN, self.max)
        } else if self.window / 2 < SPIN_MIN {
            Duration::ZERO
        } else {
            self.window / 2
        };
    }
}

/// How early a worker wakes before a deadline: a high percentile of how late its recent timer
/// wake-ups came. A sleeping timer (`timerfd`) fires tens of microseconds after its deadline on
/// a VM (the host has to run the halted vCPU again), and a paced send that late is latency the
/// target never caused. Waking `margin()` early and waiting out the rest without sleeping costs
/// that much spinning per wake-up and meets the deadline like `--spin` does. The overshoot is
/// measured from the instant the timer was armed for, so an early wake does not feed back into
/// what is learned.
#[derive(Debug, Clone)]
pub struct WakeMargin {
    /// The last `WAKE_SAMPLES` overshoots, ns (a ring; `len` of them filled).
    samples: [u32; WAKE_SAMPLES],
    /// How far the deadline was when each of those sleeps began, ns.
    waits: [u32; WAKE_SAMPLES],
    len: usize,
    next: usize,
    /// Samples since the margin was last recomputed.
    fresh: usize,
    margin: Duration,
}

/// Overshoots remembered: a few hundred wake-ups, under a second at the rates where punctuality
/// shows (1,000 sends/s), so the margin follows a change of load within seconds.
const WAKE_SAMPLES: usize = 256;
/// The margin is recomputed every this many samples (and first at this many): a selection over
/// 256 numbers, about a microsecond, once every 32 sleeps.
const WAKE_EVERY: usize = 32;
/// The percentile of overshoot the margin covers: nine wake-ups in ten are on time, while the
/// rare long ones (a preempted vCPU) do not set the spin for all the others.
const WAKE_PERCENTILE: usize = 90;
/// The most a worker wakes early: past this a "timer" is really a descheduled vCPU, and
/// spinning that long per send would cost more than the lateness it saves.
const MARGIN_MAX: Duration = Duration::from_millis(1);
/// The margin is at most this fraction (1/n) of the median wait it shortens, so waking early
/// costs a worker at most about an eighth of a core, however late its wake-ups come.
const MARGIN_SHARE: u32 = 8;

impl Default for WakeMargin {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeMargin {
    /// No samples yet: a margin of zero (sleep to the deadline) until `WAKE_EVERY` wake-ups.
    pub fn new() -> WakeMargin {
        WakeMargin {
            samples: [0; WAKE_SAMPLES],
            waits: [0; WAKE_SAMPLES],
            len: 0,
            next: 0,
            fresh: 0,
            margin: Duration::ZERO,
        }
    }

    /// How long before a deadline to wake.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// A timer armed for some instant woke the worker `overshoot` after it; when the worker
    /// went to sleep, its deadline was `wait` away.
    pub fn record(&mut self, overshoot: Duration, wait: Duration) {
        let ns = |d: Duration| u32::try_from(d.as_nanos()).unwrap_or(u32::MAX);
        self.samples[self.next] = ns(overshoot);
        self.waits[self.next] = ns(wait);
        self.next = (self.next + 1) % WAKE_SAMPLES;
        self.len = (self.len + 1).min(WAKE_SAMPLES);
        self.fresh += 1;
        if self.fresh >= WAKE_EVERY {
            self.fresh = 0;
            let nth = |mut v: [u32; WAKE_SAMPLES], percent: usize| {
                let filled = &mut v[..self.len];
                let at = (filled.len() - 1) * percent / 100;
                Duration::from_nanos(u64::from(*filled.select_nth_unstable(at).1))
            };
            let cap = (nth(self.waits, 50) / MARGIN_SHARE).min(MARGIN_MAX);
            self.margin = nth(self.samples, WAKE_PERCENTILE).min(cap);
        }
    }
}

/// Whether another thread wants this worker's core, from the worker's own run delay: the time
/// it spent runnable but waiting for the CPU (`/proc/thread-self/schedstat`, second field). A
/// worker that spins on a core another thread needs takes that thread's time, and the
/// scheduler hands the core over only at the end of a slice (milliseconds): spinning then adds
/// latency instead of removing it. `sched_yield` cannot tell: under EEVDF it returns at once
/// when the other thread has had more than its share, and that is the thread kept waiting.
/// So while a worker spins it reads its run delay every `PROBE_EVERY`; if it waited for the
/// core more than a quarter of that time (slices given to another thread, not a short
/// wake-up), the core is shared: the worker stops spinning, sleeps
/// until its next event or deadline, and does not spin again for `backoff` (10 ms, doubling up
/// to 1 s while the sharing lasts).
struct Contention {
    /// `/proc/thread-self/schedstat` of the worker thread (None: not readable; never shared).
    file: Option<std::fs::File>,
    /// Run delay (ns) and time at the last probe.
    last: Option<(u64, Instant)>,
    /// No spinning before this.
    until: Instant,
    backoff: Duration,
    /// Run delay (ns) and time at the last late timer wake-up.
    woke: Option<(u64, Instant)>,
    /// No early wake-ups before this (a late timer wake-up found the core shared), and the
    /// next such back-off. Spinning itself is left to `until`, as before early wake-ups.
    early_until: Instant,
    early_backoff: Duration,
}

const PROBE_EVERY: Duration = Duration::from_millis(8);
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Less waiting for the CPU than this between two late timer wake-ups is a wake-up's own
/// scheduling, not a shared core (a few µs on an idle core here).
const WAKE_WAITED_MIN: Duration = Duration::from_micros(20);

impl Contention {
    /// For the calling thread.
    fn new(now: Instant) -> Contention {
        Contention {
            file: std::fs::File::open("/proc/thread-self/schedstat").ok(),
            last: None,
            until: now,
            backoff: BACKOFF_MIN,
            woke: None,
            early_until: now,
            early_backoff: BACKOFF_MIN,
        }
    }

    /// The thread's run delay so far, ns.
    fn run_delay(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.file.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    }

    /// May the worker spin at `now`? Probes the run delay when due.
    fn may_spin(&mut self, now: Instant) -> bool {
        if now < self.until {
            return false;
        }
        match self.last {
            Some((_, at)) if now.saturating_duration_since(at) < PROBE_EVERY => return true,
            _ => {}
        }
        let Some(delay) = self.run_delay() else {
            return true;
        };
        let shared = self.last.map(|(before, at)| {
            let waited = Duration::from_nanos(delay.saturating_sub(before));
            waited * 4 > now.saturating_duration_since(at)
        });
        self.last = Some((delay, now));
        if shared == Some(true) {
            self.until = now + self.backoff;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            self.last = None;
            false
        } else {
            // Only a span measured free of sharing ends the back-off's doubling; the first
            // reading after a sleep or a back-off compares nothing.
            if shared == Some(false) {
                self.backoff = BACKOFF_MIN;
            }
            true
        }
    }

    /// May the worker wake before a deadline at `now`? Not while the core is found shared,
    /// by either judgement.
    fn may_wake_early(&self, now: Instant) -> bool {
        now >= self.until && now >= self.early_until
    }

    /// The timer woke the worker late at `now`: was the core shared since the last such
    /// wake-up? Waking early spins in bursts too short for `may_spin`'s probe, so a late
    /// timer wake-up reads the run delay (one `pread`) and judges the span since the last one
    /// the same way: waiting for the CPU a quarter of it (and more than a wake-up on an idle
    /// core ever waits) means shared, and starts a back-off of early wake-ups (10 ms, doubling
    /// up to 1 s while it lasts). Such a wake-up was late for the other thread, not for the
    /// timer: the wake-up margin must not learn from it.
    fn timer_woke(&mut self, now: Instant) -> bool {
        let Some(delay) = self.run_delay() else {
            return false;
        };
        let shared = self.woke.is_some_and(|(before, at)| {
            let waited = Duration::from_nanos(delay.saturating_sub(before));
            waited >= WAKE_WAITED_MIN && waited * 4 > now.saturating_duration_since(at)
        });
        self.woke = Some((delay, now));
        if now >= self.early_until {
            if shared {
                self.early_until = now + self.early_backoff;
                self.early_backoff = (self.early_backoff * 2).min(BACKOFF_MAX);
            } else {
                self.early_backoff = BACKOFF_MIN;
            }
        }
        shared
    }

    /// The worker sleeps: the next spin starts a fresh probe interval, so that a long sleep
    /// does not dilute the next one.
    fn slept(&mut self) {
        self.last = None;
    }
}

/// Run one worker's loop until shutdown has been triggered and the handler has drained (or
/// shutdown was hurried).
pub fn run<H: Handler>(
    poll: &mut Poll,
    handler: &mut H,
    shutdown: &Shutdown,
    opts: LoopOptions,
) -> io::Result<()> {
    run_with(poll, handler, shutdown, opts, Timer::new()?)
}

/// `run` with its timer made beforehand (`spawn` makes every worker's descriptors before any
/// worker starts, so one that dials thousands of connections cannot leave another without).
fn run_with<H: Handler>(
    poll: &mut Poll,
    handler: &mut H,
    shutdown: &Shutdown,
    opts: LoopOptions,
    mut timer: Timer,
) -> io::Result<()> {
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    poll.registry().register(
        &mut SourceFd(&timer.fd.as_raw_fd()),
        TIMER,
        Interest::READABLE,
    )?;
    let mut drain_until: Option<Instant> = None;
    let mut sleeper = Sleeper::new(opts);
    loop {
        let now = Instant::now();
        if drain_until.is_none() && shutdown.is_triggered() {
            drain_until = Some(handler.on_stop(now));
        }
        let mut next = handler.on_due(now);
        if let Some(d) = drain_until {
            if now >= d || handler.is_drained() || shutdown.is_hurried() {
                break;
            }
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        let plan = sleeper.plan(now, next, events.is_empty(), handler.awaiting(), &mut timer);
        let polled = Instant::now();
        if let Err(e) = poll.poll(&mut events, plan.timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let woke = Instant::now();
        sleeper.woke(&plan, polled, woke, !events.is_empty());
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                TIMER => {
                    timer.fired();
                    sleeper.timer_fired(&plan, woke);
                }
                _ => handler.on_event(ev),
            }
        }
    }
    handler.on_exit(Instant::now());
    Ok(())
}

/// How one poll waits.
struct Wait {
    /// The poll's timeout: zero to spin, `None` to sleep until an event or the timer.
    timeout: Option<Duration>,
    /// When sleeping on the timer: the instant it is armed for, and how far the deadline was.
    wake_at: Option<(Instant, Duration)>,
    /// The poll may sleep.
    sleeps: bool,
}

/// When a worker's loop sleeps, spins, or wakes early for a deadline: the spin window after
/// events, the learned wake-up margin and the shared-core detector, together.
struct Sleeper {
    opts: LoopOptions,
    spin: SpinWindow,
    /// Polling without sleeping goes on until here (the spin window after the last event).
    spin_until: Instant,
    contention: Contention,
    margin: WakeMargin,
}

impl Sleeper {
    fn new(opts: LoopOptions) -> Sleeper {
        let now = Instant::now();
        Sleeper {
            opts,
            spin: SpinWindow::new(opts.spin_for),
            spin_until: now,
            contention: Contention::new(now),
            margin: WakeMargin::new(),
        }
    }

    /// Spinning (and waking early) is allowed at all: not with `--spin` (which never sleeps)
    /// nor with `--spin-us 0` (which always does).
    fn may_spin(&self) -> bool {
        !self.opts.spin && !self.opts.spin_for.is_zero()
    }

    /// How to wait at `now` for the deadline `next` (arming `timer` when sleeping on it);
    /// `idle`: the last poll brought no event; `awaiting`: replies are in flight (the spin
    /// window after an event is for them).
    fn plan(
        &mut self,
        now: Instant,
        next: Option<Instant>,
        idle: bool,
        awaiting: bool,
        timer: &mut Timer,
    ) -> Wait {
        // Spinning: the window after an event, or waiting out a deadline closer than
        // SPIN_BELOW or the learned wake-up margin; none of it with `--spin-us 0`, nor on a
        // core another thread needs. There the timer is armed for the deadline itself, and
        // only SPIN_BELOW is waited out by spinning, as `may_spin` allows.
        let may_spin = self.may_spin();
        let early = may_spin && self.contention.may_wake_early(now);
        let lead = if early {
            self.margin.margin().max(SPIN_BELOW)
        } else {
            SPIN_BELOW
        };
        let near = next.is_some_and(|d| d <= now + lead);
        let window = awaiting && now < self.spin_until;
        let spinning = may_spin && (window || near) && self.contention.may_spin(now);
        if spinning && idle {
            // Nothing came on the last poll: let another thread that wants this core (say, the
            // other end of a loopback test) run first. With none, this returns at once.
            std::thread::yield_now();
        }
        let mut wake_at = None;
        let timeout = if self.opts.spin || spinning {
            Some(Duration::ZERO)
        } else {
            match next {
                None => None,
                Some(d) if d <= now => Some(Duration::ZERO),
                Some(d) => {
                    let at = if early && self.contention.may_wake_early(now) {
                        d.checked_sub(self.margin.margin())
                            .map_or(d, |at| at.max(now))
                    } else {
                        d
                    };
                    timer.arm(at, now);
                    wake_at = Some((at, d - now));
                    None
                }
            }
        };
        let sleeps = timeout != Some(Duration::ZERO);
        if sleeps {
            self.contention.slept();
        }
        Wait {
            timeout,
            wake_at,
            sleeps,
        }
    }

    /// The poll of `plan`, begun at `polled`, returned at `woke`, with events or not.
    fn woke(&mut self, plan: &Wait, polled: Instant, woke: Instant, got_events: bool) {
        if !self.opts.spin_for.is_zero() && got_events {
            if plan.sleeps {
                self.spin.woke_after(woke - polled);
            }
            self.spin_until = woke + self.spin.window();
        }
    }

    /// The timer fired for the poll of `plan`, which returned at `woke`.
    fn timer_fired(&mut self, plan: &Wait, woke: Instant) {
        if let (Some((at, wait)), true) = (plan.wake_at, self.may_spin()) {
            // Only a wake-up later than the margin can raise it: only such a one is judged,
            // one `pread` for one wake-up in ten or so.
            let late = woke.saturating_duration_since(at);
            if late <= self.margin.margin() || !self.contention.timer_woke(woke) {
                self.margin.record(late, wait);
            }
        }
    }
}

/// Running worker threads.
pub struct Workers {
    handles: Vec<JoinHandle<Result<()>>>,
}

/// Build one handler per worker (on this thread, so bind errors surface here), then start a
/// thread per worker named `connperf-w{i}`, pinned as `plan` says. Returns once every worker is
/// pinned and running; a failed pin that `--cpus` asked for stops all of them and is an error.
pub fn spawn<H, F>(
    plan: &Plan,
    shutdown: &Shutdown,
    opts: LoopOptions,
    mut make: F,
) -> Result<Workers>
where
    H: Handler + Send + 'static,
    F: FnMut(usize, &Registry) -> Result<H>,
{
    let mut built = Vec::with_capacity(plan.workers);
    for i in 0..plan.workers {
        let poll = Poll::new().map_err(Error::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(Error::Poll)?);
        let timer = Timer::new().map_err(Error::Poll)?;
        let handler = make(i, poll.registry())?;
        built.push((poll, waker, timer, handler));
    }
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<(usize, bool)>();
    let (go_tx, go_rx) = crossbeam_channel::bounded::<bool>(plan.workers);
    let mut handles = Vec::with_capacity(plan.workers);
    for (i, (mut poll, waker, timer, mut handler)) in built.into_iter().enumerate() {
        shutdown.add_waker(waker);
        let core = plan.core_for(i);
        let strict = plan.strict;
        let ready_tx = ready_tx.clone();
        let go_rx = go_rx.clone();
        let shutdown = shutdown.clone();
        let h = std::thread::Builder::new()
            .name(format!("connperf-w{i}"))
            .spawn(move || -> Result<()> {
                let pinned = core.is_none_or(crate::affinity::pin_current);
                if let (Some(c), false) = (core, pinned) {
                    if !strict {
                        eprintln!("connperf: warning: could not pin worker {i} to core {c}; it runs unpinned");
                    }
                }
                // SAFETY: prctl(PR_SET_TIMERSLACK) takes plain integers and affects only this thread.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) };
                let _ = ready_tx.send((i, pinned || !strict));
                if !go_rx.recv().unwrap_or(false) {
                    return Ok(());
                }
                run_with(&mut poll, &mut handler, &shutdown, opts, timer).map_err(Error::Poll)
            })
            .map_err(Error::Spawn)?;
        handles.push(h);
    }
    drop(ready_tx);
    let mut failed = None;
    for _ in 0..plan.workers {
        match ready_rx.recv() {
            Ok((i, false)) => failed = failed.or(plan.core_for(i)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let go = failed.is_none();
    for _ in 0..plan.workers {
        let _ = go_tx.send(go);
    }
    let workers = Workers { handles };
    if let Some(core) = failed {
        let _ = workers.join();
        return Err(Error::Pin { core });
    }
    Ok(workers)
}

impl Workers {
    /// Wait for every worker; the first failure wins, a panic becomes `WorkerPanicked`.
    pub fn join(self) -> Result<()> {
        let mut first = Ok(());
        for (id, h) in self.handles.into_iter().enumerate() {
            let r = h.join().unwrap_or(Err(Error::WorkerPanicked { id }));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_window_grows_on_short_sleeps_and_vanishes_on_long_ones() {
        let us = Duration::from_micros;
        let mut w = SpinWindow::new(us(100));
        assert_eq!(w.window(), us(100));
        // Events far apart: every sleep is longer than the window could cover.
        for _ in 0..6 {
            w.woke_after(us(5_000));
        }
        assert_eq!(w.window(), Duration::ZERO);
        // Events close together again: the window comes back, up to its maximum.
        w.woke_after(us(20));
        assert_eq!(w.window(), SPIN_MIN);
        for _ in 0..10 {
            w.woke_after(us(20));
        }
        assert_eq!(w.window(), us(100));
        // Zero means never spin, whatever happens.
        let mut off = SpinWindow::new(Duration::ZERO);
        off.woke_after(us(1));
        assert_eq!(off.window(), Duration::ZERO);
    }

    #[test]
    fn wake_margin_covers_most_overshoots_within_bounds() {
        let us = Duration::from_micros;
        // Sleeps of 10 ms: the share cap (1.25 ms) stays above MARGIN_MAX.
        let wait = Duration::from_millis(10);
        let mut m = WakeMargin::new();
        assert_eq!(
            m.margin(),
            Duration::ZERO,
            "no samples: sleep to the deadline"
        );
        // Too few samples: still none.
        for _ in 0..WAKE_EVERY - 1 {
            m.record(us(40), wait);
        }
        assert_eq!(m.margin(), Duration::ZERO);
        m.record(us(40), wait);
        assert_eq!(m.margin(), us(40));
        // Overshoots of 1..=100 µs, evenly: the margin is their 90th percentile, and the
        // rare long wake-ups (a descheduled vCPU) above it do not raise it.
        let mut m = WakeMargin::new();
        for i in 0..WAKE_SAMPLES {
            let o = if i % 50 == 0 {
                us(20_000)
            } else {
                us(1 + i as u64 % 100)
            };
            m.record(o, wait);
        }
        let p90 = m.margin();
        assert!(p90 >= us(85) && p90 <= us(95), "p90 of 1..100 µs: {p90:?}");
        // Only the last WAKE_SAMPLES count: the load changed, the margin follows.
        for _ in 0..WAKE_SAMPLES {
            m.record(us(10), wait);
        }
        assert_eq!(m.margin(), us(10));
        // Bounded above, whatever the overshoot.
        for _ in 0..WAKE_SAMPLES {
            m.record(Duration::from_secs(10), wait);
        }
        assert_eq!(m.margin(), MARGIN_MAX);
        // Recomputed only every WAKE_EVERY samples.
        for _ in 0..WAKE_EVERY - 1 {
            m.record(Duration::ZERO, wait);
        }
        assert_eq!(m.margin(), MARGIN_MAX);
        // Short sleeps cap it at an eighth of the median wait, so spinning stays a small
        // share of the worker's time whatever the overshoot.
        let mut m = WakeMargin::new();
        for _ in 0..WAKE_SAMPLES {
            m.record(us(300), us(400));
        }
        assert_eq!(m.margin(), us(50));
    }

    /// Two busy threads on one core: the one probing its run delay finds the core shared and
    /// stops spinning for a back-off; alone again, it spins.
    #[test]
    fn contention_is_seen_when_another_thread_holds_the_core() {
        use std::sync::atomic::AtomicBool;
        if Contention::new(Instant::now()).run_delay().is_none() {
            eprintln!("skipped: /proc/thread-self/schedstat is not readable on this kernel");
            return;
        }
        let core = crate::affinity::available_cores()
            .into_iter()
            .next()
            .unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                crate::affinity::pin_current(core);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let prober = std::thread::spawn(move || {
            crate::affinity::pin_current(core);
            let start = Instant::now();
            let mut c = Contention::new(start);
            // Busy for up to 2 s (at least 4 slices of sharing on any scheduler).
            while start.elapsed() < Duration::from_secs(2) {
                if !c.may_spin(Instant::now()) {
                    return Some(c.until.saturating_duration_since(Instant::now()));
                }
            }
            None
        });
        let backoff = prober.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        let backoff = backoff.expect("a core shared with a busy thread was never seen as shared");
        assert!(backoff <= BACKOFF_MIN, "first back-off {backoff:?}");
    }

    /// After an event the worker spins out its window only while replies are awaited: with
    /// nothing in flight and the next deadline far, it sleeps on the timer at once.
    #[test]
    fn the_spin_window_is_for_awaited_replies_only() {
        let opts = LoopOptions {
            spin: false,
            spin_for: Duration::from_micros(100),
        };
        let mut timer = Timer::new().unwrap();
        let mut sleeper = Sleeper::new(opts);
        let polled = Instant::now();
        let woke = Instant::now();
        let slept = Wait {
            timeout: None,
            wake_at: None,
            sleeps: true,
        };
        sleeper.woke(&slept, polled, woke, true);
        let far = Some(woke + Duration::from_millis(5));
        let plan = sleeper.plan(woke, far, false, true, &mut timer);
        assert_eq!(
            plan.timeout,
            Some(Duration::ZERO),
            "awaiting: spin the window"
        );
        let plan = sleeper.plan(woke, far, false, false, &mut timer);
        assert_eq!(plan.timeout, None, "nothing awaited: sleep");
        assert!(plan.sleeps && plan.wake_at.is_some(), "on the timer");
    }

    #[test]
    fn slab_reuse_never_matches_an_old_token() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(decode(a).0, decode(b).0, "the slot is reused");
        assert_ne!(a, b, "with a new generation");
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(b), Some(&mut "b"));
        assert_eq!(s.len(), 1);
        assert!(b.0 < FIXED_BASE);
    }

    #[test]
    fn slab_generation_wraps_within_its_bits() {
        let mut s = Slab::new();
        let mut t = s.insert(0u8);
        for _ in 0..10 {
            s.remove(t);
            t = s.insert(1);
        }
        assert_eq!(decode(t).1, 10);
        assert_eq!(s.tokens(), vec![t]);
    }

    #[test]
    fn shutdown_wait_times_out_then_sees_trigger() {
        let s = Shutdown::new();
        assert!(!s.wait_timeout(Duration::from_millis(5)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(10)));
        s.trigger();
        assert!(t.join().unwrap());
        assert!(s.is_triggered());
    }

    struct Ticks {
        due: Vec<Instant>,
        fired: Vec<Instant>,
        exited: bool,
    }

    impl Handler for Ticks {
        fn on_event(&mut self, _: &Event) {}
        fn on_due(&mut self, now: Instant) -> Option<Instant> {
            while let Some(&d) = self.due.first() {
                if d > now {
                    return Some(d);
                }
                self.fired.push(now);
                self.due.remove(0);
            }
            None
        }
        fn on_stop(&mut self, now: Instant) -> Instant {
            now
        }
        fn is_drained(&self) -> bool {
            true
        }
        fn on_exit(&mut self, _: Instant) {
            self.exited = true;
        }
    }

    #[test]
    fn loop_meets_sub_millisecond_deadlines_and_stops() {
        meets_deadlines(LoopOptions::default(), 20);
    }

    /// With spinning allowed the worker wakes before its deadlines (once it has learned by how
    /// much), and still runs nothing early.
    #[test]
    fn loop_waking_early_runs_nothing_before_its_deadline() {
        let opts = LoopOptions {
            spin: false,
            spin_for: Duration::from_micros(100),
        };
        meets_deadlines(opts, 120);
    }

    /// `count` deadlines 300 µs apart: all run, none before it is due.
    fn meets_deadlines(opts: LoopOptions, count: u32) {
        let start = Instant::now();
        let due: Vec<Instant> = (1..=count)
            .map(|k| start + Duration::from_micros(300) * k)
            .collect();
        let mut h = Ticks {
            due: due.clone(),
            fired: vec![],
            exited: false,
        };
        let mut poll = Poll::new().unwrap();
        let shutdown = Shutdown::new();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        shutdown.add_waker(waker);
        let s2 = shutdown.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(300) * count + Duration::from_millis(50));
            s2.trigger();
        });
        run(&mut poll, &mut h, &shutdown, opts).unwrap();
        stopper.join().unwrap();
        assert!(h.exited);
        assert_eq!(h.fired.len(), count as usize);
        for (d, f) in due.iter().zip(&h.fired) {
            assert!(f >= d, "never early");
        }
    }

    /// A handler whose drain never ends on its own (a minute's deadline, never drained).
    struct Stuck {
        stopped: bool,
        exited: bool,
    }

    impl Handler for Stuck {
        fn on_event(&mut self, _: &Event) {}
        fn on_due(&mut self, _: Instant) -> Option<Instant> {
            None
        }
        fn on_stop(&mut self, now: Instant) -> Instant {
            self.stopped = true;
            now + Duration::from_secs(60)
        }
        fn is_drained(&self) -> bool {
            false
        }
        fn on_exit(&mut self, _: Instant) {
            self.exited = true;
        }
    }

    /// A trigger starts the drain; a hurry during it ends the loop at once (through `on_exit`).
    #[test]
    fn hurry_ends_the_drain_at_once() {
        let mut h = Stuck {
            stopped: false,
            exited: false,
        };
        let mut poll = Poll::new().unwrap();
        let shutdown = Shutdown::new();
        shutdown.add_waker(Arc::new(Waker::new(poll.registry(), WAKER).unwrap()));
        shutdown.trigger();
        let s2 = shutdown.clone();
        let hurrier = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s2.hurry();
        });
        let start = Instant::now();
        run(&mut poll, &mut h, &shutdown, LoopOptions::default()).unwrap();
        hurrier.join().unwrap();
        assert!(h.stopped && h.exited);
        assert!(shutdown.is_triggered() && shutdown.is_hurried());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
