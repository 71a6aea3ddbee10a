//! The Generate panel: the main run (its viewer, state and speed) and its controls: model, batch, class,
//! guidance, sampler, seed; Generate / Cancel.

use std::time::Instant;

use eframe::egui;

use super::context::{PaintTimes, PanelContext, Request, mark};
use super::dialogs::{FileEvent, Pick};
use super::state::{RunStatus, Trajectory};
use super::viewer::{StepRate, TrajectoryViewer};
use crate::data::FASHION_MNIST_CLASSES;
use crate::diffusion::guidance::GuidanceMethod;
use crate::diffusion::{DdpmVariance, Method, Sampler, Spacing};
use crate::engine::DeviceChoice;
use crate::engine::{Event, GenerateRequest};
use crate::model::ModelId;
use crate::run::generate::MAX_BATCH;

fn device_label(choice: DeviceChoice) -> &'static str {
    match choice {
        DeviceChoice::Auto => "auto (GPU if there is one)",
        DeviceChoice::Cpu => "CPU",
        DeviceChoice::Wgpu => "wgpu (any adapter)",
    }
}

fn class_name(class: Option<usize>, num_classes: usize) -> String {
    match class {
        None => "any (unconditional)".into(),
        Some(c) if num_classes == FASHION_MNIST_CLASSES.len() && c < num_classes => {
            format!("{c}: {}", FASHION_MNIST_CLASSES[c])
        }
        Some(c) => format!("class {c}"),
    }
}

/// The Generate page's main run: its frames in a viewer, where it stands, and how fast it goes.
pub struct GeneratePanel {
    pub viewer: TrajectoryViewer,
    pub run: RunStatus,
    /// The engine's job of the run on screen (events of other jobs are not this panel's).
    pub job: u64,
    pub rate: StepRate,
    /// Time the UI thread spends building each frame of the window during the current run.
    pub paint_times: PaintTimes,
    /// The (job, frame index) last asked to be decoded first, so that it is asked once.
    decode_requested: Option<(u64, usize)>,
}

impl Default for GeneratePanel {
    fn default() -> Self {
        Self::new()
    }
}

/// How a run of a panel ended, for the window to carry on (B after A, the next grid cell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    Finished,
    /// Cancelled or failed: what was queued after it is dropped.
    Stopped,
}

impl GeneratePanel {
    pub fn new() -> Self {
        Self {
            viewer: TrajectoryViewer::new("frame", "generated images"),
            run: RunStatus::Idle,
            job: 0,
            rate: StepRate::default(),
            paint_times: PaintTimes::default(),
            decode_requested: None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.run, RunStatus::Running { .. })
    }

    /// Whether `job` is this panel's (running, or finished with frames still being decoded).
    pub fn owns(&self, job: u64) -> bool {
        job == self.job && job != 0
    }

    /// Starts `request` as the main run; a run in progress is cancelled (by the new job id) and its frames
    /// dropped.
    pub fn start(&mut self, ctx: &mut PanelContext, request: GenerateRequest) {
        self.job = ctx.engine.generate(request.clone(), true);
        let trajectory = Trajectory { budget_bytes: ctx.trajectory_budget, ..Trajectory::new(request) };
        self.viewer.show(trajectory, self.job);
        self.run = RunStatus::Running { job: self.job, started: Instant::now() };
        self.rate = StepRate::default();
        self.paint_times = PaintTimes::default();
        ctx.clear_status();
    }

    /// An event of this panel's job: frames go to the viewer; the end of the run is returned.
    pub fn on_run_event(&mut self, ctx: &mut PanelContext, event: Event) -> Option<RunEnd> {
        match event {
            Event::Frame { frame, total_steps, .. } => {
                self.rate.frame_arrived();
                self.viewer.push(frame, total_steps);
                None
            }
            Event::Done { job, summary } => {
                self.run = RunStatus::Finished { seconds: summary.seconds, cancelled: summary.cancelled };
                let t = self.paint_times;
                eprintln!(
                    "run {job}: {} steps in {:.2} s; UI thread {} frames, mean {:.2} ms, worst {:.2} ms",
                    summary.steps_done,
                    summary.seconds,
                    t.frames,
                    t.mean_ms(),
                    t.max_ms
                );
                if summary.cancelled {
                    ctx.set_status(format!("cancelled after {} steps", summary.steps_done), false);
                    return Some(RunEnd::Stopped);
                }
                Some(RunEnd::Finished)
            }
            Event::Failed { message, .. } => {
                self.run = RunStatus::Failed(message.clone());
                ctx.set_status(message, true);
                Some(RunEnd::Stopped)
            }
            Event::Decoded { index, decoded, .. } => {
                self.viewer.set_decoded(index, decoded);
                None
            }
            _ => None,
        }
    }

    /// Asks the engine to decode the cursor's latent frame next when it has no pixels yet.
    pub fn request_cursor_decode(&mut self, ctx: &PanelContext) {
        let Some(trajectory) = &self.viewer.trajectory else { return };
        if ctx.running || !trajectory.is_latent() {
            return;
        }
        let Some(frame) = self.viewer.cursor_frame().filter(|f| f.decoded.is_none()) else { return };
        let wanted = (self.job, frame.index);
        if self.decode_requested != Some(wanted) {
            ctx.engine.decode(wanted.0, wanted.1);
            self.decode_requested = Some(wanted);
        }
    }

    /// The run's part of the status bar: progress, rate and ETA while it runs, its time once done.
    pub fn progress_ui(&self, ui: &mut egui::Ui) {
        if let (RunStatus::Running { started, .. }, Some(t)) = (&self.run, &self.viewer.trajectory) {
            let done = t.frames.len().saturating_sub(1);
            let total = t.total_steps.max(1);
            let steps_per_second = self.rate.steps_per_second;
            let remaining = total.saturating_sub(done) as f64 / steps_per_second.max(1e-9);
            ui.add(
                egui::ProgressBar::new(done as f32 / total as f32)
                    .desired_width(220.0)
                    .text(format!("t = {}  ({done}/{total})", t.frames.last().map_or(0, |f| f.t))),
            );
            ui.label(status_rate_text(steps_per_second, remaining, started.elapsed().as_secs_f64()));
        } else if let RunStatus::Finished { seconds, cancelled: false } = self.run {
            ui.label(format!(
                "done in {seconds:.1} s (UI frames: mean {:.1} ms, worst {:.1} ms)",
                self.paint_times.mean_ms(),
                self.paint_times.max_ms
            ));
        }
    }

    /// Model, device, batch, class, guidance, sampler and seed.
    pub fn settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Generate");
        let picker = ui.scope(|ui| model_picker_ui(ui, ctx)).response;
        ctx.mark(ui, picker.rect, super::context::Highlight::Model);
        let highlight = ctx.highlight;
        if let Some(info) = ctx.model_info() {
            ui.weak(format!(
                "{} parameters, trained {} steps, {}x{}x{}",
                info.parameters,
                info.header.step,
                info.config.image_channels,
                info.config.image_size,
                info.config.image_size
            ));
        }
        let num_classes = ctx.num_classes();
        let text = ctx.model_info().and_then(|m| m.config.text.clone());
        let previous_device = ctx.settings.device;
        let settings = &mut ctx.settings;
        egui::ComboBox::from_label("Device").selected_text(device_label(settings.device)).show_ui(ui, |ui| {
            for choice in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
                ui.selectable_value(&mut settings.device, choice, device_label(choice));
            }
        });
        ui.add(egui::Slider::new(&mut settings.batch, 1..=MAX_BATCH).text("Batch"));
        let conditioned = match &text {
            Some(text) => {
                let prompt = ui.scope(|ui| prompt_ui(ui, settings, text)).response;
                mark(ui, prompt.rect, highlight, super::context::Highlight::Prompt);
                true
            }
            None => {
                egui::ComboBox::from_label("Class").selected_text(class_name(settings.class, num_classes)).show_ui(
                    ui,
                    |ui| {
                        ui.selectable_value(&mut settings.class, None, class_name(None, num_classes));
                        for c in 0..num_classes {
                            ui.selectable_value(&mut settings.class, Some(c), class_name(Some(c), num_classes));
                        }
                    },
                );
                settings.class.is_some()
            }
        };
        let guidance = ui.scope(|ui| guidance_controls_ui(ui, settings, conditioned)).response;
        mark(ui, guidance.rect, highlight, super::context::Highlight::Guidance);
        let sampler = ui.scope(|ui| sampler_ui(ui, "", &mut settings.sampler, settings.schedule.steps)).response;
        mark(ui, sampler.rect, highlight, super::context::Highlight::Sampler);
        let clip_label = if ctx.is_latent() {
            format!("Clip predicted z_0 to ±{}", crate::model::autoencoder::LATENT_X0_BOUND)
        } else {
            "Clip predicted x_0 to [-1, 1]".to_string()
        };
        let settings = &mut ctx.settings;
        ui.checkbox(&mut settings.sampler.clip_x0, clip_label).on_hover_text(
            "At t = T, ᾱ_T is tiny, and x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t) magnifies the network's error: \
             clipping keeps x̂_0 in the data range",
        );
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut settings.seed).prefix("Seed ")).on_hover_text("Seed");
            if ui.button("New seed").clicked() {
                settings.seed = rand::random::<u32>() as u64;
            }
        });
        if ctx.settings.device != previous_device {
            ctx.requests.push(Request::Cancel);
            ctx.models.device = None;
            ctx.engine.set_device(ctx.settings.device);
        }
    }

    /// Generate and Cancel, and why Generate is off when it is.
    pub fn buttons_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, blocker: Option<String>) {
        ui.horizontal(|ui| {
            let generate = ui.add_enabled(blocker.is_none(), egui::Button::new("Generate")).on_hover_text("Ctrl+Enter");
            if generate.clicked() {
                ctx.requests.push(Request::Generate);
            }
            if ui.add_enabled(ctx.running, egui::Button::new("Cancel")).on_hover_text("Esc").clicked() {
                ctx.requests.push(Request::Cancel);
            }
        });
        if let Some(reason) = blocker {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Generate is off: {reason}"));
        }
    }
}

/// The model picker and "Open checkpoint…".
fn model_picker_ui(ui: &mut egui::Ui, ctx: &mut PanelContext) {
    let ids: Vec<ModelId> = ctx.models.loaded.iter().map(|m| m.id.clone()).collect();
    ui.horizontal(|ui| {
        let settings = &mut ctx.settings;
        let before = settings.model.clone();
        egui::ComboBox::from_label("Model").selected_text(settings.model.label()).show_ui(ui, |ui| {
            for id in ids {
                let label = id.label();
                ui.selectable_value(&mut settings.model, id, label);
            }
        });
        if ctx.settings.model != before {
            ctx.sanitize_settings();
        }
        if ui.button("Open checkpoint…").on_hover_text("A model file written by diffusion-lab train").clicked() {
            let pick = Pick::File("diffusion-lab checkpoint", &["dlab"]);
            if let Err(message) =
                ctx.dialogs.pick_in_background(ui.ctx(), pick, "a checkpoint", FileEvent::CheckpointPicked)
            {
                ctx.set_status(message, true);
            }
        }
    });
}

/// "12.3 steps/s, ETA 4 s, 1 s elapsed"; before the second frame there is no rate yet, and no ETA.
pub fn status_rate_text(steps_per_second: f64, remaining_seconds: f64, elapsed: f64) -> String {
    if steps_per_second > 0.0 && remaining_seconds.is_finite() {
        format!("{steps_per_second:.1} steps/s, ETA {remaining_seconds:.0} s, {elapsed:.0} s elapsed")
    } else {
        format!("measuring speed…, {elapsed:.0} s elapsed")
    }
}

/// The sampler's controls: method, then what that method has (steps and spacing; η for DDIM; the
/// variance for DDPM). `schedule_steps` (T) bounds the steps; `prefix` starts every label (B's are "B: ").
pub fn sampler_ui(ui: &mut egui::Ui, prefix: &str, sampler: &mut Sampler, schedule_steps: usize) {
    egui::ComboBox::from_label(format!("{prefix}Sampler"))
        .selected_text(sampler.method.label())
        .show_ui(ui, |ui| {
            for method in Method::ALL {
                ui.selectable_value(&mut sampler.method, method, method.label());
            }
        })
        .response
        .on_hover_text("How each step moves towards the clean image; DPM++ 2M needs the fewest steps");
    if sampler.method.has_steps() {
        let max_steps = schedule_steps.max(1);
        sampler.steps = sampler.steps.clamp(1, max_steps);
        let evaluations = sampler.method.evaluations(sampler.steps);
        ui.add(egui::Slider::new(&mut sampler.steps, 1..=max_steps).logarithmic(true).text(format!("{prefix}Steps")))
            .on_hover_text(format!("{evaluations} network evaluations per image (twice that with guidance)"));
        egui::ComboBox::from_label(format!("{prefix}Spacing"))
            .selected_text(sampler.spacing.name())
            .show_ui(ui, |ui| {
                for spacing in Spacing::ALL {
                    ui.selectable_value(&mut sampler.spacing, spacing, spacing.name());
                }
            })
            .response
            .on_hover_text("Where the steps sit: trailing starts at pure noise; karras puts more steps at low noise");
    }
    match sampler.method {
        Method::Ddpm => {
            ui.horizontal(|ui| {
                ui.label(format!("{prefix}Variance:"));
                ui.selectable_value(&mut sampler.ddpm_variance, DdpmVariance::BetaTilde, "β̃_t");
                ui.selectable_value(&mut sampler.ddpm_variance, DdpmVariance::Beta, "β_t");
            });
        }
        Method::Ddim => {
            ui.add(egui::Slider::new(&mut sampler.eta, 0.0..=1.0).text(format!("{prefix}η")));
        }
        _ => {}
    }
}

/// The guidance method (issue 37) and its own parameters; each method's formula and paper on hover.
/// Choosing a method sets the scale to its paper's default.
/// The guidance method, its scale and its λ interval.
fn guidance_controls_ui(ui: &mut egui::Ui, settings: &mut super::state::Settings, conditioned: bool) {
    guidance_method_ui(ui, settings, conditioned);
    // CFG++'s λ lives in [0, 1]; every other method's w in [0, 10].
    let (most, step) =
        if settings.guidance_method.method == GuidanceMethod::CfgPlusPlus { (1.0, 0.05) } else { (10.0, 0.1) };
    ui.add_enabled(conditioned, egui::Slider::new(&mut settings.guidance, 0.0..=most).step_by(step).text("Guidance"))
        .on_hover_text(
            "The guidance scale w (CFG++: λ): 0 = unconditional, 1 = conditional, more = stronger class or prompt. \
             Ho & Salimans (2021) count from the conditional model: their w is this w - 1 (the default 1.5 is \
             their 0.5).",
        );
    guidance_interval_ui(ui, &mut settings.guidance_interval, conditioned);
}

fn guidance_method_ui(ui: &mut egui::Ui, settings: &mut super::state::Settings, enabled: bool) {
    ui.add_enabled_ui(enabled, |ui| {
        let params = &mut settings.guidance_method;
        let before = params.method;
        egui::ComboBox::from_label("Guidance method").selected_text(params.method.label()).show_ui(ui, |ui| {
            for method in GuidanceMethod::ALL {
                ui.selectable_value(&mut params.method, method, method.label()).on_hover_text(format!(
                    "{}\n{}",
                    method.formula(),
                    method.paper()
                ));
            }
        });
        if params.method != before {
            settings.guidance = params.method.default_scale();
        }
        let params = &mut settings.guidance_method;
        match params.method {
            GuidanceMethod::Rescale => {
                ui.add(egui::Slider::new(&mut params.rescale_phi, 0.0..=1.0).text("rescale φ")).on_hover_text(
                    "The share of the prediction rescaled to the conditional one's standard deviation per image",
                );
            }
            GuidanceMethod::Apg => {
                ui.add(egui::Slider::new(&mut params.apg.eta, 0.0..=1.0).text("APG η"))
                    .on_hover_text("The weight of the update's part along x̂_y (0: only the orthogonal part)");
                ui.add(egui::Slider::new(&mut params.apg.momentum, -0.95..=0.95).text("APG momentum β"))
                    .on_hover_text("Δ = x̂_y - x̂_Ø + β Δ_prev: negative pushes away from the last steps' direction");
                ui.add(egui::Slider::new(&mut params.apg.threshold, 0.0..=20.0).text("APG norm limit r"))
                    .on_hover_text("The largest norm of Δ per image (0: no limit)");
            }
            GuidanceMethod::CfgPlusPlus => {
                ui.label("CFG++ runs on DDIM, Euler a and DPM++ 2M");
            }
            GuidanceMethod::Auto => {
                ui.label("Guided by a weaker model of the same kind (a built-in model's earlier checkpoint)");
            }
            GuidanceMethod::Cfg => {}
        }
    });
}

/// Guidance limited to a range of noise levels (Kynkäänniemi et al. 2024): a switch and the range in λ.
fn guidance_interval_ui(ui: &mut egui::Ui, interval: &mut Option<[f64; 2]>, enabled: bool) {
    ui.add_enabled_ui(enabled, |ui| {
        let mut limited = interval.is_some();
        ui.checkbox(&mut limited, "Guide only within a λ interval").on_hover_text(
            "ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø) only where λ = ln(ᾱ / (1 - ᾱ)) is in [from, to]; elsewhere w = 1 (the \
             conditional model alone). Guidance at the noisiest levels mostly narrows variety; at the least \
             noisy it barely matters (Kynkäänniemi et al. 2024).",
        );
        match (limited, interval.as_mut()) {
            (false, _) => *interval = None,
            (true, None) => *interval = Some([-3.4, 2.5]),
            (true, Some([low, high])) => {
                ui.add(egui::Slider::new(low, -20.0..=20.0).step_by(0.1).text("guide from λ"));
                ui.add(egui::Slider::new(high, -20.0..=20.0).step_by(0.1).text("guide to λ"));
                if *low > *high {
                    *high = *low;
                }
            }
        }
    });
}

/// A text model's prompt and negative prompt, the words it knows, and any it does not (named, never an
/// error: they are read as `<unk>` and Generate still runs).
fn prompt_ui(
    ui: &mut egui::Ui,
    settings: &mut super::state::Settings,
    text: &crate::model::text_encoder::TextEncoderConfig,
) {
    let label = ui.label("Prompt");
    ui.add(egui::TextEdit::singleline(&mut settings.prompt).hint_text("a dark ankle boot").desired_width(220.0))
        .labelled_by(label.id)
        .on_hover_text("What to draw: τ_θ reads one token per word, and cross-attention looks at them");
    let label = ui.label("Negative prompt");
    ui.add(egui::TextEdit::singleline(&mut settings.negative_prompt).hint_text("patterned").desired_width(220.0))
        .labelled_by(label.id)
        .on_hover_text("What to steer away from: guidance's Ø branch reads it instead of the empty prompt");
    let Ok(vocabulary) = text.vocabulary() else {
        ui.colored_label(ui.visuals().error_fg_color, "this model's vocabulary is damaged");
        return;
    };
    for prompt in [&settings.prompt, &settings.negative_prompt] {
        match text.unknown_words(prompt) {
            Ok(None) => {}
            Ok(Some(message)) => {
                ui.colored_label(ui.visuals().warn_fg_color, message);
            }
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("{e}: shorten it to generate"));
            }
        }
    }
    if settings.prompt.trim().is_empty() {
        ui.weak("The empty prompt: the model draws anything (guidance has nothing to add).");
    }
    egui::CollapsingHeader::new(format!("Words this model knows ({})", vocabulary.known_words().len()))
        .id_salt("known words")
        .show(ui, |ui| {
            ui.label(vocabulary.known_words().join(", "));
        });
}

#[cfg(test)]
mod rate_tests {
    use super::status_rate_text;

    #[test]
    fn no_eta_before_the_rate_is_known() {
        assert_eq!(status_rate_text(0.0, f64::INFINITY, 0.4), "measuring speed…, 0 s elapsed");
        assert!(!status_rate_text(0.0, f64::NAN, 2.0).contains("NaN"));
        assert_eq!(status_rate_text(10.0, 4.2, 1.0), "10.0 steps/s, ETA 4 s, 1 s elapsed");
    }
}
