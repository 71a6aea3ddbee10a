//! The app's state: the settings a user edits (persisted between launches) and the trajectory of the
//! last run. The UI reads it every frame; nothing here runs a model.

use serde::{Deserialize, Serialize};

use crate::diffusion::{BetaSchedule, Sampler};
use crate::engine::{Frame, GenerateRequest};

/// Which tensor of a step the image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quantity {
    /// x_t, the state of the chain.
    Noisy,
    /// x̂_0, the clean image the network predicts at this step.
    PredictedClean,
    /// ε, the noise the network predicts.
    PredictedNoise,
    /// A latent model's raw z_t, one tile per channel.
    LatentChannels,
}

impl Quantity {
    pub const ALL: [Quantity; 4] =
        [Quantity::Noisy, Quantity::PredictedClean, Quantity::PredictedNoise, Quantity::LatentChannels];

    /// The button label; a latent model shows decoded images, D(z).
    pub fn label(self, latent: bool) -> &'static str {
        match (self, latent) {
            (Quantity::Noisy, false) => "x_t",
            (Quantity::Noisy, true) => "D(z_t)",
            (Quantity::PredictedClean, false) => "predicted x_0",
            (Quantity::PredictedClean, true) => "D(predicted z_0)",
            (Quantity::PredictedNoise, _) => "predicted noise",
            (Quantity::LatentChannels, _) => "latent channels",
        }
    }

    /// Whether the view means anything for this kind of model.
    pub fn applies(self, latent: bool) -> bool {
        latent || self != Quantity::LatentChannels
    }
}

/// How values become colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorMap {
    /// [-1, 1] as black..white; values beyond are tinted (blue below, red above) instead of clipped silently.
    Gray,
    /// Blue-white-red, symmetric around 0, scaled to the frame's largest |value|.
    Diverging,
}

pub use crate::model::denoise::DEFAULT_SAMPLER;

fn sampler_or_default<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sampler, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Saved {
        Current(Sampler),
        Older(serde::de::IgnoredAny),
    }
    Ok(match Saved::deserialize(deserializer)? {
        Saved::Current(sampler) => sampler,
        Saved::Older(_) => DEFAULT_SAMPLER,
    })
}

/// Everything the user sets; saved between launches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Saved as its label, as settings of older versions were.
    pub model: crate::model::ModelId,
    pub batch: usize,
    /// `None` = any class (unconditional).
    pub class: Option<usize>,
    pub guidance: f64,
    /// Guidance only within [lowest λ, highest λ] (w = 1 elsewhere); `None`: at every noise level.
    pub guidance_interval: Option<[f64; 2]>,
    /// The guidance method and its parameters (`guidance` is its scale).
    pub guidance_method: crate::diffusion::guidance::GuidanceParams,
    /// Settings saved by versions before the sampler choice became one value (`"Ddim"`, with `ddim_steps`
    /// and `eta` beside it) load with the default sampler rather than losing every other setting.
    #[serde(deserialize_with = "sampler_or_default")]
    pub sampler: Sampler,
    pub seed: u64,
    pub schedule: BetaSchedule,
    /// What the pictures show (saved as `view` before the name settled).
    #[serde(alias = "view")]
    pub quantity: Quantity,
    pub color_map: ColorMap,
    /// Screen pixels per image pixel.
    pub zoom: f32,
    /// Frames per second of timeline playback.
    pub play_speed: f32,
    /// Where the model runs.
    pub device: crate::engine::DeviceChoice,
    /// Timesteps per sample in an exported filmstrip.
    pub filmstrip_steps: usize,
    /// The Train view's choices.
    pub train: super::train_settings::TrainSettings,
    /// "This step" is open beside the pictures.
    pub this_step: bool,
    /// What is drawn over the pictures.
    pub overlay: Overlay,
    /// Which cross-attention map the attention overlay shows.
    pub attention: AttentionPick,
    /// A text model's prompt and negative prompt (kept while a class model is chosen, unused by it).
    pub prompt: String,
    pub negative_prompt: String,
}

/// Which cross-attention map to draw: a layer of the UNet, a token of τ_θ(y), one head or their mean, at
/// the step on screen or summed over the run's steps (as DAAM aggregates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttentionPick {
    pub layer: usize,
    pub token: usize,
    /// `None`: the mean over heads.
    pub head: Option<usize>,
    pub summed: bool,
}

/// What the picture toolbar draws over the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overlay {
    #[default]
    Off,
    /// |ε̂_y - ε̂_Ø| of the step that made the frame: where the class changed the network's answer.
    Guidance,
    /// Cross-attention weights to one of τ_θ(y)'s tokens.
    Attention,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: crate::model::ModelId::default(),
            batch: 16,
            class: Some(0),
            guidance: crate::model::denoise::DEFAULT_GUIDANCE,
            guidance_interval: None,
            guidance_method: Default::default(),
            sampler: DEFAULT_SAMPLER,
            seed: 1,
            schedule: BetaSchedule::cosine(1000),
            quantity: Quantity::Noisy,
            color_map: ColorMap::Gray,
            zoom: 4.0,
            play_speed: 30.0,
            device: crate::engine::DeviceChoice::Auto,
            filmstrip_steps: 10,
            train: Default::default(),
            this_step: false,
            overlay: Overlay::Off,
            attention: AttentionPick::default(),
            prompt: String::new(),
            negative_prompt: String::new(),
        }
    }
}

impl Settings {
    /// The run these settings describe, for a model that reads prompts (a text model: the request carries
    /// the prompt) or not; the window asks [`super::context::PanelContext::request`], which knows the model.
    pub fn request(&self, reads_prompts: bool) -> GenerateRequest {
        GenerateRequest {
            model: self.model.clone(),
            schedule: self.schedule,
            sampler: self.sampler,
            seed: self.seed,
            batch: self.batch,
            class: self.class,
            prompt: reads_prompts.then(|| crate::run::generate::PromptRequest {
                text: self.prompt.clone(),
                negative: self.negative_prompt.clone(),
            }),
            guidance: self.guidance,
            guidance_interval: self.guidance_interval,
            guidance_method: self.guidance_method,
            init: None,
            interpolate: None,
            branch: None,
        }
    }

    /// Puts every field back inside what the window's controls allow, for a model with `num_classes`
    /// classes: settings restored from disk or from a PNG may come from another version, another model or
    /// a damaged file. Each invalid field falls back to its default; the messages say which and why.
    pub fn sanitize(&mut self, num_classes: usize) -> Vec<String> {
        let defaults = Settings::default();
        let mut fixed = Vec::new();
        let mut check = |ok: bool, what: String, reset: &mut dyn FnMut()| {
            if !ok {
                reset();
                fixed.push(what);
            }
        };
        let batch = self.batch;
        check((1..=crate::run::generate::MAX_BATCH).contains(&batch), format!("batch {batch}"), &mut || {
            self.batch = defaults.batch
        });
        if let Some(class) = self.class.filter(|c| *c >= num_classes) {
            let default = defaults.class.filter(|c| *c < num_classes);
            check(false, format!("class {class} (the model knows {num_classes})"), &mut || self.class = default);
        }
        let guidance = self.guidance;
        check((0.0..=10.0).contains(&guidance), format!("guidance {guidance}"), &mut || {
            self.guidance = defaults.guidance
        });
        let interval = self.guidance_interval;
        check(interval.is_none_or(|[low, high]| low <= high), format!("guidance interval {interval:?}"), &mut || {
            self.guidance_interval = None
        });
        let asked = crate::diffusion::guidance::Guidance {
            scale: self.guidance,
            interval: self.guidance_interval,
            params: self.guidance_method,
        };
        check(asked.validate().is_ok(), format!("guidance method {:?}", self.guidance_method), &mut || {
            self.guidance_method = defaults.guidance_method
        });
        let schedule = self.schedule;
        check(schedule.build().is_ok(), format!("schedule {schedule:?}"), &mut || self.schedule = defaults.schedule);
        let (steps, max) = (self.sampler.steps, self.schedule.steps);
        let default_steps = defaults.sampler.steps.min(max);
        check(
            !self.sampler.method.has_steps() || (1..=max).contains(&steps),
            format!("sampling steps {steps}"),
            &mut || self.sampler.steps = default_steps,
        );
        let eta = self.sampler.eta;
        check((0.0..=1.0).contains(&eta), format!("η {eta}"), &mut || self.sampler.eta = defaults.sampler.eta);
        let zoom = self.zoom;
        check((1.0..=16.0).contains(&zoom), format!("zoom {zoom}"), &mut || self.zoom = defaults.zoom);
        let speed = self.play_speed;
        check((1.0..=240.0).contains(&speed), format!("playback speed {speed}"), &mut || {
            self.play_speed = defaults.play_speed
        });
        let film = self.filmstrip_steps;
        check((2..=40).contains(&film), format!("filmstrip steps {film}"), &mut || {
            self.filmstrip_steps = defaults.filmstrip_steps
        });
        fixed
    }

    /// Takes the generation settings of a saved request (from a PNG's text chunk).
    pub fn apply_request(&mut self, request: &GenerateRequest) {
        self.model = request.model.clone();
        self.schedule = request.schedule;
        self.seed = request.seed;
        self.batch = request.batch;
        self.class = request.class;
        if let Some(prompt) = &request.prompt {
            self.prompt = prompt.text.clone();
            self.negative_prompt = prompt.negative.clone();
        }
        self.guidance = request.guidance;
        self.guidance_interval = request.guidance_interval;
        self.guidance_method = request.guidance_method;
        self.sampler = request.sampler;
    }
}

/// Every recorded step of the last run, in order: x_T first.
#[derive(Clone, Debug)]
pub struct Trajectory {
    pub request: GenerateRequest,
    /// x_T, then the steps: all of them within [`Trajectory::budget_bytes`], else every `stride`-th.
    pub frames: Vec<Frame>,
    /// 1 while every step is kept; 2, 4, ... once the memory budget thins the recording.
    pub stride: usize,
    pub budget_bytes: usize,
    /// Steps the plan has (frames = steps + 1 when complete).
    pub total_steps: usize,
}

impl Trajectory {
    pub fn new(request: GenerateRequest) -> Self {
        Self {
            request,
            frames: Vec::new(),
            stride: 1,
            budget_bytes: crate::run::generate::TRAJECTORY_BUDGET_BYTES,
            total_steps: 0,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.total_steps > 0 && self.frames.last().is_some_and(|f| f.t == 0)
    }

    /// Records a frame within the memory budget (see [`crate::run::generate::push_within_budget`]).
    pub fn push(&mut self, frame: Frame) {
        let bytes = crate::run::generate::frame_budget_bytes(&frame, self.frames.first());
        crate::run::generate::push_within_budget(&mut self.frames, frame, &mut self.stride, self.budget_bytes, bytes);
    }

    /// Whether this is a latent model's run, whose views show decoded pixels: x_T's frame always comes
    /// decoded, the other frames only within the engine's decoding budget (the rest follow after the run).
    pub fn is_latent(&self) -> bool {
        self.frames.first().is_some_and(|f| f.decoded.is_some())
    }

    /// Latent frames still waiting for their pixels.
    pub fn undecoded(&self) -> usize {
        if self.is_latent() { self.frames.iter().filter(|f| f.decoded.is_none()).count() } else { 0 }
    }

    /// The position of the frame nearest in noise level to λ = `log_snr` (measured as sqrt(1 - ᾱ), the
    /// share of noise, so that +∞, the clean image, compares too): how A/B scrubs B along with A.
    pub fn nearest_noise_level(&self, log_snr: f64) -> Option<usize> {
        let noise = |l: f64| (1.0 - crate::diffusion::schedule::alpha_bar_from_log_snr(l)).max(0.0).sqrt();
        let wanted = noise(log_snr);
        (0..self.frames.len()).min_by(|a, b| {
            (noise(self.frames[*a].log_snr) - wanted).abs().total_cmp(&(noise(self.frames[*b].log_snr) - wanted).abs())
        })
    }

    /// Gives frame `index` the pixels the engine decoded for it after the run (if it is still recorded).
    pub fn set_decoded(&mut self, index: usize, decoded: crate::engine::Decoded) {
        if let Some(position) = self.position(index) {
            self.frames[position].decoded = Some(decoded);
        }
    }

    /// The position of the frame with `index` (frames arrive in index order).
    pub fn position(&self, index: usize) -> Option<usize> {
        self.frames.binary_search_by_key(&index, |f| f.index).ok()
    }

    /// The frame to draw for the cursor at `position` in `view`: itself, or, while a latent frame waits
    /// for its pixels in a decoded view, the nearest decoded frame before it (after it, if none is before).
    pub fn display_position(&self, position: usize, quantity: Quantity) -> usize {
        let decoded_quantity = matches!(quantity, Quantity::Noisy | Quantity::PredictedClean);
        if !decoded_quantity || !self.is_latent() || self.frames.get(position).is_none_or(|f| f.decoded.is_some()) {
            return position;
        }
        let before = self.frames[..position].iter().rposition(|f| f.decoded.is_some());
        let after = || self.frames[position..].iter().position(|f| f.decoded.is_some()).map(|p| p + position);
        before.or_else(after).unwrap_or(position)
    }
}

/// What the engine is doing for us.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Idle,
    Running { job: u64, started: std::time::Instant },
    Finished { seconds: f64, cancelled: bool },
    Failed(String),
}

/// eframe's storage in memory (it keeps settings as RON), for the tests of what is saved.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MemoryStorage(pub std::collections::HashMap<String, String>);

#[cfg(test)]
impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_round_trip_and_older_files() {
        let settings = Settings { batch: 9, seed: 42, class: None, ..Settings::default() };
        let text = serde_json::to_string(&settings).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), settings);
        // A file written before a field existed still loads, with that field at its default.
        let older: Settings = serde_json::from_str(r#"{"batch": 3, "seed": 5}"#).unwrap();
        assert!(older.clone().sanitize(10).is_empty(), "an older file's values are valid");
        assert_eq!((older.batch, older.seed, older.sampler), (3, 5, DEFAULT_SAMPLER));
        // Before the sampler was one value: the other settings survive it.
        let older: Settings =
            serde_json::from_str(r#"{"batch": 4, "sampler": "Ddim", "ddim_steps": 20, "eta": 0.5}"#).unwrap();
        assert_eq!((older.batch, older.sampler), (4, DEFAULT_SAMPLER));
    }

    /// eframe keeps settings as RON: every sampler (names like `dpmpp-2m` are not RON identifiers) and
    /// spacing must come back as saved, and a file of the older format keeps its other settings.
    #[test]
    fn settings_survive_eframe_storage() {
        let mut storage = MemoryStorage::default();
        for method in crate::diffusion::Method::ALL {
            for spacing in crate::diffusion::Spacing::ALL {
                let settings = Settings {
                    sampler: Sampler { spacing, ..Sampler::new(method, 17) },
                    batch: 3,
                    ..Settings::default()
                };
                eframe::set_value(&mut storage, "s", &settings);
                assert_eq!(eframe::get_value::<Settings>(&storage, "s"), Some(settings), "{:?}", storage.0["s"]);
            }
        }
        storage.0.insert("s".into(), "(batch: 5, sampler: Ddim, ddim_steps: 20, eta: 0.5)".into());
        let older = eframe::get_value::<Settings>(&storage, "s").expect("older settings load");
        assert_eq!((older.batch, older.sampler), (5, DEFAULT_SAMPLER));
    }

    #[test]
    fn sanitize_resets_each_invalid_field_to_its_default() {
        let mut settings = Settings {
            batch: 0,
            class: Some(12),
            guidance: f64::NAN,
            sampler: Sampler { steps: 5000, ..DEFAULT_SAMPLER },
            zoom: 0.0,
            play_speed: f32::INFINITY,
            filmstrip_steps: 1000,
            schedule: BetaSchedule { steps: 0, ..BetaSchedule::linear(10) },
            ..Settings::default()
        };
        let fixed = settings.sanitize(10);
        assert_eq!(fixed.len(), 8, "{fixed:?}");
        assert!(fixed.iter().any(|f| f.contains("class 12")), "{fixed:?}");
        let defaults = Settings::default();
        assert_eq!(settings, Settings { seed: settings.seed, ..defaults.clone() });
        // A model with three classes: class 5 goes, and so does the default class when it does not exist.
        let mut settings = Settings { class: Some(5), ..defaults };
        assert_eq!(settings.sanitize(3).len(), 1);
        assert_eq!(settings.class, Some(0));
        let mut settings = Settings { class: Some(0), ..Settings::default() };
        assert!(settings.sanitize(0).len() == 1 && settings.class.is_none());
    }

    #[test]
    fn a_request_restores_the_settings_that_made_it() {
        let sampler = Sampler::new(crate::diffusion::Method::Heun, 7).with_spacing(crate::diffusion::Spacing::Karras);
        let mut settings = Settings { sampler, seed: 8, guidance: 1.5, ..Settings::default() };
        settings.prompt = "dark sneaker".into();
        let request = settings.request(true);
        let mut other = Settings::default();
        other.apply_request(&request);
        assert_eq!(other.request(true), request);
        assert_eq!(other.request(false), GenerateRequest { prompt: None, ..request.clone() });
        settings.sampler = DEFAULT_SAMPLER;
        assert_ne!(settings.request(true), request);
    }
}
