//! `tour --export`'s pictures: one per step of the tour, each made headless on the CPU by the library code
//! the window and the other subcommands use (the forward process, the posterior view, a run's frames and
//! "This step", cross-attention re-read, `run_images`, `eval::decided`, the 2-D lab, its recipes and its
//! solver bench), with the built-in models and small settings, so the whole export takes about two
//! minutes on two cores.

use std::rc::Rc;

use super::tour::{SAMPLING_STEP_SAMPLER, SAMPLING_STEP_SHOWN, window_live};
use super::tour_plots::{
    Series, YAxis, exact_answers_picture, lab2d_picture, line_plot, recipes_picture, schedule_picture,
};
use super::*;
use diffusion_lab::data::FASHION_MNIST_CLASSES;
use diffusion_lab::diffusion::equation::number_text;
use diffusion_lab::engine::ForwardSource;
use diffusion_lab::engine::forward::{
    ForwardX0, PosteriorView, TestSetCache, forward_image, forward_step, posterior_view,
};
use diffusion_lab::engine::{Frame, GenerateRequest};
use diffusion_lab::eval::decided::{DecidedOptions, continued_rows, rows_figure};
use diffusion_lab::images::GridLabels;
use diffusion_lab::lab2d::data::{PointData, Preset};
use diffusion_lab::model::denoise::DEFAULT_SAMPLER;
use diffusion_lab::run::explain::{AttentionInput, attention_of_run, explain_step, step_figure, step_text};
use diffusion_lab::tour::{self, StepId};

/// A step's picture: its file's name part ("forward" -> NN-forward.png), what it shows, and the picture.
pub(super) struct TourPicture {
    pub name: &'static str,
    pub caption: String,
    pub picture: Picture,
}

/// The window's starting class (T-shirt/top) and seed (app/state.rs `Settings::default`).
const CLASS: usize = 0;
pub(super) const SEED: u64 = 1;
/// The noise levels of the forward process's strip.
const FORWARD_TS: [usize; 5] = [100, 250, 500, 750, 1000];
/// Image pixels per picture pixel of the image grids.
const ZOOM: usize = 3;
/// The classes of the guidance and latent pictures, and the guidance scales side by side.
const SHOWN_CLASSES: [usize; 5] = [0, 1, 2, 7, 9];
const GUIDANCE_SCALES: [f64; 2] = [1.0, 3.0];
/// The prompts step's prompt and how many images of it.
const PROMPT: &str = "dark sneaker";
const PROMPT_IMAGES: usize = 4;

/// A built-in model opened on the CPU, with its id and the schedule it was trained around.
struct Model {
    id: ModelId,
    schedule: BetaSchedule,
    opened: OpenedModel,
}

impl Model {
    fn open(short_name: &str) -> anyhow::Result<Self> {
        let options = ModelOptions::cpu(short_name, None);
        let resolved = options.resolve()?;
        let opened = options.open(&resolved)?;
        Ok(Self { id: resolved.id.clone(), schedule: resolved.training_schedule(), opened })
    }

    fn device(&self) -> &Device {
        &self.opened.device.device
    }

    /// One image of `class` with `sampler` and guidance `w`, from the window's seed.
    fn request(&self, class: Option<usize>, sampler: Sampler, guidance: f64) -> GenerateRequest {
        GenerateRequest {
            model: self.id.clone(),
            schedule: self.schedule,
            sampler,
            seed: SEED,
            batch: 1,
            class,
            prompt: None,
            guidance,
            guidance_interval: None,
            guidance_method: Default::default(),
            init: None,
            interpolate: None,
            branch: None,
        }
    }

    /// One picture per entry of `classes` (`num_classes`: none) of `request`'s settings.
    fn images(&self, request: &GenerateRequest, classes: &[usize]) -> anyhow::Result<Vec<Picture>> {
        let OpenedModel { model, decoder, .. } = &self.opened;
        Ok(run_images(model, decoder.as_ref(), request, classes, self.device(), &|| ())?)
    }
}

/// What the pictures share: the models (opened when first needed), x_0 of the forward process, the
/// posterior view and the sampler's run (each made once, shown by two steps).
pub(super) struct Studio {
    models: Vec<(&'static str, Rc<Model>)>,
    x0: Option<(Vec<f32>, [usize; 4], String)>,
    posterior: Option<PosteriorView>,
    sampler_run: Option<(GenerateRequest, Vec<Frame>)>,
    points: PointData,
}

impl Studio {
    pub(super) fn new() -> anyhow::Result<Self> {
        let points = PointData::from_preset(Preset::Moons, diffusion_lab::lab2d::data::DEFAULT_POINTS, SEED);
        Ok(Self { models: Vec::new(), x0: None, posterior: None, sampler_run: None, points })
    }

    /// Step `id`'s picture.
    pub(super) fn picture(&mut self, id: StepId) -> anyhow::Result<TourPicture> {
        match id {
            StepId::Forward => self.forward(),
            StepId::ClosedForm => self.closed_form(),
            StepId::Schedule => Ok(schedule_picture()),
            StepId::Posterior => self.posterior(),
            StepId::Loss => self.loss(),
            StepId::SamplingStep => self.sampling_step(),
            StepId::Sampler => self.sampler(),
            StepId::CrossAttention => self.cross_attention(),
            StepId::Guidance => self.guidance(),
            StepId::Decided => self.decided(),
            StepId::Latent => self.latent(),
            StepId::Prompts => self.prompts(),
            StepId::Lab2d => lab2d_picture(&self.points),
            StepId::Recipes => recipes_picture(&self.points),
            StepId::ExactAnswers => exact_answers_picture(&self.points),
        }
    }

    /// The built-in model `short_name`, opened on first use.
    fn model(&mut self, short_name: &'static str) -> anyhow::Result<Rc<Model>> {
        if let Some((_, model)) = self.models.iter().find(|(name, _)| *name == short_name) {
            return Ok(model.clone());
        }
        let model = Rc::new(Model::open(short_name)?);
        self.models.push((short_name, model.clone()));
        Ok(model)
    }

    /// The forward process's x_0 as the window's Forward panel starts: test image 0 of Fashion-MNIST where
    /// the data set is installed, else (said in the label) a sample of the built-in pixel model.
    fn x0(&mut self) -> anyhow::Result<(Vec<f32>, [usize; 4], String)> {
        if let Some(x0) = &self.x0 {
            return Ok(x0.clone());
        }
        let model = self.model("fashion")?;
        let config = &model.opened.model.config;
        let (c, size) = (config.image_channels, config.image_size);
        let dir = data::fashion_mnist_dir();
        let source = ForwardSource::TestImage { dir: dir.clone(), index: 0 };
        let x0 = match forward_image(&source, size, c, &mut TestSetCache::default()) {
            Ok((values, label)) => (values, format!("Fashion-MNIST {label}")),
            Err(_) => {
                let request = model.request(Some(CLASS), DEFAULT_SAMPLER, DEFAULT_GUIDANCE);
                let OpenedModel { model: unet, decoder, device } = &model.opened;
                let frame = final_frame(unet, decoder.as_ref(), &request, &device.device)?;
                let values = frame.x_t[..c * size * size].to_vec();
                let why = format!("Fashion-MNIST is not in {}", dir.display());
                (values, format!("a sample of the built-in pixel model (class {CLASS}, seed {SEED}; {why})"))
            }
        };
        let x0 = (x0.0, [1, c, size, size], x0.1);
        self.x0 = Some(x0.clone());
        Ok(x0)
    }

    fn forward(&mut self) -> anyhow::Result<TourPicture> {
        let (x0, shape, label) = self.x0()?;
        let model = self.model("fashion")?;
        let schedule = window_live().schedule;
        let mut cells = vec![Some(gray(&x0, shape))];
        for t in FORWARD_TS {
            let (x_t, _) = forward_step(&x0, shape, schedule, t, SEED, model.device())?;
            cells.push(Some(gray(&x_t, shape)));
        }
        let columns = std::iter::once("x_0".to_string()).chain(FORWARD_TS.iter().map(|t| format!("t={t}"))).collect();
        let labels = strip_labels("cosine schedule", columns);
        Ok(TourPicture {
            name: "forward",
            caption: format!(
                "x_0 = {label}, and x_t at t = {}: each t has faded the image a little more and added more noise; at \
                 T = 1000 nothing of it is left.",
                list(&FORWARD_TS)
            ),
            picture: grid_picture(&cells, &labels),
        })
    }

    fn closed_form(&mut self) -> anyhow::Result<TourPicture> {
        let (x0, shape, label) = self.x0()?;
        let model = self.model("fashion")?;
        let live = window_live();
        let schedule = live.schedule.build()?;
        let (x_t, eps) = forward_step(&x0, shape, live.schedule, live.t, SEED, model.device())?;
        let (a, s) = (schedule.sqrt_alpha_bar[live.t - 1], schedule.sqrt_one_minus_alpha_bar[live.t - 1]);
        let cells = [Some(gray(&x0, shape)), Some(gray(&eps, shape)), Some(gray(&x_t, shape))];
        // Labels at the font's small size (they are longer than half a cell), so that the title fits.
        let columns = vec![format!("{a:.3} x_0"), format!("{s:.3} eps"), format!("= x_{}", live.t)];
        let title = "x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps";
        Ok(TourPicture {
            name: "closed-form",
            caption: format!(
                "One jump to t = {}: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε = {} x_0 + {} ε, with x_0 = {label} and ε \
                 drawn from seed {SEED} (ε shown clipped to [-1, 1]).",
                live.t,
                number_text(a),
                number_text(s)
            ),
            picture: grid_picture(&cells, &strip_labels(title, columns)),
        })
    }

    /// The posterior view at the window's t, with L_{t-1} across t (made once, for two steps).
    fn posterior_view(&mut self) -> anyhow::Result<PosteriorView> {
        if let Some(view) = &self.posterior {
            return Ok(view.clone());
        }
        let (values, shape, _) = self.x0()?;
        let model = self.model("fashion")?;
        let x0 = ForwardX0 { values, shape, latent_model: None };
        let live = window_live();
        let view = posterior_view(&x0, &model.opened.model, live.schedule, live.t, SEED, true, model.device())?;
        self.posterior = Some(view.clone());
        Ok(view)
    }

    fn posterior(&mut self) -> anyhow::Result<TourPicture> {
        let view = self.posterior_view()?;
        let (x0, shape, label) = self.x0()?;
        let model = self.model("fashion")?;
        let (x_t, _) = forward_step(&x0, shape, window_live().schedule, view.t, SEED, model.device())?;
        let cells = [&x0, &x_t, &view.posterior_mean, &view.model_mean].map(|v| Some(gray(v, shape)));
        let columns = ["x_0", "x_t", "mu~ (true)", "mu_theta"].map(String::from).to_vec();
        let title = format!("q(x_{{t-1}} | x_t, x_0) at t = {}", view.t);
        let kl = view.kl_bits.map_or(String::new(), |kl| format!("; their gap L_{{t-1}} = {kl:.4} bits/dim"));
        Ok(TourPicture {
            name: "posterior",
            caption: format!(
                "At t = {}: x_0 ({label}), x_t, the true posterior mean μ̃_t = {} x_0 + {} x_t, and the model's mean \
                 μ_θ from its x̂_0 (the built-in pixel model, no class){kl}.",
                view.t,
                number_text(view.coef_x0),
                number_text(view.coef_xt)
            ),
            picture: grid_picture(&cells, &strip_labels(&title, columns)),
        })
    }

    fn loss(&mut self) -> anyhow::Result<TourPicture> {
        let view = self.posterior_view()?;
        let (peak_t, peak) = view.curve.iter().fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { *b } else { a });
        let least = view.curve.iter().map(|(_, kl)| *kl).fold(f64::INFINITY, f64::min);
        // On a log scale: L_{t-1} spans decades from the clean end to the noisy one.
        let points = view.curve.iter().map(|(t, kl)| (*t as f64, kl.max(1e-12).log10())).collect();
        let series = [Series { label: "L_(t-1) in bits/dim, log scale".into(), color: [200, 40, 40], points }];
        let title = "L_(t-1) across t: where mu_theta misses mu~";
        let picture = line_plot(title, "t", &series, 1000.0, &YAxis::log10(least, peak));
        Ok(TourPicture {
            name: "loss",
            caption: format!(
                "The bound's term L_{{t-1}} = KL(q(x_{{t-1}} | x_t, x_0) || p_θ(x_{{t-1}} | x_t)) of the same image \
                 at {} values of t from 2 to T (the built-in pixel model), on a log scale: largest, {peak:.4} \
                 bits/dim, at t = {peak_t}.",
                view.curve.len()
            ),
            picture,
        })
    }

    fn sampling_step(&mut self) -> anyhow::Result<TourPicture> {
        let model = self.model("fashion")?;
        let request = model.request(Some(CLASS), SAMPLING_STEP_SAMPLER, DEFAULT_GUIDANCE);
        let OpenedModel { model: unet, decoder, device } = &model.opened;
        let step = SAMPLING_STEP_SHOWN;
        let frames = super::explain::run_frames(unet, decoder.as_ref(), &request, &device.device, Some(step))?;
        let (Some(previous), Some(frame)) = (frames.get(step - 1), frames.get(step)) else {
            bail!("the run stopped before step {step}");
        };
        let explained = explain_step(&request, unet.x0_bound(), previous, frame)?;
        let text = step_text(&explained);
        Ok(TourPicture {
            name: "sampling-step",
            caption: format!(
                "Step {step} of {} (class {CLASS}, seed {SEED}, w = {}) taken apart as `diffusion-lab explain` \
                 writes it: every term of the update as a picture with the coefficient the step used.",
                request.sampler.label(),
                number_text(DEFAULT_GUIDANCE)
            ),
            picture: step_figure(&explained, &text, ZOOM),
        })
    }

    /// DDIM η = 0 in the sampler task's number of steps: the request and every frame (made once).
    fn sampler_run(&mut self) -> anyhow::Result<(Rc<Model>, GenerateRequest, Vec<Frame>)> {
        let model = self.model("fashion")?;
        if let Some((request, frames)) = &self.sampler_run {
            return Ok((model, request.clone(), frames.clone()));
        }
        let request = model.request(Some(CLASS), Sampler::ddim(tour::FEW_STEPS, 0.0), DEFAULT_GUIDANCE);
        let OpenedModel { model: unet, decoder, device } = &model.opened;
        let frames = super::explain::run_frames(unet, decoder.as_ref(), &request, &device.device, None)?;
        self.sampler_run = Some((request.clone(), frames.clone()));
        Ok((model, request, frames))
    }

    fn sampler(&mut self) -> anyhow::Result<TourPicture> {
        let (_, request, frames) = self.sampler_run()?;
        // x_T's frame has no x̂_0 yet: its cell stays blank.
        let x0 = frames.iter().map(|f| {
            let [_, c, h, w] = f.shape;
            (f.index > 0).then(|| gray(&f.x0_pred[..c * h * w], [1, c, h, w]))
        });
        let cells: Vec<Option<Picture>> = frames.iter().map(|f| f.pictures().into_iter().next()).chain(x0).collect();
        let columns = frames.iter().map(|f| if f.index == 0 { "x_T".into() } else { format!("t={}", f.t) }).collect();
        let labels = GridLabels {
            x_title: request.sampler.label().replace('η', "eta"),
            columns,
            y_title: String::new(),
            rows: vec!["x_t".into(), "x0 guess".into()],
        };
        Ok(TourPicture {
            name: "sampler",
            caption: format!(
                "A whole run of {} from x_T (class {CLASS}, seed {SEED}): x_t after each step (top) and the \
                 network's x̂_0 at that step (below). No fresh noise is added: the path is deterministic.",
                request.sampler.label()
            ),
            picture: grid_picture(&cells, &labels),
        })
    }

    fn cross_attention(&mut self) -> anyhow::Result<TourPicture> {
        let (model, request, frames) = self.sampler_run()?;
        let inputs: Vec<AttentionInput> = frames
            .windows(2)
            .map(|pair| AttentionInput {
                frame_index: pair[1].index,
                log_snr: pair[0].log_snr,
                x_t: pair[0].x_t.clone(),
            })
            .collect();
        let steps = attention_of_run(&model.opened.model, &request, &inputs, model.device())?;
        let last = frames.last().context("the run has no frames")?;
        let image = last.pictures().into_iter().next().context("the run ended without an image")?;
        let layers = steps.first().map_or(0, |s| s.layers.len());
        let tokens = steps.first().and_then(|s| s.layers.first()).map_or(0, |l| l.tokens).min(4);
        let mut cells = Vec::new();
        for token in 0..tokens {
            cells.push(Some(to_rgb(&image)));
            for layer in 0..layers {
                // Summed over the run's steps, as the window's "summed over the run" (DAAM's way).
                let first = &steps[0].layers[layer];
                let mut map = vec![0f32; first.height * first.width];
                for step in &steps {
                    for (m, v) in map.iter_mut().zip(step.layers[layer].map(0, token, None)) {
                        *m += v;
                    }
                }
                cells.push(Some(heat_overlay(&image, &map, (first.height, first.width))));
            }
        }
        let mut columns = vec!["image".to_string()];
        columns.extend(steps[0].layers.iter().map(|l| l.layer.clone()));
        let labels = GridLabels {
            x_title: "cross-attention summed over the run".into(),
            columns,
            y_title: String::new(),
            rows: (0..tokens).map(|t| format!("token {}", t + 1)).collect(),
        };
        Ok(TourPicture {
            name: "cross-attention",
            caption: format!(
                "Where the picture looked at the class: for each of τ_θ(y)'s tokens (rows) and each cross-attention \
                 layer (columns), the weight softmax(Q Kᵀ / sqrt(d)) gave that token, mean over heads, summed over \
                 the {} steps of the run above, from its least (no red) to its most (red).",
                steps.len()
            ),
            picture: grid_picture(&cells, &labels),
        })
    }

    fn guidance(&mut self) -> anyhow::Result<TourPicture> {
        let model = self.model("fashion")?;
        let mut cells = Vec::new();
        for w in GUIDANCE_SCALES {
            let request = model.request(None, DEFAULT_SAMPLER, w);
            cells.extend(model.images(&request, &SHOWN_CLASSES)?.into_iter().map(Some));
        }
        let labels = GridLabels {
            x_title: "class".into(),
            columns: class_names(&SHOWN_CLASSES),
            y_title: "guidance".into(),
            rows: GUIDANCE_SCALES.iter().map(|w| format!("w = {w}")).collect(),
        };
        Ok(TourPicture {
            name: "guidance",
            caption: format!(
                "The same x_T (seed {SEED}) with classifier-free guidance w = 1 (the conditional model alone, top) \
                 and w = 3 (below), {}: guidance exaggerates what makes each class that class.",
                DEFAULT_SAMPLER.label()
            ),
            picture: grid_picture(&cells, &labels),
        })
    }

    fn decided(&mut self) -> anyhow::Result<TourPicture> {
        let model = self.model("fashion")?;
        let options = DecidedOptions {
            runs: 1,
            continuations: 6,
            sampler: SAMPLING_STEP_SAMPLER,
            class: Some(tour::DECIDED_CLASS),
            branch_class: Some(tour::DECIDED_BRANCH_CLASS),
            guidance: DEFAULT_GUIDANCE,
            seed: SEED,
            points: 8,
        };
        let schedule = model.schedule.build()?;
        diffusion_lab::eval::decided::check(&options, &schedule)?;
        let OpenedModel { model: unet, decoder, device } = &model.opened;
        // The window's judge: each end's class in the row captions, as the tour's step reads them.
        let checkpoint = diffusion_lab::model::checkpoint::Checkpoint::from_bytes(
            diffusion_lab::model::embedded::FASHION_CLASSIFIER,
        )?;
        let judge = diffusion_lab::eval::Judge::from_checkpoint(&checkpoint, &device.device)?;
        let rows = continued_rows(unet, decoder.as_ref(), Some(&judge), &schedule, &options, &device.device, &|| true)?;
        let decided = rows
            .end_class
            .and_then(|end| diffusion_lab::eval::decided::decided_from(&rows.rows, end).map(|k| (end, k)));
        let verdict = match decided {
            Some((end, k)) => format!(
                " Judged by the Fashion-MNIST classifier: from row {} (t = {}) on, every row ends mostly as the run's \
                 own {}.",
                k + 1,
                rows.rows[k].t,
                diffusion_lab::eval::decided::class_word(end, 10)
            ),
            None => String::new(),
        };
        let (cells, labels) = rows_figure(&rows, false);
        Ok(TourPicture {
            name: "decided",
            caption: format!(
                "One run of {} asking for class {} (pullover), kept at {} of its steps (x_t, left) and finished {} \
                 times from there with fresh noise asking for class {} (sneaker) (right), as `diffusion-lab decided \
                 --rows --branch-class {}` draws it: from noisy x_t the branches become sneakers; from later steps \
                 they stay the run's garment.{verdict}",
                options.sampler.label(),
                tour::DECIDED_CLASS,
                rows.rows.len(),
                options.continuations,
                tour::DECIDED_BRANCH_CLASS,
                tour::DECIDED_BRANCH_CLASS
            ),
            picture: images::scaled(&images::labelled_grid(&cells, &labels, 2), 2),
        })
    }

    fn latent(&mut self) -> anyhow::Result<TourPicture> {
        let model = self.model("latent")?;
        let request = model.request(None, DEFAULT_SAMPLER, DEFAULT_GUIDANCE);
        let cells: Vec<Option<Picture>> = model.images(&request, &SHOWN_CLASSES)?.into_iter().map(Some).collect();
        let labels = strip_labels("the latent model, decoded", class_names(&SHOWN_CLASSES));
        let config = &model.opened.model.config;
        Ok(TourPicture {
            name: "latent",
            caption: format!(
                "The built-in latent model: diffusion on {}x{}x{} latents z, {} (w = {}), each final ẑ_0 turned \
                 into pixels by the autoencoder's decoder D.",
                config.image_channels,
                config.image_size,
                config.image_size,
                DEFAULT_SAMPLER.label(),
                number_text(DEFAULT_GUIDANCE)
            ),
            picture: grid_picture(&cells, &labels),
        })
    }

    fn prompts(&mut self) -> anyhow::Result<TourPicture> {
        let model = self.model("fashion-text")?;
        let config = &model.opened.model.config;
        let prompt = PromptRequest { text: PROMPT.into(), negative: String::new() };
        let request =
            GenerateRequest { prompt: Some(prompt), ..model.request(None, DEFAULT_SAMPLER, DEFAULT_GUIDANCE) };
        let classes = vec![config.num_classes; PROMPT_IMAGES];
        let cells: Vec<Option<Picture>> = model.images(&request, &classes)?.into_iter().map(Some).collect();
        let columns = (0..PROMPT_IMAGES).map(|i| format!("#{}", i + 1)).collect();
        let labels = strip_labels(&format!("\"{PROMPT}\""), columns);
        Ok(TourPicture {
            name: "prompts",
            caption: format!(
                "The built-in text model asked for \"{PROMPT}\": {PROMPT_IMAGES} images from seed {SEED}, {} (w = {}).",
                DEFAULT_SAMPLER.label(),
                number_text(DEFAULT_GUIDANCE)
            ),
            picture: grid_picture(&cells, &labels),
        })
    }
}

/// Values in [-1, 1] of one image of `shape` ([1, c, h, w]) as a picture.
fn gray(values: &[f32], [_, c, h, w]: [usize; 4]) -> Picture {
    images::pictures_from_batch(values, 1, c, h, w).pop().unwrap_or(Picture {
        width: 0,
        height: 0,
        channels: 1,
        pixels: Vec::new(),
    })
}

/// A gray picture as RGB.
fn to_rgb(picture: &Picture) -> Picture {
    if picture.channels == 3 {
        return picture.clone();
    }
    let pixels = picture.pixels.iter().flat_map(|v| [*v, *v, *v]).collect();
    Picture { channels: 3, pixels, ..picture.clone() }
}

/// `image` (gray) dimmed, with `map` (a `(rows, columns)` grid of weights) stretched over it in red, from
/// its smallest weight (none) to its largest (full red): the weights are nearly even, their differences
/// are what the map shows.
fn heat_overlay(image: &Picture, map: &[f32], (rows, columns): (usize, usize)) -> Picture {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let range = (map.iter().copied().fold(f32::NEG_INFINITY, f32::max) - min).max(1e-12);
    let (w, h) = (image.width, image.height);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let m = (map[(y * rows / h) * columns + x * columns / w] - min) / range;
            let g = f32::from(image.pixels[(y * w + x) * image.channels]) * 0.5;
            let red = g * (1.0 - m) + 255.0 * m;
            pixels.extend([red, g * (1.0 - m), g * (1.0 - m)].map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    Picture { width: w, height: h, channels: 3, pixels }
}

/// Labels of a single row of pictures under `title`.
fn strip_labels(title: &str, columns: Vec<String>) -> GridLabels {
    GridLabels { x_title: title.into(), columns, y_title: String::new(), rows: Vec::new() }
}

/// Cells enlarged by [`ZOOM`] in a labelled grid.
fn grid_picture(cells: &[Option<Picture>], labels: &GridLabels) -> Picture {
    let cells: Vec<Option<Picture>> = cells.iter().map(|c| c.as_ref().map(|p| images::scaled(p, ZOOM))).collect();
    images::labelled_grid(&cells, labels, 4)
}

fn class_names(classes: &[usize]) -> Vec<String> {
    classes.iter().map(|c| FASHION_MNIST_CLASSES.get(*c).map_or(format!("class {c}"), |n| n.to_string())).collect()
}

pub(super) fn list(values: &[usize]) -> String {
    values.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}
