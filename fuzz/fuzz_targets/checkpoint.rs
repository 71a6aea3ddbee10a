//! A model file, as the window and the command line open it: the container (signature, version, JSON
//! header, sections), then each kind's config check and weight loading. Any bytes are an error or a
//! model, never a panic or an allocation the file cannot back.
#![no_main]

use burn::prelude::*;
use diffusion_lab::eval::Judge;
use diffusion_lab::model::checkpoint::Checkpoint;
use diffusion_lab::model::{LoadedAutoencoder, LoadedUnet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(checkpoint) = Checkpoint::from_bytes(bytes) else { return };
    let again =
        Checkpoint::from_bytes(&checkpoint.to_bytes()).expect("a checkpoint that was read writes back readable");
    assert_eq!(again.header, checkpoint.header);
    let device = Device::flex();
    let _ = LoadedUnet::from_checkpoint(&checkpoint, &device);
    let _ = LoadedAutoencoder::from_checkpoint(&checkpoint, &device);
    let _ = Judge::from_checkpoint(&checkpoint, &device);
});
