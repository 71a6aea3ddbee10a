//! Comparing runs in the window. A/B: two runs from the same x_T (same seed, batch and class) with
//! different settings, side by side, scrubbed together by noise level. X/Y grid: one run per pair of
//! values of two settings, filling in live, labelled on both axes, saved as one PNG with every cell's
//! settings. The engine runs one job at a time: the runs of a comparison wait in a queue here.

use std::collections::VecDeque;

use eframe::egui;

use super::colors::TextureCache;
use super::context::PanelContext;
use super::generate_ui::RunEnd;
use super::state::Trajectory;
use super::viewer::TrajectoryViewer;
use crate::diffusion::{BetaSchedule, Sampler, ScheduleKind};
use crate::engine::grid::{GridAxis, GridSetting, conditioning_caption, grid_requests};
use crate::model::ModelId;

use crate::engine::generate::Branch;
use crate::engine::{Event, Frame, GenerateRequest};
use crate::images::{GridLabels, Picture};

/// What Generate runs and the middle of the window shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One run, as always.
    Single,
    /// A (the settings on the left) and B, side by side.
    AB,
    /// An X/Y grid over two settings.
    Grid,
    /// A strip between two seeds or two classes.
    Interpolate,
    /// A run continued from a step of the main run ("Continue from here"), beside it.
    Branch,
    /// When is it decided: one run continued from several of its steps, several times each (DDPM's
    /// Figure 7), as rows.
    Decided,
}

/// What an interpolation strip goes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Between {
    /// A's seed's noise and `seed_b`'s (spherically), A's class throughout.
    Seeds,
    /// A's class and `class_b` (their τ_θ(y)), A's noise throughout.
    Classes,
    /// A text model's prompt and `prompt_b` (their τ_θ(y), token by token), A's noise throughout.
    Prompts,
}

/// What B changes from A; everything else (seed, batch, class, clipping) is A's, so both start from the
/// same x_T.
#[derive(Clone, Debug, PartialEq)]
pub struct BSettings {
    pub model: ModelId,
    pub sampler: Sampler,
    pub guidance: f64,
    pub schedule: BetaSchedule,
    /// B's prompt for a text model ("" keeps A's): the same x_T with other words.
    pub prompt: String,
}

/// A grid or an interpolation strip in progress (or done): its labels, every cell's request and what has
/// arrived.
#[derive(Clone, Debug)]
pub struct Grid {
    pub labels: GridLabels,
    /// What its PNG's settings text holds beside the base request: the axes and cells, or the strip.
    pub settings: serde_json::Value,
    pub base: GenerateRequest,
    pub requests: Vec<GenerateRequest>,
    /// Each cell's image once its run has finished.
    pub cells: Vec<Option<Picture>>,
    /// Why a cell has no image, if its run failed.
    pub errors: Vec<Option<String>>,
    /// Bumped whenever a cell changes, so the texture is rebuilt only then.
    pub serial: u64,
}

impl Grid {
    pub fn labels(&self) -> GridLabels {
        self.labels.clone()
    }

    /// A run of `requests` (row-major) with these labels.
    fn new(
        labels: GridLabels,
        settings: serde_json::Value,
        base: GenerateRequest,
        requests: Vec<GenerateRequest>,
    ) -> Self {
        let n = requests.len();
        Self { labels, settings, base, requests, cells: vec![None; n], errors: vec![None; n], serial: 0 }
    }

    pub fn finished_cells(&self) -> usize {
        self.cells.iter().zip(&self.errors).filter(|(c, e)| c.is_some() || e.is_some()).count()
    }
}

/// Which run a queued or running job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    B,
    Cell(usize),
}

/// The comparison controls and what they run: A/B's B (a viewer of its own, scrubbed along with A's),
/// the X/Y grid and the interpolation strip, with the queue of runs they wait in.
pub struct ComparePanel {
    pub mode: Mode,
    pub b: BSettings,
    /// B's run; its cursor follows A's noise level.
    pub viewer_b: TrajectoryViewer,
    /// The grid's axes as the user types them: a setting and its comma-separated values.
    pub x_setting: GridSetting,
    pub x_values: String,
    pub y_setting: GridSetting,
    pub y_values: String,
    pub grid: Option<Grid>,
    pub between: Between,
    pub seed_b: u64,
    pub class_b: usize,
    pub prompt_b: String,
    /// Images in a strip, both ends included.
    pub frames: usize,
    /// Runs waiting for the engine, in order; `running` is the one it has.
    pub queue: VecDeque<(Target, GenerateRequest)>,
    pub running: Option<(u64, Target)>,
    /// B's job, kept after it finishes for the frames decoded later.
    pub b_job: Option<u64>,
    /// In branch mode: the run (A) and the step B continues from.
    pub branch: Option<Branch>,
    /// "When is it decided": continuations per step, and how many steps.
    pub decided_continuations: usize,
    pub decided_points: usize,
    /// The engine's job computing the rows, while it does.
    pub decided_job: Option<u64>,
    pub(super) grid_texture: TextureCache<u64>,
}

impl ComparePanel {
    pub fn new(settings: &super::state::Settings) -> Self {
        Self {
            mode: Mode::Single,
            b: BSettings {
                model: settings.model.clone(),
                sampler: Sampler::new(crate::diffusion::Method::DpmSolver2M, 20),
                guidance: settings.guidance,
                schedule: settings.schedule,
                prompt: String::new(),
            },
            viewer_b: TrajectoryViewer::new("frame-b", "B images"),
            x_setting: GridSetting::Guidance,
            x_values: "0, 1, 2, 4".into(),
            y_setting: GridSetting::Steps,
            y_values: "10, 20, 50".into(),
            grid: None,
            between: Between::Seeds,
            seed_b: settings.seed + 1,
            class_b: 7,
            prompt_b: String::new(),
            frames: 8,
            queue: VecDeque::new(),
            running: None,
            b_job: None,
            branch: None,
            decided_continuations: 8,
            decided_points: 6,
            decided_job: None,
            grid_texture: TextureCache::new("grid"),
        }
    }

    /// Whether `job` is one of ours: running, or B's, whose frames the engine decodes after it.
    pub fn owns(&self, job: u64) -> bool {
        self.running.is_some_and(|(j, _)| j == job) || self.b_job == Some(job)
    }

    /// The request B runs, for A's `request`.
    pub fn request_b(&self, request: &GenerateRequest) -> GenerateRequest {
        GenerateRequest {
            model: self.b.model.clone(),
            schedule: self.b.schedule,
            sampler: Sampler { clip_x0: request.sampler.clip_x0, ..self.b.sampler },
            guidance: self.b.guidance,
            prompt: match &request.prompt {
                Some(a) if !self.b.prompt.trim().is_empty() => {
                    Some(crate::engine::generate::PromptRequest { text: self.b.prompt.clone(), ..a.clone() })
                }
                other => other.clone(),
            },
            ..request.clone()
        }
    }

    /// The branch B runs in branch mode: A's run from the step chosen, with the settings on the left
    /// (class, guidance, sampler and steps, seed); the model, schedule, batch and starting picture are A's.
    pub fn branch_request(&self, settings: &super::state::Settings) -> Option<GenerateRequest> {
        let branch = self.branch.as_ref()?;
        Some(GenerateRequest {
            sampler: Sampler { clip_x0: branch.parent.sampler.clip_x0, ..settings.sampler },
            seed: settings.seed,
            class: settings.class,
            guidance: settings.guidance,
            guidance_interval: settings.guidance_interval,
            interpolate: None,
            branch: Some(branch.clone()),
            ..(*branch.parent).clone()
        })
    }

    /// "Continue from here" (or Generate in branch mode): B continues `branch`, queued to run after A.
    pub fn queue_branch(&mut self, ctx: &PanelContext, branch: Branch) {
        self.mode = Mode::Branch;
        self.branch = Some(branch);
        let Some(request) = self.branch_request(&ctx.settings) else { return };
        let trajectory = Trajectory { budget_bytes: ctx.trajectory_budget, ..Trajectory::new(request.clone()) };
        self.viewer_b.show(trajectory, 0);
        self.b_job = None;
        self.drop_queued_b();
        self.queue.push_back((Target::B, request));
    }

    /// Restored settings of a branch: back to branch mode, Generate runs its parent and then it.
    pub fn restore_branch(&mut self, branch: &Branch) {
        self.mode = Mode::Branch;
        self.branch = Some(branch.clone());
    }

    /// The grid's axes from what the user typed.
    pub fn axes(&self) -> Result<(GridAxis, GridAxis), String> {
        let axis = |setting: GridSetting, values: &str| {
            format!("{}={values}", setting.name()).parse::<GridAxis>().map_err(|e| e.to_string())
        };
        Ok((axis(self.x_setting, &self.x_values)?, axis(self.y_setting, &self.y_values)?))
    }

    /// Every cell's request for a grid around `base`.
    pub fn grid_requests(&self, base: &GenerateRequest) -> Result<(GridAxis, GridAxis, Vec<GenerateRequest>), String> {
        let (x, y) = self.axes()?;
        let requests = grid_requests(base, &x, &y).map_err(|e| e.to_string())?;
        Ok((x, y, requests))
    }

    /// Every image's request of a strip from `base` (A's settings) to the other seed or class.
    pub fn strip_requests(&self, base: &GenerateRequest) -> (GridLabels, Vec<GenerateRequest>) {
        let n = self.frames.max(2);
        let (seed_b, class_b, prompt_b, what) = match self.between {
            Between::Seeds => (Some(self.seed_b), None, None, format!("seed {} -> {}", base.seed, self.seed_b)),
            Between::Classes => {
                (None, Some(self.class_b), None, format!("{} -> class {}", conditioning_caption(base), self.class_b))
            }
            Between::Prompts => {
                let a = base.prompt.as_ref().map(|p| p.text.clone()).unwrap_or_default();
                (None, None, Some(self.prompt_b.as_str()), format!("'{a}' -> '{}'", self.prompt_b))
            }
        };
        let requests = crate::engine::grid::interpolation_requests(base, seed_b, class_b, prompt_b, n);
        let columns = requests.iter().map(|r| format!("{:.2}", r.interpolate.as_ref().map_or(0.0, |i| i.u))).collect();
        (
            GridLabels { x_title: format!("u, {what}"), columns, y_title: String::new(), rows: vec![String::new()] },
            requests,
        )
    }

    /// Restored settings of a strip (its request says where u = 1 goes): back to interpolation mode.
    pub fn restore_interpolation(&mut self, interpolate: &crate::engine::generate::Interpolate) {
        self.mode = Mode::Interpolate;
        match (interpolate.seed_b, interpolate.class_b, &interpolate.prompt_b) {
            (Some(seed), ..) => {
                self.between = Between::Seeds;
                self.seed_b = seed;
            }
            (None, Some(class), _) => {
                self.between = Between::Classes;
                self.class_b = class;
            }
            (None, None, Some(prompt)) => {
                self.between = Between::Prompts;
                self.prompt_b = prompt.clone();
            }
            (None, None, None) => {}
        }
    }

    /// An event of one of our jobs: frames go to B's viewer or to their cell; the end of a run is returned.
    pub fn on_run_event(&mut self, ctx: &mut PanelContext, event: Event) -> Option<RunEnd> {
        match event {
            Event::Frame { job, frame, total_steps } => {
                self.on_frame(job, frame, total_steps);
                None
            }
            Event::Done { job, summary } if self.running.is_some_and(|(j, _)| j == job) => {
                self.running = None;
                if summary.cancelled {
                    ctx.set_status(format!("cancelled after {} steps", summary.steps_done), false);
                    return Some(RunEnd::Stopped);
                }
                Some(RunEnd::Finished)
            }
            Event::Failed { job, message } => {
                if let Some(message) = self.on_failed(job, &message) {
                    ctx.set_status(message, true);
                }
                // A failed cell does not stop the grid: the next one runs.
                Some(RunEnd::Finished)
            }
            Event::Decoded { job, index, decoded } if self.b_job == Some(job) => {
                self.viewer_b.set_decoded(index, decoded);
                None
            }
            _ => None,
        }
    }

    /// A frame of one of our jobs has arrived.
    fn on_frame(&mut self, job: u64, frame: Frame, total_steps: usize) {
        match self.running {
            Some((j, Target::B)) if j == job => self.viewer_b.push(frame, total_steps),
            // Cells run without streaming: the frame after x_T is the result.
            Some((j, Target::Cell(i))) if j == job && frame.index > 0 => {
                if let Some(grid) = &mut self.grid
                    && let Some(picture) = frame.pictures().into_iter().next()
                {
                    grid.cells[i] = Some(picture);
                    grid.serial += 1;
                }
            }
            _ => {}
        }
    }

    /// One of our jobs has failed: a cell keeps the reason, B's failure goes to the status bar.
    fn on_failed(&mut self, job: u64, message: &str) -> Option<String> {
        match self.running.take() {
            Some((j, Target::Cell(i))) if j == job => {
                if let Some(grid) = &mut self.grid {
                    grid.errors[i] = Some(message.to_owned());
                    grid.serial += 1;
                }
                None
            }
            Some((j, Target::B)) if j == job => Some(format!("B: {message}")),
            other => {
                self.running = other;
                None
            }
        }
    }

    /// Drops B when it waits for an A that was cancelled or failed.
    pub fn drop_queued_b(&mut self) {
        self.queue.retain(|(target, _)| *target != Target::B);
    }

    /// Drops what is queued (Cancel, or a new Generate).
    pub fn clear_queue(&mut self) {
        self.queue.clear();
    }
}

impl ComparePanel {
    /// Whether a run of ours (B, a cell) or the decided rows are with the engine.
    pub fn is_running(&self) -> bool {
        self.running.is_some() || self.decided_job.is_some()
    }

    /// Starts the next queued comparison run, if the engine is free of ours (`main_running`: the main run
    /// still runs; B waits for A).
    pub fn start_next_queued(&mut self, ctx: &mut PanelContext, main_running: bool) {
        if main_running || self.running.is_some() {
            return;
        }
        let Some((target, request)) = self.queue.pop_front() else { return };
        // B streams like A (it is scrubbed); a grid cell needs only its result.
        let job = ctx.engine.generate(request, target == Target::B);
        self.running = Some((job, target));
        if target == Target::B {
            self.b_job = Some(job);
            // Its frames are this job's: textures of an earlier B at the same index are not reused.
            self.viewer_b.serial = job;
        }
    }

    /// A/B: B from the same x_T as A's `request_a`, queued to run after A.
    pub fn queue_b(&mut self, ctx: &PanelContext, request_a: &GenerateRequest) {
        let request_b = self.request_b(request_a);
        let trajectory = Trajectory { budget_bytes: ctx.trajectory_budget, ..Trajectory::new(request_b.clone()) };
        self.viewer_b.show(trajectory, 0);
        self.b_job = None;
        self.queue.push_back((Target::B, request_b));
    }

    /// Generate in grid mode: every cell, one after the other, each filled in as it finishes. `init` is
    /// the Forward process panel's picture, which a strength axis edits.
    pub fn start_grid(&mut self, ctx: &mut PanelContext, init: Option<crate::engine::generate::InitImage>) {
        let mut base = ctx.settings.request();
        if [self.x_setting, self.y_setting].contains(&GridSetting::Strength) {
            base.init = init;
        }
        let (x, y, requests) = match self.grid_requests(&base) {
            Ok(grid) => grid,
            Err(e) => {
                ctx.set_status(format!("cannot run the grid: {e}"), true);
                return;
            }
        };
        let labels = GridLabels {
            x_title: x.title().into(),
            columns: x.values.clone(),
            y_title: y.title().into(),
            rows: y.values.clone(),
        };
        let settings = crate::engine::grid::grid_settings_json(&x, &y, &requests);
        self.start_cells(ctx, Grid::new(labels, settings, base, requests));
    }

    /// Generate in interpolation mode: the strip's images one after the other, filled in as they finish.
    pub fn start_interpolation(&mut self, ctx: &mut PanelContext) {
        let base = ctx.settings.request();
        let (labels, requests) = self.strip_requests(&base);
        let settings = serde_json::json!({ "interpolation": requests });
        // The strip's PNG restores as its far end's settings: A's seed and class, and where u = 1 goes.
        let base = GenerateRequest { interpolate: requests.last().and_then(|r| r.interpolate.clone()), ..base };
        self.start_cells(ctx, Grid::new(labels, settings, base, requests));
    }

    /// Queues every cell of `run` (what was running was cancelled by the window, which then starts the
    /// first cell with [`ComparePanel::start_next_queued`]).
    fn start_cells(&mut self, ctx: &mut PanelContext, run: Grid) {
        self.queue = run.requests.iter().cloned().enumerate().map(|(i, r)| (Target::Cell(i), r)).collect();
        self.grid = Some(run);
        self.running = None;
        ctx.clear_status();
    }

    /// B's or the grid's part of the status bar.
    pub fn progress_ui(&self, ui: &mut egui::Ui) {
        match (self.running, &self.grid) {
            (Some((_, Target::B)), _) => {
                let done = self.viewer_b.len().saturating_sub(1);
                let total = self.viewer_b.trajectory.as_ref().map_or(0, |t| t.total_steps);
                ui.label(format!("running B: step {done} of {total}"));
            }
            (Some((_, Target::Cell(i))), Some(grid)) => {
                ui.add(
                    egui::ProgressBar::new(grid.finished_cells() as f32 / grid.cells.len().max(1) as f32)
                        .desired_width(220.0)
                        .text(format!("grid: cell {} of {}", i + 1, grid.cells.len())),
                );
            }
            _ => {}
        }
    }

    /// Why the comparison of the current mode cannot run, if it cannot (A's own reasons come first).
    pub fn blocker(&self, ctx: &PanelContext) -> Option<String> {
        match self.mode {
            Mode::Single => None,
            Mode::AB => {
                let Some(model) = ctx.models.info(&self.b.model) else {
                    return Some(format!("B's model {} is not loaded", self.b.model));
                };
                let request = self.request_b(&ctx.settings.request());
                request.validate(model.config.num_classes).err().map(|e| format!("B: {e}"))
            }
            Mode::Grid => self.axes().err(),
            Mode::Branch => {
                let Some(request) = self.branch_request(&ctx.settings) else {
                    return Some("nothing to continue: scrub a run to a step and press Continue from here".into());
                };
                let model = ctx.models.info(&request.model)?;
                request.validate(model.config.num_classes).err().map(|e| format!("the branch: {e}"))
            }
            Mode::Decided => None,
            Mode::Interpolate => {
                let model = ctx.model_info()?;
                let (_, requests) = self.strip_requests(&ctx.settings.request());
                requests.iter().find_map(|r| r.validate(model.config.num_classes).err()).map(|e| e.to_string())
            }
        }
    }
}

fn schedule_kind_ui(ui: &mut egui::Ui, label: &str, schedule: &mut BetaSchedule) {
    egui::ComboBox::from_label(label).selected_text(schedule.kind.name()).show_ui(ui, |ui| {
        for kind in ScheduleKind::ALL {
            if ui.selectable_label(schedule.kind == kind, kind.name()).clicked() && schedule.kind != kind {
                *schedule = BetaSchedule::default_for(kind, schedule.steps);
            }
        }
    });
}

impl ComparePanel {
    /// The comparison controls in the Generate panel: the mode, then B's settings or the grid's axes.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.horizontal(|ui| {
            ui.label("Compare:");
            ui.selectable_value(&mut self.mode, Mode::Single, "Off");
            ui.selectable_value(&mut self.mode, Mode::AB, "A/B");
            ui.selectable_value(&mut self.mode, Mode::Grid, "X/Y grid");
            ui.selectable_value(&mut self.mode, Mode::Interpolate, "Interpolate");
            ui.selectable_value(&mut self.mode, Mode::Branch, "Branch")
                .on_hover_text("A run continued from a step of another: press Continue from here below the timeline");
            ui.selectable_value(&mut self.mode, Mode::Decided, "When is it decided?").on_hover_text(
                "One run continued from several of its steps, several times each with fresh noise (DDPM's Figure 7)",
            );
        });
        match self.mode {
            Mode::Single => {}
            Mode::Decided => self.decided_settings_ui(ui, ctx),
            Mode::Branch => self.branch_settings_ui(ui, ctx),
            Mode::AB => self.b_settings_ui(ui, ctx),
            Mode::Interpolate => self.strip_settings_ui(ui, ctx),
            Mode::Grid => self.grid_settings_ui(ui, ctx),
        }
    }

    /// What B changes from A.
    fn b_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.label("B starts from A's x_T (seed, batch, class); it changes:");
        let ids: Vec<ModelId> = ctx.models.loaded.iter().map(|m| m.id.clone()).collect();
        egui::ComboBox::from_label("B: model").selected_text(self.b.model.label()).show_ui(ui, |ui| {
            for id in ids {
                let label = id.label();
                ui.selectable_value(&mut self.b.model, id, label);
            }
        });
        let steps = self.b.schedule.steps;
        super::generate_ui::sampler_ui(ui, "B: ", &mut self.b.sampler, steps);
        ui.add(egui::Slider::new(&mut self.b.guidance, 0.0..=10.0).step_by(0.1).text("B: guidance"));
        if ctx.settings.text_model {
            let label = ui.label("B: prompt");
            ui.add(egui::TextEdit::singleline(&mut self.b.prompt).hint_text("empty: A's prompt"))
                .labelled_by(label.id)
                .on_hover_text("B draws these words from A's x_T (a text model; empty keeps A's prompt)");
        }
        schedule_kind_ui(ui, "B: schedule", &mut self.b.schedule);
        if ui.button("B = A").on_hover_text("Copy A's model, sampler, guidance and schedule into B").clicked() {
            self.b = BSettings {
                model: ctx.settings.model.clone(),
                sampler: ctx.settings.sampler,
                guidance: ctx.settings.guidance,
                schedule: ctx.settings.schedule,
                prompt: String::new(),
            };
        }
    }

    /// How many continuations from how many steps, what they show, and Save.
    fn decided_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.add(egui::Slider::new(&mut self.decided_continuations, 2..=12).text("Continuations per step"));
        ui.add(egui::Slider::new(&mut self.decided_points, 2..=12).text("Steps continued from"));
        let sampler = crate::eval::decided::stochastic_sibling(ctx.settings.sampler);
        ui.monospace(format!(
            "x_t kept, then each continuation:\nx_t' = c₀ x̂_0 + c₁ x_t + σ z,  z ~ N(0, I) fresh\n({}, the first image \
             of seed {})",
            sampler.label(),
            ctx.settings.seed
        ));
        ui.label(
            "Each row starts from the same x_t of one run and finishes it several times with different noise. Near \
             pure noise (top) the endings are different garments; where a row's endings agree on the garment, the \
             image was decided at that noise level; the spread is how far apart they still end (0 to 1 per pixel).",
        );
        if sampler != ctx.settings.sampler {
            ui.weak(format!("{} adds no noise: its stochastic sibling continues", ctx.settings.sampler.label()));
        }
        if self.decided_job.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("continuing the run…");
            });
        }
        if ui.add_enabled(self.grid.is_some(), egui::Button::new("Save rows…")).clicked() {
            super::export::save_grid_in_background(ctx, ui.ctx(), self.grid.clone());
        }
    }

    /// Generate in "when is it decided" mode: the engine continues the first image's run from its steps.
    pub fn start_decided(&mut self, ctx: &mut PanelContext) {
        let request = GenerateRequest { batch: 1, ..ctx.settings.request() };
        self.grid = None;
        self.decided_job = Some(ctx.engine.decided(request, self.decided_continuations, self.decided_points));
        ctx.clear_status();
    }

    /// The rows of "when is it decided" have arrived: they become a labelled grid (x_t, then the ends).
    pub fn on_decided(
        &mut self,
        ctx: &mut PanelContext,
        job: u64,
        rows: Result<std::sync::Arc<Vec<crate::eval::decided::ContinuedRow>>, String>,
    ) {
        if self.decided_job != Some(job) {
            return;
        }
        self.decided_job = None;
        let rows = match rows {
            Ok(rows) => rows,
            Err(message) if message == crate::eval::decided::DecidedError::Cancelled.to_string() => {
                ctx.set_status("cancelled", false);
                return;
            }
            Err(message) => {
                ctx.set_status(format!("cannot continue the run: {message}"), true);
                return;
            }
        };
        let Some([c, h, w]) = rows.first().map(|r| r.shape) else { return };
        let picture = |values: &[f32]| crate::images::pictures_from_batch(values, 1, c, h, w).into_iter().next();
        let n = rows.first().map_or(0, |r| r.ends.len());
        let cells = rows
            .iter()
            .flat_map(|row| std::iter::once(picture(&row.x_t)).chain(row.ends.iter().map(|e| picture(e))))
            .collect::<Vec<_>>();
        let spread = |row: &crate::eval::decided::ContinuedRow| {
            let ends: Vec<&[f32]> = row.ends.iter().map(Vec::as_slice).collect();
            crate::eval::decided::mean_pairwise_distance(&ends)
        };
        let labels = GridLabels {
            x_title: "x_t, then where each continuation ended".into(),
            columns: std::iter::once("x_t".to_string()).chain((1..=n).map(|i| i.to_string())).collect(),
            y_title: "continued from".into(),
            // A row after the last noisy step cannot differ: say so instead of showing "spread 0.00" as found.
            rows: rows
                .iter()
                .map(|r| match r.deterministic {
                    true => format!("t={} lambda={:.1} deterministic: no noise left", r.t, r.log_snr),
                    false => format!("t={} lambda={:.1} spread {:.2}", r.t, r.log_snr, spread(r)),
                })
                .collect(),
        };
        let request = GenerateRequest { batch: 1, ..ctx.settings.request() };
        let settings = serde_json::json!({
            "decided": { "continuations": n, "steps": rows.iter().map(|r| r.step).collect::<Vec<_>>() }
        });
        let count = cells.len();
        self.grid = Some(Grid {
            labels,
            settings,
            base: request,
            requests: Vec::new(),
            cells,
            errors: vec![None; count],
            serial: job,
        });
    }

    /// Where the branch starts and what it changes, as its formula with the step's numbers; Save.
    fn branch_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let Some(branch) = &self.branch else {
            ui.label(
                "Scrub a run to any step and press \"Continue from here\" below the timeline: a new run starts from \
                 that x_t with the settings above and is shown beside it.",
            );
            return;
        };
        let request = self.branch_request(&ctx.settings);
        let level = branch.parent.schedule.build().ok().and_then(|s| {
            let request = request.as_ref()?;
            request.plan(&s).ok().map(|(plan, level)| (plan.len(), level))
        });
        let parent = &branch.parent;
        ui.strong(format!("B continues A from its step {}", branch.at_step));
        if let (Some((steps, level)), Some(request)) = (level, &request) {
            ui.monospace(format!(
                "x_t(B) = x_t(A) at t = {}, λ = {:.2}\n  = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε, ᾱ = {:.4}\nthen {} steps of {}, y = {}, w = {}",
                level.t,
                level.log_snr,
                level.alpha_bar,
                steps,
                request.sampler.label(),
                conditioning_caption(request),
                request.guidance,
            ));
        }
        // A text model's branch keeps A's prompt: its class setting is not what it draws.
        let changes =
            if parent.prompt.is_some() { "guidance, sampler or seed" } else { "class, guidance, sampler or seed" };
        ui.label(format!(
            "A: {}, y = {}, w = {}, seed {}. Everything up to step {} is A's; B changes only what follows. Change \
             the {changes} above and press Generate: if B still ends as A's garment, that much was already decided \
             at this noise level. The model, schedule and batch stay A's.",
            parent.sampler.label(),
            conditioning_caption(parent),
            parent.guidance,
            parent.seed,
            branch.at_step,
        ));
        ui.horizontal(|ui| {
            super::export::save_image_button_ui(ui, ctx, &self.viewer_b, "Save branch image…");
            if ui.button("Forget the branch").clicked() {
                self.branch = None;
                self.mode = Mode::Single;
            }
        });
    }

    /// Between which seeds or classes, how many images; Save.
    fn strip_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.between, Between::Seeds, "Between seeds");
            ui.selectable_value(&mut self.between, Between::Classes, "Between classes");
            if ctx.settings.text_model {
                ui.selectable_value(&mut self.between, Between::Prompts, "Between prompts");
            }
        });
        match self.between {
            Between::Seeds => {
                ui.add(egui::DragValue::new(&mut self.seed_b).prefix("to seed "))
                    .on_hover_text("Seed B: x_T moves from A's seed's noise to this one's, on the sphere");
            }
            Between::Classes => {
                let classes = ctx.num_classes();
                ui.add(egui::Slider::new(&mut self.class_b, 0..=classes.saturating_sub(1)).text("to class"))
                    .on_hover_text("τ_θ(y) moves from A's class to this one; the noise stays");
            }
            Between::Prompts => {
                let label = ui.label("to prompt");
                ui.add(egui::TextEdit::singleline(&mut self.prompt_b).hint_text("light sneaker"))
                    .labelled_by(label.id)
                    .on_hover_text(
                        "τ_θ(y) moves from the prompt on the left to this one, token by token; the noise stays",
                    );
            }
        }
        ui.add(egui::Slider::new(&mut self.frames, 2..=32).text("Frames"));
        grid_progress_ui(self.grid.as_ref(), ui);
        let done = self
            .grid
            .as_ref()
            .is_some_and(|g| g.finished_cells() == g.cells.len() && g.cells.iter().all(Option::is_some));
        ui.horizontal(|ui| {
            if ui
                .add_enabled(done, egui::Button::new("Save strip…"))
                .on_disabled_hover_text("run the strip to the end first")
                .clicked()
            {
                super::export::save_grid_in_background(ctx, ui.ctx(), self.grid.clone());
            }
            if ui
                .add_enabled(done, egui::Button::new("Save strip GIF…"))
                .on_disabled_hover_text("run the strip to the end first")
                .clicked()
            {
                super::export::save_strip_gif_in_background(ctx, ui.ctx(), self.grid.clone());
            }
        });
    }

    /// The two axes (a setting and its values each); Save.
    fn grid_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let text_model = ctx.settings.text_model;
        for (axis, setting, values) in
            [("X", &mut self.x_setting, &mut self.x_values), ("Y", &mut self.y_setting, &mut self.y_values)]
        {
            ui.horizontal(|ui| {
                egui::ComboBox::from_label(format!("{axis} setting")).selected_text(setting.name()).show_ui(ui, |ui| {
                    // Prompt axes only where the model reads prompts.
                    for s in GridSetting::ALL.into_iter().filter(|s| text_model || !s.takes_prompts()) {
                        ui.selectable_value(setting, s, s.name());
                    }
                });
            });
            let hint = if setting.takes_prompts() { "prompts, |-separated" } else { "values, comma-separated" };
            ui.add(egui::TextEdit::singleline(values).hint_text(hint))
                .labelled_by(ui.label(format!("{axis} values")).id);
        }
        grid_progress_ui(self.grid.as_ref(), ui);
        let done = self
            .grid
            .as_ref()
            .is_some_and(|g| g.finished_cells() == g.cells.len() && g.cells.iter().any(Option::is_some));
        if ui
            .add_enabled(done, egui::Button::new("Save grid…"))
            .on_disabled_hover_text("run the grid to the end first")
            .clicked()
        {
            super::export::save_grid_in_background(ctx, ui.ctx(), self.grid.clone());
        }
    }
}

/// How many cells of the grid or strip are done, and why any failed.
fn grid_progress_ui(grid: Option<&Grid>, ui: &mut egui::Ui) {
    if let Some(grid) = grid {
        ui.label(format!("{} of {} cells done", grid.finished_cells(), grid.cells.len()));
        for (i, error) in grid.errors.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i, e))) {
            ui.colored_label(ui.visuals().warn_fg_color, format!("cell {}: {error}", i + 1));
        }
    }
}
