//! The live numbers of the steps whose numbers live in the app rather than in the settings' arithmetic
//! (`crate::tour::numbers` makes those): the loaded models' shapes, the prompt's tokens, the 2-D lab's
//! training, recipes and solver bench — each read from the state the window shows it from.

use super::super::LabApp;
use crate::diffusion::equation::number_text;
use crate::tour::StepId;

impl LabApp {
    /// The step's numbers read from the app's state (empty for steps whose numbers are the settings').
    pub fn tour_state_numbers(&self, id: StepId) -> Vec<String> {
        match id {
            StepId::CrossAttention | StepId::Guidance => self.class_context_numbers(),
            StepId::Latent => self.latent_numbers(),
            StepId::Prompts => self.prompt_numbers(),
            StepId::Lab2d => self.lab_training_numbers(),
            StepId::Recipes => self.recipe_numbers(),
            StepId::ExactAnswers => self.solver_numbers(),
            StepId::Decided => self.decided_numbers(),
            _ => Vec::new(),
        }
    }

    /// τ_θ(y)'s shape for the class asked, and where the UNet reads it.
    fn class_context_numbers(&self) -> Vec<String> {
        let Some(info) = self.model_info() else { return vec!["the model is loading".into()] };
        let config = &info.config;
        let class = self.ctx.settings.class.and_then(|c| crate::data::FASHION_MNIST_CLASSES.get(c)).copied();
        vec![format!(
            "y = {}: τ_θ(y) is {} tokens of {} numbers; cross-attention at {} of the UNet's {} levels",
            class.unwrap_or("any class (Ø)"),
            config.class_tokens,
            config.context_dim,
            config.cross_attention_levels.len(),
            config.channels.len()
        )]
    }

    /// How many numbers the pixel and the latent model denoise per image.
    fn latent_numbers(&self) -> Vec<String> {
        let shape = |latent: bool| {
            self.ctx.models.loaded.iter().find(|m| m.is_latent == latent && m.config.text.is_none()).map(|m| {
                let c = &m.config;
                (c.image_channels, c.image_size, c.image_channels * c.image_size * c.image_size)
            })
        };
        match (shape(false), shape(true)) {
            (Some((pc, ps, pixels)), Some((lc, ls, latents))) => vec![format!(
                "x: {pc}×{ps}×{ps} = {pixels} numbers;  z = E(x): {lc}×{ls}×{ls} = {latents} numbers ({} times fewer)",
                number_text(pixels as f64 / latents as f64)
            )],
            _ => vec!["the models are loading".into()],
        }
    }

    /// The prompt as the text model reads it: one context token per word after the start token.
    fn prompt_numbers(&self) -> Vec<String> {
        let text = self.model_info().and_then(|m| m.config.text.clone());
        let Some(text) = text else { return vec!["the text model is loading".into()] };
        let prompt = &self.ctx.settings.prompt;
        match text.vocabulary().map(|v| v.prompt(prompt, text.context_tokens)) {
            Ok(Ok(read)) => vec![format!(
                "\"{prompt}\": start + {} words = {} of {} context tokens; ids {:?}",
                read.words.len(),
                read.ids.len() + 1,
                text.context_tokens,
                read.ids
            )],
            Ok(Err(e)) => vec![e.to_string()],
            Err(e) => vec![e.to_string()],
        }
    }

    /// The 2-D lab's training so far: step, loss, and how far its samples are from the data.
    fn lab_training_numbers(&self) -> Vec<String> {
        let training = &self.lab2d.training;
        let mut lines = vec![format!("trained {} of {} steps", training.step, training.steps)];
        if let Some([_, loss]) = training.losses.last() {
            lines.push(format!("loss = {}", number_text(*loss)));
        }
        if let Some((step, distances)) = training.distances.last() {
            lines.push(format!(
                "sliced W₂ of the samples to the data at step {step} = {}",
                number_text(distances.sliced_wasserstein)
            ));
        }
        lines
    }

    /// Each measured recipe's straightness and its distance at its fewest steps.
    fn recipe_numbers(&self) -> Vec<String> {
        let compared = &self.lab2d.recipes.compared;
        let lines: Vec<String> = compared
            .iter()
            .filter_map(|(recipe, progress)| {
                let report = progress.report.as_ref()?;
                let fewest = report.distances.first()?;
                Some(format!(
                    "{}: L/D = {}, W₂ at {} steps = {}",
                    recipe.label(),
                    number_text(report.straightness.length_ratio),
                    fewest.steps,
                    number_text(fewest.usual)
                ))
            })
            .collect();
        if lines.is_empty() { vec!["no recipes measured yet".into()] } else { lines }
    }

    /// Each sampler's measured order against the exact ODE.
    fn solver_numbers(&self) -> Vec<String> {
        let Some(bench) = &self.lab2d.solver.bench else { return vec!["the bench has not run yet".into()] };
        bench
            .exact
            .curves
            .iter()
            .filter_map(|c| c.fit.map(|fit| format!("{}: order p = {:.2}", c.method.name(), fit.order)))
            .collect()
    }

    /// The rows' judged shares, row by row (the answer itself is the Compare panel's to show).
    fn decided_numbers(&self) -> Vec<String> {
        match &self.compare.decided.last {
            Some(last) => vec![crate::app::compare::verdict_lines(last)[1].clone()],
            None => vec!["no rows yet: press Generate".into()],
        }
    }
}
