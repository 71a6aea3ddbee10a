//! A run's recorded steps: `Frame` (x_t, x̂_0, ε̂ and what the step combined, as plain f32 data), the
//! memory budget that thins a long trajectory, and a latent frame's decoded pixels.

use std::sync::Arc;

/// One step of a run, copied off the device.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Position in the run, 0 = x_T (before any step), i + 1 = after step i.
    pub index: usize,
    /// The timestep this frame shows: T for x_T, then t' of each step (0 = the final image); for Karras
    /// spacing the schedule's timestep nearest its noise level.
    pub t: usize,
    /// λ = ln(ᾱ / (1 - ᾱ)) of x_t: where a run is, comparable across schedules and samplers (+∞ at the end).
    pub log_snr: f64,
    pub shape: [usize; 4],
    /// x_t, [batch, channels, h, w] row-major.
    pub x_t: Arc<Vec<f32>>,
    /// x̂_0 predicted at this step (x_T's frame has none yet: zeros).
    pub x0_pred: Arc<Vec<f32>>,
    /// The guided ε at this step (zeros for x_T).
    pub eps: Arc<Vec<f32>>,
    /// For a latent model: x_t and x̂_0 decoded to pixels by the autoencoder, D(z / scale).
    pub decoded: Option<Decoded>,
    /// What the step that made this frame combined, beyond x̂_0 and ε̂: recorded while a run streams, so
    /// that "This step" can take the step apart without the network (`None` for x_T's frame).
    pub parts: Option<StepParts>,
}

/// The inputs of a step that a frame does not otherwise keep, all [batch, channels, h, w] like x_t.
#[derive(Clone, Debug, Default)]
pub struct StepParts {
    /// w at this step (1 outside a guidance interval; 0 for an unconditional run).
    pub guidance: f64,
    /// The guidance method of this step (CFG outside a guidance interval). For autoguidance
    /// `unconditional` holds the weaker model's ε̂_y; for CFG++ it is also the ε̂ that renoised x̂_0.
    pub method: crate::diffusion::guidance::GuidanceMethod,
    /// APG's running average before this step, where it had one (the momentum's Δ_prev).
    pub apg_previous: Option<Arc<Vec<f32>>>,
    /// ε̂_∅ = ε_θ(x_t, ∅), where evaluated (w ≠ 1).
    pub unconditional: Option<Arc<Vec<f32>>>,
    /// ε̂_y = ε_θ(x_t, y), where evaluated (w ≠ 0).
    pub conditional: Option<Arc<Vec<f32>>>,
    /// The fresh noise z the sampler drew at this step (stochastic samplers).
    pub noise: Option<Arc<Vec<f32>>>,
    /// Heun's second guided evaluation, at the point its Euler step reached.
    pub eps_second: Option<Arc<Vec<f32>>>,
    /// What the network predicted (every ε̂ above is that prediction read as ε̂).
    pub objective: crate::diffusion::Objective,
}

impl StepParts {
    /// Values kept, for the memory budget.
    fn len(&self) -> usize {
        [&self.unconditional, &self.conditional, &self.noise, &self.eps_second, &self.apg_previous]
            .into_iter()
            .flatten()
            .map(|v| v.len())
            .sum()
    }
}

/// The bytes a frame of a run counts for against the budget: its values, and for a latent run the pixels
/// every frame ends up with (x_T's frame, `first`, always comes decoded and shows their size). The window
/// and the engine's backlog count the same, so they thin a run alike.
pub fn frame_budget_bytes(frame: &Frame, first: Option<&Frame>) -> usize {
    let pixels = first.unwrap_or(frame).decoded.as_ref().or(frame.decoded.as_ref()).map_or(0, |d| 2 * d.x_t.len());
    let parts = frame.parts.as_ref().map_or(0, StepParts::len);
    4 * (3 * frame.x_t.len() + pixels + parts)
}

/// How much memory the frames of one run may take, in the window and in the engine's decoding backlog.
/// DDPM over T = 10 000 at batch 64 would otherwise keep about 6 GB.
pub const TRAJECTORY_BUDGET_BYTES: usize = 768 << 20;

/// Appends `frame` to a run's `frames`, keeping them within `budget` bytes: every step while they fit, then
/// every 2nd step, then every 4th... (`stride`, doubled as needed), always with x_T and the newest frame
/// (the one on screen while a run streams). A frame before the newest that is off the stride is dropped
/// when the next one arrives.
pub fn push_within_budget(
    frames: &mut Vec<Frame>,
    frame: Frame,
    stride: &mut usize,
    budget: usize,
    frame_bytes: usize,
) {
    let stride_now = (*stride).max(1);
    if frames.len() > 1 && frames.last().is_some_and(|last| last.index % stride_now != 0) {
        frames.pop();
    }
    frames.push(frame);
    while frames.len() > 2 && frames.len() * frame_bytes > budget {
        *stride = (*stride).max(1) * 2;
        let (stride, newest) = (*stride, frames.len() - 1);
        let mut position = 0;
        frames.retain(|f| {
            let keep = f.index % stride == 0 || position == newest;
            position += 1;
            keep
        });
    }
}

impl Frame {
    /// The frame's x_t as pictures, one per image of the batch: decoded pixels for a latent run.
    pub fn pictures(&self) -> Vec<crate::images::Picture> {
        let (values, [batch, c, h, w]) = match &self.decoded {
            Some(decoded) => (&decoded.x_t, decoded.shape),
            None => (&self.x_t, self.shape),
        };
        crate::images::pictures_from_batch(values, batch, c, h, w)
    }
}

/// Pixels of a latent frame.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// [batch, channels, h, w] of the pixel images.
    pub shape: [usize; 4],
    pub x_t: Arc<Vec<f32>>,
    pub x0_pred: Arc<Vec<f32>>,
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn frame(index: usize) -> Frame {
        let values = Arc::new(vec![0.0; 10]);
        let log_snr = index as f64;
        Frame {
            index,
            t: 1000 - index,
            log_snr,
            shape: [1, 1, 2, 5],
            x_t: values.clone(),
            x0_pred: values.clone(),
            eps: values,
            decoded: None,
            parts: None,
        }
    }

    #[test]
    fn frames_are_thinned_to_the_budget_keeping_x_t_and_the_newest() {
        let (mut frames, mut stride) = (Vec::new(), 1);
        let bytes = frame_budget_bytes(&frame(0), None);
        assert_eq!(bytes, 120);
        for index in 0..=1000 {
            push_within_budget(&mut frames, frame(index), &mut stride, 100 * bytes, bytes);
            assert!(frames.len() <= 100, "{} frames at step {index}", frames.len());
            assert_eq!(frames.last().unwrap().index, index, "the newest frame is kept");
        }
        assert_eq!(frames[0].index, 0, "x_T is kept");
        assert_eq!(stride, 16);
        assert!(frames.windows(2).all(|w| w[0].index < w[1].index));
        assert!(frames[..frames.len() - 1].iter().all(|f| f.index % 16 == 0), "evenly thinned");
        assert!(frames.len() >= 50, "the budget is used: {}", frames.len());
        // Within the budget nothing is dropped.
        let (mut frames, mut stride) = (Vec::new(), 1);
        for index in 0..50 {
            push_within_budget(&mut frames, frame(index), &mut stride, 100 * bytes, bytes);
        }
        assert_eq!((frames.len(), stride), (50, 1));
    }
}
