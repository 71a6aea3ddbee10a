//! The latent frames of the last run that were handed out without pixels, to decode while idle.

use crate::run::generate::{Frame, TRAJECTORY_BUDGET_BYTES, frame_budget_bytes, push_within_budget};

pub struct DecodeBacklog {
    pub job: u64,
    pub model: crate::model::ModelId,
    /// The frames of the run within the memory budget, thinned as the window thins them (values shared
    /// with the window's copies).
    frames: Vec<Frame>,
    stride: usize,
    /// x_T's frame as it came, decoded: its pixels size every frame's share of the budget.
    first: Option<Frame>,
    /// Indices still to decode; the last is decoded first.
    pending: Vec<usize>,
}

impl DecodeBacklog {
    pub fn new(job: u64, model: crate::model::ModelId) -> Self {
        Self { job, model, frames: Vec::new(), stride: 1, first: None, pending: Vec::new() }
    }

    /// Keeps a frame of a latent run as the window keeps it (without its pixels, which the window has),
    /// and queues it for decoding if it came without them. Frames are decoded from the last queued: the
    /// newest first, where the window's cursor usually is.
    pub fn record(&mut self, frame: &Frame) {
        if frame.decoded.is_none() {
            self.pending.push(frame.index);
        }
        let bytes = frame_budget_bytes(frame, self.first.as_ref());
        if frame.index == 0 {
            self.first = Some(frame.clone());
        }
        // The values are shared with the event, not copied.
        let undecoded = Frame { decoded: None, ..frame.clone() };
        push_within_budget(&mut self.frames, undecoded, &mut self.stride, TRAJECTORY_BUDGET_BYTES, bytes);
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the next frame to decode, with its index: `None` for the frame when the budget thinned it out
    /// (nothing to decode, but it leaves the queue all the same).
    pub fn next(&mut self) -> Option<(usize, Option<&Frame>)> {
        let index = self.pending.pop()?;
        Some((index, self.frames.iter().find(|f| f.index == index)))
    }

    /// Moves frame `index`, if it is still waiting, to the front of the queue.
    pub fn prioritize(&mut self, index: usize) {
        if let Some(position) = self.pending.iter().position(|i| *i == index) {
            self.pending.remove(position);
            self.pending.push(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::Decoded;

    fn frame(index: usize, decoded: bool) -> Frame {
        let values = Arc::new(vec![0.0; 4]);
        Frame {
            index,
            t: 10 - index,
            log_snr: index as f64,
            shape: [1, 1, 2, 2],
            x_t: values.clone(),
            x0_pred: values.clone(),
            eps: values.clone(),
            decoded: decoded.then(|| Decoded { shape: [1, 1, 4, 4], x_t: values.clone(), x0_pred: values.clone() }),
            parts: None,
        }
    }

    #[test]
    fn undecoded_frames_are_decoded_newest_first_and_a_request_jumps_the_queue() {
        let mut backlog = DecodeBacklog::new(3, "latent".into());
        backlog.record(&frame(0, true));
        for index in 1..5 {
            backlog.record(&frame(index, false));
        }
        backlog.record(&frame(5, true));
        backlog.prioritize(2);
        // Decoded and unknown frames are not queued.
        backlog.prioritize(5);
        let mut order = Vec::new();
        while let Some((index, recorded)) = backlog.next() {
            let recorded = recorded.map(|f| (f.index, f.decoded.is_some()));
            assert_eq!(recorded, Some((index, false)), "the frame is kept without its pixels");
            order.push(index);
        }
        assert_eq!(order, [2, 4, 3, 1]);
        assert!(!backlog.has_pending());
    }
}
