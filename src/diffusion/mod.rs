//! The seed's mathematics: the noise schedule, the forward process, the samplers and the likelihood bound.
//! No UI, no threads, no files; nothing else of ours is imported here.

pub mod ddim;
pub mod dpm_solver;
pub mod edit;
pub mod equation;
pub mod flow_likelihood;
pub mod forward;
pub mod guidance;
pub mod heun;
pub mod likelihood;
pub mod mixture;
pub mod noise;
pub mod objective;
pub mod ode;
pub mod posterior;
pub mod sampler;
pub mod schedule;
pub mod weighting;

pub use forward::{q_sample, q_sample_batch};
pub use noise::NoiseSource;
pub use objective::Objective;
pub use sampler::{DdpmVariance, Method, NoiseLevel, Sampler, SamplingPlan, Spacing, StepOutput};
pub use schedule::{BetaSchedule, NoiseSchedule, ScheduleError, ScheduleKind};
pub use weighting::Weighting;
