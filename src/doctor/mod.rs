//! The doctor: which limit binds first on this machine, and where a value comes from.
//!
//! `proc` reads the machine once through `Root` (counters, socket tables, listening processes,
//! clients near their nofile); `rates` takes two such snapshots some seconds apart so counters
//! say "now" or "in the past"; `apps` reads the connection caps of known servers and spots
//! the signatures of an application cap;
//! `findings` turns that snapshot into findings with evidence, capacity and fix, and names the
//! binding one; `capacity` answers "what would N connections meet"; `chain` and `explain` show
//! where a key's value comes from. Everything here is read-only: it never writes a file or a
//! key and never takes the writer lock.

pub mod apps;
pub mod capacity;
pub mod chain;
pub mod explain;
pub mod findings;
pub mod gauges;
pub mod proc;
pub mod rates;
pub mod watch;
