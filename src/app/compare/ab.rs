//! A/B: B runs from A's x_T with other settings, after A, and is shown beside it.

use eframe::egui;

use crate::app::context::PanelContext;
use crate::app::state::Settings;
use crate::diffusion::{BetaSchedule, Sampler, ScheduleKind};
use crate::engine::GenerateRequest;
use crate::model::ModelId;
use crate::model::denoise::DEFAULT_SAMPLER;
use crate::run::generate::PromptRequest;

/// What B changes from A; everything else (seed, batch, class, clipping) is A's, so both start from the
/// same x_T.
#[derive(Clone, Debug, PartialEq)]
pub struct ABMode {
    pub model: ModelId,
    pub sampler: Sampler,
    pub guidance: f64,
    pub schedule: BetaSchedule,
    /// B's prompt for a text model ("" keeps A's): the same x_T with other words.
    pub prompt: String,
}

impl ABMode {
    /// B as A's model, guidance and schedule with the default sampler.
    pub fn new(settings: &Settings) -> Self {
        Self::copy_of(settings, DEFAULT_SAMPLER)
    }

    /// A's model, guidance and schedule, with `sampler`.
    fn copy_of(settings: &Settings, sampler: Sampler) -> Self {
        Self {
            model: settings.model.clone(),
            sampler,
            guidance: settings.guidance,
            schedule: settings.schedule,
            prompt: String::new(),
        }
    }

    /// The request B runs, for A's `request`.
    pub fn request(&self, request: &GenerateRequest) -> GenerateRequest {
        GenerateRequest {
            model: self.model.clone(),
            schedule: self.schedule,
            sampler: Sampler { clip_x0: request.sampler.clip_x0, ..self.sampler },
            guidance: self.guidance,
            prompt: match &request.prompt {
                Some(a) if !self.prompt.trim().is_empty() => {
                    Some(PromptRequest { text: self.prompt.clone(), ..a.clone() })
                }
                other => other.clone(),
            },
            ..request.clone()
        }
    }

    /// Why B cannot run with the settings on the left, if it cannot.
    pub fn blocker(&self, ctx: &PanelContext) -> Option<String> {
        let Some(model) = ctx.models.info(&self.model) else {
            return Some(format!("B's model {} is not loaded", self.model));
        };
        let request = self.request(&ctx.request());
        request.validate(model.config.num_classes).err().map(|e| format!("B: {e}"))
    }

    /// What B changes from A.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.label("B starts from A's x_T (seed, batch, class); it changes:");
        let ids: Vec<ModelId> = ctx.models.loaded.iter().map(|m| m.id.clone()).collect();
        egui::ComboBox::from_label("B: model").selected_text(self.model.label()).show_ui(ui, |ui| {
            for id in ids {
                let label = id.label();
                ui.selectable_value(&mut self.model, id, label);
            }
        });
        let steps = self.schedule.steps;
        crate::app::generate_ui::sampler_ui(ui, "B: ", &mut self.sampler, steps);
        ui.add(egui::Slider::new(&mut self.guidance, 0.0..=10.0).step_by(0.1).text("B: guidance"));
        if ctx.text_model() {
            let label = ui.label("B: prompt");
            ui.add(egui::TextEdit::singleline(&mut self.prompt).hint_text("empty: A's prompt"))
                .labelled_by(label.id)
                .on_hover_text("B draws these words from A's x_T (a text model; empty keeps A's prompt)");
        }
        schedule_kind_ui(ui, "B: schedule", &mut self.schedule);
        if ui.button("B = A").on_hover_text("Copy A's model, sampler, guidance and schedule into B").clicked() {
            *self = Self::copy_of(&ctx.settings, ctx.settings.sampler);
        }
    }
}

/// A schedule kind picker; picking a kind resets the schedule to that kind's defaults (T kept).
fn schedule_kind_ui(ui: &mut egui::Ui, label: &str, schedule: &mut BetaSchedule) {
    egui::ComboBox::from_label(label).selected_text(schedule.kind.name()).show_ui(ui, |ui| {
        for kind in ScheduleKind::ALL {
            if ui.selectable_label(schedule.kind == kind, kind.name()).clicked() && schedule.kind != kind {
                *schedule = BetaSchedule::default_for(kind, schedule.steps);
            }
        }
    });
}
