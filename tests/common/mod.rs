//! Helpers shared by the integration tests.

// Each test binary includes this module and uses some of it.
#![allow(dead_code)]

use burn::prelude::*;
use diffusion_lab::diffusion::BetaSchedule;
use diffusion_lab::model::UNetConfig;
use diffusion_lab::model::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, bytes_from_module};

/// Set to 1 by `.ci/run`, which installs everything the tests may lack elsewhere (the Fashion-MNIST package, a
/// Vulkan driver) and runs as root: there a test that would skip fails instead.
pub const REQUIRE_ALL_ENV: &str = "DIFFUSION_LAB_REQUIRE_ALL";

/// What a skipped test prints at the start of its line, with the reason after it.
pub const SKIP_MARKER: &str = "SKIPPED:";

/// Every test that cannot run here (no data set, no wgpu adapter, no right to mount) says so through this,
/// then returns: it prints "SKIPPED: `reason`" on the process's stderr (past the test harness's capture, so
/// that a passing run shows it too), or, where [`REQUIRE_ALL_ENV`] is 1, fails with that line instead.
pub fn skip(reason: &str) {
    let line = format!("{SKIP_MARKER} {reason}");
    if std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v.trim() == "1") {
        panic!("{line}; {REQUIRE_ALL_ENV}=1 (.ci/run) requires every test to run");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A checkpoint of an untrained tiny UNet on 8x8 images, written into `dir`.
pub fn tiny_unet_file(dir: &std::path::Path) -> std::path::PathBuf {
    let config = UNetConfig::tiny().with_image_size(8);
    let model = config.init(&Device::flex());
    let header = CheckpointHeader {
        kind: ModelKind::Unet,
        config: serde_json::to_value(&config).unwrap(),
        training_schedule: Some(BetaSchedule::linear(1000)),
        log_snr_range: Some((-20.0, 10.0)),
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    };
    let path = dir.join("tiny.dlab");
    Checkpoint::new(header).with_section("weights", bytes_from_module(&model, false).unwrap()).write(&path).unwrap();
    path
}

/// The first 500 Fashion-MNIST test images and labels, shipped as IDX files under tests/fixtures.
pub fn fashion_mnist_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist")
}

/// Makes `to` a Fashion-MNIST folder of the fixture's 500 test images under both splits' names: what needs
/// a training split too (a run, the quality meter's nearest-image search) finds one, and stays small.
pub fn fixture_as_both_splits(to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for (from, names) in [
        ("t10k-images-idx3-ubyte.gz", ["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"]),
        ("t10k-labels-idx1-ubyte.gz", ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]),
    ] {
        for name in names {
            std::fs::copy(fashion_mnist_fixture().join(from), to.join(name)).unwrap();
        }
    }
}

/// The names of this process's threads, sorted (Linux keeps a name's first 15 bytes).
pub fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut names: Vec<String> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect();
    names.sort();
    names
}

/// |a - b|, with equal values (NaN and NaN, or the same infinity) 0 and a NaN facing a number infinite:
/// `f32::max` drops NaN, so without this a NaN in a result would compare as a perfect match.
pub fn difference(a: f32, b: f32) -> f32 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    let d = (a - b).abs();
    if d.is_nan() { f32::INFINITY } else { d }
}

/// The largest [`difference`] between two equally long slices.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared values differ in length");
    a.iter().zip(b).map(|(a, b)| difference(*a, *b)).fold(0.0f32, f32::max)
}

/// Events of `engine` until `pick` returns a value for one of them (it sees every event, in order), within
/// `limit` in all. Fails naming `what` it waited for: on the deadline, or at once if the engine thread is
/// gone (its channel closed), where a loop that skipped `None` would spin forever.
pub fn wait_for<T>(
    engine: &diffusion_lab::engine::Engine,
    limit: std::time::Duration,
    what: &str,
    mut pick: impl FnMut(diffusion_lab::engine::Event) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "timed out after {limit:?} waiting for {what}");
        let asked = std::time::Instant::now();
        match engine.recv_timeout(left) {
            Some(event) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            // recv_timeout gives None early only when the channel is closed: the worker has ended.
            None if asked.elapsed() < left => panic!("the engine thread ended while waiting for {what}"),
            None => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }
}

/// Waits for `child` to end within `limit`; past it, kills the child and fails naming `what`.
pub fn wait_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("timed out after {limit:?} waiting for {what} (killed it)");
            }
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    }
}

/// `command`'s exit status (its output goes where the command sends it), within `limit`.
pub fn status_within(
    command: &mut std::process::Command,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_within(&mut child, limit, what)
}

/// Like [`std::process::Command::output`], within `limit`.
pub fn output_within(
    command: &mut std::process::Command,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Both pipes are drained while the child runs: a child blocked on a full pipe would never end.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = wait_within(&mut child, limit, what);
    let stdout = stdout.join().expect("the stdout reader does not panic");
    let stderr = stderr.join().expect("the stderr reader does not panic");
    std::process::Output { status, stdout, stderr }
}

/// Every file and folder below `dir`, relative to it, each with whether it is a folder.
pub fn walk(dir: &std::path::Path, prefix: &std::path::Path, out: &mut Vec<(std::path::PathBuf, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let relative = prefix.join(entry.file_name());
        let is_dir = entry.file_type().unwrap().is_dir();
        out.push((relative.clone(), is_dir));
        if is_dir {
            walk(&entry.path(), &relative, out);
        }
    }
}

/// The text of every label on screen that starts with `prefix` (egui gives a label's text as its value).
pub fn texts_starting_with<State>(harness: &egui_kittest::Harness<'_, State>, prefix: &str) -> Vec<String> {
    use egui_kittest::kittest::{By, NodeT, Queryable};
    let text = |n: &egui_kittest::kittest::AccessKitNode<'_>| n.label().or_else(|| n.value()).unwrap_or_default();
    harness
        .query_all(By::new().predicate(move |n| text(n).starts_with(prefix)).include_labels())
        .map(|node| text(&node.accesskit_node()))
        .collect()
}

/// `diffusion-lab lab2d ARGS` run to its end (ten minutes at most).
pub fn lab2d(args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.arg("lab2d").args(args);
    output_within(&mut command, std::time::Duration::from_secs(600), &format!("lab2d {}", args.join(" ")))
}

/// A process's output as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Steps the window until `done` says so; after five minutes fails with `what` and `describe`'s account of
/// the state (the harness does not wait for the engine's thread).
pub fn step_until<State>(
    harness: &mut egui_kittest::Harness<'_, State>,
    what: &str,
    done: impl Fn(&State) -> bool,
    describe: impl Fn(&State) -> String,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !done(harness.state()) {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}: {}", describe(harness.state()));
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
