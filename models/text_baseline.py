"""TF-IDF + logistic regression: the cheap text baseline every fine-tuned encoder must beat.

scikit-learn fits it; prediction is re-implemented with numpy/scipy from the saved JSON
(vocabulary, idf, coefficients), so a saved model is plain text and loading never unpickles.
Both paths share `analyze` (one function turns a text into its terms), which is what makes the
JSON predictor give the same numbers as the scikit-learn objects it was read from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from models.artifacts import ArtifactError, read_artifact, write_artifact
from models.tasks import TargetEncoder
from models.text_classifier import OUTPUTS, Output, clean_text

ARTIFACT_KIND = "tfidf_linear"
_FILE = "tfidf_logreg.json"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default: words of 2+ characters
_MIN_DF = 2  # a term seen in one training text only cannot generalise
# Inverse regularisation strengths tried by cross-validation when no C is given.
C_GRID: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
_CV_FOLDS = 5
_MAX_ITER = 2000


def analyze(text: Any) -> list[str]:
    """Lower-cased words of the cleaned text, then every pair of neighbours (1-2 grams)."""
    words = _TOKEN.findall(clean_text(text).lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


class FittedTfidfModel:
    """TF-IDF features (sublinear tf, l2-normalised) scored by a linear model, from arrays."""

    def __init__(
        self,
        terms: Sequence[str],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        target: TargetEncoder,
        c: float,
    ) -> None:
        rows = 1 if target.task == "binary" else target.n_classes
        idf, coef = np.asarray(idf, dtype=np.float64), np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        if (
            idf.shape != (len(terms),)
            or coef.shape != (rows, len(terms))
            or intercept.shape != (rows,)
        ):
            raise ValueError(
                f"inconsistent TF-IDF model: {len(terms)=} {idf.shape=} {coef.shape=} "
                f"{intercept.shape=} for {target.task=}"
            )
        self.terms = list(terms)
        self.vocabulary = {term: i for i, term in enumerate(self.terms)}
        self.idf, self.coef, self.intercept = idf, coef, intercept
        self.target = target
        self.c = c

    def n_params(self) -> int:
        """Learned weights: one coefficient per term and output, plus the intercepts."""
        return int(self.coef.size + self.intercept.size)

    def transform(self, texts: Sequence[Any]) -> csr_matrix:
        """[n, V] TF-IDF rows: (1 + log tf) * idf, each row scaled to unit length."""
        indptr, indices, data = [0], [], []
        for text in texts:
            ids = [self.vocabulary[t] for t in analyze(text) if t in self.vocabulary]
            columns, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
            weights = (1.0 + np.log(counts)) * self.idf[columns]
            norm = np.sqrt(weights @ weights)
            indices.append(columns)
            data.append(weights / norm if norm > 0 else weights)
            indptr.append(indptr[-1] + len(columns))
        return csr_matrix(
            (
                np.concatenate(data) if data else np.empty(0),
                np.concatenate(indices) if indices else np.empty(0, dtype=np.int64),
                np.asarray(indptr),
            ),
            shape=(len(indptr) - 1, len(self.terms)),
        )

    def predict_texts(
        self, texts: Sequence[Any], *, output: Output = "proba", batch_size: int = 4096
    ) -> np.ndarray:
        """Binary: [n] P(positive) or log-odds; multiclass: [n, C] probabilities or logits.

        Texts are scored `batch_size` at a time so the sparse matrix stays small.
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}: {output=}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1: {batch_size=}")
        texts = list(texts)  # positional slices, whatever the caller's index
        parts = [
            self.transform(texts[i : i + batch_size]) @ self.coef.T + self.intercept
            for i in range(0, len(texts), batch_size)
        ]
        logits = np.vstack(parts) if parts else np.empty((0, len(self.intercept)))
        if self.target.task == "binary":
            log_odds = logits[:, 0]
            return expit(log_odds) if output == "proba" else log_odds
        return softmax(logits, axis=1) if output == "proba" else logits

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (floats survive JSON exactly, so reloaded scores are identical)."""
        return {
            "terms": self.terms,
            "idf": self.idf.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "classes": list(self.target.classes),
            "target": self.target.to_dict(),
            "c": self.c,
        }

    def save(self, folder: Path) -> Path:
        """Write a verified artifact folder holding one JSON file."""
        payload = json.dumps(self.to_dict(), allow_nan=False).encode("utf-8")
        manifest = {"kind": ARTIFACT_KIND, "target": self.target.to_dict()}
        return write_artifact(Path(folder), {_FILE: payload}, manifest)

    @classmethod
    def load(cls, folder: Path, legacy_kind: str | None = None) -> FittedTfidfModel:
        """Read an artifact written by `save`, after its sha256 check. `legacy_kind`: also
        accept an older artifact whose manifest names this app-level kind."""
        manifest, files = read_artifact(Path(folder))
        accepted = (ARTIFACT_KIND, legacy_kind or ARTIFACT_KIND)
        if manifest.get("kind") not in accepted or _FILE not in files:
            raise ArtifactError(f"not a TF-IDF artifact: kind={manifest.get('kind')!r}")
        data = json.loads(files[_FILE])
        return cls(
            terms=data["terms"],
            idf=np.asarray(data["idf"]),
            coef=np.asarray(data["coef"]),
            intercept=np.asarray(data["intercept"]),
            target=TargetEncoder.from_dict(data["target"]),
            c=float(data["c"]),
        )


def make_vectorizer() -> TfidfVectorizer:
    """The scikit-learn vectorizer that `FittedTfidfModel.transform` reproduces."""
    return TfidfVectorizer(analyzer=analyze, min_df=_MIN_DF, sublinear_tf=True)


def fit_tfidf_logreg(
    train_texts: Sequence[Any],
    y_train_idx: np.ndarray,
    target: TargetEncoder,
    seed: int = 0,
    *,
    c: float | None = None,
    threads: int = 1,
) -> FittedTfidfModel:
    """Fit TF-IDF (1-2 grams, min_df 2, sublinear tf) + logistic regression.

    `y_train_idx` are class indices from `target.encode` (binary: 1 = positive). Without `c`
    the regularisation is chosen by stratified 5-fold log-loss over `C_GRID`, so the baseline
    the transformer is compared with is tuned, not a straw man.
    """
    y = _check_inputs(train_texts, y_train_idx, target)
    if c is not None and not c > 0:
        raise ValueError(f"c must be positive: {c=}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1: {threads=}")
    vectorizer = make_vectorizer()
    x = vectorizer.fit_transform(list(train_texts))
    with threadpool_limits(threads):
        chosen = c if c is not None else _choose_c(x, y, seed)
        model = _logreg(chosen, seed).fit(x, y)
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    return FittedTfidfModel(
        terms=terms,
        idf=vectorizer.idf_,
        coef=model.coef_,
        intercept=model.intercept_,
        target=target,
        c=float(chosen),
    )


def _check_inputs(texts: Sequence[Any], y_idx: np.ndarray, target: TargetEncoder) -> np.ndarray:
    if target.task not in ("binary", "multiclass"):
        raise ValueError(f"TF-IDF + logistic regression needs a classification {target.task=}")
    y = np.asarray(y_idx)
    if len(texts) == 0 or y.shape != (len(texts),):
        raise ValueError(f"need one label per text: {len(texts)=} {y.shape=}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= target.n_classes:
        raise ValueError(f"labels must be class indices 0..{target.n_classes - 1}: {y.dtype=}")
    missing = sorted(set(range(target.n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise ValueError(f"every class needs training texts; none for class indices {missing}")
    return y.astype(np.int64)


def _logreg(c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=_MAX_ITER, random_state=seed)


def _choose_c(x: csr_matrix, y: np.ndarray, seed: int) -> float:
    """C with the lowest out-of-fold log-loss; too few texts per class -> the middle of the grid."""
    folds = min(_CV_FOLDS, int(np.bincount(y).min()))
    if folds < 2:
        return C_GRID[len(C_GRID) // 2]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    losses = []
    for c in C_GRID:
        proba = np.zeros((len(y), int(y.max()) + 1))
        for train, held in splitter.split(x, y):
            proba[held] = _logreg(c, seed).fit(x[train], y[train]).predict_proba(x[held])
        losses.append(log_loss(y, proba, labels=np.arange(proba.shape[1])))
    return C_GRID[int(np.argmin(losses))]
