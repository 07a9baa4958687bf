//! Whether a run passed: the checks of `--max-error-rate` and `--slo` on a row of totals.
//!
//! A target passes when some request completed (a target with requests on the books and none
//! answered always fails: refused, silent, unreachable), its failed share stays within
//! `--max-error-rate`, and each `--slo` bound holds. Latency bounds are on the intended-time
//! latency the report prints. The generator's own misses (`not_started`) are not the target's
//! failures and count in no rate. `connect` exits 1 when a check failed, naming each on stderr.
//!
//! Leaves to others: which rows are judged and how the verdict is printed (`report`), the exit
//! status (`cli`).

use crate::report::{failure_list, Stats};
use std::time::Duration;

/// One bound of `--slo`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// `pNN=DURATION`: the NN-th percentile of latency at most this.
    Percentile(f64, Duration),
    /// `max=DURATION`.
    Max(Duration),
    /// `mean=DURATION`.
    Mean(Duration),
    /// `errors=PCT%`: failed requests (errors and lost) at most this share, in percent.
    Errors(f64),
}

/// What a row of totals must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `--max-error-rate`, percent: 100 lets any share of failures pass (only a target with
    /// nothing completed fails).
    pub max_error_rate: f64,
    /// `--slo` bounds, in the order given.
    pub slo: Vec<Bound>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_error_rate: 100.0,
            slo: Vec::new(),
        }
    }
}

impl Thresholds {
    /// The checks `s` fails, one reason each (none: it passed).
    pub fn judge(&self, s: &Stats) -> Vec<String> {
        let failed = s.error_count() + s.lost;
        let attempts: u64 = s.conn_errors.iter().sum();
        let mut reasons = Vec::new();
        if s.completed == 0 && failed + attempts > 0 {
            reasons.push(format!("no request completed ({})", failure_kinds(s)));
        }
        let rate = error_rate(s);
        if self.max_error_rate < 100.0 && rate.is_some_and(|r| r > self.max_error_rate) {
            reasons.push(format!(
                "errors {} > --max-error-rate {}",
                pct(rate.unwrap_or(0.0)),
                pct(self.max_error_rate)
            ));
        }
        for b in &self.slo {
            if let Some(r) = check(b, s) {
                reasons.push(r);
            }
        }
        reasons
    }
}

/// The failed share of the requests that were answered or failed, percent; `None` if there
/// were none.
fn error_rate(s: &Stats) -> Option<f64> {
    let failed = s.error_count() + s.lost;
    let total = s.completed + failed;
    (total > 0).then(|| failed as f64 * 100.0 / total as f64)
}

/// What failed instead: `500 failed: refused=500 lost=3`, then the connection attempts that
/// failed with no request in flight (a closed loop's refused dials), if any.
fn failure_kinds(s: &Stats) -> String {
    let mut kinds = failure_list(&s.errors);
    if s.lost > 0 {
        let sep = if kinds.is_empty() { "" } else { " " };
        kinds.push_str(&format!("{sep}lost={}", s.lost));
    }
    let failed = s.error_count() + s.lost;
    let mut text = if kinds.is_empty() {
        format!("{failed} failed")
    } else {
        format!("{failed} failed: {kinds}")
    };
    let attempts = failure_list(&s.conn_errors);
    if !attempts.is_empty() {
        text.push_str(&format!("; connection attempts failed: {attempts}"));
    }
    text
}

/// The reason `s` breaks bound `b`, if it does. A latency bound with no latency measured
/// (nothing completed) cannot be shown to hold: it fails, as unknown.
fn check(b: &Bound, s: &Stats) -> Option<String> {
    let h = &s.latency;
    let (name, measured, limit) = match *b {
        Bound::Errors(limit) => {
            let rate = error_rate(s);
            return match rate {
                Some(r) if r <= limit => None,
                Some(r) => Some(format!("errors {} > slo {}", pct(r), pct(limit))),
                None => Some(format!(
                    "errors unknown (no request answered) vs slo {}",
                    pct(limit)
                )),
            };
        }
        Bound::Percentile(p, limit) => (
            format!("p{}", trim(p)),
            (!h.is_empty()).then(|| Duration::from_nanos(h.value_at_quantile(p / 100.0))),
            limit,
        ),
        Bound::Max(limit) => (
            "max".to_string(),
            (!h.is_empty()).then(|| Duration::from_nanos(h.max())),
            limit,
        ),
        Bound::Mean(limit) => (
            "mean".to_string(),
            (!h.is_empty()).then(|| Duration::from_nanos(h.mean() as u64)),
            limit,
        ),
    };
    match measured {
        Some(m) if m <= limit => None,
        Some(m) => Some(format!("{name} {} > slo {}", dur(m), dur(limit))),
        None => Some(format!(
            "{name} unknown (no request completed) vs slo {}",
            dur(limit)
        )),
    }
}

/// Parse `--slo p99=2ms,p99.9=10ms,max=50ms,mean=1ms,errors=0.1%`.
pub fn parse_slo(s: &str) -> Result<Vec<Bound>, String> {
    let mut bounds = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("an empty entry".into());
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        let latency =
            || crate::cli::parse_duration(value).map_err(|e| format!("{key}={value:?}: {e}"));
        let bound = match key {
            "errors" => {
                Bound::Errors(parse_pct(value).map_err(|e| format!("errors={value:?}: {e}"))?)
            }
            "max" => Bound::Max(latency()?),
            "mean" => Bound::Mean(latency()?),
            _ => {
                let p = key
                    .strip_prefix('p')
                    .and_then(|p| p.parse::<f64>().ok())
                    .filter(|p| *p > 0.0 && *p < 100.0)
                    .ok_or_else(|| {
                        format!("unknown key {key:?} (pNN such as p99 or p99.9, max, mean, errors)")
                    })?;
                Bound::Percentile(p, latency()?)
            }
        };
        bounds.push(bound);
    }
    Ok(bounds)
}

/// A percentage `0.1%` or `0.1`, from 0 to 100.
pub fn parse_pct(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let n: f64 = t
        .strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse()
        .map_err(|_| "not a percentage".to_string())?;
    if !(0.0..=100.0).contains(&n) {
        return Err("must be from 0 to 100 %".into());
    }
    Ok(n)
}

/// `0.1 %`, `12.5 %`, `100 %`.
fn pct(p: f64) -> String {
    format!("{} %", trim((p * 1000.0).round() / 1000.0))
}

/// A number without trailing zeros: 99.9, 50, 0.125.
fn trim(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A latency in the unit that reads best: `850 µs`, `12.3 ms`, `2.5 s`.
fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{} µs", trim(us.round()))
    } else if us < 1e6 {
        format!("{} ms", trim((us / 100.0).round() / 10.0))
    } else {
        format!("{} s", trim((us / 1e5).round() / 10.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Failure;

    fn stats(latencies_us: &[u64], refused: u64, lost: u64) -> Stats {
        let mut s = Stats::new();
        for &l in latencies_us {
            s.record(l * 1000, l * 1000, 64);
        }
        for _ in 0..refused {
            s.error(Failure::Refused);
        }
        s.lost = lost;
        s
    }

    #[test]
    fn slo_parses_every_key_and_refuses_the_rest() {
        assert_eq!(
            parse_slo("p99=2ms, p99.9=10ms,max=1s,mean=500us,errors=0.1%").unwrap(),
            vec![
                Bound::Percentile(99.0, Duration::from_millis(2)),
                Bound::Percentile(99.9, Duration::from_millis(10)),
                Bound::Max(Duration::from_secs(1)),
                Bound::Mean(Duration::from_micros(500)),
                Bound::Errors(0.1),
            ]
        );
        for bad in [
            "",
            "p99",
            "p99=",
            "p100=1ms",
            "p0=1ms",
            "q99=1ms",
            "p99=fast",
            "errors=101%",
            "errors=x",
            "p99=1ms,,max=2ms",
        ] {
            assert!(parse_slo(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn nothing_completed_fails_and_nothing_booked_passes() {
        let t = Thresholds::default();
        assert_eq!(
            t.judge(&stats(&[], 500, 0)),
            vec!["no request completed (500 failed: refused=500)".to_string()]
        );
        assert_eq!(
            t.judge(&stats(&[], 0, 7)),
            vec!["no request completed (7 failed: lost=7)".to_string()]
        );
        assert!(
            t.judge(&stats(&[], 0, 0)).is_empty(),
            "a run stopped before any request"
        );
        let mut dials = stats(&[], 0, 0);
        dials.conn_error(Failure::Refused);
        assert_eq!(
            t.judge(&dials),
            vec![
                "no request completed (0 failed; connection attempts failed: refused=1)"
                    .to_string()
            ],
            "a closed loop whose every dial was refused"
        );
        assert!(
            t.judge(&stats(&[10], 999, 0)).is_empty(),
            "default: any share of errors"
        );
    }

    #[test]
    fn error_rate_and_slo_bounds_are_checked() {
        let s = stats(&[100, 200, 300, 4000], 1, 0); // 1 of 5 failed: 20 %
        let t = Thresholds {
            max_error_rate: 10.0,
            slo: parse_slo("p50=250us,max=5ms,errors=25%").unwrap(),
        };
        assert_eq!(
            t.judge(&s),
            vec!["errors 20 % > --max-error-rate 10 %".to_string()]
        );
        let t = Thresholds {
            max_error_rate: 100.0,
            slo: parse_slo("p50=150us,max=2ms,errors=5%").unwrap(),
        };
        assert_eq!(
            t.judge(&s),
            vec![
                "p50 200 µs > slo 150 µs".to_string(),
                "max 4 ms > slo 2 ms".to_string(),
                "errors 20 % > slo 5 %".to_string(),
            ]
        );
        let unknown = Thresholds {
            max_error_rate: 100.0,
            slo: parse_slo("p99=1ms").unwrap(),
        };
        assert_eq!(
            unknown.judge(&stats(&[], 0, 0)),
            vec!["p99 unknown (no request completed) vs slo 1 ms".to_string()]
        );
    }
}
