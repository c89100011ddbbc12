//! pam_limits' line syntax: any text parses without a panic, and each entry comes from one
//! line of four fields.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for entry in netprofile::system::limits::parse(&text, "/etc/security/limits.conf") {
        assert!(entry.line >= 1);
        assert!(!entry.domain.is_empty());
    }
});
