"""Exact inference and the exact theory of contrastive (CLIP) pre-training on Joint Generative
Hierarchical Models. Every quantity is exact in float64 (belief propagation, or enumeration
where the model is small enough); bad input raises ValueError with one clear message."""

from os import PathLike
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

Tokens = Union[npt.NDArray[np.integer], Sequence[Sequence[int]]]
"""An integer array [B, L] of token rows (any integer dtype; lists are converted)."""

class Model:
    """A JGHM: root z ~ π, an optional shared trunk, an image tower with leaves x and a text
    tower with leaves y; p(x, y) = Σ_z π(z) p(x | z) p(y | z) (through the trunk if any)."""

    @staticmethod
    def load(path: Union[str, PathLike]) -> "Model":
        """Reads and validates a model file (JSON). FileNotFoundError/OSError, or ValueError."""
    @staticmethod
    def from_json(text: str) -> "Model":
        """Parses and validates a model from its JSON text."""
    @staticmethod
    def random(
        states: int,
        children: int,
        depth: int,
        *,
        text_children: Optional[int] = None,
        text_depth: Optional[int] = None,
        vocab: Optional[int] = None,
        shared_depth: int = 0,
        shared_children: Optional[int] = None,
        flip: float = 0.3,
        scale: float = 1.0,
        seed: int = 1,
    ) -> "Model":
        """The standard random family, as `jghm model random` with the same options:
        Ψ = (1 - ε) P + ε R, P a random permutation, R softmax of Gaussian logits of scale s."""
    def to_json(self) -> str:
        """The model as JSON text (the file format of `jghm`)."""
    def save(self, path: Union[str, PathLike]) -> None:
        """Writes the model as JSON to path, atomically."""
    def shape(self) -> Dict[str, Any]:
        """The shape (per part, each level's [children, states]), as `jghm model check --json`."""
    @property
    def image_len(self) -> int:
        """Number of image tokens n_x."""
    @property
    def text_len(self) -> int:
        """Number of text tokens n_y."""
    @property
    def image_vocab(self) -> int:
        """Image tokens are 0..image_vocab."""
    @property
    def text_vocab(self) -> int:
        """Text tokens are 0..text_vocab."""
    @property
    def root_states(self) -> int:
        """Number of root states S_0."""
    @property
    def prior(self) -> npt.NDArray[np.float64]:
        """The root prior π(z), length S_0."""
    def sample(self, n: int, seed: int = 0) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """n i.i.d. pairs (x, y) ~ p(x, y): images [n, n_x], texts [n, n_y]; the pairs of
        `jghm sample --n N --seed SEED`."""
    def root_posterior(self, part: str, tokens: Tokens) -> npt.NDArray[np.float64]:
        """p(z = a | x_i) = π(a) p(x_i | a) / p(x_i) for a batch of "image" or "text" rows: [B, S_0]."""
    def log_likelihood(self, part: str, tokens: Tokens) -> npt.NDArray[np.float64]:
        """log p(x_i) or log p(y_i) of a batch: [B] (-inf for probability zero)."""
    def log_joint(self, images: Tokens, texts: Tokens) -> npt.NDArray[np.float64]:
        """log p(x_i, y_i) of pairs: [B] (-inf for probability zero)."""
    def pmi(self, images: Tokens, texts: Tokens) -> npt.NDArray[np.float64]:
        """PMI(x_i, y_i) = log p(x_i, y_i) - log p(x_i) - log p(y_i) of pairs: [B]."""
    def information(self) -> Dict[str, Any]:
        """I(X; Y), H(X), H(Y), H(Z), I(Z; X), I(Z; Y) exactly (nats), as `jghm info --exact --json`."""
    def mutual_information(self) -> float:
        """I(X; Y) = Σ p(x, y) log p(x, y) / (p(x) p(y)), exactly (nats)."""
    def entropy(self, part: str) -> float:
        """H(X) (part "image") or H(Y) (part "text"), exactly (nats)."""
    def enumerate_images(self) -> npt.NDArray[np.int64]:
        """Every image of positive probability, lexicographic: [|X|, n_x] (rows of score matrices)."""
    def enumerate_texts(self) -> npt.NDArray[np.int64]:
        """Every text of positive probability, lexicographic: [|Y|, n_y] (columns of score matrices)."""
    def probabilities(self, part: str) -> npt.NDArray[np.float64]:
        """p(x) or p(y) of the enumerated sequences, in the enumeration's order."""
    def pmi_matrix(self) -> npt.NDArray[np.float64]:
        """PMI(x_i, y_j) over every enumerated pair: [|X|, |Y|], the optimal score matrix."""
    @property
    def sha256(self) -> str:
        """SHA-256 of the model's JSON file (of the file loaded, or of what save writes)."""
    def export(self, path: Union[str, PathLike], n: Optional[int] = None, *, seed: int = 0,
               hidden: bool = False, all: bool = False) -> None:
        """Writes n sampled pairs with their exact quantities (or, with all=True, every sequence
        with the PMI matrix) as safetensors, byte for byte `jghm export`."""
    def evaluate_scores(self, path: Union[str, PathLike], *, set: Optional[Union[str, PathLike]] = None,
                        similarity: Optional[str] = None, logit_scale: Optional[float] = None, k: int = 4,
                        block: int = 1024, prompts: int = 64, exact: bool = False) -> Dict[str, Any]:
        """`jghm eval --scores PATH --json`: excess risks (T4) in both directions with their
        standard errors (0 when exact), finite-K loss, zero-shot against Bayes, PMI correlation."""
    def evaluate_embeddings(self, images: npt.ArrayLike, texts: npt.ArrayLike, image_embeddings: npt.ArrayLike,
                            text_embeddings: npt.ArrayLike, *, similarity: str = "dot", logit_scale: float = 1.0,
                            pairs: bool = False, roots: Optional[Sequence[int]] = None, k: int = 4,
                            block: int = 1024, prompts: int = 64) -> Dict[str, Any]:
        """evaluate_scores for embeddings in memory: S = logit_scale * <f(x), g(y)> (cosine: unit
        vectors); exact when images and texts cover every sequence of an enumerable model, Monte
        Carlo on the rows as pairs (pairs=True) otherwise."""
    def clip_excess_risk(self, scores: npt.ArrayLike, batch: Optional[int] = None) -> Dict[str, Any]:
        """The exact CLIP risk of a score matrix S[i, j] = S(x_i, y_j) [|X|, |Y|]: per direction
        loss_* = ℓ_∞(S), optimum_* = ℓ_∞(PMI) = -I(X; Y), excess_* = ℓ_∞(S) - ℓ_∞(PMI),
        kl_* = E_A KL(P_{C|A} ‖ Q^S_{C|A}); excess_risk (mean of both directions),
        mutual_information; with batch=K also loss_K_*, optimum_K_*, excess_K_*."""
    def sufficiency_gap(self, side: str, statistic: Union[str, npt.ArrayLike]) -> Dict[str, Any]:
        """Suff = E_A KL(P_{C|A} ‖ P_{C|T}) = I(A; C) - I(T; C) of a statistic T of side A:
        a built-in name (as `jghm sufficiency --statistic`), one label per enumerated sequence
        (1-D integers), or one embedding row per sequence (2-D floats)."""
