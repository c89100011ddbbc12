//! Every numeric flag has a range: an out-of-range value is a usage error (exit 2) that states
//! the range, never a panic (exit 101), a fork storm or an announced port 0 (issue 16, break 8).

mod common;

use common::Test;

/// Runs `args` and expects a quick usage error naming `flag` and stating `range`.
fn refused(args: &[&str], range: &str) {
    let started = std::time::Instant::now();
    let out = Test::new().args(args).run();
    assert_eq!(
        out.code, 2,
        "{args:?}: exit {} (want 2)\nstderr: {}",
        out.code, out.stderr
    );
    assert!(
        out.stderr.contains(range),
        "{args:?}: the error should state the range {range:?}:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    // A usage error is found before any worker starts: generous for a loaded machine, far
    // below what forking thousands of workers or sleeping 1e300 s would take.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{args:?} took {:?}",
        started.elapsed()
    );
}

#[test]
fn huge_durations_are_usage_errors_not_panics() {
    for mode in ["churn", "hold"] {
        for value in ["1e300", "18446744073709551615", "inf", "NaN", "25h"] {
            refused(
                &["test", mode, "--duration", value],
                "must be between 0s and 1day",
            );
        }
        refused(
            &["test", mode, "--accept-delay", "1e300"],
            "must be between 0s and 10s",
        );
        refused(
            &["test", mode, "--connect-timeout", "1e300"],
            "must be between 1ms and 10m",
        );
    }
    refused(
        &[
            "test",
            "serve",
            "--listen",
            "127.0.0.1:7000",
            "--duration",
            "1e300",
        ],
        "must be between 0s and 1day",
    );
    refused(
        &[
            "test",
            "serve",
            "--listen",
            "127.0.0.1:7000",
            "--accept-delay",
            "1e300",
        ],
        "must be between 0s and 10s",
    );
}

#[test]
fn worker_and_connection_counts_are_bounded_before_any_fork() {
    refused(&["test", "hold", "--workers", "4294967295"], "1..=1000");
    refused(&["test", "churn", "--workers", "0"], "1..=1000");
    refused(
        &[
            "test",
            "serve",
            "--listen",
            "127.0.0.1:7000",
            "--workers",
            "4294967295",
        ],
        "1..=1000",
    );
    refused(
        &["test", "hold", "-n", "18446744073709551615"],
        "--connections must be a whole number from 1 to 10000000",
    );
    refused(
        &["test", "churn", "-n", "99999999999999999999999"],
        "--connections must be a whole number from 1 to 10000000",
    );
    refused(
        &["test", "churn", "--concurrency", "4294967295"],
        "1..=1000000",
    );
    refused(
        &["test", "churn", "--payload", "18446744073709551615"],
        "--payload must be a whole number from 0 to 1048576",
    );
    refused(&["test", "churn", "--backlog=0"], "1..=2147483647");
    refused(&["test", "hold", "--addresses", "255"], "1..=250");
    refused(&["test", "hold", "--sources", "251"], "0..=250");
    refused(
        &["test", "hold", "--nofile", "18446744073709551615"],
        "--nofile must be a whole number from 16 to 2147483584",
    );
    refused(
        &["doctor", "--connections", "18446744073709551615"],
        "--connections must be a whole number from 1 to 1000000000",
    );
    refused(
        &["doctor", "--connections", "10", "--rate", "0"],
        "--rate must be from 1 to 100000000 per second",
    );
    refused(&["rollback", "0"], "1..");
}

#[test]
fn a_listen_or_target_port_of_zero_is_refused_not_announced() {
    for args in [
        &[
            "test",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "1",
        ][..],
        &["test", "churn", "--target", "127.0.0.1:0", "-n", "1"],
    ] {
        let out = Test::new().args(args).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("has port 0"), "{}", out.stderr);
        assert!(out.stderr.contains("from 1 to 65535"), "{}", out.stderr);
        assert!(!out.stderr.contains("serving on"), "{}", out.stderr);
    }
}
