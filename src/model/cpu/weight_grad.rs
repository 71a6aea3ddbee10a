//! The weight gradient of a stride-1 "same" 3x3 convolution without im2col, on AVX-512 CPUs: the images
//! moved to channels-last (NHWC), so that a vector's 16 lanes run along input channels, and per tap an
//! implicit GEMM over the pixels:
//!
//! ```text
//! ∂W[o, c, i, j] = Σ_images Σ_(y, x) ∂y[o, y, x] · x[c, y + i - 1, x + j - 1]   (the pixels whose tap is inside)
//! ```
//!
//! A tile of R output channels x 32 input channels keeps 2R vectors in registers over every pixel of a
//! chunk of images: per pixel, two loads of x and R broadcasts of ∂y for 2R multiply-adds. The images go
//! in chunks of about 196 pixels, each moved to channels-last on its own and swept by every tile while it
//! is in the core's L2 cache; the tiles' sums are stored between chunks and reloaded. No lane ever
//! holds a sum over pixels, so nothing is added across lanes at the end, and the pixels whose tap falls
//! outside the image are skipped by the loop's bounds, not masked. The im2col path wrote the input nine
//! times over and the GEMM packed it again (im2col 7 % and packing 2 % of a latent training step).
//!
//! Each weight's sum runs over its chain's pixels in order (image by image, row by row), across chunks as
//! within one: the order depends on the batch only, not on the thread count or the chunk size.

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

/// Pixels a chunk of images should reach: one 28x28 image, one 14x14, four 7x7 or twelve 4x4. A chunk's
/// channels-last x and ∂y stay in the core's L2 cache while every tile runs over them; a sweep of every tile
/// over a whole chain of images read them from L3 and left the loads stalled (on a Xeon whose L3 gives a
/// core about one 128-byte pixel per 24 multiply-adds).
const CHUNK_PIXELS: usize = 196;

/// Images `[images, channels, pixels]` (NCHW) to channels-last `[images · pixels, channels]` in `out`, in
/// blocks of 16 channels x 16 pixels so that both sides are read and written a cache line at a time.
fn channels_last(values: &[f32], channels: usize, pixels: usize, out: &mut Vec<f32>) {
    // Every entry is written below: a longer buffer from the last chunk is only cut, never cleared.
    out.resize(values.len(), 0.0);
    const B: usize = 16;
    for (from, to) in values.chunks_exact(channels * pixels).zip(out.chunks_exact_mut(channels * pixels)) {
        for c0 in (0..channels).step_by(B) {
            let c1 = (c0 + B).min(channels);
            for p0 in (0..pixels).step_by(B) {
                let p1 = (p0 + B).min(pixels);
                for c in c0..c1 {
                    let row = &from[c * pixels..][p0..p1];
                    for (p, v) in (p0..p1).zip(row) {
                        to[p * channels + c] = *v;
                    }
                }
            }
        }
    }
}

/// Adds the share of ∂L/∂W [c_out, c_in·9] of `images` images, x [images, c_in, h·w] and ∂y
/// [images, c_out, h·w] (NCHW), into `dw`.
pub(super) fn add_weight_gradient(x: &[f32], dy: &[f32], images: usize, g: &Geometry, dw: &mut [f32]) {
    assert!(applies(g));
    let pixels = g.pixels();
    assert!(x.len() == images * g.c_in * pixels && dy.len() == images * g.c_out * pixels);
    assert!(dw.len() == g.c_out * g.k());
    let chunk = (CHUNK_PIXELS / pixels).max(1);
    // The tiles' sums so far, tile by tile ([ROWS x COLUMNS] per (output tile, input tile, tap)): each chunk's
    // pass reloads a tile's sums and stores them back, so every weight's sum still runs over the pixels in
    // order (image by image, row by row), as one sweep over the whole chain would.
    let mut sums = vec![0.0f32; tiles_of(g).count() * ROWS * COLUMNS];
    let (mut x_last, mut dy_last) = (Vec::new(), Vec::new());
    for first in (0..images).step_by(chunk) {
        let count = chunk.min(images - first);
        channels_last(&x[first * g.c_in * pixels..(first + count) * g.c_in * pixels], g.c_in, pixels, &mut x_last);
        channels_last(&dy[first * g.c_out * pixels..(first + count) * g.c_out * pixels], g.c_out, pixels, &mut dy_last);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked that the CPU has AVX-512F; the sizes were checked above and the kernel's
        // reads stay inside the pixel ranges it computes (see `tile`).
        unsafe {
            weight_gradient_avx512(&x_last, &dy_last, count, g, &mut sums)
        }
    }
    // The tiles' sums into W[o + r, c + l, tap] at (o + r)·k + (c + l)·9 + tap.
    let k = g.k();
    for ([o, rows, c, tap], tile) in tiles_of(g).zip(sums.chunks_exact(ROWS * COLUMNS)) {
        for (r, row) in tile.chunks_exact(COLUMNS).take(rows).enumerate() {
            for (l, value) in row.iter().enumerate() {
                dw[(o + r) * k + (c + l) * 9 + tap] += value;
            }
        }
    }
}

/// Each tile's [first output channel, output channels, first input channel, tap], in the order their sums
/// lie in the kernel's buffer: output tiles, then input tiles, then taps.
fn tiles_of(g: &Geometry) -> impl Iterator<Item = [usize; 4]> + '_ {
    (0..g.c_out).step_by(ROWS).flat_map(move |o| {
        let rows = (g.c_out - o).min(ROWS);
        (0..g.c_in).step_by(COLUMNS).flat_map(move |c| (0..9).map(move |tap| [o, rows, c, tap]))
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn weight_gradient_avx512(x: &[f32], dy: &[f32], images: usize, g: &Geometry, sums: &mut [f32]) {
    for ([o, rows, c, tap], sum) in tiles_of(g).zip(sums.chunks_exact_mut(ROWS * COLUMNS)) {
        macro_rules! by_rows {
            ($($r:literal)*) => {
                match rows {
                    $($r => tile::<$r>(x, dy, images, g, [o, c, tap], sum),)*
                    _ => unreachable!("at most ROWS rows"),
                }
            };
        }
        by_rows!(12 11 10 9 8 7 6 5 4 3 2 1);
    }
}

/// Output channels o..o + R by input channels c..c + 32 of ∂W at one tap, over every pixel of the images.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tile<const R: usize>(x: &[f32], dy: &[f32], images: usize, g: &Geometry, [o, c, tap]: [usize; 3], sum: &mut [f32]) {
    let (h, w) = (g.h as isize, g.w as isize);
    let (di, dj) = ((tap / 3) as isize - 1, (tap % 3) as isize - 1);
    // The output pixels whose tap lies inside the image: rows y with 0 <= y + di < h, columns likewise.
    let (y0, y1) = ((-di).max(0), (h - di).min(h));
    let (x0, x1) = ((-dj).max(0), (w - dj).min(w));
    assert!(o + R <= g.c_out && c + COLUMNS <= g.c_in && sum.len() == ROWS * COLUMNS);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for (acc_r, row) in acc.iter_mut().zip(sum.chunks_exact(COLUMNS)) {
        // SAFETY: a row of `sum` holds 32 floats.
        unsafe {
            acc_r[0] = _mm512_loadu_ps(row.as_ptr());
            acc_r[1] = _mm512_loadu_ps(row.as_ptr().add(16));
        }
    }
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
    for (acc_r, row) in acc.iter().zip(sum.chunks_exact_mut(COLUMNS)) {
        // SAFETY: a row of `sum` holds 32 floats.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc_r[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc_r[1]);
        }
    }
}
