//! Bounded failure for runs with remote workers: a run never hangs on a worker that stopped
//! answering, and a worker that went away ends the run with one error that names it.
//!
//! The training loop says what it waits for ([`expect`]: a step's micro-batches on these devices,
//! the update or an evaluation on the main device) and the replicas say when they answered
//! ([`answered`]). [`start`] runs a thread that ends the process with one error when nothing has
//! moved for the time limit (`[device] worker_timeout_s`): a worker whose machine froze or whose
//! network went silent keeps its connection open, and nothing else would notice. Checkpoints are
//! written atomically, so ending the process leaves the earlier ones whole.
//!
//! Nothing is recorded until [`watch`] is called (runs without remote workers pay one atomic load
//! per call). Panics inside [`caught`] (a remote read that failed because its connection closed) are
//! not printed: the caller turns the unwound panic into its error.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// What the run waits for, and since when.
struct Waiting {
    since: Instant,
    what: String,
    devices: Vec<String>,
}

static WAITING: Mutex<Option<Waiting>> = Mutex::new(None);
static WATCHED: Mutex<Vec<(String, Probe)>> = Mutex::new(Vec::new());
/// Set by [`watch`]: whether this process trains with remote workers.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    static CAUGHT: Cell<bool> = const { Cell::new(false) };
}

/// The run now waits for `what()` from `devices` (config names); restarts the clock. `what` is only
/// formatted while watching.
pub fn expect(what: impl FnOnce() -> String, devices: &[String]) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let waiting = Waiting { since: Instant::now(), what: what(), devices: devices.to_vec() };
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) = Some(waiting);
}

/// The run waits for nothing: the watchdog rests until the next [`expect`].
pub fn idle() {
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// `device` has answered what the run waits for.
pub fn answered(device: &str) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(w) = WAITING.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        w.devices.retain(|d| d != device);
    }
}

/// What the run waits for: `step 12`.
pub fn waiting_for() -> String {
    WAITING.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or("the start".into(), |w| w.what.clone())
}

/// What the run waits for, and from whom: `step 12, waiting for remote:ws://…`.
pub fn context() -> String {
    match WAITING.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(w) if w.devices.is_empty() => w.what.clone(),
        Some(w) => format!("{}, waiting for {}", w.what, w.devices.join(", ")),
        None => "before the first step".into(),
    }
}

/// Asks one worker whether it answers: `None` if it does, else why not.
pub type Probe = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// Start recording what the run waits for; `probes`: the workers [`unanswering`] asks, by their
/// config names.
pub fn watch(probes: Vec<(String, Probe)>) {
    *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) = probes;
    ACTIVE.store(true, Ordering::Relaxed);
}

/// The watched workers that do not answer their probe, each with why: after a failure, this tells
/// the worker that went away from the devices that failed because of it (a gradient that could not
/// be fetched from it, say).
pub fn unanswering() -> Vec<String> {
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|scope| {
        let asked: Vec<_> = watched.iter().map(|(name, probe)| (name, scope.spawn(probe))).collect();
        asked
            .into_iter()
            .filter_map(|(name, answer)| answer.join().ok().flatten().map(|why| format!("{name} ({why})")))
            .collect()
    })
}

/// `text` with its line breaks and runs of spaces collapsed, for a one-line error.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// End the process with one error when nothing moved for `limit`. Call once per process.
pub fn start(limit: Duration) {
    std::thread::Builder::new()
        .name("kiln-watchdog".into())
        .spawn(move || {
            let tick = (limit / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
            loop {
                std::thread::sleep(tick);
                let stalled = WAITING
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|w| w.since.elapsed() > limit);
                if stalled {
                    let silent = unanswering();
                    let who = if silent.is_empty() {
                        context()
                    } else {
                        format!("{}: worker {} does not answer", waiting_for(), silent.join(", worker "))
                    };
                    eprintln!(
                        "error: training stopped after {} s without progress ({who}). The checkpoints written so far \
                         are intact: resume with `kiln train --resume RUN_DIR` once the workers answer \
                         (device.worker_timeout_s sets this limit)",
                        limit.as_secs_f64(),
                    );
                    std::process::exit(1);
                }
            }
        })
        .expect("spawning the watchdog thread");
}

/// Run `f` with its panics kept quiet (not printed; the unwound payload keeps the message): for code
/// whose caller turns a panic into an error.
pub fn caught<R>(f: impl FnOnce() -> R) -> R {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAUGHT.with(Cell::get) {
                default(info);
            }
        }));
    });
    let before = CAUGHT.with(|c| c.replace(true));
    let out = f();
    CAUGHT.with(|c| c.set(before));
    out
}

/// A panic payload's message.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once watching, the context names what is awaited and drops the devices that answered.
    #[test]
    fn context_names_the_devices_still_awaited() {
        watch(Vec::new());
        expect(|| "step 3".into(), &["a".into(), "b".into()]);
        assert_eq!(context(), "step 3, waiting for a, b");
        answered("a");
        assert_eq!(context(), "step 3, waiting for b");
        answered("b");
        assert_eq!(context(), "step 3");
    }

    /// A panic inside `caught` still unwinds to the caller, with its message.
    #[test]
    fn caught_panics_reach_the_caller_with_their_message() {
        let r = std::panic::catch_unwind(|| caught(|| panic!("lost the connection to w1")));
        assert_eq!(panic_text(r.unwrap_err().as_ref()), "lost the connection to w1");
    }
}
