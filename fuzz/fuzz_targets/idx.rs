//! The IDX reader (Fashion-MNIST's format, raw or gzipped): any bytes are an error or an array whose
//! data is exactly as long as its dimensions say, and an uncompressed file reads back to what it was.
#![no_main]

use std::path::Path;

use diffusion_lab::data::idx::{parse_idx, write_idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(array) = parse_idx(bytes, Path::new("fuzz.idx")) else { return };
    assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(write_idx(&array.dims, &array.data), bytes);
    }
});
