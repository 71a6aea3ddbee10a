//! A batch in parts, each part's whole pass on a core of its own.
//!
//! The latent model's 7x7 and 4x4 maps leave each operation too little work to split over the cores: the
//! pool's threads spent about an eighth of a latent run waking and sleeping, and a training step's autodiff
//! bookkeeping runs on one thread while the others wait. Independent passes over parts of the batch, side
//! by side, keep every core busy between operations.
//!
//! Each part runs on a runner: a rayon pool of one thread, so that everything inside the part (burn's
//! operations, the GEMM crate's, our kernels') runs on that thread alone and no thread ever takes work of
//! another part while it waits inside one (rayon's work stealing would put a second part's frames on top of
//! the first's, which a thread-local buffer in use or a lock held by the first part turns into a panic or a
//! deadlock). The parts are fixed by the batch, never by the number of threads, so the values are the same
//! on any machine; how many runners share them is the caller's thread count.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use burn::prelude::*;

/// Set to `off` to run every batch as one pass (to compare: README, Speed).
pub const PARTS_ENV: &str = "DIFFUSION_LAB_BATCH_PARTS";

/// Whether batches are split in parts (they are unless [`PARTS_ENV`] is `off`).
fn parts_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var(PARTS_ENV).map_or(true, |v| v != "off"))
}

/// Images per part of a split forward pass ([`batch_parts`]).
pub const BATCH_PART: usize = 16;

/// The batch's parts of [`BATCH_PART`] images, when a plain CPU forward pass over `batch` images is better run
/// as independent passes side by side than as one pass whose every operation is split over the cores. The
/// parts depend on the batch only (a part's convolutions group its images by its own size). `None` for a
/// batch of one part or another device.
pub fn batch_parts(device: &Device, batch: usize) -> Option<Vec<Range<usize>>> {
    if batch <= BATCH_PART || !super::is_plain_cpu(device) || !parts_enabled() {
        return None;
    }
    Some((0..batch).step_by(BATCH_PART).map(|start| start..(start + BATCH_PART).min(batch)).collect())
}

/// The parts of a training step's batch on the autodiff flex device: two halves for a batch of 32 or more,
/// each part's forward and backward pass on a runner of its own, their gradients then added in the parts'
/// order (fixed by the batch: a resumed run repeats an uninterrupted one on any number of cores). One part
/// for a smaller batch or another device.
pub fn training_parts(device: &Device, batch: usize) -> Vec<Range<usize>> {
    let autodiff_flex = super::kernels_enabled() && device.is_autodiff() && *device == Device::flex().autodiff();
    if !autodiff_flex || batch < 2 * BATCH_PART || !parts_enabled() {
        return std::iter::once(0..batch).collect();
    }
    let half = batch.div_ceil(2);
    vec![0..half, half..batch]
}

/// `work` of each part, in the parts' order. With one thread to compute on (rayon's current pool: `bench
/// --threads 1`, or a one-core machine) the parts run one after the other here; otherwise on as many
/// runners as there are threads (at most one per part), runner r taking parts r, r + runners, … in turn.
/// `work` must not split its part again (a runner waiting for runners could take another part's work).
pub fn run_parts<P: Send, T: Send>(parts: Vec<P>, work: impl Fn(P) -> T + Sync) -> Vec<T> {
    let total = parts.len();
    let count = rayon::current_num_threads().min(total);
    let runners = match runners(count) {
        Some(runners) if count > 1 => runners,
        _ => return parts.into_iter().map(work).collect(),
    };
    // Runner r's parts: r, r + count, …
    let mut shares: Vec<Vec<P>> = (0..count).map(|_| Vec::new()).collect();
    for (index, part) in parts.into_iter().enumerate() {
        shares[index % count].push(part);
    }
    let work = &work;
    let answers: Vec<Vec<T>> = std::thread::scope(|scope| {
        let mut shares = shares.into_iter().zip(runners);
        let first = shares.next();
        let others: Vec<_> = shares
            .map(|(share, runner)| scope.spawn(move || runner.install(|| share.into_iter().map(work).collect())))
            .collect();
        let mut answers: Vec<Vec<T>> = Vec::with_capacity(count);
        if let Some((share, runner)) = first {
            answers.push(runner.install(|| share.into_iter().map(work).collect()));
        }
        for other in others {
            // A part that panicked re-raises its panic here, as the same work on one thread would.
            answers.push(other.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload)));
        }
        answers
    });
    // Dealt back into the parts' order.
    let mut answers: Vec<std::vec::IntoIter<T>> = answers.into_iter().map(Vec::into_iter).collect();
    (0..total).filter_map(|i| answers[i % count].next()).collect()
}

/// The first `count` runners (rayon pools of one thread each), built the first time they are asked for and
/// kept, with their threads' buffers, for the process's life. `None` if the OS refuses a thread: the caller
/// then runs the parts itself.
fn runners(count: usize) -> Option<Vec<Arc<rayon::ThreadPool>>> {
    static RUNNERS: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());
    let mut runners = RUNNERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while runners.len() < count {
        let index = runners.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("batch-part-{index}"))
            .build()
            .ok()?;
        runners.push(Arc::new(pool));
    }
    Some(runners[..count].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts come back in their order whatever the thread count, each part's work runs on one thread alone
    /// (a runner's pool has one thread), and a part's panic reaches the caller.
    #[test]
    fn parts_come_back_in_order_and_each_runs_on_one_thread() {
        let parts: Vec<Range<usize>> = (0..7).map(|i| i * 3..i * 3 + 3).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let answers = pool.install(|| {
                run_parts(parts.clone(), |part| {
                    use rayon::prelude::*;
                    // Inside a part, rayon sees one thread: nested parallel work stays on this thread.
                    let here = std::thread::current().id();
                    let same = (0..64).into_par_iter().all(|_| std::thread::current().id() == here);
                    (part.start, rayon::current_num_threads(), same)
                })
            });
            let starts: Vec<usize> = answers.iter().map(|a| a.0).collect();
            assert_eq!(starts, [0, 3, 6, 9, 12, 15, 18], "{threads} threads");
            if threads > 1 {
                assert!(answers.iter().all(|a| a.1 == 1 && a.2), "{threads} threads: {answers:?}");
            }
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| run_parts(parts.clone(), |part| assert!(part.start != 9, "part 9")))
        }));
        assert!(panicked.is_err());
    }
}
