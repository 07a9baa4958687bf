//! UDP mode: `-c` connected sockets (flows, each its own source port) per target, spread over
//! the workers (flow `c` to worker `c % workers`); each datagram carries a header (magic,
//! worker, sequence number, send time) so that every reply is matched to its request, and
//! losses, late, duplicate, reordered and stray replies are counted apart, per flow. Paced per
//! target with the rate split over its flows, or a closed loop of one datagram in flight per
//! flow.
//!
//! Leaves to others: the datagram header and socket setup (`udp_wire`), recording and
//! windows (`client`).

use crate::client::{sooner, Backoff, Client, Missed, SEND_BURST};
use crate::driver::{Mode, Traffic};
use crate::pacing::Pacer;
use crate::reactor::{fixed_token, FIXED_BASE};
use crate::report::{Failure, Unsent};
use crate::udp_wire::{intact, open, sequence_of, write_header};
use crate::{Error, Result};
use mio::event::Event;
use mio::net::UdpSocket;
use mio::Interest;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

/// One datagram awaiting its reply.
#[derive(Debug, Clone, Copy)]
struct Slot {
    intended: Instant,
    sent_at: Instant,
    answered: bool,
}

/// What a datagram that came back is, as far as its flow's window can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Answers no request of the run: too short, not our header (or another worker's), or a
    /// sequence number not sent yet.
    Stray,
    /// Answers a request already expired and counted lost.
    Late,
    /// Answers a request already answered.
    Duplicate,
    /// Answers the request in slot `idx` intact; `reordered` if a later one was answered first.
    Ok { idx: usize, reordered: bool },
    /// Answers the request in slot `idx` with a wrong payload: that request failed.
    Mismatch { idx: usize },
    /// Answers the request in slot `idx`, but `--timeout` or more after its send: that request
    /// is lost and the reply late, as if the sweep had expired the slot first.
    Expired { idx: usize },
}

/// The datagrams of one flow still within `--timeout` of their send, answered or not: a second
/// reply within it is a duplicate; only replies after it are late.
#[derive(Default)]
struct Window {
    /// Sequence number of `slots[0]`.
    base: u64,
    next_seq: u64,
    slots: VecDeque<Slot>,
    max_answered: Option<u64>,
    /// Slots still waiting for their reply.
    unanswered: usize,
}

impl Window {
    /// What `datagram` is, for worker `worker` whose requests carry `payload` after the header.
    fn classify(&self, datagram: &[u8], worker: u32, payload: &[u8]) -> Reply {
        let Some(seq) = sequence_of(datagram, worker) else {
            return Reply::Stray;
        };
        if seq < self.base {
            return Reply::Late;
        }
        let idx = (seq - self.base) as usize;
        match self.slots.get(idx) {
            None => Reply::Stray,
            Some(s) if s.answered => Reply::Duplicate,
            Some(_) if intact(datagram, payload) => Reply::Ok {
                idx,
                reordered: self.max_answered.is_some_and(|m| seq < m),
            },
            Some(_) => Reply::Mismatch { idx },
        }
    }

    /// `reply` as it stands at `now`: an answer `timeout` or more after its send is `Expired`.
    fn too_late(&self, reply: Reply, now: Instant, timeout: Duration) -> Reply {
        match reply {
            Reply::Ok { idx, .. } | Reply::Mismatch { idx }
                if now.saturating_duration_since(self.slots[idx].sent_at) >= timeout =>
            {
                Reply::Expired { idx }
            }
            r => r,
        }
    }

    /// A datagram intended at `intended` went out at `now`; its sequence number is
    /// `next_seq` before the call.
    fn sent(&mut self, intended: Instant, now: Instant) {
        self.next_seq += 1;
        self.unanswered += 1;
        self.slots.push_back(Slot {
            intended,
            sent_at: now,
            answered: false,
        });
    }

    /// Mark slot `idx` answered (`in_order`: the highest answered so far); its slot.
    fn answer(&mut self, idx: usize, in_order: bool) -> Slot {
        let slot = &mut self.slots[idx];
        slot.answered = true;
        self.unanswered -= 1;
        if in_order {
            self.max_answered = Some(self.base + idx as u64);
        }
        *slot
    }

    /// The oldest unanswered datagram failed (an ICMP error): its intended time, if any was
    /// waiting.
    fn fail_oldest(&mut self) -> Option<Instant> {
        let slot = self.slots.iter_mut().find(|s| !s.answered)?;
        slot.answered = true;
        self.unanswered -= 1;
        Some(slot.intended)
    }

    /// Drop slots older than `timeout` (all of them with `all`); returns the intended times of
    /// the unanswered ones among them, which are lost.
    fn expire(
        &mut self,
        now: Instant,
        timeout: Duration,
        all: bool,
        mut lost: impl FnMut(Instant),
    ) {
        while let Some(slot) = self.slots.front() {
            if !all && now.saturating_duration_since(slot.sent_at) < timeout {
                break;
            }
            if !slot.answered {
                self.unanswered -= 1;
                lost(slot.intended);
            }
            self.slots.pop_front();
            self.base += 1;
        }
    }
}

/// One flow: a socket to one target (its own source port) with its own schedule.
struct Flow {
    sock: UdpSocket,
    target: u32,
    pacer: Option<Pacer>,
    window: Window,
    /// The socket's send buffer was full: wait for a writable event, do not poll for it.
    blocked: bool,
    /// Closed loop only: pause after an ICMP refusal.
    backoff: Backoff,
    /// The report window this flow was last counted in as used (`Client::note_flow`).
    counted_in: Option<u64>,
    /// Paced: the flow has an entry in `UdpClient::due`.
    queued: bool,
}

/// A worker's UDP flows: of each target's `-c` flows, those `c` with `c % workers == id`.
pub(crate) struct UdpClient {
    flows: Vec<Flow>,
    /// Flows per target, over all workers.
    per_target: usize,
    /// Per flow of `flows`: its number among its target's flows (its share of the schedule).
    numbers: Vec<usize>,
    /// Paced: when each flow is due next (at most one entry per flow, never later than its
    /// next slot), so a turn visits only the flows that are due, however many there are.
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The flows taken off `due` this turn (kept for its allocation).
    taken: Vec<usize>,
}

/// This worker's flow numbers of each target: `id`, `id + workers`, ... below `flows`.
fn my_flows(flows: usize, id: usize, workers: usize) -> impl Iterator<Item = usize> {
    (id..flows).step_by(workers.max(1))
}

impl Traffic for UdpClient {
    fn new(core: &mut Client) -> Result<UdpClient> {
        let Mode::Udp { flows: per_target } = core.cfg.mode else {
            unreachable!("UDP traffic for a UDP run only")
        };
        let mut sources = crate::client::Sources::new(&core.cfg.source_addrs, core.id);
        let mut flows = Vec::new();
        let mut numbers = Vec::new();
        for (t, target) in core.cfg.targets.iter().enumerate() {
            for c in my_flows(per_target, core.id, core.workers) {
                let mut sock = open(target, sources.pick(target.addr), core.cfg.busy_poll_us)?;
                let token = fixed_token(flows.len());
                core.registry
                    .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(Error::Poll)?;
                flows.push(Flow {
                    sock,
                    target: t as u32,
                    pacer: None,
                    window: Window::default(),
                    blocked: false,
                    backoff: Backoff::new(),
                    counted_in: None,
                    queued: false,
                });
                numbers.push(c);
            }
        }
        Ok(UdpClient {
            flows,
            per_target,
            numbers,
            due: BinaryHeap::new(),
            taken: Vec::new(),
        })
    }

    fn begin(&mut self, core: &mut Client) {
        for (f, &c) in self.flows.iter_mut().zip(&self.numbers) {
            f.pacer = flow_pacer(core, f.target as usize, c, self.per_target);
        }
        for i in 0..self.flows.len() {
            self.queue(i);
        }
    }

    fn on_event(&mut self, core: &mut Client, ev: &Event, now: Instant) {
        let Some(i) = ev.token().0.checked_sub(FIXED_BASE) else {
            return;
        };
        if i >= self.flows.len() {
            return;
        }
        if ev.is_readable() || ev.is_error() {
            self.recv(core, i);
        }
        if ev.is_writable() {
            self.flows[i].blocked = false;
            self.send_due(core, i, now);
            self.queue(i);
        }
    }

    fn on_due(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        if !core.cfg.closed_loop() {
            return self.run_paced(core, now);
        }
        // Closed loop: a flow sends again as its reply comes; here only after a pause.
        let mut next = None;
        for i in 0..self.flows.len() {
            self.send_due(core, i, now);
            if !core.stopping {
                next = sooner(next, self.flows[i].backoff.until.filter(|u| *u > now));
            }
        }
        sooner(next, core.start_ahead(now))
    }

    fn sweep(&mut self, core: &mut Client, now: Instant) {
        for i in 0..self.flows.len() {
            self.expire(core, i, now, false);
        }
    }

    fn book_unsent(&mut self, core: &mut Client, end: Instant) {
        for f in &mut self.flows {
            if let Some(p) = &mut f.pacer {
                core.book_slots(f.target, p, end, Missed::NotStarted(Unsent::RunEnded));
            }
        }
    }

    fn in_flight(&self) -> bool {
        self.flows.iter().any(|f| f.window.unanswered > 0)
    }

    fn on_exit(&mut self, core: &mut Client, now: Instant) {
        // Datagrams still unanswered when the run ends are counted lost, never dropped.
        for i in 0..self.flows.len() {
            self.expire(core, i, now, true);
        }
    }
}

/// Flow `flow` of `flows` to `target`: its share of the target's `--rate` (slots `flow`,
/// `flow + flows`, ... of the target's schedule, so the flows add up to it exactly). `None`
/// in a closed loop or before the start.
fn flow_pacer(core: &Client, target: usize, flow: usize, flows: usize) -> Option<Pacer> {
    if core.cfg.closed_loop() || !core.started() {
        return None;
    }
    let clock = core.clock;
    Some(
        Pacer::split(core.cfg.rate, clock.t0, flow, flows)
            .with_end(clock.end)
            .with_arrival(core.cfg.arrival, (target * flows + flow) as u64),
    )
}

impl UdpClient {
    /// Paced: send what is due on the flows whose entry in `due` has come; the next entry.
    fn run_paced(&mut self, core: &mut Client, now: Instant) -> Option<Instant> {
        if core.stopping {
            return None;
        }
        if !core.sending(now) {
            return sooner(self.next_queued(), core.start_ahead(now));
        }
        let mut taken = std::mem::take(&mut self.taken);
        while let Some(&Reverse((at, i))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            self.flows[i].queued = false;
            taken.push(i);
        }
        for &i in &taken {
            self.send_due(core, i, now);
            self.queue(i);
        }
        taken.clear();
        self.taken = taken;
        self.next_queued()
    }

    /// Put paced flow `i` on `due` at its next slot, unless it is there already, has no slot
    /// left, or waits for its socket to take more.
    fn queue(&mut self, i: usize) {
        let f = &mut self.flows[i];
        if f.queued || f.blocked {
            return;
        }
        if let Some(at) = f.pacer.as_ref().and_then(|p| p.next_due()) {
            f.queued = true;
            self.due.push(Reverse((at, i)));
        }
    }

    /// When the first flow on `due` is due.
    fn next_queued(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Expire the datagrams of flow `i` older than `--timeout` (all with `all`).
    fn expire(&mut self, core: &mut Client, i: usize, now: Instant, all: bool) {
        let timeout = core.cfg.timeout;
        let f = &mut self.flows[i];
        let t = f.target;
        f.window
            .expire(now, timeout, all, |intended| core.lost(t, intended));
    }

    /// Send the datagrams of flow `i` that are due, at most `SEND_BURST`.
    fn send_due(&mut self, core: &mut Client, i: usize, now: Instant) {
        if core.stopping || !core.sending(now) {
            return;
        }
        for _ in 0..SEND_BURST {
            let f = &mut self.flows[i];
            let t = f.target;
            let intended = match f.pacer.as_ref() {
                Some(p) => match p.next_due() {
                    Some(d) if d <= now => d,
                    _ => return,
                },
                None => {
                    // Closed loop: one datagram in flight per flow.
                    if now >= core.clock.end || f.backoff.waiting(now) || f.window.unanswered > 0 {
                        return;
                    }
                    now
                }
            };
            let msg = core.cfg.message_bytes;
            let ts = now.saturating_duration_since(core.clock.t0).as_nanos() as u64;
            let buf = &mut core.send_buf[..msg];
            write_header(buf, core.id as u32, f.window.next_seq, ts);
            match f.sock.send(buf) {
                Ok(_) => {
                    if let Some(p) = f.pacer.as_mut() {
                        p.take(now);
                    }
                    f.window.sent(intended, now);
                    core.note_flow(t, intended, &mut f.counted_in);
                    core.record_start(t, intended, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.blocked = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A pending ICMP error (port unreachable) belongs to an earlier datagram:
                    // charge it to that one and send this slot again. Otherwise the error is
                    // this send's own, and the slot is spent.
                    if self.icmp_error(core, i, &e, now) {
                        continue;
                    }
                    let paced = match self.flows[i].pacer.as_mut() {
                        Some(p) => p.take(now).is_some(),
                        None => false,
                    };
                    core.count_error(t, Failure::of(&e), intended);
                    if !paced {
                        return;
                    }
                }
            }
        }
    }

    /// An error reported on flow `i`'s socket (ICMP unreachable for an earlier datagram): the
    /// oldest unanswered datagram failed with it. It is counted once, as that error and not
    /// also as lost. Returns false if no datagram was waiting (the error is not about one).
    fn icmp_error(&mut self, core: &mut Client, i: usize, e: &io::Error, now: Instant) -> bool {
        let f = &mut self.flows[i];
        let Some(intended) = f.window.fail_oldest() else {
            return false;
        };
        core.count_error(f.target, Failure::of(e), intended);
        self.expire(core, i, now, false);
        true
    }

    /// Read every datagram that has arrived on flow `i`'s socket.
    fn recv(&mut self, core: &mut Client, i: usize) {
        loop {
            let f = &mut self.flows[i];
            let n = match f.sock.recv(&mut core.recv_buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let now = Instant::now();
                    if self.icmp_error(core, i, &e, now) && self.flows[i].pacer.is_none() {
                        self.flows[i].backoff.failed(now);
                    }
                    continue;
                }
            };
            let now = Instant::now();
            let msg = core.cfg.message_bytes;
            let reply =
                f.window
                    .classify(&core.recv_buf[..n], core.id as u32, &core.send_buf[..msg]);
            self.on_reply(core, i, reply, now);
        }
    }

    /// Book one reply of flow `i`.
    fn on_reply(&mut self, core: &mut Client, i: usize, reply: Reply, now: Instant) {
        let f = &mut self.flows[i];
        let reply = f.window.too_late(reply, now, core.cfg.timeout);
        let t = f.target;
        match reply {
            Reply::Stray => core.note(t, now, |s| s.stray += 1),
            Reply::Late => core.note(t, now, |s| s.late += 1),
            Reply::Expired { idx } => {
                // Its datagram is lost (the sweep had not come round to it yet).
                let slot = f.window.answer(idx, false);
                core.lost(t, slot.intended);
                core.note(t, now, |s| s.late += 1);
            }
            Reply::Duplicate => core.note(t, now, |s| s.duplicate += 1),
            Reply::Ok { idx, reordered } => {
                let slot = f.window.answer(idx, !reordered);
                if reordered {
                    core.note(t, now, |s| s.reordered += 1);
                }
                f.backoff.answered();
                core.record(t, slot.intended, slot.sent_at, now);
            }
            Reply::Mismatch { idx } => {
                let slot = f.window.answer(idx, false);
                core.count_error(t, Failure::Mismatch, slot.intended);
            }
        }
        if matches!(
            reply,
            Reply::Ok { .. } | Reply::Mismatch { .. } | Reply::Expired { .. }
        ) {
            self.expire(core, i, now, false);
            if self.flows[i].pacer.is_none() {
                self.send_due(core, i, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: usize = 32;

    fn payload() -> Vec<u8> {
        (0..MSG).map(|i| b'a' + (i % 26) as u8).collect()
    }

    fn reply(worker: u32, seq: u64) -> Vec<u8> {
        let mut b = payload();
        write_header(&mut b, worker, seq, 7);
        b
    }

    /// A window with `n` datagrams sent, base 0.
    fn window(n: usize) -> Window {
        let t = Instant::now();
        let mut w = Window::default();
        for _ in 0..n {
            w.sent(t, t);
        }
        w
    }

    #[test]
    fn replies_are_classified_by_header_sequence_and_payload() {
        let w = window(3);
        let p = payload();
        assert_eq!(
            w.classify(&reply(1, 0), 1, &p),
            Reply::Ok {
                idx: 0,
                reordered: false
            }
        );
        assert_eq!(
            w.classify(&reply(2, 0), 1, &p),
            Reply::Stray,
            "another worker's"
        );
        assert_eq!(
            w.classify(&reply(1, 0)[..20], 1, &p),
            Reply::Stray,
            "shorter than a header"
        );
        assert_eq!(w.classify(&[0u8; MSG], 1, &p), Reply::Stray, "no magic");
        assert_eq!(w.classify(&reply(1, 3), 1, &p), Reply::Stray, "never sent");
        let mut wrong = reply(1, 1);
        wrong[MSG - 1] ^= 1;
        assert_eq!(w.classify(&wrong, 1, &p), Reply::Mismatch { idx: 1 });
        assert_eq!(
            w.classify(&reply(1, 2)[..MSG - 1], 1, &p),
            Reply::Mismatch { idx: 2 },
            "ours, but cut short"
        );
    }

    #[test]
    fn answers_make_duplicates_reordering_and_late_replies() {
        let t = Instant::now();
        let mut w = window(3);
        let p = payload();
        // 2 answered first, then 0: 0 is reordered; 2 again is a duplicate.
        w.answer(2, true);
        assert_eq!(w.unanswered, 2);
        assert_eq!(
            w.classify(&reply(1, 0), 1, &p),
            Reply::Ok {
                idx: 0,
                reordered: true
            }
        );
        assert_eq!(w.classify(&reply(1, 2), 1, &p), Reply::Duplicate);
        // Expiry: every slot older than the timeout goes; the unanswered ones are lost.
        let mut lost = 0;
        w.expire(
            t + Duration::from_secs(2),
            Duration::from_secs(1),
            false,
            |_| lost += 1,
        );
        assert_eq!((lost, w.base, w.unanswered), (2, 3, 0));
        assert_eq!(w.classify(&reply(1, 1), 1, &p), Reply::Late);
    }

    #[test]
    fn an_answer_after_the_timeout_has_expired() {
        let t = Instant::now();
        let w = window(1);
        let ok = Reply::Ok {
            idx: 0,
            reordered: false,
        };
        let timeout = Duration::from_micros(200);
        assert_eq!(w.too_late(ok, t, timeout), ok);
        let later = t + Duration::from_secs(1);
        assert_eq!(w.too_late(ok, later, timeout), Reply::Expired { idx: 0 });
        let bad = Reply::Mismatch { idx: 0 };
        assert_eq!(w.too_late(bad, later, timeout), Reply::Expired { idx: 0 });
        assert_eq!(w.too_late(Reply::Stray, later, timeout), Reply::Stray);
    }

    #[test]
    fn flows_are_dealt_to_the_workers_each_once() {
        let mut all: Vec<usize> = (0..3).flat_map(|w| my_flows(10, w, 3)).collect();
        assert_eq!(my_flows(10, 1, 3).collect::<Vec<_>>(), [1, 4, 7]);
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(my_flows(2, 3, 4).count(), 0, "fewer flows than workers");
    }

    #[test]
    fn an_icmp_error_fails_the_oldest_unanswered_once() {
        let mut w = window(2);
        w.answer(0, true);
        assert!(w.fail_oldest().is_some());
        assert_eq!(w.unanswered, 0);
        assert_eq!(w.fail_oldest(), None, "nothing left to fail");
        let mut lost = 0;
        w.expire(Instant::now(), Duration::ZERO, true, |_| lost += 1);
        assert_eq!(lost, 0, "failed, not also lost");
    }
}
