//! The convolution of training (autodiff on the flex CPU backend) with its own backward pass: the same
//! im2col + GEMM forward as inference, and the gradients as GEMMs over the same im2col layout, NCHW in
//! and out. burn's default backward takes the input gradient as a transposed convolution and the weight
//! gradient through NHWC copies and narrow GEMMs (README, Speed: the training profile).
//!
//! For y = W ∗ x + b, with col(x) the im2col matrix [k = c_in·kh·kw, pixels] of one image:
//! - ∂L/∂b[c] = Σ over images and pixels of ∂L/∂y[c, p]
//! - ∂L/∂W = Σ over images of ∂L/∂y [c_out, pixels] · col(x)ᵀ [pixels, k]
//! - ∂L/∂x = col2im(Wᵀ [k, c_out] · ∂L/∂y [c_out, pixels]), col2im adding each column entry back where
//!   im2col read it.
//!
//! On AVX-512 CPUs a 3x3 "same" layer's ∂L/∂W skips col(x): weight_grad.rs runs it channels-last, and its
//! ∂L/∂x is the forward convolution of ∂L/∂y by the flipped kernel (the direct kernel).

use std::borrow::Cow;

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::conv::{COLUMNS, GROUP, Geometry, convolve, gather, im2col, images_per_gemm, symmetric_padding};

/// `conv.forward(x)` for an autodiff flex tensor, with this file's backward pass; `Err(x)` hands the input
/// back for burn's own operation (another device, another geometry).
// The Err side hands the input back (it is no error), so its size is the tensor's.
#[allow(clippy::result_large_err)]
pub fn conv2d_autodiff(conv: &Conv2d, x: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    if !super::kernels_enabled() || !device.is_autodiff() || x.dtype() != burn::tensor::DType::F32 {
        return Err(x);
    }
    let Some(geometry) = geometry_of(conv, x.dims()) else { return Err(x) };
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let y = on_autodiff_flex!(|B, C| {
        let x = x.clone().try_into_primitive::<B>().ok()?;
        let w = weight.clone().try_into_primitive::<B>().ok()?;
        let b = match bias.clone() {
            Some(b) => Some(b.try_into_primitive::<B>().ok()?),
            None => None,
        };
        Some(Tensor::from_primitive::<B>(record::<C>(x, w, b, geometry)))
    });
    y.ok_or(x)
}

fn geometry_of(conv: &Conv2d, [_, c_in, h, w]: [usize; 4]) -> Option<Geometry> {
    let [c_out, c_in_weight, kh, kw] = conv.weight.dims();
    let padding = symmetric_padding(&conv.padding)?;
    if conv.groups != 1 || conv.dilation != [1, 1] || c_in_weight != c_in || conv.stride.contains(&0) {
        return None;
    }
    let out_size = |size: usize, k: usize, s: usize, p: usize| (size + 2 * p).checked_sub(k).map(|d| d / s + 1);
    let h_out = out_size(h, kh, conv.stride[0], padding[0])?;
    let w_out = out_size(w, kw, conv.stride[1], padding[1])?;
    Some(Geometry { c_in, h, w, c_out, kernel: [kh, kw], stride: conv.stride, padding, h_out, w_out })
}

/// The convolution recorded on the autodiff graph with [`ConvBackward`] (or [`ConvNoBiasBackward`]).
fn record<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: Option<FloatTensor<Autodiff<Flex, C>>>,
    g: Geometry,
) -> FloatTensor<Autodiff<Flex, C>> {
    let batch = x.shape().dims::<4>()[0];
    let forward = |x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>| -> FlexTensor {
        let (x, w) = (f32_values(x), f32_values(w));
        let b = b.map(f32_values);
        let y = convolve(&x, batch, &w, b.as_deref(), g);
        FlexTensor::from_data(TensorData::new(y, [batch, g.c_out, g.h_out, g.w_out]))
    };
    match bias {
        Some(bias) => {
            let op = ConvBackward { geometry: g };
            match op.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                    let y = forward(x.primitive(), weight.primitive(), Some(bias.primitive()));
                    prep.finish(state, y)
                }
                OpsKind::UnTracked(prep) => {
                    prep.finish(forward(x.primitive(), weight.primitive(), Some(bias.primitive())))
                }
            }
        }
        None => {
            let op = ConvNoBiasBackward { geometry: g };
            match op.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                    let y = forward(x.primitive(), weight.primitive(), None);
                    prep.finish(state, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), weight.primitive(), None)),
            }
        }
    }
}

/// A flex tensor's values as f32, contiguous: borrowed where they already are (the usual case: copying
/// every activation and gradient in and out was 7 % of a training step), copied otherwise.
pub(super) fn f32_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>().filter(|_| t.is_contiguous()) {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(t.to_contiguous().into_data().try_to_vec::<f32>().unwrap_or_default()),
    }
}

#[derive(Debug)]
struct ConvBackward {
    geometry: Geometry,
}

#[derive(Debug)]
struct ConvNoBiasBackward {
    geometry: Geometry,
}

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let wanted = [node_x.is_some(), node_weight.is_some(), node_bias.is_some()];
        let [dx, dw, db] = gradients(&x, &weight, &grad, self.geometry, wanted);
        for (node, g) in [(node_x, dx), (node_weight, dw), (node_bias, db)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl Backward<Flex, 2> for ConvNoBiasBackward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let wanted = [node_x.is_some(), node_weight.is_some(), false];
        let [dx, dw, _] = gradients(&x, &weight, &grad, self.geometry, wanted);
        for (node, g) in [(node_x, dx), (node_weight, dw)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

/// [∂L/∂x, ∂L/∂W, ∂L/∂b] for the ones `wanted`, as flex tensors.
fn gradients(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    g: Geometry,
    wanted: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let batch = x.shape().dims::<4>()[0];
    let (x, weight, dy) = (f32_values(x), f32_values(weight), f32_values(grad));
    let [kh, kw] = g.kernel;
    let tensor = |values: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(values, shape));
    let dx = wanted[0].then(|| tensor(input_gradient(&dy, &weight, batch, g), vec![batch, g.c_in, g.h, g.w]));
    let dw = wanted[1].then(|| tensor(weight_gradient(&x, &dy, batch, g), vec![g.c_out, g.c_in, kh, kw]));
    let db = wanted[2].then(|| tensor(bias_gradient(&dy, g), vec![g.c_out]));
    [dx, dw, db]
}

/// ∂L/∂b [c_out] = Σ over images and pixels of ∂L/∂y, in the weight gradient's fixed groups of images
/// (on one core this pass was 1 % of a training step).
fn bias_gradient(dy: &[f32], g: Geometry) -> Vec<f32> {
    let image_out = g.c_out * g.pixels();
    let partials: Vec<Vec<f32>> = dy
        .par_chunks(IMAGES_PER_PARTIAL * image_out)
        .map(|group| {
            let mut sums = vec![0.0f32; g.c_out];
            for image in group.chunks_exact(image_out) {
                for (sum, row) in sums.iter_mut().zip(image.chunks_exact(g.pixels())) {
                    *sum += row.iter().sum::<f32>();
                }
            }
            sums
        })
        .collect();
    sum_in_order(partials, g.c_out)
}

/// The element-wise sum of `parts` (each `len` long), added in their order: the same sums in the same order
/// on any number of cores (a resumed training run must repeat an uninterrupted one bit for bit).
fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for part in parts {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    total
}

/// ∂L/∂W [c_out, k] = Σ_images ∂L/∂y [c_out, pixels] · col(x)ᵀ, the images in the forward pass's groups
/// ([`images_per_gemm`]: small maps side by side in one GEMM) and the groups in [`WEIGHT_GRADIENT_CHAINS`]
/// chains over the cores.
fn weight_gradient(x: &[f32], dy: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
    if super::weight_grad::applies(&g) {
        return channels_last_weight_gradient(x, dy, batch, g);
    }
    let (image_in, image_out, k, pixels) = (g.c_in * g.h * g.w, g.c_out * g.pixels(), g.k(), g.pixels());
    let group = images_per_gemm(batch, pixels);
    let groups = batch.div_ceil(group);
    let chains = groups.min(WEIGHT_GRADIENT_CHAINS);
    let per_chain = groups.div_ceil(chains);
    // A chain's sum accᵀ [k, c_out] of columns [k, width] · ∂yᵀ over its groups, each group's product added
    // by the GEMM itself (no partial per group to allocate, transpose and add). The GEMM runs along c_out
    // and packs ∂y (c_out rows), where acc = ∂y · columnsᵀ ran along k and packed the im2col matrix, 9 c_in
    // rows (its packing was 8 % of a latent training step).
    let chain_sum = |chain: usize| {
        let mut acc = vec![0.0f32; k * g.c_out];
        for first in (chain * per_chain * group..((chain + 1) * per_chain * group).min(batch)).step_by(group) {
            let images = group.min(batch - first);
            let width = images * pixels;
            let dy_group = &dy[first * image_out..(first + images) * image_out];
            let x_group = &x[first * image_in..(first + images) * image_in];
            COLUMNS.with_borrow_mut(|columns| {
                GROUP.with_borrow_mut(|grouped| {
                    let dy_matrix = side_by_side(dy_group, grouped, g.c_out, pixels);
                    let columns: &[f32] = if images == 1 && g.is_pointwise() {
                        x_group
                    } else {
                        columns.resize(k * width, 0.0);
                        for (image, x_n) in x_group.chunks_exact(image_in).enumerate() {
                            im2col(x_n, columns, g, width, image * pixels);
                        }
                        columns
                    };
                    product(&mut acc, [k, g.c_out, width], true, (columns, [1, width]), (dy_matrix, [width, 1]));
                });
            });
        }
        acc
    };
    // The chains' sums added in order, then transposed to [c_out, k].
    let sum = sum_in_order((0..chains).into_par_iter().map(chain_sum).collect(), k * g.c_out);
    let mut total = vec![0.0f32; g.c_out * k];
    for (kk, row) in sum.chunks_exact(g.c_out).enumerate() {
        for (o, value) in row.iter().enumerate() {
            total[o * k + kk] = *value;
        }
    }
    total
}

/// [`weight_gradient`] by the channels-last kernel (`weight_grad.rs`): the batch in
/// [`WEIGHT_GRADIENT_CHAINS`] chains of consecutive images, the chains' sums added in order.
fn channels_last_weight_gradient(x: &[f32], dy: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
    let (image_in, image_out) = (g.c_in * g.pixels(), g.c_out * g.pixels());
    let chains = batch.min(WEIGHT_GRADIENT_CHAINS);
    let per_chain = batch.div_ceil(chains);
    let chain_sum = |chain: usize| {
        let mut dw = vec![0.0f32; g.c_out * g.k()];
        let (first, last) = (chain * per_chain, ((chain + 1) * per_chain).min(batch));
        if first < last {
            let (x, dy) = (&x[first * image_in..last * image_in], &dy[first * image_out..last * image_out]);
            super::weight_grad::add_weight_gradient(x, dy, last - first, &g, &mut dw);
        }
        dw
    };
    sum_in_order((0..chains).into_par_iter().map(chain_sum).collect(), g.c_out * g.k())
}

/// Chains of image groups in a weight gradient: each chain's groups are summed by its GEMM's accumulator,
/// then the chains' sums are added. A constant, not the number of cores, so that the sums do not depend on
/// the machine; four keep both cores here busy and cost four [k, c_out] sums instead of one per group.
const WEIGHT_GRADIENT_CHAINS: usize = 4;

/// A group's ∂L/∂y as one [c_out, images x pixels] matrix: the image itself when it is alone, else its
/// images gathered side by side into `buffer`.
fn side_by_side<'a>(dy: &'a [f32], buffer: &'a mut Vec<f32>, channels: usize, pixels: usize) -> &'a [f32] {
    if dy.len() == channels * pixels {
        return dy;
    }
    buffer.resize(dy.len(), 0.0);
    gather(dy, buffer, channels, pixels);
    buffer
}

/// Images whose bias gradients one task sums before the tasks' sums are added.
const IMAGES_PER_PARTIAL: usize = 4;

/// ∂L/∂x = col2im(Wᵀ · ∂L/∂y), the forward pass's groups of images per task; for a stride-1 "same"
/// convolution (not 1x1) the forward pass's own convolution of ∂L/∂y instead ([`same_input_gradient`]).
fn input_gradient(dy: &[f32], weight: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
    if g.is_same() && !g.is_pointwise() {
        return same_input_gradient(dy, weight, batch, g);
    }
    let (image_in, image_out, k, pixels) = (g.c_in * g.h * g.w, g.c_out * g.pixels(), g.k(), g.pixels());
    let group = images_per_gemm(batch, pixels);
    super::filled_in_parallel(batch * image_in, group * image_in, |index, dx_group| {
        let first = index * group;
        let images = dx_group.len() / image_in;
        let width = images * pixels;
        let dy_group = &dy[first * image_out..(first + images) * image_out];
        if images == 1 && g.is_pointwise() {
            // dx [c_in, pixels] = Wᵀ (weight is [c_out, k] row-major, read transposed) · dy.
            product(dx_group, [k, pixels, g.c_out], false, (weight, [k, 1]), (dy_group, [1, pixels]));
            return;
        }
        COLUMNS.with_borrow_mut(|columns| {
            GROUP.with_borrow_mut(|grouped| {
                let dy_matrix = side_by_side(dy_group, grouped, g.c_out, pixels);
                columns.resize(k * width, 0.0);
                // columns [k, width] = Wᵀ · ∂y [c_out, width].
                product(columns, [k, width, g.c_out], false, (weight, [k, 1]), (dy_matrix, [1, width]));
                for (image, dx_n) in dx_group.chunks_exact_mut(image_in).enumerate() {
                    col2im(columns, dx_n, g, width, image * pixels);
                }
            });
        });
    })
}

/// ∂L/∂x of a stride-1 "same" convolution (output the input's size, so 2p = k - 1 on each side) as a
/// convolution of ∂L/∂y by the flipped, transposed kernel: ∂L/∂x[c, y, x] = Σ_{o, i, j} ∂L/∂y[o, y + p - i,
/// x + p - j] W[o, c, i, j] = Σ_{o, i', j'} ∂L/∂y[o, y + i' - p, x + j' - p] W'[c, o, i', j'] with W'[c, o,
/// i', j'] = W[o, c, k-1-i', k-1-j'] and the same padding. The forward pass's im2col + GEMM then does the
/// work: one GEMM of depth c_out·kh·kw writing [c_in, pixels], where col2im's way wrote the 9x larger
/// [c_in·kh·kw, pixels] from a GEMM of depth c_out and added it back (on 7x7 maps col2im alone was 7 % of
/// a training step).
fn same_input_gradient(dy: &[f32], weight: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..g.c_out {
        for c in 0..g.c_in {
            let source = &weight[(o * g.c_in + c) * kh * kw..][..kh * kw];
            let target = &mut flipped[(c * g.c_out + o) * kh * kw..][..kh * kw];
            for (t, s) in target.iter_mut().zip(source.iter().rev()) {
                *t = *s;
            }
        }
    }
    let transposed = Geometry { c_in: g.c_out, c_out: g.c_in, h: g.h_out, w: g.w_out, h_out: g.h, w_out: g.w, ..g };
    convolve(dy, batch, &flipped, None, transposed)
}

/// dst [m, n] (+)= lhs [m, inner] · rhs [inner, n], dst row-major, each input read with its own
/// [column step, row step] (a transposed matrix is read with its steps swapped); one thread.
pub(super) fn product(
    dst: &mut [f32],
    [m, n, inner]: [usize; 3],
    accumulate: bool,
    (lhs, [lhs_cs, lhs_rs]): (&[f32], [usize; 2]),
    (rhs, [rhs_cs, rhs_rs]): (&[f32], [usize; 2]),
) {
    let last = |cs: usize, rs: usize, rows: usize, cols: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(dst.len() >= m * n && m > 0 && n > 0 && inner > 0);
    assert!(lhs.len() > last(lhs_cs, lhs_rs, m, inner) && rhs.len() > last(rhs_cs, rhs_rs, inner, n));
    // SAFETY: every element read or written lies inside its slice (asserted above), and dst does not
    // overlap the inputs (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            inner,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// dx[c, iy, ix] += columns[(c, i, j), (oy, ox)] wherever im2col read x[c, iy, ix] into that entry.
/// Row r of the matrix is `columns[r·stride + offset..][..pixels]`, as [`im2col`] wrote it.
fn col2im(columns: &mut [f32], dx: &mut [f32], g: Geometry, stride: usize, offset: usize) {
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let pixels = g.pixels();
    // "Same" convolutions (stride 1, output the input's size) take the fast path, im2col's in reverse.
    let same = g.is_same();
    for c in 0..g.c_in {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..kh {
            for j in 0..kw {
                let row = &mut columns[((c * kh + i) * kw + j) * stride + offset..][..pixels];
                if same {
                    add_shifted_plane(row, plane, g, i, j);
                    continue;
                }
                // The output columns whose input column ix = ox·sx + j - px lies inside the image: one
                // range per (i, j), so the inner loop has no test and vectorises (for stride 1).
                let first_ox = px.saturating_sub(j).div_ceil(sx);
                let end_ox = (g.w + px).saturating_sub(j).div_ceil(sx).min(g.w_out);
                if first_ox >= end_ox {
                    continue;
                }
                let first_ix = first_ox * sx + j - px;
                for oy in 0..g.h_out {
                    let iy = (oy * sy + i) as isize - py as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let in_row = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let out_row = &row[oy * g.w_out + first_ox..oy * g.w_out + end_ox];
                    if sx == 1 {
                        for (d, v) in in_row[first_ix..first_ix + out_row.len()].iter_mut().zip(out_row) {
                            *d += v;
                        }
                    } else {
                        for (n, v) in out_row.iter().enumerate() {
                            in_row[first_ix + n * sx] += v;
                        }
                    }
                }
            }
        }
    }
}

/// One im2col row of a stride-1 "same" convolution added back: plane[p + shift] += row[p] with shift =
/// (i - py) w + (j - px), as one long add. The entries whose column ox + j - px falls outside the image
/// would land in the neighbouring image row, so they are zeroed in `row` first (it is scratch); rows
/// outside the image fall outside [start, end). On 7x7 and 4x4 maps the row-by-row loop was mostly
/// loop overhead.
fn add_shifted_plane(row: &mut [f32], plane: &mut [f32], g: Geometry, i: usize, j: usize) {
    let n = plane.len() as isize;
    let column_shift = j as isize - g.padding[1] as isize;
    let left = (-column_shift).clamp(0, g.w as isize) as usize;
    let right = (g.w as isize - column_shift).clamp(0, g.w as isize) as usize;
    for column in (0..left).chain(right..g.w) {
        for value in row[column..].iter_mut().step_by(g.w) {
            *value = 0.0;
        }
    }
    let shift = (i as isize - g.padding[0] as isize) * g.w as isize + column_shift;
    let start = (-shift).clamp(0, n) as usize;
    let end = (n - shift).clamp(start as isize, n) as usize;
    let target = &mut plane[(start as isize + shift) as usize..(end as isize + shift) as usize];
    for (d, v) in target.iter_mut().zip(&row[start..end]) {
        *d += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;

    use super::super::{relative_difference as worst, tensor_values as values};

    /// Values and all three gradients equal burn's own convolution's, for every geometry the models use.
    #[test]
    fn values_and_gradients_match_burns_convolution() {
        let device = Device::flex().autodiff();
        let mut noise = crate::diffusion::NoiseSource::new(8);
        type Case = (usize, usize, [usize; 2], [usize; 2], usize, bool, usize);
        let cases: [Case; 9] = [
            (3, 5, [3, 3], [1, 1], 1, true, 7),
            // The channels-last weight gradient (input channels in tiles of 32): 13 outputs as 12 + 1.
            (32, 13, [3, 3], [1, 1], 1, true, 7),
            (64, 2, [3, 3], [1, 1], 1, false, 4),
            (3, 5, [3, 3], [1, 1], 1, true, 8),
            (4, 6, [3, 3], [2, 2], 1, true, 7),
            (4, 6, [3, 3], [2, 2], 1, true, 14),
            (6, 2, [1, 1], [1, 1], 0, true, 5),
            (2, 3, [3, 3], [1, 1], 1, false, 6),
            (2, 3, [5, 5], [1, 1], 2, true, 9),
        ];
        for (c_in, c_out, kernel, stride, padding, bias, size) in cases {
            let padding = match padding {
                0 => PaddingConfig2d::Valid,
                p => PaddingConfig2d::Explicit(p, p, p, p),
            };
            let conv = Conv2dConfig::new([c_in, c_out], kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_bias(bias)
                .init(&device);
            for batch in [1, 5, 40] {
                let x = noise.tensor::<4>([batch, c_in, size, size], &device).require_grad();
                let what = format!("{c_in}->{c_out} {kernel:?} stride {stride:?} size {size} batch {batch}");
                // A loss that weighs every output differently, so every gradient entry is tested.
                let [_, _, h_out, w_out] = conv.forward(x.clone()).dims();
                let weights = noise.tensor::<4>([batch, c_out, h_out, w_out], &device);
                let reference = conv.forward(x.clone());
                let ours = conv2d_autodiff(&conv, x.clone()).unwrap_or_else(|_| panic!("{what}: takes this path"));
                assert!(worst(&values(ours.clone()), &values(reference.clone())) < 1e-5, "{what}: values");
                let grads_ref = reference.mul(weights.clone()).sum().backward();
                let grads_ours = ours.mul(weights).sum().backward();
                let pairs = [
                    ("x", x.grad(&grads_ref).map(values), x.grad(&grads_ours).map(values)),
                    (
                        "W",
                        conv.weight.val().grad(&grads_ref).map(values),
                        conv.weight.val().grad(&grads_ours).map(values),
                    ),
                ];
                for (name, a, b) in pairs {
                    let (a, b) =
                        (a.expect("burn's gradient"), b.unwrap_or_else(|| panic!("{what}: our {name} gradient")));
                    assert!(worst(&b, &a) < 1e-4, "{what}: ∂L/∂{name} off by {}", worst(&b, &a));
                }
                if let Some(b) = &conv.bias {
                    let (a, o) =
                        (b.val().grad(&grads_ref).map(values).unwrap(), b.val().grad(&grads_ours).map(values).unwrap());
                    assert!(worst(&o, &a) < 1e-4, "{what}: ∂L/∂b");
                }
            }
        }
    }

    #[test]
    fn plain_tensors_are_handed_back() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([2, 2], [3, 3]).init(&device);
        assert!(conv2d_autodiff(&conv, Tensor::<4>::ones([1, 2, 4, 4], &device)).is_err());
    }
}
