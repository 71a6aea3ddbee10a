//! The 2-D lab on the engine's thread, for the window's "2-D lab" page. Training runs as idle work, like
//! the Train view's: a burst of optimizer steps (about [`BURST`] long) whenever no command waits, then a
//! progress event, so a request for particles or a field is served between two bursts.
//!
//! A comparison of recipes ([`Lab2dCommand::CompareRecipes`]) trains its networks the same way, one after
//! the other, in bursts that take turns with the session's, and measures each as it finishes
//! (`lab2d::recipes`).
//!
//! The long measurements (the solver bench, the likelihood, the guidance comparison) do not run here but
//! as jobs on threads of their own (engine/lab2d_jobs.rs), so that no command waits for them.
//!
//! The lab's network is tiny (a few hundred thousand multiply-adds per point), so it always runs on the
//! CPU (burn's flex backend): a GPU would spend longer dispatching than computing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;

use crate::diffusion::Objective;
use crate::lab2d::data::PointData;
use crate::lab2d::guidance_bench::{GuidanceBench, GuidanceBenchSettings};
use crate::lab2d::likelihood::{LikelihoodReport, LikelihoodSettings};
use crate::lab2d::recipes::{ComparisonSettings, RecipeReport, comparison_floor, exact_report, recipe_lab, report_of};
use crate::lab2d::run::{FieldRequest, FieldValues, LabError, ParticleRequest, ParticleRun, learned_field, true_field};
use crate::lab2d::solver_bench::{BenchSettings, SolverBench};
use crate::lab2d::{Distances, Lab};
use crate::model::point_mlp::PointDenoiserConfig;
use crate::train::ddpm::TrainConfig;
use crate::train::recipe::Recipe;

use super::lab2d_jobs::{LabJobs, LabSink, Measurement, start_likelihood, start_solver_bench};

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
    /// The learned and the true field at one level, of the session's network or a compared recipe's.
    Field { key: u64, request: FieldRequest, network: LabNetwork },
    /// Trains `recipes` on `data` for `steps` steps each from `seed` (the last comparison is dropped), then
    /// measures each with `settings`.
    CompareRecipes {
        key: u64,
        data: PointData,
        recipes: Vec<Recipe>,
        steps: u64,
        seed: u64,
        settings: ComparisonSettings,
    },
    /// Stops the comparison's training (what it measured stays).
    StopRecipes,
    /// Stops the measurement of this kind (solver bench, likelihood, guidance comparison) where it is; it
    /// sends no answer.
    StopMeasurement(Measurement),
    /// The guidance methods against the exact p(x|y) with the session's network (engine/lab2d_guidance.rs),
    /// autoguidance's guide trained for `guide_steps` when not kept; a job (engine/lab2d_jobs.rs) that
    /// replaces the last one.
    GuidanceBench { key: u64, settings: GuidanceBenchSettings, guide_steps: u64 },
    /// The likelihood of fresh points of the data four ways, with the session's network as it is now
    /// (`lab2d::likelihood`); a job that replaces the last one.
    Likelihood { key: u64, settings: LikelihoodSettings },
    /// The solver bench (`lab2d::solver_bench`) on `data`'s exact ε*, and on the session's network when it
    /// trained on the same data; a job that replaces the last one.
    SolverBench { key: u64, data: PointData, settings: BenchSettings },
}

/// Which of the lab's networks a field is of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabNetwork {
    /// The session's (Start).
    #[default]
    Session,
    /// Recipe `i` of the comparison.
    Recipe(usize),
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
        network: LabNetwork,
        /// What that network predicts (the field's target).
        objective: Objective,
        learned: Arc<FieldValues>,
        truth: Result<Arc<FieldValues>, String>,
        step: u64,
    },
    /// A comparison began: the floor of its distances and the exact denoiser measured.
    RecipesStarted {
        key: u64,
        floor: f64,
        exact: Arc<RecipeReport>,
    },
    /// Recipe `index` trained on: its step and the mean loss of the burst's steps.
    RecipeProgress {
        key: u64,
        index: usize,
        step: u64,
        planned: u64,
        loss: f64,
    },
    /// Recipe `index` has trained and was measured.
    RecipeMeasured {
        key: u64,
        index: usize,
        report: Arc<RecipeReport>,
    },
    /// The comparison failed and has stopped.
    RecipesFailed {
        key: u64,
        message: String,
    },
    /// The guidance comparison, with the session's network at `step`.
    GuidanceBenched {
        key: u64,
        bench: Arc<GuidanceBench>,
        step: u64,
    },
    GuidanceBenchFailed {
        key: u64,
        message: String,
    },
    /// The likelihood measured: true, ODE with the exact score, ODE with the network, the network's bound.
    Likelihood {
        key: u64,
        report: Arc<LikelihoodReport>,
    },
    LikelihoodFailed {
        key: u64,
        message: String,
    },
    /// The solver bench is done.
    SolverBenched {
        key: u64,
        bench: Arc<SolverBench>,
    },
    SolverBenchFailed {
        key: u64,
        message: String,
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
    recipes: Option<RecipeSession>,
    /// Whose turn the next burst is when both train.
    recipes_turn: bool,
    guidance: super::lab2d_guidance::GuidanceSession,
    /// The measurements running on their own threads.
    jobs: LabJobs,
}

/// A comparison of recipes: their sessions, trained one after the other.
struct RecipeSession {
    key: u64,
    labs: Vec<Lab>,
    settings: ComparisonSettings,
    /// The recipe training now; `labs.len()` when all are done.
    current: usize,
    training: bool,
}

impl RecipeSession {
    fn is_training(&self) -> bool {
        self.training && self.current < self.labs.len()
    }
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
        self.session_training() || self.recipes.as_ref().is_some_and(RecipeSession::is_training)
    }

    fn session_training(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.training && !s.lab.trainer.is_done())
    }

    /// Serves `command`; its answers go to `sink`, a job's from the job's thread.
    pub(crate) fn handle(&mut self, command: Lab2dCommand, sink: &LabSink) {
        let send: &dyn Fn(Lab2dEvent) = &**sink;
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
                self.guidance.forget();
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
            Lab2dCommand::Field { key, request, network } => self.field(key, request, network, send),
            Lab2dCommand::CompareRecipes { key, data, recipes, steps, seed, settings } => {
                self.recipes = None;
                let started = comparison_floor(&data, &settings)
                    .and_then(|floor| Ok((floor, exact_report(&data, &settings, &device)?)));
                match started {
                    Ok((floor, exact)) => send(Lab2dEvent::RecipesStarted { key, floor, exact: Arc::new(exact) }),
                    Err(error) => return send(Lab2dEvent::RecipesFailed { key, message: error.to_string() }),
                }
                let labs = recipes.into_iter().map(|r| recipe_lab(data.clone(), r, steps, seed, &device)).collect();
                self.recipes = Some(RecipeSession { key, labs, settings, current: 0, training: true });
            }
            Lab2dCommand::Likelihood { key, settings } => {
                let lab = self.session.as_ref().map(|s| &s.lab);
                start_likelihood(&mut self.jobs, sink, key, settings, lab);
            }
            Lab2dCommand::StopMeasurement(kind) => self.jobs.stop(kind),
            Lab2dCommand::StopRecipes => {
                if let Some(recipes) = self.recipes.as_mut() {
                    recipes.training = false;
                }
            }
            Lab2dCommand::GuidanceBench { key, settings, guide_steps } => {
                let lab = self.session.as_ref().map(|s| &s.lab);
                self.guidance.bench(&mut self.jobs, sink, (key, settings, guide_steps), lab);
            }
            Lab2dCommand::SolverBench { key, data, settings } => {
                let lab = self.session.as_ref().map(|s| &s.lab);
                start_solver_bench(&mut self.jobs, sink, key, &data, settings, lab);
            }
        }
    }

    /// Stops the measurements running as jobs (the engine shuts down); none sends its answer.
    pub(crate) fn stop_jobs(&self) {
        self.jobs.stop_all();
    }

    /// The learned and the true field of `network` at `request`'s level.
    fn field(&self, key: u64, request: FieldRequest, network: LabNetwork, send: &dyn Fn(Lab2dEvent)) {
        let lab = match network {
            LabNetwork::Session => self.session.as_ref().map(|s| &s.lab),
            LabNetwork::Recipe(i) => self.recipes.as_ref().and_then(|r| r.labs.get(i)),
        };
        let Some(lab) = lab else { return send(no_session()) };
        let objective = lab.trainer.recipe().objective;
        let truth = true_field(&lab.data.mixture, &request, objective).map(Arc::new).map_err(|e| e.to_string());
        match learned_field(&lab.model(), &request, &lab_device()) {
            Ok(learned) => send(Lab2dEvent::Field {
                key,
                request,
                network,
                objective,
                learned: Arc::new(learned),
                truth,
                step: lab.trainer.step,
            }),
            Err(error) => send(Lab2dEvent::Failed { message: error.to_string(), training_stopped: false }),
        }
    }

    /// A burst of training: the session's and the comparison's take turns when both train.
    pub fn train_burst(&mut self, send: &dyn Fn(Lab2dEvent)) {
        let recipes = self.recipes.as_ref().is_some_and(RecipeSession::is_training);
        let session = self.session_training();
        self.recipes_turn = !self.recipes_turn;
        if recipes && (self.recipes_turn || !session) {
            self.recipes_burst(send);
        } else {
            self.session_burst(send);
        }
    }

    /// Trains the comparison's current recipe for about [`BURST`]; measures it once it has trained.
    fn recipes_burst(&mut self, send: &dyn Fn(Lab2dEvent)) {
        let Some(recipes) = self.recipes.as_mut() else { return };
        let device = lab_device();
        let (key, index) = (recipes.key, recipes.current);
        let Some(lab) = recipes.labs.get_mut(index) else { return };
        let started = Instant::now();
        let mut losses = Vec::new();
        while started.elapsed() < BURST && !lab.trainer.is_done() {
            losses.push(lab.train_step().loss);
        }
        let loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        send(Lab2dEvent::RecipeProgress {
            key,
            index,
            step: lab.trainer.step,
            planned: lab.trainer.config.steps,
            loss,
        });
        if !lab.trainer.is_done() {
            return;
        }
        match report_of(lab, &recipes.settings, &device) {
            Ok(report) => send(Lab2dEvent::RecipeMeasured { key, index, report: Arc::new(report) }),
            Err(error) => {
                recipes.training = false;
                return send(Lab2dEvent::RecipesFailed { key, message: error.to_string() });
            }
        }
        recipes.current += 1;
    }

    /// Trains the session for about [`BURST`], measuring the distance at every [`MEASURE_EVERY`]th step, and
    /// reports.
    fn session_burst(&mut self, send: &dyn Fn(Lab2dEvent)) {
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
