//! The open-file limit: raise `RLIMIT_NOFILE` to its hard limit and say plainly when a run needs
//! more descriptors than the process may have.
//!
//! Leaves to others: deciding how many descriptors a run needs (`cli`).

use crate::{Error, Result};
use std::io;

/// Descriptors reserved for stdio, epoll instances, wakers, timers, listeners and the reporter.
pub const SLACK_FDS: u64 = 64;

/// The soft and hard `RLIMIT_NOFILE` after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and return the limits now in force.
pub fn raise_nofile() -> Result<NoFile> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass, which lives on our stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(Error::Rlimit(io::Error::last_os_error()));
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Ok(NoFile {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// Check that `needed` descriptors (plus slack) fit under the limit; if not, a warning that names
/// both numbers and how to raise the limit. The run goes on: excess sockets fail with EMFILE,
/// which the engine counts.
pub fn shortfall(limit: NoFile, needed: u64) -> Option<String> {
    let want = needed.saturating_add(SLACK_FDS);
    if want <= limit.soft {
        return None;
    }
    Some(format!(
        "this run needs about {want} file descriptors but the limit is {} (hard limit {}); \
         connections beyond it will fail with EMFILE and be counted. Raise it with `ulimit -n {want}` \
         (or LimitNOFILE= in a systemd unit); raising the hard limit needs root/CAP_SYS_RESOURCE",
        limit.soft, limit.hard
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_reaches_the_hard_limit() {
        let l = raise_nofile().unwrap();
        assert_eq!(l.soft, l.hard);
    }

    #[test]
    fn shortfall_names_both_numbers() {
        let l = NoFile {
            soft: 1000,
            hard: 1000,
        };
        assert!(shortfall(l, 100).is_none());
        let msg = shortfall(l, 5000).unwrap();
        assert!(msg.contains("5064") && msg.contains("1000"), "{msg}");
    }
}
