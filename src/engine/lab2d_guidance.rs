//! The 2-D lab's guidance comparison (`lab2d::guidance_bench`): every method at its scales with the
//! session's network as it is now, beside the exact scores, against the exact p(x|y), on a job's own
//! thread (engine/lab2d_jobs.rs). Autoguidance's weaker guide is trained on request (the session's data,
//! recipe and seed, for the steps asked) on that thread too, and kept for the next comparison of the same
//! session; a new session forgets it.

use std::sync::{Arc, Mutex, PoisonError};

use burn::prelude::Device;

use super::lab2d::Lab2dEvent;
use super::lab2d_jobs::{LabJobs, LabSink, Measurement};
use crate::diffusion::guidance::GuidanceMethod;
use crate::lab2d::Lab;
use crate::lab2d::guidance_bench::{BenchNetworks, GuidanceBenchSettings, guidance_bench_until, train_to_the_end};
use crate::lab2d::recipes::recipe_lab;
use crate::lab2d::run::{KeepGoing, LabError};
use crate::model::point_mlp::PointDenoiser;

/// The guide kept between comparisons: its network, the steps it trained, and the session it is of.
struct KeptGuide {
    model: PointDenoiser,
    steps: u64,
    session: u64,
}

/// Where the guide comes from for one comparison: the kept one, or one to train (its first step taken).
enum Guide {
    Kept(Box<PointDenoiser>, u64),
    ToTrain(Box<Lab>, u64),
}

/// What the worker keeps for the guidance comparison; the job that trains a guide stores it here.
#[derive(Default)]
pub struct GuidanceSession {
    guide: Arc<Mutex<Option<KeptGuide>>>,
    /// Counts the lab's sessions: a guide is kept for the session it trained on.
    session: u64,
}

impl GuidanceSession {
    /// A new session began: its guide must be trained afresh on its data.
    pub fn forget(&mut self) {
        self.session += 1;
        *self.guide.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Compares the methods of `settings` with `lab`'s network as a job (training the guide first when
    /// autoguidance is among them and no guide of `guide_steps` is kept); sends the comparison or its
    /// failure.
    pub(crate) fn bench(
        &mut self,
        jobs: &mut LabJobs,
        sink: &LabSink,
        (key, settings, guide_steps): (u64, GuidanceBenchSettings, u64),
        lab: Option<&Lab>,
    ) {
        let failed = move |message: String| Lab2dEvent::GuidanceBenchFailed { key, message };
        let Some(lab) = lab.filter(|lab| lab.trainer.step > 0) else {
            return sink(failed("train the network first: the comparison guides the lab's network".into()));
        };
        let auto = settings.methods.iter().any(|m| m.params.method == GuidanceMethod::Auto);
        if auto && guide_steps == 0 {
            return sink(failed(LabError::NoGuide.to_string()));
        }
        let guide = auto.then(|| self.guide_for(lab, guide_steps));
        let (model, step, mixture) = (lab.model(), lab.trainer.step, lab.data.mixture.clone());
        let (kept, session) = (self.guide.clone(), self.session);
        let work = move |keep_going: KeepGoing<'_>| {
            let guide = match guide {
                None => None,
                Some(Guide::Kept(model, steps)) => Some((*model, steps)),
                Some(Guide::ToTrain(mut guide, steps)) => {
                    if let Err(error) = train_to_the_end(&mut guide, keep_going) {
                        return failed(error.to_string());
                    }
                    let model = guide.model();
                    let keep = KeptGuide { model: model.clone(), steps, session };
                    *kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(keep);
                    Some((model, steps))
                }
            };
            let networks = BenchNetworks { model: &model, guide: guide.as_ref().map(|(m, s)| (m, *s)) };
            match guidance_bench_until(networks, &mixture, &settings, &Device::flex(), keep_going) {
                Ok(bench) => Lab2dEvent::GuidanceBenched { key, bench: Arc::new(bench), step },
                Err(error) => failed(error.to_string()),
            }
        };
        jobs.start(Measurement::Guidance, sink, work, failed);
    }

    /// The kept guide when it is this session's and trained `steps`; else a new one with its first step
    /// taken here, on the worker's thread: the step that initializes its weights from the device's seeded
    /// generator, which every network of the engine draws from on this thread only.
    fn guide_for(&self, lab: &Lab, steps: u64) -> Guide {
        let kept = self.guide.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(guide) = kept.as_ref().filter(|g| g.steps == steps && g.session == self.session) {
            return Guide::Kept(Box::new(guide.model.clone()), steps);
        }
        let (seed, device) = (lab.trainer.config.seed, Device::flex());
        let mut guide = recipe_lab(lab.data.clone(), lab.trainer.recipe(), steps, seed, &device);
        if !guide.trainer.is_done() {
            guide.train_step();
        }
        Guide::ToTrain(Box::new(guide), steps)
    }
}
