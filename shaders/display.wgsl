// Turns a frame's values into colours on the GPU: the batch laid out as a grid, each pixel coloured by
// the chosen map. The same mapping as the CPU fallback in src/app/view.rs; tests/display_shader.rs
// checks that both agree pixel for pixel.

struct Display {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    columns: u32,
    rows: u32,
    gap: u32,
    // 0: gray with out-of-range tint, 1: diverging blue-white-red scaled to `scale`.
    color_map: u32,
    scale: f32,
    // 1: the target stores linear colour (an sRGB format), so convert from gamma space.
    linear_output: u32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<uniform> display: Display;
@group(0) @binding(1) var<storage, read> values: array<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle covering the viewport, which egui sets to the callback's rectangle.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let xy = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
    out.uv = vec2<f32>(xy.x, 1.0 - xy.y);
    return out;
}

const BACKGROUND: vec3<f32> = vec3<f32>(24.0, 24.0, 24.0);
const NOT_A_NUMBER: vec3<f32> = vec3<f32>(255.0, 0.0, 255.0);

fn is_finite(v: f32) -> bool {
    // NaN fails every comparison; infinities exceed the largest f32.
    return v == v && abs(v) <= 3.4028235e38;
}

// Colours in 0..255, rounded as the CPU path rounds (truncation of the same expressions).
fn gray(v: f32) -> vec3<f32> {
    if !is_finite(v) {
        return NOT_A_NUMBER;
    }
    if v > 1.0 {
        let excess = min((v - 1.0) / 2.0, 1.0);
        let fade = floor(255.0 * (1.0 - excess));
        return vec3<f32>(255.0, fade, fade);
    }
    if v < -1.0 {
        let excess = min((-1.0 - v) / 2.0, 1.0);
        return vec3<f32>(0.0, 0.0, floor(255.0 * excess));
    }
    let level = round((v + 1.0) * 127.5);
    return vec3<f32>(level, level, level);
}

fn diverging(v: f32, scale: f32) -> vec3<f32> {
    if !is_finite(v) {
        return NOT_A_NUMBER;
    }
    let x = clamp(v / max(scale, 1e-6), -1.0, 1.0);
    let fade = floor(255.0 * (1.0 - abs(x)));
    if x >= 0.0 {
        return vec3<f32>(255.0, fade, fade);
    }
    return vec3<f32>(fade, fade, 255.0);
}

fn to_output(color: vec3<f32>) -> vec4<f32> {
    let c = color / 255.0;
    if display.linear_output == 1u {
        let low = c / 12.92;
        let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
        return vec4<f32>(select(high, low, c <= vec3<f32>(0.04045)), 1.0);
    }
    return vec4<f32>(c, 1.0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let cell_w = display.width + display.gap;
    let cell_h = display.height + display.gap;
    let grid_w = display.columns * cell_w - display.gap;
    let grid_h = display.rows * cell_h - display.gap;
    let gx = min(u32(in.uv.x * f32(grid_w)), grid_w - 1u);
    let gy = min(u32(in.uv.y * f32(grid_h)), grid_h - 1u);
    let x = gx % cell_w;
    let y = gy % cell_h;
    let image = (gy / cell_h) * display.columns + gx / cell_w;
    if x >= display.width || y >= display.height || image >= display.batch {
        return to_output(BACKGROUND);
    }
    let plane = display.height * display.width;
    let base = image * display.channels * plane + y * display.width + x;
    if display.channels == 3u && display.color_map == 0u {
        let rgb = vec3<f32>(values[base], values[base + plane], values[base + 2u * plane]);
        return to_output(round((clamp(rgb, vec3<f32>(-1.0), vec3<f32>(1.0)) + 1.0) * 127.5));
    }
    let v = values[base];
    if display.color_map == 1u {
        return to_output(diverging(v, display.scale));
    }
    return to_output(gray(v));
}
