//! The profile parser and validator: any bytes end with a profile or a clear error, never a
//! panic, and an accepted profile's name is one `valid_name` allows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(profile) = netprofile::profile::from_text(text, "fuzz.toml")
    {
        assert!(netprofile::profile::valid_name(&profile.name));
    }
});
