//! Exponential moving average of a model's weights: θ_ema <- d θ_ema + (1 - d) θ. Sampling uses θ_ema,
//! which is much smoother than the last optimizer step.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

/// Collects every float parameter, flattened and without autodiff, by id.
struct Collect {
    tensors: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        self.tensors.insert(param.id, value.reshape([n]));
    }
}

struct Blend {
    tensors: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.tensors.remove(&param.id) {
            Some(current) => {
                let decay = self.decay;
                param.map(|ema| {
                    let shape = ema.shape();
                    ema.mul_scalar(decay).add(current.reshape(shape).mul_scalar(1.0 - decay))
                })
            }
            None => param,
        }
    }
}

/// Moves `ema` towards `model` (same architecture, same parameter ids: `ema` began as a copy of `model`).
pub fn update_ema<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect { tensors: HashMap::new() };
    model.visit(&mut collect);
    ema.map(&mut Blend { tensors: collect.tensors, decay })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    fn weights(l: &Linear) -> Vec<f32> {
        l.weight.val().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn ema_moves_a_fraction_of_the_way() {
        let device = Device::flex();
        let model = LinearConfig::new(3, 2).init(&device);
        let ema = model.clone();
        let target = model.clone().map(&mut Blend { tensors: HashMap::new(), decay: 0.0 });
        // Shift the model's weights by +1 and blend with decay 0.75: the EMA moves by 0.25.
        let shifted = {
            let mut collect = Collect { tensors: HashMap::new() };
            target.visit(&mut collect);
            let tensors = collect.tensors.into_iter().map(|(id, t)| (id, t.add_scalar(1.0))).collect();
            target.map(&mut Blend { tensors, decay: 0.0 })
        };
        let before = weights(&ema);
        let after = weights(&update_ema(ema, &shifted, 0.75));
        for (a, b) in after.iter().zip(&before) {
            assert!((a - b - 0.25).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
