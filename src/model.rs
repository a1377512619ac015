//! The Joint Generative Hierarchical Model (the book, The JGHM): data only, no inference.
//!
//! A JGHM is a rooted tree. The root `z ∈ [S_0]` has prior `π`; every other node `u` is drawn
//! from its parent `v` by a row-stochastic matrix, `P(z_u = b | z_v = a) = Ψ_u(a, b)`.
//! The tree is given by *levels*: level `k` gives every node of level `k-1` one child per
//! transition matrix in its list (child position `j` uses `Ψ_{k,j}`, shared by all nodes of
//! that level: the translation-invariant GHM).
//!
//! Layout: an optional shared trunk hangs below the root; every trunk leaf (the root itself
//! when there is no trunk) spawns one image subtree and one text subtree. The image `x`
//! concatenates the image subtrees' leaves in trunk-leaf order, left to right; `y` likewise.
//!
//! A [`Jghm`] is validated once, on the way in ([`Jghm::new`], [`Jghm::from_json`]); the rest of
//! the crate trusts it. Its [`Tree`] lists every node explicitly, parents before children, so
//! that inference (`bp`) can walk any shape with one loop.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::tolerance;

/// One level of a tower: one transition matrix per child position (rows = parent states,
/// columns = child states, each row a probability vector).
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub transitions: Vec<DMatrix<f64>>,
}

impl Level {
    /// Number of children each parent node of this level has (`m_k`).
    pub fn children(&self) -> usize {
        self.transitions.len()
    }
    /// The level's alphabet size `S_k` (columns of its matrices).
    pub fn states(&self) -> usize {
        self.transitions[0].ncols()
    }
}

/// The three parts of the tree below the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Shared,
    Image,
    Text,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Shared => "shared",
            Part::Image => "image",
            Part::Text => "text",
        })
    }
}

/// Which matrix a node is drawn with: `Ψ_{part, level, position}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransitionId {
    pub part: Part,
    pub level: usize,
    pub position: usize,
}

/// A node of the explicit tree.
#[derive(Clone, Debug)]
pub struct Node {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Alphabet size of this node.
    pub states: usize,
    /// The matrix drawing this node from its parent (`None` for the root).
    pub transition: Option<TransitionId>,
}

/// The explicit tree of a JGHM: nodes in depth-first pre-order (every parent before its
/// children, leaves of each subtree left to right), plus the leaf lists that make `x` and `y`.
#[derive(Clone, Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Node ids of the image leaves, in the order of the tokens of `x`.
    pub image_leaves: Vec<usize>,
    /// Node ids of the text leaves, in the order of the tokens of `y`.
    pub text_leaves: Vec<usize>,
    /// Node ids of the trunk leaves (just the root when there is no trunk). `X ⟂ Y` given them.
    pub trunk_leaves: Vec<usize>,
    /// Offset of node `u`'s states in a flat per-node buffer (`offsets[u]..offsets[u] + S_u`).
    pub offsets: Vec<usize>,
    /// Total number of (node, state) pairs: the length of a flat per-node buffer.
    pub total_states: usize,
    /// For a leaf, its modality and token position; `None` for internal nodes.
    pub leaf_slot: Vec<Option<(Part, usize)>>,
}

/// A validated JGHM. Construct with [`Jghm::new`] or [`Jghm::from_json`].
#[derive(Clone, Debug)]
pub struct Jghm {
    prior: Vec<f64>,
    shared: Vec<Level>,
    image: Vec<Level>,
    text: Vec<Level>,
    tree: Tree,
}

/// What is wrong with a model, naming the place.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("random model: {0}")]
    Spec(String),
    #[error("model file is not valid JSON for a JGHM: {0}")]
    Json(String),
    #[error("prior is empty")]
    EmptyPrior,
    #[error("prior entry {index} is {value}: entries must be finite and nonnegative")]
    BadPriorEntry { index: usize, value: f64 },
    #[error("prior sums to {sum}, not 1 (tolerance {tol:e})", tol = tolerance::ROW_SUM)]
    PriorSum { sum: f64 },
    #[error("{part} tower has no levels")]
    EmptyTower { part: Part },
    #[error("{part} level {level} has no transition matrices (a level needs at least one child)")]
    EmptyLevel { part: Part, level: usize },
    #[error("{part} level {level} child {position}: matrix has no rows or no columns")]
    EmptyMatrix { part: Part, level: usize, position: usize },
    #[error("{part} level {level} child {position}: has {rows} rows, but the parent level has {expected} states")]
    RowCount { part: Part, level: usize, position: usize, rows: usize, expected: usize },
    #[error("{part} level {level} child {position} row {row}: has {cols} entries, but row 0 has {expected} (all rows and child positions of a level share one alphabet)")]
    RowLength { part: Part, level: usize, position: usize, row: usize, cols: usize, expected: usize },
    #[error("{part} level {level} child {position} row {row} entry {col} is {value}: entries must be finite and nonnegative")]
    BadEntry { part: Part, level: usize, position: usize, row: usize, col: usize, value: f64 },
    #[error("{part} level {level} child {position} row {row} sums to {sum}, not 1 (tolerance {tol:e})", tol = tolerance::ROW_SUM)]
    RowSum { part: Part, level: usize, position: usize, row: usize, sum: f64 },
}

/// The JSON file format: `{"prior": [..], "shared": [level, ..], "image": [level, ..],
/// "text": [level, ..]}`, `level = {"transitions": [M_0, .., M_{m-1}]}`, `M_j` a list of rows.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub prior: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<LevelFile>,
    pub image: Vec<LevelFile>,
    pub text: Vec<LevelFile>,
}

impl ModelFile {
    /// Every row of positive finite sum (the prior, each transition row) divided by its sum, for
    /// hand-written rows such as `[0.3333, 0.3333, 0.3333]`; returns the largest `|sum − 1|`
    /// corrected. Rows with a negative, non-finite or zero-sum entry are left for validation to
    /// name.
    pub fn renormalise(&mut self) -> f64 {
        let mut largest: f64 = 0.0;
        let mut fix = |row: &mut Vec<f64>| {
            let sum: f64 = row.iter().sum();
            if sum.is_finite() && sum > 0.0 && row.iter().all(|v| v.is_finite() && *v >= 0.0) {
                largest = largest.max((sum - 1.0).abs());
                row.iter_mut().for_each(|v| *v /= sum);
            }
        };
        fix(&mut self.prior);
        for level in self.shared.iter_mut().chain(&mut self.image).chain(&mut self.text) {
            level.transitions.iter_mut().flatten().for_each(&mut fix);
        }
        largest
    }
}

/// One level in the JSON format.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LevelFile {
    pub transitions: Vec<Vec<Vec<f64>>>,
}

/// A model's shape, as `jghm model check` reports it: per part, each level's `[children, states]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shape {
    pub root_states: usize,
    pub shared: Vec<[usize; 2]>,
    pub image: Vec<[usize; 2]>,
    pub text: Vec<[usize; 2]>,
    pub image_tokens: usize,
    pub text_tokens: usize,
    pub image_vocab: usize,
    pub text_vocab: usize,
    pub nodes: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "valid JGHM: root states {}, {} nodes", self.root_states, self.nodes)?;
        for (name, levels) in [("shared trunk", &self.shared), ("image tower", &self.image), ("text tower", &self.text)]
        {
            if !levels.is_empty() {
                let desc: Vec<String> = levels.iter().map(|[m, s]| format!("{m} children x {s} states")).collect();
                writeln!(f, "  {name}: {}", desc.join(", "))?;
            }
        }
        writeln!(f, "  image: {} tokens over {} symbols", self.image_tokens, self.image_vocab)?;
        write!(f, "  text:  {} tokens over {} symbols", self.text_tokens, self.text_vocab)
    }
}

impl Jghm {
    /// Validates and builds a model from its prior and the levels of the trunk, image and text
    /// towers. Rows and prior are renormalised after validation, so that the engine works with
    /// exactly stochastic rows.
    pub fn from_file(file: ModelFile) -> Result<Self, ModelError> {
        let prior = validate_prior(&file.prior)?;
        let shared = validate_part(Part::Shared, &file.shared, prior.len(), true)?;
        let trunk_states = shared.last().map_or(prior.len(), Level::states);
        let image = validate_part(Part::Image, &file.image, trunk_states, false)?;
        let text = validate_part(Part::Text, &file.text, trunk_states, false)?;
        Ok(Self::new_unchecked(prior, shared, image, text))
    }

    /// Parses and validates the JSON format.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let file: ModelFile = serde_json::from_str(text).map_err(|e| ModelError::Json(e.to_string()))?;
        Self::from_file(file)
    }

    /// Builds a model from already validated parts.
    fn new_unchecked(prior: Vec<f64>, shared: Vec<Level>, image: Vec<Level>, text: Vec<Level>) -> Self {
        let tree = Tree::build(prior.len(), &shared, &image, &text);
        Jghm { prior, shared, image, text, tree }
    }

    /// Validates a model given as matrices (same checks as the file format).
    pub fn new(prior: Vec<f64>, shared: Vec<Level>, image: Vec<Level>, text: Vec<Level>) -> Result<Self, ModelError> {
        Self::from_file(ModelFile {
            prior,
            shared: shared.iter().map(LevelFile::from).collect(),
            image: image.iter().map(LevelFile::from).collect(),
            text: text.iter().map(LevelFile::from).collect(),
        })
    }

    /// The JSON format of this model.
    pub fn to_file(&self) -> ModelFile {
        ModelFile {
            prior: self.prior.clone(),
            shared: self.shared.iter().map(LevelFile::from).collect(),
            image: self.image.iter().map(LevelFile::from).collect(),
            text: self.text.iter().map(LevelFile::from).collect(),
        }
    }

    /// The JSON text of this model.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_file()).expect("a validated model is always serialisable")
    }

    /// The shape: alphabets, child counts, tokens and nodes.
    pub fn shape(&self) -> Shape {
        let levels = |part| self.levels(part).iter().map(|l: &Level| [l.children(), l.states()]).collect();
        Shape {
            root_states: self.root_states(),
            shared: levels(Part::Shared),
            image: levels(Part::Image),
            text: levels(Part::Text),
            image_tokens: self.image_len(),
            text_tokens: self.text_len(),
            image_vocab: self.image_vocab(),
            text_vocab: self.text_vocab(),
            nodes: self.tree.nodes.len(),
        }
    }

    /// The root prior `π`.
    pub fn prior(&self) -> &[f64] {
        &self.prior
    }
    /// The levels of one part (the trunk may be empty).
    pub fn levels(&self, part: Part) -> &[Level] {
        match part {
            Part::Shared => &self.shared,
            Part::Image => &self.image,
            Part::Text => &self.text,
        }
    }
    /// The matrix `Ψ_{part, level, position}`.
    pub fn transition(&self, id: TransitionId) -> &DMatrix<f64> {
        &self.levels(id.part)[id.level].transitions[id.position]
    }
    /// The explicit tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
    /// Root alphabet size `S_0`.
    pub fn root_states(&self) -> usize {
        self.prior.len()
    }
    /// Number of image tokens `N_X`.
    pub fn image_len(&self) -> usize {
        self.tree.image_leaves.len()
    }
    /// Number of text tokens `N_Y`.
    pub fn text_len(&self) -> usize {
        self.tree.text_leaves.len()
    }
    /// Image vocabulary `V_X`.
    pub fn image_vocab(&self) -> usize {
        self.image.last().expect("validated: towers are nonempty").states()
    }
    /// Text vocabulary `V_Y`.
    pub fn text_vocab(&self) -> usize {
        self.text.last().expect("validated: towers are nonempty").states()
    }
    /// Number of tokens of one modality (`Part::Shared` is not a modality).
    pub fn len_of(&self, part: Part) -> usize {
        match part {
            Part::Image => self.image_len(),
            _ => self.text_len(),
        }
    }
    /// Vocabulary of one modality.
    pub fn vocab_of(&self, part: Part) -> usize {
        match part {
            Part::Image => self.image_vocab(),
            _ => self.text_vocab(),
        }
    }
    /// Leaf node ids of one modality.
    pub fn leaves_of(&self, part: Part) -> &[usize] {
        match part {
            Part::Image => &self.tree.image_leaves,
            _ => &self.tree.text_leaves,
        }
    }
    /// Whether the model has a shared trunk.
    pub fn has_trunk(&self) -> bool {
        !self.shared.is_empty()
    }
}

impl From<&Level> for LevelFile {
    fn from(level: &Level) -> Self {
        LevelFile {
            transitions: level
                .transitions
                .iter()
                .map(|m| (0..m.nrows()).map(|r| m.row(r).iter().copied().collect()).collect())
                .collect(),
        }
    }
}

fn validate_prior(prior: &[f64]) -> Result<Vec<f64>, ModelError> {
    if prior.is_empty() {
        return Err(ModelError::EmptyPrior);
    }
    if let Some((index, &value)) = prior.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(ModelError::BadPriorEntry { index, value });
    }
    let sum: f64 = prior.iter().sum();
    if (sum - 1.0).abs() > tolerance::ROW_SUM {
        return Err(ModelError::PriorSum { sum });
    }
    Ok(prior.iter().map(|p| p / sum).collect())
}

/// Validates one part's levels, chaining alphabets from `parent_states`.
fn validate_part(
    part: Part,
    levels: &[LevelFile],
    parent_states: usize,
    may_be_empty: bool,
) -> Result<Vec<Level>, ModelError> {
    if levels.is_empty() && !may_be_empty {
        return Err(ModelError::EmptyTower { part });
    }
    let mut expected_rows = parent_states;
    let mut out = Vec::with_capacity(levels.len());
    for (level, file) in levels.iter().enumerate() {
        if file.transitions.is_empty() {
            return Err(ModelError::EmptyLevel { part, level });
        }
        let mut level_states = None;
        let mut transitions = Vec::with_capacity(file.transitions.len());
        for (position, rows) in file.transitions.iter().enumerate() {
            let at = |row: usize| (part, level, position, row);
            if rows.is_empty() || rows[0].is_empty() {
                return Err(ModelError::EmptyMatrix { part, level, position });
            }
            if rows.len() != expected_rows {
                return Err(ModelError::RowCount { part, level, position, rows: rows.len(), expected: expected_rows });
            }
            let cols = *level_states.get_or_insert(rows[0].len());
            let mut matrix = DMatrix::zeros(rows.len(), cols);
            for (row, entries) in rows.iter().enumerate() {
                let (part, level, position, row) = at(row);
                if entries.len() != cols {
                    return Err(ModelError::RowLength {
                        part,
                        level,
                        position,
                        row,
                        cols: entries.len(),
                        expected: cols,
                    });
                }
                if let Some((col, &value)) = entries.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
                    return Err(ModelError::BadEntry { part, level, position, row, col, value });
                }
                let sum: f64 = entries.iter().sum();
                if (sum - 1.0).abs() > tolerance::ROW_SUM {
                    return Err(ModelError::RowSum { part, level, position, row, sum });
                }
                for (col, v) in entries.iter().enumerate() {
                    matrix[(row, col)] = v / sum;
                }
            }
            transitions.push(matrix);
        }
        expected_rows = level_states.expect("a nonempty level has a first matrix");
        out.push(Level { transitions });
    }
    Ok(out)
}

impl Tree {
    fn build(root_states: usize, shared: &[Level], image: &[Level], text: &[Level]) -> Tree {
        let mut tree = Tree {
            nodes: vec![Node { parent: None, children: vec![], states: root_states, transition: None }],
            image_leaves: vec![],
            text_leaves: vec![],
            trunk_leaves: vec![],
            offsets: vec![],
            total_states: 0,
            leaf_slot: vec![],
        };
        // Depth-first, so that each subtree's leaves come out left to right.
        let mut trunk_leaves = vec![];
        tree.grow(0, Part::Shared, shared, 0, &mut trunk_leaves);
        for &t in &trunk_leaves {
            let mut leaves = vec![];
            tree.grow(t, Part::Image, image, 0, &mut leaves);
            tree.image_leaves.extend(leaves);
        }
        for &t in &trunk_leaves {
            let mut leaves = vec![];
            tree.grow(t, Part::Text, text, 0, &mut leaves);
            tree.text_leaves.extend(leaves);
        }
        tree.trunk_leaves = trunk_leaves;
        tree.reorder_preorder();
        let mut offset = 0;
        for node in &tree.nodes {
            tree.offsets.push(offset);
            offset += node.states;
        }
        tree.total_states = offset;
        tree.leaf_slot = vec![None; tree.nodes.len()];
        for (part, leaves) in [(Part::Image, &tree.image_leaves), (Part::Text, &tree.text_leaves)] {
            for (position, &u) in leaves.iter().enumerate() {
                tree.leaf_slot[u] = Some((part, position));
            }
        }
        tree
    }

    /// Adds `levels[level..]` below node `u`; pushes the subtree's leaves (or `u` itself when no
    /// level is left) onto `leaves`, left to right.
    fn grow(&mut self, u: usize, part: Part, levels: &[Level], level: usize, leaves: &mut Vec<usize>) {
        let Some(this) = levels.get(level) else {
            leaves.push(u);
            return;
        };
        for position in 0..this.children() {
            let child = self.nodes.len();
            self.nodes.push(Node {
                parent: Some(u),
                children: vec![],
                states: this.states(),
                transition: Some(TransitionId { part, level, position }),
            });
            self.nodes[u].children.push(child);
            self.grow(child, part, levels, level + 1, leaves);
        }
    }

    /// Renumbers nodes in depth-first pre-order from the root (the trunk's image subtrees were
    /// appended after the whole trunk, so the construction order is not yet pre-order).
    fn reorder_preorder(&mut self) {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0];
        while let Some(u) = stack.pop() {
            order.push(u);
            stack.extend(self.nodes[u].children.iter().rev());
        }
        let mut new_id = vec![0; self.nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = new;
        }
        let mut nodes: Vec<Node> = order.iter().map(|&old| self.nodes[old].clone()).collect();
        for node in &mut nodes {
            node.parent = node.parent.map(|p| new_id[p]);
            for c in &mut node.children {
                *c = new_id[*c];
            }
        }
        self.nodes = nodes;
        for list in [&mut self.image_leaves, &mut self.text_leaves, &mut self.trunk_leaves] {
            for u in list.iter_mut() {
                *u = new_id[*u];
            }
        }
    }

    /// The states of node `u` in a flat per-node buffer.
    pub fn span(&self, u: usize) -> std::ops::Range<usize> {
        self.offsets[u]..self.offsets[u] + self.nodes[u].states
    }
}
