"""What the ``%mlops`` magics show: self-contained HTML everywhere, an ipywidgets panel in a live kernel.

Every view object answers ``_repr_mimebundle_`` with ``text/plain`` and ``text/html`` (inline
styles only, no JavaScript, every user string escaped), so a saved notebook reads well in
nbconvert and on GitHub. With ``live=True`` the bundle also carries the widget's
``application/vnd.jupyter.widget-view+json`` entry, which JupyterLab prefers. The widget is
built lazily, on first display or first ``.widget`` access; if building it fails, the view
falls back to HTML alone. Button handlers never raise: errors appear in the panel.

pandas, matplotlib and ipywidgets are imported inside the functions that need them.
"""

import base64
import html
import io
import math
import numbers
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "is_live_kernel",
    "runs_frame_view",
    "rich_frame",
    "run_summary_view",
    "compare_view",
    "models_view",
    "versions_view",
    "status_view",
    "Progress",
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SHORT_ID = 8

# All styling, in one place. Inline only: GitHub and nbconvert drop <style> blocks. Text colour
# is inherited and highlights are translucent, so light and dark themes both stay readable.
_CSS = {
    "box": "font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; font-size: 13px; "
    "line-height: 1.4; max-width: 100%; overflow-x: auto;",
    "title": "font-weight: 600; margin: 4px 0;",
    "muted": "opacity: 0.65;",
    "table": "border-collapse: collapse; margin: 4px 0 8px 0;",
    "th": "text-align: left; padding: 3px 8px; border-bottom: 2px solid rgba(128,128,128,0.5); "
    "font-weight: 600; white-space: nowrap;",
    "td": "text-align: left; padding: 3px 8px; border-bottom: 1px solid rgba(128,128,128,0.2); "
    "vertical-align: top;",
    "num": "text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;",
    "mono": "font-family: SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;",
    "diff": "background: rgba(255, 193, 7, 0.28);",
    "best": "font-weight: 700; background: rgba(46, 160, 67, 0.22);",
    "badge": "display: inline-block; padding: 0 6px; margin-right: 3px; border-radius: 9px; font-size: 11px; "
    "font-weight: 600; color: #fff; background: {color}; white-space: nowrap;",
    "error": "color: #d1242f; font-weight: 600;",
    "ok": "color: #1a7f37; font-weight: 600;",
    "card": "display: inline-block; padding: 6px 10px; border: 1px solid rgba(128,128,128,0.35); "
    "border-radius: 6px; margin: 2px 0;",
    "img": "max-width: 100%; margin: 4px 8px 4px 0;",
}

_STATUS_COLOURS = {
    "RUNNING": "#0969da",
    "FINISHED": "#1a7f37",
    "FAILED": "#d1242f",
    "KILLED": "#bc4c00",
    "CRASHED": "#8250df",
}
_ALIAS_COLOURS = {"production": "#1a7f37", "staging": "#bf8700"}
_OTHER_COLOUR = "#6e7781"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_/.:-]+")
_RUN_SORT_ATTRIBUTES = ("start_time", "end_time", "name", "status", "user", "experiment")
_LIVE_VERSION_ROWS = 25  # newest versions given promote controls; older ones are listed only


# ---- small HTML helpers -----------------------------------------------------------------


class Markup(str):
    """HTML that is already safe: inserted as is, never escaped again."""


@dataclass(frozen=True)
class Cell:
    """A table cell with extra inline style and an optional hover title."""

    content: object
    style: str = ""
    title: str | None = None


def _h(value):
    """Escaped text for ``value`` (``Markup`` passes through)."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape("" if value is None else str(value))


def _table(headers, rows):
    """One HTML table: ``headers`` and ``rows`` hold strings (escaped), ``Markup`` or ``Cell``."""

    def cell(tag, value, base):
        if isinstance(value, Cell):
            style, title, value = f"{base} {value.style}".strip(), value.title, value.content
        else:
            style, title = base, None
        title_attr = f' title="{html.escape(str(title))}"' if title else ""
        return f'<{tag} style="{style}"{title_attr}>{_h(value)}</{tag}>'

    head = "".join(cell("th", h, _CSS["th"]) for h in headers)
    body = []
    for row in rows:
        body.append("<tr>" + "".join(cell("td", c, _CSS["td"]) for c in row) + "</tr>")
    return f'<table style="{_CSS["table"]}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _box(*parts):
    return Markup(f'<div style="{_CSS["box"]}">' + "".join(_h(p) for p in parts) + "</div>")


def _title(text, note=None):
    extra = f' <span style="{_CSS["muted"]}">{_h(note)}</span>' if note else ""
    return Markup(f'<div style="{_CSS["title"]}">{_h(text)}{extra}</div>')


def _muted(text):
    return Markup(f'<div style="{_CSS["muted"]}">{_h(text)}</div>')


def _message_html(text, kind="error"):
    if not text:
        return ""
    return f'<div style="{_CSS[kind]}">{_h(text)}</div>'


def _badge(text, color):
    return Markup(f'<span style="{_CSS["badge"].format(color=color)}">{_h(text)}</span>')


def _status_badge(status):
    status = "" if _missing(status) else str(status)
    return _badge(status or "?", _STATUS_COLOURS.get(status.upper(), _OTHER_COLOUR))


def _alias_badge(alias, version=None):
    label = alias if version is None else f"{alias} v{version}"
    return _badge(label, _ALIAS_COLOURS.get(alias, _OTHER_COLOUR))


def _mono(text, title=None):
    return Cell(Markup(f'<span style="{_CSS["mono"]}">{_h(text)}</span>'), title=title)


def _num_cell(value, style=""):
    return Cell(_fmt(value), f'{_CSS["num"]} {style}'.strip())


def _prefixed_header(column):
    """``metrics.auc`` with its prefix dimmed, so the eye finds the key."""
    prefix, dot, key = column.partition(".")
    if not dot:
        return column
    return Markup(f'<span style="{_CSS["muted"]}">{_h(prefix)}.</span>{_h(key)}')


# ---- value formatting -------------------------------------------------------------------


def _missing(value):
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NaTType", "NAType")


def _fmt(value, width=None):
    """Short text for a value: floats to 4 significant digits, times as local time."""
    if _missing(value):
        return ""
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = f"{float(value):.4g}"
    elif isinstance(value, datetime):
        text = _when(value)
    else:
        text = str(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _epoch(value):
    """Seconds since the epoch from a float, a datetime or a pandas Timestamp; None if missing."""
    if _missing(value):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return None


def _when(value):
    seconds = _epoch(value)
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds):
    if seconds is None:
        return ""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _run_duration(start, end, status=None):
    start, end = _epoch(start), _epoch(end)
    if start is not None and end is not None:
        return _duration(max(0.0, end - start))
    if str(status).upper() == "RUNNING":
        return "running"
    return ""


def _short(run_id):
    return "" if _missing(run_id) else str(run_id)[:SHORT_ID]


def _size(nbytes):
    if _missing(nbytes):
        return ""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _run_label(run):
    return f"{run.get('name') or _short(run.get('id'))} ({_short(run.get('id'))})"


def _error_text(error):
    """One line for the panel: an mlops error's own message, anything else with its type."""
    from ..errors import MlopsError

    text = str(error) if isinstance(error, MlopsError) else f"{type(error).__name__}: {error}"
    return text.splitlines()[0] if text else type(error).__name__


# ---- the view base ----------------------------------------------------------------------


def is_live_kernel(shell):
    """True in a Jupyter kernel (an ipykernel shell with a kernel), False in a terminal or script."""
    return shell is not None and getattr(shell, "kernel", None) is not None


class View:
    """A displayable result: HTML always, a widget panel too when ``live``."""

    def __init__(self, *, live=False):
        self.live = bool(live)
        self._widget = None
        self._widget_built = False
        self.widget_error = None  # why the widget could not be built, if it could not

    # Subclasses implement these three.
    def text(self):
        raise NotImplementedError

    def html(self):
        raise NotImplementedError

    def _build_widget(self):
        import ipywidgets

        return ipywidgets.HTML(self.html())

    @property
    def widget(self):
        """The ipywidgets panel (built on first access), or None when not live or if building failed."""
        if not self.live:
            return None
        if not self._widget_built:
            self._widget_built = True
            try:
                self._widget = self._build_widget()
            except Exception as error:  # a display failure must never break the command
                self._widget, self.widget_error = None, error
        return self._widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            plain = self.text()
        except Exception as error:
            plain = f"({type(self).__name__} could not render: {_error_text(error)})"
        try:
            rich = self.html()
        except Exception as error:
            rich = str(_box(_message_html(f"could not render this view: {_error_text(error)}")))
        bundle = {"text/plain": plain, "text/html": rich}
        widget = self.widget
        if widget is not None:
            try:
                entry = widget._repr_mimebundle_().get(WIDGET_MIME)
            except Exception as error:
                entry, self.widget_error = None, error
            if entry:
                bundle[WIDGET_MIME] = entry
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle

    def _repr_html_(self):
        return self.html()

    def __repr__(self):
        return self.text()


def _show(widget, visible):
    widget.layout.display = None if visible else "none"


# ---- runs -------------------------------------------------------------------------------


def _key_columns(columns):
    metrics = [c for c in columns if c.startswith("metrics.")]
    params = [c for c in columns if c.startswith("params.")]
    tags = [c for c in columns if c.startswith("tags.")]
    return metrics, params, tags


def _runs_html(frame, limit):
    total = len(frame)
    if total == 0:
        return str(_box(_title("No runs"), _muted("Nothing matches; loosen the filter or log a run.")))
    columns = list(frame.columns)
    metrics, params, tags = _key_columns(columns)
    shown = frame.head(limit).to_dict("records")
    headers = ["run", "name", "experiment", "status", "user", "started", "duration"]
    headers += [_prefixed_header(c) for c in (*metrics, *params, *tags)]
    rows = []
    for record in shown:
        row = [
            _mono(_short(record.get("run_id")), title=record.get("run_id")),
            Cell(_fmt(record.get("name"), 40), title=_fmt(record.get("name"))),
            _fmt(record.get("experiment"), 30),
            _status_badge(record.get("status")),
            _fmt(record.get("user"), 20),
            Cell(_when(record.get("start_time")), "white-space: nowrap;"),
            Cell(_run_duration(record.get("start_time"), record.get("end_time"), record.get("status")), _CSS["num"]),
        ]
        row += [_num_cell(record.get(c)) for c in metrics]
        row += [Cell(_fmt(record.get(c), 40), title=_fmt(record.get(c)) or None) for c in (*params, *tags)]
        rows.append(row)
    parts = [_title(f"{total} run" + ("" if total == 1 else "s")), Markup(_table(headers, rows))]
    if total > limit:
        parts.append(_muted(f"… {total - limit} more (raise --limit or narrow the filter to see them)"))
    return str(_box(*parts))


def _runs_text(frame, limit):
    total = len(frame)
    if total == 0:
        return "No runs."
    metrics, _, _ = _key_columns(list(frame.columns))
    lines = [f"{total} run" + ("" if total == 1 else "s")]
    for record in frame.head(limit).to_dict("records"):
        values = " ".join(f"{c[8:]}={_fmt(record.get(c))}" for c in metrics if not _missing(record.get(c)))
        name, status = _fmt(record.get("name"), 30), _fmt(record.get("status"))
        lines.append(f"  {_short(record.get('run_id')):8}  {name:30}  {status:9}  {values}".rstrip())
    if total > limit:
        lines.append(f"  … {total - limit} more")
    return "\n".join(lines)


def _sort_key(column):
    """A frame column as an order_by field, quoted when it holds characters the grammar would split on."""
    prefix, dot, key = column.partition(".")
    if dot and prefix in ("metrics", "params", "tags") and not _KEY_PATTERN.fullmatch(key):
        return f"{prefix}.`{key}`"
    return column


def _first_sort_key(order_by):
    """``(field, descending)`` of an order_by's first key, for the panel's sort controls to start from."""
    first = (order_by or "").split(",")[0].strip()
    field, _, direction = first.partition(" ")
    if field.startswith("-"):
        return field[1:], True
    return field, direction.strip().lower() != "asc"


class RunsView(View):
    """A table of runs; live: filter, sort and refresh through ``query(filter, order_by)``."""

    def __init__(self, frame, *, live=False, query=None, limit=50, filter=None, order_by=None):
        super().__init__(live=live)
        self.frame = frame
        self.query = query
        self.limit = max(1, int(limit or 50))
        self.initial_filter = filter or ""
        self.initial_order_by = order_by or ""
        self.message = ""

    def text(self):
        return _runs_text(self.frame, self.limit)

    def html(self):
        return _runs_html(self.frame, self.limit)

    def _sort_options(self):
        metrics, params, _ = _key_columns(list(self.frame.columns))
        keys = [*_RUN_SORT_ATTRIBUTES, *metrics, *params]
        return [("newest first", "")] + [(key, _sort_key(key)) for key in keys]

    def _build_widget(self):
        import ipywidgets

        self.table = ipywidgets.HTML(self.html())
        self.status = ipywidgets.HTML("")
        if self.query is None:
            return ipywidgets.VBox([self.table])
        self.filter = ipywidgets.Text(
            value=self.initial_filter,
            placeholder="filter, e.g. metrics.auc > 0.8 and params.model = 'rf'",
            continuous_update=False,
            layout=ipywidgets.Layout(width="420px"),
        )
        sort_field, descending = _first_sort_key(self.initial_order_by)
        options = self._sort_options()
        if sort_field and sort_field not in [value for _, value in options]:
            options.append((sort_field, sort_field))
        self.sort = ipywidgets.Dropdown(
            options=options, value=sort_field, description="sort", layout={"width": "240px"}
        )
        self.direction = ipywidgets.Dropdown(options=["desc", "asc"], value="desc" if descending else "asc",
                                             layout={"width": "80px"})
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh", layout={"width": "100px"})
        self.refresh_button.on_click(self.refresh)
        self.filter.observe(self.refresh, names="value")
        self.sort.observe(self.refresh, names="value")
        self.direction.observe(self.refresh, names="value")
        controls = ipywidgets.HBox([self.filter, self.sort, self.direction, self.refresh_button])
        return ipywidgets.VBox([controls, self.status, self.table])

    def order_by(self):
        field = getattr(self, "sort", None) and self.sort.value
        return f"{field} {self.direction.value}" if field else None

    def refresh(self, *_):
        """Query again with the panel's filter and sort; errors go to the panel, never up."""
        if self.query is None or self.widget is None:
            return
        try:
            frame = self.query(self.filter.value.strip() or None, self.order_by())
            self.frame = frame
            self.table.value = self.html()
            self._update_sort_options()
            self.message = ""
            self.status.value = ""
        except Exception as error:
            self.message = _error_text(error)
            self.status.value = _message_html(self.message)

    def _update_sort_options(self):
        options = self._sort_options()
        if self.sort.value and self.sort.value not in [value for _, value in options]:
            options.append((self.sort.value, self.sort.value))
        if options != list(self.sort.options):
            current = self.sort.value
            self.sort.unobserve(self.refresh, names="value")
            try:
                self.sort.options = options
                self.sort.value = current
            finally:
                self.sort.observe(self.refresh, names="value")


def runs_frame_view(frame, *, live=False, query=None, limit=50, filter=None, order_by=None):
    """Runs from ``api.search_runs`` as a table; live, with filter/sort/refresh through ``query``.

    ``filter`` and ``order_by`` pre-fill the live panel's controls (the query that made ``frame``).
    """
    return RunsView(frame, live=live, query=query, limit=limit, filter=filter, order_by=order_by)


# ---- a DataFrame that displays as a view ------------------------------------------------

_rich_frame_class = None


def _rich_class():
    global _rich_frame_class
    if _rich_frame_class is None:
        import pandas

        class RichFrame(pandas.DataFrame):
            """A DataFrame that shows an mlops view in Jupyter; everything derived from it is plain."""

            _mlops_view_factory = None
            _mlops_last_view = None

            @property
            def _constructor(self):
                return pandas.DataFrame

            def mlops_view(self):
                """A fresh view of this frame's current data."""
                view = self._mlops_view_factory(pandas.DataFrame(self))
                object.__setattr__(self, "_mlops_last_view", view)
                return view

            def _repr_mimebundle_(self, include=None, exclude=None):
                try:
                    return self.mlops_view()._repr_mimebundle_(include=include, exclude=exclude)
                except Exception:  # the view failed: show the plain DataFrame instead
                    plain = pandas.DataFrame(self)
                    return {"text/plain": repr(plain), "text/html": plain._repr_html_()}

            def _repr_html_(self):
                try:
                    return self.mlops_view().html()
                except Exception:
                    return pandas.DataFrame._repr_html_(self)

            def __reduce_ex__(self, protocol):
                # Pickles (and unpickles) as a plain DataFrame: the view factory is not data.
                return pandas.DataFrame, (pandas.DataFrame(self),)

        RichFrame.__module__ = __name__
        _rich_frame_class = RichFrame
    return _rich_frame_class


def rich_frame(frame, view_factory):
    """``frame``'s data as a DataFrame whose Jupyter display is ``view_factory(frame)``.

    So ``%mlops runs`` shows the panel and ``df = %mlops runs`` gives a DataFrame. Slices,
    column selections, copies and arithmetic on it are plain ``pandas.DataFrame`` objects.
    """
    rich = _rich_class()(frame)
    object.__setattr__(rich, "_mlops_view_factory", view_factory)
    return rich


# ---- one run ----------------------------------------------------------------------------


class RunSummaryView(View):
    """A compact card for one run: status, ids, duration, metrics, params, datasets, artifacts."""

    max_metrics = 12
    max_params = 6

    def __init__(self, run, *, duration=None):
        super().__init__(live=False)
        self.run = run
        if duration is None:  # a running run has no duration yet; its status badge says so
            self.duration = _run_duration(run.get("start_time"), run.get("end_time"))
        else:
            self.duration = _duration(duration)

    def _metric_items(self):
        return sorted((self.run.get("metrics") or {}).items())

    def text(self):
        run = self.run
        parts = [f"run {_run_label(run)} {run.get('status', '')}".rstrip()]
        if self.duration:
            parts[0] += f" in {self.duration}"
        metrics = self._metric_items()
        if metrics:
            parts.append(", ".join(f"{k}={_fmt(v)}" for k, v in metrics[: self.max_metrics]))
        params = run.get("params") or {}
        if params:
            parts.append(f"{len(params)} param" + ("" if len(params) == 1 else "s"))
        return " · ".join(parts)

    def html(self):
        run = self.run
        head = [
            str(_status_badge(run.get("status"))),
            f'<b>{_h(run.get("name") or _short(run.get("id")))}</b>',
            f'<span style="{_CSS["mono"]} {_CSS["muted"]}" title="{_h(run.get("id"))}">'
            f'{_h(_short(run.get("id")))}</span>',
        ]
        if run.get("experiment"):
            head.append(f'<span style="{_CSS["muted"]}">in</span> {_h(run["experiment"])}')
        if self.duration:
            head.append(f'<span style="{_CSS["muted"]}">·</span> {_h(self.duration)}')
        parts = [Markup(f'<div style="margin-bottom: 4px;">{" ".join(head)}</div>')]

        metrics = self._metric_items()
        if metrics:
            shown = metrics[: self.max_metrics]
            parts.append(Markup(_table([k for k, _ in shown], [[_num_cell(v) for _, v in shown]])))
            if len(metrics) > len(shown):
                parts.append(_muted(f"… {len(metrics) - len(shown)} more metrics"))

        params = sorted((run.get("params") or {}).items())
        if params:
            first = ", ".join(f"{k}={_fmt(v, 30)}" for k, v in params[: self.max_params])
            more = f", … {len(params) - self.max_params} more" if len(params) > self.max_params else ""
            label = f"{len(params)} param" + ("" if len(params) == 1 else "s")
            parts.append(Markup(f"<div><b>{_h(label)}</b>: {_h(first + more)}</div>"))

        datasets = run.get("datasets") or []
        if datasets:
            items = []
            for dataset in datasets:
                shape = (dataset.get("schema") or {}).get("shape")
                shape_text = " × ".join(str(s) for s in shape) if shape else f"{_fmt(dataset.get('rows'))} rows"
                context = f" ({dataset['context']})" if dataset.get("context") else ""
                items.append(f"{dataset.get('name')}{context} {shape_text}")
            parts.append(Markup(f"<div><b>datasets</b>: {_h('; '.join(items))}</div>"))

        artifacts = run.get("artifacts") or []
        if artifacts:
            shown = artifacts[:8]
            text = ", ".join(f"{a.get('path')} ({_size(a.get('size'))})" for a in shown)
            if len(artifacts) > len(shown):
                text += f", … {len(artifacts) - len(shown)} more"
            parts.append(Markup(f"<div><b>artifacts</b>: {_h(text)}</div>"))
        return str(_box(Markup(f'<div style="{_CSS["card"]}">' + "".join(_h(p) for p in parts) + "</div>")))


def run_summary_view(run, *, duration=None):
    """A card for ``run`` (an ``api.get_run`` dict); ``duration`` in seconds, else from its times."""
    return RunSummaryView(run, duration=duration)


# ---- compare ----------------------------------------------------------------------------


def _higher_is_better(key):
    from ..models.gates import primary_metric

    return primary_metric({}, {key: None})[1]



@contextmanager
def _drawing(**figure_options):
    """A bare Agg figure, cleared afterwards: no pyplot, so no global figure state to leak."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**figure_options)
    FigureCanvasAgg(figure)
    try:
        yield figure
    finally:
        figure.clear()


def _png(figure, **layout):
    figure.tight_layout(**layout)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _curve_png(key, series):
    """A PNG (bytes) of one metric's curves: ``series`` is ``[(label, steps, values)]``."""
    from matplotlib.ticker import MaxNLocator

    with _drawing(figsize=(5.6, 3.2), dpi=90) as figure:
        axes = figure.add_subplot()
        for label, steps, values in series:
            many = len(steps) > 30
            axes.plot(steps, values, label=label, linewidth=1.5, marker=None if many else "o", markersize=3)
        axes.set_title(_mpl_text(key), fontsize=10)
        axes.set_xlabel("step", fontsize=9)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        return _png(figure)


def _mpl_text(text):
    """Text matplotlib shows literally: no mathtext from '$', and a legend label not hidden by a leading '_'."""
    text = str(text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _img(png, alt):
    data = base64.b64encode(png).decode("ascii")
    return f'<img style="{_CSS["img"]}" alt="{_h(alt)}" src="data:image/png;base64,{data}"/>'


class CompareView(View):
    """Runs side by side: params (differences highlighted), latest metrics (best marked), curves."""

    def __init__(self, runs, histories, *, live=False):
        super().__init__(live=live)
        self.runs = list(runs)
        self.histories = histories or {}
        self._curves = None

    def labels(self):
        return [_run_label(r) for r in self.runs]

    def param_keys(self):
        return sorted({k for r in self.runs for k in (r.get("params") or {})})

    def metric_keys(self):
        return sorted({k for r in self.runs for k in (r.get("metrics") or {})})

    def differing_params(self):
        return [
            key for key in self.param_keys()
            if len({(r.get("params") or {}).get(key) for r in self.runs}) > 1
        ]

    def curve_keys(self):
        keys = set()
        for run in self.runs:
            per_run = self.histories.get(run.get("id")) or {}
            keys.update(k for k, points in per_run.items() if len(points or ()) > 1)
        return sorted(keys)

    def curves(self):
        """``{metric: data-URI <img> HTML}`` for every metric with more than one point, rendered once."""
        if self._curves is None:
            self._curves = {}
            for key in self.curve_keys():
                series = []
                for run in self.runs:
                    points = (self.histories.get(run.get("id")) or {}).get(key) or []
                    if points:
                        steps = [p[0] for p in points]
                        values = [float("nan") if _missing(p[1]) else p[1] for p in points]
                        series.append((_mpl_text(_run_label(run)), steps, values))
                self._curves[key] = _img(_curve_png(key, series), f"{key} by step")
        return self._curves

    def text(self):
        if not self.runs:
            return "nothing to compare"
        differing = len(self.differing_params())
        return (
            f"comparing {len(self.runs)} runs: {', '.join(self.labels())} · {len(self.param_keys())} params "
            f"({differing} differ) · {len(self.metric_keys())} metrics · {len(self.curve_keys())} curves"
        )

    def _params_table(self):
        keys = self.param_keys()
        if not keys:
            return _muted("No params logged.")
        differing = set(self.differing_params())
        rows = []
        for key in keys:
            diff = key in differing
            cells = [Cell(key, "font-weight: 600;")]
            for run in self.runs:
                value = (run.get("params") or {}).get(key)
                cells.append(Cell(_fmt(value, 40), _CSS["diff"] if diff else "", title=_fmt(value) or None))
            rows.append(cells)
        return Markup(_table(["param", *self.labels()], rows))

    def _metrics_table(self):
        keys = self.metric_keys()
        if not keys:
            return _muted("No metrics logged.")
        rows = []
        for key in keys:
            values = [(run.get("metrics") or {}).get(key) for run in self.runs]
            numeric = [v for v in values if isinstance(v, numbers.Real) and not _missing(v)]
            best = None
            if len(numeric) > 1 and len(set(numeric)) > 1:
                best = max(numeric) if _higher_is_better(key) else min(numeric)
            cells = [Cell(key, "font-weight: 600;")]
            for value in values:
                if best is not None and value == best:
                    cells.append(Cell(Markup(f"{_h(_fmt(value))} ★"), f'{_CSS["num"]} {_CSS["best"]}', title="best"))
                else:
                    cells.append(_num_cell(value))
            rows.append(cells)
        return Markup(_table(["metric", *self.labels()], rows))

    def _tables(self):
        if not self.runs:
            return [_title("Nothing to compare")]
        return [
            _title(f"Comparing {len(self.runs)} runs"),
            _title("Params", "highlighted: values that differ"),
            self._params_table(),
            _title("Metrics", "latest values; ★ best"),
            self._metrics_table(),
        ]

    def html(self):
        parts = self._tables()
        curves = self.curves() if self.runs else {}
        if curves:
            parts.append(_title("Curves"))
            parts.append(Markup("".join(curves.values())))
        return str(_box(*parts))

    def _build_widget(self):
        import ipywidgets

        children = [ipywidgets.HTML(str(_box(*self._tables())))]
        curves = self.curves() if self.runs else {}
        self.metric_picker = None
        self.plot = None
        if curves:
            keys = list(curves)
            self.metric_picker = ipywidgets.Dropdown(options=keys, value=keys[0], description="curve")
            self.plot = ipywidgets.HTML(curves[keys[0]])

            def pick(change):
                try:
                    self.plot.value = self.curves().get(change["new"], "")
                except Exception as error:
                    self.plot.value = _message_html(_error_text(error))

            self.metric_picker.observe(pick, names="value")
            children += [self.metric_picker, self.plot]
        return ipywidgets.VBox(children)


def compare_view(runs, histories, *, live=False):
    """``runs`` (``api.get_run`` dicts) side by side; ``histories`` = ``{run_id: {key: [(step, value, ts)]}}``."""
    return CompareView(runs, histories, live=live)


# ---- models -----------------------------------------------------------------------------


class ModelsView(View):
    """The registered models, with the version each alias points at."""

    def __init__(self, models, *, live=False):
        super().__init__(live=live)
        self.models = list(models)

    def text(self):
        if not self.models:
            return "No registered models."
        lines = [f"{len(self.models)} model" + ("" if len(self.models) == 1 else "s")]
        for model in self.models:
            aliases = " ".join(f"{a}=v{v}" for a, v in sorted((model.get("aliases") or {}).items()))
            lines.append(f"  {model.get('name')}  v{model.get('latest_version')}  {aliases}".rstrip())
        return "\n".join(lines)

    def html(self):
        if not self.models:
            hint = "Register one with %mlops register VAR --name NAME."
            return str(_box(_title("No registered models"), _muted(hint)))
        rows = []
        for model in self.models:
            aliases = sorted((model.get("aliases") or {}).items())
            badges = Markup("".join(str(_alias_badge(a, v)) for a, v in aliases))
            latest = model.get("latest_version")
            rows.append([
                Cell(model.get("name"), "font-weight: 600;"),
                Cell("" if latest is None else f"v{latest}", _CSS["num"]),
                badges,
                _fmt(model.get("created_by")),
                Cell(_when(model.get("created_at")), "white-space: nowrap;"),
            ])
        count = len(self.models)
        title = _title(f"{count} registered model" + ("" if count == 1 else "s"),
                       "%mlops models NAME for versions and promotion")
        return str(_box(title, Markup(_table(["model", "latest", "aliases", "created by", "created"], rows))))


def models_view(models, *, live=False):
    """``api.list_models()`` rows as a table."""
    return ModelsView(models, live=live)


def _metrics_text(metrics, limit=4):
    items = sorted((metrics or {}).items())
    text = ", ".join(f"{k}={_fmt(v)}" for k, v in items[:limit])
    return text + (f", … {len(items) - limit} more" if len(items) > limit else "")


def _short_class(name):
    return "" if not name else str(name).rsplit(".", 1)[-1]


def _history_table(history, limit=10):
    recent = list(reversed(history))[:limit]
    rows = []
    for entry in recent:
        source = f"v{entry['from_version']}" if entry.get("from_version") is not None else "—"
        target = f"v{entry['to_version']}" if entry.get("to_version") is not None else "—"
        forced = _badge("forced", "#d1242f") if entry.get("forced") else ""
        rows.append([
            Cell(_when(entry.get("at")), "white-space: nowrap;"),
            _alias_badge(entry.get("alias")),
            f"{source} → {target}",
            _fmt(entry.get("user")),
            Cell(Markup(str(forced) + _h(_fmt(entry.get("reason"), 80))), title=_fmt(entry.get("reason")) or None),
        ])
    return Markup(_table(["when", "alias", "move", "by", "reason"], rows))


class VersionsView(View):
    """One model's versions and alias history; live: promote and demote with confirmation."""

    aliases = ("staging", "production")

    def __init__(self, name, versions, history, *, live=False, api=None):
        super().__init__(live=live)
        self.name = name
        self.versions = list(versions)
        self.history = list(history)
        self._api = api
        self.pending = None  # ("promote", version, alias) or ("demote", alias, version) awaiting confirmation
        self.message = ""
        self.message_kind = "ok"
        self.controls = {}

    @property
    def api(self):
        if self._api is None:
            from .. import api

            self._api = api
        return self._api

    def text(self):
        lines = [f"model {self.name}: {len(self.versions)} version" + ("" if len(self.versions) == 1 else "s")]
        for version in self.versions:
            aliases = ",".join(version.get("aliases") or [])
            aliases = f" [{aliases}]" if aliases else ""
            lines.append(f"  v{version.get('version')}{aliases}  {_metrics_text(version.get('metrics'))}".rstrip())
        return "\n".join(lines)

    def _version_cells(self, version):
        badges = Markup("".join(str(_alias_badge(a)) for a in version.get("aliases") or []))
        return [
            Cell(f"v{version.get('version')}", f"{_CSS['num']} font-weight: 600;"),
            badges,
            Cell(_metrics_text(version.get("metrics")), title=_metrics_text(version.get("metrics"), 50) or None),
            _mono(_short(version.get("run_id")), title=version.get("run_id")),
            Cell(_short_class(version.get("model_class")), title=version.get("model_class")),
            Cell(_when(version.get("created_at")), "white-space: nowrap;"),
            _fmt(version.get("created_by")),
        ]

    _version_headers = ["version", "aliases", "metrics", "run", "class", "created", "by"]

    def _history_part(self):
        if not self.history:
            return [_title("History"), _muted("No alias moves yet.")]
        note = f"latest {min(10, len(self.history))} of {len(self.history)}"
        return [_title("History", note), _history_table(self.history)]

    def html(self):
        count = len(self.versions)
        header = _title(f"Model {self.name}", f"{count} version" + ("" if count == 1 else "s"))
        if not self.versions:
            return str(_box(header, _muted("No versions."), *self._history_part()))
        rows = [self._version_cells(v) for v in self.versions]
        return str(_box(header, Markup(_table(self._version_headers, rows)), *self._history_part()))

    # -- the live panel --

    def _build_widget(self):
        import ipywidgets

        self.header = ipywidgets.HTML()
        self.status = ipywidgets.HTML()
        self.grid = ipywidgets.GridBox(layout=ipywidgets.Layout(grid_gap="2px 8px", align_items="center"))
        self.older = ipywidgets.HTML()
        self.question = ipywidgets.HTML()
        self.reason = ipywidgets.Text(placeholder="reason (recorded; needed to force)", layout={"width": "360px"})
        self.confirm_button = ipywidgets.Button(description="Confirm", button_style="primary")
        self.cancel_button = ipywidgets.Button(description="Cancel")
        self.force_button = ipywidgets.Button(description="Force with reason", button_style="danger")
        self.confirm_button.on_click(self.confirm)
        self.cancel_button.on_click(self.cancel)
        self.force_button.on_click(self.force)
        self.confirm_box = ipywidgets.VBox([
            self.question,
            ipywidgets.HBox([self.reason, self.confirm_button, self.force_button, self.cancel_button]),
        ])
        self.history_html = ipywidgets.HTML()
        _show(self.confirm_box, False)
        _show(self.force_button, False)
        self._render()
        return ipywidgets.VBox([self.header, self.grid, self.older, self.confirm_box, self.status, self.history_html])

    def _render(self):
        import ipywidgets

        count = len(self.versions)
        self.header.value = str(_box(_title(f"Model {self.name}", f"{count} version" + ("" if count == 1 else "s"))))
        held = sorted({a for v in self.versions for a in v.get("aliases") or []})
        targets = list(dict.fromkeys([*self.aliases, *held]))
        heads = ["version", "aliases", "metrics", "run", "created", "promote to", "", ""]
        children = [ipywidgets.HTML(f"<b>{_h(h)}</b>") for h in heads]
        self.controls = {}
        live_versions = self.versions[:_LIVE_VERSION_ROWS]
        for version in live_versions:
            number = version["version"]
            info = self._version_cells(version)
            cells = [info[0], info[1], info[2], info[3], info[5]]
            for cell in cells:
                children.append(ipywidgets.HTML(_table_cell_html(cell)))
            target = ipywidgets.Dropdown(options=targets, value=targets[0], layout={"width": "130px"})
            promote = ipywidgets.Button(description="Promote", layout={"width": "90px"})
            promote.on_click(lambda _, n=number, t=target: self.ask_promote(n, t.value))
            demotes = {}
            for alias in version.get("aliases") or []:
                button = ipywidgets.Button(description=f"Demote {alias}", layout={"width": "auto"})
                button.on_click(lambda _, a=alias, n=number: self.ask_demote(a, n))
                demotes[alias] = button
            children += [target, promote, ipywidgets.HBox(list(demotes.values()))]
            self.controls[number] = {"to": target, "promote": promote, "demote": demotes}
        self.grid.layout.grid_template_columns = f"repeat({len(heads)}, auto)"
        self.grid.children = children
        older = len(self.versions) - len(live_versions)
        self.older.value = (
            str(_muted(f"… {older} older versions (promote them with %mlops promote {self.name} VERSION --to ALIAS)"))
            if older > 0 else ""
        )
        self.history_html.value = str(_box(*self._history_part()))
        self._show_message()

    def _show_message(self):
        if hasattr(self, "status"):
            self.status.value = _message_html(self.message, self.message_kind)

    def _say(self, text, kind="ok"):
        self.message, self.message_kind = text, kind
        self._show_message()

    def _ask(self, pending, question):
        self.pending = pending
        self.question.value = f"<b>{_h(question)}</b>"
        self.reason.value = ""
        _show(self.confirm_button, True)
        _show(self.force_button, False)
        _show(self.confirm_box, True)
        self._say("")

    def ask_promote(self, version, alias):
        """Step one of a promotion: ask for confirmation (and an optional reason) in the panel."""
        try:
            self._ask(("promote", version, alias), f"Promote {self.name} v{version} to {alias}?")
        except Exception as error:
            self._say(_error_text(error), "error")

    def ask_demote(self, alias, version=None):
        try:
            self._ask(("demote", alias, version), f"Take {alias} away from {self.name} v{version}?")
        except Exception as error:
            self._say(_error_text(error), "error")

    def cancel(self, *_):
        self.pending = None
        _show(self.confirm_box, False)
        self._say("Cancelled.")

    def confirm(self, *_):
        self._carry_out(force=False)

    def force(self, *_):
        if not self.reason.value.strip():
            self._say("A forced promotion needs a reason: type it in the reason box, then Force again.", "error")
            return
        self._carry_out(force=True)

    def _carry_out(self, *, force):
        from ..errors import GateFailed

        if self.pending is None:
            self._say("Nothing to confirm: choose Promote or Demote first.", "error")
            return
        reason = self.reason.value.strip() or None
        kind, first, second = self.pending
        try:
            if kind == "promote":
                result = self.api.promote(self.name, first, to=second, reason=reason, force=force)
                if result.get("changed", True):
                    previous = f"v{result['from_version']}" if result.get("from_version") is not None else "nobody"
                    done = f"{self.name}@{second}: {previous} → v{first}" + (" (forced)" if force else "")
                else:
                    done = f"{self.name} v{first} already holds {second}; nothing changed."
            else:
                result = self.api.demote(self.name, first, reason=reason)
                done = f"{self.name}@{first}: v{result.get('from_version')} → nobody"
        except GateFailed as error:
            # Keep the question open: the user may give a reason and force it.
            self._say(_error_text(error), "error")
            _show(self.confirm_button, False)
            _show(self.force_button, kind == "promote")
            return
        except Exception as error:
            self.pending = None
            _show(self.confirm_box, False)
            self._say(_error_text(error), "error")
            self._reload()
            return
        self.pending = None
        _show(self.confirm_box, False)
        self._say(done, "ok")
        self._reload()

    def _reload(self):
        """Fetch the versions and history again and re-render; a failure is reported, not raised."""
        try:
            self.versions = list(self.api.list_versions(self.name))
            self.history = list(self.api.model_history(self.name))
            self._render()
        except Exception as error:
            self._say(f"{self.message} (could not refresh: {_error_text(error)})".strip(), "error")


def _table_cell_html(cell):
    if isinstance(cell, Cell):
        title = f' title="{html.escape(str(cell.title))}"' if cell.title else ""
        return f'<span style="{cell.style}"{title}>{_h(cell.content)}</span>'
    return _h(cell)


def versions_view(name, versions, history, *, live=False, api=None):
    """Model ``name``'s versions and alias history; live, with promote/demote buttons through ``api``."""
    return VersionsView(name, versions, history, live=live, api=api)


# ---- status -----------------------------------------------------------------------------

_COUNT_LABELS = (
    ("experiments", "experiments"),
    ("runs", "runs"),
    ("registered_models", "models"),
    ("model_versions", "versions"),
    ("artifacts", "artifacts"),
)


class StatusView(View):
    """Registry, user, experiment, active run and a few counts."""

    def __init__(self, status):
        super().__init__(live=False)
        self.status = dict(status or {})

    def _get(self, *keys):
        for key in keys:
            if self.status.get(key) is not None:
                return self.status[key]
        return None

    def _run_text(self):
        run = self._get("active_run", "run")
        if run is None:
            return "none"
        if isinstance(run, dict):
            return f"{run.get('name') or _short(run.get('id'))} ({_short(run.get('id'))})"
        name, run_id = getattr(run, "name", None), getattr(run, "id", None)
        return f"{name} ({_short(run_id)})" if run_id else str(run)

    def _counts_text(self):
        counts = self._get("counts") or {}
        return " · ".join(f"{counts[key]} {label}" for key, label in _COUNT_LABELS if key in counts)

    def _items(self):
        items = [
            ("registry", self._get("registry", "url", "registry_url")),
            ("artifacts", self._get("artifacts", "artifact_root")),
            ("user", self._get("user")),
            ("experiment", self._get("experiment")),
            ("active run", self._run_text()),
            ("holds", self._counts_text()),
            ("unhealthy", "; ".join(f"{m['model']}@{m['env']} v{m['version']}: {', '.join(m['reasons'])}"
                                    for m in self.status.get("unhealthy") or [])),
        ]
        return [(label, value) for label, value in items if value not in (None, "")]

    def text(self):
        return "\n".join(f"{label:11} {value}" for label, value in self._items())

    def html(self):
        rows = "".join(
            f'<tr><td style="{_CSS["td"]} {_CSS["muted"]}">{_h(label)}</td>'
            f'<td style="{_CSS["td"]}">{_h(value)}</td></tr>'
            for label, value in self._items()
        )
        return str(_box(Markup(
            f'<div style="{_CSS["card"]}"><div style="{_CSS["title"]}">mlops</div>'
            f'<table style="{_CSS["table"]}">{rows}</table></div>'
        )))


def status_view(status):
    """A small card from ``{"registry", "artifacts", "user", "experiment", "active_run", "counts"}``."""
    return StatusView(status)


# ---- progress ---------------------------------------------------------------------------


class Progress:
    """Counts work done; in a live kernel also shows a progress bar, marked done at the end.

    The bar is displayed with a display id and updated at the end, so a saved notebook keeps
    an HTML line with the final count next to the widget. Not live, nothing is printed
    (notebooks stay clean), but ``.done`` still counts.
    """

    def __init__(self, total, description="", *, live=False):
        self.total = total
        self.description = description
        self.live = bool(live)
        self.done = 0
        self.finished = False
        self.failed = False
        self.bar = self.label = self.widget = None
        self._handle = None

    def __enter__(self):
        if self.live:
            try:
                import ipywidgets
                from IPython.display import display

                self.bar = ipywidgets.IntProgress(min=0, max=max(1, int(self.total or 1)), value=0)
                self.label = ipywidgets.Label(self.text())
                self.widget = ipywidgets.HBox([self.bar, self.label])
                self._handle = display(_ProgressDisplay(self), display_id=True)
            except Exception:  # no bar is better than a broken command
                self.bar = self.label = self.widget = self._handle = None
        return self

    def text(self):
        total = f"/{self.total}" if self.total else ""
        text = f"{self.description} {self.done}{total}".strip()
        if self.finished:
            text += " (stopped)" if self.failed else " ✓"
        return text

    def html(self):
        share = min(1.0, self.done / self.total) if self.total else (1.0 if self.finished else 0.0)
        colour = "#d1242f" if self.failed else ("#1a7f37" if self.finished else "#0969da")
        bar = (
            '<span style="display: inline-block; width: 160px; height: 8px; border-radius: 4px; '
            'background: rgba(128,128,128,0.25); vertical-align: middle; margin-right: 6px;">'
            f'<span style="display: block; width: {share * 100:.0f}%; height: 100%; border-radius: 4px; '
            f'background: {colour};"></span></span>'
        )
        return str(_box(Markup(bar + _h(self.text()))))

    def update(self, n=1):
        self.done += n
        if self.bar is not None:
            try:
                self.bar.value = min(self.done, self.bar.max)
                self.label.value = self.text()
            except Exception:
                pass

    def __exit__(self, exc_type, exc, tb):
        self.finished = True
        self.failed = exc_type is not None
        if self.bar is not None:
            try:
                if self.failed:
                    self.bar.bar_style = "danger"
                else:
                    self.bar.value = self.bar.max
                    self.bar.bar_style = "success"
                self.label.value = self.text()
                if self._handle is not None:
                    self._handle.update(_ProgressDisplay(self))
            except Exception:
                pass
        return False


class _ProgressDisplay:
    """What a live Progress displays: its widget, plus HTML and text of the count for saved notebooks."""

    def __init__(self, progress):
        self.progress = progress

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": self.progress.text(), "text/html": self.progress.html()}
        if self.progress.widget is not None:
            entry = self.progress.widget._repr_mimebundle_().get(WIDGET_MIME)
            if entry:
                bundle[WIDGET_MIME] = entry
        return bundle


# ---- features ---------------------------------------------------------------------------

__all__ += ["features_view", "feature_view"]

_CODE_OPEN_LINES = 15  # longer code is collapsed in a <details>
_CODE_STYLE = (_CSS["mono"] + " margin: 4px 0 8px 0; padding: 6px 8px; border-radius: 4px; "
               "background: rgba(128,128,128,0.10); white-space: pre; overflow-x: auto; max-height: 480px;")
_BAR_STYLE = "display: inline-block; height: 10px; border-radius: 2px; background: rgba(9,105,218,0.55);"
_BAR_WIDTH = 160  # px of the longest top-value bar
_FEATURE_VERSION_ROWS = 25
_TRAINING_SET_ROWS = 25


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def _feature_label(feature):
    version = feature.get("version")
    return f"{feature.get('name')}@{version}" if version is not None else str(feature.get("name"))


def _key_label(feature):
    entity, timestamp = feature.get("entity"), feature.get("timestamp")
    return f"{_fmt(entity)} / {_fmt(timestamp)}" if entity or timestamp else ""


def _rule_text(rule):
    """The text of an expectation: a rule string, a ``Rule``, or a stored ``as_dict()``."""
    if isinstance(rule, str):
        return rule
    if hasattr(rule, "text") and callable(rule.text):
        return rule.text()
    if isinstance(rule, dict):
        if rule.get("rule") == "callable":
            return str(rule.get("name") or "callable")
        try:
            from ..features.expectations import rule_from_dict

            return rule_from_dict(rule).text()
        except Exception:
            return ", ".join(f"{k}={v}" for k, v in rule.items())
    return str(rule)


def _check_results(feature):
    checks = feature.get("checks") or {}
    return [r for r in (checks.get("results") or []) if isinstance(r, dict)]


def _check_text(result):
    """``✓ passed`` or ``✗ failed: detail`` for one stored rule result; '' if there is none."""
    if result is None:
        return ""
    if result.get("passed"):
        return "✓ passed"
    detail = str(result.get("detail") or "").replace("\n", " ")
    return "✗ failed" + (f": {detail}" if detail else "")


def _expectation_rows(feature, expectations):
    """``[(rule text, stored result or None)]``: the expectations first, then other checked rules."""
    results = _check_results(feature)
    by_rule = {}
    for result in results:
        by_rule.setdefault(str(result.get("rule")), result)
    rows, seen = [], set()
    for rule in expectations or []:
        text = _rule_text(rule)
        rows.append((text, by_rule.get(text)))
        seen.add(text)
    for result in results:
        text = str(result.get("rule"))
        if text not in seen:
            rows.append((text, result))
            seen.add(text)
    return rows


def _stat_items(statistics):
    """``[(label, value text)]`` of a feature's stored statistics."""
    stats = statistics or {}
    kind = stats.get("kind")
    items = [("kind", _fmt(kind)), ("count", _fmt(stats.get("count"))), ("nulls", _fmt(stats.get("nulls")))]
    fraction = stats.get("null_fraction")
    items.append(("null fraction", "" if _missing(fraction) else f"{float(fraction):.2%}"))
    items.append(("distinct", _fmt(stats.get("distinct"))))
    if kind in ("numeric", "datetime"):
        unit = stats.get("unit")
        for key in ("min", "max", "mean", "std"):
            if key in stats:
                value = _fmt(stats.get(key))
                items.append((key, f"{value} {unit}" if value and unit else value))
        median = (stats.get("quantiles") or {}).get("0.5")
        if median is not None:
            items.append(("median", _fmt(median)))
        if stats.get("infinite"):
            items.append(("infinite", _fmt(stats.get("infinite"))))
    else:
        if stats.get("true_fraction") is not None:
            items.append(("true fraction", f"{float(stats['true_fraction']):.2%}"))
        if stats.get("other_count"):
            items.append(("other values", _fmt(stats.get("other_count"))))
    return [(label, value) for label, value in items if value != ""]


def _histogram_png(statistics):
    """A small PNG (bytes) of a stored numeric or datetime histogram; None when there are no bins."""
    histogram = (statistics or {}).get("histogram") or {}
    edges, counts = list(histogram.get("edges") or []), list(histogram.get("counts") or [])
    if len(edges) < 2 or len(counts) != len(edges) - 1:
        return None

    dates = statistics.get("kind") == "datetime"
    if dates:
        import matplotlib.dates as mdates
        import pandas

        stamps = pandas.to_datetime(edges, utc=True).tz_localize(None)
        xs = [float(x) for x in mdates.date2num(stamps.to_pydatetime())]
    else:
        xs = [float(x) for x in edges]
    lefts = xs[:-1]
    widths = [xs[i + 1] - xs[i] for i in range(len(lefts))]
    align = "edge"
    if not any(widths):  # one zero-width bin: a constant column
        widths = [(1.0 / 24) if dates else (abs(xs[0]) * 0.1 or 1.0)] * len(lefts)
        align = "center"
    with _drawing(figsize=(3.8, 1.7), dpi=80) as figure:
        axes = figure.add_subplot()
        axes.bar(lefts, counts, width=widths, align=align, color="#0969da", alpha=0.7, edgecolor="white",
                 linewidth=0.5)
        if dates:
            locator = mdates.AutoDateLocator(maxticks=4)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.tick_params(labelsize=7)
        axes.set_ylabel("rows", fontsize=7)
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        return _png(figure, pad=0.4)


def _top_values_html(statistics):
    """Categorical and boolean top values as a bar list (HTML table), '' when there are none."""
    top = [pair for pair in (statistics or {}).get("top") or [] if isinstance(pair, (list, tuple)) and len(pair) == 2]
    if not top:
        return ""
    other = statistics.get("other_count") or 0
    largest = max([int(c or 0) for _, c in top] + [int(other)]) or 1
    count = statistics.get("count") or 0

    def row(label, value, muted=False):
        width = max(1, round(_BAR_WIDTH * int(value or 0) / largest))
        share = f" ({int(value) / count:.0%})" if count else ""
        bar = Markup(f'<span style="{_BAR_STYLE} width: {width}px;"></span>')
        name = Cell(_fmt(label, 40), _CSS["muted"] if muted else "", title=_fmt(label) or None)
        return [name, bar, Cell(f"{_fmt(value)}{share}", _CSS["num"])]

    rows = [row("(empty)" if _missing(v) or v == "" else v, c) for v, c in top]
    if other:
        rows.append(row("(other values)", other, muted=True))
    return _table(["value", "", "rows"], rows)


def _code_html(code):
    if code is None or str(code).strip() == "":
        return _muted("No code recorded.")
    code = str(code).rstrip("\n")
    block = f'<pre style="{_CODE_STYLE}">{_h(code)}</pre>'
    lines = code.count("\n") + 1
    if lines <= _CODE_OPEN_LINES:
        return Markup(block)
    return Markup(f'<details><summary style="cursor: pointer;">{_h(_plural(lines, "line"))} of code</summary>'
                  f"{block}</details>")


def _schema_text(schema):
    columns = (schema or {}).get("columns") if isinstance(schema, dict) else None
    if not columns:
        return ""
    return ", ".join(f"{name}: {dtype}" for name, dtype in columns.items())


class FeaturesView(View):
    """The registered features, one row each."""

    def __init__(self, features, *, live=False):
        super().__init__(live=live)
        self.features = list(features)

    def text(self):
        if not self.features:
            return "No registered features."
        lines = [_plural(len(self.features), "feature")]
        for feature in self.features:
            latest = feature.get("latest_version")
            version = f"v{latest}" if latest is not None else "-"
            description = _fmt(feature.get("description"), 60)
            lines.append(f"  {feature.get('name')}  {version}  ({_key_label(feature)})  {description}".rstrip())
        return "\n".join(lines)

    def html(self):
        if not self.features:
            hint = "Register one with mlops.register_feature(name, frame, entity=..., timestamp=...)."
            return str(_box(_title("No registered features"), _muted(hint)))
        rows = []
        for feature in self.features:
            latest = feature.get("latest_version")
            description = feature.get("description")
            rows.append([
                Cell(feature.get("name"), "font-weight: 600;"),
                Cell("" if latest is None else f"v{latest}", _CSS["num"]),
                _key_label(feature),
                _fmt(feature.get("owner")),
                Cell(_fmt(description, 80), title=_fmt(description) or None),
                Cell(_when(feature.get("created_at")), "white-space: nowrap;"),
            ])
        title = _title(_plural(len(self.features), "registered feature"), "%mlops feature NAME for one feature")
        headers = ["feature", "latest", "entity / timestamp", "owner", "description", "created"]
        return str(_box(title, Markup(_table(headers, rows))))


def features_view(features, *, live=False):
    """``api.list_features()`` rows as a table."""
    return FeaturesView(features, live=live)


class FeatureView(View):
    """One feature version: what it is, its code, sources, expectations, statistics and lineage."""

    def __init__(self, feature, *, versions=None, expectations=None, training_sets=None, live=False):
        super().__init__(live=live)
        self.feature = dict(feature or {})
        self.versions = None if versions is None else list(versions)
        self.expectations = None if expectations is None else list(expectations)
        self.training_sets = None if training_sets is None else list(training_sets)
        self._histogram = False  # not rendered yet (None: nothing to draw)

    @property
    def statistics(self):
        return self.feature.get("statistics") or {}

    def histogram(self):
        """The ``<img>`` HTML of the histogram (numeric and datetime), rendered once; '' if none."""
        if self._histogram is False:
            png = _histogram_png(self.statistics) if self.statistics.get("kind") in ("numeric", "datetime") else None
            self._histogram = _img(png, f"{self.feature.get('name')} histogram") if png else None
        return self._histogram or ""

    # -- text --

    def text(self):
        f = self.feature
        lines = [f"feature {_feature_label(f)}  ({_key_label(f)})  {_fmt(f.get('dtype'))}, {_fmt(f.get('rows'))} rows"]
        if f.get("description"):
            lines.append(f"  {_fmt(f.get('description'), 100)}")
        lines.append(f"  owner {_fmt(f.get('owner'))}, created {_when(f.get('created_at'))}")
        stats = ", ".join(f"{label}={value}" for label, value in _stat_items(self.statistics)[1:])
        if stats:
            lines.append(f"  statistics: {stats}")
        checks = _expectation_rows(f, self.expectations)
        if checks:
            lines.append("  expectations:")
            lines.extend(f"    {rule}  {_check_text(result) or 'not checked for this version'}" for rule, result in checks)
        if self.versions:
            lines.append("  versions: " + ", ".join(f"v{v.get('version')}" for v in self.versions))
        if self.training_sets:
            used = ", ".join(f"{t.get('name')} (v{t.get('version')})" for t in self.training_sets[:5])
            more = len(self.training_sets) - 5
            lines.append(f"  used by: {used}" + (f", … {more} more" if more > 0 else ""))
        return "\n".join(lines)

    # -- html parts --

    def _header(self):
        f = self.feature
        facts = [
            ("owner", _fmt(f.get("owner"))),
            ("entity / timestamp", _key_label(f)),
            ("dtype", _fmt(f.get("dtype"))),
            ("rows", _fmt(f.get("rows"))),
            ("created", _when(f.get("created_at")) + (f" by {f.get('created_by')}" if f.get("created_by") else "")),
        ]
        if f.get("run_id"):
            facts.append(("run", _short(f.get("run_id"))))
        tags = f.get("tags") or {}
        parts = [_title(f"Feature {_feature_label(f)}")]
        line = " · ".join(f"<b>{_h(label)}</b> {_h(value)}" for label, value in facts if value)
        parts.append(Markup(f"<div>{line}</div>"))
        if tags:
            badges = "".join(str(_badge(f"{k}={v}", _OTHER_COLOUR)) for k, v in sorted(tags.items()))
            parts.append(Markup(f'<div style="margin-top: 2px;">{badges}</div>'))
        if f.get("description"):
            parts.append(Markup(f'<div style="margin-top: 4px;">{_h(f.get("description"))}</div>'))
        return parts

    def _sources_part(self):
        sources = self.feature.get("sources") or []
        if not sources:
            return []
        rows = [[
            Cell(source.get("name"), "font-weight: 600;"),
            _num_cell(source.get("rows")),
            _mono(_fmt(source.get("digest"))[:12], title=source.get("digest")),
            Cell(_fmt(_schema_text(source.get("schema")), 80), title=_schema_text(source.get("schema")) or None),
        ] for source in sources]
        return [_title("Sources"), Markup(_table(["source", "rows", "fingerprint", "columns"], rows))]

    def _expectations_part(self):
        rows = _expectation_rows(self.feature, self.expectations)
        if not rows:
            return [_title("Expectations"), _muted("None set. Add some with mlops.expect(name, \"min=0\").")]
        cells = []
        for rule, result in rows:
            if result is None:
                verdict = Cell("not checked for this version", _CSS["muted"])
            elif result.get("passed"):
                verdict = Cell(_check_text(result), _CSS["ok"])
            else:
                verdict = Cell(Markup(f'<span style="{_CSS["error"]}">✗ failed</span>'
                                      + (f": {_h(_fmt(result.get('detail'), 200))}" if result.get("detail") else "")),
                               title=_fmt(result.get("detail")) or None)
            cells.append([_mono(rule), verdict])
        return [_title("Expectations", "results of the latest check of this version"),
                Markup(_table(["expectation", "check"], cells))]

    def _statistics_part(self):
        items = _stat_items(self.statistics)
        if not self.statistics:
            return [_title("Statistics"), _muted("No statistics recorded.")]
        table = _table(["statistic", "value"],
                       [[label, Cell(value, _CSS["num"] if label != "kind" else "")] for label, value in items])
        side = self.histogram() or _top_values_html(self.statistics)
        layout = "display: flex; flex-wrap: wrap; align-items: flex-start; gap: 12px;"
        return [_title("Statistics"), Markup(f'<div style="{layout}"><div>{table}</div><div>{side}</div></div>')]

    def _versions_part(self):
        if not self.versions:
            return []
        current = self.feature.get("version")
        shown = self.versions[:_FEATURE_VERSION_ROWS]
        rows = []
        for version in shown:
            number = version.get("version")
            style = f"{_CSS['num']} font-weight: 600;" + (f" {_CSS['best']}" if number == current else "")
            rows.append([
                Cell(f"v{number}", style, title="shown above" if number == current else None),
                Cell(_when(version.get("created_at")), "white-space: nowrap;"),
                _fmt(version.get("created_by")),
                _num_cell(version.get("rows")),
                _mono(_fmt(version.get("fingerprint"))[:12], title=version.get("fingerprint")),
            ])
        note = _plural(len(self.versions), "version")
        if len(self.versions) > len(shown):
            note += f", newest {len(shown)} shown"
        return [_title("Versions", note), Markup(_table(["version", "created", "by", "rows", "fingerprint"], rows))]

    def _training_sets_part(self):
        if self.training_sets is None:
            return []
        if not self.training_sets:
            return [_title("Used by"), _muted("No training set uses this feature yet.")]
        shown = self.training_sets[:_TRAINING_SET_ROWS]
        rows = [[
            Cell(entry.get("name"), "font-weight: 600;"),
            Cell("" if entry.get("version") is None else f"v{entry.get('version')}", _CSS["num"]),
            _mono(_short(entry.get("run_id")), title=entry.get("run_id")),
            _mono(_fmt(entry.get("digest"))[:12], title=entry.get("digest")),
            Cell(_when(entry.get("created_at")), "white-space: nowrap;"),
            ", ".join(entry.get("models") or []) or "-",
        ] for entry in shown]
        note = _plural(len(self.training_sets), "training set")
        if len(self.training_sets) > len(shown):
            note += f", newest {len(shown)} shown"
        return [_title("Used by", note),
                Markup(_table(["training set", "version used", "run", "fingerprint", "built", "models"], rows))]

    def html(self):
        if not self.feature:
            return str(_box(_title("No feature")))
        parts = [
            *self._header(),
            _title("Code"),
            _code_html(self.feature.get("code")),
            *self._sources_part(),
            *self._expectations_part(),
            *self._statistics_part(),
            *self._versions_part(),
            *self._training_sets_part(),
        ]
        return str(_box(*parts))


def feature_view(feature, *, versions=None, expectations=None, training_sets=None, live=False):
    """A card for ``feature`` (an ``api.get_feature`` dict).

    ``versions``: the feature's version records, newest first; ``expectations``: its rules
    (``store.get_expectations`` dicts, rule texts or ``Rule`` objects); ``training_sets``:
    ``api.training_sets_using`` rows.
    """
    return FeatureView(feature, versions=versions, expectations=expectations, training_sets=training_sets, live=live)


# ---- lineage ------------------------------------------------------------------------------

_LINEAGE_COLOURS = {"model": "#1a7f37", "run": "#0969da", "pipeline": "#8250df", "notebook": "#bf8700",
                    "training_set": "#bc4c00", "feature": "#0a7ea4", "source": "#6e7781", "code": "#6e7781"}
_NODE_WIDTH, _NODE_HEIGHT, _COLUMN_GAP, _ROW_GAP = 190, 40, 50, 12


def _lineage_layout(nodes, edges):
    """``{node id: (column, row)}``: a node's column is its longest path from the model, so every
    edge points right; rows keep the order nodes were found in."""
    depth = {node["id"]: 0 for node in nodes}
    for _ in nodes:  # longest paths in a DAG settle within len(nodes) passes
        changed = False
        for start, end in edges:
            if depth[end] < depth[start] + 1:
                depth[end], changed = depth[start] + 1, True
        if not changed:
            break
    rows = {}
    place = {}
    for node in nodes:
        column = depth[node["id"]]
        place[node["id"]] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return place


def _lineage_svg(nodes, edges):
    place = _lineage_layout(nodes, edges)
    width = (max(c for c, _ in place.values()) + 1) * (_NODE_WIDTH + _COLUMN_GAP)
    height = (max(r for _, r in place.values()) + 1) * (_NODE_HEIGHT + _ROW_GAP) + _ROW_GAP

    def corner(node_id):
        column, row = place[node_id]
        return column * (_NODE_WIDTH + _COLUMN_GAP), _ROW_GAP + row * (_NODE_HEIGHT + _ROW_GAP)

    parts = []
    for start, end in edges:
        (x1, y1), (x2, y2) = corner(start), corner(end)
        x1, y1, y2 = x1 + _NODE_WIDTH, y1 + _NODE_HEIGHT / 2, y2 + _NODE_HEIGHT / 2
        middle = (x1 + x2) / 2
        parts.append(f'<path d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}" fill="none" '
                     'stroke="rgba(128,128,128,0.7)" stroke-width="1.2"/>')
    for node in nodes:
        x, y = corner(node["id"])
        colour = _LINEAGE_COLOURS.get(node["kind"], _OTHER_COLOUR)
        parts.append(
            f'<g><title>{_h(node["kind"])}: {_h(node["label"])} {_h(node["detail"])}</title>'
            f'<rect x="{x}" y="{y}" width="{_NODE_WIDTH}" height="{_NODE_HEIGHT}" rx="5" fill="{colour}" '
            f'fill-opacity="0.12" stroke="{colour}"/>'
            f'<text x="{x + 8}" y="{y + 16}" font-size="12" font-weight="600" fill="currentColor">'
            f'{_h(_fmt(node["label"], 27))}</text>'
            f'<text x="{x + 8}" y="{y + 31}" font-size="10" fill="currentColor" opacity="0.7">'
            f'{_h(_fmt(node["detail"], 32))}</text></g>'
        )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">{"".join(parts)}</svg>')


class LineageView(View):
    """A model version's lineage (``api.lineage``) as a left-to-right SVG graph, text as an indented list."""

    def __init__(self, lineage, *, live=False):
        super().__init__(live=live)
        self.lineage = lineage

    def text(self):
        children = {}
        for start, end in self.lineage["edges"]:
            children.setdefault(start, []).append(end)
        by_id = {node["id"]: node for node in self.lineage["nodes"]}
        lines, seen = [], set()

        def walk(node_id, depth):
            node = by_id[node_id]
            again = " (above)" if node_id in seen else ""
            lines.append(f"{'  ' * depth}{node['kind']}: {node['label']}  {node['detail']}{again}".rstrip())
            if node_id not in seen:
                seen.add(node_id)
                for child in children.get(node_id, []):
                    walk(child, depth + 1)

        walk(self.lineage["nodes"][0]["id"], 0)
        return "\n".join(lines)

    def html(self):
        model = self.lineage["model"]
        notebook = self.lineage["notebook"]
        note = f"from notebook {notebook['path']}" if notebook else "no notebook recorded"
        return str(_box(_title(f"Lineage of {model['name']} v{model['version']}", note),
                        Markup(_lineage_svg(self.lineage["nodes"], self.lineage["edges"]))))


def lineage_view(lineage, *, live=False):
    return LineageView(lineage, live=live)


# ---- monitoring and audit ------------------------------------------------------------------


def _monitor_png(result):
    """One PNG of three plots: PSI per feature (threshold dashed), predictions per time bucket,
    and the served metric per bucket where labels exist (the training value dashed)."""

    with _drawing(figsize=(11, 2.8), dpi=80) as figure:
        drift_axes, predictions_axes, performance_axes = figure.subplots(1, 3)
        drift = result["drift"].dropna(subset=["psi"])
        colours = ["#d1242f" if drifted else "#0969da" for drifted in drift["drifted"]]
        drift_axes.barh([_mpl_text(f) for f in drift["feature"]], drift["psi"], color=colours)
        drift_axes.axvline(result["thresholds"]["psi"], color="grey", linestyle="--", linewidth=1)
        drift_axes.set_title("drift (PSI)", fontsize=10)
        predictions = result["predictions"]
        if "prediction" in predictions:  # a classifier: stacked counts per class
            table = predictions.pivot_table(index="bucket", columns="prediction", values="count", fill_value=0)
            bottom = None
            for label in table.columns:
                predictions_axes.bar(table.index, table[label], bottom=bottom, width=0.03, label=_mpl_text(label))
                bottom = table[label] if bottom is None else bottom + table[label]
            if len(table.columns):
                predictions_axes.legend(fontsize=7)
        elif len(predictions):
            predictions_axes.plot(predictions["bucket"], predictions["p50"], marker="o", label="median")
            predictions_axes.fill_between(predictions["bucket"], predictions["p05"], predictions["p95"], alpha=0.2)
        predictions_axes.set_title("predictions over time", fontsize=10)
        summary, over_time = result["performance"], result["performance_over_time"]
        if summary is not None:
            performance_axes.plot(over_time["bucket"], over_time["value"], marker="o")
            if summary["training_value"] is not None:
                performance_axes.axhline(summary["training_value"], color="grey", linestyle="--", linewidth=1)
            performance_axes.set_title(f"{summary['metric']} where labelled", fontsize=10)
        else:
            performance_axes.set_title("performance: no labels yet", fontsize=10)
        for axes in (drift_axes, predictions_axes, performance_axes):
            axes.tick_params(labelsize=7)
            axes.grid(alpha=0.3)
        figure.autofmt_xdate()
        return _png(figure)


class MonitorView(View):
    """``api.monitor``'s result: the verdict with its reasons, the drift table, and the plots."""

    def __init__(self, result, *, live=False):
        super().__init__(live=live)
        self.result = result

    def _verdict(self):
        result = self.result
        state = {True: "healthy", False: "UNHEALTHY", None: "not enough served rows to judge"}[result["healthy"]]
        return (f"{result['model']} v{result['version']} in {result['env']}: {state} "
                f"({result['rows']:,} rows in {result['requests']:,} requests)")

    def text(self):
        lines = [self._verdict(), *(f"  - {reason}" for reason in self.result["reasons"])]
        for row in self.result["drift"].itertuples():
            lines.append(f"  {row.feature}: {row.summary}")
        summary = self.result["performance"]
        if summary is not None:
            lines.append(f"  {summary['metric']} {summary['value']:.3g} on {summary['labels']:,} labels")
        return "\n".join(lines)

    def html(self):
        result = self.result
        colour = {True: "ok", False: "error", None: "muted"}[result["healthy"]]
        rows = [[row.feature, _fmt(row.version), _num_cell(row.served), _num_cell(row.psi), _num_cell(row.ks_pvalue),
                 Cell("drift", _CSS["error"]) if row.drifted else "", row.summary]
                for row in result["drift"].itertuples()]
        parts = [Markup(f'<div style="{_CSS[colour]}">{_h(self._verdict())}</div>'),
                 *(Markup(f"<div>• {_h(reason)}</div>") for reason in result["reasons"]),
                 Markup(_table(["feature", "version", "served", "PSI", "KS p", "", "summary"], rows))]
        summary = result["performance"]
        if summary is not None:
            parts.append(_muted(f"{summary['metric']} {summary['value']:.3g} on {summary['labels']:,} labels; "
                                f"at training {_fmt(summary['training_value']) or 'not recorded'}"))
        if result["rows"]:
            parts.append(Markup(_img(_monitor_png(result), "drift, predictions and performance")))
        return str(_box(*parts))


def monitor_view(result, *, live=False):
    return MonitorView(result, live=live)


class AuditView(View):
    """``api.audit_report``'s rows as a table, served requests already counted per day."""

    def __init__(self, frame, *, limit=50):
        super().__init__(live=False)
        self.frame = frame
        self.limit = limit

    def _rows(self):
        return [(_when(row.at), row.user, row.action, f"{row.object_type} {row.object_name}",
                 row.count, _fmt(row.detail if row.detail is not None else "", 80))
                for row in self.frame.head(self.limit).itertuples()]

    def text(self):
        return "\n".join("  ".join(str(value) for value in row) for row in self._rows()) or "no audit entries"

    def html(self):
        note = f"newest {min(self.limit, len(self.frame))} of {len(self.frame)}"
        rows = [[when, user, action, what, _num_cell(count), detail] for when, user, action, what, count, detail
                in self._rows()]
        return str(_box(_title("Audit", note), Markup(_table(["when", "who", "did", "what", "count", "detail"], rows))))


def audit_view(frame, *, limit=50):
    return AuditView(frame, limit=limit)
