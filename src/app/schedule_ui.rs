//! The Schedule panel: kind, T, β_start, β_end, and live plots of β_t, ᾱ_t and log-SNR beside the
//! schedule the model was trained around.

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::context::{PanelContext, Request};
use crate::diffusion::{BetaSchedule, ScheduleKind};

/// The curves of one schedule against t / T (so schedules with different T line up).
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub source: BetaSchedule,
    pub beta: Vec<[f64; 2]>,
    pub alpha_bar: Vec<[f64; 2]>,
    pub log_snr: Vec<[f64; 2]>,
    /// (λ_T, λ_1): the noisiest and the cleanest level visited.
    pub log_snr_range: (f64, f64),
}

/// At most this many points per curve: plenty for a few hundred pixels of plot.
const MAX_POINTS: usize = 500;

impl Curves {
    pub fn of(schedule: &BetaSchedule) -> Option<Self> {
        let s = schedule.build().ok()?;
        let n = s.steps();
        let stride = n.div_ceil(MAX_POINTS).max(1);
        let points = |values: &[f64]| -> Vec<[f64; 2]> {
            (0..n)
                .step_by(stride)
                .chain(std::iter::once(n - 1))
                .map(|i| [(i + 1) as f64 / n as f64, values[i]])
                .collect()
        };
        Some(Self {
            source: *schedule,
            beta: points(&s.beta),
            alpha_bar: points(&s.alpha_bar),
            log_snr: points(&s.log_snr),
            log_snr_range: s.log_snr_range(),
        })
    }
}

/// Why the edited schedule is a problem for the chosen model, if it is.
pub fn range_warning(edited: (f64, f64), trained: Option<(f64, f64)>) -> Option<String> {
    let (low, high) = trained?;
    let (noisiest, cleanest) = edited;
    // A few tenths of λ are ᾱ differences of a few 1e-5 at the clean end: not worth a warning.
    let slack = 0.25;
    if noisiest < low - slack || cleanest > high + slack {
        Some(format!(
            "This schedule visits log-SNR {noisiest:.1} .. {cleanest:.1}; the model was trained on \
             {low:.1} .. {high:.1}. Outside that range its predictions are extrapolations."
        ))
    } else {
        None
    }
}

/// The signal left at t = T beside the model's trained range, and, where x_T is not pure noise, the
/// warning with the measured cost and the fixes: raise T, raise β_end, reset, and a look at x_T next to
/// pure noise in the Forward process panel.
fn terminal_signal_ui(
    ctx: &mut PanelContext,
    ui: &mut egui::Ui,
    trained_range: Option<(f64, f64)>,
    trained_schedule: Option<BetaSchedule>,
) {
    let schedule = ctx.settings.schedule;
    let Ok(built) = schedule.build() else { return };
    let terminal = built.terminal_signal();
    ui.label(format!("Signal left at t = T: {}", terminal.describe()));
    let trained_end = trained_schedule.and_then(|s| s.build().ok()).map(|s| s.terminal_signal());
    match (trained_range, trained_end) {
        (Some((low, high)), Some(end)) => {
            ui.weak(format!(
                "The model was trained on λ from {low:.0} to {high:.0}; its own schedule ends at λ_T = {:.1}.",
                end.log_snr
            ));
        }
        (Some((low, high)), None) => {
            ui.weak(format!("The model was trained on λ from {low:.0} to {high:.0}."));
        }
        _ => {}
    }
    let Some(warning) = crate::diffusion::schedule::terminal_warning(&built) else { return };
    egui::Frame::group(ui.style()).stroke(egui::Stroke::new(1.0, ui.visuals().warn_fg_color)).show(ui, |ui| {
        ui.colored_label(ui.visuals().warn_fg_color, "x_T is not pure noise");
        ui.label(warning);
        let (steps, beta_end) = crate::diffusion::schedule::terminal_fixes(&schedule);
        ui.horizontal_wrapped(|ui| {
            if let Some(steps) = steps
                && ui.button(format!("Raise T to {steps}")).clicked()
            {
                ctx.settings.schedule.steps = steps;
            }
            if let Some(beta_end) = beta_end
                && ui.button(format!("Raise β_end to {beta_end}")).clicked()
            {
                ctx.settings.schedule.beta_end = beta_end;
            }
            if let Some(trained) = trained_schedule
                && ui.button("Use the model's schedule").clicked()
            {
                ctx.settings.schedule = trained;
            }
            if ui.button("Show x_T next to pure noise").on_hover_text("The Forward process panel at t = T").clicked() {
                ctx.requests.push(Request::ShowTerminalNoise);
            }
        });
    });
}

/// The Schedule panel: the β schedule's sliders and its curves beside the model's own.
#[derive(Default)]
pub struct SchedulePanel {
    /// The curves of the schedule being edited, recomputed when it changes.
    pub plotted: Option<Curves>,
}

impl SchedulePanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let top = ui.cursor().min;
        self.contents_ui(ui, ctx);
        let rect = egui::Rect::from_min_max(top, egui::pos2(ui.max_rect().right(), ui.cursor().min.y));
        ctx.mark(ui, rect, super::context::Highlight::Schedule);
    }

    fn contents_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Schedule");
        let schedule = &mut ctx.settings.schedule;
        let mut kind = schedule.kind;
        egui::ComboBox::from_label("Kind").selected_text(kind.name()).show_ui(ui, |ui| {
            for k in ScheduleKind::ALL {
                ui.selectable_value(&mut kind, k, k.name());
            }
        });
        if kind != schedule.kind {
            // A new kind starts from its usual β range.
            *schedule = BetaSchedule::default_for(kind, schedule.steps);
        }
        ui.add(
            egui::Slider::new(&mut schedule.steps, 1..=crate::diffusion::schedule::MAX_STEPS)
                .logarithmic(true)
                .text("T"),
        );
        ui.add_enabled_ui(kind.uses_beta_range(), |ui| {
            ui.add(egui::Slider::new(&mut schedule.beta_start, 1e-6..=0.5).logarithmic(true).text("β_start"));
            ui.add(egui::Slider::new(&mut schedule.beta_end, 1e-5..=0.999).logarithmic(true).text("β_end"));
        });
        if ui.button("Reset to the model's schedule").clicked()
            && let Some(trained) = ctx.model_info().and_then(|m| m.header.training_schedule)
        {
            ctx.settings.schedule = trained;
        }
        if ctx.settings.sampler.method.has_steps() {
            ctx.settings.sampler.steps = ctx.settings.sampler.steps.min(ctx.settings.schedule.steps).max(1);
        }

        let schedule = ctx.settings.schedule;
        if self.plotted.as_ref().is_none_or(|c| c.source != schedule) {
            self.plotted = Curves::of(&schedule);
        }
        let trained_schedule = ctx.model_info().and_then(|m| m.header.training_schedule);
        let trained_range = ctx.model_info().and_then(|m| m.header.log_snr_range);
        match (&self.plotted, schedule.validate()) {
            (_, Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Invalid schedule: {e}"));
            }
            (Some(curves), Ok(())) => {
                let edited_range = curves.log_snr_range;
                terminal_signal_ui(ctx, ui, trained_range, trained_schedule);
                if let Some(warning) = range_warning(edited_range, trained_range) {
                    ui.colored_label(ui.visuals().warn_fg_color, warning);
                }
            }
            (None, Ok(())) => {}
        }
        let trained_curves = trained_schedule.and_then(|s| Curves::of(&s));
        let edited = self.plotted.clone();
        for (title, pick) in [
            ("β_t", (|c: &Curves| c.beta.clone()) as fn(&Curves) -> Vec<[f64; 2]>),
            ("ᾱ_t", |c: &Curves| c.alpha_bar.clone()),
            ("log-SNR λ_t", |c: &Curves| c.log_snr.clone()),
        ] {
            ui.label(title);
            Plot::new(title)
                .height(110.0)
                .legend(Legend::default())
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .x_axis_label("t / T")
                .show(ui, |plot| {
                    if let Some(c) = &trained_curves {
                        plot.line(Line::new("trained", PlotPoints::from(pick(c))).color(Color32::GRAY));
                    }
                    if let Some(c) = &edited {
                        plot.line(Line::new("edited", PlotPoints::from(pick(c))).color(Color32::LIGHT_BLUE));
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_follow_the_schedule() {
        let linear = Curves::of(&BetaSchedule::linear(1000)).unwrap();
        assert!(linear.beta.len() <= MAX_POINTS + 1);
        assert_eq!(linear.beta.last().unwrap(), &[1.0, 0.02]);
        let mut steeper = BetaSchedule::linear(1000);
        steeper.beta_end = 0.04;
        assert_ne!(Curves::of(&steeper).unwrap().alpha_bar, linear.alpha_bar);
        assert!(Curves::of(&BetaSchedule { beta_start: 0.5, beta_end: 0.1, ..BetaSchedule::linear(10) }).is_none());
    }

    #[test]
    fn warns_only_outside_the_trained_range() {
        assert!(range_warning((-10.0, 9.0), Some((-20.0, 10.0))).is_none());
        assert!(range_warning((-25.0, 9.0), Some((-20.0, 10.0))).unwrap().contains("-25.0"));
        assert!(range_warning((-10.0, 13.8), Some((-20.0, 10.0))).is_some());
        assert!(range_warning((-10.0, 13.8), None).is_none());
    }
}
