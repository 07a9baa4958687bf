//! Ephemeral UDP (`-p udp -f ephemeral`): a new socket, so a new source port, per datagram, as
//! the Go tool did. Each socket is opened, connected, sends one datagram, waits for its reply
//! (or `--timeout`) and is closed; its setup time (socket, connect, registration) is reported
//! as the connect time, and every socket is a flow of the report. Paced per target and split
//! over the workers, or a closed loop keeping `-c` datagrams per target in flight. At most
//! `--max-inflight` sockets per worker are open at once; slots held back by it start late, and
//! those still held at the end are not started (in_flight_limit).
//!
//! A reply that comes after its socket closed (late, or a duplicate) is never seen: the kernel
//! drops it, or answers it with an ICMP error.
//!
//! Leaves to others: the header and socket setup (`udp_wire`), recording and windows
//! (`client`).

use crate::client::{Client, PerRequest, Sources, Starts};
use crate::driver::{Mode, Traffic};
use crate::reactor::Slab;
use crate::report::Failure;
use crate::udp_wire::{intact, open, sequence_of, write_header};
use mio::event::Event;
use mio::net::UdpSocket;
use mio::{Interest, Token};
use std::io;
use std::time::Instant;

/// The failure a socket that could not be opened counts as.
fn failure_of(e: &crate::Error) -> Failure {
    match e {
        crate::Error::Io { source, .. } | crate::Error::Poll(source) => Failure::of(source),
        _ => Failure::Other,
    }
}

/// One datagram on its own socket, awaiting its reply.
struct Probe {
    sock: UdpSocket,
    target: u32,
    seq: u64,
    intended: Instant,
    sent_at: Instant,
}

/// A worker's share of the ephemeral UDP datagrams.
pub(crate) struct UdpEphemeral {
    probes: Slab<Probe>,
    /// What starts when: the schedules, or the closed loop.
    starts: Starts,
    sources: Sources,
    /// Sequence number of the next datagram of this worker.
    next_seq: u64,
}

impl Traffic for UdpEphemeral {
    fn new(core: &mut Client) -> crate::Result<UdpEphemeral> {
        let Mode::UdpEphemeral {
            max_inflight,
            concurrency,
        } = core.cfg.mode
        else {
            unreachable!("ephemeral UDP traffic for an ephemeral UDP run only")
        };
        Ok(UdpEphemeral {
            probes: Slab::new(),
            starts: Starts::new(core, max_inflight, concurrency),
            sources: Sources::new(&core.cfg.source_addrs, core.id),
            next_seq: 0,
        })
    }

    fn begin(&mut self, core: &mut Client) {
        self.starts.begin(core);
    }

    fn on_event(&mut self, core: &mut Client, ev: &Event, now: Instant) {
        if ev.is_readable() || ev.is_error() {
            self.recv(core, ev.token(), now);
        }
    }

    fn on_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        self.start_due(core, now)
    }

    fn sweep(&mut self, core: &mut Client, now: Instant) {
        let timeout = core.cfg.timeout;
        let expired = crate::tcp_conn::timed_out(&self.probes, now, timeout, |p| Some(p.sent_at));
        for token in expired {
            if let Some(p) = self.close(token) {
                core.lost(p.target, p.intended);
            }
        }
    }

    fn book_unsent(&mut self, core: &mut Client, end: Instant) {
        self.starts.book_unsent(core, end, self.probes.len());
    }

    fn in_flight(&self) -> bool {
        !self.probes.is_empty()
    }

    fn on_exit(&mut self, core: &mut Client, _now: Instant) {
        // Datagrams still unanswered when the run ends are counted lost, never dropped.
        for token in self.probes.tokens() {
            if let Some(p) = self.close(token) {
                core.lost(p.target, p.intended);
            }
        }
    }
}

impl PerRequest for UdpEphemeral {
    fn starts(&mut self) -> &mut Starts {
        &mut self.starts
    }

    fn in_flight_count(&self) -> usize {
        self.probes.len()
    }

    /// Open a socket to `target` and send it the datagram intended at `intended`. A failure
    /// is counted, and in a closed loop backed off from.
    fn start(&mut self, core: &mut Client, target: u32, intended: Instant, now: Instant) {
        let t = &core.cfg.targets[target as usize];
        let source = self.sources.pick(t.addr);
        let since = Instant::now();
        let sock = match open(t, source, core.cfg.busy_poll_us) {
            Ok(s) => s,
            Err(e) => {
                core.count_error(target, failure_of(&e), intended);
                return self.starts.failed(core, now);
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let token = self.probes.insert(Probe {
            sock,
            target,
            seq,
            intended,
            sent_at: now,
        });
        let p = self.probes.get_mut(token).expect("just inserted");
        let msg = core.cfg.message_bytes;
        let ts = now.saturating_duration_since(core.clock.t0).as_nanos() as u64;
        write_header(&mut core.send_buf[..msg], core.id as u32, seq, ts);
        let registered = core
            .registry
            .register(&mut p.sock, token, Interest::READABLE);
        p.sent_at = Instant::now();
        if let Err(e) = registered.and_then(|()| p.sock.send(&core.send_buf[..msg])) {
            self.close(token);
            core.count_error(target, Failure::of(&e), intended);
            return self.starts.failed(core, now);
        }
        core.connected(target, since, intended, p.sent_at);
        core.note_flow(target, intended, &mut None);
        core.record_start(target, intended, now);
    }
}

impl UdpEphemeral {
    /// Read what has arrived on the socket of `token`: its reply ends it.
    fn recv(&mut self, core: &mut Client, token: Token, now: Instant) {
        loop {
            let Some(p) = self.probes.get(token) else {
                return;
            };
            let (t, intended) = (p.target, p.intended);
            match p.sock.recv(&mut core.recv_buf) {
                Ok(n) => {
                    let msg = core.cfg.message_bytes;
                    let d = &core.recv_buf[..n];
                    if sequence_of(d, core.id as u32) != Some(p.seq) {
                        core.note(t, now, |s| s.stray += 1);
                        continue;
                    }
                    let sent_at = p.sent_at;
                    if now.saturating_duration_since(sent_at) >= core.cfg.timeout {
                        core.lost(t, intended);
                        core.note(t, now, |s| s.late += 1);
                    } else if intact(d, &core.send_buf[..msg]) {
                        core.record(t, intended, sent_at, now);
                    } else {
                        core.count_error(t, Failure::Mismatch, intended);
                    }
                    return self.finish(core, token, now, true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    core.count_error(t, Failure::of(&e), intended);
                    return self.finish(core, token, now, false);
                }
            }
        }
    }

    /// The datagram of `token` is settled (`answered`, or failed): close its socket and send
    /// what the freed place allows.
    fn finish(&mut self, core: &mut Client, token: Token, now: Instant, answered: bool) {
        if self.close(token).is_none() {
            return;
        }
        self.refill(core, now, answered);
    }

    /// Close the socket of `token` (dropping it takes it out of the epoll set); its datagram.
    fn close(&mut self, token: Token) -> Option<Probe> {
        self.probes.remove(token)
    }
}
