//! Open-loop send schedules as pure arithmetic: the caller supplies `now`.
//!
//! Send `k` of a schedule is due at `start + (offset + k * stride) / rate`. One stream at `rate`
//! split over `n` workers gives worker `i` the slots `i, i + n, i + 2n, ...` (offset `i`,
//! stride `n`): together the workers send exactly the total, evenly spaced, also when the rate is
//! below the number of workers or below 1/s. A persistent connection `c` of `n` with its own rate
//! starts at phase `c / n` of its period, so connections do not fire in the same microsecond.
//!
//! With `Arrival::Poisson` the gaps between a stream's slots are drawn from an exponential
//! distribution of the same mean instead (`--arrival poisson`), from a seeded generator, so a
//! run can be repeated exactly.
//!
//! A late send keeps its intended time: latency is measured from it (no coordinated omission).
//! After a stall the schedule is caught up as fast as the caller can send, never skipped.
//! Leaves to others: reading the clock, I/O, what a send is.

use std::time::{Duration, Instant};

/// How the slots of a schedule are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrival {
    /// Evenly: slot k at `start + (offset + k * stride) / rate`.
    #[default]
    Uniform,
    /// A Poisson process of the same mean rate: exponential gaps, drawn from `seed`.
    Poisson { seed: u64 },
}

/// An open-loop schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period_ns: f64,
    offset: f64,
    stride: f64,
    next_k: u64,
    end: Option<Instant>,
    /// Poisson arrivals: the generator of the gaps and the next slot (ns after `start`).
    poisson: Option<(SplitMix64, f64)>,
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
            poisson: None,
        }
    }

    /// The same mean rate with `arrival`'s spacing; `stream` tells this schedule's draws apart
    /// from those of every other schedule of the run.
    pub fn with_arrival(mut self, arrival: Arrival, stream: u64) -> Pacer {
        if let Arrival::Poisson { seed } = arrival {
            let mut rng = SplitMix64(seed ^ SplitMix64(stream).next());
            let first = rng.gap(self.mean_gap_ns());
            self.poisson = Some((rng, first));
        }
        self
    }

    /// The mean time between two slots of this schedule.
    fn mean_gap_ns(&self) -> f64 {
        self.stride * self.period_ns
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
        let t = match &self.poisson {
            Some((_, next_ns)) => self.start + Duration::from_nanos(*next_ns as u64),
            None => self.slot(self.next_k),
        };
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
        self.advance();
        Some(t)
    }

    /// Past the next slot.
    fn advance(&mut self) {
        self.next_k += 1;
        let mean = self.mean_gap_ns();
        if let Some((rng, next_ns)) = &mut self.poisson {
            *next_ns += rng.gap(mean);
        }
    }

    /// Skip every slot due by `now` without sending it; returns how many were skipped.
    pub fn skip_to(&mut self, now: Instant) -> u64 {
        let n = self.backlog(now);
        for _ in 0..n {
            self.advance();
        }
        n
    }

    /// Slots consumed so far.
    pub fn taken(&self) -> u64 {
        self.next_k
    }

    /// Slots due by `now` that have not been taken (how far behind the caller is).
    pub fn backlog(&self, now: Instant) -> u64 {
        if self.poisson.is_some() {
            // No closed form: walk a copy of the schedule (a stall's worth of draws).
            let mut p = self.clone();
            let mut n = 0;
            while p.take(now).is_some() {
                n += 1;
            }
            return n;
        }
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

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, seedable generator whose outputs
/// pass BigCrush; plenty for drawing arrival gaps, and repeatable from its seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An exponentially distributed gap of mean `mean_ns`: -ln(U) * mean, U uniform in (0, 1].
    fn gap(&mut self, mean_ns: f64) -> f64 {
        let u = ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        -u.ln() * mean_ns
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

    #[test]
    fn poisson_arrivals_keep_the_mean_rate_and_repeat_from_the_seed() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(100);
        let schedule = |seed: u64, stream: u64| -> Vec<Instant> {
            let mut p = Pacer::split(1000.0, t0, 0, 1)
                .with_end(end)
                .with_arrival(Arrival::Poisson { seed }, stream);
            std::iter::from_fn(|| p.take(end)).collect()
        };
        let a = schedule(7, 0);
        assert_eq!(a, schedule(7, 0), "the same seed gives the same schedule");
        assert_ne!(a, schedule(7, 1), "another stream draws its own gaps");
        assert_ne!(a, schedule(8, 0));
        // 100,000 expected; a Poisson count's standard deviation is sqrt(100,000) = 316.
        assert!(
            (a.len() as i64 - 100_000).abs() < 2_000,
            "{} slots",
            a.len()
        );
        assert!(a.windows(2).all(|w| w[0] <= w[1]) && *a.last().unwrap() < end);
        // Exponential gaps: the standard deviation equals the mean (1 ms).
        let gaps: Vec<f64> = a
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (mean - 1.0).abs() < 0.02 && (var.sqrt() - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }

    #[test]
    fn poisson_backlog_and_skip_agree_with_take() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000.0, t0, 0.0, 1.0).with_arrival(Arrival::Poisson { seed: 1 }, 3);
        let mut q = p.clone();
        let at = t0 + ms(50);
        let n = p.backlog(at);
        assert_eq!(p.skip_to(at), n);
        let taken = std::iter::from_fn(|| q.take(at)).count() as u64;
        assert_eq!(taken, n);
        assert_eq!(p.next_due(), q.next_due());
        assert_eq!(p.taken(), n);
    }
}
