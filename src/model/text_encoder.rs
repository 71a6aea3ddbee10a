//! τ_θ(y) for a prompt: word embeddings and a small causal transformer (CLIP's text tower in miniature),
//! one context vector per token, which the UNet's cross-attention reads as K = W_K τ(y), V = W_V τ(y).
//!
//! A prompt is [`START`](crate::text::tokenizer::START), its words, then padding to `context_tokens`
//! (`Vocabulary::prompt`). The encoder is causal: each token reads only itself and the tokens before it, so a
//! word's vector does not depend on the words after it (the "dark" of "dark boot" and "dark sandal" is one
//! vector), and the padding tokens after the last word each read the whole prompt, as Stable Diffusion's
//! padding does. Cross-attention attends over every token, padding included, so its weights sum to 1 over
//! the start token, the words and the padding; the window reports each word's share of it.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

use crate::text::tokenizer::{Prompt, PromptError, Vocabulary, VocabularyError};

#[derive(Config, Debug, PartialEq)]
pub struct TextEncoderConfig {
    /// Every word the model reads, in id order, the special tokens first: saved with the weights, so a
    /// prompt is read with the words the model was trained on.
    pub vocabulary: Vec<String>,
    /// Tokens of every prompt: the start token, at most `context_tokens - 1` words, padding.
    #[config(default = 12)]
    pub context_tokens: usize,
    #[config(default = 2)]
    pub layers: usize,
    #[config(default = 4)]
    pub heads: usize,
    /// The prompt that stands for each class where a class is asked of this model (the class grids, the
    /// class-conditioned views, `eval` by class); empty for a model trained on captions of its own.
    #[config(default = "Vec::new()")]
    pub class_prompts: Vec<String>,
}

impl TextEncoderConfig {
    /// The vocabulary as the tokenizer uses it.
    pub fn vocabulary(&self) -> Result<Vocabulary, VocabularyError> {
        Vocabulary::from_text(&self.vocabulary.join("\n"))
    }

    /// Checks what `init` and `forward` rely on (a damaged config is an error, not a panic in burn).
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        let vocabulary = self.vocabulary().map_err(|e| format!("vocabulary: {e}"))?;
        if vocabulary.all_words() != self.vocabulary.as_slice() {
            return Err("the vocabulary must list the special tokens first, each word once".into());
        }
        if self.context_tokens < 2 {
            return Err("`context_tokens` must be at least 2 (the start token and a word)".into());
        }
        if self.heads == 0 || !dim.is_multiple_of(self.heads) {
            return Err(format!("the context's {dim} channels cannot be split into {} heads", self.heads));
        }
        super::check_config_sizes(&[
            ("vocabulary", self.vocabulary.len()),
            ("context_tokens", self.context_tokens),
            ("layers", self.layers),
            ("heads", self.heads),
        ])?;
        for prompt in &self.class_prompts {
            vocabulary.prompt(prompt, self.context_tokens).map_err(|e| format!("class prompt '{prompt}': {e}"))?;
        }
        Ok(())
    }

    /// Weights and biases `init` builds for context vectors of `dim` channels.
    pub fn parameter_count(&self, dim: usize) -> usize {
        let layer_norm = 2 * dim;
        let linear = |i: usize, o: usize| i * o + o;
        let block = 2 * layer_norm + 4 * linear(dim, dim) + linear(dim, 4 * dim) + linear(4 * dim, dim);
        (self.vocabulary.len() + self.context_tokens) * dim + self.layers * block + layer_norm
    }

    /// The vocabulary, or none but the special tokens where it cannot be read (`validate` refuses such a
    /// config before any model is built from it).
    fn vocabulary_or_special(&self) -> Vocabulary {
        self.vocabulary().unwrap_or_else(|_| Vocabulary::from_words([]))
    }

    pub fn init(&self, dim: usize, device: &Device) -> TextEncoder {
        let vocabulary = self.vocabulary_or_special();
        // Unreadable class prompts (validate refuses them) fall back to the empty prompt.
        let class_tokens = self
            .class_prompts
            .iter()
            .chain(std::iter::once(&String::new()))
            .flat_map(|p| {
                let prompt =
                    vocabulary.prompt(p, self.context_tokens).or_else(|_| vocabulary.prompt("", self.context_tokens));
                prompt.map(|p| p.ids).unwrap_or_default().into_iter().map(|id| id as i64)
            })
            .collect();
        TextEncoder {
            token: EmbeddingConfig::new(self.vocabulary.len(), dim).init(device),
            position: EmbeddingConfig::new(self.context_tokens, dim).init(device),
            blocks: (0..self.layers).map(|_| TextBlock::new(dim, self.heads, device)).collect(),
            norm: LayerNormConfig::new(dim).init(device),
            context_tokens: self.context_tokens,
            class_tokens,
        }
    }

    /// `text` as this model's token ids, or why it cannot be read.
    pub fn prompt(&self, text: &str) -> Result<Prompt, PromptError> {
        self.vocabulary_or_special().prompt(text, self.context_tokens)
    }

    /// `text` read as this model's prompt: why it cannot be (too long), or the message naming the words it
    /// does not know (`None`: it knows them all). What the window, `sample` and `grid` tell the user.
    pub fn unknown_words(&self, text: &str) -> Result<Option<String>, PromptError> {
        let vocabulary = self.vocabulary_or_special();
        Ok(vocabulary.prompt(text, self.context_tokens)?.unknown_message(&vocabulary))
    }
}

/// Pre-norm transformer block: x + Attn(LN(x)) with a causal mask, then x + MLP(LN(x)).
#[derive(Module, Debug)]
pub struct TextBlock {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    norm2: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    heads: usize,
}

impl TextBlock {
    fn new(dim: usize, heads: usize, device: &Device) -> Self {
        Self {
            norm1: LayerNormConfig::new(dim).init(device),
            query: LinearConfig::new(dim, dim).init(device),
            key: LinearConfig::new(dim, dim).init(device),
            value: LinearConfig::new(dim, dim).init(device),
            out: LinearConfig::new(dim, dim).init(device),
            norm2: LayerNormConfig::new(dim).init(device),
            mlp_in: LinearConfig::new(dim, 4 * dim).init(device),
            mlp_out: LinearConfig::new(4 * dim, dim).init(device),
            heads,
        }
    }

    /// x: [batch, tokens, dim]; causal: [1, 1, tokens, tokens] added to the scores.
    fn forward(&self, x: Tensor<3>, causal: Tensor<4>) -> Tensor<3> {
        let [batch, tokens, dim] = x.dims();
        let head_dim = dim / self.heads;
        let h = self.norm1.forward(x.clone());
        // [batch, tokens, dim] -> [batch, heads, tokens, head_dim]
        let split = |t: Tensor<3>| t.reshape([batch, tokens, self.heads, head_dim]).swap_dims(1, 2);
        let q = split(self.query.forward(h.clone()));
        let k = split(self.key.forward(h.clone()));
        let v = split(self.value.forward(h));
        // [batch, heads, tokens, tokens]
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (head_dim as f64).sqrt()).add(causal);
        let mixed = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch, tokens, dim]);
        let x = x.add(self.out.forward(mixed));
        let h = self.norm2.forward(x.clone());
        x.add(self.mlp_out.forward(gelu(self.mlp_in.forward(h))))
    }
}

/// τ_θ(y): prompt token ids to context vectors.
#[derive(Module, Debug)]
pub struct TextEncoder {
    token: Embedding,
    position: Embedding,
    blocks: Vec<TextBlock>,
    norm: LayerNorm,
    context_tokens: usize,
    /// The ids of each class's prompt and then of the empty prompt, [(classes + 1) * context_tokens].
    #[module(skip)]
    class_tokens: Vec<i64>,
}

/// A score far below any real one: exp of it is 0 in f32, and unlike -inf it cannot make a NaN.
const MASKED: f32 = -1e9;

impl TextEncoder {
    /// [batch, tokens] ids -> [batch, tokens, dim]
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, tokens] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..tokens as i64, &device).unsqueeze_dim::<2>(0);
        let mut x = self.token.forward(ids).add(self.position.forward(positions));
        let causal: Vec<f32> =
            (0..tokens * tokens).map(|k| if k % tokens > k / tokens { MASKED } else { 0.0 }).collect();
        let causal = Tensor::<2>::from_data(TensorData::new(causal, [tokens, tokens]), &device).unsqueeze::<4>();
        for block in &self.blocks {
            x = block.forward(x, causal.clone());
        }
        self.norm.forward(x)
    }

    /// Tokens per prompt.
    pub fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    /// The ids of each label's prompt, [batch, tokens]: label c < the number of class prompts reads that
    /// class's prompt, any other label (the null class among them) the empty prompt.
    pub fn class_ids(&self, class: Tensor<1, Int>) -> Tensor<2, Int> {
        let device = class.device();
        let rows = self.class_tokens.len() / self.context_tokens.max(1);
        let table = Tensor::<2, Int>::from_data(
            TensorData::new(self.class_tokens.clone(), [rows, self.context_tokens]),
            &device,
        );
        // Labels past the table (the null class of a model without class prompts) read its last row.
        table.select(0, class.clamp(0, rows as i64 - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TextEncoderConfig {
        let vocabulary = Vocabulary::from_texts(["a dark boot", "light sandal"]);
        TextEncoderConfig::new(vocabulary.all_words().to_vec())
            .with_context_tokens(6)
            .with_class_prompts(vec!["boot".into(), "sandal".into()])
    }

    #[test]
    fn a_word_does_not_depend_on_the_words_after_it() {
        let device = Device::flex();
        let config = config();
        assert!(config.validate(16).is_ok());
        let encoder = config.init(16, &device);
        let ids = |text: &str| {
            let ids: Vec<i64> = config.prompt(text).unwrap().ids.into_iter().map(|i| i as i64).collect();
            Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 6]), &device)
        };
        let both = encoder.forward(Tensor::cat(vec![ids("dark boot"), ids("dark sandal")], 0));
        assert_eq!(both.dims(), [2, 6, 16]);
        let values = crate::model::read_f32(both).unwrap();
        let token = |b: usize, t: usize| &values[(b * 6 + t) * 16..(b * 6 + t + 1) * 16];
        // The start token and "dark" are the same vectors; "boot" and "sandal" are not.
        assert_eq!(token(0, 0), token(1, 0));
        assert_eq!(token(0, 1), token(1, 1));
        assert_ne!(token(0, 2), token(1, 2));
        assert_ne!(token(0, 5), token(1, 5), "padding reads the whole prompt");
    }

    #[test]
    fn classes_read_their_prompts_and_the_null_class_the_empty_one() {
        let device = Device::flex();
        let config = config();
        let encoder = config.init(16, &device);
        let ids = crate::model::read_i64(encoder.class_ids(Tensor::<1, Int>::from_ints([1, 2, 7], &device))).unwrap();
        let want = |text: &str| config.prompt(text).unwrap().ids.into_iter().map(|i| i as i64).collect::<Vec<_>>();
        assert_eq!(ids[..6], want("sandal")[..]);
        assert_eq!(ids[6..12], want("")[..]);
        assert_eq!(ids[12..], want("")[..]);
        assert_eq!(config.parameter_count(16), encoder.num_params());
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let bad_prompt = config().with_class_prompts(vec!["one two three four five six".into()]);
        assert!(bad_prompt.validate(16).unwrap_err().contains("at most 5"));
        assert!(config().with_heads(3).validate(16).unwrap_err().contains("heads"));
        assert!(config().with_context_tokens(1).validate(16).unwrap_err().contains("context_tokens"));
        let missing_special = TextEncoderConfig::new(vec!["dark".into()]);
        assert!(missing_special.validate(16).unwrap_err().contains("special"));
    }
}
