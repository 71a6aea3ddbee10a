//! Captions of real Fashion-MNIST images (the 500-image fixture): the attributes split each class into
//! thirds, the measures behind them order as the words say, held-out pairs never appear, and the captions'
//! vocabulary covers the prompts people type.

use diffusion_lab::data::{Dataset, Split};
use diffusion_lab::text::captions::{Attribute, CLASS_WORDS, CaptionSet, HELD_OUT};
use diffusion_lab::text::tokenizer::Vocabulary;

fn fixture() -> Dataset {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist");
    Dataset::fashion_mnist(&dir, Split::Test).expect("the fixture loads")
}

#[test]
fn captions_of_real_images() {
    let data = fixture();
    let labels = data.labels.clone().expect("labelled");
    let set = CaptionSet::new(&data.images, data.image_len(), &labels, 10);
    let counts = set.counts(10);
    for (class, row) in counts.iter().enumerate() {
        let total = labels.iter().filter(|l| **l == class).count() as f64;
        for (i, attribute) in Attribute::ALL.iter().enumerate() {
            if HELD_OUT.contains(&(*attribute, class)) {
                assert_eq!(row[i], 0, "held out: {attribute:?} of class {class}");
                continue;
            }
            let share = row[i] as f64 / total;
            assert!((0.15..=0.45).contains(&share), "class {class}, {attribute:?}: {share:.2} of {total}");
        }
    }
    // The words order the measures: every dark image of a class is darker than every light one.
    for class in 0..10 {
        let of = |a: Attribute| -> Vec<f64> {
            (0..labels.len())
                .filter(|i| labels[*i] == class && set.attributes[*i].contains(&a))
                .map(|i| set.measures[i].brightness)
                .collect()
        };
        let (dark, light) = (of(Attribute::Dark), of(Attribute::Light));
        if let (Some(d), Some(l)) = (dark.iter().copied().reduce(f64::max), light.iter().copied().reduce(f64::min)) {
            assert!(d < l, "class {class}: a dark image at {d} is not darker than a light one at {l}");
        }
    }
    let captions: Vec<String> =
        (0..labels.len()).flat_map(|i| (0..3).map(move |e| (i, e))).map(|(i, e)| set.caption(i, 1, e)).collect();
    for (attribute, class) in HELD_OUT {
        let names = CLASS_WORDS[class];
        let leaked = captions.iter().find(|c| c.contains(attribute.word()) && names.iter().any(|n| c.contains(n)));
        assert!(leaked.is_none(), "a held-out pair in {leaked:?}");
    }
    let vocabulary = Vocabulary::from_texts(captions.iter().map(String::as_str));
    for prompt in ["dark ankle boot", "a light large sneaker", "t-shirt, plain", "patterned dress", "small bag"] {
        assert!(vocabulary.encode(prompt).unknown.is_empty(), "{prompt}: {:?}", vocabulary.encode(prompt).unknown);
    }
    assert_eq!(set.caption(7, 1, 0), set.caption(7, 1, 0), "captions are reproducible");
}
