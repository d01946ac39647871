"""The survey retraining pipeline: landed responses → features → model → held-out metrics.

Survey responses land as CSV files under one prefix per tenant and date (columns:
respondent_id, q1..q5 on a 1-5 scale, tenure_months, plan, churned). The pipeline predicts
`churned` with a logistic regression trained by gradient descent, evaluates it on a held-out
split chosen by hashing the respondent id (stable across reruns), and logs accuracy, AUC and
row counts as KFP metrics. The components use only the standard library, so they run in any
Python image and under kfp.local without installing anything.

Each component body is shipped to the executor as source: imports live inside the functions.
KFP reads the annotations at runtime, so this module must not use `from __future__ import annotations`.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

BASE_IMAGE = "python:3.11-slim"


@dsl.component(base_image=BASE_IMAGE)
def load_responses(responses_uri: str, landing_root: str, responses: Output[Dataset]) -> int:
    """Concatenate every CSV under `responses_uri` (gs://bucket/prefix/) into one dataset.

    With `landing_root` set (the local embedded default), gs://BUCKET/PREFIX is read from
    LANDING_ROOT/BUCKET/PREFIX; the resolved path must stay inside the landing root.
    """
    import csv
    import io
    import os

    if not responses_uri.startswith("gs://"):
        raise ValueError("responses_uri must be a gs:// URI")
    bucket, _, prefix = responses_uri[len("gs://") :].partition("/")
    texts: list[str] = []
    if landing_root:
        root = os.path.realpath(landing_root)
        folder = os.path.realpath(os.path.join(root, bucket, prefix))
        if os.path.commonpath([root, folder]) != root:
            raise ValueError("responses_uri escapes the landing root")
        found = [os.path.join(top, name) for top, _, names in os.walk(folder) for name in names]
        for path in sorted(found):
            if path.endswith(".csv"):
                with open(path, encoding="utf-8") as handle:
                    texts.append(handle.read())
    else:
        from google.cloud.storage import Client

        client = Client()
        for blob in sorted(client.list_blobs(bucket, prefix=prefix), key=lambda b: b.name):
            if blob.name.endswith(".csv"):
                texts.append(blob.download_as_text())

    header: list[str] | None = None
    rows: list[list[str]] = []
    for text in texts:
        reader = csv.reader(io.StringIO(text))
        file_header = next(reader, None)
        if file_header is None:
            continue
        if header is None:
            header = file_header
        elif file_header != header:
            raise ValueError("CSV files under the prefix have different columns")
        rows.extend(row for row in reader if row)
    if header is None or not rows:
        raise ValueError("no survey responses found under responses_uri")
    with open(responses.path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    responses.metadata["rows"] = len(rows)
    return len(rows)


@dsl.component(base_image=BASE_IMAGE)
def build_features(responses: Input[Dataset], test_percent: int, features: Output[Dataset]) -> None:
    """Scale answers to [0, 1], one-hot the plan, and tag each row train or test by id hash."""
    import csv
    import hashlib
    import json

    plans = ["basic", "pro", "enterprise"]
    examples = []
    with open(responses.path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            answers = [(float(row[f"q{i}"]) - 1.0) / 4.0 for i in range(1, 6)]
            tenure = min(float(row["tenure_months"]), 60.0) / 60.0
            plan = [1.0 if row["plan"] == name else 0.0 for name in plans]
            bucket = int(hashlib.sha256(row["respondent_id"].encode()).hexdigest(), 16) % 100
            examples.append(
                {
                    "x": [*answers, tenure, *plan],
                    "y": int(row["churned"]),
                    "split": "test" if bucket < test_percent else "train",
                }
            )
    with open(features.path, "w", encoding="utf-8") as out:
        json.dump(examples, out)
    features.metadata["examples"] = len(examples)


@dsl.component(base_image=BASE_IMAGE)
def train_model(features: Input[Dataset], epochs: int, learning_rate: float, model: Output[Model]) -> None:
    """Fit a logistic regression by full-batch gradient descent on the train split."""
    import json
    import math

    with open(features.path, encoding="utf-8") as handle:
        train = [e for e in json.load(handle) if e["split"] == "train"]
    if not train:
        raise ValueError("the train split is empty")
    width = len(train[0]["x"])
    weights = [0.0] * width
    bias = 0.0
    for _ in range(epochs):
        gradient = [0.0] * width
        gradient_bias = 0.0
        for example in train:
            z = bias + sum(w * x for w, x in zip(weights, example["x"], strict=True))
            error = 1.0 / (1.0 + math.exp(-z)) - example["y"]
            gradient = [g + error * x for g, x in zip(gradient, example["x"], strict=True)]
            gradient_bias += error
        weights = [w - learning_rate * g / len(train) for w, g in zip(weights, gradient, strict=True)]
        bias -= learning_rate * gradient_bias / len(train)
    with open(model.path, "w", encoding="utf-8") as out:
        json.dump({"weights": weights, "bias": bias, "kind": "logistic-regression"}, out)
    model.metadata["framework"] = "stdlib-logistic-regression"


@dsl.component(base_image=BASE_IMAGE)
def evaluate_model(features: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> None:
    """Accuracy and ROC AUC on the held-out split."""
    import json
    import math

    with open(features.path, encoding="utf-8") as handle:
        examples = json.load(handle)
    with open(model.path, encoding="utf-8") as handle:
        fitted = json.load(handle)
    test = [e for e in examples if e["split"] == "test"]
    if not test:
        raise ValueError("the test split is empty")

    def score(x: list[float]) -> float:
        z = fitted["bias"] + sum(w * v for w, v in zip(fitted["weights"], x, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    scored = [(score(e["x"]), e["y"]) for e in test]
    correct = sum(1 for s, y in scored if (s >= 0.5) == (y == 1))
    positives = [s for s, y in scored if y == 1]
    negatives = [s for s, y in scored if y == 0]
    pairs = len(positives) * len(negatives)
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    values = {
        "accuracy": round(correct / len(test), 4),
        "auc": round(wins / pairs, 4) if pairs else 0.0,
        "rows_train": len(examples) - len(test),
        "rows_test": len(test),
    }
    for name, value in values.items():
        metrics.log_metric(name, value)
    # Also in the artifact's file: on a cluster it lands under the gs:// pipeline root, where
    # kfp-trigger's completion path reads it (the logged values stay in the metadata store).
    with open(metrics.path, "w", encoding="utf-8") as out:
        json.dump(values, out)


class SurveyOutputs(NamedTuple):
    metrics: Metrics
    model: Model


@dsl.pipeline(name="survey-retrain", description="Retrain the churn model on newly landed survey responses")
def survey_retrain(
    responses_uri: str,
    tenant: str = "",
    landing_root: str = "",
    epochs: int = 300,
    learning_rate: float = 0.5,
    test_percent: int = 25,
    run_key: str = "",
) -> SurveyOutputs:
    loaded = load_responses(responses_uri=responses_uri, landing_root=landing_root)
    features = build_features(responses=loaded.outputs["responses"], test_percent=test_percent)
    trained = train_model(features=features.outputs["features"], epochs=epochs, learning_rate=learning_rate)
    evaluated = evaluate_model(features=features.outputs["features"], model=trained.outputs["model"])
    return SurveyOutputs(metrics=evaluated.outputs["metrics"], model=trained.outputs["model"])
