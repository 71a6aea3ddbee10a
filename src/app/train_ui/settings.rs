//! The widgets that edit the Train view's choices ([`TrainSettings`], plain data saved between launches, in
//! `app/train_settings.rs`): the data, the model and the run; [`super::TrainPanel`] acts on what they change.

use eframe::egui;

use super::FolderTarget;
use crate::app::train_settings::{DataKind, SizePreset, TrainSettings};

/// Where the images come from: the radio buttons and the chosen folder's path; returns the folder whose
/// "Choose…" was clicked.
pub(super) fn data_source_ui(ui: &mut egui::Ui, train: &mut TrainSettings) -> Option<FolderTarget> {
    ui.radio_value(&mut train.data, DataKind::FashionMnist, "Fashion-MNIST")
        .on_hover_text(crate::data::fashion_mnist_dir().display().to_string());
    ui.radio_value(&mut train.data, DataKind::IdxFolder, "IDX folder");
    ui.radio_value(&mut train.data, DataKind::ImageFolder, "Your images");
    let mut choose = None;
    match train.data {
        DataKind::FashionMnist => {}
        DataKind::IdxFolder => {
            ui.horizontal(|ui| {
                let label = ui.label("IDX folder path");
                ui.add(egui::TextEdit::singleline(&mut train.idx_dir).desired_width(150.0)).labelled_by(label.id);
                if ui.button("Choose…").clicked() {
                    choose = Some(FolderTarget::Idx);
                }
            });
        }
        DataKind::ImageFolder => {
            ui.horizontal(|ui| {
                let label = ui.label("Image folder");
                ui.add(
                    egui::TextEdit::singleline(&mut train.image_dir)
                        .desired_width(150.0)
                        .hint_text("a folder of PNG/JPEG"),
                )
                .labelled_by(label.id);
                if ui.button("Choose…").clicked() {
                    choose = Some(FolderTarget::Images);
                }
            });
            ui.add_enabled_ui(!train.latent, |ui| {
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(&mut train.image_size).range(8..=128).prefix("size ").suffix(" px"));
                    ui.radio_value(&mut train.image_channels, 1, "gray");
                    ui.radio_value(&mut train.image_channels, 3, "RGB");
                });
            });
            ui.small("Sub-folders become classes; pictures are resized to the size above.");
        }
    }
    choose
}

/// Pixel or latent, the autoencoder, and the size (with each size's parameter count for `classes`).
pub(super) fn model_settings_ui(ui: &mut egui::Ui, train: &mut TrainSettings, classes: usize) {
    ui.horizontal(|ui| {
        ui.radio_value(&mut train.latent, false, "pixel");
        ui.radio_value(&mut train.latent, true, "latent");
    });
    if train.latent {
        ui.horizontal(|ui| {
            let label = ui.label("Autoencoder");
            ui.add(
                egui::TextEdit::singleline(&mut train.autoencoder)
                    .desired_width(150.0)
                    .hint_text("built-in (Fashion-MNIST)"),
            )
            .labelled_by(label.id);
        });
        ui.small("Latent diffusion learns the autoencoder's latents of 28x28 gray pictures.");
    }
    let parameters = |preset: SizePreset, settings: &TrainSettings| {
        let mut s = settings.clone();
        s.preset = preset;
        s.parameter_count(classes)
            .map_or_else(|e| format!("cannot build: {e}"), |p| format!("{:.2} M parameters", p as f64 / 1e6))
    };
    let selected = format!("{} ({})", train.preset.name(), parameters(train.preset, train));
    let snapshot = train.clone();
    egui::ComboBox::from_label("Size").selected_text(selected).show_ui(ui, |ui| {
        for preset in SizePreset::ALL {
            let text =
                format!("{} {:?}: {}", preset.name(), preset.channels(snapshot.latent), parameters(preset, &snapshot));
            ui.selectable_value(&mut train.preset, preset, text);
        }
    });
}

/// Steps, batch, learning rate, checkpoints, samples and the run folder; returns whether the folder's
/// "Choose…" was clicked.
pub(super) fn run_settings_ui(ui: &mut egui::Ui, train: &mut TrainSettings) -> bool {
    egui::Grid::new("train_settings").num_columns(2).show(ui, |ui| {
        let label = ui.label("Steps");
        ui.add(egui::DragValue::new(&mut train.steps).range(1..=1_000_000).speed(10.0)).labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Batch size");
        ui.add(egui::DragValue::new(&mut train.batch_size).range(1..=1024)).labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Learning rate");
        let rate = egui::DragValue::new(&mut train.learning_rate).range(1e-6..=0.1).speed(1e-5).max_decimals(6);
        ui.add(rate).labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Checkpoint every");
        ui.add(egui::DragValue::new(&mut train.checkpoint_every).range(1..=100_000).suffix(" steps"))
            .labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Samples every");
        ui.add(egui::DragValue::new(&mut train.preview_every).range(1..=100_000).suffix(" steps"))
            .labelled_by(label.id);
        ui.end_row();
    });
    let mut choose = false;
    ui.horizontal(|ui| {
        let label = ui.label("Run folder");
        ui.add(egui::TextEdit::singleline(&mut train.out).desired_width(150.0)).labelled_by(label.id);
        choose = ui.button("Choose…").clicked();
    });
    choose
}
