//! A direct convolution for stride-1 "same" convolutions (3x3 with padding 1, the UNet's and the
//! autoencoder's usual layer), with an AVX-512 microkernel of our own.
//!
//! The im2col path ([`super::conv`]) writes the input nine times over as a [c_in·kh·kw, pixels] matrix,
//! and the GEMM then copies that matrix again into its packed panels before it multiplies: on a latent
//! training step the two copies were 18 % of the time, more than the multiplications of some layers. Here
//! the microkernel reads each shifted input row straight from the NCHW input with a masked load (the lanes
//! whose tap falls outside the image read nothing and count as 0, as im2col's zeros do) and keeps a block
//! of 6 output channels x 64 pixels in registers while it runs over every input channel and tap:
//!
//! ```text
//! out[o, p] = b[o] + Σ_c Σ_(i,j) W[o, c, i, j] · x[c, p + (i - p_h)·w + (j - p_w)]
//! ```
//!
//! A block's 64 pixels run on across the images of a group (a 7x7 map's 49 pixels would otherwise leave a
//! quarter of the lanes idle), so a vector of 16 lanes may take its first lanes from one image and the rest
//! from the next: two masked loads then. Each output's sum runs in the same order (bias, then tap by tap,
//! each tap's input channels in order) whatever the grouping or the thread count, so results do not depend
//! on either.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use std::sync::{Arc, Mutex};

use super::conv::Geometry;

/// Plans [`Plan::shared`] keeps: more than the UNets' and the autoencoder's geometries at two group sizes.
const PLANS_KEPT: usize = 64;

/// Output channels per register block.
const ROWS: usize = 6;
/// Vectors of 16 pixels per register block.
const VECTORS: usize = 4;
/// Pixels per register block.
const BLOCK: usize = 16 * VECTORS;

/// Whether [`Plan::convolve`] takes this convolution: a stride-1 "same" convolution other than 1x1, on maps of
/// at least 16 pixels (a vector then spans at most two images), on a CPU with AVX-512F.
pub(super) fn applies(g: &Geometry) -> bool {
    g.is_same() && !g.is_pointwise() && g.pixels() >= 16 && has_avx512()
}

/// Whether this CPU runs AVX-512F (and the direct kernel is not switched off for a comparison).
pub(super) fn has_avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        let off = std::env::var(DIRECT_ENV).is_ok_and(|v| v == "off");
        #[cfg(target_arch = "x86_64")]
        {
            !off && std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = off;
            false
        }
    })
}

/// Set to `off` to run the im2col path on every CPU (to compare them: README, Speed).
pub const DIRECT_ENV: &str = "DIFFUSION_LAB_DIRECT_CONV";

/// The lane tables of every block of pixels for a group of `images` images: computed once per convolution
/// and group size (they depend on the geometry only), read by every block of output channels.
pub(super) struct Plan {
    g: Geometry,
    images: usize,
    /// Per block: for each tap and vector, where the vector's lanes read (see [`block_lanes`]).
    taps: Vec<[Lanes; VECTORS]>,
    /// Per block: where each vector's lanes write.
    writes: Vec<[Lanes; VECTORS]>,
}

impl Plan {
    /// The plan for groups of `images` images of a geometry that [`applies`], from a cache of the plans made
    /// so far (a training step asks for the same few dozen every time; at most [`PLANS_KEPT`] are kept).
    pub(super) fn shared(g: Geometry, images: usize) -> Arc<Plan> {
        static PLANS: Mutex<Vec<Arc<Plan>>> = Mutex::new(Vec::new());
        let mut plans = PLANS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.iter().find(|p| p.g == g && p.images == images) {
            return Arc::clone(plan);
        }
        if plans.len() >= PLANS_KEPT {
            plans.remove(0);
        }
        let plan = Arc::new(Plan::new(g, images));
        plans.push(Arc::clone(&plan));
        plan
    }

    /// The plan for groups of `images` images of a geometry that [`applies`].
    fn new(g: Geometry, images: usize) -> Plan {
        let total = images * g.pixels();
        let tap_count = g.kernel[0] * g.kernel[1];
        let blocks = total.div_ceil(BLOCK);
        let mut taps = vec![[Lanes::default(); VECTORS]; blocks * tap_count];
        let mut writes = vec![[Lanes::default(); VECTORS]; blocks];
        for (b, (taps, writes)) in taps.chunks_exact_mut(tap_count).zip(&mut writes).enumerate() {
            block_lanes(b * BLOCK, total, &g, taps, writes);
        }
        Plan { g, images, taps, writes }
    }

    /// out [images, c_out, pixels] = the convolution of x [images, c_in, h·w] (+ bias); `out` is overwritten.
    pub(super) fn convolve(&self, x: &[f32], weights: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        let g = self.g;
        assert!(applies(&g));
        assert!(x.len() == self.images * g.c_in * g.pixels() && out.len() == self.images * g.c_out * g.pixels());
        assert!(weights.len() == g.c_out * g.k() && bias.is_none_or(|b| b.len() == g.c_out));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked that the CPU has AVX-512F; the sizes were checked above, and every load or
        // store the kernel does outside them is masked off (see `Lanes`).
        unsafe {
            convolve_avx512(self, x, weights, bias, out)
        }
    }
}

/// Where a vector of 16 consecutive lanes (pixels of a group's images, one after the other) reads and
/// writes: `first` lanes belong to one image, `second` to the next (at most two: maps have 16 pixels or
/// more), each with its offset from the start of the group's buffer for lane 0. Lanes past the group
/// belong to neither.
#[derive(Clone, Copy, Default)]
struct Lanes {
    first: u16,
    second: u16,
    first_offset: isize,
    second_offset: isize,
}

/// The block of pixels starting at lane `start` of `total`: for each tap (i, j) and vector, the lanes whose
/// input pixel lies inside the image and where each image's part reads channel 0 of x (`taps`), and where
/// each vector's lanes write channel 0 of out (`writes`).
fn block_lanes(start: usize, total: usize, g: &Geometry, taps: &mut [[Lanes; VECTORS]], writes: &mut [Lanes; VECTORS]) {
    let [kh, kw] = g.kernel;
    let [ph, pw] = g.padding;
    let pixels = g.pixels();
    for v in 0..VECTORS {
        let lane0 = start + 16 * v;
        let image = lane0 / pixels;
        // Each lane's place: in the vector's first image or the next, and its pixel's row and column
        // (None past the group).
        let mut places = [None; 16];
        let (mut first, mut second) = (0u16, 0u16);
        for (l, place) in places.iter_mut().enumerate() {
            let q = lane0 + l;
            if q < total {
                let in_first = q / pixels == image;
                if in_first {
                    first |= 1 << l;
                } else {
                    second |= 1 << l;
                }
                let p = q % pixels;
                *place = Some((in_first, (p / g.w) as isize, (p % g.w) as isize));
            }
        }
        // Lane l of image b is pixel lane0 + l - b·pixels of that image.
        let offset = |image: usize, channels: usize| {
            (image * channels * pixels) as isize + lane0 as isize - (image * pixels) as isize
        };
        writes[v] =
            Lanes { first, second, first_offset: offset(image, g.c_out), second_offset: offset(image + 1, g.c_out) };
        for i in 0..kh {
            let dy = i as isize - ph as isize;
            for j in 0..kw {
                let dx = j as isize - pw as isize;
                let (mut valid_first, mut valid_second) = (0u16, 0u16);
                for (l, place) in places.iter().enumerate() {
                    let Some((in_first, y, x)) = *place else { continue };
                    let (y, x) = (y + dy, x + dx);
                    if y >= 0 && y < g.h as isize && x >= 0 && x < g.w as isize {
                        if in_first {
                            valid_first |= 1 << l;
                        } else {
                            valid_second |= 1 << l;
                        }
                    }
                }
                let shift = dy * g.w as isize + dx;
                taps[i * kw + j][v] = Lanes {
                    first: valid_first,
                    second: valid_second,
                    first_offset: offset(image, g.c_in) + shift,
                    second_offset: offset(image + 1, g.c_in) + shift,
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn convolve_avx512(plan: &Plan, x: &[f32], weights: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let g = &plan.g;
    let tap_count = g.kernel[0] * g.kernel[1];
    let total = plan.images * g.pixels();
    for (index, (taps, writes)) in plan.taps.chunks_exact(tap_count).zip(&plan.writes).enumerate() {
        // The vectors this block uses: all four but in a group's last block, which runs only those it has
        // (a 7x7 map's group of four images is 12.25 vectors: a fourth block of four would be 3/4 idle).
        let vectors = (total - index * BLOCK).div_ceil(16).min(VECTORS);
        let mut row = 0;
        while row < g.c_out {
            let rows = rows_next(g.c_out - row);
            // One instance per shape, so that each keeps its accumulators in registers.
            macro_rules! by_rows {
                ($v:literal) => {
                    match rows {
                        6 => block::<6, $v>(x, weights, bias, g, taps, writes, row, out),
                        5 => block::<5, $v>(x, weights, bias, g, taps, writes, row, out),
                        4 => block::<4, $v>(x, weights, bias, g, taps, writes, row, out),
                        3 => block::<3, $v>(x, weights, bias, g, taps, writes, row, out),
                        2 => block::<2, $v>(x, weights, bias, g, taps, writes, row, out),
                        _ => block::<1, $v>(x, weights, bias, g, taps, writes, row, out),
                    }
                };
            }
            match vectors {
                4 => by_rows!(4),
                3 => by_rows!(3),
                2 => by_rows!(2),
                _ => by_rows!(1),
            }
            row += rows;
        }
    }
}

/// One tap's contribution for every input channel: four (masked) loads and R broadcasts for 4·R multiply-
/// adds per channel. SPLIT: some vector takes lanes from two images (two loads for it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn tap<const R: usize, const V: usize, const SPLIT: bool>(
    acc: &mut [[__m512; V]; R],
    x: &[f32],
    w_t: *const f32,
    lanes: &[Lanes; VECTORS],
    [k, tap_count]: [usize; 2],
    channels: usize,
    pixels: isize,
) {
    let x_ptr = x.as_ptr();
    for c in 0..channels {
        let channel = c as isize * pixels;
        let mut inputs = [_mm512_setzero_ps(); V];
        for (input, lane) in inputs.iter_mut().zip(lanes) {
            // SAFETY: the lanes a mask keeps read x inside its bounds (their pixels lie inside the image and
            // the group); the masked-off lanes are not read (AVX-512 suppresses their faults), so their
            // addresses, computed with wrapping_offset, may lie anywhere.
            unsafe {
                let mut value = _mm512_maskz_loadu_ps(lane.first, x_ptr.wrapping_offset(lane.first_offset + channel));
                if SPLIT && lane.second != 0 {
                    value =
                        _mm512_mask_loadu_ps(value, lane.second, x_ptr.wrapping_offset(lane.second_offset + channel));
                }
                *input = value;
            }
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: r < R and c < channels keep this inside the weights (the caller's assertion).
            let w = _mm512_set1_ps(unsafe { *w_t.add(r * k + c * tap_count) });
            for (a, input) in acc_r.iter_mut().zip(&inputs) {
                *a = _mm512_fmadd_ps(w, *input, *a);
            }
        }
    }
}

/// How many of the `left` output channels the next register block takes: 6, except that 8 left go as 4 + 4
/// (a block of 2 does 8 multiply-adds per 6 loads and runs at half speed: 32, 64 and 128 channels end in
/// blocks of 4).
fn rows_next(left: usize) -> usize {
    if left % ROWS == 2 && left >= 8 { 4 } else { left.min(ROWS) }
}

/// Output channels row..row + R of one block of pixels: R x 64 accumulators in registers, over every tap and
/// input channel (each output's sum: bias, then tap by tap, each tap's input channels in order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn block<const R: usize, const V: usize>(
    x: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    taps: &[[Lanes; VECTORS]],
    writes: &[Lanes; VECTORS],
    row: usize,
    out: &mut [f32],
) {
    let k = g.k();
    let pixels = g.pixels() as isize;
    let tap_count = taps.len();
    assert!(row + R <= g.c_out && weights.len() == g.c_out * k);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if let Some(bias) = bias {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            *acc_r = [_mm512_set1_ps(bias[row + r]); V];
        }
    }
    for (t, lanes) in taps.iter().enumerate() {
        // W[row + r, c, t] = w_t[r·k + c·taps]: in bounds for every r < R and c < c_in (asserted above).
        let w_t = weights[row * k + t..].as_ptr();
        if lanes[..V].iter().any(|lane| lane.second != 0) {
            tap::<R, V, true>(&mut acc, x, w_t, lanes, [k, tap_count], g.c_in, pixels);
        } else {
            tap::<R, V, false>(&mut acc, x, w_t, lanes, [k, tap_count], g.c_in, pixels);
        }
    }
    let out_ptr = out.as_mut_ptr();
    for (r, acc_r) in acc.iter().enumerate() {
        let channel = (row + r) as isize * pixels;
        for (a, lane) in acc_r.iter().zip(writes) {
            // SAFETY: as for the loads: the kept lanes lie inside `out`, the others are not written.
            unsafe {
                _mm512_mask_storeu_ps(out_ptr.wrapping_offset(lane.first_offset + channel), lane.first, *a);
                if lane.second != 0 {
                    _mm512_mask_storeu_ps(out_ptr.wrapping_offset(lane.second_offset + channel), lane.second, *a);
                }
            }
        }
    }
}
