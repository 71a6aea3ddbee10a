//! The eframe window. Reads its state every frame; never runs a model itself.

use crate::diffusion::BetaSchedule;

/// Opens the main window and blocks until it is closed.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("diffusion-lab")
            .with_inner_size([1100.0, 720.0]),
        ..Default::default()
    };
    eframe::run_native("diffusion-lab", options, Box::new(|_cc| Ok(Box::new(LabApp::default()))))
        .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}

/// The app's state, read by the UI every frame.
#[derive(Default)]
pub struct LabApp {
    schedule: BetaSchedule,
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut eframe::egui::Ui, _frame: &mut eframe::Frame) {
        eframe::egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("diffusion-lab");
            ui.label("Watch a diffusion model turn noise into an image, step by step.");
            match self.schedule.build() {
                Ok(s) => {
                    let (noisiest, cleanest) = s.log_snr_range();
                    ui.label(format!(
                        "Schedule: {} with T = {}, ᾱ_T = {:.3e}, log-SNR from {cleanest:.2} down to {noisiest:.2}",
                        s.source.kind,
                        s.steps(),
                        s.alpha_bar[s.steps() - 1],
                    ));
                }
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, e.to_string());
                }
            }
        });
    }
}
