//! [`ParticlesPanel`]: particles flowing from x_T ~ N(0, I) to the data with any sampler (and guidance
//! towards a class), their playback and distance to the data, the step comparison, and the particles'
//! layer of the plot (their paths and where they are).

use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Stroke};

use super::latest::Latest;
use super::plot::{Canvas, color32};
use crate::app::context::PanelContext;
use crate::app::generate_ui::sampler_ui;
use crate::diffusion::{NoiseLevel, Sampler};
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::Distances;
use crate::lab2d::data::PointData;
use crate::lab2d::figure::class_color;
use crate::lab2d::run::{ParticleRequest, ParticleRun};

/// Paths drawn in the window: the first this many particles (all of them are in the exports' data).
const PATHS_SHOWN: usize = 250;

/// One column of the step comparison: the step count, its run, and its distance to the data.
type ComparedRun = (usize, Arc<ParticleRun>, Distances);

/// A particle run that arrived, with what it was asked and how far it landed from the data.
pub struct Particles {
    pub run: Arc<ParticleRun>,
    pub request: ParticleRequest,
    pub distances: Distances,
    pub floor: Distances,
    /// The training step of the network that moved them.
    pub step: u64,
    /// RMS distance to their mean of the samples, and of the data they are compared with.
    pub spread: f64,
    pub data_spread: f64,
}

/// What a request of the particle buttons asked.
enum Asked {
    Sample(ParticleRequest),
    CompareSteps,
}

pub struct ParticlesPanel {
    pub sampler: Sampler,
    pub guidance: f64,
    pub class: Option<usize>,
    pub count: usize,
    pub seed: u64,
    /// The latest run that arrived.
    pub(super) run: Option<Particles>,
    /// The frame of the particle run on screen (fractional while playing).
    pub frame: f32,
    pub playing: bool,
    pub paths: bool,
    /// Draw the field at the noise level of the particles' step on screen (as they play).
    pub field_follows: bool,
    /// The step comparison's rows and the training step it was run at.
    compared: Option<(Vec<ComparedRun>, u64)>,
    /// The latest particle or comparison request (the answers to older ones are dropped).
    requests: Latest<Asked>,
}

impl Default for ParticlesPanel {
    fn default() -> Self {
        Self {
            sampler: crate::model::denoise::DEFAULT_SAMPLER,
            guidance: 1.0,
            class: None,
            count: 1000,
            seed: 0,
            run: None,
            frame: 0.0,
            playing: false,
            paths: true,
            field_follows: false,
            compared: None,
            requests: Latest::default(),
        }
    }
}

impl ParticlesPanel {
    /// Forgets the runs shown (a fresh network), and a class that the new data (of `classes`) lacks.
    pub fn clear(&mut self, classes: usize) {
        if self.class.is_some_and(|c| c >= classes) {
            self.class = None;
        }
        self.run = None;
        self.compared = None;
    }

    /// The noise level the step on screen starts from, while the field follows the particles: `None` when
    /// it does not (the field then takes the t slider's), `Some(None)` when the run has no such level.
    pub fn followed_level(&self) -> Option<Option<NoiseLevel>> {
        let p = self.run.as_ref().filter(|_| self.field_follows)?;
        let last = p.run.levels.len().saturating_sub(2);
        Some(p.run.levels.get((self.frame.round() as usize).min(last)).copied())
    }

    /// A particle run arrived, with its distance to the data and that distance's floor, from the network at
    /// training step `step` (`data`: what its spread is compared with); it plays from x_T if it answers the
    /// latest request.
    pub fn on_particles(
        &mut self,
        key: u64,
        run: Arc<ParticleRun>,
        (distances, floor): (Distances, Distances),
        step: u64,
        data: Option<&PointData>,
    ) {
        let Some(Asked::Sample(request)) = self.requests.answer(key) else { return };
        let spread = crate::lab2d::spread(&run.samples());
        let data_spread = data.map_or(0.0, |d| crate::lab2d::spread(&d.points_of(request.class)));
        self.run = Some(Particles { run, request, distances, floor, step, spread, data_spread });
        self.frame = 0.0;
        self.playing = true;
    }

    /// The step comparison arrived, if it answers the latest request.
    pub fn on_compared(&mut self, key: u64, rows: Vec<ComparedRun>, step: u64) {
        if let Some(Asked::CompareSteps) = self.requests.answer(key) {
            self.compared = Some((rows, step));
        }
    }

    fn request(&self, ctx: &PanelContext) -> ParticleRequest {
        ParticleRequest {
            schedule: ctx.settings.schedule,
            sampler: self.sampler,
            guidance: self.guidance,
            class: self.class,
            count: self.count,
            seed: self.seed,
        }
    }

    /// The "Particles" section of the left column (`classes`: the data's; `ready`: there is a network).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, classes: usize, ready: bool) {
        ui.heading("Particles");
        let steps = ctx.settings.schedule.steps.max(1);
        sampler_ui(ui, "", &mut self.sampler, steps);
        if classes > 1 {
            self.class_ui(ui, classes);
        }
        ui.add(egui::Slider::new(&mut self.count, 10..=5000).logarithmic(true).text("Particles"));
        ui.add(egui::DragValue::new(&mut self.seed).prefix("particle seed "));
        ui.horizontal(|ui| self.buttons_ui(ui, ctx, ready));
        if let Some(last) = self.run.as_ref().map(|p| p.run.frames.len().saturating_sub(1)) {
            let frame = self.playback_ui(ui, last);
            if let Some(p) = &self.run {
                p.readout_ui(ui, frame);
            }
        }
    }

    /// The class y and the guidance w towards it.
    fn class_ui(&mut self, ui: &mut egui::Ui, classes: usize) {
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

    /// "Sample particles" and "Compare 5/10/20/50 steps".
    fn buttons_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, ready: bool) {
        if ui.add_enabled(ready, egui::Button::new("Sample particles")).clicked() {
            let request = self.request(ctx);
            let key = self.requests.send(Asked::Sample(request.clone()));
            ctx.engine.lab2d(Lab2dCommand::Sample { key, request });
        }
        if ui
            .add_enabled(ready && self.sampler.method.has_steps(), egui::Button::new("Compare 5/10/20/50 steps"))
            .on_hover_text("The same sampler and x_T at four step counts, side by side")
            .clicked()
        {
            let key = self.requests.send(Asked::CompareSteps);
            let request = self.request(ctx);
            ctx.engine.lab2d(Lab2dCommand::CompareSteps { key, request, steps: vec![5, 10, 20, 50] });
        }
    }

    /// Play / pause, paths, the field following, and the step on screen (of `last`); returns that step.
    fn playback_ui(&mut self, ui: &mut egui::Ui, last: usize) -> usize {
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
        frame
    }

    /// Moves the frame on screen while playing: about three seconds for a whole run.
    pub fn advance_playback(&mut self, egui_ctx: &egui::Context) {
        let Some(p) = &self.run else { return };
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

    /// The particles' layer of the plot: the first [`PATHS_SHOWN`] paths up to the frame on screen, and
    /// every particle there.
    pub fn paint(&self, canvas: &Canvas) {
        let Some(p) = &self.run else { return };
        let frame = (self.frame.round() as usize).min(p.run.frames.len().saturating_sub(1));
        if self.paths && frame > 0 {
            let stride = frame.div_ceil(60).max(1);
            let stroke = Stroke::new(0.7, Color32::from_rgba_unmultiplied(90, 90, 200, 70));
            for i in 0..p.run.frames[0].len().min(PATHS_SHOWN) {
                let mut points: Vec<Pos2> = (0..frame)
                    .step_by(stride)
                    .chain(std::iter::once(frame))
                    .map(|k| canvas.at32(p.run.frames[k][i]))
                    .collect();
                points.dedup();
                canvas.painter.add(egui::Shape::line(points, stroke));
            }
        }
        for q in &p.run.frames[frame] {
            canvas.dot(*q, 2.0, Color32::from_black_alpha(210));
        }
    }

    /// The step comparison's row of small plots (over the `data`'s points), when there is one.
    pub fn compare_ui(&self, ui: &mut egui::Ui, data: Option<&PointData>) {
        let Some((rows, step)) = &self.compared else { return };
        ui.label(format!("The same sampler and x_T at each step count (network at step {step}):"));
        ui.horizontal(|ui| {
            for (steps, run, d) in rows {
                ui.vertical(|ui| {
                    let canvas = Canvas::small(ui, 150.0, data);
                    if let Some(last) = run.frames.last() {
                        for q in last {
                            canvas.dot(*q, 1.2, Color32::from_black_alpha(200));
                        }
                    }
                    canvas.border();
                    ui.label(format!("{steps} steps: W₂ {:.3}", d.sliced_wasserstein));
                });
            }
        });
    }
}

impl Particles {
    /// The step on screen (`frame`) and its update, and how far the samples landed from the data.
    fn readout_ui(&self, ui: &mut egui::Ui, frame: usize) {
        let last = self.run.frames.len().saturating_sub(1);
        let level = self.run.levels.get(frame).map_or(0, |l| l.t);
        ui.label(format!("step {frame} of {last}: t = {level}"));
        step_equation_ui(ui, &self.request, frame);
        ui.label(format!(
            "sliced W₂ to the data = {:.4} (floor {:.4}); energy distance = {:.4} (floor {:.4})",
            self.distances.sliced_wasserstein, self.floor.sliced_wasserstein, self.distances.energy, self.floor.energy
        ));
        ui.weak(format!(
            "How far the {} samples (network at step {}) are from the data; the floor is where fresh draws of \
             the data itself land.",
            self.request.count, self.step
        ));
        ui.label(format!(
            "spread sqrt(mean |x - x̄|²): samples {:.3}, data{} {:.3}",
            self.spread,
            self.request.class.map_or(String::new(), |c| format!(" of class {}", c + 1)),
            self.data_spread
        ));
        if self.request.class.is_some() && self.request.guidance > 1.0 {
            ui.weak("Guidance above 1 pushes samples towards where the class is likelier than the others: tighter than the class itself.");
        }
    }
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
