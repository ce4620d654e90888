"""mlops-jupyter: from notebook to production in one registry.

``import mlops_jupyter as mlops`` is cheap: the API module and everything heavy behind it
load on first use of an attribute.
"""

__version__ = "0.1.0"

_API = (
    "connect", "disconnect", "current_registry", "set_experiment", "active_experiment",
    "start_run", "end_run", "active_run", "Run", "mark_crashed_runs",
    "log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags",
    "log_dataset", "log_artifact", "download_artifact",
    "get_run", "get_metric_history", "list_experiments", "search_runs",
    "register_model", "get_model_version", "load_model", "list_models", "list_versions",
    "model_history", "check_promotion", "promote", "demote", "audit", "registry_counts",
    "register_feature", "feature", "expect", "get_feature", "feature_values", "list_features",
    "training_set", "training_sets_using", "list_feature_versions", "compare_feature_versions", "materialize", "get_online_features",
    "convert", "run_pipeline", "export_pipeline", "verify_pipeline",
    "create_token", "list_tokens", "revoke_token", "served_requests",
    "lineage", "log_labels", "monitor", "unhealthy_models", "audit_report",
)
_ERRORS = ("MlopsError", "InvalidInput", "NotFound", "AlreadyExists", "GateFailed", "IntegrityError", "NoActiveRun", "StepFailed")

__all__ = [*_API, *_ERRORS, "promotion_gates"]


def __getattr__(name):
    if name in _API:
        from . import api as source
    elif name in _ERRORS:
        from . import errors as source
    elif name == "promotion_gates":
        from .models import gates

        globals()[name] = gates.DEFAULT_GATES
        return gates.DEFAULT_GATES
    else:
        raise AttributeError(f"module 'mlops_jupyter' has no attribute {name!r}")
    value = getattr(source, name)
    globals()[name] = value  # resolved once: later lookups are plain module attributes
    return value


def __dir__():
    return sorted([*globals(), *__all__])


def load_ipython_extension(shell):
    """``%load_ext mlops_jupyter``: register ``%mlops`` / ``%%mlops``; nothing else loads yet."""
    from .jupyter.magics import MlopsMagics

    magics = MlopsMagics(shell=shell, parent=shell)
    shell.register_magics(magics)
    shell.configurables.append(magics)


def _jupyter_server_extension_points():
    """Jupyter Server finds the REST API for the JupyterLab sidebar here."""
    return [{"module": "mlops_jupyter"}]


def _load_jupyter_server_extension(serverapp):
    from .jupyter.server import load

    load(serverapp)


def _jupyter_labextension_paths():
    """Where the prebuilt JupyterLab extension sits inside the package."""
    return [{"src": "labextension", "dest": "mlops-jupyter"}]
