//! Branch mode: B continues a run (A) from one of its steps with the settings on the left ("Continue from
//! here" below the timeline), beside it.

use eframe::egui;

use crate::app::context::PanelContext;
use crate::app::state::Settings;
use crate::app::viewer::TrajectoryViewer;
use crate::diffusion::Sampler;
use crate::engine::GenerateRequest;
use crate::run::generate::Branch;
use crate::run::grid::conditioning_caption;

/// The run (A) and the step B continues from, once "Continue from here" was pressed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BranchMode {
    pub branch: Option<Branch>,
}

impl BranchMode {
    /// The branch B runs in branch mode: A's run from the step chosen, with the settings on the left
    /// (class, guidance, sampler and steps, seed); the model, schedule, batch and starting picture are A's.
    pub fn request(&self, settings: &Settings) -> Option<GenerateRequest> {
        let branch = self.branch.as_ref()?;
        Some(GenerateRequest {
            sampler: Sampler { clip_x0: branch.parent.sampler.clip_x0, ..settings.sampler },
            seed: settings.seed,
            class: settings.class,
            guidance: settings.guidance,
            guidance_interval: settings.guidance_interval,
            guidance_method: Default::default(),
            interpolate: None,
            branch: Some(branch.clone()),
            ..(*branch.parent).clone()
        })
    }

    /// Why the branch cannot run, if it cannot.
    pub fn blocker(&self, ctx: &PanelContext) -> Option<String> {
        let Some(request) = self.request(&ctx.settings) else {
            return Some("nothing to continue: scrub a run to a step and press Continue from here".into());
        };
        let model = ctx.models.info(&request.model)?;
        request.validate(model.config.num_classes).err().map(|e| format!("the branch: {e}"))
    }

    /// Where the branch starts and what it changes, as its formula with the step's numbers; Save (B's image
    /// in `viewer_b`). Returns whether "Forget the branch" was pressed (the branch is then forgotten).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, viewer_b: &TrajectoryViewer) -> bool {
        let Some(branch) = &self.branch else {
            ui.label(
                "Scrub a run to any step and press \"Continue from here\" below the timeline: a new run starts from \
                 that x_t with the settings above and is shown beside it.",
            );
            return false;
        };
        ui.strong(format!("B continues A from its step {}", branch.at_step));
        if let Some(request) = self.request(&ctx.settings) {
            formula_ui(ui, branch, &request);
        }
        let parent = &branch.parent;
        // A text model's branch keeps A's prompt: its class setting is not what it draws.
        let changes =
            if parent.prompt.is_some() { "guidance, sampler or seed" } else { "class, guidance, sampler or seed" };
        ui.label(format!(
            "A: {}, y = {}, w = {}, seed {}. Everything up to step {} is A's; B changes only what follows. Change \
             the {changes} above and press Generate: if B still ends as A's garment, that much was already decided \
             at this noise level. The model, schedule and batch stay A's.",
            parent.sampler.label(),
            conditioning_caption(parent),
            parent.guidance,
            parent.seed,
            branch.at_step,
        ));
        let mut forget = false;
        ui.horizontal(|ui| {
            crate::app::export::save_image_button_ui(ui, ctx, viewer_b, "Save branch image…");
            forget = ui.button("Forget the branch").clicked();
        });
        if forget {
            self.branch = None;
        }
        forget
    }
}

/// Where B starts (A's x_t at the step, with its level) and what it runs from there.
fn formula_ui(ui: &mut egui::Ui, branch: &Branch, request: &GenerateRequest) {
    let Some((steps, level)) = branch.parent.schedule.build().ok().and_then(|s| {
        let (plan, level) = request.plan(&s).ok()?;
        Some((plan.len(), level))
    }) else {
        return;
    };
    ui.monospace(format!(
        "x_t(B) = x_t(A) at t = {}, λ = {:.2}\n  = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε, ᾱ = {:.4}\nthen {} steps of {}, y = {}, w = {}",
        level.t,
        level.log_snr,
        level.alpha_bar,
        steps,
        request.sampler.label(),
        conditioning_caption(request),
        request.guidance,
    ));
}
