//! Which model: one built into the binary, or a checkpoint file the user opened.

use std::path::PathBuf;

/// A model's identity. Its [`ModelId::label`] is the one name the window's picker, the engine's table of
/// loaded models, PNG settings and the command line all use, so that they cannot disagree: two ids are the
/// same model when their labels are equal.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum ModelId {
    /// An embedded model, by its name in [`super::embedded::MODELS`].
    BuiltIn(String),
    /// A checkpoint file written by `train`.
    File(PathBuf),
    /// What a training run in the window hands to Generate, by its run folder's name.
    Trained(String),
}

/// What a file's label starts with; a built-in name never does.
const FILE_PREFIX: &str = "file: ";
/// What the label of a model trained in the window starts with.
const TRAINED_PREFIX: &str = "trained: ";

impl ModelId {
    /// "fashion-unet" for a built-in model, "file: NAME.dlab" for a file (its name, not its folder).
    pub fn label(&self) -> String {
        match self {
            ModelId::BuiltIn(name) => name.clone(),
            ModelId::File(path) => {
                let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                format!("{FILE_PREFIX}{name}")
            }
            ModelId::Trained(folder) => format!("{TRAINED_PREFIX}{folder}"),
        }
    }

    /// The id a label names (settings saved to disk or to a PNG keep the label).
    pub fn from_label(label: &str) -> Self {
        if let Some(name) = label.strip_prefix(FILE_PREFIX) {
            ModelId::File(PathBuf::from(name))
        } else if let Some(folder) = label.strip_prefix(TRAINED_PREFIX) {
            ModelId::Trained(folder.to_owned())
        } else {
            ModelId::BuiltIn(label.to_owned())
        }
    }

    /// The model a `--model` value names: a built-in model by its short name (`fashion`), else a file.
    pub fn of_model_flag(value: &str) -> Self {
        match super::embedded::model_by_short_name(value) {
            Some(builtin) => ModelId::BuiltIn(builtin.name.to_string()),
            None => ModelId::File(value.into()),
        }
    }

    /// The first embedded model: what a new window (or one whose chosen model failed) starts with.
    pub fn default_built_in() -> Self {
        ModelId::BuiltIn(super::embedded::MODELS.first().map(|m| m.name.to_string()).unwrap_or_default())
    }

    /// Whether this names a model built into the binary.
    pub fn is_built_in(&self) -> bool {
        matches!(self, ModelId::BuiltIn(name) if super::embedded::model_by_name(name).is_some())
    }
}

impl Default for ModelId {
    fn default() -> Self {
        ModelId::BuiltIn(String::new())
    }
}

impl PartialEq for ModelId {
    fn eq(&self, other: &Self) -> bool {
        self.label() == other.label()
    }
}

impl Eq for ModelId {}

impl std::hash::Hash for ModelId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.label().hash(state);
    }
}

impl PartialOrd for ModelId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ModelId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.label().cmp(&other.label())
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl From<String> for ModelId {
    fn from(label: String) -> Self {
        ModelId::from_label(&label)
    }
}

impl From<&str> for ModelId {
    fn from(label: &str) -> Self {
        ModelId::from_label(label)
    }
}

impl From<ModelId> for String {
    fn from(id: ModelId) -> Self {
        id.label()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_names_the_same_model_back() {
        let file = ModelId::File(PathBuf::from("/runs/a/unet.dlab"));
        assert_eq!(file.label(), "file: unet.dlab");
        assert_eq!(ModelId::from_label(&file.label()), file, "the folder is not part of the identity");
        let built_in = ModelId::BuiltIn("fashion-unet".into());
        assert_eq!(ModelId::from_label("fashion-unet"), built_in);
        assert_ne!(file, built_in);
        // Saved as the label, so settings and PNGs written before the type existed still load.
        assert_eq!(serde_json::to_string(&file).unwrap(), "\"file: unet.dlab\"");
        assert_eq!(serde_json::from_str::<ModelId>("\"fashion-unet\"").unwrap(), built_in);
        assert!(ModelId::default_built_in().is_built_in());
        assert!(!file.is_built_in());
        let fashion = crate::model::embedded::model_by_short_name("fashion").unwrap();
        assert_eq!(ModelId::of_model_flag("fashion"), ModelId::BuiltIn(fashion.name.into()));
        assert_eq!(ModelId::of_model_flag("runs/a/unet.dlab"), file);
        let trained = ModelId::Trained("run 1".into());
        assert_eq!(trained.label(), "trained: run 1");
        assert_eq!(ModelId::from_label("trained: run 1"), trained);
    }
}
