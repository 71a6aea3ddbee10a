//! The 2-D lab on the engine's thread, for the window's "2-D lab" page. Training runs as idle work, like
//! the Train view's: a burst of optimizer steps (about [`BURST`] long) whenever no command waits, then a
//! progress event, so a request for particles or a field is served between two bursts.
//!
//! The lab's network is tiny (a few hundred thousand multiply-adds per point), so it always runs on the
//! CPU (burn's flex backend): a GPU would spend longer dispatching than computing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;

use crate::lab2d::data::PointData;
use crate::lab2d::run::{FieldRequest, LabError, ParticleRequest, ParticleRun, learned_field, true_field};
use crate::lab2d::{Distances, Lab};
use crate::model::point_mlp::PointDenoiserConfig;
use crate::train::ddpm::TrainConfig;

/// How long the worker trains before it looks for commands and reports.
pub const BURST: Duration = Duration::from_millis(40);

/// Distance over training: measured every this many steps with [`progress_request`].
pub const MEASURE_EVERY: u64 = 100;

/// The run that measures distance over training: unconditional, DPM++ 2M at 20 steps (the image models'
/// default sampler), 500 particles from a fixed seed, so the curve shows the network changing, not the noise.
pub fn progress_request(schedule: crate::diffusion::BetaSchedule) -> ParticleRequest {
    ParticleRequest {
        schedule,
        sampler: crate::model::denoise::DEFAULT_SAMPLER,
        guidance: 0.0,
        class: None,
        count: 500,
        seed: 0,
    }
}

pub enum Lab2dCommand {
    /// A new session (the old one is dropped): the data, the training settings, the network, and the
    /// schedule the distance over training is measured with.
    Start { data: PointData, config: TrainConfig, model: PointDenoiserConfig, schedule: crate::diffusion::BetaSchedule },
    /// Train (true) or pause (false).
    SetTraining(bool),
    /// Particles with the network as it is now, measured against the data.
    Sample { key: u64, request: ParticleRequest },
    /// The same request at each of `steps` sampling steps (the same x_T), each measured.
    CompareSteps { key: u64, request: ParticleRequest, steps: Vec<usize> },
    /// The learned and the true field at one level.
    Field { key: u64, request: FieldRequest },
}

#[derive(Clone, Debug)]
pub enum Lab2dEvent {
    Started {
        description: String,
        parameters: usize,
        classes: usize,
    },
    /// Training went on: the losses of the steps since the last report, and a distance if one was measured.
    Progress {
        step: u64,
        planned: u64,
        losses: Vec<(u64, f64)>,
        distance: Option<(u64, Distances)>,
        steps_per_second: f64,
    },
    Particles {
        key: u64,
        run: Arc<ParticleRun>,
        distances: Distances,
        floor: Distances,
        step: u64,
    },
    Compared {
        key: u64,
        rows: Vec<(usize, Arc<ParticleRun>, Distances)>,
        step: u64,
    },
    Field {
        key: u64,
        request: FieldRequest,
        learned: Arc<Vec<[f32; 2]>>,
        truth: Result<Arc<Vec<[f32; 2]>>, String>,
        step: u64,
    },
    /// A command or the training failed; `training_stopped` when it was the training, which has stopped.
    Failed {
        message: String,
        training_stopped: bool,
    },
}

/// The session the worker keeps.
#[derive(Default)]
pub struct Lab2dState {
    session: Option<Session>,
}

struct Session {
    lab: Lab,
    training: bool,
    schedule: crate::diffusion::BetaSchedule,
    /// How many of the lab's losses have been reported.
    reported: usize,
}

fn lab_device() -> Device {
    Device::flex()
}

impl Lab2dState {
    pub fn is_training(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.training && !s.lab.trainer.is_done())
    }

    pub fn handle(&mut self, command: Lab2dCommand, send: &dyn Fn(Lab2dEvent)) {
        let device = lab_device();
        let failed = |error: LabError| send(Lab2dEvent::Failed { message: error.to_string(), training_stopped: false });
        match command {
            Lab2dCommand::Start { data, config, model, schedule } => {
                let lab = Lab::new(data, config, model, &device);
                send(Lab2dEvent::Started {
                    description: lab.data.description.clone(),
                    parameters: lab.trainer.model_config.parameters(),
                    classes: lab.data.class_count,
                });
                self.session = Some(Session { lab, training: true, schedule, reported: 0 });
            }
            Lab2dCommand::SetTraining(on) => {
                if let Some(session) = self.session.as_mut() {
                    session.training = on;
                }
            }
            Lab2dCommand::Sample { key, request } => {
                let Some(session) = self.session.as_ref() else { return send(no_session()) };
                let sampled = session.lab.sample(&request, &device).and_then(|(run, distances)| {
                    let floor = session.lab.floor(request.count, request.seed.wrapping_add(1), request.class)?;
                    Ok((run, distances, floor))
                });
                match sampled {
                    Ok((run, distances, floor)) => send(Lab2dEvent::Particles {
                        key,
                        run: Arc::new(run),
                        distances,
                        floor,
                        step: session.lab.trainer.step,
                    }),
                    Err(error) => failed(error),
                }
            }
            Lab2dCommand::CompareSteps { key, request, steps } => {
                let Some(session) = self.session.as_ref() else { return send(no_session()) };
                match session.lab.compare_steps(&request, &steps, &device) {
                    Ok(rows) => {
                        let rows = rows.into_iter().map(|(n, run, d)| (n, Arc::new(run), d)).collect();
                        send(Lab2dEvent::Compared { key, rows, step: session.lab.trainer.step })
                    }
                    Err(error) => failed(error),
                }
            }
            Lab2dCommand::Field { key, request } => {
                let Some(session) = self.session.as_ref() else { return send(no_session()) };
                let truth = true_field(&session.lab.data.mixture, &request).map(Arc::new).map_err(|e| e.to_string());
                match learned_field(&session.lab.model(), &request, &device) {
                    Ok(learned) => send(Lab2dEvent::Field {
                        key,
                        request,
                        learned: Arc::new(learned),
                        truth,
                        step: session.lab.trainer.step,
                    }),
                    Err(error) => failed(error),
                }
            }
        }
    }

    /// Trains for about [`BURST`], measuring the distance at every [`MEASURE_EVERY`]th step, and reports.
    pub fn train_burst(&mut self, send: &dyn Fn(Lab2dEvent)) {
        let Some(session) = self.session.as_mut() else { return };
        let device = lab_device();
        let started = Instant::now();
        let mut steps = 0u64;
        let mut distance = None;
        let mut measuring = Duration::ZERO;
        while started.elapsed() < BURST && !session.lab.trainer.is_done() {
            let report = session.lab.train_step();
            steps += 1;
            if report.step.is_multiple_of(MEASURE_EVERY) || session.lab.trainer.is_done() {
                let measured = Instant::now();
                let result = session.lab.measure(&progress_request(session.schedule), &device);
                measuring = measured.elapsed();
                match result {
                    Ok(d) => distance = Some((report.step, d)),
                    Err(error) => {
                        session.training = false;
                        return send(Lab2dEvent::Failed { message: error.to_string(), training_stopped: true });
                    }
                }
                break;
            }
        }
        // The training rate: the measurement's time left out.
        let seconds = (started.elapsed() - measuring).as_secs_f64();
        let losses = session.lab.losses[session.reported..].to_vec();
        session.reported = session.lab.losses.len();
        send(Lab2dEvent::Progress {
            step: session.lab.trainer.step,
            planned: session.lab.trainer.config.steps,
            losses,
            distance,
            steps_per_second: steps as f64 / seconds.max(1e-9),
        });
    }
}

fn no_session() -> Lab2dEvent {
    Lab2dEvent::Failed {
        message: "the 2-D lab has no data yet: pick a preset or draw points, then Start training".into(),
        training_stopped: false,
    }
}
