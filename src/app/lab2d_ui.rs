//! `Lab2dPanel`, the "2-D lab" page: diffusion on points of the plane. Pick a preset or draw points with
//! the mouse (a class per colour), train the point network live on the engine's thread, and watch: the
//! data's cloud x_t at any t, the learned field (ε̂ or the score) beside the exact one and their error,
//! particles flowing from x_T ~ N(0, I) to the data with any sampler, guidance in 2-D, and the distance of
//! the samples to the data over training and across step counts.

use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::context::{PaintTimes, PanelContext};
use super::generate_ui::sampler_ui;
use crate::diffusion::mixture::Point;
use crate::diffusion::{NoiseLevel, Sampler};
use crate::engine::lab2d::{Lab2dCommand, Lab2dEvent};
use crate::images::Picture;
use crate::lab2d::data::{DEFAULT_POINTS, MAX_CLASSES, PointData, Preset, VIEW_BOUND};
use crate::lab2d::figure::{CLASS_COLORS, FieldLayer, Figure, arrows, class_color};
use crate::lab2d::run::{
    FieldQuantity, FieldRequest, ParticleRequest, ParticleRun, field_error, grid_points, noised_points,
};
use crate::lab2d::{Distances, LAB2D_CHUNK};
use crate::model::point_mlp::PointDenoiserConfig;
use crate::train::points::default_point_train_config;

/// Cells per side of the field's grid.
const FIELD_RESOLUTION: usize = 24;
/// Paths drawn in the window: the first this many particles (all of them are in the exports' data).
const PATHS_SHOWN: usize = 250;
/// Drag distance (plane units) between two drawn points.
const DRAW_SPACING: f64 = 0.06;

/// Where the data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataChoice {
    Preset(Preset),
    Drawn,
}

impl DataChoice {
    fn label(self) -> &'static str {
        match self {
            Self::Preset(p) => p.label(),
            Self::Drawn => "Draw your own",
        }
    }
}

/// What the plot shows of the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldView {
    None,
    Learned,
    True,
    /// Both arrow sets, the learned in gray over the true in green.
    Both,
    /// |ε̂ - ε*| as a heat map, with the learned arrows.
    Error,
}

impl FieldView {
    const ALL: [FieldView; 5] = [Self::None, Self::Learned, Self::True, Self::Both, Self::Error];
    fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Learned => "learned (the network)",
            Self::True => "true (closed form)",
            Self::Both => "learned over true",
            Self::Error => "error |ε̂ - ε*|",
        }
    }
}

/// Which of guidance's fields to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// ε̂_∅ + w (ε̂_y - ε̂_∅)
    Guided,
    /// ε̂_y (w = 1)
    Class,
    /// ε̂_∅ (w = 0)
    Unconditional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabPhase {
    /// No session: nothing trained yet.
    Empty,
    Training,
    Paused,
    /// The planned steps are done.
    Trained,
}

/// One column of the step comparison: the step count, its run, and its distance to the data.
type ComparedRun = (usize, Arc<ParticleRun>, Distances);

struct FieldResult {
    request: FieldRequest,
    learned: Arc<Vec<[f32; 2]>>,
    truth: Result<Arc<Vec<[f32; 2]>>, String>,
    step: u64,
}

struct Particles {
    run: Arc<ParticleRun>,
    request: ParticleRequest,
    distances: Distances,
    floor: Distances,
    step: u64,
    /// RMS distance to their mean of the samples, and of the data they are compared with.
    spread: f64,
    data_spread: f64,
}

/// The update that moved the particles to `frame` (from frame - 1), as its method writes it, with that
/// step's numbers (`diffusion::equation`, as "This step" shows it for images).
fn step_equation_ui(ui: &mut egui::Ui, request: &ParticleRequest, frame: usize) {
    let Some(i) = frame.checked_sub(1) else {
        ui.weak("x_T: every particle drawn from N(0, I).");
        return;
    };
    let Ok(schedule) = request.schedule.build() else { return };
    let Ok(plan) = request.sampler.plan(&schedule) else { return };
    if i >= plan.len() {
        return;
    }
    let equation = crate::diffusion::equation::equation(&request.sampler, &plan, i);
    ui.label(format!("this step: {}", equation.form));
    let numbers: Vec<String> = equation.numbers.iter().map(|n| n.text()).collect();
    if !numbers.is_empty() {
        ui.label(numbers.join(", "));
    }
    ui.weak(equation.meaning);
}

pub struct Lab2dPanel {
    pub data_choice: DataChoice,
    pub drawn: Vec<(Point, usize)>,
    pub draw_class: usize,
    pub points: usize,
    pub train_steps: u64,
    pub seed: u64,
    /// The data shown (and trained on once Train is pressed).
    data: Option<PointData>,
    /// Why there is no data (an empty drawing).
    data_error: Option<String>,
    pub phase: LabPhase,
    pub step: u64,
    planned: u64,
    steps_per_second: f64,
    pub losses: Vec<[f64; 2]>,
    pub distances: Vec<(u64, Distances)>,
    /// The timestep of the cloud and the field.
    pub t: usize,
    pub show_cloud: bool,
    pub field_view: FieldView,
    pub quantity: FieldQuantity,
    pub branch: Branch,
    field: Option<FieldResult>,
    field_in_flight: Option<(u64, FieldRequest, u64)>,
    cloud: Option<(usize, Vec<[f32; 2]>)>,
    pub sampler: Sampler,
    pub guidance: f64,
    pub class: Option<usize>,
    pub particle_count: usize,
    pub particle_seed: u64,
    particles: Option<Particles>,
    /// The frame of the particle run on screen (fractional while playing).
    pub frame: f32,
    pub playing: bool,
    pub paths: bool,
    /// Draw the field at the noise level of the particles' step on screen (as they play).
    pub field_follows: bool,
    /// The step comparison's rows and the training step it was run at.
    compared: Option<(Vec<ComparedRun>, u64)>,
    /// The latest particle or comparison request (older answers are dropped) and what it asked for.
    key: u64,
    sent: Option<ParticleRequest>,
    field_key: u64,
    last_draw: Option<Point>,
    /// UI frame times while the lab trains or plays.
    pub paint_times: PaintTimes,
}

impl Default for Lab2dPanel {
    fn default() -> Self {
        Self {
            data_choice: DataChoice::Preset(Preset::Moons),
            drawn: Vec::new(),
            draw_class: 0,
            points: DEFAULT_POINTS,
            train_steps: 2000,
            seed: 1,
            data: None,
            data_error: None,
            phase: LabPhase::Empty,
            step: 0,
            planned: 0,
            steps_per_second: 0.0,
            losses: Vec::new(),
            distances: Vec::new(),
            t: 150,
            show_cloud: true,
            field_view: FieldView::Learned,
            quantity: FieldQuantity::Score,
            branch: Branch::Guided,
            field: None,
            field_in_flight: None,
            cloud: None,
            sampler: crate::model::denoise::DEFAULT_SAMPLER,
            guidance: 1.0,
            class: None,
            particle_count: 1000,
            particle_seed: 0,
            particles: None,
            frame: 0.0,
            playing: false,
            paths: true,
            field_follows: false,
            compared: None,
            key: 0,
            sent: None,
            field_key: 0,
            last_draw: None,
            paint_times: PaintTimes::default(),
        }
    }
}

fn color32(rgb: [u8; 3]) -> Color32 {
    Color32::from_rgb(rgb[0], rgb[1], rgb[2])
}

fn faded(rgb: [u8; 3], alpha: f32) -> Color32 {
    Color32::from_rgba_unmultiplied(rgb[0], rgb[1], rgb[2], (alpha * 255.0) as u8)
}

impl Lab2dPanel {
    pub fn is_training(&self) -> bool {
        self.phase == LabPhase::Training
    }

    /// Whether the page is animating (training or particles playing): frames are timed then.
    pub fn is_busy(&self) -> bool {
        self.is_training() || self.playing
    }

    /// Whether a learned field has arrived.
    pub fn has_field(&self) -> bool {
        self.field.is_some()
    }

    pub fn has_particles(&self) -> bool {
        self.particles.is_some()
    }

    /// Where the last particle run ended (x_0 of every particle).
    pub fn particle_samples(&self) -> Vec<Point> {
        self.particles.as_ref().map_or_else(Vec::new, |p| p.run.samples())
    }

    fn next_key(&mut self) -> u64 {
        self.key += 1;
        self.key
    }

    /// The data for the current choice, made afresh (a preset's sample, or the drawing's distribution).
    fn refresh_data(&mut self) {
        let made = match self.data_choice {
            DataChoice::Preset(preset) => Ok(PointData::from_preset(preset, self.points, self.seed)),
            DataChoice::Drawn => PointData::from_drawn(&self.drawn, self.points, self.seed),
        };
        match made {
            Ok(data) => {
                self.data = Some(data);
                self.data_error = None;
            }
            Err(error) => {
                self.data = None;
                self.data_error = Some(error.to_string());
            }
        }
        self.cloud = None;
    }

    fn class_count(&self) -> usize {
        self.data.as_ref().map_or(1, |d| d.class_count)
    }

    /// The guidance w of the field's branch.
    fn field_guidance(&self) -> f64 {
        match self.branch {
            Branch::Guided => self.guidance,
            Branch::Class => 1.0,
            Branch::Unconditional => 0.0,
        }
    }

    fn level(&self, ctx: &PanelContext) -> Option<NoiseLevel> {
        let schedule = ctx.settings.schedule.build().ok()?;
        Some(NoiseLevel::at(&schedule, self.t.clamp(1, schedule.steps())))
    }

    /// The level the field is drawn at: the particles' (the level the step on screen starts from) when it
    /// follows them, else the t slider's.
    fn field_level(&self, ctx: &PanelContext) -> Option<NoiseLevel> {
        match &self.particles {
            Some(p) if self.field_follows => {
                let last = p.run.levels.len().saturating_sub(2);
                p.run.levels.get((self.frame.round() as usize).min(last)).copied()
            }
            _ => self.level(ctx),
        }
    }

    pub fn on_event(&mut self, ctx: &mut PanelContext, event: Lab2dEvent) {
        match event {
            Lab2dEvent::Started { description, parameters, classes } => {
                ctx.set_status(
                    format!("2-D lab: training an MLP of {parameters} weights on {description} ({classes} class(es))"),
                    false,
                );
            }
            Lab2dEvent::Progress { step, planned, losses, distance, steps_per_second } => {
                self.step = step;
                self.planned = planned;
                // Averaged over bursts: one burst can be a single step.
                self.steps_per_second = if self.steps_per_second > 0.0 {
                    0.8 * self.steps_per_second + 0.2 * steps_per_second
                } else {
                    steps_per_second
                };
                self.losses.extend(losses.iter().map(|(s, l)| [*s as f64, *l]));
                if let Some(d) = distance {
                    self.distances.push(d);
                }
                if step >= planned && self.phase == LabPhase::Training {
                    self.phase = LabPhase::Trained;
                    ctx.set_status(format!("2-D lab: trained {step} steps"), false);
                }
            }
            Lab2dEvent::Field { key, request, learned, truth, step } => {
                if self.field_in_flight.as_ref().is_some_and(|(k, ..)| *k == key) {
                    self.field_in_flight = None;
                }
                self.field = Some(FieldResult { request, learned, truth, step });
            }
            Lab2dEvent::Particles { key, run, distances, floor, step } => {
                if let Some(request) = self.sent.clone().filter(|_| key == self.key) {
                    let spread = crate::lab2d::spread(&run.samples());
                    let data_spread =
                        self.data.as_ref().map_or(0.0, |d| crate::lab2d::spread(&d.points_of(request.class)));
                    self.particles = Some(Particles { run, request, distances, floor, step, spread, data_spread });
                    self.frame = 0.0;
                    self.playing = true;
                }
            }
            Lab2dEvent::Compared { key, rows, step } => {
                if key == self.key {
                    self.compared = Some((rows, step));
                }
            }
            Lab2dEvent::Failed { message, training_stopped } => {
                self.field_in_flight = None;
                if training_stopped && self.phase == LabPhase::Training {
                    self.phase = LabPhase::Paused;
                }
                ctx.set_status(format!("2-D lab: {message}"), true);
            }
        }
    }

    fn particle_request(&self, ctx: &PanelContext) -> ParticleRequest {
        ParticleRequest {
            schedule: ctx.settings.schedule,
            sampler: self.sampler,
            guidance: self.guidance,
            class: self.class,
            count: self.particle_count,
            seed: self.particle_seed,
        }
    }

    fn start_training(&mut self, ctx: &mut PanelContext) {
        self.refresh_data();
        let Some(data) = self.data.clone() else {
            let message = self.data_error.clone().unwrap_or_default();
            return ctx.set_status(format!("2-D lab: {message}"), true);
        };
        if self.class.is_some_and(|c| c >= data.class_count) {
            self.class = None;
        }
        let config = default_point_train_config().with_steps(self.train_steps).with_seed(self.seed);
        ctx.engine.lab2d(Lab2dCommand::Start {
            data,
            config,
            model: PointDenoiserConfig::new(),
            schedule: ctx.settings.schedule,
        });
        self.phase = LabPhase::Training;
        self.step = 0;
        self.planned = self.train_steps;
        self.losses.clear();
        self.distances.clear();
        self.field = None;
        self.field_in_flight = None;
        self.particles = None;
        self.compared = None;
        self.paint_times = PaintTimes::default();
    }

    /// Asks for the field when what is shown is stale (other settings, or training moved on) and no
    /// request is on its way.
    fn request_field(&mut self, ctx: &PanelContext) {
        if self.phase == LabPhase::Empty || self.field_view == FieldView::None || self.field_in_flight.is_some() {
            return;
        }
        let Some(level) = self.field_level(ctx) else { return };
        let class = self.class.filter(|_| self.branch != Branch::Unconditional);
        let request = FieldRequest { level, class, guidance: self.field_guidance(), resolution: FIELD_RESOLUTION };
        let fresh = self.field.as_ref().is_some_and(|f| f.request == request && f.step == self.step);
        if !fresh {
            self.field_key += 1;
            let key = self.field_key;
            ctx.engine.lab2d(Lab2dCommand::Field { key, request: request.clone() });
            self.field_in_flight = Some((key, request, self.step));
        }
    }

    /// The left column: data, training, what to watch, particles, export.
    pub fn panel_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        if self.data.is_none() && self.data_error.is_none() {
            self.refresh_data();
        }
        self.data_ui(ui);
        ui.separator();
        self.train_ui(ui, ctx);
        ui.separator();
        self.watch_ui(ui, ctx);
        ui.separator();
        self.particles_ui(ui, ctx);
        ui.separator();
        self.export_ui(ui, ctx);
        self.request_field(ctx);
    }

    fn data_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Data");
        let before = (self.data_choice, self.points, self.seed);
        egui::ComboBox::from_label("Data set").selected_text(self.data_choice.label()).show_ui(ui, |ui| {
            for preset in Preset::ALL {
                ui.selectable_value(&mut self.data_choice, DataChoice::Preset(preset), preset.label());
            }
            ui.selectable_value(&mut self.data_choice, DataChoice::Drawn, DataChoice::Drawn.label());
        });
        ui.add(egui::Slider::new(&mut self.points, 100..=10_000).logarithmic(true).text("Points"))
            .on_hover_text("How many points are drawn from the distribution to train on");
        ui.add(egui::DragValue::new(&mut self.seed).prefix("data seed "));
        if self.data_choice == DataChoice::Drawn {
            ui.label("Click or drag on the plot to add points; each colour is a class.");
            ui.horizontal(|ui| {
                for (class, rgb) in CLASS_COLORS.iter().enumerate().take(MAX_CLASSES) {
                    let text = egui::RichText::new(format!("Class {}", class + 1)).color(color32(*rgb));
                    ui.selectable_value(&mut self.draw_class, class, text);
                }
            });
            ui.horizontal(|ui| {
                ui.label(format!("{} drawn", self.drawn.len()));
                if ui.button("Clear drawing").clicked() {
                    self.drawn.clear();
                    self.refresh_data();
                }
            });
        }
        if before != (self.data_choice, self.points, self.seed) {
            self.refresh_data();
        }
        match (&self.data, &self.data_error) {
            (Some(data), _) => {
                ui.label(format!(
                    "q(x_0) = Σ_k π_k N(μ_k, s_k² I): {} Gaussians, {} class(es); {} points drawn from it.",
                    data.mixture.components.len(),
                    data.class_count,
                    data.points.len()
                ));
                ui.weak("Every data set here is a mixture of Gaussians, so the exact score of its noised versions is known.");
            }
            (None, Some(error)) => {
                ui.colored_label(Color32::from_rgb(200, 120, 0), error);
            }
            (None, None) => {}
        }
    }

    fn train_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Train");
        ui.add(egui::Slider::new(&mut self.train_steps, 200..=20_000).logarithmic(true).text("Training steps"))
            .on_hover_text("Optimizer steps, each on 256 points (AdamW, warm-up, cosine decay, EMA: the image recipe)");
        ui.horizontal(|ui| {
            let can_start = self.data.is_some();
            if ui
                .add_enabled(can_start, egui::Button::new("Start training"))
                .on_hover_text("Train a fresh network on this data")
                .clicked()
            {
                self.start_training(ctx);
            }
            match self.phase {
                LabPhase::Training => {
                    if ui.button("Pause training").clicked() {
                        ctx.engine.lab2d(Lab2dCommand::SetTraining(false));
                        self.phase = LabPhase::Paused;
                    }
                }
                LabPhase::Paused => {
                    if ui.button("Continue training").clicked() {
                        ctx.engine.lab2d(Lab2dCommand::SetTraining(true));
                        self.phase = LabPhase::Training;
                    }
                }
                LabPhase::Empty | LabPhase::Trained => {}
            }
        });
        if self.phase != LabPhase::Empty {
            ui.label(format!("step {} of {} ({:.0} steps/s)", self.step, self.planned, self.steps_per_second));
            let recent: Vec<f64> = self.losses.iter().rev().take(50).map(|p| p[1]).collect();
            if !recent.is_empty() {
                let mean = recent.iter().sum::<f64>() / recent.len() as f64;
                ui.label(format!("L = E||ε - ε_θ(x_t, λ, y)||² = {mean:.4} (last {} steps)", recent.len()));
                ui.weak("How far the network's guess of the noise is from the noise that was added, averaged over noise levels.");
            }
        }
    }

    fn watch_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Watch");
        let steps = ctx.settings.schedule.steps.max(1);
        ui.add(egui::Slider::new(&mut self.t, 1..=steps).text("t (noise level)")).on_hover_text(
            "The timestep of the schedule (Generate page's Schedule panel) at which the cloud and the field are shown",
        );
        if let Some(level) = self.level(ctx) {
            ui.label(format!(
                "x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε: ᾱ_t = {:.4}, √ᾱ_t = {:.3}, σ_t = √(1-ᾱ_t) = {:.3}, λ = {:.2}",
                level.alpha_bar,
                level.alpha(),
                level.sigma(),
                level.log_snr
            ));
        }
        ui.checkbox(&mut self.show_cloud, "Show the cloud x_t")
            .on_hover_text("Every data point noised to level t: the forward process");
        egui::ComboBox::from_label("Field").selected_text(self.field_view.label()).show_ui(ui, |ui| {
            for view in FieldView::ALL {
                ui.selectable_value(&mut self.field_view, view, view.label());
            }
        });
        egui::ComboBox::from_label("Arrows show").selected_text(self.quantity.label()).show_ui(ui, |ui| {
            for quantity in FieldQuantity::ALL {
                ui.selectable_value(&mut self.quantity, quantity, quantity.label());
            }
        });
        if self.class_count() > 1 {
            ui.horizontal(|ui| {
                ui.label("Field of:");
                ui.selectable_value(&mut self.branch, Branch::Guided, "guided");
                ui.selectable_value(&mut self.branch, Branch::Class, "class y");
                ui.selectable_value(&mut self.branch, Branch::Unconditional, "unconditional Ø");
            });
        }
        let text = match (self.field_view, self.quantity) {
            (FieldView::None, _) => "No field shown.".to_string(),
            (_, FieldQuantity::Score) => {
                "Arrows: the score, the direction in which the noised data gets denser; sampling follows it.".into()
            }
            (_, FieldQuantity::Epsilon) => {
                "Arrows: ε̂, the noise the network sees at each point (against the score).".into()
            }
        };
        ui.weak(text);
        match self.field_view {
            FieldView::Error => {
                ui.weak("Red: |ε̂ - ε*|, the network's error against the exact ε* = -σ_t × (gradient of log q_t) of the mixture.");
            }
            FieldView::True | FieldView::Both => {
                ui.weak("Green: the exact field of the data's mixture, ε* = -σ_t × (gradient of log q_t); gray: the network's.");
            }
            FieldView::None | FieldView::Learned => {}
        }
        if let Some(f) = &self.field
            && let Some(error) = error_values(f)
        {
            let mean = error.iter().map(|e| f64::from(*e)).sum::<f64>() / error.len().max(1) as f64;
            ui.label(format!("mean |ε̂ - ε*| over the plot = {mean:.3} (network at step {})", f.step));
        }
    }

    fn particles_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Particles");
        let steps = ctx.settings.schedule.steps.max(1);
        sampler_ui(ui, "", &mut self.sampler, steps);
        let classes = self.class_count();
        if classes > 1 {
            egui::ComboBox::from_label("Class y")
                .selected_text(self.class.map_or("none (unconditional)".to_string(), |c| format!("class {}", c + 1)))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.class, None, "none (unconditional)");
                    for c in 0..classes {
                        let text = egui::RichText::new(format!("class {}", c + 1)).color(color32(class_color(Some(c))));
                        ui.selectable_value(&mut self.class, Some(c), text);
                    }
                });
            ui.add_enabled(self.class.is_some(), egui::Slider::new(&mut self.guidance, 0.0..=8.0).text("Guidance w"))
                .on_hover_text(
                    "ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø): 0 ignores the class, 1 is the class's own distribution, more sharpens it",
                );
        }
        ui.add(egui::Slider::new(&mut self.particle_count, 10..=5000).logarithmic(true).text("Particles"));
        ui.add(egui::DragValue::new(&mut self.particle_seed).prefix("particle seed "));
        let ready = self.phase != LabPhase::Empty;
        ui.horizontal(|ui| {
            if ui.add_enabled(ready, egui::Button::new("Sample particles")).clicked() {
                let key = self.next_key();
                let request = self.particle_request(ctx);
                self.sent = Some(request.clone());
                ctx.engine.lab2d(Lab2dCommand::Sample { key, request });
            }
            if ui
                .add_enabled(ready && self.sampler.method.has_steps(), egui::Button::new("Compare 5/10/20/50 steps"))
                .on_hover_text("The same sampler and x_T at four step counts, side by side")
                .clicked()
            {
                let key = self.next_key();
                let request = self.particle_request(ctx);
                ctx.engine.lab2d(Lab2dCommand::CompareSteps { key, request, steps: vec![5, 10, 20, 50] });
            }
        });
        if let Some(p) = &self.particles {
            let last = p.run.frames.len().saturating_sub(1);
            ui.horizontal(|ui| {
                let label = if self.playing { "Pause particles" } else { "Play particles" };
                if ui.button(label).clicked() {
                    if !self.playing && self.frame as usize >= last {
                        self.frame = 0.0;
                    }
                    self.playing = !self.playing;
                }
                ui.checkbox(&mut self.paths, "Show paths");
            });
            ui.checkbox(&mut self.field_follows, "Field follows the particles")
                .on_hover_text("Draw the field at the noise level of the particles' step instead of the t slider's");
            let mut frame = self.frame.round() as usize;
            if ui.add(egui::Slider::new(&mut frame, 0..=last).text("Particle step")).changed() {
                self.frame = frame as f32;
                self.playing = false;
            }
            let level = p.run.levels.get(frame).map_or(0, |l| l.t);
            ui.label(format!("step {frame} of {last}: t = {level}"));
            step_equation_ui(ui, &p.request, frame);
            ui.label(format!(
                "sliced W₂ to the data = {:.4} (floor {:.4}); energy distance = {:.4} (floor {:.4})",
                p.distances.sliced_wasserstein, p.floor.sliced_wasserstein, p.distances.energy, p.floor.energy
            ));
            ui.weak(format!(
                "How far the {} samples (network at step {}) are from the data; the floor is where fresh draws of \
                 the data itself land.",
                p.request.count, p.step
            ));
            ui.label(format!(
                "spread sqrt(mean |x - x̄|²): samples {:.3}, data{} {:.3}",
                p.spread,
                p.request.class.map_or(String::new(), |c| format!(" of class {}", c + 1)),
                p.data_spread
            ));
            if p.request.class.is_some() && p.request.guidance > 1.0 {
                ui.weak("Guidance above 1 pushes samples towards where the class is likelier than the others: tighter than the class itself.");
            }
        }
    }

    fn export_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.horizontal(|ui| {
            let has_data = self.data.is_some();
            if ui.add_enabled(has_data, egui::Button::new("Save picture…")).clicked() {
                match self.export_picture(ctx) {
                    Some((picture, text)) => {
                        ctx.dialogs.save_in_background(
                            ui.ctx(),
                            "diffusion-lab-2d.png".into(),
                            ("png", "PNG image"),
                            move |path| crate::images::save_png(path, &picture, &text),
                        );
                    }
                    None => ctx.set_status("2-D lab: nothing to save yet", true),
                }
            }
            let has_run = self.particles.is_some();
            if ui.add_enabled(has_run, egui::Button::new("Save animation…")).clicked()
                && let Some(frames) = self.export_animation()
            {
                ctx.dialogs.save_in_background(
                    ui.ctx(),
                    "diffusion-lab-2d.gif".into(),
                    ("gif", "GIF animation"),
                    move |path| {
                        crate::images::gif_bytes(&frames)
                            .map_err(|e| e.to_string())
                            .and_then(|bytes| crate::files::write_atomic(path, &bytes).map_err(|e| e.to_string()))
                    },
                );
            }
        });
    }

    /// The plot as the window shows it now, drawn by the file renderer, with its settings as PNG text.
    fn export_picture(&self, ctx: &PanelContext) -> Option<(Picture, Vec<(String, String)>)> {
        let data = self.data.as_ref()?;
        let level = self.level(ctx)?;
        let cloud = self.show_cloud.then(|| noised_points(data, &level, self.seed));
        let field = self.field.as_ref().filter(|_| self.field_view != FieldView::None);
        let shown = field.and_then(|f| match self.field_view {
            FieldView::True => f.truth.as_ref().ok().map(|t| t.as_slice()),
            _ => Some(f.learned.as_slice()),
        });
        let error = field.and_then(error_values).filter(|_| self.field_view == FieldView::Error);
        let mut caption = vec![data.description.clone(), format!("t = {} (lambda {:.2})", self.t, level.log_snr)];
        if let Some(p) = &self.particles {
            caption.push(format!("{}: sliced W2 {:.3}", p.request.sampler.label(), p.distances.sliced_wasserstein));
        }
        let picture = Figure {
            data: Some(data),
            cloud: cloud.as_deref(),
            heat: error.as_deref().map(|e| (e, FIELD_RESOLUTION)),
            field: shown.map(|eps| FieldLayer {
                eps,
                resolution: FIELD_RESOLUTION,
                quantity: self.quantity,
                sigma: level.sigma(),
            }),
            particles: self.particles.as_ref().map(|p| (p.run.as_ref(), self.frame.round() as usize)),
            paths: self.paths,
            caption,
        }
        .render(640);
        let settings = serde_json::json!({
            "data": data.description,
            "points": data.points.len(),
            "train_steps": self.step,
            "seed": self.seed,
            "t": self.t,
            "particles": self.particles.as_ref().map(|p| &p.request),
        });
        Some((picture, vec![(LAB2D_CHUNK.to_string(), settings.to_string())]))
    }

    fn export_animation(&self) -> Option<Vec<(Picture, u32)>> {
        let p = self.particles.as_ref()?;
        let last = p.run.frames.len().saturating_sub(1);
        // At most 60 frames: a DDPM run of 1000 steps is shown every 17th step.
        let stride = last.div_ceil(60).max(1);
        let mut frames: Vec<usize> = (0..last).step_by(stride).collect();
        frames.push(last);
        Some(
            frames
                .into_iter()
                .map(|k| {
                    let picture = Figure {
                        data: self.data.as_ref(),
                        particles: Some((p.run.as_ref(), k)),
                        paths: self.paths,
                        caption: vec![format!("{}  step {k}/{last}", p.request.sampler.label())],
                        ..Figure::default()
                    }
                    .render(400);
                    (picture, if k == last { 2000 } else { 120 })
                })
                .collect(),
        )
    }

    /// The middle: the plot, then the loss and distance curves and the step comparison.
    pub fn centre_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        self.advance_playback(ui.ctx());
        let available = ui.available_size();
        let side = (available.y - 200.0).min(available.x * 0.62).max(200.0);
        ui.horizontal_top(|ui| {
            self.plot_ui(ui, ctx, side);
            ui.vertical(|ui| {
                self.curves_ui(ui, side);
            });
        });
        self.compare_ui(ui);
    }

    fn advance_playback(&mut self, egui_ctx: &egui::Context) {
        let Some(p) = &self.particles else { return };
        if !self.playing {
            return;
        }
        let last = p.run.frames.len().saturating_sub(1) as f32;
        // About three seconds for a whole run, however many steps it has.
        let dt = egui_ctx.input(|i| i.stable_dt).min(0.1);
        self.frame = (self.frame + dt * (last / 3.0).max(4.0)).min(last);
        if self.frame >= last {
            self.playing = false;
        }
        egui_ctx.request_repaint();
    }

    fn plot_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, side: f32) {
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click_and_drag());
        let response = response.on_hover_text(if self.data_choice == DataChoice::Drawn {
            "Click or drag to add points of the selected class"
        } else {
            "The plane from -3 to 3: the data, its noised cloud, the field and the particles"
        });
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "2-D plot"));
        let to_screen = |p: [f64; 2]| screen_from_point(rect, p);
        let from_screen = |pos: Pos2| -> Point {
            let u = f64::from((pos.x - rect.min.x) / rect.width());
            let v = f64::from((pos.y - rect.min.y) / rect.height());
            [-VIEW_BOUND + 2.0 * VIEW_BOUND * u, VIEW_BOUND - 2.0 * VIEW_BOUND * v]
        };
        if self.data_choice == DataChoice::Drawn {
            if let Some(pos) = response.interact_pointer_pos().filter(|p| rect.contains(*p)) {
                let point = from_screen(pos);
                let far_enough =
                    self.last_draw.is_none_or(|last| (point[0] - last[0]).hypot(point[1] - last[1]) >= DRAW_SPACING);
                if (response.clicked() || response.dragged()) && far_enough {
                    self.drawn.push((point, self.draw_class));
                    self.last_draw = Some(point);
                    self.refresh_data();
                }
            }
            if response.drag_stopped() || response.clicked() {
                self.last_draw = None;
            }
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::WHITE);
        let level = self.level(ctx);
        if let (Some(f), FieldView::Error) = (&self.field, self.field_view)
            && let Some(error) = error_values(f)
        {
            let max = error.iter().copied().fold(0f32, f32::max).max(1e-12);
            let cell = 2.0 * VIEW_BOUND / FIELD_RESOLUTION as f64;
            for (centre, e) in grid_points(FIELD_RESOLUTION).into_iter().zip(error) {
                let a = to_screen([centre[0] - cell / 2.0, centre[1] + cell / 2.0]);
                let b = to_screen([centre[0] + cell / 2.0, centre[1] - cell / 2.0]);
                painter.rect_filled(Rect::from_two_pos(a, b), 0.0, faded([214, 39, 40], 0.85 * e / max));
            }
        }
        for k in -3..=3 {
            let v = f64::from(k);
            let stroke = Stroke::new(if k == 0 { 1.2 } else { 0.6 }, Color32::from_gray(215));
            painter.line_segment([to_screen([v, -VIEW_BOUND]), to_screen([v, VIEW_BOUND])], stroke);
            painter.line_segment([to_screen([-VIEW_BOUND, v]), to_screen([VIEW_BOUND, v])], stroke);
        }
        if let Some(data) = &self.data {
            let dim = self.show_cloud || self.particles.is_some();
            for (p, c) in data.points.iter().zip(&data.classes) {
                let pos = to_screen([f64::from(p[0]), f64::from(p[1])]);
                painter.circle_filled(pos, 1.8, faded(class_color(*c), if dim { 0.15 } else { 0.55 }));
            }
            if self.show_cloud
                && let Some(level) = level
            {
                if self.cloud.as_ref().is_none_or(|(t, _)| *t != self.t) {
                    self.cloud = Some((self.t, noised_points(data, &level, self.seed)));
                }
                if let Some((_, cloud)) = &self.cloud {
                    for (p, c) in cloud.iter().zip(&data.classes) {
                        let pos = to_screen([f64::from(p[0]), f64::from(p[1])]);
                        painter.circle_filled(pos, 1.8, faded(class_color(*c), 0.5));
                    }
                }
            }
        }
        for (p, class) in &self.drawn {
            if self.data_choice == DataChoice::Drawn {
                painter.circle_stroke(to_screen(*p), 3.0, Stroke::new(1.0, color32(class_color(Some(*class)))));
            }
        }
        if let Some(f) = &self.field {
            let level = f.request.level;
            let truth = f.truth.as_ref().ok().map(|t| t.as_slice());
            let learned = Some(f.learned.as_slice());
            let layers = match self.field_view {
                FieldView::None => vec![],
                FieldView::True => vec![(truth, TRUE_ARROWS)],
                FieldView::Learned | FieldView::Error => vec![(learned, LEARNED_ARROWS)],
                FieldView::Both => vec![(truth, TRUE_ARROWS), (learned, LEARNED_ARROWS)],
            };
            for (eps, color) in layers {
                let Some(eps) = eps else { continue };
                let layer =
                    FieldLayer { eps, resolution: FIELD_RESOLUTION, quantity: self.quantity, sigma: level.sigma() };
                for (from, delta) in arrows(&layer) {
                    let a = to_screen(from);
                    let b = to_screen([from[0] + delta[0], from[1] + delta[1]]);
                    painter.arrow(a, b - a, Stroke::new(1.0, color));
                }
            }
        }
        if let Some(p) = &self.particles {
            let frame = (self.frame.round() as usize).min(p.run.frames.len().saturating_sub(1));
            if self.paths && frame > 0 {
                let stride = frame.div_ceil(60).max(1);
                let stroke = Stroke::new(0.7, Color32::from_rgba_unmultiplied(90, 90, 200, 70));
                for i in 0..p.run.frames[0].len().min(PATHS_SHOWN) {
                    let mut points: Vec<Pos2> = (0..frame)
                        .step_by(stride)
                        .chain(std::iter::once(frame))
                        .map(|k| {
                            let q = p.run.frames[k][i];
                            to_screen([f64::from(q[0]), f64::from(q[1])])
                        })
                        .collect();
                    points.dedup();
                    painter.add(egui::Shape::line(points, stroke));
                }
            }
            for q in &p.run.frames[frame] {
                painter.circle_filled(
                    to_screen([f64::from(q[0]), f64::from(q[1])]),
                    2.0,
                    Color32::from_black_alpha(210),
                );
            }
        }
        painter.rect_stroke(rect, 0.0, Stroke::new(1.0, Color32::from_gray(160)), egui::StrokeKind::Inside);
        let caption = match (&self.data, self.phase) {
            (None, _) => "Draw points: click or drag here".to_string(),
            (Some(_), LabPhase::Empty) => "Press Start training to fit ε_θ to this data".to_string(),
            _ => match &self.field {
                Some(f) if f.request.level.t != self.t && self.field_view != FieldView::None => {
                    format!("cloud at t = {}, field at t = {}", self.t, f.request.level.t)
                }
                _ => format!("t = {}", self.t),
            },
        };
        painter.text(
            rect.min + Vec2::new(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            caption,
            egui::FontId::proportional(13.0),
            Color32::BLACK,
        );
    }

    fn curves_ui(&self, ui: &mut egui::Ui, side: f32) {
        let height = (side / 2.0 - 30.0).max(80.0);
        ui.label("Loss L per step");
        Plot::new("lab2d loss")
            .height(height)
            .width(ui.available_width().max(200.0))
            .include_y(0.0)
            .x_axis_label("step")
            .show(ui, |plot| {
                plot.line(Line::new("loss", PlotPoints::from(thinned(&self.losses))).color(Color32::from_gray(120)));
            });
        ui.label("Distance of samples to the data over training");
        let sw: Vec<[f64; 2]> = self.distances.iter().map(|(s, d)| [*s as f64, d.sliced_wasserstein]).collect();
        Plot::new("lab2d distance")
            .height(height)
            .width(ui.available_width().max(200.0))
            .include_y(0.0)
            .legend(Legend::default())
            .x_axis_label("step")
            .show(ui, |plot| {
                plot.line(
                    Line::new("sliced W₂ (DPM++ 20, 500 points)", PlotPoints::from(sw))
                        .color(Color32::LIGHT_BLUE)
                        .width(2.0),
                );
            });
    }

    fn compare_ui(&self, ui: &mut egui::Ui) {
        let Some((rows, step)) = &self.compared else { return };
        ui.label(format!("The same sampler and x_T at each step count (network at step {step}):"));
        ui.horizontal(|ui| {
            for (steps, run, d) in rows {
                ui.vertical(|ui| {
                    let (rect, _) = ui.allocate_exact_size(Vec2::splat(150.0), Sense::hover());
                    let painter = ui.painter_at(rect);
                    painter.rect_filled(rect, 0.0, Color32::WHITE);
                    let to_screen = |q: [f32; 2]| screen_from_point(rect, [f64::from(q[0]), f64::from(q[1])]);
                    if let Some(data) = &self.data {
                        for p in &data.points {
                            painter.circle_filled(to_screen(*p), 1.0, faded(NO_CLASS, 0.25));
                        }
                    }
                    if let Some(last) = run.frames.last() {
                        for q in last {
                            painter.circle_filled(to_screen(*q), 1.2, Color32::from_black_alpha(200));
                        }
                    }
                    painter.rect_stroke(rect, 0.0, Stroke::new(1.0, Color32::from_gray(160)), egui::StrokeKind::Inside);
                    ui.label(format!("{steps} steps: W₂ {:.3}", d.sliced_wasserstein));
                });
            }
        });
    }
}

const NO_CLASS: [u8; 3] = [120, 120, 120];
const TRUE_ARROWS: Color32 = Color32::from_rgb(20, 130, 20);
const LEARNED_ARROWS: Color32 = Color32::from_gray(50);

/// Where plane point `p` is drawn in `rect`, which shows [-VIEW_BOUND, VIEW_BOUND]² (y up).
fn screen_from_point(rect: Rect, p: [f64; 2]) -> Pos2 {
    let u = ((p[0] + VIEW_BOUND) / (2.0 * VIEW_BOUND)) as f32;
    let v = ((VIEW_BOUND - p[1]) / (2.0 * VIEW_BOUND)) as f32;
    rect.min + Vec2::new(u * rect.width(), v * rect.height())
}

/// |ε̂ - ε*| per grid cell, when the true field is known.
fn error_values(field: &FieldResult) -> Option<Vec<f32>> {
    Some(field_error(&field.learned, field.truth.as_ref().ok()?))
}

/// At most about 2000 points of a curve (every k-th), so long runs plot quickly.
fn thinned(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let stride = points.len().div_ceil(2000).max(1);
    points.iter().step_by(stride).copied().collect()
}
