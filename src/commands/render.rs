//! `netprofile render PROFILE`: the files a profile writes (sysctl.d, limits.d, systemd
//! drop-ins), computed without reading any live system, so one review of a profile change covers
//! a whole fleet. It plans against an imagined machine that already holds every wanted value
//! (raise-only and lower-only keys at their bound), so the files come from the same code path
//! apply uses. It never touches `--root`: not even to recover a journal.

use super::Output;
use crate::cli::Config;
use crate::error::Result;
use crate::plan;
use crate::profile::{self, Want, keys};
use crate::render::json::{Envelope, pretty};
use crate::system::LiveState;
use crate::system::root::Namespace;

/// `render PROFILE --json`: docs/schema/render.json.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Document {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub profile: crate::profile::ProfileRef,
    /// Each file the profile writes, with its whole content.
    pub files: Vec<RenderedFile>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RenderedFile {
    pub path: String,
    pub content: String,
}

/// `netprofile render PROFILE`: exit 0 and the files, or 2 for a bad profile.
pub fn render(config: &Config, reference: &str) -> Result<Output> {
    let profile = profile::load(reference)?;
    // The imagined host also runs netprofile.service: whether a real one does is that host's
    // question (`diff` warns there), not the fleet-wide files'.
    let mut live = LiveState {
        namespace: Some(Namespace::Initial),
        boot_unit_enabled: true,
        ..LiveState::default()
    };
    for (key, setting) in &profile.sysctl {
        let value = match &setting.want {
            Want::Exact(v) => v.clone(),
            Want::Min(n) | Want::Max(n) => n.to_string(),
        };
        live.sysctl.insert(key.clone(), Some(value));
    }
    // plan writes a drop-in for each unit the machine knows: on the imagined machine that is
    // every unit the profile names.
    for unit in profile.services.keys() {
        live.units.insert(unit.clone(), Default::default());
    }
    // Without a kernel, a key outside the catalogue cannot be checked: name it, and the nearest
    // known key when it looks like a typo, so the reviewer sees it (diff checks it for real).
    let mut unchecked = Vec::new();
    for (key, setting) in &profile.sysctl {
        if keys::known(key.as_str()).is_none() && !setting.optional {
            let hint = keys::nearest(key.as_str(), keys::CATALOGUE.iter().map(|k| k.name))
                .map_or_else(String::new, |n| format!(" (did you mean {n:?}?)"));
            unchecked.push(format!(
                "warning: {}:{}: [sysctl] {:?} is not in netprofile's catalogue of keys{hint}; \
                 render cannot tell whether a kernel has it: `netprofile diff` on a host checks it",
                setting.origin.file,
                setting.origin.line,
                key.as_str()
            ));
        }
    }
    let plan = plan::plan(&profile, &live)?;
    let files: Vec<(&str, &str)> = plan
        .files
        .iter()
        .filter_map(|f| Some((f.path.as_str(), f.new.as_deref()?)))
        .collect();
    let stdout = if config.json {
        pretty(&Document {
            envelope: Envelope::new("render", 0),
            profile: plan.profile.clone(),
            files: files
                .iter()
                .map(|(path, content)| RenderedFile {
                    path: (*path).to_string(),
                    content: (*content).to_string(),
                })
                .collect(),
        })
    } else {
        files
            .iter()
            .map(|(path, content)| format!("==> {path} <==\n{content}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: unchecked
            .into_iter()
            .chain(super::warnings(&plan))
            .collect(),
    })
}
