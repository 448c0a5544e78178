"""What the shipped models' training scripts share: the learning-rate schedule and
one optimiser update."""
import math

import torch


def warmup_cosine(step, steps, lr, warmup):
    """Linear warm-up over `warmup` steps, then a cosine decay to zero at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def update(opt, model, loss, lr):
    """One step at learning rate `lr`, gradients clipped to norm 1."""
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
