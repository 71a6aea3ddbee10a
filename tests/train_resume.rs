//! `train` killed with SIGKILL at random moments and resumed each time ends where an uninterrupted run
//! ends: the same step count, the same loss curve (which needs the optimizer state), the same EMA and raw weights.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diffusion_lab::model::checkpoint::Checkpoint;
use rand::{Rng, SeedableRng};

const STEPS: &str = "60";

fn train(data: &Path, out: &Path, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_diffusion-lab"));
    command.args([
        "train",
        "--data",
        data.to_str().unwrap(),
        "--image-size",
        "8",
        "--channels",
        "8,16",
        "--batch-size",
        "4",
    ]);
    command.args([
        "--steps",
        STEPS,
        "--checkpoint-every",
        "1",
        "--preview-every",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    if resume {
        command.arg("--resume");
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// (step, loss) of every row of a run's loss log.
fn loss_curve(out: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(out.join("loss.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|row| {
            let mut fields = row.split(',');
            (fields.next().unwrap().parse().unwrap(), fields.next().unwrap().to_string())
        })
        .collect()
}

/// ε_θ of the network in `section` of `checkpoint` for a fixed input.
fn network_output(checkpoint: &Checkpoint, section: &str) -> Vec<f32> {
    use burn::prelude::*;
    let device = Device::flex();
    let config: diffusion_lab::model::UNetConfig = serde_json::from_value(checkpoint.header.config.clone()).unwrap();
    let model = diffusion_lab::model::checkpoint::module_from_bytes(
        config.init(&device),
        checkpoint.section(section).unwrap(),
        section,
    )
    .unwrap();
    let x = diffusion_lab::diffusion::NoiseSource::new(5).tensor([2, 1, 8, 8], &device);
    let log_snr = Tensor::<1>::from_floats([-3.0, 2.0], &device);
    let classes = Tensor::<1, Int>::from_ints([0, 2], &device);
    model.forward(x, log_snr, classes).into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn training_killed_at_random_moments_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    for (class, shade) in [("dark", 40u8), ("light", 210)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..8u8 {
            let image = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([shade.wrapping_add((x as u8 * 7 + y as u8 * 3) ^ i)])
            });
            image.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let straight = dir.path().join("straight");
    let limit = Duration::from_secs(600);
    assert!(common::status_within(&mut train(&data, &straight, false), limit, "the uninterrupted run").success());

    // Each run is killed once its checkpoint reaches a random step: kills land mid-run however fast the
    // machine (sleeps would miss a run that ends first), and anywhere within the step after it (training,
    // or writing the next checkpoint). A run that ends by itself before its kill starts over from scratch.
    let killed = dir.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let deadline = Instant::now() + limit;
    let steps: u64 = STEPS.parse().unwrap();
    let mut kills: Vec<u64> = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "timed out after {limit:?} with kills at steps {kills:?}");
        let resume = killed.join("checkpoint.dlab").exists();
        let mut child = train(&data, &killed, resume).spawn().unwrap();
        if kills.len() == 2 {
            let status = common::wait_within(&mut child, limit, "the last resumed run");
            assert!(status.success(), "the last resumed run failed: {status}");
            break;
        }
        // The first kill in the first half, the second after the first; both before the end.
        let after = kills.last().copied().unwrap_or(0);
        let target = if kills.is_empty() { rng.random_range(1..steps / 2) } else { rng.random_range(after + 1..steps) };
        let status = loop {
            assert!(Instant::now() < deadline, "timed out waiting for step {target} (kills at steps {kills:?})");
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            let step = diffusion_lab::train::training::training_progress(&killed).ok().flatten().map_or(0, |p| p.step);
            if step >= target {
                child.kill().unwrap(); // SIGKILL: no chance to clean up.
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let progress = diffusion_lab::train::training::training_progress(&killed).unwrap().map_or(0, |p| p.step);
        if status.success() || progress + 1 >= steps {
            // It ended (or all but ended) before the kill landed: too little left to interrupt; start again.
            std::fs::remove_dir_all(&killed).unwrap();
            kills.clear();
        } else {
            assert_eq!(status.code(), None, "a run failed by itself before its kill: {status}");
            kills.push(progress);
        }
    }
    eprintln!("killed at steps {kills:?}, then resumed to the end");
    let a = Checkpoint::read(&straight.join("checkpoint.dlab")).unwrap();
    let b = Checkpoint::read(&killed.join("checkpoint.dlab")).unwrap();
    assert_eq!(a.header.step, 60);
    assert_eq!(b.header.step, a.header.step);
    // The weight sections hold burn's parameter ids, which differ between processes: compare values, as
    // the outputs of the EMA and raw networks on a fixed input (bit for bit).
    for section in ["weights", "train_weights"] {
        let outputs: Vec<Vec<f32>> = [&a, &b].iter().map(|checkpoint| network_output(checkpoint, section)).collect();
        assert!(outputs[0] == outputs[1], "section `{section}` holds other values after kills at steps {kills:?}");
    }
    let (curve_a, curve_b) = (loss_curve(&straight), loss_curve(&killed));
    assert_eq!(curve_a.len(), 60);
    assert_eq!(curve_a, curve_b, "the same loss at every step, each step logged once");
}
