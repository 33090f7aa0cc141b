"""The built-in text classifier: TF-IDF features and a logistic regression (scikit-learn).

Pure functions, no database: :func:`train` fits a model on (text, label) pairs, :func:`predict` gives
each text its most probable label and that probability (the prediction's score; a low maximum
probability is an uncertain prediction, which is what active learning labels first).

Models are stored as pickled bytes. Unpickling runs code, so :func:`dumps` signs the bytes with
HMAC-SHA256 under the server's secret key and :func:`loads` refuses any bytes whose signature does
not verify: only a model this server wrote is ever loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from workspace.tenancy.errors import Invalid, ServiceError

__all__ = ["Model", "train", "predict", "dumps", "loads", "sign", "MIN_EXAMPLES", "MAX_TEXT_CHARS"]

MIN_EXAMPLES = 4  # labeled texts needed before a model is worth training
MAX_TEXT_CHARS = 20_000  # of one text, for training and prediction (a long document's head is enough)
_MAGIC = b"WSCLF1"


@dataclass
class Model:
    pipeline: Pipeline
    classes: tuple[str, ...]
    examples: int
    sklearn_version: str


def _clip(texts: Sequence[str]) -> list[str]:
    return [t[:MAX_TEXT_CHARS] for t in texts]


def train(texts: Sequence[str], labels: Sequence[str], *, seed: int = 0) -> Model:
    """Fit a model, or Invalid with what is missing (too few examples, a single class)."""
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    counts = Counter(labels)
    if len(texts) < MIN_EXAMPLES:
        raise Invalid(f"Only {len(texts)} labeled text{'s' if len(texts) != 1 else ''} so far; the classifier needs "
                      f"at least {MIN_EXAMPLES} submitted or accepted annotations to train. Label a few more tasks.")
    if len(counts) < 2:
        only = next(iter(counts))
        raise Invalid(f"Every labeled text so far is \u201c{only}\u201d; the classifier needs examples of at least two "
                      "choices to learn to tell them apart. Label some tasks with another choice.")
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000,
                                  strip_accents="unicode", lowercase=True)),
        ("clf", LogisticRegression(max_iter=1000, C=4.0, random_state=seed)),
    ])
    with threadpool_limits(limits=1):  # BLAS threads fighting the worker's threads make a fit 50x slower
        pipeline.fit(_clip(texts), list(labels))
    classes = tuple(str(c) for c in pipeline.classes_)
    return Model(pipeline=pipeline, classes=classes, examples=len(texts), sklearn_version=sklearn.__version__)


def predict(model: Model, texts: Sequence[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) for each text, the most probable label first."""
    if not texts:
        return []
    with threadpool_limits(limits=1):
        probabilities = model.pipeline.predict_proba(_clip(texts))
    out: list[tuple[str, float]] = []
    for row in probabilities:
        best = int(row.argmax())
        out.append((model.classes[best], float(row[best])))
    return out


def sign(secret: str, blob: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), _MAGIC + blob, hashlib.sha256).hexdigest()


def dumps(model: Model, secret: str) -> tuple[bytes, str]:
    """The model's bytes and their signature."""
    buffer = io.BytesIO()
    pickle.dump(model, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    blob = buffer.getvalue()
    return blob, sign(secret, blob)


def loads(blob: bytes | None, signature: str, secret: str) -> Model:
    """The model this server stored, or a ServiceError: bytes that are missing, not signed by this
    server's key, or written by another scikit-learn version are never unpickled."""
    if not blob:
        raise ServiceError("The classifier has not been trained yet: train it first (it needs labeled tasks).")
    if not signature or not hmac.compare_digest(sign(secret, blob), signature):
        raise ServiceError("The stored classifier model does not carry this server's signature (was the secret "
                           "key changed?); train the classifier again.")
    model = pickle.loads(blob)  # noqa: S301 - signed by this server above
    if not isinstance(model, Model):
        raise ServiceError("The stored classifier model is not readable; train the classifier again.")
    if model.sklearn_version != sklearn.__version__:
        raise ServiceError(f"The classifier was trained with scikit-learn {model.sklearn_version} and this server "
                           f"runs {sklearn.__version__}; train the classifier again.")
    return model
