"""Train a small CLIP encoder with PyTorch, then evaluate it exactly with jghm.

The same experiment as numpy_encoder.py, written for PyTorch: two towers (embedding tables of
the image and text sequences; replace them with any nn.Module over the tokens), trained on the
symmetric InfoNCE loss over pairs sampled from the model, then scored on every enumerated
pair; jghm returns the exact excess CLIP risk of that score matrix.

    pip install torch
    python examples/torch_encoder.py
"""

import numpy as np
import torch
import torch.nn.functional as F

import jghm


class Tower(torch.nn.Module):
    """Token sequences [B, L] -> embeddings [B, dim]: per-position token embeddings, summed,
    then a small MLP."""

    def __init__(self, length, vocab, dim):
        super().__init__()
        self.tokens = torch.nn.Embedding(length * vocab, dim)
        self.offsets = torch.arange(length) * vocab
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim))

    def forward(self, seqs):
        return self.mlp(self.tokens(seqs + self.offsets).sum(1))


def main(dim=32, steps=2000, batch=128, pairs=20000, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    model = jghm.Model.random(3, 2, 2, seed=1)
    images, texts = model.sample(pairs, seed=seed)
    images, texts = torch.from_numpy(images), torch.from_numpy(texts)
    f = Tower(model.image_len, model.image_vocab, dim)
    g = Tower(model.text_len, model.text_vocab, dim)
    opt = torch.optim.Adam([*f.parameters(), *g.parameters()], lr=lr)
    for _ in range(steps):
        b = torch.randint(0, pairs, (batch,))
        logits = f(images[b]) @ g(texts[b]).T
        target = torch.arange(batch)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        xs = torch.from_numpy(model.enumerate_images())
        ys = torch.from_numpy(model.enumerate_texts())
        scores = (f(xs) @ g(ys).T).double().numpy()
    report = model.clip_excess_risk(scores)
    print(f"I(X; Y)          = {report['mutual_information']:.6f} nats")
    print(f"excess CLIP risk = {report['excess_risk']:.6f} nats")
    return report


if __name__ == "__main__":
    main()
