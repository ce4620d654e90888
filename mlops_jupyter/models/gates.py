"""Promotion gates: small functions that say whether a version may take an alias.

A gate takes a ``Promotion`` and returns a ``Verdict``. ``DEFAULT_GATES`` is the list
``mlops.promote`` runs; append your own to it (or pass ``gates=``) to add a check. Every
door — Python, magics, widgets, CLI, REST — goes through ``api.promote``, so no door can
skip a gate.
"""

from dataclasses import dataclass, field

# Metric names whose direction we can guess when a model does not say; lower is better for the rest.
_HIGHER_IS_BETTER = ("auc", "roc_auc", "accuracy", "f1", "r2", "score", "precision", "recall", "average_precision")
_LOWER_IS_BETTER = ("rmse", "mse", "mae", "loss", "log_loss", "error", "mape")


@dataclass
class Promotion:
    model: dict  # registered model row: name, primary_metric, higher_is_better
    candidate: dict  # the version being promoted
    current: dict | None  # the version holding the alias now, if any
    alias: str


@dataclass
class Verdict:
    gate: str
    passed: bool
    message: str

    def as_dict(self):
        return {"gate": self.gate, "passed": self.passed, "message": self.message}


def primary_metric(model, metrics):
    """``(name, higher_is_better)`` of the metric to compare, or ``(None, None)`` if none fits."""
    name = model.get("primary_metric")
    if name is None:
        known = [m for m in (*_HIGHER_IS_BETTER, *_LOWER_IS_BETTER) if m in metrics]
        if len(metrics) == 1:
            name = next(iter(metrics))
        elif known:
            name = known[0]
        else:
            return None, None
    higher = model.get("higher_is_better")
    if higher is None:
        higher = not any(name == m or name.endswith(("_" + m, "/" + m)) for m in _LOWER_IS_BETTER)
    return name, higher


@dataclass
class MetricNotWorse:
    """Refuse to give ``aliases`` to a version whose primary metric is worse than the holder's."""

    aliases: tuple = field(default=("production",))

    def __call__(self, promotion):
        gate = "metric_not_worse"
        if promotion.alias not in self.aliases:
            return Verdict(gate, True, f"not applied to {promotion.alias!r}")
        if promotion.current is None:
            return Verdict(gate, True, f"no version holds {promotion.alias!r} yet")
        metric, higher = primary_metric(promotion.model, promotion.candidate["metrics"] or promotion.current["metrics"])
        if metric is None:
            return Verdict(gate, True, "no primary metric recorded to compare; set one with primary_metric=")
        new = promotion.candidate["metrics"].get(metric)
        old = promotion.current["metrics"].get(metric)
        holder = f"{promotion.alias} (v{promotion.current['version']})"
        if old is None:
            return Verdict(gate, True, f"{holder} has no {metric!r} to compare with")
        if new is None:
            return Verdict(gate, False, f"v{promotion.candidate['version']} has no {metric!r}; {holder} has {old:g}")
        worse = new < old if higher else new > old
        direction = "higher" if higher else "lower"
        comparison = f"{metric} {new:g} vs {old:g} for {holder}, {direction} is better"
        return Verdict(gate, not worse, ("worse: " if worse else "not worse: ") + comparison)


DEFAULT_GATES = [MetricNotWorse()]
