//! X/Y plots ("grid runs"): one run per pair of values of two settings, all from the same seed (so the
//! same x_T), laid out as a labelled grid. The window and `diffusion-lab grid` share this.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::GenerateRequest;
use crate::diffusion::{BetaSchedule, Method, ScheduleKind, Spacing};

/// Most cells of one grid: each is a whole run.
pub const MAX_GRID_CELLS: usize = 100;

/// A setting a grid can vary along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridSetting {
    /// Classifier-free guidance w.
    Guidance,
    /// Sampling steps.
    Steps,
    /// The sampler (method).
    Sampler,
    /// Timestep spacing.
    Spacing,
    /// DDIM's η.
    Eta,
    /// The class (or `any`).
    Class,
    Seed,
    /// T of the schedule.
    Timesteps,
    /// The schedule's kind (linear, cosine, quadratic, sigmoid), at its usual β range.
    Schedule,
    /// Image-to-image's strength (cells that start from a picture).
    Strength,
    /// A text model's prompt: each value a whole prompt.
    Prompt,
    /// Prompt search and replace (AUTOMATIC1111's "Prompt S/R"): the first value is a word or phrase of
    /// the prompt, each value replaces it in turn (the first leaves the prompt as it is).
    PromptSr,
}

impl GridSetting {
    pub const ALL: [GridSetting; 12] = [
        GridSetting::Guidance,
        GridSetting::Steps,
        GridSetting::Sampler,
        GridSetting::Spacing,
        GridSetting::Eta,
        GridSetting::Class,
        GridSetting::Seed,
        GridSetting::Timesteps,
        GridSetting::Schedule,
        GridSetting::Strength,
        GridSetting::Prompt,
        GridSetting::PromptSr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GridSetting::Guidance => "guidance",
            GridSetting::Steps => "steps",
            GridSetting::Sampler => "sampler",
            GridSetting::Spacing => "spacing",
            GridSetting::Eta => "eta",
            GridSetting::Class => "class",
            GridSetting::Seed => "seed",
            GridSetting::Timesteps => "timesteps",
            GridSetting::Schedule => "schedule",
            GridSetting::Strength => "strength",
            GridSetting::Prompt => "prompt",
            GridSetting::PromptSr => "prompt_sr",
        }
    }

    /// Whether values are prompts, which may hold commas: an axis of them is split on `|` where it has one.
    pub fn takes_prompts(self) -> bool {
        matches!(self, GridSetting::Prompt | GridSetting::PromptSr)
    }

    /// `request` with this setting at `value` (as typed: "2.5", "dpmpp-2m", "any"...).
    pub fn apply(self, request: &GenerateRequest, value: &str) -> Result<GenerateRequest, GridError> {
        let bad = |why: &str| GridError::Value { setting: self, value: value.to_owned(), why: why.to_owned() };
        let number = || {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad("not a number of at least 0"))
        };
        let count = || {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| bad("not a whole number of at least 1"))
        };
        let mut request = request.clone();
        match self {
            GridSetting::Guidance => request.guidance = number()?,
            GridSetting::Steps => request.sampler.steps = count()?,
            GridSetting::Sampler => {
                request.sampler.method = Method::from_str(value).map_err(|e| bad(&e.to_string()))?
            }
            GridSetting::Spacing => {
                request.sampler.spacing = Spacing::from_str(value).map_err(|e| bad(&e.to_string()))?
            }
            GridSetting::Eta => request.sampler.eta = number()?,
            GridSetting::Class => {
                request.class = match value.trim() {
                    "any" | "none" => None,
                    _ => Some(value.trim().parse::<usize>().map_err(|_| bad("not a class number or `any`"))?),
                }
            }
            GridSetting::Seed => request.seed = value.trim().parse::<u64>().map_err(|_| bad("not a whole number"))?,
            GridSetting::Timesteps => request.schedule.steps = count()?,
            GridSetting::Schedule => {
                let kind = ScheduleKind::from_str(value).map_err(|e| bad(&e.to_string()))?;
                request.schedule = BetaSchedule::default_for(kind, request.schedule.steps);
            }
            GridSetting::Prompt => {
                let negative = request.prompt.take().map(|p| p.negative).unwrap_or_default();
                request.prompt = Some(super::generate::PromptRequest { text: value.trim().to_owned(), negative });
            }
            GridSetting::PromptSr => {
                return Err(bad("prompt S/R replaces its axis's first value: use `apply_on_axis`"));
            }
            GridSetting::Strength => {
                let strength = number()?;
                let init = request.init.as_mut().ok_or_else(|| {
                    bad("strength needs a picture to start from (--init-image, or the Forward process panel's)")
                })?;
                init.strength = strength;
            }
        }
        Ok(request)
    }
}

impl GridAxis {
    /// `request` with this axis's setting at `value`; prompt S/R replaces the axis's first value in the
    /// request's prompt by `value`.
    pub fn apply_on_axis(&self, request: &GenerateRequest, value: &str) -> Result<GenerateRequest, GridError> {
        if self.setting != GridSetting::PromptSr {
            return self.setting.apply(request, value);
        }
        let bad = |why: String| GridError::Value { setting: self.setting, value: value.to_owned(), why };
        let search = self.values.first().map(|v| v.trim()).unwrap_or_default();
        let mut request = request.clone();
        let prompt = request.prompt.as_mut().ok_or_else(|| bad("prompt S/R needs a prompt to search in".into()))?;
        if !prompt.text.contains(search) {
            return Err(bad(format!("`{search}` is not in the prompt `{}`", prompt.text)));
        }
        prompt.text = prompt.text.replacen(search, value.trim(), 1);
        Ok(request)
    }
}

impl FromStr for GridSetting {
    type Err = GridError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GridSetting::ALL
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| GridError::UnknownSetting(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GridError {
    #[error(
        "unknown grid setting `{0}`: use guidance, steps, sampler, spacing, eta, class, seed, timesteps, \
         schedule, strength, prompt or prompt_sr"
    )]
    UnknownSetting(String),
    #[error("an axis is written SETTING=VALUE,VALUE,... (e.g. guidance=0,1,2,4), got `{0}`")]
    Syntax(String),
    #[error("{setting:?} = `{value}`: {why}")]
    Value { setting: GridSetting, value: String, why: String },
    #[error("a grid of {0} cells is too large (at most {MAX_GRID_CELLS})")]
    TooLarge(usize),
    #[error("both axes vary {0:?}: pick two different settings")]
    SameSetting(GridSetting),
}

/// One axis: a setting and the values it takes, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridAxis {
    pub setting: GridSetting,
    pub values: Vec<String>,
}

impl FromStr for GridAxis {
    type Err = GridError;

    /// `guidance=0,1,2,4`; prompts, which may hold commas, `prompt=dark boot|light boot` (commas separate
    /// them where there is no `|`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, values) = s.split_once('=').ok_or_else(|| GridError::Syntax(s.to_owned()))?;
        let setting: GridSetting = name.parse()?;
        let separator = if setting.takes_prompts() && values.contains('|') { '|' } else { ',' };
        let values: Vec<String> =
            values.split(separator).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(GridError::Syntax(s.to_owned()));
        }
        Ok(Self { setting, values })
    }
}

impl GridAxis {
    /// The axis's label, e.g. "guidance".
    pub fn title(&self) -> &'static str {
        self.setting.name()
    }
}

/// Every cell's request, row-major: row j takes y's j-th value, column i x's i-th value.
pub fn grid_requests(base: &GenerateRequest, x: &GridAxis, y: &GridAxis) -> Result<Vec<GenerateRequest>, GridError> {
    if x.setting == y.setting {
        return Err(GridError::SameSetting(x.setting));
    }
    let cells = x.values.len() * y.values.len();
    if cells > MAX_GRID_CELLS {
        return Err(GridError::TooLarge(cells));
    }
    let mut requests = Vec::with_capacity(cells);
    for y_value in &y.values {
        let row = y.apply_on_axis(base, y_value)?;
        for x_value in &x.values {
            let mut request = x.apply_on_axis(&row, x_value)?;
            // One image per cell: the first of the seed's batch, the same x_T in every cell.
            request.batch = 1;
            requests.push(request);
        }
    }
    Ok(requests)
}

/// The `n` requests of an interpolation strip from `base` (one image each): u = 0, 1/(n-1), ..., 1 of the
/// way to `seed_b`'s noise and/or `class_b`'s context (a text model: `prompt_b`'s).
pub fn interpolation_requests(
    base: &GenerateRequest,
    seed_b: Option<u64>,
    class_b: Option<usize>,
    prompt_b: Option<&str>,
    n: usize,
) -> Vec<GenerateRequest> {
    let n = n.max(2);
    (0..n)
        .map(|k| GenerateRequest {
            batch: 1,
            interpolate: Some(super::generate::Interpolate {
                u: k as f64 / (n - 1) as f64,
                seed_b,
                class_b,
                prompt_b: prompt_b.map(str::to_owned),
            }),
            ..base.clone()
        })
        .collect()
}

/// What conditioned `request`'s run, as every caption and title of a run says it: a text model's prompt in
/// quotes, with `not "…"` for its negative prompt ("empty prompt" for none: the unconditional model), or
/// else its class (with Fashion-MNIST's name for a built-in model's) or "any class"; an interpolation adds
/// where u = 1 goes. A request carries a prompt only for a text model, which then ignores the class.
pub fn conditioning_caption(request: &GenerateRequest) -> String {
    let class = |c: usize| match crate::data::FASHION_MNIST_CLASSES.get(c).filter(|_| request.model.is_built_in()) {
        Some(name) => format!("class {c} ({name})"),
        None => format!("class {c}"),
    };
    let mut caption = match &request.prompt {
        Some(p) if p.text.trim().is_empty() && p.negative.trim().is_empty() => "empty prompt".to_string(),
        Some(p) if p.negative.trim().is_empty() => format!("\"{}\"", p.text.trim()),
        Some(p) => format!("\"{}\", not \"{}\"", p.text.trim(), p.negative.trim()),
        None => request.class.map_or_else(|| "any class".to_string(), class),
    };
    if let Some(i) = &request.interpolate {
        let towards = match (&request.prompt, &i.prompt_b, i.class_b) {
            (Some(_), Some(b), _) => Some(format!("\"{}\"", b.trim())),
            (None, _, Some(b)) => Some(class(b)),
            _ => None,
        };
        if let Some(towards) = towards {
            caption = format!("{caption} -> {towards} at u = {:.2}", i.u);
        }
    }
    caption
}

/// The part of a grid PNG's settings text beside its `request` (the base request, which "Open settings
/// from PNG…" restores): both axes, and every cell's request with its place.
pub fn grid_settings_json(x: &GridAxis, y: &GridAxis, cells: &[GenerateRequest]) -> serde_json::Value {
    let columns = x.values.len().max(1);
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .enumerate()
        .map(|(i, request)| serde_json::json!({ "column": i % columns, "row": i / columns, "request": request }))
        .collect();
    serde_json::json!({ "grid": { "x": x, "y": y, "cells": cells } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::Sampler;

    fn base() -> GenerateRequest {
        GenerateRequest {
            model: "m".into(),
            schedule: BetaSchedule::cosine(1000),
            sampler: Sampler::ddim(50, 0.0),
            seed: 3,
            batch: 16,
            class: Some(2),
            prompt: None,
            guidance: 2.0,
            guidance_interval: None,
            guidance_method: Default::default(),
            init: None,
            interpolate: None,
            branch: None,
        }
    }

    #[test]
    fn a_caption_names_what_conditioned_the_run() {
        use crate::run::generate::{Interpolate, PromptRequest};
        let built_in = GenerateRequest { model: crate::model::ModelId::default_built_in(), class: Some(7), ..base() };
        assert_eq!(conditioning_caption(&built_in), "class 7 (Sneaker)");
        assert_eq!(conditioning_caption(&base()), "class 2", "a model of unknown classes: the number");
        assert_eq!(conditioning_caption(&GenerateRequest { class: None, ..base() }), "any class");
        let prompt = |text: &str, negative: &str| GenerateRequest {
            prompt: Some(PromptRequest { text: text.into(), negative: negative.into() }),
            ..built_in.clone()
        };
        assert_eq!(conditioning_caption(&prompt("a dark large sneaker", "")), "\"a dark large sneaker\"");
        assert_eq!(conditioning_caption(&prompt("a sneaker", "light")), "\"a sneaker\", not \"light\"");
        assert_eq!(conditioning_caption(&prompt(" ", "")), "empty prompt");
        let towards = |class_b, prompt_b: Option<&str>| {
            Some(Interpolate { u: 0.5, seed_b: None, class_b, prompt_b: prompt_b.map(str::to_owned) })
        };
        let strip = GenerateRequest { interpolate: towards(None, Some("light bag")), ..prompt("dark bag", "") };
        assert_eq!(conditioning_caption(&strip), "\"dark bag\" -> \"light bag\" at u = 0.50");
        let strip = GenerateRequest { interpolate: towards(Some(3), None), ..base() };
        assert_eq!(conditioning_caption(&strip), "class 2 -> class 3 at u = 0.50");
    }

    #[test]
    fn axes_parse_and_cells_are_row_major() {
        let x: GridAxis = "guidance=0,1,2,4".parse().unwrap();
        let y: GridAxis = "steps=10, 20,50".parse().unwrap();
        let cells = grid_requests(&base(), &x, &y).unwrap();
        assert_eq!(cells.len(), 12);
        assert_eq!((cells[1].guidance, cells[1].sampler.steps), (1.0, 10));
        assert_eq!((cells[11].guidance, cells[11].sampler.steps), (4.0, 50));
        assert!(cells.iter().all(|c| c.batch == 1 && c.seed == 3 && c.class == Some(2)));
    }

    #[test]
    fn every_setting_applies_and_bad_values_say_why() {
        let b = base();
        let apply = |s: GridSetting, v: &str| s.apply(&b, v).unwrap();
        assert_eq!(apply(GridSetting::Sampler, "DPM++ 2M").sampler.method, Method::DpmSolver2M);
        assert_eq!(apply(GridSetting::Spacing, "karras").sampler.spacing, Spacing::Karras);
        assert_eq!(apply(GridSetting::Eta, "0.5").sampler.eta, 0.5);
        assert_eq!(apply(GridSetting::Class, "any").class, None);
        assert_eq!(apply(GridSetting::Seed, "9").seed, 9);
        assert_eq!(apply(GridSetting::Timesteps, "200").schedule.steps, 200);
        assert_eq!(apply(GridSetting::Schedule, "linear").schedule, BetaSchedule::linear(1000));
        for (setting, value) in [
            (GridSetting::Guidance, "-1"),
            (GridSetting::Guidance, "NaN"),
            (GridSetting::Steps, "0"),
            (GridSetting::Sampler, "plms"),
        ] {
            let error = setting.apply(&b, value).unwrap_err().to_string();
            assert!(error.contains(value), "{error}");
        }
        assert!(matches!("colour=1".parse::<GridAxis>(), Err(GridError::UnknownSetting(_))));
        assert!(matches!("guidance".parse::<GridAxis>(), Err(GridError::Syntax(_))));
        assert!(matches!("guidance=".parse::<GridAxis>(), Err(GridError::Syntax(_))));
        let x: GridAxis = "seed=1,2".parse().unwrap();
        assert!(matches!(grid_requests(&b, &x, &x), Err(GridError::SameSetting(GridSetting::Seed))));
        let big: GridAxis =
            format!("seed={}", (0..11).map(|i| i.to_string()).collect::<Vec<_>>().join(",")).parse().unwrap();
        let y: GridAxis =
            format!("guidance={}", (0..10).map(|i| i.to_string()).collect::<Vec<_>>().join(",")).parse().unwrap();
        assert!(matches!(grid_requests(&b, &big, &y), Err(GridError::TooLarge(110))));
    }
}
