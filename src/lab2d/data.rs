//! The 2-D lab's data: presets and drawn points, every one a [`GaussianMixture`] so that its noised density
//! q_t and score are known exactly, and a set of points drawn from it to train on.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diffusion::mixture::{Component, GaussianMixture, Point};

/// Spread of the Gaussian around each drawn point: the data distribution of a drawing is a kernel density
/// estimate of its points, narrow enough to keep the drawing's shape.
pub const DRAWN_STD: f64 = 0.05;

/// Points drawn from a data distribution to train on (and to show).
pub const DEFAULT_POINTS: usize = 2000;

/// At most this many classes (colours) in a drawing.
pub const MAX_CLASSES: usize = 4;

/// What the lab's plot shows: the square [-VIEW_BOUND, VIEW_BOUND]², wide enough for x_T ~ N(0, I).
pub const VIEW_BOUND: f64 = 3.0;

/// Built-in data distributions, each scaled into about [-1.3, 1.3]² (the data's spread is about that of
/// the noise's, as with images in [-1, 1]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Preset {
    /// Two Gaussians at (±0.8, 0), one class each: the simplest case with a closed form to check against.
    TwoGaussians,
    /// Eight Gaussians on a circle, four classes of two neighbours.
    EightGaussians,
    /// Two interleaved half circles, one class each.
    #[default]
    Moons,
    /// A spiral of one and a half turns.
    SwissRoll,
    /// A circle: all the mass on a thin ring, none at its centre, where the mean is.
    Ring,
    /// The letter A of the app's 5x7 font, one small Gaussian per pixel.
    Letter,
}

impl Preset {
    pub const ALL: [Preset; 6] =
        [Self::TwoGaussians, Self::EightGaussians, Self::Moons, Self::SwissRoll, Self::Ring, Self::Letter];

    /// The name the command line takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::TwoGaussians => "two-gaussians",
            Self::EightGaussians => "eight-gaussians",
            Self::Moons => "moons",
            Self::SwissRoll => "swiss-roll",
            Self::Ring => "ring",
            Self::Letter => "letter",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::TwoGaussians => "Two Gaussians",
            Self::EightGaussians => "Eight Gaussians",
            Self::Moons => "Two moons",
            Self::SwissRoll => "Swiss roll",
            Self::Ring => "Ring",
            Self::Letter => "Letter A",
        }
    }

    /// The distribution, as a mixture.
    pub fn mixture(self) -> GaussianMixture {
        let component = |mean: Point, std: f64, class: usize| Component { mean, std, weight: 1.0, class };
        let along = |count: usize, f: &dyn Fn(f64) -> (Point, usize), std: f64| -> Vec<Component> {
            (0..count)
                .map(|i| {
                    let (mean, class) = f(i as f64 / (count - 1) as f64);
                    component(mean, std, class)
                })
                .collect()
        };
        let pi = std::f64::consts::PI;
        let components = match self {
            Self::TwoGaussians => vec![component([-0.8, 0.0], 0.15, 0), component([0.8, 0.0], 0.15, 1)],
            Self::EightGaussians => (0..8)
                .map(|i| {
                    let angle = 2.0 * pi * i as f64 / 8.0;
                    component([angle.cos(), angle.sin()], 0.08, i / 2)
                })
                .collect(),
            Self::Moons => {
                // scikit-learn's two moons, centred and scaled by 0.9.
                let scale = 0.9;
                let mut c =
                    along(24, &|u| ([scale * ((pi * u).cos() - 0.5), scale * ((pi * u).sin() - 0.25)], 0), 0.06);
                c.extend(along(24, &|u| ([scale * (0.5 - (pi * u).cos()), scale * (0.25 - (pi * u).sin())], 1), 0.06));
                c
            }
            Self::SwissRoll => along(
                64,
                &|u| {
                    let angle = 1.5 * pi + 3.0 * pi * u;
                    let radius = 1.3 * angle / (4.5 * pi);
                    ([radius * angle.cos(), radius * angle.sin()], 0)
                },
                0.04,
            ),
            Self::Ring => (0..48)
                .map(|i| {
                    let angle = 2.0 * pi * i as f64 / 48.0;
                    component([angle.cos(), angle.sin()], 0.04, 0)
                })
                .collect(),
            Self::Letter => crate::images::font::glyph_pixels('A')
                .into_iter()
                .map(|(col, row)| component([0.5 * (col as f64 - 2.0), 0.5 * (3.0 - row as f64)], 0.09, 0))
                .collect(),
        };
        GaussianMixture::new(components)
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
            format!("unknown preset '{s}'; the presets are {}", names.join(", "))
        })
    }
}

/// Why a data set could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    #[error("there are no points: draw some on the plot first (click or drag)")]
    NoPoints,
    #[error("class {class} is not one of the {MAX_CLASSES} colours")]
    BadClass { class: usize },
    #[error("a point is not a finite number: ({x}, {y})")]
    NotFinite { x: f64, y: f64 },
}

/// A data distribution and the points drawn from it.
#[derive(Clone, Debug, PartialEq)]
pub struct PointData {
    /// The distribution the points are a sample of: what the true score is computed from.
    pub mixture: GaussianMixture,
    pub points: Vec<[f32; 2]>,
    pub classes: Vec<Option<usize>>,
    /// Classes the network is built for (1 for data of one kind).
    pub class_count: usize,
    /// What it is, for titles and PNG settings.
    pub description: String,
}

impl PointData {
    /// `count` points of `mixture`, drawn with `seed`.
    pub fn from_mixture(mixture: GaussianMixture, count: usize, seed: u64, description: String) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let drawn = mixture.sample(count, &mut rng);
        let class_count = mixture.classes().last().map_or(1, |c| c + 1);
        Self {
            points: drawn.iter().map(|(p, _)| [p[0] as f32, p[1] as f32]).collect(),
            classes: drawn.iter().map(|(_, c)| Some(*c)).collect(),
            class_count,
            mixture,
            description,
        }
    }

    pub fn from_preset(preset: Preset, count: usize, seed: u64) -> Self {
        Self::from_mixture(preset.mixture(), count, seed, format!("preset {}", preset.name()))
    }

    /// The distribution of a drawing: a Gaussian of [`DRAWN_STD`] around each drawn point (with its class).
    pub fn from_drawn(drawn: &[(Point, usize)], count: usize, seed: u64) -> Result<Self, DataError> {
        if drawn.is_empty() {
            return Err(DataError::NoPoints);
        }
        let mut components = Vec::with_capacity(drawn.len());
        for &(mean, class) in drawn {
            if class >= MAX_CLASSES {
                return Err(DataError::BadClass { class });
            }
            if !(mean[0].is_finite() && mean[1].is_finite()) {
                return Err(DataError::NotFinite { x: mean[0], y: mean[1] });
            }
            components.push(Component { mean, std: DRAWN_STD, weight: 1.0, class });
        }
        let description = format!("{} drawn points", drawn.len());
        Ok(Self::from_mixture(GaussianMixture::new(components), count, seed, description))
    }

    /// The points as f64 pairs, all or those of one class.
    pub fn points_of(&self, class: Option<usize>) -> Vec<Point> {
        self.points
            .iter()
            .zip(&self.classes)
            .filter(|(_, c)| class.is_none() || **c == class)
            .map(|(p, _)| [f64::from(p[0]), f64::from(p[1])])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_by_name_and_stay_in_view() {
        for preset in Preset::ALL {
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
            let data = PointData::from_preset(preset, 500, 1);
            assert_eq!(data.points.len(), 500);
            let bound = data.points.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
            assert!(bound < 2.0, "{preset}: a point at {bound}");
        }
        assert!("spiral".parse::<Preset>().unwrap_err().contains("moons"));
    }

    #[test]
    fn classes_follow_the_components() {
        assert_eq!(PointData::from_preset(Preset::EightGaussians, 100, 2).class_count, 4);
        assert_eq!(PointData::from_preset(Preset::Moons, 100, 2).class_count, 2);
        assert_eq!(PointData::from_preset(Preset::Ring, 100, 2).class_count, 1);
        let data = PointData::from_preset(Preset::TwoGaussians, 400, 3);
        // Class 0 is the left Gaussian.
        assert!(data.points_of(Some(0)).iter().all(|p| p[0] < 0.0));
    }

    #[test]
    fn drawn_points_make_a_distribution_or_say_why_not() {
        assert_eq!(PointData::from_drawn(&[], 10, 1), Err(DataError::NoPoints));
        assert_eq!(PointData::from_drawn(&[([0.0, 0.0], 7)], 10, 1), Err(DataError::BadClass { class: 7 }));
        assert!(matches!(PointData::from_drawn(&[([f64::NAN, 0.0], 0)], 10, 1), Err(DataError::NotFinite { .. })));
        let data = PointData::from_drawn(&[([0.5, 0.5], 0), ([-0.5, -0.5], 2)], 300, 1).unwrap();
        assert_eq!(data.class_count, 3);
        assert!(data.points.iter().all(|p| (p[0] - p[1]).abs() < 0.5));
    }
}
