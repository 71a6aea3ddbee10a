//! The weight gradient of a stride-1 "same" 3x3 convolution without im2col, on AVX-512 CPUs: the images
//! moved to channels-last (NHWC), so that a vector's 16 lanes run along input channels, and per tap an
//! implicit GEMM over the pixels:
//!
//! ```text
//! ∂W[o, c, i, j] = Σ_images Σ_(y, x) ∂y[o, y, x] · x[c, y + i - 1, x + j - 1]   (the pixels whose tap is inside)
//! ```
//!
//! A tile of R output channels x 32 input channels keeps 2R vectors in registers over every pixel of a
//! chain of images: per pixel, two loads of x and R broadcasts of ∂y for 2R multiply-adds. No lane ever
//! holds a sum over pixels, so nothing is added across lanes at the end, and the pixels whose tap falls
//! outside the image are skipped by the loop's bounds, not masked. The im2col path wrote the input nine
//! times over and the GEMM packed it again (im2col 7 % and packing 2 % of a latent training step).
//!
//! Each weight's sum runs over its chain's pixels in order (image by image, row by row): the order depends
//! on the batch only, not on the thread count.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::conv::Geometry;
use super::direct::has_avx512;

/// Output channels per tile (2 x 12 = 24 accumulators).
const ROWS: usize = 12;
/// Input channels per tile: two vectors.
const COLUMNS: usize = 32;

/// Whether [`add_weight_gradient`] takes this convolution: stride-1 "same" 3x3 with input channels in
/// whole tiles, on a CPU where the direct kernel runs (AVX-512F, and `DIFFUSION_LAB_DIRECT_CONV` not `off`:
/// that switch then gives the whole im2col path, as a CPU without AVX-512 runs it).
pub(super) fn applies(g: &Geometry) -> bool {
    g.is_same() && g.kernel == [3, 3] && g.padding == [1, 1] && g.c_in.is_multiple_of(COLUMNS) && has_avx512()
}

/// Images of `[channels, pixels]` planes to channels-last `[images · pixels, channels]`.
fn channels_last(values: &[f32], channels: usize, pixels: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for (from, to) in values.chunks_exact(channels * pixels).zip(out.chunks_exact_mut(channels * pixels)) {
        for (c, plane) in from.chunks_exact(pixels).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                to[p * channels + c] = *v;
            }
        }
    }
    out
}

/// Adds the share of ∂L/∂W [c_out, c_in·9] of `images` images, x [images, c_in, h·w] and ∂y
/// [images, c_out, h·w] (NCHW), into `dw`.
pub(super) fn add_weight_gradient(x: &[f32], dy: &[f32], images: usize, g: &Geometry, dw: &mut [f32]) {
    assert!(applies(g));
    let pixels = g.pixels();
    assert!(x.len() == images * g.c_in * pixels && dy.len() == images * g.c_out * pixels);
    assert!(dw.len() == g.c_out * g.k());
    let x_last = channels_last(x, g.c_in, pixels);
    let dy_last = channels_last(dy, g.c_out, pixels);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `applies` checked that the CPU has AVX-512F; the sizes were checked above and the kernel's
    // reads stay inside the pixel ranges it computes (see `tile`).
    unsafe {
        weight_gradient_avx512(&x_last, &dy_last, images, g, dw)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn weight_gradient_avx512(x: &[f32], dy: &[f32], images: usize, g: &Geometry, dw: &mut [f32]) {
    let mut o = 0;
    while o < g.c_out {
        let rows = (g.c_out - o).min(ROWS);
        for c in (0..g.c_in).step_by(COLUMNS) {
            for tap in 0..9 {
                macro_rules! by_rows {
                    ($($r:literal)*) => {
                        match rows {
                            $($r => tile::<$r>(x, dy, images, g, [o, c, tap], dw),)*
                            _ => unreachable!("at most ROWS rows"),
                        }
                    };
                }
                by_rows!(12 11 10 9 8 7 6 5 4 3 2 1);
            }
        }
        o += rows;
    }
}

/// Output channels o..o + R by input channels c..c + 32 of ∂W at one tap, over every pixel of the images.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tile<const R: usize>(x: &[f32], dy: &[f32], images: usize, g: &Geometry, [o, c, tap]: [usize; 3], dw: &mut [f32]) {
    let (h, w) = (g.h as isize, g.w as isize);
    let (di, dj) = ((tap / 3) as isize - 1, (tap % 3) as isize - 1);
    // The output pixels whose tap lies inside the image: rows y with 0 <= y + di < h, columns likewise.
    let (y0, y1) = ((-di).max(0), (h - di).min(h));
    let (x0, x1) = ((-dj).max(0), (w - dj).min(w));
    assert!(o + R <= g.c_out && c + COLUMNS <= g.c_in);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (x_ptr, dy_ptr) = (x.as_ptr(), dy.as_ptr());
    let pixels = (h * w) as usize;
    for image in 0..images {
        let base = image * pixels;
        for y in y0..y1 {
            for xx in x0..x1 {
                let p = base + (y * w + xx) as usize;
                let q = base + ((y + di) * w + xx + dj) as usize;
                // SAFETY: p and q are pixels of this image (the bounds above), so q·c_in + c + 32 <= the
                // image's end in x and p·c_out + o + R in ∂y (asserted: c + 32 <= c_in, o + R <= c_out).
                unsafe {
                    let x_q = x_ptr.add(q * g.c_in + c);
                    let (a, b) = (_mm512_loadu_ps(x_q), _mm512_loadu_ps(x_q.add(16)));
                    let dy_p = dy_ptr.add(p * g.c_out + o);
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let d = _mm512_set1_ps(*dy_p.add(r));
                        acc_r[0] = _mm512_fmadd_ps(d, a, acc_r[0]);
                        acc_r[1] = _mm512_fmadd_ps(d, b, acc_r[1]);
                    }
                }
            }
        }
    }
    let k = g.k();
    for (r, acc_r) in acc.iter().enumerate() {
        let mut lanes = [0.0f32; COLUMNS];
        // SAFETY: `lanes` holds 32 floats.
        unsafe {
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc_r[0]);
            _mm512_storeu_ps(lanes.as_mut_ptr().add(16), acc_r[1]);
        }
        // W[o + r, c + l, tap] at (o + r)·k + (c + l)·9 + tap.
        for (l, value) in lanes.iter().enumerate() {
            dw[(o + r) * k + (c + l) * 9 + tap] += value;
        }
    }
}
