//! The GPU display path: an egui wgpu paint callback that colours a frame's values with
//! shaders/display.wgsl. Used when the window renders with wgpu; otherwise the app uploads a texture
//! coloured on the CPU (view.rs), with the same mapping.

use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;

use super::colors::{GRID_GAP, grid_columns};
use super::state::ColorMap;

pub const SHADER: &str = include_str!("../../shaders/display.wgsl");
const UNIFORM_SIZE: u64 = 48;

/// The pipeline and buffers, created once per window and kept in egui's callback resources.
pub struct DisplayResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniform: wgpu::Buffer,
    values: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// The values last uploaded: a frame is uploaded once, however often it is drawn. Holding the `Arc`
    /// keeps its allocation alive, so pointer equality cannot be fooled by a reused address.
    uploaded: Option<Arc<Vec<f32>>>,
    linear_output: bool,
}

impl DisplayResources {
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("diffusion-lab display"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("diffusion-lab display"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(UNIFORM_SIZE),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("diffusion-lab display"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("diffusion-lab display"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("diffusion-lab display uniform"),
            size: UNIFORM_SIZE,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let values = values_buffer(device, 4 * 64 * 28 * 28);
        let bind_group = bind_group(device, &layout, &uniform, &values);
        Self { pipeline, layout, uniform, values, bind_group, uploaded: None, linear_output: target_format.is_srgb() }
    }

    /// Uploads what `callback` shows (values only when they changed).
    pub fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, callback: &DisplayCallback) {
        let bytes = (callback.values.len() * 4) as u64;
        if bytes > self.values.size() {
            self.values = values_buffer(device, bytes.next_power_of_two());
            self.bind_group = bind_group(device, &self.layout, &self.uniform, &self.values);
            self.uploaded = None;
        }
        if !self.uploaded.as_ref().is_some_and(|uploaded| Arc::ptr_eq(uploaded, &callback.values)) {
            let data: Vec<u8> = callback.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            queue.write_buffer(&self.values, 0, &data);
            self.uploaded = Some(callback.values.clone());
        }
        queue.write_buffer(&self.uniform, 0, &callback.uniform_bytes(self.linear_output));
    }

    /// Draws the grid into the current viewport.
    pub fn draw(&self, render_pass: &mut wgpu::RenderPass<'_>) {
        render_pass.set_pipeline(&self.pipeline);
        render_pass.set_bind_group(0, &self.bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}

fn values_buffer(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("diffusion-lab display values"),
        size: size.max(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    uniform: &wgpu::Buffer,
    values: &wgpu::Buffer,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("diffusion-lab display"),
        layout,
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: values.as_entire_binding() },
        ],
    })
}

/// One frame to draw: values [batch, channels, h, w] and how to colour them.
#[derive(Clone)]
pub struct DisplayCallback {
    pub values: Arc<Vec<f32>>,
    pub shape: [usize; 4],
    pub map: ColorMap,
}

impl DisplayCallback {
    /// Width and height of the grid in image pixels (as the CPU path lays it out).
    pub fn grid_size(&self) -> [usize; 2] {
        let [batch, _, h, w] = self.shape;
        super::colors::grid_size(batch, h, w)
    }

    fn uniform_bytes(&self, linear_output: bool) -> Vec<u8> {
        let [batch, channels, h, w] = self.shape;
        let columns = grid_columns(batch);
        let scale = self.values.iter().fold(0.0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
        let words: [u32; 12] = [
            batch as u32,
            channels as u32,
            h as u32,
            w as u32,
            columns as u32,
            batch.div_ceil(columns) as u32,
            GRID_GAP as u32,
            match self.map {
                ColorMap::Gray => 0,
                ColorMap::Diverging => 1,
            },
            scale.to_bits(),
            linear_output as u32,
            0,
            0,
        ];
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

impl CallbackTrait for DisplayCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(display) = resources.get_mut::<DisplayResources>() {
            display.upload(device, queue, self);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: eframe::egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(display) = resources.get::<DisplayResources>() {
            display.draw(render_pass);
        }
    }
}

/// Sets the GPU display up for a window that renders with wgpu; returns whether it is available.
pub fn install(render_state: Option<&egui_wgpu::RenderState>) -> bool {
    let Some(state) = render_state else {
        return false;
    };
    let resources = DisplayResources::new(&state.device, state.target_format);
    state.renderer.write().callback_resources.insert(resources);
    true
}
