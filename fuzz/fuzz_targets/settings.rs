//! The settings text a PNG carries, as the window restores it: parsed into a request, applied to the
//! window's settings, and checked against a model of 10 classes. Whatever the text, the result must be
//! settings the window can use: a second check finds nothing left to fix, and the schedule builds.
#![no_main]

use diffusion_lab::engine::png_settings::request_from_settings_json;
use diffusion_lab::app::state::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(json) = std::str::from_utf8(bytes) else { return };
    let Ok(request) = request_from_settings_json(json, "fuzz.png") else { return };
    let mut settings = Settings::default();
    settings.apply_request(&request);
    settings.sanitize(10);
    assert_eq!(settings.sanitize(10), Vec::<String>::new(), "sanitize must leave valid settings");
    assert!(settings.schedule.build().is_ok());
});
