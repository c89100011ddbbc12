//! The doctor: which limit binds first on this machine, and where a value comes from.
//!
//! `proc` reads the machine once through `Root` (counters, socket tables, listening processes);
//! `findings` turns that snapshot into findings with evidence, capacity and fix, and names the
//! binding one; `capacity` answers "what would N connections meet"; `chain` and `explain` show
//! where a key's value comes from. Everything here is read-only: it never writes a file or a
//! key and never takes the writer lock.

pub mod capacity;
pub mod chain;
pub mod explain;
pub mod findings;
pub mod proc;
