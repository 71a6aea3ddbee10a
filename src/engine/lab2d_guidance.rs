//! The 2-D lab's guidance comparison on the engine's thread (`lab2d::guidance_bench`): every method at its
//! scales with the session's network as it is now, beside the exact scores, against the exact p(x|y).
//! Autoguidance's weaker guide is trained on request (the session's data, recipe and seed, for the steps
//! asked) and kept for the next comparison of the same session; a new session forgets it.

use std::sync::Arc;

use burn::prelude::Device;

use super::lab2d::Lab2dEvent;
use crate::diffusion::guidance::GuidanceMethod;
use crate::lab2d::Lab;
use crate::lab2d::guidance_bench::{BenchNetworks, GuidanceBenchSettings, guidance_bench, train_guide};
use crate::lab2d::run::LabError;

/// The guide kept between comparisons: the network and the steps it trained.
struct KeptGuide {
    lab: Lab,
    steps: u64,
}

/// What the worker keeps for the guidance comparison.
#[derive(Default)]
pub struct GuidanceSession {
    guide: Option<KeptGuide>,
}

impl GuidanceSession {
    /// A new session began: its guide must be trained afresh on its data.
    pub fn forget(&mut self) {
        self.guide = None;
    }

    /// Compares the methods of `settings` with `lab`'s network (training the guide first when autoguidance
    /// is among them and no guide of `guide_steps` is kept), then sends the comparison or its failure.
    pub fn bench(
        &mut self,
        key: u64,
        settings: &GuidanceBenchSettings,
        guide_steps: u64,
        lab: Option<&Lab>,
        send: &dyn Fn(Lab2dEvent),
    ) {
        let failed = |message: String| send(Lab2dEvent::GuidanceBenchFailed { key, message });
        let Some(lab) = lab.filter(|lab| lab.trainer.step > 0) else {
            return failed("train the network first: the comparison guides the lab's network".into());
        };
        let device = Device::flex();
        let auto = settings.methods.iter().any(|m| m.params.method == GuidanceMethod::Auto);
        if auto && guide_steps == 0 {
            return failed(LabError::NoGuide.to_string());
        }
        if auto && self.guide.as_ref().is_none_or(|g| g.steps != guide_steps) {
            let seed = lab.trainer.config.seed;
            let guide = train_guide(&lab.data, lab.trainer.recipe(), guide_steps, seed, &device);
            self.guide = Some(KeptGuide { lab: guide, steps: guide_steps });
        }
        let model = lab.model();
        let guide = self.guide.as_ref().filter(|_| auto).map(|g| (g.lab.model(), g.steps));
        let networks = BenchNetworks { model: &model, guide: guide.as_ref().map(|(m, s)| (m, *s)) };
        match guidance_bench(networks, &lab.data.mixture, settings, &device) {
            Ok(bench) => send(Lab2dEvent::GuidanceBenched { key, bench: Arc::new(bench), step: lab.trainer.step }),
            Err(error) => failed(error.to_string()),
        }
    }
}
