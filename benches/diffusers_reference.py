"""Reference numbers for the samplers' unit tests (src/diffusion/sampler.rs, `matches_diffusers`), from
diffusers' own schedulers: the same schedule (Stable Diffusion's scaled_linear, our quadratic, T = 1000, whose σ stays below
Karras spacing's cap), the same x_T, a fixed sequence of network
outputs ε (one per evaluation, whatever the input) and a fixed sequence of noises z (one per step).

    pip install torch==2.15.0 diffusers==0.35.2
    python benches/diffusers_reference.py      # prints the Rust table the test holds

diffusers works in its own variables (Euler and Heun in x / sqrt(ᾱ), DDIM and DPM-Solver in x): every
sample is printed in x, where the app works, so x_t = sqrt(ᾱ_t) · diffusers' Euler sample.
"""
import math
import warnings

import torch
import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler)
import diffusers.schedulers.scheduling_dpmsolver_multistep as dpm_module
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module

diffusers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore")
STEPS = 10
SIZE = 4


def x_start():
    return torch.tensor([0.9 * math.sin(1.0 + 2.1 * j) for j in range(SIZE)], dtype=torch.float64)


def eps(k):
    """The k-th network output (k = 0, 1, ... over every evaluation)."""
    return torch.tensor([0.8 * math.sin(0.37 * k + 0.9 * j) + 0.3 * math.cos(1.7 * j) for j in range(SIZE)], dtype=torch.float64)


def noise(k):
    """The k-th fresh noise z (one per step that adds noise)."""
    return torch.tensor([math.cos(0.53 * k + 1.3 * j) for j in range(SIZE)], dtype=torch.float64)


class Noises:
    def __init__(self):
        self.k = 0

    def __call__(self, shape, **kwargs):
        z = noise(self.k).reshape(shape).to(kwargs.get("dtype") or torch.float64)
        self.k += 1
        return z


def run(name, scheduler, k_space):
    scheduler.set_timesteps(STEPS)
    noises = Noises()
    dpm_module.randn_tensor = noises
    euler_a_module.randn_tensor = noises
    x = x_start()
    if k_space:
        # x / sqrt(ᾱ_T) = x sqrt(σ_max² + 1). (diffusers' own `init_noise_sigma` is σ_max for trailing and
        # linspace spacing, which scales x_T by sqrt(1 - ᾱ_T) instead: 0.2 % apart here.)
        x = x * math.sqrt(scheduler.sigmas[0].item() ** 2 + 1)
    evaluations = 0
    for t in scheduler.timesteps:
        x = scheduler.step(eps(evaluations).to(x.dtype), t, x).prev_sample
        evaluations += 1
    values = ", ".join(f"{v:.9}" for v in x.tolist())
    print(f'        ("{name}", {evaluations}, [{values}]),')


def config(cls, **kw):
    return cls(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **kw)


print(f"        // diffusers {diffusers.__version__}, torch {torch.__version__}")
run("ddim", config(DDIMScheduler, timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True), False)
run("euler", config(EulerDiscreteScheduler, timestep_spacing="trailing"), True)
run("euler karras", config(EulerDiscreteScheduler, use_karras_sigmas=True), True)
run("euler-a", config(EulerAncestralDiscreteScheduler, timestep_spacing="trailing"), True)
run("heun", config(HeunDiscreteScheduler, timestep_spacing="trailing"), True)
run("heun karras", config(HeunDiscreteScheduler, use_karras_sigmas=True), True)
for algorithm, name in [("dpmsolver++", "dpmpp-2m"), ("sde-dpmsolver++", "dpmpp-2m-sde")]:
    for karras in [False, True]:
        # Karras σ between the schedule's ends: diffusers takes σ_min from the last timestep of the base
        # spacing, which is t = 1 for linspace only.
        scheduler = config(DPMSolverMultistepScheduler, algorithm_type=algorithm, solver_order=2,
                           timestep_spacing="linspace" if karras else "trailing", use_karras_sigmas=karras,
                           lower_order_final=True, final_sigmas_type="zero")
        run(name + (" karras" if karras else ""), scheduler, False)
