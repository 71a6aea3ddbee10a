//! A 2-d convolution as im2col + GEMM, NCHW in and out.
//!
//! burn-flex's general convolution copies the whole input to NHWC on one core, builds im2col tiles of 512
//! pixels, runs a small GEMM per tile into a fresh buffer and scatters it back to NCHW, then adds the
//! bias in another pass. For the batches this app runs (16 to 64 images of 28x28 or 7x7), one GEMM per
//! image over all its pixels is larger and better shaped for the GEMM kernel, needs no layout change, and
//! takes the bias as the GEMM's initial value: out[c_out, p] = bias[c_out] + Σ_k W[c_out, k] col[k, p],
//! with k = (c_in, kh, kw) in the weight's own memory order.

use std::cell::RefCell;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// `conv.forward(x)`; x: [batch, c_in, h, w] -> [batch, c_out, h_out, w_out].
/// Training (autodiff on flex) takes [`super::train_conv`], with its own backward pass.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let x = match fused(conv, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    match super::train_conv::conv2d_autodiff(conv, x) {
        Ok(y) => y,
        Err(x) => conv.forward(x),
    }
}

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) c_in: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c_out: usize,
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
    pub(super) h_out: usize,
    pub(super) w_out: usize,
}

impl Geometry {
    /// Rows of the im2col matrix: c_in * kh * kw.
    pub(super) fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per image, the im2col matrix's columns.
    pub(super) fn pixels(&self) -> usize {
        self.h_out * self.w_out
    }

    /// A 1x1 convolution with stride 1 and no padding reads the image itself as its im2col matrix.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// A "same" convolution: stride 1 and the output the input's size (so 2p = k - 1 on each side); each
    /// im2col row is then the whole plane shifted by one offset.
    pub(super) fn is_same(&self) -> bool {
        self.stride == [1, 1] && self.h_out == self.h && self.w_out == self.w
    }
}

/// Symmetric padding (top = bottom, left = right) as [h, w], or `None` for what this path does not take.
pub(super) fn symmetric_padding(padding: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        _ => None,
    }
}

// The Err side hands the input back for burn's own operation (it is no error), so its size is the tensor's.
#[allow(clippy::result_large_err)]
fn fused(conv: &Conv2d, x: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    let [batch, c_in, h, w] = x.dims();
    let weight = conv.weight.val();
    let [c_out, c_in_weight, kh, kw] = weight.dims();
    let Some(padding) = symmetric_padding(&conv.padding) else { return Err(x) };
    let plain = super::is_plain_cpu(&device) && x.dtype() == burn::tensor::DType::F32;
    if !plain || conv.groups != 1 || conv.dilation != [1, 1] || c_in_weight != c_in || conv.stride.contains(&0) {
        return Err(x);
    }
    let out_size = |size: usize, k: usize, s: usize, p: usize| (size + 2 * p).checked_sub(k).map(|d| d / s + 1);
    let (Some(h_out), Some(w_out)) =
        (out_size(h, kh, conv.stride[0], padding[0]), out_size(w, kw, conv.stride[1], padding[1]))
    else {
        return Err(x);
    };
    let geometry = Geometry { c_in, h, w, c_out, kernel: [kh, kw], stride: conv.stride, padding, h_out, w_out };
    let Some(weights) = super::param_values(weight) else { return Err(x) };
    let bias = match &conv.bias {
        Some(bias) => match super::param_values(bias.val()) {
            Some(bias) => Some(bias),
            None => return Err(x),
        },
        None => None,
    };
    let Some(input) = super::flex_primitive(&x) else { return Err(x) };
    let output = convolve(&super::train_conv::f32_values(&input), batch, &weights, bias.as_deref(), geometry);
    Ok(Tensor::from_data(TensorData::new(output, [batch, c_out, h_out, w_out]), &device))
}

thread_local! {
    /// Each worker thread's im2col buffer, reused between calls (it is up to a few MB; allocating it
    /// fresh per image would page-fault it in every time).
    pub(super) static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each worker thread's buffer for a group's [c_out, images x pixels] matrix (see [`images_per_gemm`]).
    pub(super) static GROUP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Images whose pixels one GEMM takes side by side, for maps of `pixels` pixels in a batch of `batch`.
/// The GEMM kernel runs along the pixels (the contiguous side of NCHW) in blocks of 16 rows: a 7x7 map
/// alone leaves a 1-row tail on its 49 rows (a quarter of the work wasted) and a 4x4 map runs the thin
/// 16-row kernel only, so small maps go in groups of up to 16 (about 512 pixels), but at most a quarter
/// of the batch so that the groups spread over the cores. A function of the shapes only: results do not
/// depend on the number of threads (a resumed training run repeats an uninterrupted one exactly).
pub(super) fn images_per_gemm(batch: usize, pixels: usize) -> usize {
    (512 / pixels.max(1)).clamp(1, 16).min(batch.div_ceil(4)).max(1)
}

/// The convolution of `batch` NCHW images: by the direct kernel where it [applies](super::direct::applies),
/// by im2col + GEMM otherwise.
pub(super) fn convolve(input: &[f32], batch: usize, weights: &[f32], bias: Option<&[f32]>, g: Geometry) -> Vec<f32> {
    convolve_by(input, batch, weights, bias, g, super::direct::applies(&g))
}

/// [`convolve`] with the direct kernel or not (`direct` only where it applies).
fn convolve_by(
    input: &[f32],
    batch: usize,
    weights: &[f32],
    bias: Option<&[f32]>,
    g: Geometry,
    direct: bool,
) -> Vec<f32> {
    let image_in = g.c_in * g.h * g.w;
    let image_out = g.c_out * g.pixels();
    let group = images_per_gemm(batch, g.pixels());
    // Groups in parallel, one single-threaded GEMM each; a lone image lets the GEMM use every core.
    let threads = rayon::current_num_threads();
    let gemm_parallelism = if batch >= threads { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(0) };
    // The direct kernel's plans for a whole group and for the last, shorter one.
    let plans = direct.then(|| {
        let last = batch - (batch - 1) / group * group;
        (super::direct::Plan::shared(g, group), (last != group).then(|| super::direct::Plan::shared(g, last)))
    });
    super::filled_in_parallel(batch * image_out, group * image_out, |index, out| {
        let first = index * group;
        let images = out.len() / image_out;
        let x = &input[first * image_in..(first + images) * image_in];
        if let Some((whole, last)) = &plans {
            let plan = if images == group { whole } else { last.as_ref().unwrap_or(whole) };
            plan.convolve(x, weights, bias, out);
            return;
        }
        if images == 1 {
            if let Some(bias) = bias {
                for (row, b) in out.chunks_exact_mut(g.pixels()).zip(bias) {
                    row.fill(*b);
                }
            }
            let shape = [g.c_out, g.pixels(), g.k()];
            if g.is_pointwise() {
                gemm_into(out, weights, x, shape, bias.is_some(), gemm_parallelism);
            } else {
                COLUMNS.with_borrow_mut(|columns| {
                    columns.resize(g.k() * g.pixels(), 0.0);
                    im2col(x, columns, g, g.pixels(), 0);
                    gemm_into(out, weights, columns, shape, bias.is_some(), gemm_parallelism);
                });
            }
            return;
        }
        // [c_out, images x pixels] = W · [k, images x pixels], then each image's columns to its place.
        let width = images * g.pixels();
        COLUMNS.with_borrow_mut(|columns| {
            GROUP.with_borrow_mut(|product| {
                columns.resize(g.k() * width, 0.0);
                product.resize(g.c_out * width, 0.0);
                for (image, x_n) in x.chunks_exact(image_in).enumerate() {
                    im2col(x_n, columns, g, width, image * g.pixels());
                }
                gemm_into(product, weights, columns, [g.c_out, width, g.k()], false, gemm_parallelism);
                scatter(product, out, g.c_out, g.pixels(), images, bias);
            });
        });
    })
}

/// out[n, c, p] = grouped[c, n·pixels + p] (+ bias[c]): a group's GEMM result back to NCHW.
pub(super) fn scatter(
    grouped: &[f32],
    out: &mut [f32],
    channels: usize,
    pixels: usize,
    images: usize,
    bias: Option<&[f32]>,
) {
    let width = images * pixels;
    for (image, out_n) in out.chunks_exact_mut(channels * pixels).enumerate() {
        for (c, row) in out_n.chunks_exact_mut(pixels).enumerate() {
            let source = &grouped[c * width + image * pixels..][..pixels];
            let b = bias.map_or(0.0, |b| b[c]);
            row.iter_mut().zip(source).for_each(|(o, v)| *o = v + b);
        }
    }
}

/// grouped[c, n·pixels + p] = values[n, c, p]: NCHW images side by side for one GEMM.
pub(super) fn gather(values: &[f32], grouped: &mut [f32], channels: usize, pixels: usize) {
    let images = values.len() / (channels * pixels);
    let width = images * pixels;
    for (image, values_n) in values.chunks_exact(channels * pixels).enumerate() {
        for (c, row) in values_n.chunks_exact(pixels).enumerate() {
            super::copy_short(&mut grouped[c * width + image * pixels..][..pixels], row);
        }
    }
}

/// out[m, n] (+)= weights[m, k] · columns[k, n], all row-major.
fn gemm_into(
    out: &mut [f32],
    weights: &[f32],
    columns: &[f32],
    [m, n, k]: [usize; 3],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert!(out.len() >= m * n && weights.len() >= m * k && columns.len() >= k * n);
    // SAFETY: the three matrices lie inside their slices with the strides given (checked above: out is
    // m x n, weights m x k, columns k x n, row-major), and `out` does not overlap the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            weights.as_ptr(),
            1,
            k as isize,
            columns.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// columns[(c, i, j), (oy, ox)] = x[c, oy * sy + i - py, ox * sx + j - px], zero outside the image.
/// Row r of the matrix is `columns[r·stride + offset..][..pixels]` (stride = pixels, offset 0 for one image;
/// a group's images sit side by side).
pub(super) fn im2col(x: &[f32], columns: &mut [f32], g: Geometry, stride: usize, offset: usize) {
    let [kh, kw] = g.kernel;
    let pixels = g.pixels();
    // "Same" convolutions (stride 1, output the input's size) take the fast path: every row of the im2col
    // matrix is the whole plane shifted, one long copy instead of a short one per image row.
    let same = g.is_same();
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..kh {
            for j in 0..kw {
                let row = &mut columns[((c * kh + i) * kw + j) * stride + offset..][..pixels];
                if same {
                    shifted_plane(plane, row, g, i, j);
                } else {
                    strided_rows(plane, row, g, i, j);
                }
            }
        }
    }
}

/// One im2col row of a stride-1 "same" convolution: row[p] = plane[p + shift] with shift = (i - py) w +
/// (j - px), then the pixels whose column ox + j - px falls outside the image zeroed (in the long copy
/// they read the neighbouring image row). Rows outside the image fall outside [start, end).
fn shifted_plane(plane: &[f32], row: &mut [f32], g: Geometry, i: usize, j: usize) {
    let n = plane.len() as isize;
    let shift = (i as isize - g.padding[0] as isize) * g.w as isize + (j as isize - g.padding[1] as isize);
    let start = (-shift).clamp(0, n) as usize;
    let end = (n - shift).clamp(start as isize, n) as usize;
    super::zero_short(&mut row[..start]);
    if start < end {
        super::copy_short(
            &mut row[start..end],
            &plane[(start as isize + shift) as usize..(end as isize + shift) as usize],
        );
    }
    super::zero_short(&mut row[end..]);
    let column_shift = j as isize - g.padding[1] as isize;
    // Output columns ox with ox + column_shift outside 0..w: at most px on each side.
    let left = (-column_shift).clamp(0, g.w as isize) as usize;
    let right = (g.w as isize - column_shift).clamp(0, g.w as isize) as usize;
    // Column by column with a stride (at most px columns per side): a fill per image row was a libc
    // memset call for one or two values, 3 % of a training step.
    for column in (0..left).chain(right..g.w) {
        for value in row[column..].iter_mut().step_by(g.w) {
            *value = 0.0;
        }
    }
}

/// One im2col row of any other convolution (strided, or an output of another size), row by row.
fn strided_rows(plane: &[f32], row: &mut [f32], g: Geometry, i: usize, j: usize) {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    for oy in 0..g.h_out {
        let out_row = &mut row[oy * g.w_out..(oy + 1) * g.w_out];
        let iy = (oy * sy + i) as isize - py as isize;
        if iy < 0 || iy >= g.h as isize {
            out_row.fill(0.0);
            continue;
        }
        let in_row = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
        for (ox, value) in out_row.iter_mut().enumerate() {
            let ix = (ox * sx + j) as isize - px as isize;
            *value = if ix >= 0 && ix < g.w as isize { in_row[ix as usize] } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;

    /// Every geometry the UNet and the autoencoder use (3x3 with padding 1, stride 1 and 2, on even and odd
    /// sizes; 1x1), plus one without bias and an asymmetric kernel.
    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        let mut noise = crate::diffusion::NoiseSource::new(5);
        // (c_in, c_out, kernel, stride, padding, bias, size)
        type Case = (usize, usize, [usize; 2], [usize; 2], usize, bool, usize);
        let cases: [Case; 10] = [
            // (c_in, c_out, kernel, stride, padding, bias, size)
            (3, 5, [3, 3], [1, 1], 1, true, 7),
            // 784 pixels: 49 vectors of 16, the direct kernel's last block of one vector.
            (3, 8, [3, 3], [1, 1], 1, true, 28),
            (3, 5, [3, 3], [1, 1], 1, true, 8),
            (4, 6, [3, 3], [2, 2], 1, true, 7),
            (4, 6, [3, 3], [2, 2], 1, true, 28),
            (6, 2, [1, 1], [1, 1], 0, true, 5),
            (2, 3, [3, 3], [1, 1], 1, false, 6),
            (2, 3, [1, 3], [1, 1], 0, true, 6),
            (2, 3, [5, 5], [1, 1], 2, true, 9),
            (2, 3, [3, 3], [1, 1], 1, true, 1),
        ];
        for (c_in, c_out, kernel, stride, padding, bias, size) in cases {
            let padding = if padding == 0 {
                PaddingConfig2d::Valid
            } else {
                PaddingConfig2d::Explicit(padding, padding, padding, padding)
            };
            let conv = Conv2dConfig::new([c_in, c_out], kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_bias(bias)
                .init(&device);
            for batch in [1, 3, 40] {
                let x = noise.tensor([batch, c_in, size, size], &device);
                let reference = conv.forward(x.clone());
                let ours = fused(&conv, x.clone()).expect("flex takes this path");
                let worst = super::super::max_difference(reference.clone(), ours);
                let what = format!("{c_in}->{c_out} {kernel:?} stride {stride:?} size {size} batch {batch}");
                assert!(worst < 1e-5, "{what}: {worst}");
                // The im2col path, which CPUs without AVX-512 take for every geometry, on this one too.
                let geometry = Geometry {
                    c_in,
                    h: size,
                    w: size,
                    c_out,
                    kernel,
                    stride,
                    padding: symmetric_padding(&conv.padding).unwrap(),
                    h_out: reference.dims()[2],
                    w_out: reference.dims()[3],
                };
                let weights = super::super::tensor_values(conv.weight.val());
                let bias = conv.bias.as_ref().map(|b| super::super::tensor_values(b.val()));
                let values = super::super::tensor_values(x);
                let im2col = convolve_by(&values, batch, &weights, bias.as_deref(), geometry, false);
                let worst = super::super::relative_difference(&im2col, &super::super::tensor_values(reference));
                assert!(worst < 1e-5, "{what}: im2col path off by {worst}");
            }
        }
    }

    #[test]
    fn autodiff_tensors_keep_burns_convolution() {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([2, 2], [3, 3]).init(&device);
        assert!(fused(&conv, Tensor::<4>::ones([1, 2, 4, 4], &device)).is_err());
    }
}
