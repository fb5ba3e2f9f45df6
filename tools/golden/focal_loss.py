"""Records torchvision's sigmoid_focal_loss and its gradient for tests/credit_risk.rs.

    pip install torch==2.15.0 torchvision==0.29.2
    python3 tools/golden/focal_loss.py tests/golden/focal_loss.json

Every case: logits (extremes included), labels, gamma and alpha (alpha < 0: no weighting, as
torchvision), the per-element losses (reduction "none") and the gradient of their mean with
respect to the logits, in float64.
"""

import json
import sys

import torch
import torchvision
from torchvision.ops import sigmoid_focal_loss

LOGITS = [-100.0, -50.0, -20.0, -5.0, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0, 20.0, 50.0, 100.0]


def case(gamma, alpha):
    logits = torch.tensor(LOGITS * 2, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0.0] * len(LOGITS) + [1.0] * len(LOGITS), dtype=torch.float64)
    losses = sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none")
    losses.mean().backward()
    return {"gamma": gamma, "alpha": alpha, "logits": logits.tolist(), "labels": labels.tolist(),
            "losses": losses.tolist(), "grad_of_mean": logits.grad.tolist()}


if __name__ == "__main__":
    document = {
        "generator": "python3 tools/golden/focal_loss.py tests/golden/focal_loss.json",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "cases": [case(g, a) for g in [0.0, 2.0] for a in [0.25, 0.75, -1.0]],
    }
    with open(sys.argv[1], "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")
