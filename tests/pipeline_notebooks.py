"""Notebooks written the way people write them, for the converter's tests.

``churn_notebook`` holds every case the converter must handle: a function and a class that
read notebook globals, a star import, ``%timeit`` split over lines, ``%pip`` inside an
``if``, a generator expression, mutation through methods and through a function, ``global``,
``del``, augmented assignment, names bound in loops and ``with`` blocks, imports used across
steps, a plotting cell, a parameters cell, ``%mlops`` lines and an intentional error.
"""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def code(source, *tags):
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def markdown(source):
    return new_markdown_cell(source)


def notebook(*cells):
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})


def write(node, path):
    nbformat.write(node, str(path))
    return path


CHURN_CELLS = [
    markdown("# Churn: from raw events to a model"),
    code(  # 1
        "%load_ext mlops_jupyter\n%matplotlib inline\n%config InlineBackend.figure_format = 'png'\n"
        "import numpy as np\nimport pandas as pd\nfrom math import *\nimport matplotlib.pyplot as plt",
        "step:load",
    ),
    code("n_customers = 300\nseed = 7\nthreshold = 0.5\nn_trees = 20", "parameters"),  # 2
    code(  # 3
        "rng = np.random.default_rng(seed)\n"
        "events = pd.DataFrame({\n"
        '    "customer": rng.integers(0, n_customers, 5 * n_customers),\n'
        '    "amount": rng.gamma(2.0, 30.0, 5 * n_customers).round(2),\n'
        "})\n"
        'events["day"] = rng.integers(0, 90, len(events))'
    ),
    code(  # 4: a function and a class that read globals when called
        "def spend_per_customer(frame):\n"
        '    totals = frame.groupby("customer")["amount"].sum()\n'
        "    return totals[totals > minimum_spend]\n\n"
        "minimum_spend = 10.0\n\n"
        "class Summary:\n"
        '    currency = "EUR"\n\n'
        "    def __init__(self, values):\n"
        "        self.mean = float(np.mean(values))\n"
        "        self.scale = scale_factor\n\n"
        "    def describe(self):\n"
        '        return f"{self.mean * self.scale:.2f} {self.currency}"'
    ),
    code(  # 5
        "scale_factor = 2.0\n"
        "spend = spend_per_customer(events)\n"
        "minimum_spend = 50.0\n"
        "big_spend = spend_per_customer(events)\n"
        "summary = Summary(spend.values).describe()\n"
        "squares_total = sum(v * v for v in spend.values if v > threshold)\n"
        "ratios = [round(v / spend.max(), 3) for v in spend.values[:5]]\n"
        "log_total = log(squares_total)",
        "step:features",
    ),
    code(  # 6
        "%timeit -n 2 -r 1 spend_per_customer(\\\n    events)\n"
        "if len(spend) > 1_000_000:\n    %pip install polars\n"
        '!echo "a shell line the pipeline does not run"'
    ),
    code(  # 7
        'frame = spend.to_frame("spend")\n'
        'frame["big"] = frame["spend"] > frame["spend"].median()\n'
        'frame["label"] = (frame["spend"] * rng.random(len(frame)) > 40).astype(int)\n'
        "history = []\n"
        "for week in range(3):\n"
        '    history.append(int(frame["label"].sum()) + week)\n'
        "total_labels = 0\n"
        'total_labels += int(frame["label"].sum())\n'
        "calls = 0\n\n"
        "def count_call():\n"
        "    global calls\n"
        "    calls += 1\n\n"
        "def add_ratio(table):\n"
        '    table["ratio"] = table["spend"] / table["spend"].max()\n\n'
        "count_call()\n"
        "add_ratio(frame)\n"
        'with open("labels.csv", "w") as handle:\n'
        "    frame.to_csv(handle)\n"
        "del big_spend",
        "step:labels",
    ),
    code(  # 8
        "%%mlops run train --tags team=growth\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        'X = frame[["spend", "big", "ratio"]].astype(float)\n'
        'y = frame["label"]\n'
        "model = RandomForestClassifier(n_estimators=n_trees, random_state=seed)\n"
        "model.fit(X, y)\n"
        "accuracy = model.score(X, y)\n"
        "count_call()\n"
        "%mlops log accuracy={accuracy}\n"
        "%mlops param trees={n_trees}",
        "step:train",
    ),
    code(  # 9: a plotting cell
        "fig, ax = plt.subplots()\n"
        'ax.hist(frame["spend"], bins=20)\n'
        'ax.set_title("spend per customer")\n'
        "plt.show()\n"
        "display(frame.head())\n"
        "frame.describe()"
    ),
    code("1 / 0", "raises-exception"),  # 10
    code(  # 11
        'report = {"accuracy": accuracy, "calls": calls, "labels": total_labels, "summary": summary,\n'
        '          "history": history, "log_total": round(log_total, 6)}\n'
        "report",
        "step:report",
    ),
]


def churn_notebook():
    return notebook(*CHURN_CELLS)


def headings_notebook():
    """No tags: steps come from the Markdown headings."""
    return notebook(
        markdown("# Prices"),
        code("import pandas as pd\nimport numpy as np"),
        markdown("## Load the data"),
        code("prices = pd.DataFrame({'item': list('abcdef'), 'price': [3.0, 5.5, 2.25, 8.0, 1.5, 4.0]})"),
        markdown("## Clean"),
        code("def with_tax(frame, rate=0.2):\n    return frame.assign(taxed=frame['price'] * (1 + rate))"),
        code("clean = with_tax(prices)\nclean = clean[clean['taxed'] > 2]"),
        markdown("## Summarise"),
        code("mean_taxed = clean['taxed'].mean()\nmost = clean.sort_values('taxed').iloc[-1]['item']"),
    )


def cells_notebook():
    """No tags and no headings: one step per cell, definitions joining the next, looks the one before."""
    return notebook(
        code("import statistics"),
        code("values = [4, 8, 15, 16, 23, 42]"),
        code("print(len(values))\nvalues"),
        code("def spread(xs):\n    return max(xs) - min(xs)"),
        code("middle = statistics.median(values)\nwidth = spread(values)"),
    )
