"""What model is answering: the facts that ``GET /model-info`` of ``maskdet
serve`` returns and the dashboard's Model tab shows, from one function."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from maskdet import LABELS


@dataclass
class RegistryEntry:
    """A version of a registered model, as the URI that was served resolved to it."""

    name: str
    version: str
    aliases: list[str] = field(default_factory=list)
    run_id: str | None = None  # the run that logged the served model (the evaluation stage's)


def resolve_registry(uri: str, tracking_uri: str | None = None) -> RegistryEntry | None:
    """The registry version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``;
    None for any other URI (a run's model, a folder)."""
    if not uri.startswith("models:/"):
        return None
    import mlflow

    name, _, rest = uri[len("models:/") :].partition("/")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if "@" in name:
        name, alias = name.split("@", 1)
        found = client.get_model_version_by_alias(name, alias)
    else:
        found = client.get_model_version(name, rest.strip("/"))
    # get_model_version_by_alias answers the version's aliases too
    version = client.get_model_version(name, found.version)
    return RegistryEntry(name, str(version.version), sorted(version.aliases), version.run_id)


def model_info(predictor, registry: RegistryEntry | None = None) -> dict:
    """Which model answers and with which settings: its registry entry, the
    training run, commit and params digest it was trained from, the detector and
    its inputs, the classifier and its runtime, and the class priors."""
    meta = predictor.metadata
    settings = predictor.settings
    correction = predictor.box_correction
    return {
        "model": predictor.model_name,
        "registry": asdict(registry) if registry else None,
        "training": {
            "mlflow_run_id": meta.get("mlflow_run_id"),
            "git_commit": meta.get("git_commit"),
            "git_tree": meta.get("git_tree"),
            "params_sha256": meta.get("params_sha256"),
            "data_sha256": meta.get("data_sha256"),
            "best_epoch": meta.get("best_epoch"),
        },
        "detector": {
            "name": predictor.detector_name,
            "photo": {
                "scale": settings.photo.scale,
                "max_pixels": settings.photo.max_pixels,
                "min_face": settings.photo.min_face,
            },
            "frame": {"input": predictor.detector_input, "min_face": settings.min_face},
            "box_correction": bool(correction is not None and correction.detector == predictor.detector_name),
        },
        "classifier": {
            "backbone": meta.get("backbone"),
            "input_size": predictor.input_size,
            "runtime": predictor.runtime,
            "labels": list(LABELS),
        },
        "incorrect_share": predictor.incorrect_share,
        "class_prior": {label: round(float(predictor.trained_prior[k]), 6) for k, label in enumerate(LABELS)},
    }
