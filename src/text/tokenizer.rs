//! A word tokenizer: text to lower-case words (letters, digits, and hyphens or apostrophes inside a word;
//! everything else separates words), and words to ids of a vocabulary with an unknown-word token. The
//! vocabulary is a text file of one word per line, its line number the id.

use std::collections::HashMap;

/// Id 0: padding (after the last word of a prompt shorter than the context).
pub const PAD: &str = "<pad>";
/// Id 1: a word the vocabulary does not hold.
pub const UNKNOWN: &str = "<unk>";
/// Id 2: the token before the first word of every prompt (CLIP's start-of-text): the empty prompt is this
/// token alone, and a causal text encoder's later tokens read the prompt so far from it on.
pub const START: &str = "<start>";
/// The special tokens, ids 0, 1, 2.
pub const SPECIAL: [&str; 3] = [PAD, UNKNOWN, START];

/// The words of `text`, lower-cased, in order. "T-shirt, dark!" gives ["t-shirt", "dark"].
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let joins =
            (c == '-' || c == '\'') && !word.is_empty() && chars.get(i + 1).is_some_and(|next| next.is_alphanumeric());
        if c.is_alphanumeric() || joins {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A vocabulary file that could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VocabularyError {
    #[error("line {line}: `{word}` is not one lower-case word (the tokenizer would never produce it)")]
    NotAWord { line: usize, word: String },
    #[error("line {line}: `{word}` appears twice")]
    Duplicate { line: usize, word: String },
}

/// Words and their ids; ids 0, 1 and 2 are [`PAD`], [`UNKNOWN`] and [`START`].
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    words: Vec<String>,
    ids: HashMap<String, usize>,
}

pub const PAD_ID: usize = 0;
pub const UNKNOWN_ID: usize = 1;
pub const START_ID: usize = 2;

/// A prompt that cannot be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum PromptError {
    #[error("the prompt has {words} words; this model reads at most {max}")]
    TooLong { words: usize, max: usize },
}

/// A prompt as a text encoder's input: ids of [`START`], the words, and padding; token k + 1 is word k.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub ids: Vec<usize>,
    pub words: Vec<String>,
    pub unknown: Vec<String>,
}

impl Prompt {
    /// The message for a prompt with words the model does not know, naming them and listing what it knows.
    pub fn unknown_message(&self, vocabulary: &Vocabulary) -> Option<String> {
        if self.unknown.is_empty() {
            return None;
        }
        let names: Vec<String> = self.unknown.iter().map(|w| format!("'{w}'")).collect();
        let is_not = if names.len() == 1 { "is not a word" } else { "are not words" };
        Some(format!(
            "{} {is_not} this model knows (read as <unk>); it knows: {}",
            names.join(", "),
            vocabulary.known_words().join(", ")
        ))
    }
}

/// A prompt as ids, and the words the vocabulary lacks (each became [`UNKNOWN`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<usize>,
    pub words: Vec<String>,
    pub unknown: Vec<String>,
}

impl Vocabulary {
    /// The special tokens, then every distinct word of `words` in order of first appearance.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut vocabulary = Self { words: Vec::new(), ids: HashMap::new() };
        for word in SPECIAL.into_iter().chain(words) {
            if !vocabulary.ids.contains_key(word) {
                vocabulary.ids.insert(word.to_string(), vocabulary.words.len());
                vocabulary.words.push(word.to_string());
            }
        }
        vocabulary
    }

    /// The vocabulary of every word of `texts`.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let all: Vec<String> = texts.into_iter().flat_map(words).collect();
        Self::from_words(all.iter().map(String::as_str))
    }

    /// One word per line (the special tokens first, as [`Self::to_text`] writes them); blank lines are skipped.
    pub fn from_text(text: &str) -> Result<Self, VocabularyError> {
        let mut seen = HashMap::new();
        let mut listed = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let word = line.trim();
            if word.is_empty() {
                continue;
            }
            let special = SPECIAL.contains(&word);
            if !special && words(word) != [word.to_string()] {
                return Err(VocabularyError::NotAWord { line: i + 1, word: word.to_string() });
            }
            if seen.insert(word.to_string(), i).is_some() {
                return Err(VocabularyError::Duplicate { line: i + 1, word: word.to_string() });
            }
            listed.push(word.to_string());
        }
        Ok(Self::from_words(listed.iter().map(String::as_str)))
    }

    /// One word per line, in id order.
    pub fn to_text(&self) -> String {
        self.words.iter().map(|w| format!("{w}\n")).collect()
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.len() <= SPECIAL.len()
    }

    pub fn id(&self, word: &str) -> Option<usize> {
        self.ids.get(word).copied()
    }

    pub fn word(&self, id: usize) -> Option<&str> {
        self.words.get(id).map(String::as_str)
    }

    /// The words a prompt may use (without the special tokens), in id order.
    pub fn known_words(&self) -> &[String] {
        &self.words[SPECIAL.len()..]
    }

    /// Every word, special tokens first, in id order (what a model's config stores).
    pub fn all_words(&self) -> &[String] {
        &self.words
    }

    /// A prompt as the `context` ids a text encoder reads: [`START`], one id per word, then [`PAD`] to the
    /// end. Unknown words become [`UNKNOWN`] and are listed; a prompt of more words than fit is an error.
    pub fn prompt(&self, text: &str, context: usize) -> Result<Prompt, PromptError> {
        let encoded = self.encode(text);
        let max = context.saturating_sub(1);
        if encoded.ids.len() > max {
            return Err(PromptError::TooLong { words: encoded.ids.len(), max });
        }
        let mut ids = Vec::with_capacity(context);
        ids.push(START_ID);
        ids.extend(&encoded.ids);
        ids.resize(context, PAD_ID);
        Ok(Prompt { ids, words: encoded.words, unknown: encoded.unknown })
    }

    /// `text` as ids; unknown words become the [`UNKNOWN`] id and are listed.
    pub fn encode(&self, text: &str) -> Encoded {
        let words = words(text);
        let mut unknown = Vec::new();
        let ids = words
            .iter()
            .map(|w| {
                self.id(w).unwrap_or_else(|| {
                    if !unknown.contains(w) {
                        unknown.push(w.clone());
                    }
                    UNKNOWN_ID
                })
            })
            .collect();
        Encoded { ids, words, unknown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_and_punctuation_separates_them() {
        assert_eq!(words("A dark Ankle-Boot, LARGE!"), ["a", "dark", "ankle-boot", "large"]);
        assert_eq!(words("  t-shirt;plain  "), ["t-shirt", "plain"]);
        assert_eq!(words("don't -x- end-"), ["don't", "x", "end"]);
        assert_eq!(words("...,;"), Vec::<String>::new());
        assert_eq!(words("Ünïcode ÉTÉ"), ["ünïcode", "été"]);
    }

    #[test]
    fn unknown_words_become_the_unknown_id_and_are_named() {
        let vocabulary = Vocabulary::from_texts(["a dark ankle boot", "light sneaker"]);
        assert_eq!(vocabulary.id(PAD), Some(0));
        assert_eq!(vocabulary.id(UNKNOWN), Some(1));
        assert_eq!(vocabulary.id(START), Some(2));
        let encoded = vocabulary.encode("Dark velvet BOOT, velvet.");
        assert_eq!(encoded.ids, [vocabulary.id("dark").unwrap(), 1, vocabulary.id("boot").unwrap(), 1]);
        assert_eq!(encoded.unknown, ["velvet"]);
        let prompt = vocabulary.prompt("Dark velvet BOOT", 6).unwrap();
        assert_eq!(
            prompt.ids,
            [START_ID, vocabulary.id("dark").unwrap(), UNKNOWN_ID, vocabulary.id("boot").unwrap(), 0, 0]
        );
        let message = prompt.unknown_message(&vocabulary).unwrap();
        assert!(message.starts_with("'velvet' is not a word this model knows"), "{message}");
        assert!(message.contains("dark, ankle, boot"), "{message}");
        assert_eq!(vocabulary.prompt("", 3).unwrap().ids, [START_ID, 0, 0]);
        assert_eq!(vocabulary.prompt("a b c", 3), Err(PromptError::TooLong { words: 3, max: 2 }));
        assert_eq!(vocabulary.known_words(), ["a", "dark", "ankle", "boot", "light", "sneaker"]);
    }

    #[test]
    fn vocabulary_files_round_trip_and_bad_lines_are_named() {
        let vocabulary = Vocabulary::from_texts(["dark trousers", "a light t-shirt"]);
        assert_eq!(Vocabulary::from_text(&vocabulary.to_text()), Ok(vocabulary));
        assert_eq!(
            Vocabulary::from_text("dark\nAnkle Boot\n"),
            Err(VocabularyError::NotAWord { line: 2, word: "Ankle Boot".into() })
        );
        assert_eq!(
            Vocabulary::from_text("dark\n\ndark\n"),
            Err(VocabularyError::Duplicate { line: 3, word: "dark".into() })
        );
    }
}
