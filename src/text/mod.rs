//! Words: captions made from Fashion-MNIST images' classes and measured attributes (captions.rs), and the
//! word tokenizer with its vocabulary (tokenizer.rs) that a text encoder τ_θ reads. No burn modules here.

pub mod captions;
pub mod tokenizer;

use captions::{Attribute, CLASS_WORDS, CaptionSet};
use tokenizer::Vocabulary;

/// What a text model's training captions come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Captions {
    /// Made from each image's class and its measured attributes, a new phrasing each epoch (Fashion-MNIST).
    Measured(CaptionSet),
    /// One caption per image, as given (a folder's `.txt` files; "" where an image has none).
    Given(Vec<String>),
}

impl Captions {
    /// The caption image `index` is trained with in epoch `epoch` of a run seeded `seed`.
    pub fn caption(&self, index: usize, seed: u64, epoch: u64) -> String {
        match self {
            Captions::Measured(set) => set.caption(index, seed, epoch),
            Captions::Given(texts) => texts.get(index).cloned().unwrap_or_default(),
        }
    }

    /// Every word a caption can hold: for measured captions every class word, attribute word and "a"
    /// (whichever images the data has), for given ones the words of the texts.
    pub fn vocabulary(&self) -> Vocabulary {
        match self {
            Captions::Measured(_) => {
                let class_words = CLASS_WORDS.iter().flat_map(|names| names.iter().flat_map(|n| tokenizer::words(n)));
                let attribute_words = Attribute::ALL.iter().map(|a| a.word().to_string());
                let all: Vec<String> =
                    std::iter::once("a".to_string()).chain(attribute_words).chain(class_words).collect();
                Vocabulary::from_words(all.iter().map(String::as_str))
            }
            Captions::Given(texts) => Vocabulary::from_texts(texts.iter().map(String::as_str)),
        }
    }

    /// The prompt that stands for each class (its first name) where the model is asked for a class; none
    /// for given captions.
    pub fn class_prompts(&self) -> Vec<String> {
        match self {
            Captions::Measured(_) => CLASS_WORDS.iter().map(|names| names[0].to_string()).collect(),
            Captions::Given(_) => Vec::new(),
        }
    }

    /// The most words any caption has (measured captions: the longest class name and three attributes).
    pub fn longest(&self) -> usize {
        match self {
            Captions::Measured(_) => 1 + Attribute::ALL.len() / 2 + 2,
            Captions::Given(texts) => texts.iter().map(|t| tokenizer::words(t).len()).max().unwrap_or(0),
        }
    }
}
