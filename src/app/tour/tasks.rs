//! The tour's tasks, judged from the app's own state: the settings, the Forward panel's t, the run on screen
//! and its cursor, the posterior's curve, the "When is it decided?" rows, the 2-D lab's results. Each answer
//! says what the app read, so a wrong try tells the learner where they are.

use super::super::LabApp;
use super::super::state::{Overlay, Quantity};
use crate::diffusion::equation::number_text;
use crate::tour::{self, StepId};

/// The answer to one "Check".
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done as asked; what the app read.
    Done(String),
    /// Not yet; what the app read instead.
    NotYet(String),
}

impl Outcome {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }
}

fn judge(done: bool, reading: String) -> Outcome {
    if done { Outcome::Done(reading) } else { Outcome::NotYet(reading) }
}

impl LabApp {
    /// Judges the task of the step on screen (steps without a task are always done).
    pub fn check_tour_task(&self) -> Outcome {
        let settings = &self.ctx.settings;
        let t = self.forward.t;
        match self.tour.step_id() {
            StepId::Forward => Outcome::Done("this step has no task: press Next".into()),
            StepId::ClosedForm => match tour::signal_at(&settings.schedule, t) {
                Some(signal) => {
                    judge(signal < tour::SIGNAL_BELOW, format!("at t = {t}: sqrt(ᾱ_t) = {}", number_text(signal)))
                }
                None => Outcome::NotYet("the schedule cannot be built: see the Schedule panel".into()),
            },
            StepId::Schedule => {
                let steps = settings.schedule.steps;
                match tour::signal_at(&settings.schedule, steps) {
                    Some(signal) => judge(
                        signal < tour::TERMINAL_SIGNAL_BELOW,
                        format!(
                            "β_end = {}: sqrt(ᾱ_T) = {}",
                            number_text(settings.schedule.beta_end),
                            number_text(signal)
                        ),
                    ),
                    None => Outcome::NotYet("the schedule cannot be built: see the Schedule panel".into()),
                }
            }
            StepId::Posterior => self.posterior_task(t),
            StepId::Loss => self.loss_task(t),
            StepId::SamplingStep => self.sampling_step_task(),
            StepId::Sampler => self.sampler_task(),
            StepId::CrossAttention => {
                let ran = self.generate.viewer.trajectory.is_some();
                let summed = settings.overlay == Overlay::Attention && settings.attention.summed;
                match (ran, summed) {
                    (false, _) => Outcome::NotYet("no run on screen yet: press Generate".into()),
                    (true, false) => Outcome::NotYet("the overlay shows one step's attention".into()),
                    (true, true) => Outcome::Done("the overlay sums the attention over the run's steps".into()),
                }
            }
            StepId::Guidance => {
                let w = settings.guidance;
                let reading = match settings.guidance_interval {
                    Some([low, high]) => {
                        format!(
                            "w = {}, guidance at λ from {} to {}",
                            number_text(w),
                            number_text(low),
                            number_text(high)
                        )
                    }
                    None => format!("w = {}, guidance at every λ", number_text(w)),
                };
                let low_noise = settings.guidance_interval.is_some_and(|[low, _]| low >= tour::LOW_NOISE_FROM_LOG_SNR);
                judge(low_noise && w > 1.0, reading)
            }
            StepId::Decided => self.decided_task(),
            StepId::Latent => self.latent_task(),
            StepId::Prompts => self.prompt_task(),
            StepId::Lab2d => {
                let trained = self.lab2d.training.steps;
                let reading = format!(
                    "trained {trained} steps; particles {}",
                    if self.lab2d.has_particles() { "run" } else { "not run yet" }
                );
                judge(trained > 0 && self.lab2d.has_particles(), reading)
            }
            StepId::Recipes => {
                let measured = self.lab2d.recipes.compared.iter().filter(|(_, p)| p.report.is_some()).count();
                judge(measured >= 2, format!("{measured} recipes trained and measured"))
            }
            StepId::ExactAnswers => match &self.lab2d.solver.bench {
                Some(_) => Outcome::Done("the solver bench has measured every method's order".into()),
                None => Outcome::NotYet("the solver bench has not run yet".into()),
            },
        }
    }

    fn posterior_task(&self, t: usize) -> Outcome {
        let Some((c0, c1)) = tour::posterior_coefficients(&self.ctx.settings.schedule, t) else {
            return Outcome::NotYet("the schedule cannot be built: see the Schedule panel".into());
        };
        judge(c0 > c1, format!("at t = {t}: c₀ = {}, c₁ = {}", number_text(c0), number_text(c1)))
    }

    /// Within a tenth of T of the t where the model's L_{t-1} (the posterior panel's curve) is largest.
    fn loss_task(&self, t: usize) -> Outcome {
        let curve = &self.forward.posterior.curve;
        let Some(&(peak, kl)) = curve.iter().filter(|(_, kl)| kl.is_finite()).max_by(|a, b| a.1.total_cmp(&b.1)) else {
            return Outcome::NotYet(
                "the L_{t-1} curve has not arrived: load an image in the Forward process panel".into(),
            );
        };
        let steps = self.ctx.settings.schedule.steps;
        judge(
            t.abs_diff(peak) * 10 <= steps,
            format!("t = {t}; L_{{t-1}} is largest at t = {peak} ({} bits/dim)", number_text(kl)),
        )
    }

    fn sampling_step_task(&self) -> Outcome {
        let viewer = &self.generate.viewer;
        let (Some(trajectory), Some(frame)) = (&viewer.trajectory, viewer.cursor_frame()) else {
            return Outcome::NotYet("no run on screen yet: press Generate".into());
        };
        if frame.index == 0 {
            return Outcome::NotYet("the cursor is on x_T, which no step made: scrub right".into());
        }
        let request = &trajectory.request;
        let step = frame.index - 1;
        judge(
            tour::x0_outweighs_rest(&request.schedule, &request.sampler, step),
            format!("the frame on screen was made by step {} of {}", frame.index, trajectory.total_steps),
        )
    }

    /// A finished run of at most [`tour::FEW_STEPS`] steps, none of which draws fresh noise.
    fn sampler_task(&self) -> Outcome {
        let Some(trajectory) = self.generate.viewer.trajectory.as_ref().filter(|t| t.is_complete()) else {
            return Outcome::NotYet("no finished run on screen yet: press Generate and let it finish".into());
        };
        let request = &trajectory.request;
        let plan = request.schedule.build().ok().and_then(|s| request.sampler.plan(&s).ok());
        let Some(plan) = plan else { return Outcome::NotYet("the run's plan cannot be made again".into()) };
        let noisy = (0..plan.len()).filter(|i| plan.needs_noise(*i)).count();
        judge(
            plan.len() <= tour::FEW_STEPS && noisy == 0,
            format!("{}: {} steps, {noisy} of them add fresh noise", request.sampler.label(), plan.len()),
        )
    }

    fn latent_task(&self) -> Outcome {
        let run = self.generate.viewer.trajectory.as_ref().filter(|t| t.is_complete() && t.is_latent());
        let channels = self.ctx.settings.quantity == Quantity::LatentChannels;
        match (run, channels) {
            (None, _) => Outcome::NotYet("no finished run of the latent model on screen yet".into()),
            (Some(_), false) => Outcome::NotYet("the picture shows pixels, not the latent channels".into()),
            (Some(_), true) => Outcome::Done("the picture shows the latent channels z_t".into()),
        }
    }

    /// A finished run of a text model from two or more words it knows.
    fn prompt_task(&self) -> Outcome {
        let run = self.generate.viewer.trajectory.as_ref().filter(|t| t.is_complete());
        let Some((trajectory, prompt)) = run.and_then(|t| t.request.prompt.as_ref().map(|p| (t, p))) else {
            return Outcome::NotYet("no finished run from a prompt on screen yet".into());
        };
        let text = self.ctx.models.info(&trajectory.request.model).and_then(|m| m.config.text.clone());
        let words = crate::text::tokenizer::words(&prompt.text);
        let unknown = text.map(|t| t.unknown_words(&prompt.text));
        match unknown {
            Some(Ok(None)) => judge(words.len() >= 2, format!("\"{}\": {} words", prompt.text, words.len())),
            Some(Ok(Some(message))) => Outcome::NotYet(message),
            Some(Err(e)) => Outcome::NotYet(e.to_string()),
            None => Outcome::NotYet("the run's model reads no prompts".into()),
        }
    }

    /// The row the learner names against the first row from which the judged rows end mostly as the run's
    /// own garment, branches asking for the sneaker (`eval::decided::decided_from` on the app's last rows).
    fn decided_task(&self) -> Outcome {
        use crate::eval::decided::{class_word, decided_from};
        let Some(last) = &self.compare.decided.last else {
            return Outcome::NotYet("no rows yet: press Generate and wait for the rows".into());
        };
        let word = |c: usize| class_word(c, crate::data::FASHION_MNIST_CLASSES.len());
        let branch = tour::DECIDED_BRANCH_CLASS;
        if last.branch_class != Some(branch) {
            let asked = last.branch_class.map_or("any class".to_string(), word);
            return Outcome::NotYet(format!("these rows' branches asked for {asked}, not the {}", word(branch)));
        }
        let Some(end) = last.end_class else {
            return Outcome::NotYet("the judge cannot read this model's pictures".into());
        };
        let Some(first) = decided_from(&last.rows, end) else {
            return Outcome::NotYet(format!("no row ends mostly as the {}: Generate again", word(end)));
        };
        let answer = self.tour.decided_answer;
        let share = |k: usize| {
            last.rows.get(k).map_or("—".to_string(), |r| format!("{}/{}", r.judged_as(end), r.classes.len()))
        };
        let reading = match answer.checked_sub(1) {
            None => "the rows count from 1".to_string(),
            Some(k) if k > first => {
                format!("row {} already ends mostly as the {} ({}): look earlier", answer - 1, word(end), share(k - 1))
            }
            Some(k) if k < first => {
                format!(
                    "from row {answer} on not every row ends mostly as the {} (row {answer}: {})",
                    word(end),
                    share(k)
                )
            }
            Some(_) => format!("row {answer}: {} end as the {}, and every row after it", share(first), word(end)),
        };
        judge(answer == first + 1, reading)
    }
}
