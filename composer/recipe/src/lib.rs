//! compose recipes: the TOML schema, its validation and reusable layers.
//!
//! Two halves, kept apart so most of the work is pure and testable:
//! - [`parse_recipe`]: text → [`ParsedRecipe`], no I/O;
//! - [`load_recipe`] / [`resolve_recipe`]: read the file, resolve `use`
//!   layers from the layer search path, check every referenced file and
//!   produce the validated [`Recipe`].
//!
//! Nothing here prints: every problem becomes a [`Diagnostic`], and all of
//! them found in one pass are returned together as [`RecipeErrors`].
//! The recipe format is documented in this crate's README.md.

mod checks;
mod error;
mod load;
mod model;
mod raw;
mod reusable;
mod step;
mod validate;

pub use error::{Diagnostic, RecipeErrors};
pub use load::{load_recipe, resolve_recipe, LoadOptions};
pub use model::{
    canonical_json, BaseSpec, BaseTool, HostnameSpec, ImageSpec, InputPath, LayerOrigin, LayerSpec,
    Recipe, ScriptOrigin, Step, Variant, DEFAULT_SOURCE_DATE_EPOCH,
};
pub use reusable::{parse_layer_def, substitute, LayerDef, ParamDef};
pub use step::{ParsedLayer, ParsedLayerBody, ParsedStep, PathKind, PathSite, WithArg};
pub use validate::{parse_recipe, ParsedRecipe};
