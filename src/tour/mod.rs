//! THE TOUR: the seed's story told in order, one short step at a time — what each step says, its formula,
//! the numbers that formula takes from the settings of the moment, the control it points at and the small
//! task it ends with. Plain data and arithmetic (no UI, no files, no models): the window's Tour panel
//! (`app/tour/`) drives the real window from it and checks its tasks from the app's own state; `tour --list`
//! and `tour --export` (cli/tour.rs) print and write the same steps.

use crate::diffusion::equation::{equation, number_text};
use crate::diffusion::guidance::Guidance;
use crate::diffusion::{BetaSchedule, Sampler};

/// The steps of the story, in the order they are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepId {
    Forward,
    ClosedForm,
    Schedule,
    Posterior,
    Loss,
    SamplingStep,
    Sampler,
    CrossAttention,
    Guidance,
    Decided,
    Latent,
    Prompts,
    Lab2d,
    Recipes,
    ExactAnswers,
}

/// A small task that ends a step: what to do, what the app says when it is done, and the hint after a
/// wrong try. The app judges it from its own state (app/tour/tasks.rs); `threshold`s are named here so the
/// text and the check read the same number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Task {
    pub ask: &'static str,
    pub done: &'static str,
    pub hint: &'static str,
}

/// One step of the story.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub id: StepId,
    /// A short title, e.g. "The forward process".
    pub title: &'static str,
    /// The step's formula in symbols.
    pub formula: &'static str,
    /// The story of the step in our own words: two or three sentences.
    pub story: &'static str,
    /// The step in one plain-language line.
    pub plain: &'static str,
    /// The control of the window the step talks about, by its label ("the t slider of the Forward process").
    pub look_at: &'static str,
    pub task: Option<Task>,
}

/// The closed form's task: scrub t until the noise outweighs the image (√ᾱ_t below this).
pub const SIGNAL_BELOW: f64 = 0.5;
/// The schedule's task: make the signal left at T, √ᾱ_T, smaller than this.
pub const TERMINAL_SIGNAL_BELOW: f64 = 0.01;
/// The β_end the schedule step starts from (linear, T = 1000): √ᾱ_T ≈ 0.36, far from pure noise.
pub const SCHEDULE_START_BETA_END: f64 = 0.004;
/// The guidance task: an interval whose lowest λ is at least this (less noise than signal) counts as "only at
/// low noise".
pub const LOW_NOISE_FROM_LOG_SNR: f64 = 0.0;
/// The decided step's run: asked for a pullover (class 2), its branches asked for a sneaker (class 7).
pub const DECIDED_CLASS: usize = 2;
pub const DECIDED_BRANCH_CLASS: usize = 7;
/// The sampler task: a finished run of at most this many steps with a method that adds no noise.
pub const FEW_STEPS: usize = 10;

/// Every step of the tour, in order.
pub const STEPS: [Step; 15] = [
    Step {
        id: StepId::Forward,
        title: "The forward process",
        formula: "q(x_t | x_{t-1}) = N(sqrt(1 - β_t) x_{t-1}, β_t I)",
        story: "Diffusion starts by destroying an image on purpose. Each step shrinks the image a little and adds a \
                little Gaussian noise: β_t is how much noise step t adds. A thousand such small steps turn any \
                picture into noise.",
        plain: "Every step fades the picture slightly and sprinkles in fresh noise.",
        look_at: "the Forward process panel: x_0 on the left, x_t beside it",
        task: None,
    },
    Step {
        id: StepId::ClosedForm,
        title: "Any t in one jump",
        formula: "q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I),  x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε",
        story: "Gaussian steps add up to one Gaussian: x_t is the clean image scaled by sqrt(ᾱ_t) plus noise \
                scaled by sqrt(1 - ᾱ_t), where ᾱ_t is the product of every (1 - β_s) up to t. Training uses this \
                to noise an image to any level at once.",
        plain: "How much image and how much noise are in x_t depends only on t: no need to run the steps.",
        look_at: "the t slider of the Forward process panel",
        task: Some(Task {
            ask: "Scrub t until the noise outweighs the image: the signal coefficient sqrt(ᾱ_t) below 0.5.",
            done: "Right: past this t, sqrt(1 - ᾱ_t) > sqrt(ᾱ_t) — there is more noise than image in x_t.",
            hint: "Drag t to the right: sqrt(ᾱ_t) falls as t grows.",
        }),
    },
    Step {
        id: StepId::Schedule,
        title: "The β schedule and what is left at T",
        formula: "ᾱ_T = prod_{t=1..T} (1 - β_t),  x_T = sqrt(ᾱ_T) x_0 + sqrt(1 - ᾱ_T) ε",
        story: "The schedule decides how fast the image fades. Sampling starts from pure noise, so x_T must hold \
                (almost) nothing of the image: if sqrt(ᾱ_T) is not tiny, training saw images at T that sampling \
                never gives it. This step sets a linear schedule whose β_end is too small.",
        plain: "The noise must win completely by the last step, or sampling starts from the wrong place.",
        look_at: "the β schedule's sliders (β_end) and the ᾱ_t plot",
        task: Some(Task {
            ask: "Change β_end until sqrt(ᾱ_T), the signal left at T, is below 0.01.",
            done: "Right: x_T is now pure noise for all practical purposes.",
            hint: "Raise β_end: every β_t grows, so ᾱ_T, their product's complement, shrinks.",
        }),
    },
    Step {
        id: StepId::Posterior,
        title: "The reverse process: undo one step",
        formula: "q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I),  μ̃_t = c₀ x_0 + c₁ x_t,  β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t",
        story: "Going back one step is easy if we know x_0: the posterior is a Gaussian whose mean mixes x_0 and x_t \
                with c₀ = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) and c₁ = sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t). We do not \
                know x_0 when sampling — a network will guess it.",
        plain: "If you knew the clean image, stepping back would be a weighted average plus a bit of noise.",
        look_at: "the posterior q(x_{t-1} | x_t, x_0) in the Forward process panel",
        task: Some(Task {
            ask: "Find a t where the posterior leans on x_0 more than on x_t: c₀ > c₁.",
            done: "Right: near the clean end each step moves a long way toward x_0.",
            hint: "Look near the clean end: scrub t toward 1.",
        }),
    },
    Step {
        id: StepId::Loss,
        title: "What the network learns",
        formula: "L = E_{t, x_0, ε} || ε - ε_θ(sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, t) ||²",
        story: "The network ε_θ sees x_t and its noise level and guesses the noise in it; from that guess \
                x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t). Training draws an image, a t and an ε, and asks for ε \
                back. The loss is not the same at every noise level: the posterior panel shows μ_θ beside μ̃ and \
                their gap L_{t-1} at every t.",
        plain: "The model is trained to spot the noise in a noisy picture, at every amount of noise.",
        look_at: "μ_θ beside μ̃ and L_{t-1} across t in the Forward process panel",
        task: Some(Task {
            ask: "Find where the model's step is hardest: scrub t to within 10 % of T of the largest L_{t-1}.",
            done: "Right: this is where the model's mean is furthest from the true posterior's.",
            hint: "Read the L_{t-1} across t plot: move t to its peak.",
        }),
    },
    Step {
        id: StepId::SamplingStep,
        title: "One sampling step taken apart",
        formula: "x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t),  x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'} - σ²) ε̂ + σ z",
        story: "Sampling puts the network's guess x̂_0 where the posterior needs x_0, then adds back the right amount \
                of noise for the next level: part predicted (ε̂), part fresh (z; DDIM's η = 1 here, as DDPM). \
                \"This step\" beside the picture takes the step on screen apart: each term as a picture, each \
                coefficient with the number the step used.",
        plain: "Each step guesses the clean image, then moves a little toward it.",
        look_at: "\"This step\" beside the picture, and the timeline below it",
        task: Some(Task {
            ask: "Scrub the timeline to a step where the x̂_0 term weighs more than every other term (ε̂, the fresh noise z).",
            done: "Right: from here on the step trusts the network's guess more than the noisy image.",
            hint: "Move toward the end of the run (the right of the timeline): the weight on x̂_0 grows.",
        }),
    },
    Step {
        id: StepId::Sampler,
        title: "Sampling to the end, and the sampler",
        formula: "x_T ~ N(0, I) → x_{t_N} → … → x_0,  DDIM (η = 0): x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'}) ε̂",
        story: "DDPM takes all T steps. Other samplers jump: DDIM with η = 0 adds no fresh noise and follows one \
                smooth path, DPM++ 2M reuses the previous step's x̂_0 to step further. Fewer steps, fewer network \
                evaluations, nearly the same picture.",
        plain: "The sampler decides how many steps to take and how big each one is.",
        look_at: "the Sampler picker and its steps",
        task: Some(Task {
            ask: "Make a finished image in 10 steps or fewer with a sampler that adds no noise (DDIM η = 0, Heun, \
                  DPM++ 2M, Euler).",
            done: "Right: a deterministic sampler gets there in a handful of steps.",
            hint: "Pick DDIM with η = 0 or DPM++ 2M, set the steps to 10 or fewer, and press Generate.",
        }),
    },
    Step {
        id: StepId::CrossAttention,
        title: "Asking for a class: cross-attention",
        formula: "Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,  Q = W_Q φ(x_t),  K = W_K τ_θ(y),  V = W_V τ_θ(y)",
        story: "The class y becomes a few vectors τ_θ(y). Inside the UNet every pixel's features ask them a question \
                (Q) and read an answer (V) weighted by how well the key (K) matches. The overlay shows those \
                weights: where the picture looks at the class.",
        plain: "Each part of the image looks up the word it was given and takes what it needs.",
        look_at: "the cross-attention overlay and its layer / token / head pickers",
        task: Some(Task {
            ask: "Show the attention summed over all steps of the run (DAAM's way), not one step's.",
            done: "Right: summed over the run, the map shows where the class mattered overall.",
            hint: "Press Generate if no run is on screen, then tick \"Summed over steps\" under the picture.",
        }),
    },
    Step {
        id: StepId::Guidance,
        title: "Classifier-free guidance",
        formula: "ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø)",
        story: "The network runs twice per step: once told the class (ε̂_y), once told nothing (ε̂_Ø). Guidance \
                steps past the conditional answer by w. The overlay |ε̂_y - ε̂_Ø| shows where the class changed the \
                answer. Guidance can be limited to a range of noise levels λ.",
        plain: "Guidance exaggerates the difference the class makes.",
        look_at: "the Guidance slider and its λ interval",
        task: Some(Task {
            ask: "Make guidance act only at low noise: an interval whose lowest λ is 0 or more, with w above 1.",
            done: "Right: at high noise this run is the conditional model alone; guidance only shapes the details.",
            hint: "Tick \"Guide only within a λ interval\" and set \"guide from λ\" to 0 or more.",
        }),
    },
    Step {
        id: StepId::Decided,
        title: "When is the image decided?",
        formula: "x_t kept, then x_{t'} = c₀ x̂_0 + c₁ x_t + σ z with fresh z, asking for another class",
        story: "Take one run's x_t and finish it again from there with fresh noise, this time asking for a \
                sneaker. Near pure noise the branch becomes a sneaker; past some step it stays the pullover the \
                run began: the garment was already decided. The rows below are the app's own measurement.",
        plain: "Early steps choose what the picture is; later steps only refine it.",
        look_at: "Compare: \"When is it decided?\" and its rows",
        task: Some(Task {
            ask: "Generate the rows, then set \"my answer\" to the first row from which every branch asked for a \
                  sneaker still ends as the pullover.",
            done: "Right: from this row on, the run's own garment wins over what the branch asks for.",
            hint: "Read each row's judged classes: find the first row after which every row ends as pullover.",
        }),
    },
    Step {
        id: StepId::Latent,
        title: "Latent diffusion",
        formula: "z = E(x),  z_t = sqrt(ᾱ_t) z + sqrt(1 - ᾱ_t) ε,  x̂_0 = D(predicted z_0)",
        story: "An autoencoder squeezes the image into a smaller latent z; the same diffusion runs on z, and the \
                decoder D turns the result back into pixels. The window shows D(z_t) and the latent channels \
                themselves.",
        plain: "Denoise a small summary of the picture instead of every pixel, then expand it.",
        look_at: "the model picker (latent) and Show: latent channels",
        task: Some(Task {
            ask: "Generate with the latent model and show its latent channels z_t.",
            done: "Right: these few numbers per image are all the diffusion sees.",
            hint: "Press Generate, then choose Show: latent channels above the picture.",
        }),
    },
    Step {
        id: StepId::Prompts,
        title: "Text prompts",
        formula: "τ_θ(\"dark sneaker\") = transformer(start, dark, sneaker),  cross-attention to each word",
        story: "A text model reads a prompt word by word; its context vectors take the class's place in \
                cross-attention, so each word gets its own attention map. A negative prompt takes ε̂_Ø's place in \
                guidance.",
        plain: "Words become vectors, and the picture attends to each word.",
        look_at: "the prompt box",
        task: Some(Task {
            ask: "Generate from a prompt of two or more words the model knows.",
            done: "Right: click a word under the picture to see where it was looked at.",
            hint: "Type e.g. \"dark sneaker\" (unknown words are named under the box) and press Generate.",
        }),
    },
    Step {
        id: StepId::Lab2d,
        title: "The 2-D lab: the blob flows back into the data",
        formula: "x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε on points,  ε* = -sqrt(1 - ᾱ_t) grad log q_t(x_t)",
        story: "On points of the plane every part of the story can be seen at once and checked: the data is a \
                mixture of Gaussians, so q_t and the exact ε* are known in closed form. Train a tiny network in \
                seconds and watch a Gaussian blob of particles flow back into the data.",
        plain: "The same process on dots: noise is a round blob, the data a shape, sampling flows one into the other.",
        look_at: "the 2-D lab page: Start training, then Sample particles",
        task: Some(Task {
            ask: "Train the network, then sample particles: watch the blob flow into the data.",
            done: "Right: the particles land on the data; the distance below says how close.",
            hint: "Press Start training, wait until it has trained, then press Sample particles.",
        }),
    },
    Step {
        id: StepId::Recipes,
        title: "Training recipes: targets and weightings",
        formula: "ε, x_0, v = α ε - σ x_0, flow u = ε - x_0;  L = E_λ w(λ) || target - network ||²",
        story: "The 2020 recipe predicts ε and weights every noise level alike. A network can instead predict x_0, \
                v or flow matching's velocity, and the loss can weigh the noise levels differently (min-SNR, \
                EDM). In the lab they train side by side on the same data.",
        plain: "What the network is asked to predict changes how straight its paths are and how few steps it needs.",
        look_at: "the 2-D lab's Training recipes section",
        task: Some(Task {
            ask: "Train two recipes side by side and read their step tables.",
            done: "Right: compare their distances at few steps — the straighter recipe needs fewer.",
            hint: "Pick two recipes under Training recipes and press Train side by side.",
        }),
    },
    Step {
        id: StepId::ExactAnswers,
        title: "Against the exact answer",
        formula: "error(N) ≈ C N^{-p}:  DDIM p = 1, Heun and DPM++ 2M p = 2",
        story: "Because the 2-D data's true score is known, the lab solves the probability-flow ODE exactly and \
                measures each sampler's error against it: the slope of the error over the number of steps is \
                its order. The same exact answer checks the likelihood and the guidance methods.",
        plain: "With the exact answer at hand, each sampler's accuracy becomes a measured number.",
        look_at: "the 2-D lab's Solver bench",
        task: Some(Task {
            ask: "Run the solver bench and read each method's order.",
            done: "Right: halving the step count multiplies a p-th order method's error by 2^p.",
            hint: "Press Run solver bench in the 2-D lab's Solver bench section.",
        }),
    },
];

/// The step with `id`.
pub fn step(id: StepId) -> &'static Step {
    // STEPS lists every id exactly once (tested).
    STEPS.iter().find(|s| s.id == id).unwrap_or(&STEPS[0])
}

/// What a step's numbers are made of: the settings on screen at the moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub schedule: BetaSchedule,
    /// The Forward process panel's t.
    pub t: usize,
    pub sampler: Sampler,
    /// The step of the run on screen (0 = the first step from x_T), if a run is shown.
    pub run_step: Option<usize>,
    pub guidance: Guidance,
}

/// The step's formula with the numbers it takes now: one "name = value" group per line. Empty where a
/// schedule or sampler cannot be built (the window says why elsewhere).
pub fn numbers(id: StepId, live: &Live) -> Vec<String> {
    let Ok(schedule) = live.schedule.build() else { return vec![] };
    let steps = schedule.steps();
    let i = live.t.clamp(1, steps) - 1;
    let n = number_text;
    match id {
        StepId::Forward => vec![
            format!("t = {}:  β_t = {},  sqrt(1 - β_t) = {}", i + 1, n(schedule.beta[i]), n(schedule.alpha[i].sqrt())),
            format!("x_t = {} x_{{t-1}} + {} ε", n(schedule.alpha[i].sqrt()), n(schedule.beta[i].sqrt())),
        ],
        StepId::ClosedForm | StepId::Loss => vec![
            format!(
                "t = {}:  ᾱ_t = {},  λ_t = ln(ᾱ_t / (1 - ᾱ_t)) = {}",
                i + 1,
                n(schedule.alpha_bar[i]),
                n(schedule.log_snr[i])
            ),
            format!("x_t = {} x_0 + {} ε", n(schedule.sqrt_alpha_bar[i]), n(schedule.sqrt_one_minus_alpha_bar[i])),
        ],
        StepId::Schedule => {
            let last = steps - 1;
            vec![
                format!(
                    "{} schedule, T = {}:  β_1 = {},  β_T = {}",
                    live.schedule.kind.name(),
                    steps,
                    n(schedule.beta[0]),
                    n(schedule.beta[last])
                ),
                format!(
                    "ᾱ_T = {},  signal left sqrt(ᾱ_T) = {},  λ_T = {}",
                    n(schedule.alpha_bar[last]),
                    n(schedule.sqrt_alpha_bar[last]),
                    n(schedule.log_snr[last])
                ),
            ]
        }
        StepId::Posterior => vec![
            format!("t = {}:  β_t = {},  β̃_t = {}", i + 1, n(schedule.beta[i]), n(schedule.beta_tilde[i])),
            format!(
                "μ̃_t = {} x_0 + {} x_t   (c₀ = {}, c₁ = {})",
                n(schedule.posterior_coef_x0[i]),
                n(schedule.posterior_coef_xt[i]),
                n(schedule.posterior_coef_x0[i]),
                n(schedule.posterior_coef_xt[i])
            ),
        ],
        StepId::SamplingStep => sampling_step_numbers(live, &schedule),
        StepId::Sampler => {
            let plan = live.sampler.plan(&schedule);
            vec![format!(
                "{}: {} steps, {} network evaluations{}",
                live.sampler.label(),
                plan.as_ref().map_or(0, |p| p.len()),
                live.sampler.evaluations(steps),
                if live.sampler.method.has_steps() { "" } else { " (every t)" }
            )]
        }
        StepId::Guidance => guidance_numbers(live, &schedule),
        StepId::CrossAttention
        | StepId::Decided
        | StepId::Latent
        | StepId::Prompts
        | StepId::Lab2d
        | StepId::Recipes
        | StepId::ExactAnswers => vec![],
    }
}

/// The run's step on screen as its sampler writes it, with the numbers the step used.
fn sampling_step_numbers(live: &Live, schedule: &crate::diffusion::NoiseSchedule) -> Vec<String> {
    let Ok(plan) = live.sampler.plan(schedule) else { return vec![] };
    let Some(i) = live.run_step.filter(|i| *i < plan.len()) else {
        return vec!["no step on screen: press Generate, then scrub".into()];
    };
    let equation = equation(&live.sampler, &plan, i);
    let coefficients: Vec<String> =
        equation.coefficients().map(|(term, value)| format!("{} × {term}", number_text(value))).collect();
    vec![format!("step {} of {}: x_t' = {}", i + 1, plan.len(), coefficients.join(" + "))]
}

/// Where guidance acts: w and the steps of the plan inside its λ interval.
fn guidance_numbers(live: &Live, schedule: &crate::diffusion::NoiseSchedule) -> Vec<String> {
    let mut lines = vec![format!("w = {}", number_text(live.guidance.scale))];
    if let Ok(plan) = live.sampler.plan(schedule) {
        let acting = plan.steps.iter().filter(|s| live.guidance.applies_at(s.level().log_snr)).count();
        let interval = match live.guidance.interval {
            Some([low, high]) => format!("λ in [{}, {}]", number_text(low), number_text(high)),
            None => "every λ".into(),
        };
        lines.push(format!("guidance acts at {acting} of {} steps ({interval})", plan.len()));
    }
    lines
}

/// The posterior mean's coefficients (c₀ of x_0, c₁ of x_t) at t, `None` for a schedule that cannot be built
/// (the posterior step's task: does it lean on x_0, c₀ > c₁?).
pub fn posterior_coefficients(schedule: &BetaSchedule, t: usize) -> Option<(f64, f64)> {
    let s = schedule.build().ok()?;
    let i = t.clamp(1, s.steps()) - 1;
    Some((s.posterior_coef_x0[i], s.posterior_coef_xt[i]))
}

/// The signal coefficient sqrt(ᾱ_t) at t (the closed form's task), `None` for a schedule that cannot be built.
pub fn signal_at(schedule: &BetaSchedule, t: usize) -> Option<f64> {
    let s = schedule.build().ok()?;
    Some(s.sqrt_alpha_bar[t.clamp(1, s.steps()) - 1])
}

/// Whether the x̂_0 term of step `i` of the sampler's plan weighs more than each of its other terms (x_t, ε̂,
/// the fresh noise z: the sampling step's task), read from the coefficients the step uses.
pub fn x0_outweighs_rest(schedule: &BetaSchedule, sampler: &Sampler, i: usize) -> bool {
    let Ok(schedule) = schedule.build() else { return false };
    let Ok(plan) = sampler.plan(&schedule) else { return false };
    if i >= plan.len() {
        return false;
    }
    let equation = equation(sampler, &plan, i);
    let x0 = crate::diffusion::sampler::X0;
    let weight = equation.coefficients().filter(|(t, _)| *t == x0).map(|(_, v)| v.abs()).sum::<f64>();
    let others = equation.coefficients().filter(|(t, _)| *t != x0).map(|(_, v)| v.abs()).fold(0.0, f64::max);
    weight > others
}

/// `tour --list`'s line of a step: its number (from 1), title and formula.
pub fn list_line(number: usize, step: &Step) -> String {
    format!("{number:>2}. {} — {}", step.title, step.formula)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_told_once_in_order() {
        let ids: std::collections::HashSet<StepId> = STEPS.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), STEPS.len());
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(step(s.id).title, s.title, "{i}");
            assert!(!s.plain.is_empty() && !s.formula.is_empty() && !s.story.is_empty());
        }
    }

    /// The schedule step starts where its task is not yet done, and the default β_end does it.
    #[test]
    fn the_schedule_task_starts_undone() {
        let start = BetaSchedule { beta_end: SCHEDULE_START_BETA_END, ..BetaSchedule::linear(1000) };
        let signal = |s: &BetaSchedule| s.build().unwrap().terminal_signal().signal();
        assert!(signal(&start) > 0.3, "{}", signal(&start));
        assert!(signal(&BetaSchedule::linear(1000)) < TERMINAL_SIGNAL_BELOW);
    }

    /// Hand numbers: linear T = 1000 at t = 1: β_1 = 1e-4, ᾱ_1 = 1 - 1e-4, c₀ = 1 (ᾱ_0 = 1, β_1 / (1 - ᾱ_1)),
    /// c₁ = 0; so the posterior leans on x_0 at t = 1 and on x_t at t = 500.
    #[test]
    fn the_numbers_are_the_schedules() {
        let linear = BetaSchedule::linear(1000);
        let leans_on_x0 = |t| posterior_coefficients(&linear, t).is_some_and(|(c0, c1)| c0 > c1);
        assert!(leans_on_x0(1) && !leans_on_x0(500));
        let live = Live {
            schedule: linear,
            t: 1,
            sampler: Sampler::ddim(10, 0.0),
            run_step: Some(9),
            guidance: Guidance::from(2.0),
        };
        let posterior = numbers(StepId::Posterior, &live);
        assert!(posterior[0].contains("β_t = 1.000e-4"), "{posterior:?}");
        assert!(posterior[1].contains("c₀ = 1,") && posterior[1].contains("c₁ = 0)"), "{posterior:?}");
        let signal = signal_at(&linear, 1000).unwrap();
        assert!((signal - linear.build().unwrap().terminal_signal().signal()).abs() < 1e-12);
        // DDIM η = 0's last step is x_0 = x̂_0: all weight on x̂_0; its first step leans on x_t.
        assert!(x0_outweighs_rest(&linear, &live.sampler, 9));
        assert!(!x0_outweighs_rest(&linear, &live.sampler, 0));
        assert!(numbers(StepId::SamplingStep, &live)[0].starts_with("step 10 of 10"));
    }
}
