//! `netprofile diff PROFILE`: the live system against a profile, and the files apply would write.

use super::Output;
use super::{plan_for, render_plan};
use crate::cli::Config;
use crate::error::Result;

/// `netprofile diff PROFILE`: exit 0 in sync, 1 differs.
pub fn diff(config: &Config, reference: &str) -> Result<Output> {
    let plan = plan_for(config, reference)?;
    Ok(render_plan(config, &plan, "diff"))
}
