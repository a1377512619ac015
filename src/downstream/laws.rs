//! Exact conditional laws over an enumerated side, through the separator `W` (the book, Belief propagation, T7):
//!
//! ```text
//! p(c | a) = p(c) Σ_w p(w | a) p(w | c) / p(w)      (c on the enumerated side, a on the other)
//! ```
//!
//! One upward pass gives `p(w | a)`; the enumerated table holds `p(c)` and `p(w | c)`.

use crate::bp::Workspace;
use crate::info::{upward_side, weighted_inner, Cut, SideTable};
use crate::model::{Jghm, Part};

use super::{require_enumerable, DownstreamError};

/// Every sequence of one side with `p(c)` and `p(w | c)`, ready to condition on the other side.
#[derive(Clone, Debug)]
pub struct SideLaw {
    pub table: SideTable,
    pub cut: Cut,
}

impl SideLaw {
    /// Enumerates side `part` (refused beyond [`crate::info::SIDE_LIMIT`]).
    pub fn new(model: &Jghm, part: Part) -> Result<Self, DownstreamError> {
        require_enumerable(model, part, &format!("the exact law over the {part}s"))?;
        let cut = Cut::separator(model)?;
        let table = SideTable::new(model, part, &cut)?;
        Ok(SideLaw { table, cut })
    }

    /// The separator posterior `p(w | a)` of tokens `a` of the *other* side.
    pub fn latent_of(&self, model: &Jghm, anchor: &[usize]) -> Result<Vec<f64>, DownstreamError> {
        let other = if self.table.part == Part::Image { Part::Text } else { Part::Image };
        crate::evidence::check_tokens(model, other, anchor)?;
        let mut ws = Workspace::new(model);
        if upward_side(&mut ws, model, other, anchor) == f64::NEG_INFINITY {
            return Err(crate::bp::BpError::ZeroProbability { what: "p(anchor)", needed: "a conditional law" }.into());
        }
        let mut w = vec![0.0; self.cut.size()];
        self.cut.posterior_into(model, &ws, &mut w);
        Ok(w)
    }

    /// `p(c | a) = p(c) Σ_w p(w | a) p(w | c) / p(w)` for every enumerated `c`, from `p(w | a)`.
    pub fn conditional_from_latent(&self, w_a: &[f64]) -> Vec<f64> {
        (0..self.table.len())
            .map(|c| self.table.p(c) * weighted_inner(w_a, self.table.latent_row(c), &self.cut.prior))
            .collect()
    }

    /// `p(c | a)` for every enumerated `c`, given tokens `a` of the other side.
    pub fn conditional(&self, model: &Jghm, anchor: &[usize]) -> Result<Vec<f64>, DownstreamError> {
        Ok(self.conditional_from_latent(&self.latent_of(model, anchor)?))
    }

    /// Row of `tokens` in the table (rows are in mixed-radix, i.e. lexicographic, order);
    /// `None` when the sequence has probability zero.
    pub fn index_of(&self, tokens: &[usize]) -> Option<usize> {
        self.table.tokens.binary_search_by(|t| t.as_slice().cmp(tokens)).ok()
    }
}
