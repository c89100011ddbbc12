//! Rates: what changed between two snapshots taken some seconds apart, so that a counter that
//! has grown since boot is told apart from one that grows now. A finding built on a counter
//! (ListenOverflows, TCPTimeWaitOverflow, TCPAbortOnMemory, TCPSynRetrans) says `now` when the
//! counter rose during the interval, `past` when it only rose before, and `unmeasured` when no
//! second sample was taken (`--interval 0`, or a tree whose files do not move). `sample` does
//! the I/O (two `Snapshot::read`s and a sleep between them); everything else is pure.
//!
//! Why two samples and not "the change since doctor's last run": doctor is read-only and never
//! writes a file (docs/doctor.md), a stored sample would be as old as the last run (an hour-old
//! overflow would read as "now"), and it would need a place every user may write. Two samples
//! cost the interval (2 s by default) and answer "now" for what "now" means to an operator.

use std::collections::BTreeMap;

use serde::Serialize;

use super::proc::{PortStates, Snapshot};
use crate::error::Result;
use crate::system::root::Root;

/// The interval `doctor` waits between its two samples when `--interval` is not given and the
/// root shows the running kernel.
pub const DEFAULT_INTERVAL_S: f64 = 2.0;

/// What changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Seconds between the two samples.
    pub seconds: f64,
    /// The change of every counter of netstat and snmp.
    pub counters: BTreeMap<String, i64>,
    /// Each listener's accept queue in the first sample, by socket inode.
    pub queue_before: BTreeMap<u64, u64>,
    /// Each listening port's connection counts in the first sample.
    pub ports_before: BTreeMap<u16, PortStates>,
    /// Share of one core each listening process used between the samples, by pid.
    pub cpu: BTreeMap<u32, f64>,
}

/// Whether a counter-based problem happens now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// The counter rose between the two samples.
    Now,
    /// It rose since boot, not between the samples: a past problem.
    Past,
    /// No second sample: the since-boot total alone says nothing about now.
    Unmeasured,
}

/// One counter: its total since boot and its change over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CounterRate {
    pub name: String,
    pub since_boot: i64,
    /// `None` without a second sample.
    pub change: Option<i64>,
    pub seconds: Option<f64>,
    pub per_second: Option<f64>,
}

impl Rates {
    /// The changes from `before` to `after`, `seconds` apart.
    #[must_use]
    pub fn between(before: &Snapshot, after: &Snapshot, seconds: f64) -> Rates {
        let counters = after
            .counters
            .iter()
            .map(|(k, v)| {
                let was = before.counters.get(k).copied().unwrap_or(*v);
                (k.clone(), v.saturating_sub(was).max(0))
            })
            .collect();
        let ticks = clock_ticks();
        let cpu = after
            .processes
            .iter()
            .filter_map(|p| {
                let b = before.processes.iter().find(|q| q.pid == p.pid)?;
                let used = p.cpu_ticks?.saturating_sub(b.cpu_ticks?);
                #[allow(clippy::cast_precision_loss)]
                let share = used as f64 / ticks as f64 / seconds.max(0.001);
                Some((p.pid, share))
            })
            .collect();
        Rates {
            seconds,
            counters,
            queue_before: before
                .listeners
                .iter()
                .map(|l| (l.inode, l.queue))
                .collect(),
            ports_before: before.states.by_port.clone(),
            cpu,
        }
    }

    /// The change of one counter over the interval.
    #[must_use]
    pub fn change(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// A counter's since-boot total, its change over the interval and when it rose.
#[must_use]
pub fn counter(snap: &Snapshot, rates: Option<&Rates>, name: &str) -> (CounterRate, When) {
    let total = snap.counters.get(name).copied().unwrap_or(0);
    let Some(r) = rates else {
        let rate = CounterRate {
            name: name.to_string(),
            since_boot: total,
            change: None,
            seconds: None,
            per_second: None,
        };
        return (rate, When::Unmeasured);
    };
    let change = r.change(name);
    #[allow(clippy::cast_precision_loss)]
    let per_second = (change as f64 / r.seconds.max(0.001) * 10.0).round() / 10.0;
    let when = if change > 0 { When::Now } else { When::Past };
    let rate = CounterRate {
        name: name.to_string(),
        since_boot: total,
        change: Some(change),
        seconds: Some(r.seconds),
        per_second: Some(per_second),
    };
    (rate, when)
}

/// "+12 in 2 s (6/s) now" or "none in the last 2 s" or "rate not measured".
#[must_use]
pub fn phrase(rate: &CounterRate) -> String {
    match (rate.change, rate.seconds) {
        (Some(c), Some(s)) if c > 0 => format!(
            "+{c} in the last {s} s ({}/s)",
            rate.per_second.unwrap_or(0.0)
        ),
        (Some(_), Some(s)) => format!("none in the last {s} s"),
        _ => "rate not measured (one sample)".to_string(),
    }
}

/// Reads the machine twice, `interval` seconds apart (once when it is 0).
pub fn sample(root: &Root, interval: f64) -> Result<(Snapshot, Option<Rates>)> {
    if interval <= 0.0 {
        return Ok((Snapshot::read(root)?, None));
    }
    let started = std::time::Instant::now();
    let first = Snapshot::read(root)?;
    std::thread::sleep(std::time::Duration::from_secs_f64(interval));
    let second = Snapshot::read(root)?;
    // The real time between the two reads (each takes a quarter second for its CPU sample).
    let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let rates = Rates::between(&first, &second, seconds);
    Ok((second, Some(rates)))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(overflows: i64) -> Snapshot {
        let mut s = Snapshot::default();
        s.counters
            .insert("TcpExt.ListenOverflows".into(), overflows);
        s
    }

    #[test]
    fn a_counter_that_rose_before_is_past_and_one_that_rises_is_now() {
        let past = Rates::between(&snap(10_752), &snap(10_752), 2.0);
        let (r, when) = counter(&snap(10_752), Some(&past), "TcpExt.ListenOverflows");
        assert_eq!(
            (when, r.change, r.since_boot),
            (When::Past, Some(0), 10_752)
        );
        assert_eq!(phrase(&r), "none in the last 2 s");
        let now = Rates::between(&snap(100), &snap(160), 2.0);
        let (r, when) = counter(&snap(160), Some(&now), "TcpExt.ListenOverflows");
        assert_eq!((when, r.per_second), (When::Now, Some(30.0)));
        assert_eq!(phrase(&r), "+60 in the last 2 s (30/s)");
        let (_, when) = counter(&snap(5), None, "TcpExt.ListenOverflows");
        assert_eq!(when, When::Unmeasured);
    }
}
