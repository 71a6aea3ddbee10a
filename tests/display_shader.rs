//! shaders/display.wgsl run on a real wgpu device (lavapipe where there is no GPU), pixel for pixel against
//! the CPU colouring that the app falls back to.

mod common;

use std::sync::Arc;

use diffusion_lab::app::colors::color_image_of;
use diffusion_lab::app::gpu_display::{DisplayCallback, DisplayResources};
use diffusion_lab::app::state::ColorMap;
use eframe::wgpu;

fn device() -> Option<(wgpu::Device, wgpu::Queue)> {
    let instance = wgpu::Instance::default();
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()
}

/// Renders `callback` into a texture exactly the grid's size and reads it back as RGBA.
fn render(device: &wgpu::Device, queue: &wgpu::Queue, callback: &DisplayCallback) -> (usize, usize, Vec<u8>) {
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let [width, height] = callback.grid_size();
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let mut display = DisplayResources::new(device, format);
    display.upload(device, queue, callback);
    let row = (width * 4).div_ceil(256) * 256;
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (row * height) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::GREEN), store: wgpu::StoreOp::Store },
            })],
            ..Default::default()
        });
        display.draw(&mut pass);
    }
    encoder.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture: &texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row as u32), rows_per_image: None },
        },
        wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 },
    );
    queue.submit([encoder.finish()]);
    readback.map_async(wgpu::MapMode::Read, .., |result| result.expect("map"));
    // A deadline, so that a stuck driver fails the test instead of hanging it.
    device
        .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(std::time::Duration::from_secs(60)) })
        .expect("the GPU finishes the copy within 60 s");
    let mapped = readback.get_mapped_range(..).expect("mapped");
    let pixels = (0..height).flat_map(|y| mapped[y * row..y * row + width * 4].to_vec()).collect();
    (width, height, pixels)
}

#[test]
fn gpu_colours_match_the_cpu_fallback() {
    let Some((device, queue)) = device() else {
        common::skip("no wgpu adapter (install mesa-vulkan-drivers for a CPU one)");
        return;
    };
    // Five 1-channel 6x5 images with values across and beyond the data range, NaN included.
    let shape = [5, 1, 5, 6];
    let n: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..n).map(|i| -3.2 + 6.4 * i as f32 / (n - 1) as f32).collect();
    values[7] = f32::NAN;
    let values = Arc::new(values);
    for map in [ColorMap::Gray, ColorMap::Diverging] {
        let callback = DisplayCallback { values: values.clone(), shape, map };
        let (width, height, gpu) = render(&device, &queue, &callback);
        let cpu = color_image_of(&values, shape, map);
        assert_eq!(cpu.size, [width, height]);
        for (i, (expected, got)) in cpu.pixels.iter().zip(gpu.chunks_exact(4)).enumerate() {
            let want = [expected.r(), expected.g(), expected.b()];
            let close = want.iter().zip(got).all(|(a, b)| a.abs_diff(*b) <= 1);
            assert!(close, "{map:?}: pixel {i} ({}, {}): CPU {want:?}, GPU {:?}", i % width, i / width, &got[..3]);
        }
    }
}
