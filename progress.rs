//! The progress line on stderr (`connect --progress`, on by default when stderr is a
//! terminal): one line rewritten in place every `TICK` (`\r`, the text, `\x1b[K`) saying what
//! the run does (the `--start-at` wait, the ramp, warm-up, measurement, a sweep step, the
//! drain), the time elapsed and left, the last window's rate and the errors so far.
//!
//! It reads `metrics::Live`, which the reporter updates per window, so it adds nothing to the
//! workers. The line and the reporter's rows share the terminal: the reporter takes
//! `Live::hold_screen` around what it prints, which clears a drawn line first when stdout is a
//! terminal too, and the line is drawn again on the next tick.
//!
//! Leaves to others: the numbers (`metrics`, `report`), when to start and stop it (`cli`).

use crate::metrics::{Live, Phase, Snapshot};
use crate::{Error, Result};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How often the line is redrawn: often enough to see time pass, rarely enough to cost nothing.
const TICK: Duration = Duration::from_millis(250);

/// Clear from the cursor to the end of the line (ECMA-48 EL).
const CLEAR_TO_EOL: &str = "\x1b[K";

/// The state of the progress line, behind `Live::screen`.
#[derive(Debug, Default)]
pub struct Screen {
    /// A progress line is on the terminal now (no newline after it).
    drawn: bool,
    /// Stdout is a terminal too: clear the line before the reporter prints.
    stdout_tty: bool,
}

impl Screen {
    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{CLEAR_TO_EOL}");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// Held while the reporter prints: the progress line is off the terminal until it is dropped.
pub struct ScreenGuard<'a> {
    _held: MutexGuard<'a, Screen>,
}

impl Live {
    /// Keep the progress line off the terminal while the caller prints to stdout (clearing it
    /// if stdout is a terminal and a line is drawn).
    pub fn hold_screen(&self) -> ScreenGuard<'_> {
        let mut s = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        if s.stdout_tty {
            s.clear();
        }
        ScreenGuard { _held: s }
    }
}

/// Columns of the terminal on stderr, if it says.
fn columns() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize, which lives on our stack.
    let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// The progress thread (`connperf-progress`). `stop` clears the line and joins it.
pub struct Progress {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<std::thread::JoinHandle<()>>,
    live: Arc<Live>,
}

impl Progress {
    /// Start drawing `live`'s progress on stderr.
    pub fn start(live: Arc<Live>) -> Result<Progress> {
        live.screen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stdout_tty = std::io::stdout().is_terminal();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (l, s) = (live.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("connperf-progress".into())
            .spawn(move || draw_until_stopped(&l, &s))
            .map_err(Error::Spawn)?;
        Ok(Progress {
            stop,
            handle: Some(handle),
            live,
        })
    }

    /// Stop drawing and clear the line.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.live
            .screen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.halt();
    }
}

fn draw_until_stopped(live: &Live, stop: &(Mutex<bool>, Condvar)) {
    let (m, cv) = stop;
    let mut stopped = m.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        drop(stopped);
        draw(live);
        stopped = m.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            break;
        }
        stopped = cv
            .wait_timeout(stopped, TICK)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn draw(live: &Live) {
    let snap = live.snapshot();
    let mut screen = live.screen.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut text) = line(&snap, Instant::now(), SystemTime::now()) else {
        screen.clear();
        return;
    };
    if let Some(cols) = columns() {
        // A line that wraps cannot be rewritten in place with `\r`.
        if let Some((i, _)) = text.char_indices().nth(cols.saturating_sub(1)) {
            text.truncate(i);
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{text}{CLEAR_TO_EOL}");
    let _ = err.flush();
    screen.drawn = true;
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The progress text for `snap` at `now`; `None`: nothing to show (setup, done).
pub fn line(snap: &Snapshot, now: Instant, wall: SystemTime) -> Option<String> {
    let counts = |s: &mut String| {
        match snap.rate_per_sec {
            Some(r) => s.push_str(&format!(", {r:.0} req/s")),
            None => s.push_str(", - req/s"),
        }
        // Like the rate: unknown until the reporter folds in the first window, never a 0
        // that only means "not counted yet".
        if snap.windows == 0 {
            s.push_str(", - errors");
        } else {
            s.push_str(&format!(", {} errors", snap.counts.failed()));
        }
        if snap.counts.lost > 0 {
            s.push_str(&format!(", {} lost", snap.counts.lost));
        }
    };
    let text = match snap.phase {
        Phase::Setup | Phase::Done | Phase::Serve { .. } => return None,
        Phase::StartAt { at } => format!(
            "connperf: waiting for --start-at: {} to go",
            secs(at.duration_since(wall).unwrap_or_default())
        ),
        Phase::Ramp { since } => format!(
            "connperf: ramp: connecting for {}",
            secs(now.saturating_duration_since(since))
        ),
        Phase::Run { measure, end } => {
            let mut s = String::from("connperf: ");
            if now < measure {
                s.push_str(&format!(
                    "warm-up: {} left",
                    secs(measure.saturating_duration_since(now))
                ));
            } else {
                let total = end.saturating_duration_since(measure);
                let done = now.saturating_duration_since(measure).min(total);
                s.push_str(&format!(
                    "{} of {}, {} left",
                    secs(done),
                    secs(total),
                    secs(total - done)
                ));
                counts(&mut s);
            }
            s
        }
        Phase::Drain => {
            let mut s = String::from("connperf: waiting for replies in flight");
            counts(&mut s);
            s
        }
    };
    Some(match snap.step {
        Some(st) => text.replacen(
            "connperf: ",
            &format!(
                "connperf: sweep step {}/{} at {} req/s: ",
                st.index, st.of, st.rate_per_sec
            ),
            1,
        ),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Step;

    #[test]
    fn lines_by_phase() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut snap = Snapshot::default();
        assert_eq!(line(&snap, now, wall), None);
        snap.phase = Phase::StartAt {
            at: wall + Duration::from_millis(2500),
        };
        assert_eq!(
            line(&snap, now, wall).unwrap(),
            "connperf: waiting for --start-at: 2.5 s to go"
        );
        snap.phase = Phase::Run {
            measure: now + Duration::from_secs(1),
            end: now + Duration::from_secs(3),
        };
        assert_eq!(
            line(&snap, now, wall).unwrap(),
            "connperf: warm-up: 1.0 s left"
        );
        snap.counts.errors[0] = 2;
        let later = now + Duration::from_millis(1500);
        assert_eq!(
            line(&snap, later, wall).unwrap(),
            "connperf: 0.5 s of 2.0 s, 1.5 s left, - req/s, - errors",
            "nothing folded in yet: the errors are unknown, not 0"
        );
        snap.windows = 1;
        snap.rate_per_sec = Some(99.6);
        let later = now + Duration::from_millis(1500);
        assert_eq!(
            line(&snap, later, wall).unwrap(),
            "connperf: 0.5 s of 2.0 s, 1.5 s left, 100 req/s, 2 errors"
        );
        snap.phase = Phase::Drain;
        snap.windows = 0;
        assert_eq!(
            line(&snap, later, wall).unwrap(),
            "connperf: waiting for replies in flight, 100 req/s, - errors"
        );
        snap.windows = 1;
        snap.phase = Phase::Run {
            measure: now,
            end: now + Duration::from_secs(2),
        };
        snap.step = Some(Step {
            index: 2,
            of: 5,
            rate_per_sec: 1000.0,
        });
        snap.rate_per_sec = None;
        assert_eq!(
            line(&snap, now, wall).unwrap(),
            "connperf: sweep step 2/5 at 1000 req/s: 0.0 s of 2.0 s, 2.0 s left, - req/s, 2 errors"
        );
    }
}
