//! The Train view's choices ([`TrainSettings`]): where the images come from, the model's size, and the
//! run's steps and folder; saved with the other settings between launches, so a run can be resumed after
//! a restart. The widgets that edit them are here too; [`super::TrainPanel`] acts on what they change.

use std::path::PathBuf;

use eframe::egui;
use serde::{Deserialize, Serialize};

use super::FolderTarget;

use crate::engine::train::DataRequest;
use crate::train::training::{DataSource, TrainingOptions, default_channels, unet_config_for};

/// Where training images come from, as the view offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataKind {
    /// The Debian package's Fashion-MNIST.
    FashionMnist,
    /// A folder holding Fashion-MNIST-style IDX files.
    IdxFolder,
    /// A folder of PNG / JPEG pictures; sub-folders are classes.
    ImageFolder,
}

/// Model sizes offered, by feature channels per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SizePreset {
    Tiny,
    Small,
    Medium,
    Large,
}

impl SizePreset {
    pub const ALL: [SizePreset; 4] = [SizePreset::Tiny, SizePreset::Small, SizePreset::Medium, SizePreset::Large];

    pub fn name(self) -> &'static str {
        match self {
            SizePreset::Tiny => "Tiny",
            SizePreset::Small => "Small",
            SizePreset::Medium => "Medium",
            SizePreset::Large => "Large",
        }
    }

    /// Medium is what `train` builds by default (the built-in models' size).
    pub fn channels(self, latent: bool) -> Vec<usize> {
        match (self, latent) {
            (SizePreset::Tiny, false) => vec![16, 32],
            (SizePreset::Small, false) => vec![32, 64],
            (SizePreset::Tiny, true) => vec![32, 64],
            (SizePreset::Small, true) => vec![48, 96],
            (SizePreset::Medium, latent) => default_channels(latent),
            (SizePreset::Large, false) => vec![64, 128, 256],
            (SizePreset::Large, true) => vec![128, 256],
        }
    }
}

/// The Train view's choices; saved between launches, so a run can be resumed after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    pub data: DataKind,
    pub idx_dir: String,
    pub image_dir: String,
    /// Size and channels a folder's pictures are converted to.
    pub image_size: usize,
    pub image_channels: usize,
    pub latent: bool,
    /// The autoencoder of a latent model: empty for the built-in one.
    pub autoencoder: String,
    pub preset: SizePreset,
    pub steps: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// The run folder.
    pub out: String,
    pub checkpoint_every: u64,
    pub preview_every: u64,
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            data: DataKind::FashionMnist,
            idx_dir: crate::data::fashion_mnist_dir().display().to_string(),
            image_dir: String::new(),
            image_size: 28,
            image_channels: 1,
            latent: false,
            autoencoder: String::new(),
            preset: SizePreset::Small,
            steps: 2000,
            batch_size: 64,
            learning_rate: 1e-3,
            out: default_run_dir().display().to_string(),
            checkpoint_every: 100,
            preview_every: 100,
            seed: 1,
        }
    }
}

/// ~/diffusion-lab/runs/my-model (./diffusion-lab-runs/my-model without a home directory).
pub fn default_run_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join("diffusion-lab").join("runs").join("my-model"),
        _ => PathBuf::from("diffusion-lab-runs").join("my-model"),
    }
}

impl TrainSettings {
    pub fn data_request(&self) -> DataRequest {
        let source = match self.data {
            DataKind::FashionMnist => DataSource::FashionMnist { dir: crate::data::fashion_mnist_dir() },
            DataKind::IdxFolder => DataSource::FashionMnist { dir: PathBuf::from(self.idx_dir.trim()) },
            DataKind::ImageFolder => DataSource::Folder { dir: PathBuf::from(self.image_dir.trim()) },
        };
        // A latent model sees its autoencoder's images: the built-in one's are Fashion-MNIST's 1x28x28.
        let (image_size, image_channels) = match (self.data, self.latent) {
            (DataKind::ImageFolder, false) => (self.image_size, self.image_channels),
            _ => (28, 1),
        };
        DataRequest { source, image_size, image_channels }
    }

    pub fn channels(&self) -> Vec<usize> {
        self.preset.channels(self.latent)
    }

    pub fn out_dir(&self) -> PathBuf {
        PathBuf::from(self.out.trim())
    }

    /// The name of the trained model in Generate's picker.
    /// The model this run hands to Generate's picker, named by its run folder.
    pub fn model_id(&self) -> crate::model::ModelId {
        let folder = self.out_dir().file_name().map_or_else(|| self.out.clone(), |n| n.to_string_lossy().into_owned());
        crate::model::ModelId::Trained(folder)
    }

    pub fn autoencoder_path(&self) -> PathBuf {
        if self.autoencoder.trim().is_empty() {
            self.out_dir().join(BUILT_IN_AUTOENCODER_FILE)
        } else {
            PathBuf::from(self.autoencoder.trim())
        }
    }

    pub fn run_options(&self) -> TrainingOptions {
        TrainingOptions {
            out: self.out_dir(),
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            channels: Some(self.channels()),
            autoencoder: self.latent.then(|| self.autoencoder_path()),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every.max(1),
            preview_every: self.preview_every.max(1),
            export: None,
            captions: false,
        }
    }

    /// Parameters of the UNet a new run would build on `summary`'s data (the latent model's 4x7x7 latents).
    pub fn parameter_count(&self, num_classes: usize) -> Result<usize, String> {
        let (channels, size) =
            if self.latent { (4, 7) } else { (self.data_request().image_channels, self.data_request().image_size) };
        let config = unet_config_for(self.channels(), channels, size, num_classes.max(1));
        config.validate()?;
        Ok(config.parameter_count())
    }
}

/// The built-in autoencoder is copied into the run folder under this name, so that the run (and
/// `sample --model`) finds it like any autoencoder file.
pub const BUILT_IN_AUTOENCODER_FILE: &str = "autoencoder.dlab";

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
