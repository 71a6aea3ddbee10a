//! The Train view's left panel: the data, the model and its recipe, the run, the quality meter, and the
//! Start / Pause / Resume / Stop buttons with where the run stands.

use eframe::egui;

use super::{FolderTarget, Phase, TrainPanel, centre, resume_total, settings};
use crate::app::context::PanelContext;
use crate::app::train_settings::DataKind;
use crate::engine::train::TrainCommand;

/// The left panel: data, model, recipe, run, quality meter, the Start / Pause / Resume / Stop buttons, and
/// the runs compared.
impl TrainPanel {
    pub fn panel_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let has_folder = !ctx.settings.train.data_request().source.dir().as_os_str().is_empty();
        if self.data.is_none() && self.data_requested.is_none() && self.data_error.is_none() && has_folder {
            self.load_data(ctx);
        }
        let out = ctx.settings.train.out_dir();
        if self.run_requested.as_ref() != Some(&out) && !self.is_training() && self.phase != Phase::Paused {
            self.find_run(ctx, out);
        }
        let busy = self.phase != Phase::Idle;
        ui.heading("Data");
        ui.add_enabled_ui(!busy, |ui| self.data_ui(ui, ctx));
        ui.separator();
        ui.heading("Model");
        ui.add_enabled_ui(!busy, |ui| self.model_ui(ui, ctx));
        self.recipe_ui(ui, ctx);
        ui.separator();
        ui.heading("Run");
        ui.add_enabled_ui(!busy, |ui| Self::run_settings_ui(ui, ctx));
        self.quality_settings_ui(ui, ctx);
        ui.separator();
        self.controls_ui(ui, ctx);
        self.progress_ui(ui);
        ui.separator();
        self.recipe_weights_ui(ui, ctx);
        ui.separator();
        ui.heading("Compare runs");
        self.compare_ui(ui, ctx);
    }

    fn data_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let before = ctx.settings.train.data_request();
        let choose = settings::data_source_ui(ui, &mut ctx.settings.train);
        if let Some(target) = choose {
            Self::pick_folder(ctx, ui.ctx(), target);
        }
        let changed = ctx.settings.train.data_request() != before;
        if ui.button("Load data").clicked() || (changed && ctx.settings.train.data == DataKind::FashionMnist) {
            self.load_data(ctx);
        }
        if self.loading_data {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("loading…");
            });
        } else if let Some(error) = &self.data_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        } else if let Some(data) = &self.data {
            centre::data_summary_ui(ui, data);
        }
    }

    fn model_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        settings::model_settings_ui(ui, &mut ctx.settings.train, self.num_classes());
    }

    fn run_settings_ui(ui: &mut egui::Ui, ctx: &mut PanelContext) {
        if settings::run_settings_ui(ui, &mut ctx.settings.train) {
            Self::pick_folder(ctx, ui.ctx(), FolderTarget::Run);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let phase = self.phase;
        let out = ctx.settings.train.out_dir();
        let found = self.found.clone().filter(|(dir, _)| *dir == out).and_then(|(_, p)| p);
        let blocker = (phase == Phase::Idle).then(|| self.start_blocker(ctx)).flatten();
        ui.horizontal_wrapped(|ui| match phase {
            Phase::Idle => {
                let start = ui.add_enabled(blocker.is_none(), egui::Button::new("Start training"));
                let start = match &blocker {
                    Some(reason) => start.on_disabled_hover_text(reason),
                    None => start,
                };
                if start.clicked() {
                    self.start_training(ctx, false);
                }
                if let Some(progress) = &found {
                    let total = resume_total(ctx.settings.train.steps, progress);
                    let text = format!("Resume training (step {} of {total})", progress.step);
                    if ui.button(text).on_hover_text("continue from the folder's last checkpoint").clicked() {
                        self.start_training(ctx, true);
                    }
                }
            }
            Phase::Starting => {
                ui.spinner();
                ui.label("starting…");
            }
            Phase::Running | Phase::Paused => {
                let (label, command) = if phase == Phase::Running {
                    ("Pause training", TrainCommand::Pause)
                } else {
                    ("Resume training", TrainCommand::Continue)
                };
                if ui.button(label).clicked() {
                    ctx.engine.train(command);
                }
                if ui.button("Stop training").clicked() {
                    ctx.engine.train(TrainCommand::Stop);
                }
            }
        });
        if let Some(reason) = blocker {
            ui.small(reason);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }
}
