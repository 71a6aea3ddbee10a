//! The cross-attention part of "This step": a run's attention asked of the engine once the run is
//! complete, its maps as an overlay of the picture on screen, and the pickers (word, layer, token, head).

use std::sync::Arc;

use eframe::egui;

use super::StepPanel;
use super::pictures::{digested, heat_overlay, value_range};
use crate::app::state::{AttentionPick, Trajectory};
use crate::diffusion::equation::number_text;
use crate::engine::GenerateRequest;
use crate::run::explain::{AttentionInput, StepAttention};

/// The cross-attention of a run's steps: asked of the engine once the run is complete, then kept.
pub(super) enum Attention {
    /// Asked for (the inputs go out with the next [`StepPanel::take_attention_request`]).
    Asked(Option<Box<(GenerateRequest, Vec<AttentionInput>)>>),
    Ready(Arc<Vec<StepAttention>>),
    Failed(String),
}

/// Steps whose attention is read at most: a 1000-step DDPM run is sampled evenly.
const ATTENTION_STEPS: usize = 60;

impl StepPanel {
    /// The attention map `pick` of the frame under `cursor` (or summed over the steps) as an overlay laid
    /// out like the picture on screen; asks the engine for the run's attention the first time.
    pub fn attention_overlay(
        &mut self,
        ctx: &egui::Context,
        trajectory: &Trajectory,
        serial: u64,
        cursor: usize,
        display: [usize; 4],
        pick: AttentionPick,
    ) -> Option<egui::TextureHandle> {
        let steps = self.attention_for(trajectory, serial)?;
        let batch = trajectory.request.batch;
        if display[0] != batch {
            return None;
        }
        let index = trajectory.frames.get(cursor)?.index;
        let chosen: Vec<&StepAttention> = if pick.summed {
            steps.iter().collect()
        } else {
            steps.iter().filter(|s| s.frame_index == index).collect()
        };
        let first = chosen.first()?.layers.get(pick.layer)?;
        let (h, w, token) = (first.height, first.width, pick.token.min(first.tokens.saturating_sub(1)));
        let mut maps = vec![0.0f32; batch * h * w];
        for step in &chosen {
            let Some(layer) = step.layers.get(pick.layer) else { continue };
            for b in 0..batch {
                for (m, v) in maps[b * h * w..(b + 1) * h * w].iter_mut().zip(layer.map(b, token, pick.head)) {
                    *m += v;
                }
            }
        }
        let key = (serial ^ (pick_code(pick) << 40), if pick.summed { usize::MAX } else { index }, display);
        self.overlay_range = Some(value_range(&maps));
        let digest = &mut self.overlay_digest;
        self.overlay.get(ctx, key, || Some(digested(heat_overlay(&maps, [batch, 1, h, w], display), digest)))
    }

    /// The run's attention if it has arrived; asks for it (once per run, when the run is complete).
    fn attention_for(&mut self, trajectory: &Trajectory, serial: u64) -> Option<Arc<Vec<StepAttention>>> {
        match &self.attention {
            Some((s, Attention::Ready(steps))) if *s == serial => return Some(steps.clone()),
            Some((s, _)) if *s == serial => return None,
            _ => {}
        }
        if !trajectory.is_complete() {
            return None;
        }
        let pairs: Vec<(usize, usize)> = (1..trajectory.frames.len())
            .filter(|k| trajectory.frames[*k - 1].index + 1 == trajectory.frames[*k].index)
            .map(|k| (k - 1, k))
            .collect();
        let every = pairs.len().div_ceil(ATTENTION_STEPS).max(1);
        let inputs = pairs
            .iter()
            .enumerate()
            .filter(|(n, _)| n % every == 0)
            .map(|(_, (before, after))| AttentionInput {
                frame_index: trajectory.frames[*after].index,
                log_snr: trajectory.frames[*before].log_snr,
                x_t: trajectory.frames[*before].x_t.clone(),
            })
            .collect();
        self.attention = Some((serial, Attention::Asked(Some(Box::new((trajectory.request.clone(), inputs))))));
        None
    }

    /// Whether the cross-attention of run `serial` has arrived.
    pub fn attention_ready(&self, serial: u64) -> bool {
        matches!(&self.attention, Some((s, Attention::Ready(_))) if *s == serial)
    }

    /// The attention request waiting to go to the engine, as (run serial, request, inputs).
    pub fn take_attention_request(&mut self) -> Option<(u64, GenerateRequest, Vec<AttentionInput>)> {
        match &mut self.attention {
            Some((serial, Attention::Asked(asked))) => asked.take().map(|asked| (*serial, asked.0, asked.1)),
            _ => None,
        }
    }

    /// The engine's answer for run `key` (ignored when the viewer shows another run by now).
    pub fn on_attention(&mut self, key: u64, attention: Result<Arc<Vec<StepAttention>>, String>) {
        if self.attention.as_ref().is_some_and(|(serial, _)| *serial == key) {
            let state = match attention {
                Ok(steps) => Attention::Ready(steps),
                Err(message) => Attention::Failed(message),
            };
            self.attention = Some((key, state));
        }
    }

    /// A text model's prompt as buttons, one per token: the start token, each word, the padding after the
    /// last word. Clicking one shows its attention map; each carries its share of the attention (at the
    /// layer picked, over the run's steps, positions, heads and images), and the shares sum to 1.
    pub fn word_picker_ui(&mut self, ui: &mut egui::Ui, words: &[String], pick: &mut AttentionPick) {
        let shares = self.token_shares(pick.layer).map(<[f32]>::to_vec);
        let share_of = |token: usize| shares.as_ref().and_then(|s| s.get(token)).copied();
        let padding_share = shares.as_ref().map(|s| s.iter().skip(words.len() + 1).sum::<f32>());
        ui.horizontal_wrapped(|ui| {
            ui.label("Click a word:");
            let mut button = |ui: &mut egui::Ui, token: usize, text: &str, share: Option<f32>| {
                let label = match share {
                    Some(share) => format!("{text} {:.0} %", 100.0 * share),
                    None => text.to_string(),
                };
                if ui.selectable_label(pick.token == token, label).clicked() {
                    pick.token = token;
                }
            };
            button(ui, 0, "<start>", share_of(0));
            for (k, word) in words.iter().enumerate() {
                button(ui, k + 1, word, share_of(k + 1));
            }
            button(ui, words.len() + 1, "padding", padding_share);
        });
        ui.label(
            "Each word's share: of all the attention this layer paid, the part that went to that word's token \
             (the start token and the padding after the last word also read the prompt, and take the rest)",
        );
    }

    /// Each token's share of layer `layer`'s attention over the run's steps (mean over images, heads and
    /// positions), once the run's attention has arrived; kept for the run and layer.
    fn token_shares(&mut self, layer: usize) -> Option<&[f32]> {
        let Some((serial, Attention::Ready(steps))) = &self.attention else { return None };
        self.token_shares.get((*serial, layer), |_| mean_token_shares(steps, layer)).as_deref()
    }

    /// The attention overlay's pickers (layer, token, head, summed) and what it shows.
    pub fn attention_picker_ui(&mut self, ui: &mut egui::Ui, pick: &mut AttentionPick) {
        let layers: Vec<(String, usize, usize)> = match &self.attention {
            Some((_, Attention::Ready(steps))) => steps
                .first()
                .map(|s| s.layers.iter().map(|l| (l.layer.clone(), l.tokens, l.heads)).collect())
                .unwrap_or_default(),
            Some((_, Attention::Failed(message))) => {
                ui.label(format!("attention: {message}"));
                Vec::new()
            }
            Some((_, Attention::Asked(_))) => {
                ui.label("reading attention…");
                Vec::new()
            }
            None => {
                ui.label("attention is read once the run is complete");
                Vec::new()
            }
        };
        let Some((_, tokens, heads)) = layers.get(pick.layer.min(layers.len().saturating_sub(1))).cloned() else {
            return;
        };
        pick.layer = pick.layer.min(layers.len() - 1);
        egui::ComboBox::from_label("Layer").selected_text(layers[pick.layer].0.clone()).show_ui(ui, |ui| {
            for (k, (name, ..)) in layers.iter().enumerate() {
                ui.selectable_value(&mut pick.layer, k, name);
            }
        });
        let mut token = pick.token.min(tokens - 1) + 1;
        let label = ui.label("Token");
        ui.add(egui::DragValue::new(&mut token).range(1..=tokens).suffix(format!(" of {tokens}")))
            .labelled_by(label.id)
            .on_hover_text("Which of the class's τ_θ(y) tokens: the map shows how much each position attends to it");
        pick.token = token - 1;
        let head_text = |h: Option<usize>| h.map_or("mean of heads".to_string(), |h| format!("head {}", h + 1));
        egui::ComboBox::from_label("Head").selected_text(head_text(pick.head)).show_ui(ui, |ui| {
            ui.selectable_value(&mut pick.head, None, head_text(None));
            for h in 0..heads {
                ui.selectable_value(&mut pick.head, Some(h), head_text(Some(h)));
            }
        });
        ui.checkbox(&mut pick.summed, "Summed over steps")
            .on_hover_text("Add the maps of every step (as DAAM does) instead of the step on screen");
        if let Some((low, high)) = self.overlay_range {
            let what = if pick.summed { "summed over the steps" } else { "at this step" };
            ui.label(format!(
                "colours: {} (clear) to {} (red), {what}",
                number_text(low as f64),
                number_text(high as f64)
            ));
        }
        ui.label("softmax(Q K^T / sqrt(d)): the share of each position's attention that goes to the token")
            .on_hover_text(
                "Q from the image features at this layer, K from τ_θ(y); the shares sum to 1 over the tokens",
            );
    }
}

/// Each token's mean weight in layer `layer` over `steps`, images, heads and positions.
fn mean_token_shares(steps: &[StepAttention], layer: usize) -> Option<Vec<f32>> {
    let mut shares: Vec<f32> = Vec::new();
    let mut rows = 0usize;
    for step in steps {
        let l = step.layers.get(layer)?;
        shares.resize(l.tokens, 0.0);
        for row in l.weights.chunks_exact(l.tokens.max(1)) {
            shares.iter_mut().zip(row).for_each(|(s, w)| *s += w);
            rows += 1;
        }
    }
    (rows > 0).then(|| shares.iter().map(|s| s / rows as f32).collect())
}

/// A number that tells picks apart in a texture key.
fn pick_code(pick: AttentionPick) -> u64 {
    (pick.layer as u64) << 16
        | (pick.token as u64) << 8
        | pick.head.map_or(255, |h| h as u64)
        | u64::from(pick.summed) << 20
}
