//! The 2-D lab's long measurements off the engine's thread: the solver bench (`lab2d::solver_bench`: 14 s
//! on two cores at the window's 300 particles on the moons with a network, growing with the particles, whose
//! slider goes to 2000), the likelihood (`lab2d::likelihood`) and the guidance comparison
//! (engine/lab2d_guidance.rs) each run on a short-lived thread of their own, so that the worker goes on
//! serving commands (Stop, Generate, Cancel, the lab's own) and training between them.
//!
//! What such a thread needs it gets as copies taken on the worker when the request comes: the data's
//! mixture and the session's network as it is then (a few thousand weights on the CPU: cloning it is
//! cheap). It computes exactly what the worker computed before (the same functions, the same order: the
//! same numbers) and sends its answer through the engine's event channel.
//!
//! One job per kind at a time: a new request of a kind takes the kind's slot, and the older job, which
//! asks its slot between the pieces of its work (`lab2d::run::KeepGoing`), stops there and sends nothing
//! (only the latest request's answer is taken anyway: app/lab2d/latest.rs). Each section's Stop button
//! (`Lab2dCommand::StopMeasurement`) empties its kind's slot; Shutdown empties every slot.
//! A panic on a job's thread becomes that kind's failure event.
//!
//! Their parallel parts use rayon's one global pool, as the worker's do: two measurements at once share
//! its threads rather than adding their own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::prelude::Device;

use super::lab2d::Lab2dEvent;
use super::thread::{internal_error, panic_message};
use crate::lab2d::Lab;
use crate::lab2d::data::PointData;
use crate::lab2d::likelihood::{LikelihoodNetwork, LikelihoodSettings, likelihood_until};
use crate::lab2d::run::KeepGoing;
use crate::lab2d::solver_bench::{BenchSettings, solver_bench_until};

/// Where a job's answer goes: the engine's event channel (and the window's nudge), from any thread.
pub(crate) type LabSink = Arc<dyn Fn(Lab2dEvent) + Send + Sync>;

/// The kinds of measurement that run as jobs, one slot each; the window stops one by its kind
/// (`Lab2dCommand::StopMeasurement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measurement {
    SolverBench = 0,
    Likelihood = 1,
    Guidance = 2,
}

impl Measurement {
    fn thread_name(self) -> &'static str {
        match self {
            Self::SolverBench => "lab2d-solver-bench",
            Self::Likelihood => "lab2d-likelihood",
            Self::Guidance => "lab2d-guidance",
        }
    }
}

/// The slots: each holds the id of the job of its kind that may go on (0: none).
#[derive(Default)]
pub(crate) struct LabJobs {
    last_id: u64,
    slots: [Arc<AtomicU64>; 3],
}

impl LabJobs {
    /// Runs `work` on a new thread as the job of `kind`; an older job of that kind stops at its next
    /// question. `work`'s event is sent unless the job was replaced meanwhile; a panic in it, or a thread
    /// that cannot be started, sends `failed`'s event with the reason.
    pub(crate) fn start<W, F>(&mut self, kind: Measurement, sink: &LabSink, work: W, failed: F)
    where
        W: FnOnce(KeepGoing<'_>) -> Lab2dEvent + Send + 'static,
        F: Fn(String) -> Lab2dEvent + Clone + Send + 'static,
    {
        self.last_id += 1;
        let id = self.last_id;
        let slot = self.slots[kind as usize].clone();
        slot.store(id, Ordering::SeqCst);
        let (job_sink, job_failed) = (sink.clone(), failed.clone());
        let spawned = std::thread::Builder::new().name(kind.thread_name().into()).spawn(move || {
            let keep_going = || slot.load(Ordering::SeqCst) == id;
            let event = catch_unwind(AssertUnwindSafe(|| work(&keep_going))).unwrap_or_else(|payload| {
                job_failed(internal_error(kind.thread_name(), panic_message(payload.as_ref())))
            });
            if keep_going() {
                job_sink(event);
            }
        });
        if let Err(error) = spawned {
            sink(failed(format!("could not start its thread: {error}")));
        }
    }

    /// Stops the job of `kind`, if one runs, at its next question; it sends no answer.
    pub(crate) fn stop(&self, kind: Measurement) {
        self.slots[kind as usize].store(0, Ordering::SeqCst);
    }

    /// Stops every job at its next question; none sends its answer.
    pub(crate) fn stop_all(&self) {
        for slot in &self.slots {
            slot.store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for LabJobs {
    /// The worker is gone (Shutdown), or the lab's state was reset after a panic: nobody waits for them.
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts the solver bench on `data`'s exact ε*, with `session`'s network when it trained on the same
/// mixture.
pub(crate) fn start_solver_bench(
    jobs: &mut LabJobs,
    sink: &LabSink,
    key: u64,
    data: &PointData,
    settings: BenchSettings,
    session: Option<&Lab>,
) {
    let network = session.filter(|lab| lab.data.mixture == data.mixture && lab.trainer.step > 0);
    let network = network.map(|lab| (lab.model(), lab.trainer.step));
    let mixture = data.mixture.clone();
    let work = move |keep_going: KeepGoing<'_>| {
        let network = network.as_ref().map(|(model, step)| (model, *step));
        match solver_bench_until(&mixture, network, &settings, &Device::flex(), keep_going) {
            Ok(bench) => Lab2dEvent::SolverBenched { key, bench: Arc::new(bench) },
            Err(error) => Lab2dEvent::SolverBenchFailed { key, message: error.to_string() },
        }
    };
    let failed = move |message| Lab2dEvent::SolverBenchFailed { key, message };
    jobs.start(Measurement::SolverBench, sink, work, failed);
}

/// Starts the likelihood of fresh points of `session`'s data under its network as it is now.
pub(crate) fn start_likelihood(
    jobs: &mut LabJobs,
    sink: &LabSink,
    key: u64,
    settings: LikelihoodSettings,
    session: Option<&Lab>,
) {
    let Some(lab) = session else {
        let message = "the 2-D lab has no network yet: Start training first".to_string();
        return sink(Lab2dEvent::LikelihoodFailed { key, message });
    };
    let model = lab.model();
    let (range, step) = {
        let network = LikelihoodNetwork::of(lab, &model);
        (network.log_snr_range, network.step)
    };
    let mixture = lab.data.mixture.clone();
    let work = move |keep_going: KeepGoing<'_>| {
        let network = LikelihoodNetwork { model: &model, log_snr_range: range, step };
        match likelihood_until(&network, &mixture, &settings, &Device::flex(), keep_going) {
            Ok(report) => Lab2dEvent::Likelihood { key, report: Arc::new(report) },
            Err(error) => Lab2dEvent::LikelihoodFailed { key, message: error.to_string() },
        }
    };
    let failed = move |message| Lab2dEvent::LikelihoodFailed { key, message };
    jobs.start(Measurement::Likelihood, sink, work, failed);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::mpsc;

    use super::*;

    /// A job that works until its slot says stop: `stop` of its kind ends it (and it sends nothing), a
    /// stop of another kind does not.
    #[test]
    fn stop_ends_the_job_of_its_kind_only() {
        let (ended, ended_rx) = mpsc::channel::<Measurement>();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: LabSink = {
            let events = events.clone();
            Arc::new(move |event: Lab2dEvent| events.lock().unwrap().push(format!("{event:?}")))
        };
        let mut jobs = LabJobs::default();
        for kind in [Measurement::SolverBench, Measurement::Likelihood] {
            let ended = ended.clone();
            jobs.start(
                kind,
                &sink,
                move |keep_going| {
                    while keep_going() {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    ended.send(kind).unwrap();
                    Lab2dEvent::Failed { message: "answered".into(), training_stopped: false }
                },
                |message| Lab2dEvent::Failed { message, training_stopped: false },
            );
        }
        jobs.stop(Measurement::SolverBench);
        let first = ended_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the stopped job ends");
        assert_eq!(first, Measurement::SolverBench);
        assert!(ended_rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "the other job goes on");
        jobs.stop_all();
        assert_eq!(ended_rx.recv_timeout(std::time::Duration::from_secs(30)), Ok(Measurement::Likelihood));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(events.lock().unwrap().is_empty(), "a stopped job sent {:?}", events.lock().unwrap());
    }
}
