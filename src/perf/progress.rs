//! The progress line each second, shared by every mode.

use std::future::Future;
use std::time::{Duration, Instant};

/// Drives `work` to completion, printing `line(second)` at each whole second (unless
/// `quiet`). Gives up after `cap` if given. Returns the output (`None` when capped) and
/// the seconds elapsed.
pub async fn run<F: Future>(
    work: F,
    quiet: bool,
    cap: Option<Duration>,
    mut line: impl FnMut(u64) -> String,
) -> (Option<F::Output>, f64) {
    let start = Instant::now();
    let mut work = std::pin::pin!(work);
    let mut s = 1;
    loop {
        let tick = start + Duration::from_secs(s);
        let deadline = cap.map(|c| start + c).filter(|d| *d <= tick);
        // The tick first: a run of -z seconds prints its last second's line too.
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline.unwrap_or(tick).into()) => {
                if deadline.is_some() {
                    return (None, start.elapsed().as_secs_f64());
                }
                let l = line(s);
                if !quiet {
                    println!("{l}");
                }
                s += 1;
            }
            out = &mut work => return (Some(out), start.elapsed().as_secs_f64()),
        }
    }
}
