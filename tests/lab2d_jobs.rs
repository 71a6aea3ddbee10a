//! The 2-D lab's long measurements (the solver bench, the likelihood, the guidance comparison) run beside
//! the engine's worker, not on it: a command sent while one runs (a Generate and its Cancel, a new lab
//! session, particles) is answered before the measurement's answer comes, a newer request of the same kind
//! replaces the older, and the numbers are the ones the same functions give when called directly. No
//! wall-clock assertions: each test asserts on the order the events arrive in.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use diffusion_lab::diffusion::guidance::{GuidanceMethod, GuidanceParams};
use diffusion_lab::diffusion::{BetaSchedule, Sampler};
use diffusion_lab::engine::lab2d::{Lab2dCommand, Lab2dEvent};
use diffusion_lab::engine::{DeviceChoice, Engine, Event, GenerateRequest};
use diffusion_lab::lab2d::Lab;
use diffusion_lab::lab2d::data::{PointData, Preset};
use diffusion_lab::lab2d::guidance_bench::{
    BenchNetworks, GuidanceBenchSettings, MethodScales, guidance_bench, train_guide,
};
use diffusion_lab::lab2d::likelihood::{LikelihoodSettings, lab_likelihood};
use diffusion_lab::lab2d::run::ParticleRequest;
use diffusion_lab::lab2d::solver_bench::{BenchSettings, solver_bench};
use diffusion_lab::model::point_mlp::PointDenoiserConfig;
use diffusion_lab::train::points::default_point_train_config;

/// Far more than any of these runs takes, even on a busy machine: only a hang reaches it.
const HANG: Duration = Duration::from_secs(900);

/// One test at a time: every network of the process draws its first weights from burn's one seeded
/// generator, so a session started in one test while another test's starts would change both.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The events, in the order they came, until (and with) the first that `done` accepts.
fn events_until(engine: &Engine, what: &str, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let started = Instant::now();
    let mut events = Vec::new();
    while started.elapsed() < HANG {
        if let Some(event) = engine.recv_timeout(Duration::from_millis(200)) {
            let last = done(&event);
            events.push(event);
            if last {
                return events;
            }
        }
    }
    panic!("no {what} within {HANG:?}; events so far: {events:?}");
}

/// Where in `events` the first that `is` accepts came.
fn position(events: &[Event], what: &str, is: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(is).unwrap_or_else(|| panic!("no {what} in {events:?}"))
}

fn lab_event(event: &Event) -> Option<&Lab2dEvent> {
    match event {
        Event::Lab2d(event) => Some(event),
        _ => None,
    }
}

/// A run of a model that is not loaded: cancelled before it starts, it is answered with Done at once.
fn generate_request() -> GenerateRequest {
    GenerateRequest {
        model: "not loaded".into(),
        schedule: BetaSchedule::linear(10),
        sampler: Sampler::ddim(5, 0.0),
        seed: 3,
        batch: 1,
        class: None,
        prompt: None,
        guidance: 0.0,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    }
}

/// A solver bench of 2000 particles runs (minutes on two cores); meanwhile a Generate and its Cancel, a new
/// lab session and a second, smaller bench are sent. The Generate's Done and the session's Started come
/// first, then the second bench's answer, and the first bench says nothing: the second replaced it. The
/// second bench's numbers are those of `solver_bench` called here.
#[test]
fn commands_sent_during_a_solver_bench_are_answered_first_and_a_new_bench_replaces_it() {
    let _serial = one_at_a_time();
    let mut engine = Engine::spawn(DeviceChoice::Cpu, || {});
    let data = PointData::from_preset(Preset::TwoGaussians, 500, 1);
    let big = BenchSettings { particles: 2000, ..BenchSettings::default() };
    engine.lab2d(Lab2dCommand::SolverBench { key: 1, data: data.clone(), settings: big });
    let job = engine.generate(generate_request(), false);
    engine.cancel();
    // Another mixture than the bench's: the bench stays on the exact ε* alone.
    let moons = PointData::from_preset(Preset::Moons, 500, 2);
    let (config, model) = (default_point_train_config().with_steps(100), PointDenoiserConfig::new());
    engine.lab2d(Lab2dCommand::Start { data: moons, config, model, schedule: BetaSchedule::cosine(1000) });
    let small = BenchSettings { particles: 60, ..BenchSettings::default() };
    engine.lab2d(Lab2dCommand::SolverBench { key: 2, data: data.clone(), settings: small.clone() });

    let answered = |e: &Event| {
        matches!(lab_event(e), Some(Lab2dEvent::SolverBenched { .. } | Lab2dEvent::SolverBenchFailed { .. }))
    };
    let events = events_until(&engine, "solver bench's answer", answered);
    let done = position(&events, "Generate's Done", |e| matches!(e, Event::Done { job: j, .. } if *j == job));
    let started =
        position(&events, "lab session's Started", |e| matches!(lab_event(e), Some(Lab2dEvent::Started { .. })));
    let Some(Lab2dEvent::SolverBenched { key, bench }) = events.last().and_then(lab_event) else {
        panic!("the bench failed: {:?}", events.last());
    };
    assert_eq!(*key, 2, "the second bench answers first; the first, replaced, never does");
    assert!(done < started && started < events.len() - 1, "order: Done {done}, Started {started}, {events:?}");
    assert!(bench.network.is_none(), "the session trained on other data");
    drop(engine);
    let direct = solver_bench(&data.mixture, None, &small, &Device::flex()).unwrap();
    assert_eq!(**bench, direct, "the bench on its own thread gives the numbers of a direct call");
}

/// A session trains to its end; then a guidance comparison (with autoguidance, whose guide trains first),
/// a likelihood and a solver bench are asked for, and particles after them. The particles come before any
/// of the three answers, and each answer is what the same functions give here on the same network (trained
/// here from the same seed).
#[test]
fn the_lab_samples_while_its_measurements_run_and_they_give_the_direct_numbers() {
    let _serial = one_at_a_time();
    let engine = Engine::spawn(DeviceChoice::Cpu, || {});
    let data = PointData::from_preset(Preset::TwoGaussians, 500, 1);
    let (config, model) = (default_point_train_config().with_steps(150), PointDenoiserConfig::new());
    let schedule = BetaSchedule::cosine(1000);
    engine.lab2d(Lab2dCommand::Start { data: data.clone(), config: config.clone(), model: model.clone(), schedule });
    let trained =
        |e: &Event| matches!(lab_event(e), Some(Lab2dEvent::Progress { step, planned, .. }) if step == planned);
    events_until(&engine, "the end of training", trained);

    let guidance = GuidanceBenchSettings {
        schedule,
        sampler: Sampler::ddim(20, 0.0),
        class: 1,
        particles: 100,
        seed: 0,
        methods: [GuidanceMethod::Cfg, GuidanceMethod::Auto]
            .map(|method| MethodScales::of(GuidanceParams { method, ..Default::default() }))
            .to_vec(),
        exact: true,
    };
    let likelihood = LikelihoodSettings { points: 20, ..LikelihoodSettings::quick(schedule) };
    let bench = BenchSettings { particles: 40, ..BenchSettings::default() };
    engine.lab2d(Lab2dCommand::GuidanceBench { key: 1, settings: guidance.clone(), guide_steps: 100 });
    engine.lab2d(Lab2dCommand::Likelihood { key: 1, settings: likelihood });
    engine.lab2d(Lab2dCommand::SolverBench { key: 1, data: data.clone(), settings: bench.clone() });
    let request =
        ParticleRequest { schedule, sampler: Sampler::ddim(10, 0.0), guidance: 0.0, class: None, count: 100, seed: 4 };
    engine.lab2d(Lab2dCommand::Sample { key: 7, request });

    let (mut guided, mut measured, mut benched) = (None, None, None);
    let mut particles_first = None;
    let started = Instant::now();
    while guided.is_none() || measured.is_none() || benched.is_none() {
        assert!(started.elapsed() < HANG, "answers so far: {guided:?} {measured:?} {benched:?}");
        let Some(Event::Lab2d(event)) = engine.recv_timeout(Duration::from_millis(200)) else { continue };
        let none_yet = guided.is_none() && measured.is_none() && benched.is_none();
        match event {
            Lab2dEvent::Particles { key: 7, .. } => particles_first = Some(none_yet),
            Lab2dEvent::GuidanceBenched { bench, step, .. } => guided = Some((bench, step)),
            Lab2dEvent::Likelihood { report, .. } => measured = Some(report),
            Lab2dEvent::SolverBenched { bench, .. } => benched = Some(bench),
            Lab2dEvent::GuidanceBenchFailed { message, .. }
            | Lab2dEvent::LikelihoodFailed { message, .. }
            | Lab2dEvent::SolverBenchFailed { message, .. }
            | Lab2dEvent::Failed { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    assert_eq!(particles_first, Some(true), "the particles came before the measurements' answers");
    drop(engine);

    // The same network, trained here (after the engine is gone: networks draw their first weights from
    // the device's one seeded generator).
    let device = Device::flex();
    let mut lab = Lab::new(data.clone(), config.clone(), model, &device);
    while !lab.trainer.is_done() {
        lab.train_step();
    }
    let (guided, step) = guided.unwrap();
    assert_eq!(step, lab.trainer.step);
    let guide = train_guide(&lab.data, lab.trainer.recipe(), 100, config.seed, &device);
    let (network, guide_network) = (lab.model(), guide.model());
    let networks = BenchNetworks { model: &network, guide: Some((&guide_network, 100)) };
    let direct = guidance_bench(networks, &data.mixture, &guidance, &device).unwrap();
    assert_eq!(*guided, direct, "the guidance comparison");
    assert_eq!(measured.unwrap(), Arc::new(lab_likelihood(&lab, &likelihood, &device).unwrap()), "the likelihood");
    let direct = solver_bench(&data.mixture, Some((&network, lab.trainer.step)), &bench, &device).unwrap();
    assert_eq!(*benched.unwrap(), direct, "the solver bench, with the network");
}
