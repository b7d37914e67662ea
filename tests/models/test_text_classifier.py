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
from safetensors.torch import save as save_safetensors
from transformers import BertConfig, BertModel, BertTokenizer

from models.artifacts import ArtifactError, read_artifact, write_artifact
from models.metrics import classification_metrics
from models.tasks import TargetEncoder
from models.text_classifier import (
    HEAD_FILE,
    FittedTextModel,
    MeanPooledClassifier,
    TextFitResult,
    choose_max_length,
    clean_text,
    fit_text,
    head_tail,
    layer_depths,
    layerwise_groups,
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


def make_tiny_bert(folder: Path, max_positions: int = 64) -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer, saved like a hub model folder
    (`max_positions`: the longest token sequence it accepts)."""
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
        max_position_embeddings=max_positions,
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
    assert (loaded.truncation, loaded.head_share) == ("head_tail", 0.25)

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
    assert result.model.truncation == "head_tail" and result.model.max_length == 32
    depths = layer_depths(result.model.model)
    assert sorted(set(depths.values())) == list(range(8))  # embeddings, 6 layers, head
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


def test_head_tail_keeps_the_first_and_last_tokens() -> None:
    ids = [101, *range(1, 21), 102]  # [CLS] 1..20 [SEP]
    # room 8: int(8 * 0.25) = 2 first content tokens, the last 6, the specials kept
    assert head_tail(ids, 10, 1, 1) == [101, 1, 2, 15, 16, 17, 18, 19, 20, 102]
    assert head_tail(ids, 22, 1, 1) == ids  # fits: untouched
    assert head_tail(ids, 10, 1, 1, head_share=0.5) == [101, 1, 2, 3, 4, 17, 18, 19, 20, 102]
    with pytest.raises(ValueError, match="no room"):
        head_tail(ids, 2, 1, 1)


def test_head_tail_on_the_tokenizer_is_what_the_model_and_explanations_read(
    fitted: TextFitResult,
) -> None:
    words = FILLER * 2  # 38 words, one token each
    text = " ".join(words)
    head_only = FittedTextModel(
        fitted.model.model, fitted.model.tokenizer, binary_target(), 12, "tiny", truncation="head"
    )
    both = FittedTextModel(
        fitted.model.model, fitted.model.tokenizer, binary_target(), 12, "tiny", "head_tail"
    )
    tokens = both.tokenizer.convert_ids_to_tokens(both.encode([text]).ids[0])
    assert tokens == ["[CLS]", *words[:2], *words[-8:], "[SEP]"]  # room 10: 2 + 8
    tokens = head_only.tokenizer.convert_ids_to_tokens(head_only.encode([text]).ids[0])
    assert tokens == ["[CLS]", *words[:10], "[SEP]"]
    assert list(both.token_counts([text, "great tea"])) == [12, 4]
    # the last word decides: only the head+tail model reads it
    for model in (both, head_only):
        logits = model.predict_texts([text + " awful", text + " delicious"], output="logit")
        assert (abs(logits[0] - logits[1]) > 1e-3) == (model is both)


def test_max_length_follows_the_length_distribution() -> None:
    lengths = np.arange(1, 101)  # 95th percentile 95.05 -> 96 (a multiple of 8)
    assert choose_max_length(lengths, limit=512) == 96
    assert choose_max_length(lengths, limit=64) == 64  # capped by the encoder
    assert choose_max_length(lengths, limit=512, percentile=50) == 56  # 50.5 -> 56
    assert choose_max_length(np.array([3, 4, 5]), limit=512) == 8  # never below the minimum
    assert choose_max_length(np.array([], dtype=int), limit=128) == 128
    with pytest.raises(ValueError, match="percentile"):
        choose_max_length(lengths, limit=512, percentile=0)


def test_fit_chooses_max_length_from_the_training_texts(tiny_bert: Path) -> None:
    texts, y = make_corpus(40, seed=7)
    long = " ".join(FILLER * 4)  # 76 words: longer than the tiny BERT's 64 positions
    texts = texts[:38] + [long, long + " awful"]
    result = fit_text(
        train_texts=texts,
        y_train=y,
        val_texts=texts[:10],
        y_val=y[:10],
        target=binary_target(),
        model_name_or_path=str(tiny_bert),
        max_epochs=1,
    )
    lengths = [len(t.split()) + 2 for t in texts]  # one token per word + [CLS] [SEP]
    wanted = int(np.ceil(np.percentile(lengths, 95) / 8) * 8)
    assert result.model.max_length == min(wanted, 64)
    assert result.model.truncation == "head_tail"
    assert result.truncated_share == pytest.approx(np.mean(np.array(lengths) > 64))


def test_layerwise_groups_give_lower_layers_smaller_rates(tiny_bert: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    depths = layer_depths(model)
    assert depths["bert.embeddings.word_embeddings.weight"] == 0
    assert depths["bert.encoder.layer.0.attention.self.query.weight"] == 1
    assert depths["bert.encoder.layer.1.output.dense.weight"] == 2
    assert depths["classifier.weight"] == depths["bert.pooler.dense.weight"] == 3
    groups = layerwise_groups(model, lr=1e-3, layer_lr_decay=0.5)
    assert [g["depth"] for g in groups] == sorted(g["depth"] for g in groups)
    for group in groups:
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (3 - group["depth"]))
        assert group["weight_decay"] == (0.01 if group["params"][0].ndim >= 2 else 0.0)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once


def test_a_model_saved_before_the_rule_was_recorded_loads_head_only(
    fitted: TextFitResult, tmp_path: Path
) -> None:
    folder = fitted.model.save(tmp_path / "new")
    manifest, files = read_artifact(folder)
    reserved = ("truncation", "head_share", "format_version", "versions", "created_at", "files")
    old = {k: v for k, v in manifest.items() if k not in reserved}
    old_folder = write_artifact(tmp_path / "old", files, old)
    loaded = FittedTextModel.load(old_folder)
    assert loaded.truncation == "head" and loaded.max_length == 32
    long = " ".join(FILLER * 3)
    ids = loaded.encode([long]).ids[0]
    reference = loaded.tokenizer([long], truncation=True, max_length=32)["input_ids"][0]
    assert ids == reference  # the first 30 words, as it was trained
    assert FittedTextModel.load(folder).truncation == "head_tail"


def test_the_default_head_reads_the_mean_of_the_tokens(
    fitted: TextFitResult, tmp_path: Path
) -> None:
    model = fitted.model
    assert model.pooling == "mean" and isinstance(model.model, MeanPooledClassifier)
    texts = ["the food was great", "awful tea"]
    encoded = model.encode(texts)
    with torch.inference_mode():
        for ids, text_logits in zip(
            encoded.ids, model.predict_texts(texts, output="logit"), strict=True
        ):
            hidden = model.model.encoder(input_ids=torch.tensor([ids]))[0][0]
            logits = model.model.head(hidden.mean(dim=0))  # no padding: a plain mean
            assert float(logits[1] - logits[0]) == pytest.approx(text_logits, abs=1e-5)
    folder = model.save(tmp_path / "mean")
    manifest, files = read_artifact(folder)
    assert manifest["pooling"] == "mean" and HEAD_FILE in files
    # a head that does not fit the encoder is refused by name, not loaded half-way
    wide = {"weight": torch.zeros(2, 7), "bias": torch.zeros(2)}
    reserved = ("format_version", "versions", "created_at", "files")
    kept = {k: v for k, v in manifest.items() if k not in reserved}
    bad = write_artifact(tmp_path / "bad", {**files, HEAD_FILE: save_safetensors(wide)}, kept)
    with pytest.raises(ArtifactError, match="head does not fit"):
        FittedTextModel.load(bad)
    no_head = write_artifact(
        tmp_path / "no_head", {k: v for k, v in files.items() if k != HEAD_FILE}, kept
    )
    with pytest.raises(ArtifactError, match=HEAD_FILE):
        FittedTextModel.load(no_head)


def test_a_model_saved_before_mean_pooling_keeps_the_cls_head(
    tiny_bert: Path, tmp_path: Path
) -> None:
    result = fit_tiny_text_model(tiny_bert, pooling="cls", time_budget_s=60)
    assert result.model.pooling == "cls"
    folder = result.model.save(tmp_path / "cls")
    manifest, files = read_artifact(folder)
    assert manifest["pooling"] == "cls" and HEAD_FILE not in files
    reserved = ("pooling", "format_version", "versions", "created_at", "files")
    old = write_artifact(
        tmp_path / "old", files, {k: v for k, v in manifest.items() if k not in reserved}
    )
    loaded = FittedTextModel.load(old)
    assert loaded.pooling == "cls"
    texts, _ = make_corpus(10, seed=8)
    np.testing.assert_array_equal(
        loaded.predict_texts(texts, output="logit"),
        result.model.predict_texts(texts, output="logit"),
    )
