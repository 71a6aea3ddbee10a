//! Captions for Fashion-MNIST images, made from each image's class and attributes measured from its own
//! pixels, so that a text-conditioned model can be trained and then checked with the same measures.
//!
//! The measures ([`measure`]), on the garment's pixels (intensity above [`GARMENT_LEVEL`]):
//! - brightness: their mean intensity (0 black … 1 white): "dark" / "light";
//! - size: the share of the frame they cover: "small" / "large";
//! - texture: the mean |discrete Laplacian| of intensity over garment pixels whose four neighbours are
//!   garment too (edges left out): how much the surface varies from pixel to pixel: "plain" / "patterned".
//!
//! Each is judged against the image's own class ([`AttributeThresholds`]): below the class's lower third
//! the image is dark / small / plain, above its upper third light / large / patterned, and in the middle
//! third the caption leaves that attribute out (the image does not clearly have either). A few
//! attribute-class combinations ([`HELD_OUT`]) are never written, so a trained model can be asked whether it
//! composes words it never saw together.

use rand::Rng;
use rand::seq::SliceRandom;

/// Intensity (0..1) above which a pixel belongs to the garment; Fashion-MNIST's background is 0.
pub const GARMENT_LEVEL: f64 = 0.08;

/// The words people use for each Fashion-MNIST class, the first the class's own name.
pub const CLASS_WORDS: [&[&str]; 10] = [
    &["t-shirt", "top", "tee"],
    &["trousers", "pants"],
    &["pullover", "sweater", "jumper"],
    &["dress"],
    &["coat", "jacket"],
    &["sandal"],
    &["shirt"],
    &["sneaker", "trainer"],
    &["bag", "handbag"],
    &["ankle boot", "boot"],
];

/// What is measured of an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measures {
    pub brightness: f64,
    pub size: f64,
    pub texture: f64,
}

impl Measures {
    pub fn on(&self, axis: Axis) -> f64 {
        match axis {
            Axis::Brightness => self.brightness,
            Axis::Size => self.size,
            Axis::Texture => self.texture,
        }
    }
}

/// The measures of one square grayscale image with values in [-1, 1] (row-major).
pub fn measure(image: &[f32]) -> Measures {
    let side = (image.len() as f64).sqrt() as usize;
    let intensity = |x: usize, y: usize| (f64::from(image[y * side + x]) + 1.0) / 2.0;
    let garment = |x: usize, y: usize| intensity(x, y) > GARMENT_LEVEL;
    let (mut count, mut total) = (0usize, 0.0);
    let (mut inner, mut variation) = (0usize, 0.0);
    for y in 0..side {
        for x in 0..side {
            if !garment(x, y) {
                continue;
            }
            count += 1;
            total += intensity(x, y);
            let interior = x > 0 && y > 0 && x + 1 < side && y + 1 < side;
            if interior && garment(x - 1, y) && garment(x + 1, y) && garment(x, y - 1) && garment(x, y + 1) {
                let around = intensity(x - 1, y) + intensity(x + 1, y) + intensity(x, y - 1) + intensity(x, y + 1);
                variation += (4.0 * intensity(x, y) - around).abs();
                inner += 1;
            }
        }
    }
    Measures {
        brightness: if count > 0 { total / count as f64 } else { 0.0 },
        size: count as f64 / (side * side).max(1) as f64,
        texture: if inner > 0 { variation / inner as f64 } else { 0.0 },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    Brightness,
    Size,
    Texture,
}

impl Axis {
    pub const ALL: [Axis; 3] = [Self::Brightness, Self::Size, Self::Texture];

    /// The attributes at the low and the high end.
    pub fn attributes(self) -> [Attribute; 2] {
        match self {
            Self::Brightness => [Attribute::Dark, Attribute::Light],
            Self::Size => [Attribute::Small, Attribute::Large],
            Self::Texture => [Attribute::Plain, Attribute::Patterned],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    Dark,
    Light,
    Small,
    Large,
    Plain,
    Patterned,
}

impl Attribute {
    pub const ALL: [Attribute; 6] = [Self::Dark, Self::Light, Self::Small, Self::Large, Self::Plain, Self::Patterned];

    pub fn word(self) -> &'static str {
        match self {
            Self::Dark => "dark",
            Self::Light => "light",
            Self::Small => "small",
            Self::Large => "large",
            Self::Plain => "plain",
            Self::Patterned => "patterned",
        }
    }

    pub fn axis(self) -> Axis {
        match self {
            Self::Dark | Self::Light => Axis::Brightness,
            Self::Small | Self::Large => Axis::Size,
            Self::Plain | Self::Patterned => Axis::Texture,
        }
    }
}

/// Attribute-class pairs no training caption contains (class indices of Fashion-MNIST): a light t-shirt, a
/// large sandal, a patterned bag. Images that have them are captioned without that attribute.
pub const HELD_OUT: [(Attribute, usize); 3] = [(Attribute::Light, 0), (Attribute::Large, 5), (Attribute::Patterned, 8)];

pub fn is_held_out(attribute: Attribute, class: usize) -> bool {
    HELD_OUT.contains(&(attribute, class))
}

/// Per class and axis, the measure's lower and upper tercile on the training data.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeThresholds {
    /// `[class][axis] = [lower third, upper third]`, axes in [`Axis::ALL`] order.
    pub per_class: Vec<[[f64; 2]; 3]>,
}

fn terciles(mut values: Vec<f64>) -> [f64; 2] {
    if values.is_empty() {
        return [f64::NEG_INFINITY, f64::INFINITY];
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(1.0 / 3.0), at(2.0 / 3.0)]
}

impl AttributeThresholds {
    /// Thresholds from the measures of labelled images (`classes` classes).
    pub fn fit(measures: &[(Measures, usize)], classes: usize) -> Self {
        let per_class = (0..classes)
            .map(|class| {
                let of_class: Vec<&Measures> = measures.iter().filter(|(_, c)| *c == class).map(|(m, _)| m).collect();
                Axis::ALL.map(|axis| terciles(of_class.iter().map(|m| m.on(axis)).collect()))
            })
            .collect();
        Self { per_class }
    }

    /// The attributes an image of `class` clearly has (at most one per axis), before any is held out.
    pub fn attributes(&self, class: usize, measures: &Measures) -> Vec<Attribute> {
        let Some(thresholds) = self.per_class.get(class) else { return Vec::new() };
        Axis::ALL
            .iter()
            .zip(thresholds)
            .filter_map(|(axis, [low, high])| {
                let value = measures.on(*axis);
                let [below, above] = axis.attributes();
                if value < *low {
                    Some(below)
                } else if value > *high {
                    Some(above)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Which side of the class's thresholds `measures` falls on along `attribute`'s axis: true when it is on
    /// the attribute's own side of the middle (above the lower tercile for "light", …) — how samples asked for
    /// an attribute are scored.
    pub fn agrees(&self, class: usize, measures: &Measures, attribute: Attribute) -> Option<bool> {
        let thresholds = self.per_class.get(class)?;
        let axis = attribute.axis();
        let index = Axis::ALL.iter().position(|a| *a == axis)?;
        let [low, high] = thresholds[index];
        let middle = 0.5 * (low + high);
        let value = measures.on(axis);
        Some(if attribute == axis.attributes()[0] { value < middle } else { value > middle })
    }
}

/// One caption of an image of `class` with `attributes` (held-out pairs dropped): a class word chosen among
/// its synonyms, the attributes in a random order and one of several phrasings ("a dark ankle boot",
/// "ankle boot, dark, large", "dark large boot", or the class alone).
pub fn caption(class: usize, attributes: &[Attribute], rng: &mut impl Rng) -> String {
    let names = CLASS_WORDS.get(class).copied().unwrap_or(&["thing"]);
    let name = names[rng.random_range(0..names.len())];
    let mut words: Vec<&str> = attributes.iter().filter(|a| !is_held_out(**a, class)).map(|a| a.word()).collect();
    words.shuffle(rng);
    if words.is_empty() {
        return match rng.random_range(0..2) {
            0 => name.to_string(),
            _ => format!("a {name}"),
        };
    }
    match rng.random_range(0..3) {
        0 => format!("a {} {name}", words.join(" ")),
        1 => format!("{name}, {}", words.join(", ")),
        _ => format!("{} {name}", words.join(" ")),
    }
}

/// A labelled image set captioned: every image's measures and attributes, and the thresholds (fitted on
/// this set) they were judged by.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionSet {
    pub thresholds: AttributeThresholds,
    pub measures: Vec<Measures>,
    /// Each image's attributes, held-out pairs already removed.
    pub attributes: Vec<Vec<Attribute>>,
    pub classes: Vec<usize>,
}

impl CaptionSet {
    /// `images` holds `labels.len()` square grayscale images of `image_len` values each, in [-1, 1].
    pub fn new(images: &[f32], image_len: usize, labels: &[usize], classes: usize) -> Self {
        let measures: Vec<Measures> = images.chunks_exact(image_len.max(1)).take(labels.len()).map(measure).collect();
        let labelled: Vec<(Measures, usize)> = measures.iter().copied().zip(labels.iter().copied()).collect();
        let thresholds = AttributeThresholds::fit(&labelled, classes);
        let attributes = labelled
            .iter()
            .map(|(m, class)| {
                thresholds.attributes(*class, m).into_iter().filter(|a| !is_held_out(*a, *class)).collect()
            })
            .collect();
        Self { thresholds, measures, attributes, classes: labels.to_vec() }
    }

    /// The caption of image `index` in epoch `epoch` of a run seeded `seed`: the same every time it is
    /// asked, another phrasing (and synonym) each epoch.
    pub fn caption(&self, index: usize, seed: u64, epoch: u64) -> String {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        caption(self.classes[index], &self.attributes[index], &mut rng)
    }

    /// How many images of each class carry each attribute, in [`Attribute::ALL`] order.
    pub fn counts(&self, classes: usize) -> Vec<[usize; 6]> {
        let mut counts = vec![[0; 6]; classes];
        for (class, attributes) in self.classes.iter().zip(&self.attributes) {
            for a in attributes {
                if let (Some(row), Some(i)) = (counts.get_mut(*class), Attribute::ALL.iter().position(|x| x == a)) {
                    row[i] += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SIDE: usize = 28;

    /// A square of `half` pixels around the centre at `level` (0..1), every other column dimmed by the share
    /// `stripes` (0: plain).
    fn square(half: usize, level: f32, stripes: f32) -> Vec<f32> {
        let mut image = vec![-1.0; SIDE * SIDE];
        for y in 14 - half..14 + half {
            for x in 14 - half..14 + half {
                let v = if x % 2 == 0 { level * (1.0 - stripes) } else { level };
                image[y * SIDE + x] = 2.0 * v - 1.0;
            }
        }
        image
    }

    #[test]
    fn measures_of_known_pictures() {
        let plain = measure(&square(5, 0.5, 0.0));
        assert!((plain.brightness - 0.5).abs() < 1e-6);
        assert!((plain.size - 100.0 / 784.0).abs() < 1e-9);
        assert_eq!(plain.texture, 0.0, "a flat square has no texture inside its edges");
        let striped = measure(&square(5, 0.8, 0.5));
        assert!(striped.texture > 0.5, "stripes: {striped:?}");
        let empty = measure(&vec![-1.0; SIDE * SIDE]);
        assert_eq!((empty.brightness, empty.size, empty.texture), (0.0, 0.0, 0.0));
    }

    /// Thresholds fitted on small dark plain, middling, and large light striped squares of one class: the
    /// extremes get their three attributes, the middle none.
    #[test]
    fn attributes_are_given_only_outside_the_middle_third() {
        let kinds = [square(3, 0.3, 0.0), square(6, 0.55, 0.2), square(10, 0.9, 0.5)];
        let measures: Vec<(Measures, usize)> = (0..30).map(|i| (measure(&kinds[i % 3]), 2)).collect();
        let thresholds = AttributeThresholds::fit(&measures, 10);
        let of = |k: usize| thresholds.attributes(2, &measure(&kinds[k]));
        // Terciles of three equal groups fall on the middle group: the ends are strictly outside.
        assert_eq!(of(0), [Attribute::Dark, Attribute::Small, Attribute::Plain]);
        assert_eq!(of(1), Vec::<Attribute>::new());
        assert_eq!(of(2), [Attribute::Light, Attribute::Large, Attribute::Patterned]);
        assert_eq!(thresholds.agrees(2, &measure(&kinds[2]), Attribute::Light), Some(true));
        assert_eq!(thresholds.agrees(2, &measure(&kinds[0]), Attribute::Light), Some(false));
        // A class without data has no attributes.
        assert!(thresholds.attributes(4, &measure(&kinds[0])).is_empty());
    }

    /// The captions of fixed images, seeds and epochs are fixed texts (pasted from a run): what a model is
    /// trained on does not change with a build, a platform or a dependency's update (a resumed run reads
    /// the same texts), which comparing two calls of one build cannot tell.
    #[test]
    fn the_caption_of_an_image_epoch_and_seed_is_a_fixed_text() {
        let kinds = [square(3, 0.3, 0.0), square(6, 0.55, 0.2), square(10, 0.9, 0.5)];
        let images: Vec<f32> = (0..30).flat_map(|i| kinds[i % 3].clone()).collect();
        let labels: Vec<usize> = (0..30).map(|i| if i < 15 { 9 } else { 4 }).collect();
        let set = CaptionSet::new(&images, SIDE * SIDE, &labels, 10);
        let captions: Vec<String> = [(0, 1, 0), (0, 1, 1), (2, 1, 0), (2, 7, 3), (1, 1, 0), (17, 1, 0), (27, 5, 2)]
            .iter()
            .map(|(index, seed, epoch)| set.caption(*index, *seed, *epoch))
            .collect();
        let expected = [
            "small plain dark boot",
            "boot, small, plain, dark",
            "a large patterned light ankle boot",
            "ankle boot, patterned, light, large",
            "ankle boot",
            "patterned light large jacket",
            "jacket, dark, plain, small",
        ];
        assert_eq!(captions, expected);
    }

    #[test]
    fn captions_name_the_class_and_never_a_held_out_pair() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let all = [Attribute::Light, Attribute::Large, Attribute::Patterned];
        for _ in 0..200 {
            let text = caption(0, &all, &mut rng);
            assert!(["t-shirt", "top", "tee"].iter().any(|n| text.contains(n)), "{text}");
            assert!(!text.contains("light"), "held out: {text}");
            assert!(text.contains("large") && text.contains("patterned"), "{text}");
        }
        let phrasings: std::collections::BTreeSet<String> =
            (0..100).map(|_| caption(9, &[Attribute::Dark, Attribute::Small], &mut rng)).collect();
        assert!(phrasings.contains("a dark small ankle boot") || phrasings.contains("a small dark ankle boot"));
        assert!(phrasings.iter().any(|p| p.starts_with("boot, ") || p.starts_with("ankle boot, ")));
        assert!(phrasings.len() >= 6, "{phrasings:?}");
    }
}
