"""Automatic logging of scikit-learn fits and scores into a run, for the length of a block.

``with autolog(run, namespace):`` patches, for the block only, the ``fit``-like and ``score``
methods of the scikit-learn estimator classes already imported, the common
``sklearn.metrics`` functions (on the module and wherever the notebook's namespace holds
them) and the cross-validation helpers of ``sklearn.model_selection``; everything is put
back exactly on exit. Logging goes through :mod:`mlops_jupyter.api` only, and never breaks
the user's code: a logging failure becomes one :class:`AutologWarning` per block.

Nothing here imports scikit-learn, pandas or NumPy: if scikit-learn is not loaded yet,
``autolog`` does nothing at all.
"""

import contextlib
import copy
import functools
import numbers
import sys
import tempfile
import types
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path

from .. import api
from ..errors import InvalidInput

__all__ = ["autolog", "AutologWarning"]

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
SCORE_METHOD = "score"

METRIC_FUNCTIONS = (
    "accuracy_score",
    "balanced_accuracy_score",
    "f1_score",
    "precision_score",
    "recall_score",
    "roc_auc_score",
    "average_precision_score",
    "log_loss",
    "r2_score",
    "mean_squared_error",
    "root_mean_squared_error",
    "mean_absolute_error",
    "median_absolute_error",
    "explained_variance_score",
)

# Called at top level, these fit clones of an estimator many times: their inner fits are not
# the user's model, so they are only shielded (nothing inside them is logged).
SHIELDED_FUNCTIONS = (
    "cross_val_score",
    "cross_validate",
    "cross_val_predict",
    "learning_curve",
    "validation_curve",
    "permutation_test_score",
)

_MAX_REMEMBERED_RUNS = 64


class AutologWarning(UserWarning):
    """Something could not be logged automatically; the user's code ran unaffected."""


class _Session:
    """One active ``autolog`` block: where to log, and how deep inside scikit-learn we are."""

    def __init__(self, run, namespace, state):
        self.run = run
        self.namespace = namespace
        self.state = state
        self.depth = 0  # > 0 while inside a patched call: nested fits and scores are not logged
        self.warned = False

    def warn(self, message):
        if not self.warned:
            self.warned = True
            _warn(message)


class _RunState:
    """What was already logged into a run, kept across blocks (cells) of the same run."""

    def __init__(self):
        self.primary = None  # the class whose params get plain keys
        self.params = {}  # key -> logged text
        self.datasets = {}  # id(obj) -> weak (or, if not weak-referenceable, strong) ref
        self.tagged = False


_session = None
_run_states = OrderedDict()  # run key -> _RunState, most recently used last

# Patch plan cache: (number of loaded sklearn modules) -> [(owner, attribute, original, replacement)]
_plan_key = None
_plan = ()
_modules_seen = None  # len(sys.modules) when the plan was last checked
_wrappers = {}  # (owner, attribute, id(original)) -> (original, replacement), so wrappers are made once
_function_wrappers = {}  # id(original function) -> (original, wrapper)
_wrapper_originals = {}  # id(wrapper) -> (wrapper, original)


@contextlib.contextmanager
def autolog(run, namespace=None):
    """While the block runs, scikit-learn fits and scores are logged into ``run``; undone afterwards.

    ``run`` is an :class:`mlops_jupyter.api.Run` or a run id (None: the active run, if any);
    ``namespace`` is the notebook's namespace (IPython's ``shell.user_ns``), used to name
    datasets after the variables holding them and to swap metric functions imported by name.

    Logged into the run, for each top-level fit (nested fits made by a Pipeline, a search or
    an ensemble are not):

    * params: the estimator's ``get_params(deep=False)`` (numbers, strings, booleans and
      None as they are, anything else as its class name) and ``estimator`` = the class
      name. The first estimator that can ``predict`` gets plain keys (``C``); other
      classes, and transformers always, get keys prefixed by their class name
      (``RandomForestClassifier.n_estimators``). A param already logged with another
      value is not changed (params are fixed in a run): that is one warning, not an error;
    * metric ``training_score``: ``estimator.score(X, y)`` for a classifier or regressor
      fitted with ``y`` (prefixed like the params);
    * datasets (context ``training``): the fingerprint of ``X`` and ``y``, named after the
      namespace variable holding that very object (else ``X`` / ``y``), once per object;
    * for a ``GridSearchCV`` / ``RandomizedSearchCV``: params ``best.<param>``, metric
      ``best_cv_score`` and the artifact ``cv_results.csv``.

    And, called at top level: ``estimator.score(X, y)`` as metric ``score`` (prefixed like
    the params), and ``accuracy_score``, ``roc_auc_score``, ``mean_squared_error``… as
    ``accuracy``, ``roc_auc``, ``mean_squared_error`` (scalar results only). The tag
    ``autolog=sklearn`` marks a run something was logged into.

    Only estimator classes already imported when the block starts are patched: an estimator
    imported for the first time inside the block is not logged (import it in an earlier
    cell). ``cross_val_score`` and its siblings are shielded: the fits they make are not
    logged. Nested ``autolog`` blocks do nothing; threads are not told apart.
    """
    global _session
    if "sklearn" not in sys.modules or _session is not None:
        yield
        return
    if run is None:
        run = api.active_run()
        if run is None:
            yield
            return
    session = _Session(run, namespace, _state_for(run))
    undo = []
    _session = session
    try:
        _patch(namespace, undo)
    except Exception as error:  # never let our own set-up break the user's cell
        _session = None
        _unpatch(namespace, undo)
        _warn(f"disabled for this block: {type(error).__name__}: {error}")
    try:
        yield
    finally:
        _session = None
        _unpatch(namespace, undo)


def _warn(message):
    """Warn, pointing at the user's line rather than at this module or scikit-learn."""
    skip = (__file__, contextlib.__file__, functools.__file__)
    sklearn = sys.modules.get("sklearn")
    sklearn_folder = str(Path(sklearn.__file__).parent) if getattr(sklearn, "__file__", None) else None
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called _warn
    while frame is not None and (
        frame.f_code.co_filename in skip or (sklearn_folder and frame.f_code.co_filename.startswith(sklearn_folder))
    ):
        level, frame = level + 1, frame.f_back
    warnings.warn(f"mlops autolog: {message}", AutologWarning, stacklevel=level)


def _state_for(run):
    key = getattr(run, "id", None) or str(run)
    state = _run_states.pop(key, None) or _RunState()
    _run_states[key] = state
    while len(_run_states) > _MAX_REMEMBERED_RUNS:
        _run_states.popitem(last=False)
    return state


# ---- patching ---------------------------------------------------------------------------


def _patch(namespace, undo):
    for owner, attribute, original, replacement in _patch_plan():
        setattr(owner, attribute, replacement)
        undo.append((owner, attribute, original))
    for module_name, names, make in (
        ("sklearn.metrics", METRIC_FUNCTIONS, _metric_wrapper),
        ("sklearn.model_selection", SHIELDED_FUNCTIONS, _shield_wrapper),
    ):
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            original = module.__dict__.get(name)
            if isinstance(original, types.FunctionType):
                setattr(module, name, _function_wrapper(original, make))
                undo.append((module, name, original))
    if namespace is not None and _function_wrappers:
        originals = {key: wrapper for key, (_, wrapper) in _function_wrappers.items()}
        for name, value in list(namespace.items()):
            wrapper = originals.get(id(value))
            if wrapper is not None and _function_wrappers[id(value)][0] is value:
                namespace[name] = wrapper


def _unpatch(namespace, undo):
    for owner, attribute, original in reversed(undo):
        try:
            setattr(owner, attribute, original)
        except Exception:  # pragma: no cover - a class that refuses attributes was never patched
            pass
    undo.clear()
    if namespace is not None and _wrapper_originals:
        # Names swapped on entry, and names imported inside the block from the patched module.
        for name, value in list(namespace.items()):
            entry = _wrapper_originals.get(id(value))
            if entry is not None and entry[0] is value:
                namespace[name] = entry[1]


def _patch_plan():
    """The estimator methods to patch, recomputed only when more sklearn modules are loaded."""
    global _plan_key, _plan, _modules_seen
    if len(sys.modules) == _modules_seen:  # nothing imported since: the cheapest possible check
        return _plan
    _modules_seen = len(sys.modules)
    modules = [(name, module) for name, module in list(sys.modules.items()) if name.startswith("sklearn")]
    if len(modules) == _plan_key:
        return _plan
    base = sys.modules.get("sklearn.base")
    if base is None:
        return ()
    estimator_base = base.BaseEstimator
    mixins = tuple(getattr(base, name) for name in ("ClassifierMixin", "RegressorMixin") if hasattr(base, name))
    classes = {}
    for name, module in modules:
        if module is None or not (name == "sklearn" or name.startswith("sklearn.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and id(value) not in classes:
                classes[id(value)] = value
    plan = []
    for cls in classes.values():
        try:
            is_estimator = issubclass(cls, estimator_base)
        except TypeError:
            continue
        if not is_estimator and cls not in mixins:
            continue
        own = cls.__dict__
        attributes = [a for a in FIT_METHODS if a in own] if is_estimator else []
        if SCORE_METHOD in own:
            attributes.append(SCORE_METHOD)
        for attribute in attributes:
            original = own[attribute]
            replacement = _method_replacement(cls, attribute, original)
            if replacement is not None:
                plan.append((cls, attribute, original, replacement))
    _plan_key, _plan = len(modules), tuple(plan)
    return _plan


def _method_replacement(cls, attribute, original):
    key = (cls, attribute, id(original))
    cached = _wrappers.get(key)
    if cached is not None and cached[0] is original:
        return cached[1]
    after = _after_score if attribute == SCORE_METHOD else _after_fit
    if isinstance(original, types.FunctionType):
        replacement = _method_wrapper(original, after)
    elif isinstance(getattr(original, "fn", None), types.FunctionType) and hasattr(original, "__get__"):
        # A conditional method (sklearn's ``available_if``): same condition, wrapped function.
        replacement = copy.copy(original)
        replacement.fn = _method_wrapper(original.fn, after)
    else:
        return None
    _wrappers[key] = (original, replacement)
    return replacement


def _function_wrapper(original, make):
    cached = _function_wrappers.get(id(original))
    if cached is not None and cached[0] is original:
        return cached[1]
    wrapper = make(original)
    _function_wrappers[id(original)] = (original, wrapper)
    _wrapper_originals[id(wrapper)] = (wrapper, original)
    return wrapper


def _method_wrapper(original, after):
    """``original`` that, called at top level inside a block, runs ``after`` on what happened."""

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        session = _session
        if session is None or session.depth:
            return original(self, *args, **kwargs)
        session.depth += 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            session.depth -= 1
        _guarded(session, after, self, args, kwargs, result)
        return result

    return method


def _metric_wrapper(original):
    name = original.__name__.removesuffix("_score")

    @functools.wraps(original)
    def metric(*args, **kwargs):
        session = _session
        if session is None or session.depth:
            return original(*args, **kwargs)
        session.depth += 1
        try:
            result = original(*args, **kwargs)
        finally:
            session.depth -= 1
        _guarded(session, _after_metric, name, result)
        return result

    return metric


def _shield_wrapper(original):
    @functools.wraps(original)
    def shielded(*args, **kwargs):
        session = _session
        if session is None:
            return original(*args, **kwargs)
        session.depth += 1
        try:
            return original(*args, **kwargs)
        finally:
            session.depth -= 1

    return shielded


def _guarded(session, action, *args):
    """Run a logging step inside the session's shield; its failures become one warning."""
    session.depth += 1
    try:
        action(session, *args)
    except Exception as error:
        session.warn(f"{type(error).__name__}: {error}")
    finally:
        session.depth -= 1


# ---- what gets logged -------------------------------------------------------------------


def _after_fit(session, estimator, args, kwargs, result):
    state = session.state
    prefix = _prefix(state, type(estimator), estimator)
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    _attempt(session, _log_estimator_params, session, estimator, prefix)
    if y is not None and _is_predictor(estimator) and hasattr(estimator, "score"):
        _attempt(session, _log_training_score, session, estimator, X, y, prefix)
    if isinstance(getattr(estimator, "best_params_", None), dict):
        _attempt(session, _log_search, session, estimator, prefix)
    for data, fallback in ((X, "X"), (y, "y")):
        _attempt(session, _log_dataset, session, data, fallback)


def _attempt(session, action, *args):
    try:
        action(*args)
    except Exception as error:
        session.warn(f"{type(error).__name__}: {error}")


def _log_estimator_params(session, estimator, prefix):
    _log_params(session, {f"{prefix}{key}": value for key, value in _estimator_params(estimator).items()})


def _log_training_score(session, estimator, X, y, prefix):
    import sklearn

    # The data was just validated by fit: skip re-validating it (that costs more than the predict).
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        score = estimator.score(X, y)
    if _is_number(score):
        _log_metrics(session, {f"{prefix}training_score": score})


def _log_search(session, search, prefix):
    _log_params(session, {f"{prefix}best.{key}": _param_text(value) for key, value in search.best_params_.items()})
    best_score = getattr(search, "best_score_", None)
    if _is_number(best_score):
        _log_metrics(session, {f"{prefix}best_cv_score": best_score})
    results = getattr(search, "cv_results_", None)
    if isinstance(results, dict) and results:
        _log_cv_results(session, results, f"{prefix}cv_results.csv")


def _after_score(session, estimator, args, kwargs, result):
    if _is_number(result):
        _log_metrics(session, {f"{_prefix(session.state, type(estimator), estimator)}score": result})


def _after_metric(session, name, result):
    if _is_number(result):
        _log_metrics(session, {name: result})


def _prefix(state, cls, estimator):
    if state.primary is None and hasattr(estimator, "predict"):
        state.primary = cls
    return "" if cls is state.primary else f"{cls.__name__}."


def _is_predictor(estimator):
    base = sys.modules["sklearn.base"]
    return base.is_classifier(estimator) or base.is_regressor(estimator)


def _estimator_params(estimator):
    own = estimator.get_params(deep=False)
    params = {key: _param_text(value) for key, value in own.items() if key != "estimator"}
    if "estimator" in own:  # a meta-estimator's inner estimator; the key is taken by the class
        params["inner_estimator"] = _param_text(own["estimator"])
    params["estimator"] = type(estimator).__name__
    return params


def _param_text(value):
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool)):
        return str(value)
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(_is_named_step(item) for item in value):
        # A Pipeline's steps, a ColumnTransformer's transformers: name=Class, in order.
        return ", ".join(f"{item[0]}={item[1] if isinstance(item[1], str) else type(item[1]).__name__}" for item in value)
    return type(value).__name__


def _is_named_step(item):
    return isinstance(item, tuple) and len(item) >= 2 and isinstance(item[0], str)


def _is_number(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # a 0-d array
        item = value.item()
        return isinstance(item, numbers.Real) and not isinstance(item, bool)
    return False


def _log_params(session, params):
    state = session.state
    new, changed = {}, []
    for key, text in params.items():
        logged = state.params.get(key)
        if logged is None:
            new[key] = text
        elif logged != text:
            changed.append(f"{key} {logged!r} -> {text!r}")
    if new:
        try:
            api.log_params(new, run=session.run)
        except InvalidInput:
            # Some key was logged by other means with another value: keep the rest.
            for key, text in new.items():
                try:
                    api.log_params({key: text}, run=session.run)
                except InvalidInput:
                    changed.append(f"{key} (already logged with another value) -> {text!r}")
                else:
                    state.params[key] = text
                    _mark(session)
        else:
            state.params.update(new)
            _mark(session)
    if changed:
        session.warn(
            "params are fixed once logged in a run, so these changes were not recorded: "
            + ", ".join(changed) + " (start a new run to track this configuration)"
        )


def _log_metrics(session, metrics):
    values = {key: float(value) for key, value in metrics.items()}
    if values:
        api.log_metrics(values, run=session.run)
        _mark(session)


def _log_dataset(session, data, fallback):
    if data is None or not _fingerprintable(data):
        return
    seen = session.state.datasets
    ref = seen.get(id(data))
    if ref is not None and ref() is data:
        return
    api.log_dataset(data, _variable_name(session.namespace, data) or fallback, context="training", run=session.run)
    try:
        seen[id(data)] = weakref.ref(data)
    except TypeError:  # pragma: no cover - pandas and NumPy objects are weak-referenceable
        seen[id(data)] = lambda data=data: data
    _mark(session)


def _fingerprintable(data):
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, (pandas.DataFrame, pandas.Series)):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(data, numpy.ndarray) and not data.dtype.hasobject


def _variable_name(namespace, data):
    if not namespace:
        return None
    for name, value in list(namespace.items()):
        if value is data and isinstance(name, str) and not name.startswith("_"):
            return name
    return None


def _log_cv_results(session, results, artifact_path):
    import pandas

    with tempfile.TemporaryDirectory(prefix="mlops-autolog-") as folder:
        path = Path(folder) / "cv_results.csv"
        pandas.DataFrame(results).to_csv(path, index=False)
        api.log_artifact(path, artifact_path, run=session.run)
    _mark(session)


def _mark(session):
    state = session.state
    if not state.tagged:
        api.set_tags({"autolog": "sklearn"}, run=session.run)
        state.tagged = True
