//! Which core each worker runs on: parse `--cpus 0-3,6`, plan `--workers N`, pin a thread.
//!
//! Leaves to others: spawning threads (`reactor`), deciding how many workers a run needs (`cli`).

use crate::{Error, Result};

/// Where worker `i` runs: `cores[i % cores.len()]`, pinned strictly when the user named the cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The cores in worker order; empty means "do not pin".
    pub cores: Vec<usize>,
    /// Number of worker threads.
    pub workers: usize,
    /// True when `--cpus` named the cores: then a failed pin is an error, not a warning.
    pub strict: bool,
}

impl Plan {
    /// The core worker `i` should run on, if any.
    pub fn core_for(&self, i: usize) -> Option<usize> {
        if self.cores.is_empty() {
            None
        } else {
            Some(self.cores[i % self.cores.len()])
        }
    }
}

/// Parse a core list such as `0-3,6` into `[0, 1, 2, 3, 6]`, keeping the order given.
pub fn parse_cpu_list(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty entry in core list {s:?}"));
        }
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{t:?} is not a core number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("core range {part:?} runs backwards"));
                }
                if b - a > 4096 {
                    return Err(format!("core range {part:?} is too large"));
                }
                cores.extend(a..=b);
            }
            None => cores.push(num(part)?),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = cores.iter().find(|c| !seen.insert(**c)) {
        return Err(format!("core {dup} is listed twice"));
    }
    Ok(cores)
}

/// The cores this process may run on (its affinity mask), in ascending order.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Decide the worker count and cores from `--cpus` and `--workers`.
///
/// `--cpus` alone: one worker per listed core. `--workers N` alone: N workers on the first N
/// available cores (wrapping round when N exceeds them). Neither: one worker per available core.
pub fn plan(cpus: Option<&[usize]>, workers: Option<usize>) -> Result<Plan> {
    let available = available_cores();
    if let Some(list) = cpus {
        if list.is_empty() {
            return Err(Error::Config("invalid --cpus: the list is empty".into()));
        }
        if let Some(bad) = list.iter().find(|c| !available.contains(c)) {
            return Err(Error::Config(format!(
                "invalid --cpus: core {bad} does not exist or is not allowed for this process (available: {})",
                format_list(&available)
            )));
        }
        let n = workers.unwrap_or(list.len());
        return Ok(Plan {
            cores: list.to_vec(),
            workers: n,
            strict: true,
        });
    }
    let n = workers.unwrap_or(available.len().max(1));
    let cores = available.iter().copied().take(n).collect();
    Ok(Plan {
        cores,
        workers: n,
        strict: false,
    })
}

/// Pin the calling thread to `core`. Returns false when the kernel refused.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

fn format_list(cores: &[usize]) -> String {
    cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles_in_order() {
        assert_eq!(parse_cpu_list("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_cpu_list("5,1").unwrap(), vec![5, 1]);
        assert_eq!(parse_cpu_list(" 2 ").unwrap(), vec![2]);
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in ["", "a", "1,,2", "3-1", "1,1", "-1", "0-99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn plan_rejects_a_core_that_does_not_exist() {
        let err = plan(Some(&[100_000]), None).unwrap_err();
        assert!(err.to_string().contains("core 100000"), "{err}");
    }

    #[test]
    fn plan_defaults_to_one_worker_per_available_core() {
        let p = plan(None, None).unwrap();
        assert_eq!(p.workers, available_cores().len().max(1));
        let p = plan(None, Some(3)).unwrap();
        assert_eq!(p.workers, 3);
        assert!(!p.strict);
        let first = available_cores()[0];
        let p = plan(Some(&[first]), Some(2)).unwrap();
        assert_eq!((p.workers, p.core_for(1)), (2, Some(first)));
    }
}
