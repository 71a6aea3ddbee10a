//! Schedules and sampler settings at and beyond every limit the sliders and flags allow: each request is
//! refused with a message naming the problem, or runs to an end (a result or a non-finite failure naming
//! the step). None panics.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::prelude::*;
use diffusion_lab::diffusion::{BetaSchedule, DdpmVariance, Sampler, ScheduleKind};
use diffusion_lab::engine::GenerateRequest;
use diffusion_lab::model::LoadedUnet;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::run::generate::{GenerateError, RunHooks, run_generate};

#[test]
fn every_extreme_setting_is_refused_or_runs_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let model =
        LoadedUnet::from_checkpoint(&Checkpoint::read(&common::tiny_unet_file(dir.path())).unwrap(), &device).unwrap();
    let kinds = [ScheduleKind::Linear, ScheduleKind::Cosine, ScheduleKind::Quadratic, ScheduleKind::Sigmoid];
    let betas = [f64::NAN, -1.0, 0.0, 1e-9, 1e-6, 0.02, 0.5, 0.999, 1.0, 2.0, f64::INFINITY];
    let (mut refused, mut ran, mut diverged, mut long) = (0, 0, 0, 0);
    for kind in kinds {
        for steps in [0, 1, 2, 10, 10_000, 10_001] {
            for (&beta_start, &beta_end) in betas.iter().zip(betas.iter().rev()).chain([(&1e-4, &0.02), (&0.5, &0.999)])
            {
                let schedule = BetaSchedule { kind, steps, beta_start, beta_end };
                let samplers = [
                    Sampler::ddim(0, 0.0),
                    Sampler::ddim(1, 0.0),
                    Sampler::ddim(3, 1.0),
                    Sampler::ddim(steps.max(1), 0.0),
                    Sampler::ddim(steps + 1, 0.0),
                    Sampler::ddim(3, f64::NAN),
                    Sampler::ddim(3, -0.5),
                    Sampler::ddim(3, 2.0),
                    Sampler::ddpm(DdpmVariance::BetaTilde).with_clip_x0(false),
                ];
                for sampler in samplers {
                    for guidance in [0.0, 2.0, 10.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
                        let request = GenerateRequest {
                            model: "tiny".into(),
                            schedule,
                            sampler,
                            seed: 1,
                            batch: 1,
                            class: Some(1),
                            prompt: None,
                            guidance,
                            guidance_interval: None,
                            guidance_method: Default::default(),
                            init: None,
                            interpolate: None,
                            branch: None,
                        };
                        if request.validate(model.config.num_classes).is_err() {
                            refused += 1;
                            continue;
                        }
                        // Long chains (DDIM or DDPM over T = 10 000) only repeat what their first steps show.
                        let plan = sampler.plan(&schedule.build().unwrap()).unwrap();
                        if plan.len() > 12 {
                            long += 1;
                            continue;
                        }
                        let outcome = catch_unwind(AssertUnwindSafe(|| {
                            let keep_going = || true;
                            let mut emit = |_frame| {};
                            run_generate(
                                &model,
                                None,
                                &request,
                                &device,
                                RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit },
                            )
                        }));
                        match outcome {
                            Ok(Ok(_)) => ran += 1,
                            Ok(Err(GenerateError::NonFinite { .. })) => diverged += 1,
                            Ok(Err(e)) => panic!("{request:?} passed validation but failed: {e}"),
                            Err(_) => panic!("{request:?} panicked"),
                        }
                    }
                }
            }
        }
    }
    eprintln!("{refused} refused, {ran} ran, {diverged} stopped at a non-finite step, {long} valid but long (not run)");
    assert!(refused > 0 && ran > 0);
}

#[test]
fn the_refusals_name_the_field() {
    let bad = |schedule: BetaSchedule| schedule.validate().unwrap_err().to_string();
    assert!(bad(BetaSchedule { steps: 0, ..BetaSchedule::linear(10) }).contains("steps"));
    assert!(bad(BetaSchedule { beta_end: f64::NAN, ..BetaSchedule::linear(10) }).contains("beta_end"));
    assert!(bad(BetaSchedule { beta_start: 0.5, beta_end: 0.1, ..BetaSchedule::linear(10) }).contains("beta_start"));
    // Zero terminal SNR (ᾱ_T = 0) cannot be sampled from: refused, not a division by zero later.
    let zero_snr = BetaSchedule { beta_end: 1.0, ..BetaSchedule::linear(10) };
    assert!(zero_snr.build().is_err());
}
