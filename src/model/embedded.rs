//! Models compiled into the binary, so that a fresh build generates offline. Each was trained by this
//! project's own `train` command; how is written in assets/models/README.md.

/// A diffusion model built into the binary.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedModel {
    /// The name the app shows.
    pub name: &'static str,
    /// The name `--model` takes on the command line.
    pub short_name: &'static str,
    /// The UNet's checkpoint.
    pub unet: &'static [u8],
    /// For a latent model, the autoencoder whose latent space it works in.
    pub autoencoder: Option<&'static [u8]>,
    /// Autoguidance's weaker model: an earlier checkpoint of the same training run's kind (Karras et al.
    /// 2024 guide with a smaller, shorter-trained version of the model).
    pub guide: Option<&'static [u8]>,
}

pub const MODELS: &[EmbeddedModel] = &[
    EmbeddedModel {
        name: "Fashion-MNIST (pixel UNet)",
        short_name: "fashion",
        unet: FASHION_UNET,
        autoencoder: None,
        guide: Some(FASHION_UNET_GUIDE),
    },
    EmbeddedModel {
        name: "Fashion-MNIST (latent UNet)",
        short_name: "latent",
        unet: FASHION_LATENT_UNET,
        autoencoder: Some(FASHION_AUTOENCODER),
        guide: Some(FASHION_LATENT_UNET_GUIDE),
    },
    EmbeddedModel {
        name: "Fashion-MNIST (text, latent UNet)",
        short_name: "fashion-text",
        unet: FASHION_TEXT_UNET,
        autoencoder: Some(FASHION_AUTOENCODER),
        guide: Some(FASHION_TEXT_UNET_GUIDE),
    },
];

/// The embedded model `--model short_name` means.
pub fn model_by_short_name(short_name: &str) -> Option<&'static EmbeddedModel> {
    MODELS.iter().find(|m| m.short_name == short_name)
}

/// The embedded model the app shows as `name`.
pub fn model_by_name(name: &str) -> Option<&'static EmbeddedModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// The pixel-space UNet trained on Fashion-MNIST: EMA weights in f16, with its config and schedule.
pub const FASHION_UNET: &[u8] = include_bytes!("../../assets/models/fashion-unet.dlab");

/// The UNet of latent diffusion: the same network and trainer, on the autoencoder's 4x7x7 latents.
pub const FASHION_LATENT_UNET: &[u8] = include_bytes!("../../assets/models/fashion-latent-unet.dlab");

/// The text-conditioned latent UNet: the latent model's network with τ_θ a text encoder over prompts, trained
/// on captions measured from each training image (`train --captions`).
pub const FASHION_TEXT_UNET: &[u8] = include_bytes!("../../assets/models/fashion-text-unet.dlab");

/// Autoguidance's weaker models: each built-in model's own run earlier (the repository's history): the pixel
/// UNet at step 5000 of 10 000 (commit 2a05ab6), the latent UNet at 3000 of 12 000 (c398dc5, with today's
/// autoencoder, unchanged since), the text UNet at 1000 of 12 000 (f04cd27).
pub const FASHION_UNET_GUIDE: &[u8] = include_bytes!("../../assets/models/guides/fashion-unet-5000.dlab");
pub const FASHION_LATENT_UNET_GUIDE: &[u8] = include_bytes!("../../assets/models/guides/fashion-latent-unet-3000.dlab");
pub const FASHION_TEXT_UNET_GUIDE: &[u8] = include_bytes!("../../assets/models/guides/fashion-text-unet-1000.dlab");

/// Latent diffusion's autoencoder (E and D, f16, with its latent scale); the discriminator stays behind.
pub const FASHION_AUTOENCODER: &[u8] = include_bytes!("../../assets/models/fashion-autoencoder.dlab");

/// The Fashion-MNIST classifier `eval` uses as its judge.
pub const FASHION_CLASSIFIER: &[u8] = include_bytes!("../../assets/models/fashion-classifier.dlab");
