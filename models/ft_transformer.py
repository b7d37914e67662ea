"""FT-Transformer (Gorishniy et al., 2021) from the authors' `rtdl_revisiting_models` package.

Size presets. Their measured accuracy, training time, rows/s, parameters and FLOPs per row
are in bench/results/train.json (`bench/train_bench.py --seeds 0 1 2 --budget 300`, the
credit-scoring sample, 1 CPU thread, 3 splits), quoted in README's Performance section; params
and FLOPs grow with the number of features (FLOPs roughly with its square, through attention).

| preset  | blocks x width  | lr / batch |
|---------|-----------------|------------|
| tiny    | 1 x 32, 4 heads | 1e-3 / 256 |
| small   | 2 x 64          | 5e-4 / 256 |
| default | 3 x 192         | 1e-4 / 256 |

"small" is the recommended default: as accurate as "default" on that sample at about a sixth
of its training time (bench/results/train.json).
Inference rows/s are with cache-sized CPU batches (models/tabular.py: inference_batch_rows).
"default" is the package's own `get_default_kwargs(3)`, the configuration the paper tunes.
Learning rates were chosen by a one-off sweep, not kept in bench/results (5 splits for
tiny/small, 3 for default): tiny 3e-4/1e-3/2e-3 and batch
128 all within 0.0015 ROC-AUC (1e-3 kept); small 2e-4/5e-4/1e-3 -> 0.8456/0.8475/0.8464;
default 1e-4/3e-4 -> 0.856/0.852.
"""

from __future__ import annotations

from typing import Any

import torch
from rtdl_revisiting_models import FTTransformer


def _preset(n_blocks: int, **overrides: Any) -> dict[str, Any]:
    """The package defaults for `n_blocks`, updated with our overrides.

    Merging (not passing both) matters: a key given twice raises "multiple values".
    `_is_default` only stays True for the untouched paper configuration.
    """
    kwargs = FTTransformer.get_default_kwargs(n_blocks)
    kwargs.update(overrides)
    if overrides:
        kwargs["_is_default"] = False
    return kwargs


SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": _preset(1, d_block=32, attention_n_heads=4),
    "small": _preset(2, d_block=64),
    "default": _preset(3),
}

# Training settings per preset (used by models/tabular.py); see the table above. The batch
# is the most: small data trains in smaller batches (models/tabular.default_batch_size).
TRAINING_DEFAULTS: dict[str, dict[str, float | int]] = {
    "tiny": {"lr": 1e-3, "batch_size": 256},
    "small": {"lr": 5e-4, "batch_size": 256},
    "default": {"lr": 1e-4, "batch_size": 256},
}


# What tuning may change in a preset (models/tuning.py): depth, width and the dropouts.
ARCHITECTURE_KEYS = ("n_blocks", "d_block", "attention_dropout", "ffn_dropout", "residual_dropout")


def architecture(size: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The constructor kwargs of preset `size` with tuned `overrides` (ARCHITECTURE_KEYS)."""
    if size not in SIZE_PRESETS:
        raise ValueError(f"unknown FT-Transformer size {size=}; choose from {list(SIZE_PRESETS)}")
    kwargs = dict(SIZE_PRESETS[size])
    if not overrides:
        return kwargs
    unknown = sorted(set(overrides) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise ValueError(f"unknown FT-Transformer settings {unknown}; allowed {ARCHITECTURE_KEYS}")
    kwargs.update(overrides)
    kwargs["_is_default"] = False
    blocks, width, heads = kwargs["n_blocks"], kwargs["d_block"], kwargs["attention_n_heads"]
    if not (int(blocks) >= 1 and int(width) >= heads and int(width) % heads == 0):
        raise ValueError(f"invalid FT-Transformer shape: {blocks=} {width=} ({heads} heads)")
    dropouts = [kwargs[k] for k in ("attention_dropout", "ffn_dropout", "residual_dropout")]
    if not all(0.0 <= float(d) < 1.0 for d in dropouts):
        raise ValueError(f"dropouts must be in [0, 1): {dropouts}")
    kwargs["n_blocks"], kwargs["d_block"] = int(blocks), int(width)
    return kwargs


def build_ft_transformer(
    n_cont: int,
    cat_cardinalities: list[int],
    d_out: int,
    size: str,
    overrides: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """An untrained FT-Transformer; call it as `model(x_cont or None, x_cat or None)`.

    `overrides`: tuned depth / width / dropouts over the preset (see `architecture`).
    The package wants an empty cardinality list (not None) when there are no categoricals and
    `x_cont=None` / `x_cat=None` in forward for an absent kind; `model_inputs` does that.
    """
    kwargs = architecture(size, overrides)
    cards = list(cat_cardinalities or [])
    if n_cont < 0 or d_out < 1 or any(c < 1 for c in cards):
        raise ValueError(f"invalid shape: {n_cont=} {d_out=} {cards=}")
    if n_cont == 0 and not cards:
        raise ValueError("the model needs at least one numeric or categorical feature")
    return FTTransformer(n_cont_features=n_cont, cat_cardinalities=cards, d_out=d_out, **kwargs)


def model_inputs(
    x_cont: torch.Tensor, x_cat: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Forward arguments: a feature kind with zero columns is passed as None."""
    return (x_cont if x_cont.shape[1] else None, x_cat if x_cat.shape[1] else None)
