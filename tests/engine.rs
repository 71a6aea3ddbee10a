//! The engine thread end to end with a small untrained UNet: streaming, cancelling, superseding.

mod common;

use std::time::Duration;

use common::wait_for;

use burn::prelude::*;
use diffusion_lab::diffusion::{BetaSchedule, Sampler};
use diffusion_lab::engine::{DeviceChoice, Engine, Event, GenerateRequest, ModelSource};
use diffusion_lab::model::UNetConfig;
use diffusion_lab::model::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, bytes_from_module};

/// How long loading a tiny model, or a whole run of it, may take (each takes well under a second alone).
const LIMIT: Duration = Duration::from_secs(300);

fn tiny_model_file(dir: &std::path::Path) -> std::path::PathBuf {
    common::tiny_unet_file(dir)
}

fn request(steps: usize, sampler: Sampler) -> GenerateRequest {
    GenerateRequest {
        model: "tiny".into(),
        schedule: BetaSchedule::linear(steps),
        sampler,
        seed: 3,
        batch: 2,
        class: Some(1),
        prompt: None,
        guidance: 2.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

fn engine_with_tiny_model(dir: &std::path::Path) -> Engine {
    let engine = Engine::spawn(DeviceChoice::Cpu, || {});
    engine.load_model("tiny".into(), ModelSource::File(tiny_model_file(dir)), None);
    wait_for(&engine, LIMIT, "the tiny model to load", |event| match event {
        Event::ModelLoaded(info) => {
            assert_eq!(info.id.label(), "tiny");
            Some(())
        }
        Event::ModelFailed { message, .. } => panic!("{message}"),
        _ => None,
    });
    engine
}

/// Collects events until the job is done or failed.
fn run_to_end(engine: &Engine, job: u64) -> (Vec<Event>, Event) {
    let mut frames = Vec::new();
    let end = wait_for(engine, LIMIT, &format!("the end of job {job}"), |event| match &event {
        Event::Done { job: j, .. } | Event::Failed { job: j, .. } if *j == job => Some(event),
        _ => {
            frames.push(event);
            None
        }
    });
    (frames, end)
}

#[test]
fn generate_streams_every_step_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    let job = engine.generate(request(20, Sampler::default()), true);
    let (events, end) = run_to_end(&engine, job);
    assert!(matches!(end, Event::Done { .. }), "{end:?}");
    let frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame { job: j, frame, total_steps } if *j == job => Some((frame.clone(), *total_steps)),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 21, "x_T and one frame per step");
    assert_eq!(frames[0].0.t, 20);
    assert_eq!(frames[20].0.t, 0);
    assert!(frames.iter().all(|(f, total)| *total == 20 && f.shape == [2, 1, 8, 8]));

    let again = engine.generate(request(20, Sampler::default()), false);
    let (events, _) = run_to_end(&engine, again);
    let last = events.iter().rev().find_map(|e| match e {
        Event::Frame { frame, .. } => Some(frame.clone()),
        _ => None,
    });
    assert_eq!(last.unwrap().x_t, frames[20].0.x_t, "same seed, same pixels");
}

#[test]
fn a_second_generate_supersedes_the_first_and_cancel_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    let first = engine.generate(request(1000, Sampler::default()), true);
    // Let it start, then supersede it.
    wait_for(&engine, LIMIT, "a frame of the first run", |event| match event {
        Event::Frame { job, .. } if job == first => Some(()),
        _ => None,
    });
    let second = engine.generate(request(10, Sampler::ddim(5, 0.0)), true);
    let (events, end) = run_to_end(&engine, second);
    assert!(matches!(end, Event::Done { .. }));
    let stale_after_second = events
        .iter()
        .skip_while(|e| !matches!(e, Event::Frame { job, .. } if *job == second))
        .any(|e| matches!(e, Event::Frame { job, .. } if *job == first));
    assert!(!stale_after_second, "no frame of the first run after the second started");
    assert!(events.iter().any(|e| matches!(e, Event::Done { job, summary } if *job == first && summary.cancelled)));

    let third = engine.generate(request(1000, Sampler::default()), true);
    engine.cancel();
    let (_, end) = run_to_end(&engine, third);
    match end {
        Event::Done { summary, .. } => assert!(summary.cancelled && summary.steps_done < 1000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_requests_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    let mut bad = request(100, Sampler::default());
    bad.schedule.beta_start = 0.5;
    bad.schedule.beta_end = 0.1;
    let job = engine.generate(bad, true);
    match run_to_end(&engine, job).1 {
        Event::Failed { message, .. } => assert!(message.contains("beta_start (0.5) must not be greater"), "{message}"),
        other => panic!("{other:?}"),
    }
    let mut unknown = request(10, Sampler::default());
    unknown.model = "nope".into();
    let job = engine.generate(unknown, true);
    assert!(matches!(run_to_end(&engine, job).1, Event::Failed { message, .. } if message.contains("not loaded")));
    engine.load_model("broken".into(), ModelSource::File(dir.path().join("missing.dlab")), None);
    wait_for(&engine, LIMIT, "the missing model file to fail", |event| match event {
        Event::ModelFailed { id: name, .. } => {
            assert_eq!(name.label(), "broken");
            Some(())
        }
        _ => None,
    });
}

#[test]
fn a_latent_model_streams_decoded_frames() {
    use diffusion_lab::model::autoencoder::AutoencoderConfig;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    // An 8x8 autoencoder with a 2x4x4 latent, and a UNet on that latent.
    let ae_config =
        AutoencoderConfig::new().with_image_size(8).with_channels(vec![8, 16]).with_groups(4).with_latent_channels(2);
    let ae = ae_config.init(&device);
    let ae_header = CheckpointHeader {
        kind: ModelKind::Autoencoder,
        config: serde_json::to_value(&ae_config).unwrap(),
        training_schedule: None,
        log_snr_range: None,
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    };
    let ae_path = dir.path().join("ae.dlab");
    Checkpoint::new(ae_header).with_section("weights", bytes_from_module(&ae, false).unwrap()).write(&ae_path).unwrap();
    let unet_config = UNetConfig::tiny().with_image_channels(2).with_image_size(4);
    let unet = unet_config.init(&device);
    let header = CheckpointHeader {
        kind: ModelKind::LatentUnet,
        config: serde_json::to_value(&unet_config).unwrap(),
        training_schedule: Some(BetaSchedule::linear(1000)),
        log_snr_range: Some((-20.0, 10.0)),
        step: 0,
        extra: serde_json::Value::Null,
        sections: Vec::new(),
    };
    let unet_path = dir.path().join("latent.dlab");
    Checkpoint::new(header)
        .with_section("weights", bytes_from_module(&unet, false).unwrap())
        .write(&unet_path)
        .unwrap();

    let mut engine = Engine::spawn(DeviceChoice::Cpu, || {});
    engine.load_model("latent-alone".into(), ModelSource::File(unet_path.clone()), None);
    engine.load_model("latent".into(), ModelSource::File(unet_path), Some(ModelSource::File(ae_path)));
    let mut loaded = false;
    let mut refused = false;
    wait_for(&engine, LIMIT, "the latent model to load and the one without its autoencoder to fail", |event| {
        match event {
            Event::ModelLoaded(info) => {
                assert!(info.is_latent);
                loaded = true;
            }
            Event::ModelFailed { id: name, message } => {
                assert_eq!(name.label(), "latent-alone");
                assert!(message.contains("needs its autoencoder"), "{message}");
                refused = true;
            }
            _ => {}
        }
        (loaded && refused).then_some(())
    });
    // 50 steps: x_T and the result come decoded, and most of the 49 frames between are left for after the
    // run (decoding during it stays within 3 % of its time), to be decoded newest first.
    const STEPS: usize = 50;
    let mut latent_request = request(1000, Sampler::ddim(STEPS, 0.0));
    latent_request.model = "latent".into();
    let job = engine.generate(latent_request.clone(), true);
    // Ask for the oldest frame the run leaves undecoded as soon as it arrives, while the run goes on: the
    // worker reads the request before it decodes anything after the run, so that frame must come first
    // where it would otherwise come last. (Within the first two, in case the run ended and one decode
    // began before the request got there.)
    let mut frames = Vec::new();
    let asked = wait_for(&engine, LIMIT, "the first frame the run leaves undecoded", |event| match event {
        Event::Frame { job: j, frame, .. } if j == job => {
            let undecoded = frame.decoded.is_none().then_some(frame.index);
            frames.push(frame);
            undecoded
        }
        Event::Done { job: j, .. } if j == job => panic!("the run left no frame undecoded"),
        Event::Failed { message, .. } => panic!("{message}"),
        _ => None,
    });
    engine.decode(job, asked);
    let (events, end) = run_to_end(&engine, job);
    assert!(matches!(end, Event::Done { .. }), "{end:?}");
    frames.extend(events.into_iter().filter_map(|e| match e {
        Event::Frame { frame, .. } => Some(frame),
        _ => None,
    }));
    assert_eq!(frames.len(), STEPS + 1, "x_T and one frame per step");
    assert!(frames[0].decoded.is_some(), "x_T comes decoded");
    assert!(frames[STEPS].decoded.is_some(), "the result comes decoded");
    // The steps in between are decoded during the run only within its time budget, the rest after it.
    let undecoded = frames.iter().filter(|f| f.decoded.is_none()).count();
    // With two or fewer left, "within the first two" would hold whatever the order.
    assert!(undecoded >= 4, "only {undecoded} frames were left to decode after the run: the order test needs more");
    let mut order = Vec::new();
    while frames.iter().any(|f| f.decoded.is_none()) {
        let (index, decoded) = wait_for(&engine, LIMIT, "the undecoded frames after the run", |event| match event {
            Event::Decoded { job: j, index, decoded } => {
                assert_eq!(j, job);
                Some((index, decoded))
            }
            other => panic!("unexpected {other:?}"),
        });
        assert!(frames[index].decoded.is_none(), "frame {index} decoded twice");
        order.push(index);
        frames[index].decoded = Some(decoded);
    }
    let position = order.iter().position(|i| *i == asked).expect("the frame asked for is decoded");
    assert!(position < 2, "frame {asked} was asked for first, but came in {order:?}");
    for frame in &frames {
        assert_eq!(frame.shape, [2, 2, 4, 4], "the chain runs on latents");
        let decoded = frame.decoded.as_ref().expect("every latent frame ends up decoded");
        assert_eq!(decoded.shape, [2, 1, 8, 8]);
        assert_eq!(decoded.x_t.len(), 2 * 64);
    }
    // Decoding after the run gives the pixels decoding during the run gives: the last frame of a plain run.
    let job = engine.generate(latent_request, false);
    let (events, _) = run_to_end(&engine, job);
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Frame { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.decoded.as_ref().unwrap().x_t, frames[STEPS].decoded.as_ref().unwrap().x_t);
    let recomputed = diffusion_lab::run::generate::decode_frame(
        &diffusion_lab::model::LoadedAutoencoder::from_checkpoint(
            &Checkpoint::read(&dir.path().join("ae.dlab")).unwrap(),
            &device,
        )
        .unwrap(),
        &frames[2],
        &device,
    )
    .unwrap();
    assert_eq!(recomputed.x_t, frames[2].decoded.as_ref().unwrap().x_t);
    assert_eq!(recomputed.x0_pred, frames[2].decoded.as_ref().unwrap().x0_pred);
}

#[test]
fn a_panicking_job_fails_with_a_message_and_the_worker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    let job = engine.inject_panic();
    let (_, end) = run_to_end(&engine, job);
    match end {
        Event::Failed { message, .. } => {
            assert!(message.contains("internal error") && message.contains("injected panic"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The same worker runs the next request to the end.
    let job = engine.generate(request(10, Sampler::ddim(3, 0.0)), true);
    let (frames, end) = run_to_end(&engine, job);
    assert!(matches!(end, Event::Done { .. }), "{end:?}");
    assert_eq!(frames.iter().filter(|e| matches!(e, Event::Frame { .. })).count(), 4);
}

#[test]
fn a_checkpoint_with_an_invalid_config_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::spawn(DeviceChoice::Cpu, || {});
    for (name, channels) in [("no-levels", vec![]), ("groups", vec![30, 60])] {
        let config = UNetConfig::tiny().with_image_size(8);
        let model = config.init(&Device::flex());
        let mut value = serde_json::to_value(&config).unwrap();
        value["channels"] = serde_json::json!(channels);
        let header = CheckpointHeader {
            kind: ModelKind::Unet,
            config: value,
            training_schedule: Some(BetaSchedule::linear(1000)),
            log_snr_range: Some((-20.0, 10.0)),
            step: 0,
            extra: serde_json::Value::Null,
            sections: Vec::new(),
        };
        let path = dir.path().join(format!("{name}.dlab"));
        Checkpoint::new(header)
            .with_section("weights", bytes_from_module(&model, false).unwrap())
            .write(&path)
            .unwrap();
        engine.load_model(name.into(), ModelSource::File(path), None);
        wait_for(&engine, LIMIT, &format!("the refusal of `{name}`"), |event| match event {
            Event::ModelFailed { id: failed, message } => {
                assert_eq!(failed.label(), name);
                assert!(message.contains("UNet config"), "{message}");
                Some(())
            }
            Event::ModelLoaded(info) => panic!("{} loaded", info.id.label()),
            _ => None,
        });
    }
}

#[test]
fn cancel_in_the_middle_of_a_run_stops_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    let job = engine.generate(request(1000, Sampler::default()), true);
    // Cancel after the fifth step has been handed out: mid-run, not before the first step.
    let mut frames = 0;
    wait_for(&engine, LIMIT, "the run's sixth frame", |event| {
        if let Event::Frame { job: j, .. } = event {
            frames += usize::from(j == job);
        }
        (frames == 6).then_some(())
    });
    engine.cancel();
    let (events, end) = run_to_end(&engine, job);
    let frames = frames + events.iter().filter(|e| matches!(e, Event::Frame { job: j, .. } if *j == job)).count();
    match end {
        Event::Done { summary, .. } => {
            assert!(summary.cancelled, "{summary:?}");
            assert!(summary.steps_done >= 5 && summary.steps_done < 1000, "{summary:?}");
            assert_eq!(frames, summary.steps_done + 1, "x_T and one frame per step done");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_non_finite_value_stops_the_run_naming_the_step_and_keeps_the_frames_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with_tiny_model(dir.path());
    // Guidance this large is infinite in f32: the first step goes non-finite, and the run must stop there.
    let mut bad = request(50, Sampler::ddim(10, 0.0));
    bad.guidance = 1e300;
    bad.sampler.clip_x0 = false; // Clipping x̂_0 would tame it.
    let job = engine.generate(bad, true);
    let (events, end) = run_to_end(&engine, job);
    match end {
        Event::Failed { message, .. } => assert!(message.contains("non-finite values at t = 50"), "{message}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1, "x_T, the frame before the bad step, was handed out");
    assert!(frames[0].x_t.iter().all(|v| v.is_finite()));
    // The engine goes on serving.
    let job = engine.generate(request(10, Sampler::ddim(3, 0.0)), true);
    assert!(matches!(run_to_end(&engine, job).1, Event::Done { .. }));
}

/// "When is it decided?" on the built-in pixel model: every end of every row is judged by the embedded
/// classifier, and a branch class is what the continuations ask for while the run keeps its own.
#[test]
fn decided_rows_judge_every_end_and_branches_ask_for_the_branch_class() {
    use diffusion_lab::app::state::Settings;
    use diffusion_lab::eval::decided::DecidedRows;
    let mut engine = Engine::spawn(DeviceChoice::Cpu, || {});
    let settings = Settings::default();
    engine.load_model(
        settings.model.clone(),
        ModelSource::Embedded(diffusion_lab::model::embedded::FASHION_UNET),
        None,
    );
    wait_for(&engine, LIMIT, "the pixel model to load", |event| match event {
        Event::ModelLoaded(_) => Some(()),
        Event::ModelFailed { message, .. } => panic!("{message}"),
        _ => None,
    });
    // A pullover with guidance 3, DDPM-like DDIM η = 1 over 10 steps, continued 4 times from x_T and the last step.
    let request = GenerateRequest {
        sampler: Sampler::ddim(10, 1.0),
        batch: 1,
        class: Some(2),
        guidance: 3.0,
        seed: 1,
        ..settings.request(false)
    };
    let mut rows_of = |branch_class: Option<usize>| -> DecidedRows {
        let job = engine.decided(request.clone(), 4, 2, branch_class);
        let rows = wait_for(&engine, LIMIT, "the decided rows", |event| match event {
            Event::Decided { job: j, rows } if j == job => Some(rows),
            _ => None,
        });
        (*rows.unwrap()).clone()
    };
    let own = rows_of(None);
    assert_eq!((own.class, own.branch_class), (Some(2), Some(2)), "without a branch class they ask for the run's");
    assert_eq!(own.rows.len(), 2);
    for row in &own.rows {
        assert_eq!(row.classes.len(), row.ends.len(), "one judged class per end");
        assert!(row.classes.iter().all(|c| *c < 10), "{:?}", row.classes);
    }
    let end = own.end_class.expect("the run's own end is judged");
    // From the last step nothing draws noise: every continuation is the run's own end, judged the same.
    assert!(own.rows[1].deterministic);
    assert_eq!(own.rows[1].classes, vec![end; 4]);

    let sneaker = rows_of(Some(7));
    assert_eq!((sneaker.class, sneaker.branch_class), (Some(2), Some(7)));
    assert_eq!(sneaker.end_class, Some(end), "the run up to each step is the run's own");
    assert_eq!(sneaker.rows[0].x_t, own.rows[0].x_t, "the same x_T");
    // From x_T, continuations asking for a sneaker end as sneakers: the branch class is what they ask for.
    assert!(sneaker.rows[0].judged_as(7) >= 3, "{:?}", sneaker.rows[0].classes);
    assert!(
        !own.rows[0].classes.contains(&7),
        "asking for the pullover, none ends as a sneaker: {:?}",
        own.rows[0].classes
    );
}
