//! systemd-sysctl's line syntax: any text parses without a panic; keys and values carry no
//! line break.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for a in netprofile::system::sysctld::parse(&text, "/etc/sysctl.d/x.conf") {
        assert!(!a.key.contains('\n') && !a.value.contains('\n'));
    }
});
