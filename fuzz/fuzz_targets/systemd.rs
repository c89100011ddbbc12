//! systemd's manager settings (system.conf and system.conf.d): any text, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let file = netprofile::system::sysctld::BootFile {
        path: "/etc/systemd/system.conf".into(),
        text,
    };
    let _ = netprofile::system::systemd::default_limit_nofile(&[file]);
});
