//! "What is written re-parses to the plan": for any profile the parser accepts, and any path it
//! came from, each drop-in netprofile would write reads back (with the readers `diff` uses) as
//! exactly the profile's keys, limits and systemd setting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netprofile::profile::{self, Want};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the path the profile "came from" (any text, line breaks included).
    let (source, body) = text.split_once('\u{1}').unwrap_or(("fuzz.toml", text));
    let Ok(mut profile) = profile::from_text(body, "fuzz.toml") else {
        return;
    };
    profile.source = source.to_string();
    let values: Vec<(String, String)> = profile
        .sysctl
        .iter()
        .filter_map(|(key, setting)| match &setting.want {
            Want::Exact(v) => Some((key.to_string(), v.clone())),
            _ => None,
        })
        .collect();
    if let Err(e) = netprofile::transaction::verify::check_rendered(&profile, &values) {
        panic!("{e}");
    }
});
