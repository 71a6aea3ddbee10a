//! Attention's core on the flex CPU backend, forward and backward, in the feature map's own layout: from
//! the normalised map GN(x) [batch, channels, positions] (and, for cross-attention, the context
//! [batch, tokens, context_dim]) to W_oᵀ · softmax(Q Kᵀ / √d) V + b_o, with Q, K, V and the output
//! projection inside. burn runs the same as about twenty operations (transposes into [batch, positions,
//! channels], a copy per linear layer, a batched matmul into freshly zeroed memory, a scalar-`expf`
//! softmax on one core, and as many backward operations): 30 % of a pixel training step for 3 % of its
//! FLOPs. Here a group of images (the convolution's fixed groups) is one task on one core: the four
//! projections and their gradients one single-threaded GEMM each over the group's images side by side, the
//! heads image by image.
//!
//! Per image, channel-major (a column per position): X [C, P], the source S = X (self-attention) or the
//! context as [D, N] (cross-attention; N tokens), Linear weights W [in, out] as burn stores them:
//! Q = W_qᵀ X + b_q, K = W_kᵀ S + b_k, V = W_vᵀ S + b_v; per head h (d = C / heads channels):
//! A_h = softmax_rows(Q_hᵀ K_h / √d) [P, N], O_h = V_h A_hᵀ [d, P]; Y = W_oᵀ O + b_o.
//! Backward from ∂Y: ∂O = W_o ∂Y, ∂W_o = O ∂Yᵀ; ∂V_h = ∂O_h A_h, ∂A_h = ∂O_hᵀ V_h,
//! ∂Z_h = A_h ⊙ (∂A_h - rowsum(∂A_h ⊙ A_h)) / √d, ∂Q_h = K_h ∂Z_hᵀ, ∂K_h = Q_h ∂Z_h;
//! ∂W_q = X ∂Qᵀ, ∂X = W_q ∂Q (+ W_k ∂K + W_v ∂V for self-attention), ∂S = W_k ∂K + W_v ∂V.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::Linear;
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::conv::{gather, images_per_gemm, scatter};
use super::train_conv::{f32_values, product};

/// What the kernel needs of an attention layer: its four projections and its head count.
pub struct AttentionLayer<'a> {
    pub query: &'a Linear,
    pub key: &'a Linear,
    pub value: &'a Linear,
    pub out: &'a Linear,
    pub heads: usize,
}

/// The attention's output W_oᵀ O + b_o as [batch, channels, positions] (the residual is the caller's),
/// and, when `weights` is asked for, softmax(Q Kᵀ / √d) as [batch, heads, positions, keys].
pub struct AttentionOutput {
    pub out: Tensor<3>,
    pub weights: Option<Tensor<4>>,
}

/// The fused attention for a flex tensor (plain or autodiff), or the inputs back for burn's operations
/// (another device, no biases, an unexpected shape).
// The Err side hands the inputs back (it is no error), so its size is theirs.
#[allow(clippy::result_large_err)]
pub fn attention(
    layer: &AttentionLayer,
    x: Tensor<3>,
    context: Option<Tensor<3>>,
    weights: bool,
) -> Result<AttentionOutput, (Tensor<3>, Option<Tensor<3>>)> {
    let device = x.device();
    let [batch, channels, positions] = x.dims();
    let (keys, source_dim) = match &context {
        Some(c) => {
            let [b, tokens, dim] = c.dims();
            if b != batch {
                return Err((x, context));
            }
            (tokens, dim)
        }
        None => (positions, channels),
    };
    let g = Geometry { batch, channels, positions, keys, source_dim, heads: layer.heads, cross: context.is_some() };
    let shapes_fit = layer.heads > 0
        && channels % layer.heads == 0
        && layer.query.weight.dims() == [channels, channels]
        && layer.key.weight.dims() == [source_dim, channels]
        && layer.value.weight.dims() == [source_dim, channels]
        && layer.out.weight.dims() == [channels, channels]
        && batch * positions * keys > 0;
    let f32_input = x.dtype() == burn::tensor::DType::F32;
    if !super::kernels_enabled() || !shapes_fit || !f32_input || device.is_autodiff() != is_autodiff_flex(&device) {
        return Err((x, context));
    }
    let params = [layer.query, layer.key, layer.value, layer.out];
    if params.iter().any(|l| l.bias.is_none()) {
        return Err((x, context));
    }
    let tensors: Vec<Tensor<1>> = params
        .iter()
        .flat_map(|l| {
            let [rows, cols] = l.weight.dims();
            let bias = l.bias.as_ref().map(|b| b.val());
            [Some(l.weight.val().reshape([rows * cols])), bias].into_iter().flatten()
        })
        .collect();
    if device.is_autodiff() {
        let result = on_autodiff_flex!(|B, C| {
            let x = x.clone().try_into_primitive::<B>().ok()?;
            let context = match context.clone() {
                Some(c) => Some(c.try_into_primitive::<B>().ok()?),
                None => None,
            };
            let mut params = Vec::with_capacity(8);
            for t in &tensors {
                params.push(t.clone().try_into_primitive::<B>().ok()?);
            }
            let (out, a) = record::<C>(x, context, params, g);
            Some((Tensor::<3>::from_primitive::<B>(out), a))
        });
        return match result {
            Some((out, a)) => Ok(AttentionOutput { out, weights: weights.then(|| weights_tensor(a, g, &device)) }),
            None => Err((x, context)),
        };
    }
    if !super::is_plain_cpu(&device) {
        return Err((x, context));
    }
    let Some(params) = tensors.into_iter().map(super::param_values).collect::<Option<Vec<_>>>() else {
        return Err((x, context));
    };
    let x_primitive = super::flex_primitive(&x);
    let context_primitive = context.as_ref().map(super::flex_primitive);
    let (Some(x_primitive), None | Some(Some(_))) = (&x_primitive, &context_primitive) else {
        return Err((x, context));
    };
    let x_values = f32_values(x_primitive);
    let context_values = context_primitive.as_ref().and_then(|c| c.as_ref().map(f32_values));
    let params = Params::new(params.iter().map(|p| Cow::Borrowed(p.as_slice())).collect());
    let mut out = vec![0.0f32; batch * channels * positions];
    let images = forward(&x_values, context_values.as_deref(), &params, g, false, &mut out);
    let out = Tensor::from_data(TensorData::new(out, [batch, channels, positions]), &device);
    Ok(AttentionOutput { out, weights: weights.then(|| weights_tensor(Arc::new(images), g, &device)) })
}

fn is_autodiff_flex(device: &Device) -> bool {
    device.is_autodiff() && *device == Device::flex().autodiff()
}

/// softmax(Q Kᵀ / √d) of every image as a tensor without gradient: [batch, heads, positions, keys].
fn weights_tensor(images: Arc<Vec<ImageForward>>, g: Geometry, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = images.iter().flat_map(|i| i.a.iter().copied()).collect();
    Tensor::from_data(TensorData::new(values, [g.batch, g.heads, g.positions, g.keys]), device)
}

#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    /// C: the feature map's channels (and Q's, K's, V's).
    channels: usize,
    /// P: pixels of the feature map.
    positions: usize,
    /// N: what each position attends over (the positions again, or the context's tokens).
    keys: usize,
    /// D: channels of the source (C, or the context's dimension).
    source_dim: usize,
    heads: usize,
    cross: bool,
}

impl Geometry {
    fn head_dim(&self) -> usize {
        self.channels / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    /// Values of one image's source: X [C, P] or the context [N, D].
    fn source_len(&self) -> usize {
        self.source_dim * self.keys
    }
}

/// The projections' weights and biases: [W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o], W [in, out] row-major.
#[derive(Clone)]
struct Params<'a> {
    values: Vec<Cow<'a, [f32]>>,
}

impl<'a> Params<'a> {
    fn new(values: Vec<Cow<'a, [f32]>>) -> Self {
        debug_assert_eq!(values.len(), 8);
        Self { values }
    }

    fn get(&self, index: usize) -> &[f32] {
        &self.values[index]
    }

    fn owned(&self) -> Params<'static> {
        Params { values: self.values.iter().map(|v| Cow::Owned(v.to_vec())).collect() }
    }
}

impl std::fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params").field("tensors", &self.values.len()).finish()
    }
}

const WQ: usize = 0;
const WK: usize = 2;
const WV: usize = 4;
const WO: usize = 6;

/// One image's forward pass and what its backward pass reads.
struct ImageForward {
    x: Vec<f32>,
    source: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// [heads, P, N]
    a: Vec<f32>,
    o: Vec<f32>,
}

impl std::fmt::Debug for ImageForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageForward").field("values", &self.o.len()).finish()
    }
}

/// Every image's forward pass into `out` [batch, C, P], in groups of images (one task each) whose four
/// projections run as one GEMM each, the images side by side: a 4x4 map's 16 positions alone had run the
/// GEMM's thin 16-row kernel at a quarter of its speed (9 % of a latent training step). The groups are
/// fixed by the shapes ([`images_per_gemm`]), so results do not depend on the number of threads. `keep`
/// keeps the inputs for a backward pass.
fn forward(
    x: &[f32],
    context: Option<&[f32]>,
    params: &Params,
    g: Geometry,
    keep: bool,
    out: &mut [f32],
) -> Vec<ImageForward> {
    let image = g.channels * g.positions;
    let group = images_per_gemm(g.batch, g.positions);
    let groups: Vec<Vec<ImageForward>> = out
        .par_chunks_mut(group * image)
        .enumerate()
        .map(|(index, out_g)| {
            let (first, images) = (index * group, out_g.len() / image);
            let x_g = &x[first * image..(first + images) * image];
            let context_g = context.map(|c| &c[first * g.source_len()..(first + images) * g.source_len()]);
            forward_group(x_g, context_g, params, g, keep, out_g)
        })
        .collect();
    groups.into_iter().flatten().collect()
}

/// rows[r, ..] = bias[r] for a [rows, cols] row-major matrix.
fn fill_rows(matrix: &mut [f32], bias: &[f32], cols: usize) {
    for (row, b) in matrix.chunks_exact_mut(cols).zip(bias) {
        row.fill(*b);
    }
}

/// Columns first..first + count of a [rows, width] row-major matrix, as a [rows, count] one.
fn columns(matrix: &[f32], width: usize, first: usize, count: usize) -> Vec<f32> {
    let mut part = vec![0.0f32; matrix.len() / width * count];
    for (values, row) in part.chunks_exact_mut(count).zip(matrix.chunks_exact(width)) {
        super::copy_short(values, &row[first..first + count]);
    }
    part
}

/// The inverse of [`columns`]: a [rows, count] matrix written into columns first.. of a [rows, width] one.
fn set_columns(matrix: &mut [f32], width: usize, first: usize, part: &[f32], count: usize) {
    for (row, values) in matrix.chunks_exact_mut(width).zip(part.chunks_exact(count)) {
        super::copy_short(&mut row[first..first + count], values);
    }
}

/// The forward pass of a group of images (x [images, C, P], their contexts [images, N, D] for cross-attention)
/// into `out` [images, C, P]: Q, K, V of all of them as three GEMMs over the images side by side, the heads
/// image by image, then the output projection as one GEMM.
fn forward_group(
    x: &[f32],
    context: Option<&[f32]>,
    p: &Params,
    g: Geometry,
    keep: bool,
    out: &mut [f32],
) -> Vec<ImageForward> {
    let (c, pos, n, d, hd) = (g.channels, g.positions, g.keys, g.source_dim, g.head_dim());
    let images = out.len() / (c * pos);
    let (width, key_width) = (images * pos, images * n);
    // X [C, images x P]: the images side by side.
    let x_all: Cow<[f32]> = if images == 1 {
        Cow::Borrowed(x)
    } else {
        let mut grouped = vec![0.0f32; c * width];
        gather(x, &mut grouped, c, pos);
        Cow::Owned(grouped)
    };
    // Q = W_qᵀ X + b_q: W [in, out] read transposed.
    let mut q_all = vec![0.0f32; c * width];
    fill_rows(&mut q_all, p.get(WQ + 1), width);
    product(&mut q_all, [c, width, c], true, (p.get(WQ), [c, 1]), (&x_all, [1, width]));
    // The sources side by side: X itself, or the contexts [images x N, D] read as [D, images x N].
    let (source, steps): (&[f32], [usize; 2]) = match context {
        Some(context) => (context, [d, 1]),
        None => (&x_all, [1, width]),
    };
    let mut k_all = vec![0.0f32; c * key_width];
    let mut v_all = vec![0.0f32; c * key_width];
    for (matrix, w) in [(&mut k_all, WK), (&mut v_all, WV)] {
        fill_rows(matrix, p.get(w + 1), key_width);
        product(matrix, [c, key_width, d], true, (p.get(w), [c, 1]), (source, steps));
    }
    let mut o_all = vec![0.0f32; c * width];
    let mut kept = Vec::with_capacity(images);
    for b in 0..images {
        let q = columns(&q_all, width, b * pos, pos);
        let k = columns(&k_all, key_width, b * n, n);
        let v = columns(&v_all, key_width, b * n, n);
        let mut a = vec![0.0f32; g.heads * pos * n];
        let mut o = vec![0.0f32; c * pos];
        for h in 0..g.heads {
            let a_h = &mut a[h * pos * n..(h + 1) * pos * n];
            // Q_hᵀ K_h [P, N]
            product(a_h, [pos, n, hd], false, (&q[h * hd * pos..], [pos, 1]), (&k[h * hd * n..], [1, n]));
            for row in a_h.chunks_exact_mut(n) {
                softmax_row(row, g.scale());
            }
            // O_h = V_h A_hᵀ [d, P]
            product(
                &mut o[h * hd * pos..(h + 1) * hd * pos],
                [hd, pos, n],
                false,
                (&v[h * hd * n..], [1, n]),
                (a_h, [n, 1]),
            );
        }
        set_columns(&mut o_all, width, b * pos, &o, pos);
        let (x_b, source_b) = if keep {
            let x_b = x[b * c * pos..(b + 1) * c * pos].to_vec();
            let source_b = context.map_or(Vec::new(), |s| s[b * g.source_len()..(b + 1) * g.source_len()].to_vec());
            (x_b, source_b)
        } else {
            (Vec::new(), Vec::new())
        };
        kept.push(ImageForward { x: x_b, source: source_b, q, k, v, a, o });
    }
    // Y = W_oᵀ O + b_o, back to each image's [C, P].
    let mut y_all = vec![0.0f32; c * width];
    product(&mut y_all, [c, width, c], false, (p.get(WO), [c, 1]), (&o_all, [1, width]));
    scatter(&y_all, out, c, pos, images, Some(p.get(WO + 1)));
    kept
}

/// row <- softmax(scale · row), with the row's maximum subtracted first.
fn softmax_row(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * scale;
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = super::exp(*v * scale - max);
        sum += *v;
    }
    let inverse = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inverse;
    }
}

/// The parameters' gradients, in [`Params`]' order.
struct ParamGrads {
    values: Vec<Vec<f32>>,
}

impl ParamGrads {
    fn zeros(g: Geometry) -> Self {
        let (c, d) = (g.channels, g.source_dim);
        Self { values: [c * c, c, d * c, c, d * c, c, c * c, c].iter().map(|n| vec![0.0f32; *n]).collect() }
    }

    fn add(&mut self, other: &ParamGrads) {
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }
}

/// Adds each row's sum of a [rows, cols] matrix to `sums`.
fn add_row_sums(sums: &mut [f32], matrix: &[f32], cols: usize) {
    for (s, row) in sums.iter_mut().zip(matrix.chunks_exact(cols)) {
        *s += row.iter().sum::<f32>();
    }
}

/// A group's backward pass (the forward pass's groups): ∂X into `dx` [images, C, P], ∂context into `dcontext`
/// [images, N, D] (cross-attention), the parameters' gradients returned. The projections' products run over
/// the group's images side by side (one GEMM each, deep along images x positions), the heads image by image.
fn backward_group(
    dy: &[f32],
    fs: &[ImageForward],
    p: &Params,
    g: Geometry,
    dx: &mut [f32],
    dcontext: Option<&mut [f32]>,
) -> ParamGrads {
    let (c, pos, n, d, hd) = (g.channels, g.positions, g.keys, g.source_dim, g.head_dim());
    let images = fs.len();
    let (width, key_width) = (images * pos, images * n);
    let mut acc = ParamGrads::zeros(g);
    // The images side by side: ∂Y, O and X as [C, images x P].
    let side_by_side = |part: &dyn Fn(&ImageForward) -> &[f32]| {
        let mut all = vec![0.0f32; c * width];
        for (b, f) in fs.iter().enumerate() {
            set_columns(&mut all, width, b * pos, part(f), pos);
        }
        all
    };
    let mut dy_all = vec![0.0f32; c * width];
    gather(dy, &mut dy_all, c, pos);
    let (o_all, x_all) = (side_by_side(&|f| &f.o), side_by_side(&|f| &f.x));
    // ∂O = W_o ∂Y; ∂W_o += O ∂Yᵀ; ∂b_o += Σ_p ∂Y.
    let mut d_o = vec![0.0f32; c * width];
    product(&mut d_o, [c, width, c], false, (p.get(WO), [1, c]), (&dy_all, [1, width]));
    product(&mut acc.values[WO], [c, c, width], true, (&o_all, [1, width]), (&dy_all, [width, 1]));
    add_row_sums(&mut acc.values[WO + 1], &dy_all, width);
    let mut dq_all = vec![0.0f32; c * width];
    let mut dk_all = vec![0.0f32; c * key_width];
    let mut dv_all = vec![0.0f32; c * key_width];
    let mut dz = vec![0.0f32; pos * n];
    let mut dq = vec![0.0f32; c * pos];
    let mut dk = vec![0.0f32; c * n];
    let mut dv = vec![0.0f32; c * n];
    for (b, f) in fs.iter().enumerate() {
        let d_o_b = columns(&d_o, width, b * pos, pos);
        for h in 0..g.heads {
            let a_h = &f.a[h * pos * n..(h + 1) * pos * n];
            let d_o_h = &d_o_b[h * hd * pos..];
            // ∂V_h = ∂O_h A_h [d, N]; ∂A_h = ∂O_hᵀ V_h [P, N].
            product(&mut dv[h * hd * n..(h + 1) * hd * n], [hd, n, pos], false, (d_o_h, [1, pos]), (a_h, [1, n]));
            product(&mut dz, [pos, n, hd], false, (d_o_h, [pos, 1]), (&f.v[h * hd * n..], [1, n]));
            // Softmax's backward, and the 1 / √d of the scores.
            for (row, a_row) in dz.chunks_exact_mut(n).zip(a_h.chunks_exact(n)) {
                let dot: f32 = row.iter().zip(a_row).map(|(r, a)| r * a).sum();
                for (r, a) in row.iter_mut().zip(a_row) {
                    *r = a * (*r - dot) * g.scale();
                }
            }
            // ∂Q_h = K_h ∂Zᵀ [d, P]; ∂K_h = Q_h ∂Z [d, N].
            product(
                &mut dq[h * hd * pos..(h + 1) * hd * pos],
                [hd, pos, n],
                false,
                (&f.k[h * hd * n..], [1, n]),
                (&dz, [n, 1]),
            );
            product(
                &mut dk[h * hd * n..(h + 1) * hd * n],
                [hd, n, pos],
                false,
                (&f.q[h * hd * pos..], [1, pos]),
                (&dz, [1, n]),
            );
        }
        set_columns(&mut dq_all, width, b * pos, &dq, pos);
        set_columns(&mut dk_all, key_width, b * n, &dk, n);
        set_columns(&mut dv_all, key_width, b * n, &dv, n);
    }
    // The projections: ∂W = input ∂(output)ᵀ, ∂b = row sums, ∂input = W ∂(output).
    product(&mut acc.values[WQ], [c, c, width], true, (&x_all, [1, width]), (&dq_all, [width, 1]));
    add_row_sums(&mut acc.values[WQ + 1], &dq_all, width);
    let mut dx_all = vec![0.0f32; c * width];
    product(&mut dx_all, [c, width, c], false, (p.get(WQ), [1, c]), (&dq_all, [1, width]));
    // The sources side by side: X itself, or the contexts [images x N, D] read as [D, images x N].
    let sources: Vec<f32> =
        if g.cross { fs.iter().flat_map(|f| f.source.iter().copied()).collect() } else { Vec::new() };
    let (source, steps): (&[f32], [usize; 2]) = if g.cross { (&sources, [d, 1]) } else { (&x_all, [1, width]) };
    for (w, grad) in [(WK, &dk_all), (WV, &dv_all)] {
        product(&mut acc.values[w], [d, c, key_width], true, (source, steps), (grad, [key_width, 1]));
        add_row_sums(&mut acc.values[w + 1], grad, key_width);
    }
    match dcontext {
        None => {
            // Self-attention: the source is X itself.
            product(&mut dx_all, [c, width, c], true, (p.get(WK), [1, c]), (&dk_all, [1, width]));
            product(&mut dx_all, [c, width, c], true, (p.get(WV), [1, c]), (&dv_all, [1, width]));
        }
        Some(dcontext) => {
            let mut ds = vec![0.0f32; d * key_width];
            product(&mut ds, [d, key_width, c], false, (p.get(WK), [1, c]), (&dk_all, [1, key_width]));
            product(&mut ds, [d, key_width, c], true, (p.get(WV), [1, c]), (&dv_all, [1, key_width]));
            // ∂S [D, images x N] back to each context's [N, D].
            for (i, row) in ds.chunks_exact(key_width).enumerate() {
                for (token, value) in row.iter().enumerate() {
                    dcontext[token * d + i] = *value;
                }
            }
        }
    }
    scatter(&dx_all, dx, c, pos, images, None);
    acc
}

/// (∂X [batch, C, P], ∂context [batch, N, D] for cross-attention, the parameters' gradients): one partial sum
/// of the parameters' gradients per group of the forward pass, then the groups' in order (the same sums in
/// the same order on any number of cores, as training's resume test needs).
fn backward(dy: &[f32], images: &[ImageForward], p: &Params, g: Geometry) -> (Vec<f32>, Option<Vec<f32>>, ParamGrads) {
    let image = g.channels * g.positions;
    let group = images_per_gemm(g.batch, g.positions);
    let mut dx = vec![0.0f32; g.batch * image];
    let mut dcontext = g.cross.then(|| vec![0.0f32; g.batch * g.source_len()]);
    let run = |index: usize, dx_group: &mut [f32], dc_group: Option<&mut [f32]>| {
        let first = index * group;
        let count = dx_group.len() / image;
        let dy_group = &dy[first * image..(first + count) * image];
        backward_group(dy_group, &images[first..first + count], p, g, dx_group, dc_group)
    };
    let partials: Vec<ParamGrads> = match dcontext.as_mut() {
        Some(dc) => dx
            .par_chunks_mut(group * image)
            .zip(dc.par_chunks_mut(group * g.source_len()))
            .enumerate()
            .map(|(i, (dx_g, dc_g))| run(i, dx_g, Some(dc_g)))
            .collect(),
        None => dx.par_chunks_mut(group * image).enumerate().map(|(i, dx_g)| run(i, dx_g, None)).collect(),
    };
    let mut total = ParamGrads::zeros(g);
    for partial in &partials {
        total.add(partial);
    }
    (dx, dcontext, total)
}

/// The state the backward pass reads: the forward pass's intermediates and the parameters' values.
#[derive(Clone, Debug)]
struct State {
    images: Arc<Vec<ImageForward>>,
    params: Arc<Params<'static>>,
}

#[derive(Debug)]
struct AttentionBackward {
    geometry: Geometry,
}

/// Parents: [x, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o] and the context for cross-attention.
impl<const N: usize> Backward<Flex, N> for AttentionBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let g = self.geometry;
        let grad = grads.consume::<Flex>(&ops.node);
        let dy = f32_values(&grad);
        let (dx, dcontext, params) = backward(&dy, &ops.state.images, &ops.state.params, g);
        let tensor = |values: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(values, shape));
        let (c, d) = (g.channels, g.source_dim);
        let shapes = [vec![c * c], vec![c], vec![d * c], vec![c], vec![d * c], vec![c], vec![c * c], vec![c]];
        let parents = ops.parents;
        if let Some(node) = &parents[0] {
            grads.register::<Flex>(node.id, tensor(dx, vec![g.batch, c, g.positions]));
        }
        for ((node, values), shape) in parents[1..9].iter().zip(params.values).zip(shapes) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor(values, shape));
            }
        }
        if let (Some(Some(node)), Some(dcontext)) = (parents.get(9), dcontext) {
            grads.register::<Flex>(node.id, tensor(dcontext, vec![g.batch, g.keys, d]));
        }
    }
}

type AutodiffFloat<C> = FloatTensor<Autodiff<Flex, C>>;

/// The fused attention recorded on the autodiff graph: its output [batch, C, P] and the weights.
fn record<C: CheckpointStrategy>(
    x: AutodiffFloat<C>,
    context: Option<AutodiffFloat<C>>,
    params: Vec<AutodiffFloat<C>>,
    g: Geometry,
) -> (AutodiffFloat<C>, Arc<Vec<ImageForward>>) {
    let values = Params::new(params.iter().map(|p| f32_values(p.primitive())).collect());
    let x_values = f32_values(x.primitive());
    let context_values = context.as_ref().map(|c| f32_values(c.primitive()));
    let run = |keep: bool| {
        let mut out = vec![0.0f32; g.batch * g.channels * g.positions];
        let images = forward(&x_values, context_values.as_deref(), &values, g, keep, &mut out);
        (FlexTensor::from_data(TensorData::new(out, [g.batch, g.channels, g.positions])), Arc::new(images))
    };
    let op = AttentionBackward { geometry: g };
    let mut nodes = vec![x.node()];
    nodes.extend(params.iter().map(|p| p.node()));
    macro_rules! finish {
        ($n:literal) => {{
            let Ok(nodes) = <[_; $n]>::try_from(nodes) else { unreachable!("{} parents", $n) };
            match <AttentionBackward as Backward<Flex, $n>>::prepare::<C>(op, nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (out, images) = run(true);
                    let state = State { images: images.clone(), params: Arc::new(values.owned()) };
                    (prep.finish(state, out), images)
                }
                OpsKind::UnTracked(prep) => {
                    let (out, images) = run(false);
                    (prep.finish(out), images)
                }
            }
        }};
    }
    match &context {
        Some(c) => {
            nodes.push(c.node());
            finish!(10)
        }
        None => finish!(9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::activation::softmax;

    /// W_oᵀ softmax(Q Kᵀ / √d) V + b_o with burn's own operations, as `model::attention` runs it where the
    /// kernel does not apply: the output [batch, channels, positions] and the weights [batch, heads, P, N].
    fn burns_operations(layer: &AttentionLayer, x: Tensor<3>, context: Option<Tensor<3>>) -> (Tensor<3>, Tensor<4>) {
        let [batch, channels, positions] = x.dims();
        let heads = layer.heads;
        let split = |t: Tensor<3>| {
            let [b, n, c] = t.dims();
            t.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
        };
        let tokens = x.swap_dims(1, 2);
        let source = context.unwrap_or_else(|| tokens.clone());
        let q = split(layer.query.forward(tokens));
        let k = split(layer.key.forward(source.clone()));
        let v = split(layer.value.forward(source));
        let scale = 1.0 / ((channels / heads) as f64).sqrt();
        let weights = softmax(q.matmul(k.swap_dims(2, 3)).mul_scalar(scale), 3);
        let mixed = weights.clone().matmul(v).swap_dims(1, 2).reshape([batch, positions, channels]);
        (layer.out.forward(mixed).swap_dims(1, 2), weights)
    }

    /// The plain (sampling) path, on the plain flex device, gives burn's output and weights for self- and
    /// cross-attention, one head and several; its training path is compared with burn's operations and
    /// gradients in `model::attention`'s tests.
    #[test]
    fn the_plain_path_matches_burns_operations() {
        let device = Device::flex();
        assert!(super::super::is_plain_cpu(&device), "the kernels are on for the plain flex device");
        let mut noise = crate::diffusion::NoiseSource::new(29);
        for (channels, context_dim, heads, batch, positions) in [
            (64, None, 2, 3, 49),
            (64, Some(16), 2, 5, 20),
            (32, None, 1, 6, 9),
            (64, Some(24), 4, 2, 7),
            // Groups of images side by side in the projections (10 and 4 per group, the last group shorter).
            (32, None, 2, 39, 16),
            (64, Some(16), 2, 19, 49),
        ] {
            let what = format!("{channels} channels, context {context_dim:?}, {heads} heads, batch {batch}");
            let source_dim = context_dim.unwrap_or(channels);
            let [query, key, value, out] = [(channels, channels), (source_dim, channels), (source_dim, channels)]
                .into_iter()
                .chain([(channels, channels)])
                .map(|(from, to)| LinearConfig::new(from, to).init(&device))
                .collect::<Vec<_>>()
                .try_into()
                .unwrap_or_else(|_| unreachable!("four projections"));
            let layer = AttentionLayer { query: &query, key: &key, value: &value, out: &out, heads };
            let x = noise.tensor::<3>([batch, channels, positions], &device);
            let context = context_dim.map(|d| noise.tensor::<3>([batch, 5, d], &device).mul_scalar(2.0));
            let ours = attention(&layer, x.clone(), context.clone(), true)
                .unwrap_or_else(|_| panic!("{what}: the kernel applies"));
            let (reference, reference_weights) = burns_operations(&layer, x, context);
            let (values, off) = (super::super::tensor_values, super::super::relative_difference);
            let output = off(&values(ours.out), &values(reference));
            assert!(output < 1e-4, "{what}: the output is off by {output} (relative)");
            let weights = ours.weights.unwrap_or_else(|| panic!("{what}: the weights were asked for"));
            let weights = off(&super::super::tensor_values(weights), &super::super::tensor_values(reference_weights));
            assert!(weights < 1e-5, "{what}: the weights are off by {weights}");
        }
    }
}
