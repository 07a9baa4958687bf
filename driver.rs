//! `connperf connect`: the map of the client. The configuration (`ConnectConfig` and its
//! `Mode`), the instants every worker shares (`Clock`), the `Traffic` a mode implements, the
//! `Worker` that runs one mode's traffic on the shared core inside the reactor's loop, and
//! `Run`, which starts the workers and the reporter.
//!
//! ```text
//! Run::start ─▶ reactor::spawn ─▶ Worker<T> { core: client::Client, traffic: T }
//!                                  T = persistent::Persistent  (long-lived connections)
//!                                    | ephemeral::Ephemeral    (a connection per request)
//!                                    | udp_client::UdpClient   (datagrams, -c flows per target)
//!                                    | udp_ephemeral::UdpEphemeral (a socket per datagram)
//!              persistent and ephemeral share tcp_conn (dialing, request/echo I/O), the UDP
//!              modes udp_wire (header, socket), the socket-per-request modes client::Starts
//! ```
//!
//! Latency is measured from each request's intended send time (no coordinated omission); the
//! service time from the actual send is kept beside it. Failures are counted by kind and the
//! run goes on. Leaves to others: the loop and sleeping (`reactor`), schedules (`pacing`),
//! printing (`report`).

use crate::client::{sooner, Client, Gate};
use crate::ephemeral::Ephemeral;
use crate::pacing::Arrival;
use crate::persistent::Persistent;
use crate::reactor::{self, Handler};
use crate::report::Interval;
use crate::udp_client::UdpClient;
use crate::udp_ephemeral::UdpEphemeral;
use crate::Result;
use crossbeam_channel::Sender;
use mio::event::Event;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use crate::udp_wire::UDP_HEADER_LEN;

/// How an ephemeral connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloseMode {
    /// SO_LINGER 0: the close sends RST and leaves no TIME_WAIT on the client.
    #[default]
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
    /// Datagrams over connected UDP sockets: `flows` per target (each its own source port),
    /// spread over the workers.
    Udp {
        /// Sockets per target (`-c`).
        flows: usize,
    },
    /// A new UDP socket (so a new source port) per datagram.
    UdpEphemeral {
        /// Sockets open per worker at most.
        max_inflight: usize,
        /// Closed loop: datagrams kept in flight per target (`-c`).
        concurrency: usize,
    },
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
    /// How paced sends are spread in time (`--arrival`, `--seed`).
    pub arrival: Arrival,
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
            arrival: Arrival::Uniform,
        }
    }
}

impl ConnectConfig {
    /// Closed loop: each connection sends its next request as soon as the last one is answered.
    pub fn closed_loop(&self) -> bool {
        self.rate == 0.0
    }

    /// Datagrams (`--proto udp`).
    pub fn udp(&self) -> bool {
        matches!(self.mode, Mode::Udp { .. } | Mode::UdpEphemeral { .. })
    }

    /// A new TCP connection or UDP socket per request.
    pub fn ephemeral(&self) -> bool {
        matches!(
            self.mode,
            Mode::Ephemeral { .. } | Mode::UdpEphemeral { .. }
        )
    }

    /// File descriptors the run may hold at once, for the rlimit check.
    pub fn fds_needed(&self, workers: usize) -> u64 {
        let t = self.targets.len() as u64;
        match self.mode {
            Mode::Udp { flows } => t * flows as u64,
            Mode::Persistent { connections, .. } => t * connections as u64,
            Mode::Ephemeral { max_inflight, .. } | Mode::UdpEphemeral { max_inflight, .. } => {
                (max_inflight as u64).saturating_mul(workers as u64)
            }
        }
    }
}

/// The instants every worker shares.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The schedule starts (after the ramp).
    pub t0: Instant,
    /// Measurement starts (after `--warmup`); window 0 begins here.
    pub measure: Instant,
    /// No request starts at or after this.
    pub end: Instant,
    /// `measure` on the wall clock (window `seq` of `--hdr-log` starts `seq` intervals later).
    pub measure_wall: SystemTime,
}

impl Clock {
    /// The clock of a run whose schedule starts at `t0`.
    pub fn new(cfg: &ConnectConfig, t0: Instant) -> Clock {
        let measure = t0 + cfg.warmup;
        let now = Instant::now();
        Clock {
            t0,
            measure,
            end: measure + cfg.duration,
            measure_wall: SystemTime::now() + measure.saturating_duration_since(now),
        }
    }

    /// The clock of a worker still ramping up: nothing starts, nothing is measured and nothing
    /// ends until the real one is set.
    pub(crate) fn pending(now: Instant) -> Clock {
        let never = now + Duration::from_secs(100 * 365 * 24 * 3600);
        Clock {
            t0: never,
            measure: never,
            end: never,
            measure_wall: SystemTime::now(),
        }
    }
}

/// What one mode does in a worker's loop. The shared core is passed in, so a mode holds only
/// its own state.
pub(crate) trait Traffic: Sized + Send + 'static {
    /// This worker's share of the run, set up on the core's registry; ramping up (dialling)
    /// starts at once.
    fn new(core: &mut Client) -> Result<Self>;
    /// The ramp is done: every connection is up or has failed once (at once for a mode
    /// without connections to bring up).
    fn ramped(&self) -> bool {
        true
    }
    /// The clock is set (`core.clock`): lay out the schedule.
    fn begin(&mut self, core: &mut Client);
    /// An event for one of the mode's sockets.
    fn on_event(&mut self, core: &mut Client, ev: &Event, now: Instant);
    /// Start what is due; the mode's next deadline.
    fn on_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant>;
    /// Fail (TCP) or expire (UDP) what has waited `--timeout`.
    fn sweep(&mut self, core: &mut Client, now: Instant);
    /// The run stopped with the measured period ending at `end`: book the slots of the
    /// schedule that were never sent, so none is silently dropped.
    fn book_unsent(&mut self, core: &mut Client, end: Instant);
    /// A window closed at `now`: book the slots due by then that can no longer be sent (a
    /// persistent connection that is down), so each lands in the window it was due in.
    fn settle(&mut self, _core: &mut Client, _now: Instant) {}
    /// Requests are still awaiting replies (asked every turn of the loop: a field read).
    fn in_flight(&self) -> bool;
    /// The worker exits: requests still unanswered are lost.
    fn on_exit(&mut self, core: &mut Client, now: Instant);
}

/// Most turns of sending a stopping worker takes to catch up with the slots due by the stop.
const CATCH_UP_TURNS: usize = 16;

/// One worker of the load generator: the shared core and one mode's traffic.
pub(crate) struct Worker<T> {
    core: Client,
    traffic: T,
}

impl<T: Traffic> Handler for Worker<T> {
    fn on_event(&mut self, ev: &Event) {
        self.traffic.on_event(&mut self.core, ev, Instant::now());
    }

    fn on_due(&mut self, now: Instant) -> Option<Instant> {
        if !self.core.started() && self.core.try_start(self.traffic.ramped()) {
            self.traffic.begin(&mut self.core);
        }
        self.core.begin_turn(now);
        let next = self.traffic.on_due(&mut self.core, now);
        if self.core.sweep_due(now) {
            self.traffic.sweep(&mut self.core, now);
        }
        if self.core.roll(now).is_some() {
            self.traffic.settle(&mut self.core, now);
        }
        sooner(next, Some(self.core.end_turn(now)))
    }

    fn on_stop(&mut self, now: Instant) -> Instant {
        // Slots due by the stop are sent first, however late the worker comes to them: its own
        // lag must not cost the schedule a request (a busy worker can be behind by a turn when
        // the end is signalled).
        if self.core.started() {
            self.core.begin_turn(now);
            for _ in 0..CATCH_UP_TURNS {
                match self.traffic.on_due(&mut self.core, now) {
                    Some(next) if next <= now => {}
                    _ => break,
                }
            }
        }
        let end = self.core.stop(now);
        if self.core.measured(now) {
            self.traffic.book_unsent(&mut self.core, end);
        }
        self.core.drain_deadline(now)
    }

    fn is_drained(&self) -> bool {
        !self.traffic.in_flight()
    }

    fn awaiting(&self) -> bool {
        self.traffic.in_flight()
    }

    fn on_exit(&mut self, now: Instant) {
        self.traffic.on_exit(&mut self.core, now);
        self.core.finish(now);
    }
}

impl<T> Drop for Worker<T> {
    /// A worker that ends (or panics) before its ramp is done must not hold up the start.
    fn drop(&mut self) {
        self.core.leave();
    }
}

/// Spawn the workers of a run whose traffic is `T`.
fn spawn<T: Traffic>(
    plan: &crate::affinity::Plan,
    shutdown: &reactor::Shutdown,
    loop_opts: reactor::LoopOptions,
    cfg: &Arc<ConnectConfig>,
    gate: &Arc<Gate>,
    tx: &Sender<Interval>,
) -> Result<reactor::Workers> {
    let n = plan.workers;
    reactor::spawn(plan, shutdown, loop_opts, |i, registry| {
        let mut core = Client::new(i, n, registry, cfg.clone(), gate.clone(), tx.clone())?;
        let traffic = T::new(&mut core)?;
        Ok(Worker { core, traffic })
    })
}

/// Where `--hdr-log` writes: an HdrHistogram interval log.
pub type HdrLog = crate::histlog::LogWriter<Box<dyn Write + Send>>;

/// A running load: the workers, the reporter, and the gate that starts their schedule.
pub struct Run {
    workers: reactor::Workers,
    reporter: crate::report::Reporter<crate::report::Summary>,
    gate: Arc<Gate>,
    cfg: Arc<ConnectConfig>,
    workers_n: usize,
}

impl Run {
    /// Start the run: one `Worker` per planned worker, plus the reporter printing to `out`;
    /// with `hdr_log`, the reporter also logs every window there. Returns once every worker is
    /// running.
    pub fn start<W: Write + Send + 'static>(
        cfg: ConnectConfig,
        report: crate::report::ReportConfig,
        plan: &crate::affinity::Plan,
        shutdown: &reactor::Shutdown,
        loop_opts: reactor::LoopOptions,
        out: W,
        hdr_log: Option<HdrLog>,
    ) -> Result<Run> {
        let cfg = Arc::new(cfg);
        let gate = Arc::new(Gate::new(cfg.targets.len()));
        let log_gate = gate.clone();
        let mut hdr_log = hdr_log
            .map(|log| crate::histlog::WindowLog::new(log, report.peers.clone(), cfg.interval));
        let (tx, reporter) = crate::report::Reporter::spawn(plan.workers, move |rx| {
            crate::report::run_reporter(
                &report,
                rx,
                out,
                |seq, length, cpu, stats| {
                    // Windows exist only once the clock is set.
                    if let (Some(log), Some(clock)) = (&mut hdr_log, log_gate.clock()) {
                        log.on_window(clock.measure_wall, seq, length, cpu, stats, || {
                            log_gate.ramp()
                        });
                    }
                },
                || log_gate.ramp(),
            )
        })?;
        let workers = match cfg.mode {
            Mode::Persistent { .. } => {
                spawn::<Persistent>(plan, shutdown, loop_opts, &cfg, &gate, &tx)
            }
            Mode::Ephemeral { .. } => {
                spawn::<Ephemeral>(plan, shutdown, loop_opts, &cfg, &gate, &tx)
            }
            Mode::Udp { .. } => spawn::<UdpClient>(plan, shutdown, loop_opts, &cfg, &gate, &tx),
            Mode::UdpEphemeral { .. } => {
                spawn::<UdpEphemeral>(plan, shutdown, loop_opts, &cfg, &gate, &tx)
            }
        }?;
        drop(tx);
        Ok(Run {
            workers,
            reporter,
            gate,
            cfg,
            workers_n: plan.workers,
        })
    }

    /// Wait until every worker has ramped up (its connections are up or have failed once),
    /// then start the schedule in all of them. Returns the run's clock, or `None` if
    /// `shutdown` came first.
    pub fn begin(&self, shutdown: &reactor::Shutdown) -> Option<Clock> {
        if !self
            .gate
            .wait_ready(self.workers_n, || shutdown.is_triggered())
        {
            return None;
        }
        let clock = self.gate.start(&self.cfg);
        shutdown.wake();
        Some(clock)
    }

    /// The ramp, once `begin` has started the schedule: how long it took and what each
    /// target's connections did (for `--metrics-addr`).
    pub fn ramp(&self) -> Option<crate::report::Ramp> {
        self.gate.ramp()
    }

    /// Drive the started run to its end: the ramp, then the measured schedule until its end
    /// or `shutdown`, then the stop and the drain; `live` (`--metrics-addr`, the progress
    /// line) follows from the ramp's end on. The summary, and whether a signal cut the run
    /// short.
    pub fn drive(
        self,
        shutdown: &reactor::Shutdown,
        live: Option<&crate::metrics::Live>,
    ) -> Result<(crate::report::Summary, bool)> {
        use crate::metrics::Phase;
        let mut cut = true;
        // The measured schedule starts once every connection is up (the ramp).
        if let Some(clock) = self.begin(shutdown) {
            if let Some(l) = live {
                if let Some(r) = self.ramp() {
                    l.set_ramp(&r);
                }
                l.set_phase(Phase::Run {
                    measure: clock.measure,
                    end: clock.end,
                });
            }
            cut = shutdown.wait_timeout(clock.end.saturating_duration_since(Instant::now()));
        }
        if let Some(l) = live {
            l.set_phase(Phase::Drain);
        }
        shutdown.trigger();
        Ok((self.join()?, cut))
    }

    /// Wait for the workers (after shutdown) and the reporter's summary.
    pub fn join(self) -> Result<crate::report::Summary> {
        let r = self.workers.join();
        let summary = self.reporter.join()?;
        r.map(|_| summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        c.mode = Mode::Udp { flows: 3 };
        assert_eq!(c.fds_needed(2), 6);
        c.mode = Mode::UdpEphemeral {
            max_inflight: 5,
            concurrency: 1,
        };
        assert_eq!(c.fds_needed(2), 10);
    }
}
