//! Training across machines (feature `distributed`): `kiln serve` workers on 127.0.0.1 (free ports,
//! one thread each) that a trainer lists in `[device] devices`. Two workers with `grad_accum = 1`
//! train as one local device with `grad_accum = 2`; a worker killed mid-run stops the trainer with
//! one error naming it, earlier checkpoints intact, and the run resumed with the worker back ends as
//! an uninterrupted one; wrong tokens, other Kiln versions and addresses nobody listens on are
//! refused with clear messages.
#![cfg(feature = "distributed")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Far beyond what starting a worker or failing a connect takes, so that only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(60);

/// A `kiln serve` process; killed when dropped.
struct Worker {
    child: Child,
    /// The device name it printed (`remote:ws://127.0.0.1:PORT`).
    name: String,
    /// Its standard error, collected by a thread.
    log: mpsc::Receiver<String>,
}

impl Worker {
    /// Start `kiln serve --listen 127.0.0.1:0 ARGS` with one compute thread and the environment
    /// `env`; wait for the name it prints.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let worker = Self::listening("127.0.0.1:0", args, env);
        assert!(worker.name.starts_with("remote:ws://127.0.0.1:"), "worker printed {:?}", worker.name);
        worker
    }

    /// Start `kiln serve --listen LISTEN ARGS`; wait for the name it prints.
    fn listening(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = kiln()
            .args(["serve", "--listen", listen])
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line.trim().to_string());
        });
        let mut stderr = child.stderr.take().unwrap();
        let (log_tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = log_tx.send(text);
        });
        let name = rx.recv_timeout(LIMIT).expect("the worker printed no name");
        Self { child, name, log }
    }

    /// Kill it (SIGKILL, as a machine that dies) and return its log.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log.recv_timeout(LIMIT).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kiln train CONFIG --set ...` with `flags`, its output piped.
fn spawn_train(config: &Path, sets: &[String], flags: &[&str]) -> Child {
    kiln()
        .arg("train")
        .arg(config)
        .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` to exit; fail the test if it still runs `limit` after `since` (`what`: after
/// what, for the message).
fn wait_within(child: &mut Child, since: Instant, limit: Duration, what: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if since.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kiln train CONFIG --set ...` with `flags`, bounded by `limit`: (succeeded, output, seconds).
fn train(config: &Path, sets: &[String], flags: &[&str], limit: Duration) -> (bool, String, f64) {
    let start = Instant::now();
    let mut child = spawn_train(config, sets, flags);
    let status = wait_within(&mut child, start, limit, "`kiln train` started");
    let out = child.wait_with_output().unwrap();
    (status.success(), text(&out), start.elapsed().as_secs_f64())
}

/// The one line of `out` that starts with `error:` (the test fails if there is not exactly one).
fn single_error(out: &str) -> &str {
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    errors[0]
}

/// `good.token` and `bad.token` in `dir`: two tokens that differ in their last character only.
fn token_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (good, bad) = (dir.join("good.token"), dir.join("bad.token"));
    std::fs::write(&good, "4f9a1c7e2b8d6053a1f4e9c2d7b8a6e3\n").unwrap();
    std::fs::write(&bad, "4f9a1c7e2b8d6053a1f4e9c2d7b8a6e4\n").unwrap();
    (good, bad)
}

/// `device.devices = [...]` as a `--set`.
fn devices(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("device.devices=[{}]", quoted.join(", "))
}

/// The numbers of a metrics.csv, keyed by everything but the value: `step,split,name` -> value.
fn numbers(run: &Path) -> Vec<(String, f64)> {
    metrics(run)
        .lines()
        .skip(1)
        .map(|l| {
            let (key, value) = l.rsplit_once(',').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Largest |a - b| / max(1, |b|) between two runs' metrics; they must have the same rows, and a
/// NaN anywhere is infinitely different.
fn metrics_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (numbers(a), numbers(b));
    assert_eq!(a.iter().map(|r| &r.0).collect::<Vec<_>>(), b.iter().map(|r| &r.0).collect::<Vec<_>>());
    a.iter().zip(&b).map(|((_, x), (_, y))| relative(*x, *y)).fold(0.0, f64::max)
}

fn relative(x: f64, y: f64) -> f64 {
    let d = (x - y).abs() / y.abs().max(1.0);
    if d.is_nan() { f64::INFINITY } else { d }
}

/// Every f32 tensor of the latest checkpoint's `model.bpk`, by name.
fn weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let reader = burn_pack::Reader::from_file(run.join("checkpoints").join(latest.trim()).join("model.bpk")).unwrap();
    let mut names: Vec<String> = reader.tensor_names().into_iter().map(String::from).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = reader.tensor_data(&n).unwrap();
            let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (n, values)
        })
        .collect()
}

/// Largest |a - b| between two runs' final weights (same tensors, same sizes; NaN is infinite),
/// and the number of values compared.
fn weights_difference(a: &Path, b: &Path) -> (f64, usize) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.iter().map(|t| &t.0).collect::<Vec<_>>(), b.iter().map(|t| &t.0).collect::<Vec<_>>());
    let mut largest = 0.0f64;
    let mut count = 0;
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len(), "{name}");
        for (p, q) in x.iter().zip(y) {
            let d = f64::from((p - q).abs());
            largest = largest.max(if d.is_nan() { f64::INFINITY } else { d });
        }
        count += x.len();
    }
    (largest, count)
}

fn base_sets(steps: usize) -> Vec<String> {
    vec!["model.encoder.dropout=0".into(), format!("train.steps={steps}")]
}

/// Two workers with `grad_accum = 1` train as one local flex device with `grad_accum = 2`: the same
/// micro-batches, so the same metrics and weights up to float rounding (the workers run Burn's own
/// flex operations, the local device Kiln's kernels). Then a run over both workers is killed
/// mid-way by killing the second worker: one error naming it, within the time limit, the latest
/// checkpoint intact; resumed with a new second worker it ends exactly as an uninterrupted run.
#[test]
fn two_workers_train_as_one_device_and_survive_a_killed_worker() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let (a, b) = (Worker::start(&[], &[]), Worker::start(&[], &[]));

    let with = |steps: usize, extra: &[String]| [base_sets(steps), extra.to_vec()].concat();
    let (ok, out, _) = train(&config, &with(12, &["train.grad_accum=2".into()]), &[], LIMIT);
    assert!(ok, "{out}");
    let local = run_dir_in(&out);
    let pair = [devices(&[&a.name, &b.name]), "train.grad_accum=1".into()];
    let (ok, out, seconds) = train(&config, &with(12, &pair), &[], LIMIT * 5);
    assert!(ok, "{out}");
    let remote = run_dir_in(&out);
    let m = metrics_difference(&remote, &local);
    let (w, n) = weights_difference(&remote, &local);
    eprintln!(
        "two workers vs one device: largest metric difference {m:.3e} (relative), largest weight difference {w:.3e} over {n} weights; {seconds:.1} s"
    );
    assert!(m < 1e-4, "metrics differ by {m}");
    assert!(w < 1e-4, "weights differ by {w}");
    assert!(numbers(&remote).len() > 8);

    // An uninterrupted 30-step run over both workers, then one whose second worker dies.
    let checkpoints = "train.checkpoint_every=2".to_string();
    let (ok, out, _) =
        train(&config, &with(30, &[pair[0].clone(), pair[1].clone(), checkpoints.clone()]), &[], LIMIT * 5);
    assert!(ok, "{out}");
    let full = run_dir_in(&out);

    let c = Worker::start(&[], &[]);
    let sets = with(30, &[devices(&[&a.name, &c.name]), pair[1].clone(), checkpoints]);
    let mut child = spawn_train(&config, &sets, &[]);
    let runs = dir.path().join("runs");
    let started = Instant::now();
    let run = loop {
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p != &local && p != &remote && p != &full));
        if let Some(run) = found.filter(|r| r.join("checkpoints/step-0000004").exists()) {
            break run;
        }
        assert!(started.elapsed() < LIMIT * 5, "no checkpoint at step 4");
        std::thread::sleep(Duration::from_millis(20));
    };
    let c_name = c.name.clone();
    let killed_at = Instant::now();
    let log = c.kill();
    assert!(log.contains("connected"), "the worker logged no trainer:\n{log}");
    let status = wait_within(&mut child, killed_at, LIMIT, "its worker died");
    let stopped_after = killed_at.elapsed().as_secs_f64();
    let out = text(&child.wait_with_output().unwrap());
    assert!(!status.success(), "{out}");
    let error = single_error(&out);
    assert!(error.contains(&c_name), "the error does not name the dead worker {c_name}:\n{out}");
    eprintln!("killed worker: the trainer stopped {stopped_after:.2} s later with: {error}");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let step: usize = latest.trim().trim_start_matches("step-").parse().unwrap();
    assert!((4..30).contains(&step), "{latest}");
    // The checkpoints left are whole: `kiln eval` verifies their checksums and loads them.
    let eval = kiln().arg("eval").arg(&run).args(["--checkpoint", "latest", "--device", "flex"]).output().unwrap();
    assert!(eval.status.success(), "{}", text(&eval));

    // The worker back (on another port): resumed, the run ends as the uninterrupted one.
    let d = Worker::start(&[], &[]);
    let resumed =
        kiln().arg("train").arg("--resume").arg(&run).args(["--set", &devices(&[&a.name, &d.name])]).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(metrics(&full), metrics(&run), "the resumed run differs from the uninterrupted one");
    assert_eq!(weights_difference(&full, &run).0, 0.0);
}

/// A worker started with a token refuses a trainer with the wrong token, without one, and of
/// another Kiln version, each with a message on both sides; the right token trains.
#[test]
fn tokens_and_versions_are_checked_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let (good, bad) = token_files(dir.path());
    let worker = Worker::start(&["--token-file", good.to_str().unwrap()], &[]);
    let attempt = |token: Option<&Path>, env: Option<(&str, &str)>| {
        let mut sets = base_sets(1);
        sets.push(devices(&["flex", &worker.name]));
        sets.push("train.grad_accum=1".into());
        if let Some(t) = token {
            sets.push(format!("device.token_file=\"{}\"", t.display()));
        }
        let mut cmd = kiln();
        cmd.arg("train").arg(&config).args(sets.iter().flat_map(|s| ["--set", s.as_str()]));
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let out = cmd.output().unwrap();
        assert!(start.elapsed() < LIMIT);
        (out.status.success(), text(&out))
    };
    for (token, env, says) in [
        (Some(bad.as_path()), None, "bad.token is not the worker's"),
        (None, None, "presented no token"),
        (Some(good.as_path()), Some(("KILN_WIRE_VERSION", "0.0.0-other")), "refused this trainer (Kiln 0.0.0-other)"),
    ] {
        let (ok, out) = attempt(token, env);
        assert!(!ok && out.contains(&worker.name) && out.contains(says), "{says}:\n{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let (ok, out) = attempt(Some(&good), None);
    assert!(ok, "{out}");
    let log = worker.kill();
    for says in
        ["presented the wrong token", "presented no token", "runs Kiln 0.0.0-other and this worker Kiln", "connected"]
    {
        assert!(log.contains(says), "the worker's log lacks {says:?}:\n{log}");
    }
}

/// An address nobody listens on is one clear error within seconds; a worker off the loopback
/// address without a token refuses to start (which flags allow what: `remote::serve`'s unit test,
/// since tests serve on 127.0.0.1 only); `kiln check` validates remote names without connecting.
#[test]
fn unreachable_workers_and_unsafe_workers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nobody = format!("remote:ws://{free}");
    let sets = [base_sets(1), vec![devices(&["flex", &nobody]), "train.grad_accum=1".into()]].concat();
    let (ok, out, seconds) = train(&config, &sets, &[], LIMIT);
    assert!(!ok && out.contains(&nobody) && out.contains("nothing answers there"), "{out}");
    assert!(seconds < 10.0, "took {seconds} s");

    let serve = kiln().args(["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!serve.status.success() && text(&serve).contains("needs --token-file"), "{}", text(&serve));

    let listed = dir.path().join("listed.toml");
    let body = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[output]", "[device]\ndevices = [\"flex\", \"remote:ws://10.1.2.3:3000\"]\n[output]");
    std::fs::write(&listed, &body).unwrap();
    let check = kiln().arg("check").arg(&listed).output().unwrap();
    assert!(check.status.success(), "{}", text(&check));
    std::fs::write(&listed, body.replace("10.1.2.3:3000", "10.1.2.3")).unwrap();
    let check = kiln().arg("check").arg(&listed).output().unwrap();
    assert!(!check.status.success() && text(&check).contains("device.devices[1]"), "{}", text(&check));
}

/// A worker that freezes (SIGSTOP: its connections stay open, nothing answers, as when a machine
/// hangs or its network goes silent) stops the trainer once `device.worker_timeout_s` has passed
/// without progress, with one error naming it; the checkpoints written before are whole.
#[test]
fn a_frozen_worker_stops_the_run_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let (a, b) = (Worker::start(&[], &[]), Worker::start(&[], &[]));
    let sets = [
        base_sets(100_000),
        vec![
            devices(&[&a.name, &b.name]),
            "train.grad_accum=1".into(),
            "train.checkpoint_every=2".into(),
            "device.worker_timeout_s=3".into(),
        ],
    ]
    .concat();
    let mut child = spawn_train(&config, &sets, &[]);
    let run = dir.path().join("runs/run-001");
    let started = Instant::now();
    while !run.join("checkpoints/step-0000002").exists() {
        assert!(started.elapsed() < LIMIT, "no checkpoint at step 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = std::process::Command::new("kill").args(["-STOP", &b.child.id().to_string()]).status().unwrap();
    assert!(stop.success());
    let frozen_at = Instant::now();
    let status = wait_within(&mut child, frozen_at, LIMIT, "its worker froze");
    let waited = frozen_at.elapsed().as_secs_f64();
    let out = text(&child.wait_with_output().unwrap());
    let _ = std::process::Command::new("kill").args(["-CONT", &b.child.id().to_string()]).status();
    assert!(!status.success(), "{out}");
    let error = single_error(&out);
    assert!(error.contains(&format!("{} (connected, but no reply", b.name)), "{out}");
    assert!(!error.contains(&format!("{} (", a.name)), "the live worker is blamed:\n{out}");
    // The limit (3 s) plus the 3 s probe, with room for a loaded machine.
    assert!(waited > 3.0 && waited < 30.0, "stopped {waited:.1} s after the freeze");
    eprintln!("frozen worker: the trainer stopped {waited:.2} s later with: {error}");
    let eval = kiln().arg("eval").arg(&run).args(["--checkpoint", "latest", "--device", "flex"]).output().unwrap();
    assert!(eval.status.success(), "{}", text(&eval));
}

/// A worker serving Iroh (encrypted, authenticated; what it serves off the loopback address, here
/// with `--iroh` on 127.0.0.1, bound to that address only): a trainer with the token trains a step
/// on it beside a local device, and one with the wrong token is refused on both sides.
#[test]
fn an_iroh_worker_trains_with_the_token_and_refuses_without() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let (good, bad) = token_files(dir.path());
    let worker = Worker::listening("127.0.0.1:0", &["--iroh", "--token-file", good.to_str().unwrap()], &[]);
    let name = worker.name.clone();
    let (id, at) = name.trim_start_matches("remote:iroh:").split_once('@').unwrap();
    assert_eq!(id.len(), 64, "{}", worker.name);
    assert!(at.starts_with("127.0.0.1:") && !at.ends_with(":0"), "{}", worker.name);
    let local = worker.name.clone();
    let attempt = |token: &Path| {
        let sets = [
            base_sets(2),
            vec![
                devices(&["flex", &local]),
                "train.grad_accum=1".into(),
                format!("device.token_file=\"{}\"", token.display()),
            ],
        ]
        .concat();
        train(&config, &sets, &[], LIMIT)
    };
    let (ok, out, _) = attempt(&good);
    assert!(ok, "{out}");
    let (ok, out, _) = attempt(&bad);
    assert!(!ok && out.contains("bad.token is not the worker's") && out.contains(id), "{out}");
    let log = worker.kill();
    assert!(log.contains(&format!("over Iroh (encrypted, a token) on UDP {at}")), "{log}");
    assert!(log.contains("connected") && log.contains("presented the wrong token"), "{log}");
}

/// Ctrl-C (SIGINT) and SIGTERM stop a worker cleanly: exit status 0 and a last log line.
#[test]
fn a_worker_stops_cleanly_on_ctrl_c_and_sigterm() {
    for signal in ["-INT", "-TERM"] {
        let mut worker = Worker::start(&[], &[]);
        let sent = std::process::Command::new("kill").args([signal, &worker.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let status = wait_within(&mut worker.child, Instant::now(), LIMIT, signal);
        let log = worker.log.recv_timeout(LIMIT).unwrap_or_default();
        assert!(status.success(), "{signal}: {status:?}\n{log}");
        assert!(log.trim_end().ends_with("[kiln serve] stopped"), "{signal}:\n{log}");
    }
}
