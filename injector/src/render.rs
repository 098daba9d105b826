//! The application's environment block: [`compose`]'s entries measured, the block allocated
//! once in locked memory ([`EnvBlock`]) and written. Which bytes each entry holds, and what a
//! missing secret does, is decided in [`compose`] (pure); this module only allocates and copies.

use crate::compose::compose;
pub use crate::compose::{Answer, Answers, Plaintext, RenderError, Resolved, Unresolved};
use crate::envblock::{EnvBlock, Measure};
use crate::plan::Plan;

/// The environment, ready for exec.
pub struct Rendered {
    /// The block `envp` points into.
    pub block: EnvBlock,
    /// References left unresolved.
    pub unresolved: Vec<Unresolved>,
}

/// Builds the environment: every entry of `plan`, references replaced from `answers`.
pub fn render(plan: &Plan, answers: &impl Answers, ignore_missing: bool) -> Result<Rendered, RenderError> {
    render_for(plan, answers, ignore_missing, false)
}

/// [`render`], for a child that will be forked (`for_child`) or not.
pub fn render_for(
    plan: &Plan,
    answers: &impl Answers,
    ignore_missing: bool,
    for_child: bool,
) -> Result<Rendered, RenderError> {
    let composed = compose(plan, answers, ignore_missing)?;
    let mut measure = Measure::default();
    for (_, pieces) in &composed.entries {
        measure.add(pieces.iter().map(AsRef::as_ref));
    }
    let mut block = EnvBlock::new(&measure, for_child).map_err(RenderError::Alloc)?;
    for (name, pieces) in &composed.entries {
        block.push(pieces.iter().map(AsRef::as_ref)).map_err(|_| RenderError::NulByte { variable: name.clone() })?;
    }
    Ok(Rendered { block, unresolved: composed.unresolved })
}
