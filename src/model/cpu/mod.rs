//! Inference kernels for burn's flex (CPU) backend, where its general-purpose operations leave most of
//! the time on the table for this network's shapes (README: Speed, and the profile there).
//!
//! - [`group_norm_silu`]: GroupNorm + SiLU in one parallel pass instead of about ten serial ones.
//! - [`conv2d`]: a convolution as im2col + one GEMM per image, straight from and to NCHW, with the bias
//!   folded into the GEMM, split over the cores by image.
//!
//! - [`attention`]: attention's core (the Q, K, V and output projections, softmax(Q Kᵀ / √d) V) per image
//!   in the feature map's own layout, forward and backward, for plain and autodiff tensors.
//! - [`train_conv`]: training's convolution (autodiff on flex) with its own backward pass, the input and
//!   weight gradients as GEMMs over the same im2col layout.
//! - [`train_norm`]: training's GroupNorm + SiLU as one autodiff operation, its backward one pass per
//!   (image, group).
//!
//! Only flex tensors take these paths (the inference kernels plain tensors, the training convolution
//! autodiff ones); GPU devices keep burn's operations. Each kernel is tested against burn's operation it
//! replaces, the training kernels against burn's gradients too.

/// Evaluates `$body` (an `Option`, with `?` allowed) with `$B` the autodiff flex backend of gradient-
/// checkpointing strategy `$C`, for each strategy in turn until one gives `Some`: a device's strategy is a
/// type parameter of its backend, and the trait that names it is private in burn 0.22 (ARCHITECTURE.md,
/// stack notes), so the training kernels try both.
macro_rules! on_autodiff_flex {
    (|$B:ident, $C:ident| $body:expr) => {{
        let without_checkpointing = {
            type $C = burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
            type $B = burn::backend::Autodiff<burn::backend::Flex, $C>;
            (|| -> Option<_> { $body })()
        };
        without_checkpointing.or_else(|| {
            type $C = burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
            type $B = burn::backend::Autodiff<burn::backend::Flex, $C>;
            (|| -> Option<_> { $body })()
        })
    }};
}

/// Defines the function written inside it so that its body runs compiled for AVX2 + FMA where the CPU has
/// them and as it is otherwise (the binary targets baseline x86-64, whose SSE2 loops run 4 lanes wide): the
/// kernels' loops are written plainly and the compiler vectorises them for whichever CPU runs them.
macro_rules! with_avx2 {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

mod attention;
mod conv;
mod direct;
mod norm;
mod parts;
mod train_conv;
mod train_norm;
mod weight_grad;

pub use attention::{AttentionLayer, AttentionOutput, attention};
pub use conv::conv2d;
pub use direct::DIRECT_ENV;
pub use norm::{exp, group_norm, group_norm_silu};
pub use parts::{BATCH_PART, PARTS_ENV, batch_parts, run_parts, training_parts};

use burn::prelude::*;

/// Set to `off` to run burn's own operations instead of these kernels (to compare them: README, Speed).
pub const KERNELS_ENV: &str = "DIFFUSION_LAB_CPU_KERNELS";

/// Whether these kernels are switched on (they are unless [`KERNELS_ENV`] is `off`).
pub fn kernels_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var(KERNELS_ENV).map_or(true, |v| v != "off"))
}

/// Whether `device` is the plain flex CPU device (these kernels read and write its memory directly)
/// and the kernels are on.
pub fn is_plain_cpu(device: &Device) -> bool {
    kernels_enabled() && !device.is_autodiff() && *device == Device::flex()
}

/// A plain flex tensor's primitive, whose values [`train_conv::f32_values`] reads in place (a tensor still
/// shared with the caller, as a residual block's input is, was copied on one core by `into_data`).
fn flex_primitive<const D: usize>(x: &Tensor<D>) -> Option<burn_flex::FlexTensor> {
    x.clone().try_into_primitive::<burn::backend::Flex>().ok()
}

/// A vector of `n` values whose chunks of `chunk` values (the last maybe shorter) are zeroed and then
/// handed to `fill` (with the chunk's index) on the pool's threads: the first write to a large output,
/// a memset on one core otherwise, is spread over the cores and happens where the values are computed.
fn filled_in_parallel(n: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let mut values: Vec<f32> = Vec::with_capacity(n);
    values.spare_capacity_mut()[..n].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(index, part)| {
        for value in part.iter_mut() {
            value.write(0.0);
        }
        // SAFETY: every element of `part` was initialised just above, and MaybeUninit<f32> has f32's layout.
        let part = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
        fill(index, part);
    });
    // SAFETY: the chunks cover the first n elements, each initialised above.
    unsafe { values.set_len(n) };
    values
}

/// `dst.copy_from_slice(src)` for the short rows of small maps (a 7x7 plane is 49 values, a 4x4 one 16)
/// without a libc call per row: blocks of a fixed size, which compile to vector moves, the last block
/// overlapping the one before. im2col of a 7x7 map made one such call per (channel, tap, image).
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    match dst.len() {
        n if n > 256 => dst.copy_from_slice(src),
        n if n >= 16 => copy_blocks::<16>(dst, src),
        n if n >= 4 => copy_blocks::<4>(dst, src),
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
    }
}

#[inline(always)]
fn copy_blocks<const B: usize>(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let mut i = 0;
    while i + B <= n {
        dst[i..i + B].copy_from_slice(&src[i..i + B]);
        i += B;
    }
    if i < n {
        dst[n - B..].copy_from_slice(&src[n - B..]);
    }
}

/// `dst.fill(0.0)`, as [`copy_short`] copies.
#[inline]
fn zero_short(dst: &mut [f32]) {
    match dst.len() {
        n if n > 256 => dst.fill(0.0),
        n if n >= 16 => zero_blocks::<16>(dst),
        n if n >= 4 => zero_blocks::<4>(dst),
        _ => dst.iter_mut().for_each(|d| *d = 0.0),
    }
}

#[inline(always)]
fn zero_blocks<const B: usize>(dst: &mut [f32]) {
    let n = dst.len();
    let mut i = 0;
    while i + B <= n {
        dst[i..i + B].copy_from_slice(&[0.0; B]);
        i += B;
    }
    if i < n {
        dst[n - B..].copy_from_slice(&[0.0; B]);
    }
}

/// Like [`values`], for parameters (small, shared with the module: always copied).
fn param_values<const D: usize>(x: Tensor<D>) -> Option<Vec<f32>> {
    crate::model::read_f32(x).ok()
}

/// The largest absolute difference between two tensors of the same shape (the kernels' tests). A NaN on
/// one side only counts as an infinite difference: `f32::max` drops NaN, so a kernel writing NaN would
/// otherwise compare as equal.
#[cfg(test)]
fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (crate::model::read_f32(a).unwrap(), crate::model::read_f32(b).unwrap());
    a.iter().zip(&b).map(|(a, b)| difference(*a, *b)).fold(0.0f32, f32::max)
}

/// |a - b|, with equal values (NaN and NaN, or the same infinity) 0 and a NaN facing a number infinite.
#[cfg(test)]
fn difference(a: f32, b: f32) -> f32 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    let d = (a - b).abs();
    if d.is_nan() { f32::INFINITY } else { d }
}

/// A tensor's values (the kernels' tests).
#[cfg(test)]
fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The largest difference between `ours` and `reference`, relative to the reference's size (at least 1);
/// a NaN on one side only is an infinite difference (the training kernels' tests).
#[cfg(test)]
fn relative_difference(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let far = |(a, b): (&f32, &f32)| if a.is_nan() != b.is_nan() { f32::INFINITY } else { (a - b).abs() };
    ours.iter().zip(reference).map(far).fold(0.0, f32::max) / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_on_one_side_is_an_infinite_difference() {
        assert_eq!(difference(1.0, f32::NAN), f32::INFINITY);
        assert_eq!(difference(f32::NAN, -2.0), f32::INFINITY);
        assert_eq!(difference(f32::NAN, f32::NAN), 0.0);
        assert_eq!(difference(f32::INFINITY, f32::INFINITY), 0.0);
        assert_eq!(difference(f32::INFINITY, 1.0), f32::INFINITY);
        assert_eq!(difference(1.0, 3.5), 2.5);
        let device = Device::flex();
        let a = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        let b = Tensor::<1>::from_floats([1.0, f32::NAN, 3.0], &device);
        assert_eq!(max_difference(a, b), f32::INFINITY);
    }

    /// Every length, short and long, against the standard copy and fill, with the values around the
    /// destination untouched (the last block overlaps the one before, never what lies past the end).
    #[test]
    fn short_copies_and_fills_write_exactly_their_slice() {
        for n in 0..300 {
            let source: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut copied = vec![-1.0f32; n + 2];
            copy_short(&mut copied[1..n + 1], &source);
            assert_eq!(copied[1..n + 1], source[..], "copy of {n}");
            assert_eq!((copied[0], copied[n + 1]), (-1.0, -1.0), "copy of {n}");
            let mut zeroed = vec![-1.0f32; n + 2];
            zero_short(&mut zeroed[1..n + 1]);
            assert!(zeroed[1..n + 1].iter().all(|v| *v == 0.0), "fill of {n}");
            assert_eq!((zeroed[0], zeroed[n + 1]), (-1.0, -1.0), "fill of {n}");
        }
    }
}
