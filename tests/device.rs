//! Choosing the compute device. This file holds one test: it counts the process's threads, which a test
//! running beside it would change.

mod common;

use diffusion_lab::engine::{DeviceChoice, open_device};

/// "Auto" on a machine without a hardware GPU falls back to the CPU and leaves nothing running: burn's
/// wgpu runtime, once opened, keeps a server thread waking every 150 µs (and lavapipe its own threads)
/// for the rest of the process, which took a tenth of the CPU backend's training speed on 2 cores.
#[cfg(target_os = "linux")]
#[test]
fn auto_falling_back_to_the_cpu_leaves_no_thread_behind() {
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = threads();
    let device = open_device(DeviceChoice::Auto).unwrap();
    if device.is_gpu {
        common::skip("this machine has a hardware GPU: Auto takes it, there is no fallback to check");
        return;
    }
    assert_eq!(device.description, "CPU (burn flex backend)");
    assert_eq!(threads(), before, "threads left running after Auto fell back to the CPU");
}
