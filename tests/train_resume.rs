//! `train` killed with SIGKILL at random moments and resumed each time ends where an uninterrupted run
//! ends: the same step count, the same loss curve (which needs the optimizer state), the same EMA and raw weights.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    assert!(train(&data, &straight, false).status().unwrap().success());

    let killed = dir.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut kills = 0;
    let mut finished = false;
    for attempt in 0..20 {
        let resume = killed.join("checkpoint.dlab").exists();
        let mut child = train(&data, &killed, resume).spawn().unwrap();
        if attempt < 6 {
            std::thread::sleep(Duration::from_millis(rng.random_range(150..500)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL: no chance to clean up.
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        assert!(child.wait().unwrap().success(), "attempt {attempt}");
        finished = true;
        break;
    }
    assert!(finished);
    assert!(kills >= 2, "the run was killed {kills} times: make it slower or the kills earlier");

    let a = Checkpoint::read(&straight.join("checkpoint.dlab")).unwrap();
    let b = Checkpoint::read(&killed.join("checkpoint.dlab")).unwrap();
    assert_eq!(a.header.step, 60);
    assert_eq!(b.header.step, a.header.step);
    // The weight sections hold burn's parameter ids, which differ between processes: compare values, as
    // the outputs of the EMA and raw networks on a fixed input (bit for bit).
    for section in ["weights", "train_weights"] {
        let outputs: Vec<Vec<f32>> = [&a, &b].iter().map(|checkpoint| network_output(checkpoint, section)).collect();
        assert!(outputs[0] == outputs[1], "section `{section}` holds other values after {kills} kills");
    }
    let (curve_a, curve_b) = (loss_curve(&straight), loss_curve(&killed));
    assert_eq!(curve_a.len(), 60);
    assert_eq!(curve_a, curve_b, "the same loss at every step, each step logged once");
}
