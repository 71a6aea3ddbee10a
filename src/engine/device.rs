//! Choosing where the model runs: burn's wgpu backend on a real GPU, else the flex CPU backend.

use burn::prelude::*;
use burn::tensor::wgpu::wgpu;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU through wgpu when there is one, else the CPU backend. A software Vulkan adapter
    /// (lavapipe) counts as no GPU: burn's CPU backend is an order of magnitude faster there.
    #[default]
    Auto,
    /// burn's flex backend on the CPU.
    Cpu,
    /// burn's wgpu backend on whatever adapter it finds, software ones included.
    Wgpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(format!("unknown device `{other}`: expected auto, cpu or wgpu")),
        }
    }
}

/// An opened device and how to describe it to the user.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    pub device: Device,
    /// E.g. "CPU (burn flex)" or "GPU: NVIDIA H100 (Vulkan)".
    pub description: String,
    pub is_gpu: bool,
}

impl ComputeDevice {
    pub fn cpu() -> Self {
        Self { device: Device::flex(), description: "CPU (burn flex backend)".into(), is_gpu: false }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no usable wgpu adapter: {0}")]
    NoAdapter(String),
}

/// Opens the device `choice` asks for. `Auto` never fails: it falls back to the CPU.
pub fn open_device(choice: DeviceChoice) -> Result<ComputeDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(ComputeDevice::cpu()),
        DeviceChoice::Wgpu => open_wgpu(true),
        DeviceChoice::Auto => Ok(open_wgpu(false).unwrap_or_else(|_| ComputeDevice::cpu())),
    }
}

/// The graphics API burn's kernels run well on, per platform (burn's name for it and wgpu's): OpenGL
/// cannot compile burn's matmul (no subgroup operations), so it is never tried.
fn compute_api() -> (burn::tensor::wgpu::WgpuBackend, wgpu::Backends) {
    use burn::tensor::wgpu::WgpuBackend;
    if cfg!(target_os = "macos") {
        (WgpuBackend::Metal, wgpu::Backends::METAL)
    } else if cfg!(target_os = "windows") {
        (WgpuBackend::Dx12, wgpu::Backends::DX12)
    } else {
        (WgpuBackend::Vulkan, wgpu::Backends::VULKAN)
    }
}

fn open_wgpu(accept_software: bool) -> Result<ComputeDevice, DeviceError> {
    let (api, backends) = compute_api();
    // Asked of wgpu before burn opens anything: burn's runtime, once opened, keeps a server thread that
    // wakes every 150 µs for the rest of the process, which cost the CPU backend a tenth of its training
    // speed on 2 cores here when the adapter was a software one and the CPU did the work after all.
    if !accept_software {
        let info = default_adapter_info(backends)?;
        if info.device_type == wgpu::DeviceType::Cpu {
            return Err(DeviceError::NoAdapter(format!("{} is a software adapter", info.name)));
        }
    }
    let (device, setup) = Device::wgpu_options()
        .graphics_api(api)
        .init_with_setup()
        .map_err(|e| DeviceError::NoAdapter(e.to_string()))?;
    let info = setup.adapter.get_info();
    let software = info.device_type == wgpu::DeviceType::Cpu;
    if software && !accept_software {
        return Err(DeviceError::NoAdapter(format!("{} is a software adapter", info.name)));
    }
    prove_device(&device)?;
    let kind = if software { "software GPU" } else { "GPU" };
    Ok(ComputeDevice {
        device,
        description: format!("{kind}: {} ({:?}, burn wgpu backend)", info.name, info.backend),
        is_gpu: !software,
    })
}

/// The adapter burn's default device takes on `backends`: the request its wgpu runtime makes (high
/// performance, no fallback adapter), on an instance of our own, dropped after.
fn default_adapter_info(backends: wgpu::Backends) -> Result<wgpu::AdapterInfo, DeviceError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let request = instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        ..wgpu::RequestAdapterOptions::default()
    });
    let adapter = pollster::block_on(request).map_err(|e| DeviceError::NoAdapter(e.to_string()))?;
    Ok(adapter.get_info())
}

/// Runs a tiny computation and reads it back: some adapters open but fail at the first kernel.
fn prove_device(device: &Device) -> Result<(), DeviceError> {
    let device = device.clone();
    let outcome = std::panic::catch_unwind(move || {
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        x.clone().mul(x).sum().into_scalar::<f32>()
    });
    match outcome {
        Ok(v) if (v - 14.0).abs() < 1e-4 => Ok(()),
        Ok(v) => Err(DeviceError::NoAdapter(format!("test computation gave {v} instead of 14"))),
        Err(_) => Err(DeviceError::NoAdapter("the adapter failed its first computation".into())),
    }
}
