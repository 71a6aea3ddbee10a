//! The Train view's choices ([`TrainSettings`]): where the images come from, the model's size and recipe
//! (what it predicts, how much each noise level counts), the run's steps and folder, and the quality meter. Plain data (serde, no egui), saved with the other [`super::state::Settings`]
//! between launches, so a run can be resumed after a restart; the widgets that edit them are in
//! `train_ui/settings.rs`. Their defaults come from src/train/defaults.rs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diffusion::{Objective, Weighting};
use crate::engine::train::DataRequest;
pub use crate::train::defaults::SizePreset;
use crate::train::defaults::WINDOW_DEFAULTS;
use crate::train::recipe::Recipe;
use crate::train::training::{DEFAULT_QUALITY_SAMPLES, DataSource, TrainingOptions, unet_config_for};

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
    /// What the network predicts (`train --objective`).
    #[serde(with = "by_name::objective")]
    pub objective: Objective,
    /// How much each noise level counts (`train --weighting`); `None`: the objective's usual weighting.
    #[serde(with = "by_name::weighting")]
    pub weighting: Option<Weighting>,
    /// The quality meter (`train --quality-every`): on or off, every how many steps, samples per reading.
    pub quality: bool,
    pub quality_every: u64,
    pub quality_samples: usize,
}

impl Default for TrainSettings {
    /// Fashion-MNIST, pixels, in a folder of the home directory; the rest is [`WINDOW_DEFAULTS`]: `train`'s
    /// defaults with the Train view's overrides for a quick run, both in src/train/defaults.rs.
    fn default() -> Self {
        let run = WINDOW_DEFAULTS;
        Self {
            data: DataKind::FashionMnist,
            idx_dir: crate::data::fashion_mnist_dir().display().to_string(),
            image_dir: String::new(),
            image_size: 28,
            image_channels: 1,
            latent: false,
            autoencoder: String::new(),
            preset: run.size,
            steps: run.steps,
            batch_size: run.batch_size,
            learning_rate: run.learning_rate,
            out: default_run_dir().display().to_string(),
            checkpoint_every: run.checkpoint_every,
            preview_every: run.preview_every,
            seed: run.seed,
            objective: Objective::default(),
            weighting: None,
            // Off: a reading costs sampling a few hundred images. When on, as often as the sample grids.
            quality: false,
            quality_every: run.preview_every,
            quality_samples: DEFAULT_QUALITY_SAMPLES,
        }
    }
}

/// The recipe saved by its command-line names (`v`, `min-snr:3`): plain text that reads back the same
/// whatever the types' own serde forms are; a name that no longer parses reads as the default (ε, the
/// objective's usual weighting) rather than losing every other setting.
mod by_name {
    use serde::{Deserialize, Deserializer, Serializer};

    pub mod objective {
        use super::*;
        use crate::diffusion::Objective;

        pub fn serialize<S: Serializer>(objective: &Objective, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(objective.name())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Objective, D::Error> {
            Ok(String::deserialize(deserializer)?.parse().unwrap_or_default())
        }
    }

    pub mod weighting {
        use super::*;
        use crate::diffusion::Weighting;

        pub fn serialize<S: Serializer>(weighting: &Option<Weighting>, serializer: S) -> Result<S::Ok, S::Error> {
            match weighting {
                Some(w) => serializer.serialize_some(&w.name()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Weighting>, D::Error> {
            Ok(Option::<String>::deserialize(deserializer)?.and_then(|name| name.parse().ok()))
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
            objective: Some(self.objective),
            weighting: self.weighting,
            // The meter scores with the Fashion-MNIST classifier: a folder of pictures has none to read.
            quality_every: if self.quality && self.data != DataKind::ImageFolder {
                self.quality_every.max(1)
            } else {
                0
            },
            quality_samples: self.quality_samples,
        }
    }

    /// The recipe a new run of these settings trains: the objective, with its usual weighting unless one is
    /// chosen.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            objective: self.objective,
            weighting: self.weighting.unwrap_or_else(|| crate::train::recipe::usual_weighting(self.objective)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings saved before `TrainSettings` left the egui file load as they did (the format is unchanged),
    /// and a file with some fields keeps the defaults of the others.
    #[test]
    fn saved_train_settings_load_as_before() {
        let mut storage = crate::app::state::MemoryStorage::default();
        let saved = r#"(data: ImageFolder, idx_dir: "/idx", image_dir: "/pictures", image_size: 32, image_channels: 3,
            latent: false, autoencoder: "", preset: Tiny, steps: 300, batch_size: 16, learning_rate: 0.002,
            out: "/runs/a", checkpoint_every: 50, preview_every: 25, seed: 7)"#;
        storage.0.insert("train".into(), saved.into());
        let expected = TrainSettings {
            data: DataKind::ImageFolder,
            idx_dir: "/idx".into(),
            image_dir: "/pictures".into(),
            image_size: 32,
            image_channels: 3,
            latent: false,
            autoencoder: String::new(),
            preset: SizePreset::Tiny,
            steps: 300,
            batch_size: 16,
            learning_rate: 0.002,
            out: "/runs/a".into(),
            checkpoint_every: 50,
            preview_every: 25,
            seed: 7,
            objective: Objective::Eps,
            weighting: None,
            quality: false,
            quality_every: WINDOW_DEFAULTS.preview_every,
            quality_samples: DEFAULT_QUALITY_SAMPLES,
        };
        assert_eq!(eframe::get_value::<TrainSettings>(&storage, "train"), Some(expected.clone()));
        eframe::set_value(&mut storage, "again", &expected);
        assert_eq!(eframe::get_value::<TrainSettings>(&storage, "again"), Some(expected));
        storage.0.insert("older".into(), "(steps: 5, preset: Large)".into());
        let older = eframe::get_value::<TrainSettings>(&storage, "older");
        assert_eq!(older, Some(TrainSettings { steps: 5, preset: SizePreset::Large, ..TrainSettings::default() }));
        // Inside the whole settings, under `train`.
        storage.0.insert("settings".into(), format!("(batch: 3, train: {saved})"));
        let settings = eframe::get_value::<super::super::state::Settings>(&storage, "settings").expect("settings load");
        assert_eq!((settings.batch, settings.train.seed, settings.train.preset), (3, 7, SizePreset::Tiny));
        // Saved before recipes and the quality meter: ε, its usual weighting, the meter off.
        assert_eq!(settings.train.recipe(), Recipe::default());
        assert!(!settings.train.quality && settings.train.run_options().quality_every == 0);
    }

    /// The recipe and the quality meter are saved and reach the run's options.
    #[test]
    fn recipe_and_quality_meter_settings_are_saved_and_reach_the_run() {
        let mut storage = crate::app::state::MemoryStorage::default();
        for weighting in Weighting::CHOICES.into_iter().map(Some).chain([None]) {
            let settings = TrainSettings {
                objective: Objective::V,
                weighting,
                quality: true,
                quality_every: 7,
                quality_samples: 40,
                ..TrainSettings::default()
            };
            eframe::set_value(&mut storage, "train", &settings);
            assert_eq!(eframe::get_value::<TrainSettings>(&storage, "train"), Some(settings.clone()));
            let options = settings.run_options();
            assert_eq!((options.objective, options.weighting), (Some(Objective::V), weighting));
            assert_eq!((options.quality_every, options.quality_samples), (7, 40));
            assert_eq!(options.recipe(), settings.recipe());
        }
        for weighting in [Weighting::MinSnr { gamma: 2.75 }, Weighting::FlowLogitNormal { mean: -0.5, std: 1.25 }] {
            let settings = TrainSettings { weighting: Some(weighting), ..TrainSettings::default() };
            eframe::set_value(&mut storage, "train", &settings);
            assert_eq!(eframe::get_value::<TrainSettings>(&storage, "train"), Some(settings), "the numbers are kept");
        }
        // A name that does not parse (a later version's) reads as the default, the other settings kept.
        storage.0.insert("later".into(), r#"(steps: 9, objective: "sde", weighting: Some("loud"))"#.into());
        let later = eframe::get_value::<TrainSettings>(&storage, "later");
        assert_eq!(later, Some(TrainSettings { steps: 9, ..TrainSettings::default() }));
        let folder = TrainSettings { data: DataKind::ImageFolder, quality: true, ..TrainSettings::default() };
        assert_eq!(folder.run_options().quality_every, 0, "no classifier for a folder of pictures");
        let off = TrainSettings { quality: false, quality_every: 7, ..TrainSettings::default() };
        assert_eq!(off.run_options().quality_every, 0, "off means no reading");
        let flow = TrainSettings { objective: Objective::Flow, ..TrainSettings::default() };
        assert_eq!(flow.recipe().weighting, Weighting::FlowUniform, "flow's usual weighting");
    }
}
