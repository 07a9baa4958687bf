//! Open-loop send schedules as pure arithmetic: the caller supplies `now`.
//!
//! Send `k` of a schedule is due at `start + (offset + k * stride) / rate`. One stream at `rate`
//! split over `n` workers gives worker `i` the slots `i, i + n, i + 2n, ...` (offset `i`,
//! stride `n`): together the workers send exactly the total, evenly spaced, also when the rate is
//! below the number of workers or below 1/s. A persistent connection `c` of `n` with its own rate
//! starts at phase `c / n` of its period, so connections do not fire in the same microsecond.
//!
//! A late send keeps its intended time: latency is measured from it (no coordinated omission).
//! After a stall the schedule is caught up as fast as the caller can send, never skipped.
//! Leaves to others: reading the clock, I/O, what a send is.

use std::time::{Duration, Instant};

/// An open-loop schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period_ns: f64,
    offset: f64,
    stride: f64,
    next_k: u64,
    end: Option<Instant>,
}

impl Pacer {
    /// A schedule of `rate_per_sec` (> 0) slots per second from `start`, first slot at
    /// `offset` periods, then every `stride` periods.
    pub fn new(rate_per_sec: f64, start: Instant, offset: f64, stride: f64) -> Pacer {
        debug_assert!(rate_per_sec > 0.0 && stride > 0.0);
        Pacer {
            start,
            period_ns: 1e9 / rate_per_sec,
            offset,
            stride,
            next_k: 0,
            end: None,
        }
    }

    /// Worker `worker` of `workers` sharing one stream of `rate_per_sec`.
    pub fn split(rate_per_sec: f64, start: Instant, worker: usize, workers: usize) -> Pacer {
        Pacer::new(rate_per_sec, start, worker as f64, workers.max(1) as f64)
    }

    /// Connection `conn` of `conns`, each with its own `rate_per_sec`, phases spread evenly
    /// over the first period and centred in their slices (`(conn + 0.5) / conns`), so that even
    /// connection 0 has a moment to connect before its first slot.
    pub fn phased(rate_per_sec: f64, start: Instant, conn: usize, conns: usize) -> Pacer {
        Pacer::new(
            rate_per_sec,
            start,
            (conn as f64 + 0.5) / conns.max(1) as f64,
            1.0,
        )
    }

    /// No slot is due at or after `end`.
    pub fn with_end(mut self, end: Instant) -> Pacer {
        self.end = Some(end);
        self
    }

    fn slot(&self, k: u64) -> Instant {
        let ns = (self.offset + k as f64 * self.stride) * self.period_ns;
        self.start + Duration::from_nanos(ns as u64)
    }

    /// When the next slot is due, or `None` once the schedule has ended.
    pub fn next_due(&self) -> Option<Instant> {
        let t = self.slot(self.next_k);
        match self.end {
            Some(end) if t >= end => None,
            _ => Some(t),
        }
    }

    /// If a slot is due at `now`, consume it and return its intended send time.
    pub fn take(&mut self, now: Instant) -> Option<Instant> {
        let t = self.next_due()?;
        if t > now {
            return None;
        }
        self.next_k += 1;
        Some(t)
    }

    /// Skip every slot due by `now` without sending it; returns how many were skipped.
    pub fn skip_to(&mut self, now: Instant) -> u64 {
        let n = self.backlog(now);
        self.next_k += n;
        n
    }

    /// Slots consumed so far.
    pub fn taken(&self) -> u64 {
        self.next_k
    }

    /// Slots due by `now` that have not been taken (how far behind the caller is).
    pub fn backlog(&self, now: Instant) -> u64 {
        let upto = match self.end {
            Some(end) if now >= end => end,
            _ => now,
        };
        let elapsed = upto.saturating_duration_since(self.start).as_nanos() as f64;
        let due = ((elapsed / self.period_ns - self.offset) / self.stride).floor() + 1.0;
        // Slots exactly at `end` are excluded by next_due; guard the float edge the same way.
        let mut due = if due < 0.0 { 0 } else { due as u64 };
        while due > 0 && self.end.is_some_and(|e| self.slot(due - 1) >= e) {
            due -= 1;
        }
        due.saturating_sub(self.next_k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn slots_are_start_plus_k_over_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000.0, t0, 0.0, 1.0);
        assert_eq!(p.take(t0), Some(t0));
        assert_eq!(p.take(t0), None, "the next slot is 1 ms away");
        assert_eq!(p.next_due(), Some(t0 + ms(1)));
        // After a stall of 10 ms the caller catches up slot by slot, keeping intended times.
        let late = t0 + ms(10);
        let taken: Vec<_> = std::iter::from_fn(|| p.take(late)).collect();
        assert_eq!(taken.len(), 10);
        assert_eq!(taken[0], t0 + ms(1));
        assert_eq!(taken[9], t0 + ms(10));
    }

    #[test]
    fn split_workers_send_exactly_the_total_even_below_worker_count() {
        let t0 = Instant::now();
        for (rate, workers, secs) in [(3.0, 8, 10u64), (0.5, 2, 20), (1000.0, 3, 1), (7.0, 2, 3)] {
            let end = t0 + Duration::from_secs(secs);
            let mut all = Vec::new();
            for w in 0..workers {
                let mut p = Pacer::split(rate, t0, w, workers).with_end(end);
                while let Some(t) = p.take(end) {
                    all.push(t);
                }
            }
            all.sort();
            let expected = (rate * secs as f64).round() as usize;
            assert_eq!(all.len(), expected, "rate {rate} over {workers} workers");
            for pair in all.windows(2) {
                let gap = (pair[1] - pair[0]).as_secs_f64();
                assert!(
                    (gap - 1.0 / rate).abs() < 1e-6,
                    "even spacing at rate {rate}"
                );
            }
        }
    }

    #[test]
    fn phased_connections_start_spread_over_one_period() {
        let t0 = Instant::now();
        let firsts: Vec<_> = (0..4)
            .map(|c| Pacer::phased(10.0, t0, c, 4).next_due().unwrap() - t0)
            .collect();
        let us = Duration::from_micros;
        assert_eq!(firsts, vec![us(12_500), us(37_500), us(62_500), us(87_500)]);
    }

    #[test]
    fn backlog_counts_due_untaken_slots() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100.0, t0, 0.0, 1.0).with_end(t0 + ms(100));
        assert_eq!(p.backlog(t0 + ms(35)), 4);
        p.take(t0 + ms(35));
        assert_eq!(p.backlog(t0 + ms(35)), 3);
        assert_eq!(
            p.backlog(t0 + ms(500)),
            9,
            "the end caps the schedule at 10 slots"
        );
    }
}
