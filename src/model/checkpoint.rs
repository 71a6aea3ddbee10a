//! One file per model: a header (what it is, its config, the schedule and λ range it was trained on) and
//! named sections of burnpack bytes (weights; for training checkpoints also the raw weights and the
//! optimizer state).
//!
//! Layout: `MAGIC` (8 bytes) | format version (u32 LE) | header length (u32 LE) | header (JSON) | sections,
//! back to back, in the order and with the lengths the header lists.

use std::path::Path;

use burn::module::Module;
use burn::store::{BurnpackStore, FloatCastAdapter, HalfPrecisionAdapter, ModuleSnapshot};
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::diffusion::BetaSchedule;

pub const MAGIC: &[u8; 8] = b"DIFFLAB\0";
pub const FORMAT_VERSION: u32 = 1;
/// Guards against reading a huge "header" out of a file that is something else.
const MAX_HEADER_LEN: u32 = 16 << 20;

/// What a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// ε_θ on pixels.
    Unet,
    /// ε_θ in an autoencoder's latent space.
    LatentUnet,
    Autoencoder,
    Classifier,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Unet => "a pixel-space UNet",
            ModelKind::LatentUnet => "a latent-space UNet",
            ModelKind::Autoencoder => "an autoencoder",
            ModelKind::Classifier => "a classifier",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionEntry {
    pub name: String,
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub kind: ModelKind,
    /// The module's `#[derive(Config)]`, as JSON.
    pub config: serde_json::Value,
    /// The schedule the model was trained around (the app's default for it).
    pub training_schedule: Option<BetaSchedule>,
    /// The range of λ = log-SNR the model saw in training: (lowest, highest).
    pub log_snr_range: Option<(f64, f64)>,
    /// Optimizer steps taken.
    pub step: u64,
    /// Anything else worth keeping beside the weights (training settings, data, scores).
    #[serde(default)]
    pub extra: serde_json::Value,
    pub sections: Vec<SectionEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a diffusion-lab checkpoint: the file does not start with the checkpoint signature")]
    NotACheckpoint,
    #[error("checkpoint format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("the checkpoint is truncated: {what} needs {needed} bytes but only {available} are left")]
    Truncated { what: String, needed: u64, available: u64 },
    #[error("the checkpoint's header is damaged: {0}")]
    Header(String),
    #[error("wrong kind of checkpoint: it holds {found}, expected {expected}")]
    WrongKind { expected: ModelKind, found: ModelKind },
    #[error("the checkpoint has no `{0}` section")]
    MissingSection(String),
    #[error("the checkpoint's {section} do not fit the model: {detail}")]
    Weights { section: String, detail: String },
}

/// A checkpoint in memory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    sections: Vec<Vec<u8>>,
}

impl Checkpoint {
    pub fn new(header: CheckpointHeader) -> Self {
        Self { header: CheckpointHeader { sections: Vec::new(), ..header }, sections: Vec::new() }
    }

    pub fn with_section(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.header.sections.push(SectionEntry { name: name.to_owned(), len: bytes.len() as u64 });
        self.sections.push(bytes);
        self
    }

    pub fn section(&self, name: &str) -> Result<&[u8], CheckpointError> {
        self.header
            .sections
            .iter()
            .position(|s| s.name == name)
            .map(|i| self.sections[i].as_slice())
            .ok_or_else(|| CheckpointError::MissingSection(name.to_owned()))
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.header.sections.iter().any(|s| s.name == name)
    }

    /// Errors unless this checkpoint holds `expected`.
    pub fn expect_kind(&self, expected: ModelKind) -> Result<(), CheckpointError> {
        match self.header.kind {
            found if found == expected => Ok(()),
            found => Err(CheckpointError::WrongKind { expected, found }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let total = 16 + header.len() + self.sections.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for section in &self.sections {
            out.extend_from_slice(section);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(8, "the signature").map_err(|_| CheckpointError::NotACheckpoint)? != MAGIC {
            return Err(CheckpointError::NotACheckpoint);
        }
        let version = reader.u32("the format version")?;
        if version != FORMAT_VERSION {
            return Err(CheckpointError::Version { found: version });
        }
        let header_len = reader.u32("the header length")?;
        if header_len > MAX_HEADER_LEN {
            return Err(CheckpointError::Header(format!("header length {header_len} is implausible")));
        }
        let header: CheckpointHeader = serde_json::from_slice(reader.take(header_len as u64, "the header")?)
            .map_err(|e| CheckpointError::Header(e.to_string()))?;
        let mut sections = Vec::with_capacity(header.sections.len());
        for entry in &header.sections {
            sections.push(reader.take(entry.len, &format!("section `{}`", entry.name))?.to_vec());
        }
        if reader.at != bytes.len() {
            return Err(CheckpointError::Header(format!(
                "{} unexpected bytes after the last section",
                bytes.len() - reader.at
            )));
        }
        Ok(Self { header, sections })
    }

    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        Self::from_bytes(&std::fs::read(path)?)
    }

    /// Writes the checkpoint to a temporary file beside `path`, then renames it into place.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        Ok(crate::files::write_atomic(path, &self.to_bytes())?)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64, what: &str) -> Result<&'a [u8], CheckpointError> {
        let available = (self.bytes.len() - self.at) as u64;
        if len > available {
            return Err(CheckpointError::Truncated { what: what.to_owned(), needed: len, available });
        }
        let slice = &self.bytes[self.at..self.at + len as usize];
        self.at += len as usize;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        let raw = self.take(4, what)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }
}

/// A module's parameters as burnpack bytes; `half` stores them as f16 (half the size; outputs move ~1e-3).
pub fn bytes_from_module<M: Module>(module: &M, half: bool) -> Result<Vec<u8>, CheckpointError> {
    let mut store = BurnpackStore::from_bytes(None);
    if half {
        store = store.with_to_adapter(HalfPrecisionAdapter::new());
    }
    let weights_error = |detail: String| CheckpointError::Weights { section: "weights".into(), detail };
    module.save_into(&mut store).map_err(|e| weights_error(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| weights_error(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Loads burnpack bytes into `module` (which fixes the architecture); every parameter must be present and fit.
pub fn module_from_bytes<M: Module>(mut module: M, bytes: &[u8], section: &str) -> Result<M, CheckpointError> {
    let weights_error = |detail: String| CheckpointError::Weights { section: section.to_owned(), detail };
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())))
        // Whatever precision the file holds, compute in f32.
        .with_from_adapter(FloatCastAdapter::to(burn::tensor::DType::F32));
    let result = module.load_from(&mut store).map_err(|e| weights_error(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(weights_error(format!("{:?}", result.errors)));
    }
    if !result.missing.is_empty() {
        let names: Vec<&str> = result.missing.iter().map(|(name, _)| name.as_str()).take(5).collect();
        return Err(weights_error(format!("{} parameters missing, e.g. {}", result.missing.len(), names.join(", "))));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UNet, UNetConfig};
    use burn::prelude::*;

    fn tiny_config() -> UNetConfig {
        UNetConfig::tiny()
    }

    fn header(kind: ModelKind) -> CheckpointHeader {
        CheckpointHeader {
            kind,
            config: serde_json::to_value(tiny_config()).unwrap(),
            training_schedule: Some(BetaSchedule::cosine(1000)),
            log_snr_range: Some((-20.0, 10.0)),
            step: 42,
            extra: serde_json::json!({"note": "test"}),
            sections: Vec::new(),
        }
    }

    fn output(model: &UNet, device: &Device) -> Vec<f32> {
        let x = crate::diffusion::NoiseSource::new(1).tensor([2, 1, 8, 8], device);
        let log_snr = Tensor::<1>::from_floats([-3.0, 4.0], device);
        let class = Tensor::<1, Int>::from_ints([1, 10], device);
        model.forward(x, log_snr, class).into_data().try_to_vec().unwrap()
    }

    #[test]
    fn round_trip_keeps_header_and_outputs() {
        let device = Device::flex();
        let model = tiny_config().init(&device);
        let weights = bytes_from_module(&model, false).unwrap();
        let checkpoint = Checkpoint::new(header(ModelKind::Unet)).with_section("weights", weights);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.dlab");
        checkpoint.write(&path).unwrap();

        let loaded = Checkpoint::read(&path).unwrap();
        assert_eq!(loaded.header, checkpoint.header);
        let config: UNetConfig = serde_json::from_value(loaded.header.config.clone()).unwrap();
        let restored = module_from_bytes(config.init(&device), loaded.section("weights").unwrap(), "weights").unwrap();
        assert_eq!(output(&model, &device), output(&restored, &device));
    }

    #[test]
    fn half_precision_is_half_the_size_and_close() {
        let device = Device::flex();
        let model = tiny_config().init(&device);
        let full = bytes_from_module(&model, false).unwrap();
        let half = bytes_from_module(&model, true).unwrap();
        assert!(half.len() < full.len() * 13 / 20, "{} vs {}", half.len(), full.len());
        let restored = module_from_bytes(tiny_config().init(&device), &half, "weights").unwrap();
        for (a, b) in output(&model, &device).iter().zip(output(&restored, &device)) {
            assert!((a - b).abs() < 2e-2 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let device = Device::flex();
        let weights = bytes_from_module(&tiny_config().init(&device), false).unwrap();
        let good = Checkpoint::new(header(ModelKind::Unet)).with_section("weights", weights).to_bytes();

        let err = |bytes: &[u8]| Checkpoint::from_bytes(bytes).unwrap_err();
        assert!(matches!(err(b"PNG\x89 not a checkpoint at all"), CheckpointError::NotACheckpoint));
        assert!(matches!(err(b"DIF"), CheckpointError::NotACheckpoint));

        let mut other_version = good.clone();
        other_version[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            err(&other_version).to_string(),
            "checkpoint format version 7 is not supported (this build reads version 1)"
        );

        let truncated = err(&good[..good.len() - 100]);
        assert!(matches!(truncated, CheckpointError::Truncated { .. }), "{truncated}");
        assert!(truncated.to_string().contains("section `weights`"), "{truncated}");
        assert!(matches!(err(&good[..14]), CheckpointError::Truncated { .. }));

        let mut damaged_header = good.clone();
        damaged_header[17] = b'#';
        assert!(matches!(err(&damaged_header), CheckpointError::Header(_)));

        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        assert!(matches!(err(&trailing), CheckpointError::Header(_)));

        let wrong_kind = Checkpoint::new(header(ModelKind::Autoencoder));
        assert_eq!(
            wrong_kind.expect_kind(ModelKind::Unet).unwrap_err().to_string(),
            "wrong kind of checkpoint: it holds an autoencoder, expected a pixel-space UNet"
        );
        assert!(matches!(wrong_kind.section("weights"), Err(CheckpointError::MissingSection(_))));
    }

    #[test]
    fn weights_of_another_architecture_are_rejected() {
        let device = Device::flex();
        let weights = bytes_from_module(&tiny_config().init(&device), false).unwrap();
        let bigger = tiny_config().with_channels(vec![8, 16, 16]).init(&device);
        assert!(matches!(module_from_bytes(bigger, &weights, "weights"), Err(CheckpointError::Weights { .. })));
        let garbage = module_from_bytes(tiny_config().init(&device), b"garbage bytes", "weights");
        assert!(matches!(garbage, Err(CheckpointError::Weights { .. })));
    }
}
