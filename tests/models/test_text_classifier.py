"""Text classifier: a tiny BERT built here trains, saves, reloads and refuses tampering.

The tiny encoder (hidden 32, 2 layers) has a vocabulary written from the words of a synthetic
sentiment corpus, so the real loading / tokenising / training code runs in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from models.artifacts import ArtifactError
from models.metrics import classification_metrics
from models.tasks import TargetEncoder
from models.text_classifier import (
    FittedTextModel,
    TextFitResult,
    clean_text,
    fit_text,
    resolve_text_model,
)

FILLER = (
    "the food box taste order coffee tea snack price bag arrived with and was it this my dog "
    "kids flavor"
).split()
POSITIVE = ("great", "delicious", "love")  # label "great"
NEGATIVE = ("awful", "stale", "broken")  # label "other", the positive class
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_corpus(n: int, seed: int) -> tuple[list[str], pd.Series]:
    """Filler sentences with one sentiment word at a random place; the word decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        unhappy = rng.random() < 0.4
        words = list(rng.choice(FILLER, size=int(rng.integers(4, 12))))
        words.insert(
            int(rng.integers(0, len(words) + 1)), rng.choice(NEGATIVE if unhappy else POSITIVE)
        )
        texts.append(" ".join(words))
        labels.append("other" if unhappy else "great")
    return texts, pd.Series(labels)


def make_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer, saved like a hub model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + FILLER + list(POSITIVE + NEGATIVE)) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def binary_target() -> TargetEncoder:
    return TargetEncoder(task="binary", classes=("great", "other"), positive_class="other")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def fit_tiny_text_model(folder: Path, **options: Any) -> TextFitResult:
    """The tiny BERT in `folder` fine-tuned on the toy corpus (the settings the tests share)."""
    train_texts, y_train = make_corpus(320, seed=1)
    val_texts, y_val = make_corpus(80, seed=2)
    return fit_text(
        train_texts=train_texts,
        y_train=y_train,
        val_texts=val_texts,
        y_val=y_val,
        target=binary_target(),
        model_name_or_path=str(folder),
        max_length=32,
        batch_size=16,
        lr=3e-3,
        max_epochs=5,
        **options,
    )


@pytest.fixture(scope="module")
def fitted(tiny_bert: Path) -> TextFitResult:
    return fit_tiny_text_model(tiny_bert, time_budget_s=120)


def test_clean_text_strips_tags_entities_and_whitespace() -> None:
    raw = "Great  tea!<br /><br />Would buy&nbsp;again &amp; again.\n&lt;br /&gt;"
    assert clean_text(raw) == "Great tea! Would buy again & again."
    assert clean_text("a < b and c > d") == "a < b and c > d"  # not a tag
    assert clean_text(None) == "" and clean_text(float("nan")) == "" and clean_text(pd.NA) == ""


def test_resolve_text_model(tiny_bert: Path, tmp_path: Path) -> None:
    packaged = Path(resolve_text_model(None))
    assert (packaged / "config.json").is_file() and (packaged / "model.safetensors").is_file()
    assert resolve_text_model(str(tiny_bert)) == str(tiny_bert.resolve())
    with pytest.raises(ValueError, match="no model folder"):
        resolve_text_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no config.json"):
        resolve_text_model(str(tmp_path))
    with pytest.raises(ValueError, match="offline"):
        resolve_text_model("payoff-test/not-a-cached-model")


def test_training_learns_the_sentiment_words(fitted: TextFitResult) -> None:
    history = fitted.loop.history
    assert history[-1].train_loss < 0.5 * history[0].train_loss
    assert fitted.loop.history[fitted.loop.best_epoch - 1].val_metric > 0.8
    test_texts, y_test = make_corpus(100, seed=3)
    proba = fitted.model.predict_texts(test_texts)
    auc = classification_metrics("binary", binary_target().encode(y_test), proba)["roc_auc"]
    assert auc > 0.8
    assert fitted.params > 10_000 and fitted.flops_per_row > 0
    assert fitted.truncated_share == 0.0  # at most 12 words + 2 specials < 32 tokens


def test_predictions_keep_input_order_and_ignore_padding(fitted: TextFitResult) -> None:
    texts = ["the food was great", "awful", "my dog and kids love this coffee tea snack bag"]
    together = fitted.model.predict_texts(texts, output="logit", batch_size=3)
    alone = np.array([fitted.model.predict_texts([t], output="logit")[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    proba = fitted.model.predict_texts(texts)
    assert proba.shape == (3,) and ((proba > 0) & (proba < 1)).all()
    np.testing.assert_allclose(np.log(proba / (1 - proba)), together, atol=1e-6)
    assert fitted.model.predict_texts([]).shape == (0,)


def test_truncated_share_counts_special_tokens(fitted: TextFitResult) -> None:
    model = FittedTextModel(fitted.model.model, fitted.model.tokenizer, binary_target(), 16, "tiny")
    fits = " ".join(["tea"] * 14)  # 14 + [CLS] + [SEP] = 16 tokens
    too_long = " ".join(["tea"] * 15)
    assert model.truncated_share([fits, too_long]) == 0.5
    assert model.truncated_share([]) == 0.0


def test_save_load_round_trip_and_tampering(fitted: TextFitResult, tmp_path: Path) -> None:
    texts, _ = make_corpus(20, seed=4)
    folder = fitted.model.save(tmp_path / "text_model")
    loaded = FittedTextModel.load(folder)
    np.testing.assert_array_equal(
        loaded.predict_texts(texts, output="logit"),
        fitted.model.predict_texts(texts, output="logit"),
    )
    assert loaded.target == fitted.model.target and loaded.max_length == 32

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        FittedTextModel.load(folder)


def test_multiclass_outputs_distributions(tiny_bert: Path) -> None:
    texts, y = make_corpus(60, seed=5)
    y = y.where(~pd.Series(texts).str.contains("love"), "fan")
    target = TargetEncoder.fit(y, task="multiclass")
    result = fit_text(
        train_texts=texts,
        y_train=y,
        val_texts=texts[:20],
        y_val=y[:20],
        target=target,
        model_name_or_path=str(tiny_bert),
        max_length=32,
        max_epochs=1,
    )
    proba = result.model.predict_texts(texts[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert result.model.predict_texts(texts[:5], output="logit").shape == (5, 3)


def test_bad_inputs_are_refused(tiny_bert: Path) -> None:
    texts, y = make_corpus(10, seed=6)
    common = dict(model_name_or_path=str(tiny_bert), val_texts=texts, y_val=y)
    with pytest.raises(ValueError, match="binary or multiclass"):
        fit_text(train_texts=texts, y_train=y, target=TargetEncoder(task="regression"), **common)
    with pytest.raises(ValueError, match="must be non-empty and match"):
        fit_text(train_texts=texts[:5], y_train=y, target=binary_target(), **common)
    with pytest.raises(ValueError, match="positions"):
        fit_text(train_texts=texts, y_train=y, target=binary_target(), max_length=65, **common)


@pytest.mark.slow
def test_packaged_minilm_loads_offline_and_predicts() -> None:
    texts = ["Delicious, will buy again.", "Stale and broken on arrival.<br />Awful."]
    y = pd.Series(["great", "other"])
    result = fit_text(
        train_texts=texts,
        y_train=y,
        val_texts=texts,
        y_val=y,
        target=binary_target(),
        max_length=32,
        batch_size=2,
        max_epochs=1,
    )
    assert "all-minilm" in result.model.base_model.lower().replace("_", "-")
    assert result.loop.rows_seen == 2  # one step
    proba = result.model.predict_texts(texts)
    assert proba.shape == (2,) and np.isfinite(proba).all()


@pytest.mark.parametrize(
    ("value", "offline"), [("1", True), ("true", True), ("0", False), ("off", False)]
)
def test_hub_offline_reads_the_variable_at_each_load(monkeypatch, value, offline) -> None:
    from models.text_classifier import _hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert _hub_offline() is offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert _hub_offline() is True
