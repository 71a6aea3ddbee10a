//! `bench`: how fast sampling and training run, through the same code the window and `train` use.
//!
//! Without `--json` it times one configurable sampling run, streamed (as the window runs it) and plain
//! (as `sample` does). With `--json` it runs the fixed suite that `benches/torch_reference.py` compares
//! against PyTorch, and prints one JSON object whose keys are documented in the README (Speed).

use std::time::Instant;

use anyhow::bail;
use burn::prelude::*;
use clap::{Args, ValueEnum};
use diffusion_lab::data::{Dataset, FASHION_MNIST_CLASSES};
use diffusion_lab::diffusion::{DdpmVariance, NoiseSource, Sampler};
use diffusion_lab::engine::{ComputeDevice, DeviceChoice, open_device};
use diffusion_lab::model::denoise::DEFAULT_GUIDANCE;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet};
use diffusion_lab::run::generate::{GenerateRequest, RunHooks, run_generate};
use diffusion_lab::run::models::{LoadedModel, ResolvedModel};
use diffusion_lab::train::ddpm::{DdpmTrainer, TrainConfig};

use super::SamplerOptions;

/// The guidance of the `--json` suite's sampling runs, fixed so its keys (`…_w2_…`) and the PyTorch reference
/// (`benches/torch_reference.py`, w = 2) keep measuring the same work when the app's default changes. Any
/// w other than 0 and 1 costs the same: two network evaluations per step.
const SUITE_GUIDANCE: f64 = 2.0;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A built-in model (`fashion`, `latent`) or a checkpoint file.
    #[arg(long, default_value = "fashion")]
    pub model: String,
    /// The autoencoder that decodes a latent model [default: a built-in model's own; for a checkpoint file,
    /// the one it was trained with, as its header records].
    #[arg(long)]
    pub autoencoder: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[command(flatten)]
    pub sampler: SamplerOptions,
    #[arg(long, default_value_t = DEFAULT_GUIDANCE)]
    pub guidance: f64,
    /// auto, cpu or wgpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Timed runs of each kind.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Time only streamed runs (what the app does: every x_t handed out, and decoded for a latent
    /// model) or only plain ones (what `sample` does); both, for the comparison, by default.
    #[arg(long, value_enum)]
    pub only: Option<BenchMode>,
    /// Run the fixed suite (forward passes, guided DDIM-50 and DDPM-1000 runs, training steps of both
    /// built-in models) and print one JSON object; the other flags except --device and --threads are
    /// ignored.
    #[arg(long)]
    pub json: bool,
    /// With --json: one timed repeat of everything (a smoke test of the suite; timings are noisier).
    #[arg(long, requires = "json")]
    pub quick: bool,
    /// CPU threads to compute on [default: one per core]. `benches/torch_reference.py` passes the thread
    /// count it gives PyTorch, so that both sides run on as many cores.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    Streamed,
    Plain,
}

/// Runs the benchmark, within a pool of `--threads` threads when given.
///
/// Every CPU thread the benchmark computes on is one of rayon's: burn-flex's parallel operations use
/// rayon's parallel iterators, its GEMM calls pass `gemm::Parallelism::Rayon(0)` ("all threads"), which
/// gemm reads as `rayon::current_num_threads()` and splits with `into_par_iter`, and our kernels in
/// `model::cpu` do the same (read in burn-flex 0.22.1 `ops/matmul.rs`, gemm-common 0.19 `gemm.rs`).
/// Neither spawns threads of its own (burn-flex builds thread pools only in its tests), so all of it runs
/// on the pool of whatever `install` it is called under, and nothing needs limiting separately.
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    match args.threads {
        None => bench_on_current_pool(args),
        Some(0) => bail!("--threads must be at least 1"),
        Some(threads) => {
            let pool =
                rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("bench-{i}")).build()?;
            pool.install(|| bench_on_current_pool(args))
        }
    }
}

fn bench_on_current_pool(args: &BenchArgs) -> anyhow::Result<()> {
    if args.json {
        return bench_json(args.device, if args.quick { 1 } else { 3 });
    }
    if args.repeats == 0 || args.batch == 0 {
        bail!("--repeats and --batch must be at least 1");
    }
    let device = open_device(args.device)?;
    let (model, decoder) = load_model(&args.model, args.autoencoder.as_deref(), &device.device)?;
    let sampler = args.sampler.sampler();
    let bench = SamplingBench::new(&model, decoder.as_ref(), &device, sampler, args.batch, args.guidance);
    let steps = bench.steps()?;
    let unet_cost = model.config.cost(model.config.image_size, model.config.image_size);
    println!(
        "{}: {} parameters, {:.1} MFLOP per network evaluation, {:.1} MFLOP per image and step (guidance {})",
        args.model,
        unet_cost.parameters,
        unet_cost.flops as f64 / 1e6,
        bench.flops_per_image_step() as f64 / 1e6,
        args.guidance
    );
    if let Some(decoder) = &decoder {
        let cost = decoder.config.decoder_cost();
        println!(
            "  decoder D: {} parameters, {:.1} MFLOP per image (once per image shown)",
            cost.parameters,
            cost.flops as f64 / 1e6
        );
    }
    println!(
        "{} images, {} ({steps} steps), on {} ({} CPU threads)",
        args.batch,
        sampler.label(),
        device.description,
        rayon::current_num_threads()
    );
    bench.warm_up()?;
    let modes: &[bool] = match args.only {
        Some(BenchMode::Streamed) => &[true],
        Some(BenchMode::Plain) => &[false],
        None => &[true, false],
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..args.repeats {
        for (k, &stream) in modes.iter().enumerate() {
            let run = bench.run(stream)?;
            times[k].push(run.seconds);
            println!(
                "  {:<13} {:8.2} s  ({} frames handed out, {} decoded)",
                mode_name(stream),
                run.seconds,
                run.frames,
                run.decoded
            );
        }
    }
    let mut medians = Vec::new();
    for (k, &stream) in modes.iter().enumerate() {
        let median = median(&mut times[k]);
        println!(
            "median {}: {median:.2} s ({:.2} steps/s, {:.2} GFLOP/s of network evaluations)",
            mode_name(stream),
            steps as f64 / median,
            bench.network_flops()? as f64 / median / 1e9
        );
        medians.push(median);
    }
    if let [streamed, plain] = medians[..] {
        println!("streaming overhead: {:+.1} %", 100.0 * (streamed / plain - 1.0));
    }
    Ok(())
}

fn mode_name(stream: bool) -> &'static str {
    if stream { "streamed" } else { "not streamed" }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn load_model(
    name: &str,
    autoencoder: Option<&std::path::Path>,
    device: &Device,
) -> anyhow::Result<(LoadedUnet, Option<LoadedAutoencoder>)> {
    let LoadedModel { unet, autoencoder } = ResolvedModel::named(name, autoencoder)?.load(device)?;
    Ok((unet, autoencoder))
}

/// One sampling configuration, run through the run library's `run_generate` as the window and `sample` do.
struct SamplingBench<'a> {
    model: &'a LoadedUnet,
    decoder: Option<&'a LoadedAutoencoder>,
    device: &'a ComputeDevice,
    request: GenerateRequest,
}

/// What one timed run did.
struct TrainingTiming {
    seconds: f64,
    frames: usize,
    /// Frames that came with decoded pixels (latent models only).
    decoded: usize,
}

impl<'a> SamplingBench<'a> {
    fn new(
        model: &'a LoadedUnet,
        decoder: Option<&'a LoadedAutoencoder>,
        device: &'a ComputeDevice,
        sampler: Sampler,
        batch: usize,
        guidance: f64,
    ) -> Self {
        let request = GenerateRequest {
            model: diffusion_lab::model::ModelId::default(),
            schedule: model.header.training_schedule.unwrap_or_default(),
            sampler,
            seed: 0,
            batch,
            class: Some(0),
            prompt: None,
            guidance,
            guidance_interval: None,
            guidance_method: Default::default(),
            init: None,
            interpolate: None,
            branch: None,
        };
        Self { model, decoder, device, request }
    }

    fn steps(&self) -> anyhow::Result<usize> {
        Ok(self.request.sampler.plan(&self.request.schedule.build()?)?.len())
    }

    /// Guidance w other than 0 (unconditional only) and 1 (conditional only) evaluates the network twice per
    /// step, with and without the class.
    fn flops_per_image_step(&self) -> u64 {
        let size = self.model.config.image_size;
        let evaluations = if self.request.guidance == 0.0 || self.request.guidance == 1.0 { 1 } else { 2 };
        evaluations * self.model.config.cost(size, size).flops
    }

    /// FLOPs of the network evaluations of one run (decoding not counted: it differs between modes).
    fn network_flops(&self) -> anyhow::Result<u64> {
        Ok(self.request.batch as u64 * self.steps()? as u64 * self.flops_per_image_step())
    }

    /// A short run first: the first call pays for allocation (and on wgpu, shader compilation).
    fn warm_up(&self) -> anyhow::Result<()> {
        let request = GenerateRequest { sampler: Sampler::ddim(2, 0.0), ..self.request.clone() };
        self.run_request(&request, true).map(|_| ())
    }

    fn run(&self, stream: bool) -> anyhow::Result<TrainingTiming> {
        self.run_request(&self.request, stream)
    }

    fn run_request(&self, request: &GenerateRequest, stream: bool) -> anyhow::Result<TrainingTiming> {
        let (mut frames, mut decoded) = (0usize, 0usize);
        let mut emit = |frame: diffusion_lab::engine::Frame| {
            frames += 1;
            decoded += usize::from(frame.decoded.is_some());
        };
        let keep_going = || true;
        let hooks = RunHooks { keep_going: &keep_going, stream, emit: &mut emit };
        let summary = run_generate(self.model, self.decoder, request, &self.device.device, hooks)?;
        Ok(TrainingTiming { seconds: summary.seconds, frames, decoded })
    }
}

/// The fixed suite behind `bench --json`, each sampling run `repeats` times (median). Progress goes to
/// stderr, the JSON object to stdout.
fn bench_json(choice: DeviceChoice, repeats: usize) -> anyhow::Result<()> {
    let suite_started = Instant::now();
    let device = open_device(choice)?;
    let mut out = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        eprintln!("  {key}: {value}");
        out.insert(key.to_owned(), value);
    };
    put("schema", 1.into());
    put("diffusion_lab_version", env!("CARGO_PKG_VERSION").into());
    put("device", device.description.clone().into());
    put("threads", rayon::current_num_threads().into());
    put("cpu_kernels", diffusion_lab::model::cpu::kernels_enabled().into());
    put("repeats", repeats.into());

    let (pixel, _) = load_model("fashion", None, &device.device)?;
    put("pixel_parameters", pixel.model.parameter_count().into());
    for (batch, calls) in [(1, 20), (16, 5), (32, 5)] {
        let calls = if repeats == 1 { 1 } else { calls };
        put(
            &format!("pixel_forward_b{batch}_ms"),
            json_number(1e3 * forward_seconds(&pixel, batch, calls, &device.device)?),
        );
    }
    let ddim = SamplingBench::new(&pixel, None, &device, Sampler::ddim(50, 0.0), 16, SUITE_GUIDANCE);
    sampling_json(&ddim, "pixel_ddim50_w2_b16", repeats.min(2), &mut put)?;

    let (latent, decoder) = load_model("latent", None, &device.device)?;
    put("latent_parameters", latent.model.parameter_count().into());
    let ddim = SamplingBench::new(&latent, decoder.as_ref(), &device, Sampler::ddim(50, 0.0), 16, SUITE_GUIDANCE);
    sampling_json(&ddim, "latent_ddim50_w2_b16", repeats, &mut put)?;
    let ddpm = SamplingBench::new(
        &latent,
        decoder.as_ref(),
        &device,
        Sampler::ddpm(DdpmVariance::BetaTilde),
        16,
        SUITE_GUIDANCE,
    );
    put("latent_ddpm1000_w2_b16_plain_s", json_number(ddpm.run(false)?.seconds));

    // The batch sizes the built-in models were trained with (assets/models/README.md).
    let steps = if repeats == 1 { 1 } else { 5 };
    put("pixel_train_b64_images_per_s", json_number(training_images_per_second(&pixel, 64, steps, &device.device)?));
    put(
        "latent_train_b128_images_per_s",
        json_number(training_images_per_second(&latent, 128, steps, &device.device)?),
    );

    put("peak_rss_mib", peak_rss_mib().map_or(serde_json::Value::Null, json_number));
    put("suite_seconds", json_number(suite_started.elapsed().as_secs_f64()));
    println!("{}", serde_json::to_string_pretty(&serde_json::Value::Object(out))?);
    Ok(())
}

/// Rounded to 4 significant decimals for reading; NaN (no measurement) becomes null.
fn json_number(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64((value * 1e4).round() / 1e4).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `{prefix}_plain_s`, `{prefix}_streamed_s`, `{prefix}_streaming_overhead_pct` and
/// `{prefix}_gflop_per_s` (network FLOPs of the plain run over its time); runs alternate so that drift
/// on a shared machine hits both modes alike.
fn sampling_json(
    bench: &SamplingBench<'_>,
    prefix: &str,
    repeats: usize,
    put: &mut impl FnMut(&str, serde_json::Value),
) -> anyhow::Result<()> {
    bench.warm_up()?;
    let (mut plain, mut streamed) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        plain.push(bench.run(false)?.seconds);
        streamed.push(bench.run(true)?.seconds);
    }
    let (plain, streamed) = (median(&mut plain), median(&mut streamed));
    put(&format!("{prefix}_plain_s"), json_number(plain));
    put(&format!("{prefix}_streamed_s"), json_number(streamed));
    put(&format!("{prefix}_streaming_overhead_pct"), json_number(100.0 * (streamed / plain - 1.0)));
    put(&format!("{prefix}_gflop_per_s"), json_number(bench.network_flops()? as f64 / plain / 1e9));
    Ok(())
}

/// Median seconds of one conditional forward pass at `batch`, read back to the host (which also waits
/// for an asynchronous device).
fn forward_seconds(model: &LoadedUnet, batch: usize, repeats: usize, device: &Device) -> anyhow::Result<f64> {
    let size = model.config.image_size;
    let shape = [batch, model.config.image_channels, size, size];
    let x = NoiseSource::new(1).tensor(shape, device);
    let log_snr = Tensor::<1>::full([batch], 0.0, device);
    let classes = Tensor::<1, Int>::full([batch], 0, device);
    let mut times = Vec::with_capacity(repeats);
    for i in 0..repeats + 2 {
        let started = Instant::now();
        let eps = model.model.forward(x.clone(), log_snr.clone(), classes.clone());
        diffusion_lab::model::read_f32(eps)?;
        // The first two calls warm the allocator (and compile kernels on a GPU).
        if i >= 2 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(median(&mut times))
}

/// Images per second of `train`'s optimizer step (forward, MSE, backward, AdamW, EMA) on the built-in
/// model's architecture at `batch`, fed random data of the model's shape so that no data set is needed.
fn training_images_per_second(model: &LoadedUnet, batch: usize, steps: usize, device: &Device) -> anyhow::Result<f64> {
    let size = model.config.image_size;
    let channels = model.config.image_channels;
    let count = 4 * batch;
    let data = Dataset {
        images: NoiseSource::new(2)
            .values(count * channels * size * size)
            .into_iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect(),
        count,
        channels,
        height: size,
        width: size,
        labels: Some((0..count).map(|i| i % FASHION_MNIST_CLASSES.len()).collect()),
        class_names: FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    let config = TrainConfig::new().with_batch_size(batch);
    let mut trainer = DdpmTrainer::new(config, model.config.clone(), device, "benchmark data".into());
    for _ in 0..2 {
        trainer.train_step(&data);
    }
    let started = Instant::now();
    for _ in 0..steps {
        trainer.train_step(&data);
    }
    Ok((steps * batch) as f64 / started.elapsed().as_secs_f64())
}

/// The process's peak resident memory (VmHWM), where the OS reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
