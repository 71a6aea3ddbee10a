//! Words: captions made from Fashion-MNIST images' classes and measured attributes (captions.rs), and the
//! word tokenizer with its vocabulary (tokenizer.rs) that a text encoder τ_θ reads. No burn modules here.

pub mod captions;
pub mod tokenizer;
