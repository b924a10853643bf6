//! Keep Rayon's other workers awake while a CPU training step or evaluation runs on one of them.
//!
//! A training step of the small models is several hundred short kernels, most of them split over
//! Rayon's threads (flex's elementwise ops, the GEMM's row blocks, Kiln's host loops), with serial
//! work between them on the thread that runs the step. Between two kernels an idle Rayon worker
//! spins briefly, then sleeps on a futex; the next kernel's `join` must then wake it with a system
//! call (`futex_wake`, 7% of the language model's step on the calling thread in `perf`, 2026-12-01)
//! and waits while it is scheduled. [`keep_warm`] starts a loop on every other worker that takes
//! Rayon work as soon as it appears and does not sleep, as OpenMP's active wait policy (which
//! PyTorch's CPU kernels run on) does: a kernel's second half then wakes no one, and the
//! neighbour steals it at once.
//!
//! A loop ends after [`IDLE_LIMIT`] without work (the process reading data, writing a checkpoint,
//! waiting for a GPU), and between polls it gives the core back with `sched_yield` now and then.
//! Every operation of the door calls [`keep_warm`] on flex, so the loops start again with the next
//! kernel after a pause; nothing is asked of the caller but to run on a Rayon worker ([`on_worker`]).
//! `KILN_SPIN=0` in the environment turns it off.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::Device;

use crate::device::is_flex;

/// How long a loop goes on without finding work before its worker goes back to Rayon's own sleep.
pub const IDLE_LIMIT: Duration = Duration::from_millis(5);

/// Polls of an idle worker between two looks at the clock and `sched_yield`s.
const POLLS_PER_YIELD: u32 = 256;

/// Loops running now (or spawned and not yet ended).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether `KILN_SPIN=0` turned the loops off.
fn disabled() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| std::env::var("KILN_SPIN").is_ok_and(|v| v.trim() == "0"))
}

/// Make sure the current Rayon pool's other workers poll for work (see the module docs), when
/// `device` is flex and the caller is a worker of a pool of at least two threads; otherwise, or
/// while loops from an earlier call still run, nothing. Cheap enough to call before every kernel:
/// an atomic load while the loops run.
pub(crate) fn keep_warm(device: &Device) {
    if LIVE.load(Ordering::Acquire) != 0 || !is_flex(device) || disabled() {
        return;
    }
    let Some(me) = rayon::current_thread_index() else { return };
    let others = rayon::current_num_threads().saturating_sub(1);
    if others == 0 || LIVE.compare_exchange(0, others, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return;
    }
    // One copy per worker, each taken only by its own worker; the caller's copy returns at once
    // when it gets to it (the next time it waits on Rayon).
    rayon::spawn_broadcast(move |ctx| {
        if ctx.index() != me {
            poll_while_busy();
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
    });
}

/// Run `f` on a worker of Rayon's global pool and wait for it (at once, if the caller already is
/// one). flex and Kiln's kernels split their work with Rayon; called from a thread outside the pool,
/// each of a training step's several hundred parallel kernels is injected into the pool and the
/// caller sleeps until a worker finishes it, with a third thread (the caller) beside the workers. From
/// a worker, a kernel's halves go to the worker itself and a neighbour, no thread wakes up just to
/// wait, and [`keep_warm`] can keep the neighbours polling: the language model's training step went
/// from 44 to 38 ms, the ViT's from 56 to 45 (docs/benchmarks.md). Wrap a training or inference loop
/// over Kiln's layers in it on the CPU; on other backends it costs one hand-off.
///
/// Not for a loop that blocks on other threads which themselves run Kiln's kernels on the pool
/// (burn-train's multi-device step): the blocked worker would be one pool thread fewer for them.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}

/// Run Rayon's pending jobs (the worker's own, stolen, injected) until none has come for
/// [`IDLE_LIMIT`].
fn poll_while_busy() {
    let mut polls = 0u32;
    let mut idle_since = Instant::now();
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                polls = 0;
                idle_since = Instant::now();
            }
            _ => {
                polls += 1;
                if polls.is_multiple_of(POLLS_PER_YIELD) {
                    if idle_since.elapsed() >= IDLE_LIMIT {
                        return;
                    }
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// `keep_warm` starts one loop for the other worker of a two-thread pool; parallel work gives the
    /// same results while it runs and the polling worker takes part; the loop ends on its own once
    /// idle (its count back to zero), leaving the worker free, and a later call starts it again.
    /// Outside a pool it does nothing.
    #[test]
    fn warm_workers_run_the_pools_work_and_end_when_idle() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let device = Device::flex();
        let patience = Duration::from_secs(20);
        for _ in 0..2 {
            let threads = pool.install(|| {
                keep_warm(&device);
                assert_eq!(LIVE.load(Ordering::Acquire), 1, "one loop, for the other worker");
                let mut seen = std::collections::HashSet::new();
                let start = Instant::now();
                // Until both workers have run a part (on a loaded machine the other one may wait
                // for a core), and at least 100 rounds.
                for round in 0u64.. {
                    let (sum, ids): (u64, Vec<usize>) = (0..64usize)
                        .into_par_iter()
                        .with_max_len(1)
                        .map(|i| (i as u64 * round, rayon::current_thread_index().unwrap()))
                        .fold(
                            || (0, Vec::new()),
                            |(s, mut v), (x, t)| {
                                v.push(t);
                                (s + x, v)
                            },
                        )
                        .reduce(
                            || (0, Vec::new()),
                            |(a, mut v), (b, w)| {
                                v.extend(w);
                                (a + b, v)
                            },
                        );
                    assert_eq!(sum, round * 63 * 64 / 2);
                    seen.extend(ids);
                    if (seen.len() == 2 && round >= 100) || start.elapsed() > patience {
                        break;
                    }
                }
                seen
            });
            assert_eq!(threads.len(), 2, "both workers ran parts of the work");
            let start = Instant::now();
            while LIVE.load(Ordering::Acquire) != 0 {
                assert!(start.elapsed() < patience, "the loop did not end when idle");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(pool.broadcast(|ctx| ctx.index()), vec![0, 1]);
        }
        keep_warm(&device);
        assert_eq!(LIVE.load(Ordering::Acquire), 0);
    }
}
