//! The Generate panel: model, batch, class, guidance, sampler, seed; Generate / Cancel; Save.

use eframe::egui;

use super::LabApp;
use crate::data::FASHION_MNIST_CLASSES;
use crate::diffusion::{DdpmVariance, Method, Sampler, Spacing};
use crate::engine::DeviceChoice;
use crate::engine::generate::MAX_BATCH;

fn device_label(choice: DeviceChoice) -> &'static str {
    match choice {
        DeviceChoice::Auto => "auto (GPU if there is one)",
        DeviceChoice::Cpu => "CPU",
        DeviceChoice::Wgpu => "wgpu (any adapter)",
    }
}

fn class_name(class: Option<usize>, num_classes: usize) -> String {
    match class {
        None => "any (unconditional)".into(),
        Some(c) if num_classes == FASHION_MNIST_CLASSES.len() && c < num_classes => {
            format!("{c}: {}", FASHION_MNIST_CLASSES[c])
        }
        Some(c) => format!("class {c}"),
    }
}

pub fn generate_panel_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    ui.heading("Generate");
    let model_names: Vec<String> = app.models.iter().map(|m| m.name.clone()).collect();
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Model").selected_text(app.settings.model.clone()).show_ui(ui, |ui| {
            for name in &model_names {
                ui.selectable_value(&mut app.settings.model, name.clone(), name);
            }
        });
        if ui.button("Open checkpoint…").on_hover_text("A model file written by diffusion-lab train").clicked() {
            if !app.file_dialogs {
                app.set_status(format!("{}: cannot choose a checkpoint", super::dialogs::NO_DIALOG), true);
                return;
            }
            let events = app.file_events();
            let ctx = ui.ctx().clone();
            std::thread::spawn(move || {
                if let Some(path) = rfd::FileDialog::new().add_filter("diffusion-lab checkpoint", &["dlab"]).pick_file()
                {
                    let _ = events.send(super::FileEvent::CheckpointPicked(path));
                    ctx.request_repaint();
                }
            });
        }
    });
    if let Some(info) = app.model_info() {
        ui.weak(format!(
            "{} parameters, trained {} steps, {}x{}x{}",
            info.parameters,
            info.header.step,
            info.config.image_channels,
            info.config.image_size,
            info.config.image_size
        ));
    }
    let num_classes = app.model_info().map_or(FASHION_MNIST_CLASSES.len(), |m| m.config.num_classes);
    let previous_device = app.settings.device;
    egui::ComboBox::from_label("Device").selected_text(device_label(app.settings.device)).show_ui(ui, |ui| {
        for choice in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
            ui.selectable_value(&mut app.settings.device, choice, device_label(choice));
        }
    });
    if app.settings.device != previous_device {
        app.cancel();
        app.device = None;
        app.engine.set_device(app.settings.device);
    }

    ui.add(egui::Slider::new(&mut app.settings.batch, 1..=MAX_BATCH).text("Batch"));
    egui::ComboBox::from_label("Class").selected_text(class_name(app.settings.class, num_classes)).show_ui(ui, |ui| {
        ui.selectable_value(&mut app.settings.class, None, class_name(None, num_classes));
        for c in 0..num_classes {
            ui.selectable_value(&mut app.settings.class, Some(c), class_name(Some(c), num_classes));
        }
    });
    ui.add_enabled(
        app.settings.class.is_some(),
        egui::Slider::new(&mut app.settings.guidance, 0.0..=10.0).step_by(0.1).text("Guidance"),
    )
    .on_hover_text("Classifier-free guidance w: 0 = unconditional, 1 = conditional, more = stronger class");

    sampler_ui(ui, "", &mut app.settings.sampler, app.settings.schedule.steps);
    let latent = app.model_info().is_some_and(|m| m.is_latent);
    let clip_label = if latent {
        format!("Clip predicted z_0 to ±{}", crate::model::autoencoder::LATENT_X0_BOUND)
    } else {
        "Clip predicted x_0 to [-1, 1]".to_string()
    };
    ui.checkbox(&mut app.settings.sampler.clip_x0, clip_label).on_hover_text(
        "At t = T, ᾱ_T is tiny, and x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t) magnifies the network's error: \
         clipping keeps x̂_0 in the data range",
    );
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut app.settings.seed).prefix("Seed ")).on_hover_text("Seed");
        if ui.button("New seed").clicked() {
            app.settings.seed = rand::random::<u32>() as u64;
        }
    });

    ui.add_space(6.0);
    super::compare::compare_panel_ui(app, ui);
    ui.add_space(6.0);
    let blocker = app.generate_blocker();
    ui.horizontal(|ui| {
        let generate = ui.add_enabled(blocker.is_none(), egui::Button::new("Generate")).on_hover_text("Ctrl+Enter");
        if generate.clicked() {
            app.start_generate();
        }
        if ui.add_enabled(app.is_running(), egui::Button::new("Cancel")).on_hover_text("Esc").clicked() {
            app.cancel();
        }
    });
    if let Some(reason) = blocker {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Generate is off: {reason}"));
    }

    ui.add_space(6.0);
    super::export::export_buttons_ui(app, ui);
}

/// The sampler's controls: method, then what that method has (steps and spacing; η for DDIM; the
/// variance for DDPM). `schedule_steps` (T) bounds the steps; `prefix` starts every label (B's are "B: ").
pub fn sampler_ui(ui: &mut egui::Ui, prefix: &str, sampler: &mut Sampler, schedule_steps: usize) {
    egui::ComboBox::from_label(format!("{prefix}Sampler"))
        .selected_text(sampler.method.label())
        .show_ui(ui, |ui| {
            for method in Method::ALL {
                ui.selectable_value(&mut sampler.method, method, method.label());
            }
        })
        .response
        .on_hover_text("How each step moves towards the clean image; DPM++ 2M needs the fewest steps");
    if sampler.method.has_steps() {
        let max_steps = schedule_steps.max(1);
        sampler.steps = sampler.steps.clamp(1, max_steps);
        let evaluations = sampler.method.evaluations(sampler.steps);
        ui.add(egui::Slider::new(&mut sampler.steps, 1..=max_steps).logarithmic(true).text(format!("{prefix}Steps")))
            .on_hover_text(format!("{evaluations} network evaluations per image (twice that with guidance)"));
        egui::ComboBox::from_label(format!("{prefix}Spacing"))
            .selected_text(sampler.spacing.name())
            .show_ui(ui, |ui| {
                for spacing in Spacing::ALL {
                    ui.selectable_value(&mut sampler.spacing, spacing, spacing.name());
                }
            })
            .response
            .on_hover_text("Where the steps sit: trailing starts at pure noise; karras puts more steps at low noise");
    }
    match sampler.method {
        Method::Ddpm => {
            ui.horizontal(|ui| {
                ui.label(format!("{prefix}Variance:"));
                ui.selectable_value(&mut sampler.ddpm_variance, DdpmVariance::BetaTilde, "β̃_t");
                ui.selectable_value(&mut sampler.ddpm_variance, DdpmVariance::Beta, "β_t");
            });
        }
        Method::Ddim => {
            ui.add(egui::Slider::new(&mut sampler.eta, 0.0..=1.0).text(format!("{prefix}η")));
        }
        _ => {}
    }
}
