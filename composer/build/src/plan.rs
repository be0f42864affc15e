//! The build plan: a validated recipe resolved against the host (mirror,
//! architecture, bootstrap tool) with the cache key of every layer.
//! Planning does no root work: it only reads the recipe's inputs and the
//! host's apt configuration (`compose build` runs it before taking the
//! store lock).

use crate::cachekey::{self, describe};
use crate::hostenv;
use anyhow::{bail, Result};
use compose_recipe::{BaseTool, LayerSpec, Recipe};
use compose_store::CacheKey;
use serde::Serialize;

/// Everything that decides the bootstrap's output; its JSON is the base key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResolvedBase {
    pub tool: String,
    pub suite: String,
    pub variant: String,
    pub architecture: String,
    pub components: Vec<String>,
    pub mirror: String,
    pub packages: Vec<String>,
    pub source_date_epoch: i64,
}

#[derive(Debug, Clone)]
pub enum Work {
    Base(ResolvedBase),
    Layer(LayerSpec),
}

#[derive(Debug, Clone)]
pub struct PlannedLayer {
    pub name: String,
    pub key: CacheKey,
    pub created_by: String,
    pub work: Work,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub image: String,
    pub base: ResolvedBase,
    pub layers: Vec<PlannedLayer>,
}

/// Which bootstrap tools the host has, for resolving `tool = "auto"`.
#[derive(Debug, Clone, Copy)]
pub struct Tools {
    pub mmdebstrap: bool,
    pub debootstrap: bool,
}

impl Tools {
    pub fn detect() -> Tools {
        Tools {
            mmdebstrap: hostenv::have_program("mmdebstrap"),
            debootstrap: hostenv::have_program("debootstrap"),
        }
    }
}

pub fn resolve_tool(wanted: &BaseTool, tools: Tools) -> Result<&'static str> {
    let hint = "install it with `apt-get install mmdebstrap` (or debootstrap)";
    Ok(match wanted {
        BaseTool::Mmdebstrap if tools.mmdebstrap => "mmdebstrap",
        BaseTool::Debootstrap if tools.debootstrap => "debootstrap",
        BaseTool::Auto if tools.mmdebstrap => "mmdebstrap",
        BaseTool::Auto if tools.debootstrap => "debootstrap",
        BaseTool::Mmdebstrap => {
            bail!("the recipe asks for mmdebstrap, which is not installed: {hint}")
        }
        BaseTool::Debootstrap => {
            bail!("the recipe asks for debootstrap, which is not installed: {hint}")
        }
        BaseTool::Auto => bail!("neither mmdebstrap nor debootstrap is installed: {hint}"),
    })
}

/// Resolves host defaults and computes every cache key (hashing inputs).
pub fn plan(recipe: &Recipe, tools: Tools) -> Result<Plan> {
    let b = &recipe.base;
    let mirror = match (&b.mirror, &b.snapshot) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => format!("https://snapshot.debian.org/archive/debian/{s}"),
        (None, None) => hostenv::host_mirror()?,
    };
    let architecture = match &b.architecture {
        Some(a) => a.clone(),
        None => hostenv::host_architecture()?,
    };
    let base = ResolvedBase {
        tool: resolve_tool(&b.tool, tools)?.to_string(),
        suite: b.suite.clone(),
        variant: b.variant.as_str().to_string(),
        architecture,
        components: b.components.clone(),
        mirror,
        packages: b.packages.clone(),
        source_date_epoch: b.source_date_epoch,
    };
    let base_key = cachekey::base_key(&base)?;
    let mut layers = vec![PlannedLayer {
        name: "base".to_string(),
        key: base_key,
        created_by: describe_base(&base),
        work: Work::Base(base.clone()),
    }];
    for spec in &recipe.layers {
        let parent = &layers.last().expect("base is always first").key;
        let key = cachekey::layer_key(parent, spec)?;
        layers.push(PlannedLayer {
            name: spec.name.clone(),
            key,
            created_by: format!("compose layer {}: {}", spec.name, describe(&spec.steps)),
            work: Work::Layer(spec.clone()),
        });
    }
    Ok(Plan {
        image: recipe.image.name.clone(),
        base,
        layers,
    })
}

fn describe_base(b: &ResolvedBase) -> String {
    let mut s = format!(
        "compose base: {} --variant={} --architectures={} {} {}",
        b.tool, b.variant, b.architecture, b.suite, b.mirror
    );
    if !b.packages.is_empty() {
        s.push_str(&format!(" --include={}", b.packages.join(",")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_mmdebstrap_and_falls_back() {
        let both = Tools {
            mmdebstrap: true,
            debootstrap: true,
        };
        let only_deb = Tools {
            mmdebstrap: false,
            debootstrap: true,
        };
        let none = Tools {
            mmdebstrap: false,
            debootstrap: false,
        };
        assert_eq!(resolve_tool(&BaseTool::Auto, both).unwrap(), "mmdebstrap");
        assert_eq!(
            resolve_tool(&BaseTool::Auto, only_deb).unwrap(),
            "debootstrap"
        );
        assert_eq!(
            resolve_tool(&BaseTool::Debootstrap, both).unwrap(),
            "debootstrap"
        );
        let err = resolve_tool(&BaseTool::Mmdebstrap, only_deb)
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install mmdebstrap"), "{err}");
        assert!(resolve_tool(&BaseTool::Auto, none).is_err());
    }
}
