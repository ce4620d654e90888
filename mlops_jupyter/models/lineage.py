"""Where a model version came from, as data and as a graph.

model version → its run (→ the pipeline step's run → the pipeline run, with the notebook's
path and sha256) → the training sets built there → the feature versions they joined → each
feature's code and source datasets (by digest). ``nodes`` and ``edges`` are the same facts
as a graph, in the order they are drawn: one column per ``kind``, left to right.
"""

PIPELINE_TAG = "mlops.pipeline"
NOTEBOOK_PATH_TAG = "mlops.notebook.path"
NOTEBOOK_SHA256_TAG = "mlops.notebook.sha256"
KINDS = ("model", "run", "pipeline", "notebook", "training_set", "feature", "source", "code")


def build(version, records):
    """The lineage of ``version`` (a ``Store.get_model_version`` record) from ``Store.lineage_records``."""
    chain = records["runs"]
    pipeline_run = next((run for run in chain if PIPELINE_TAG in run["tags"]), None)
    result = {
        "model": {key: version[key] for key in ("name", "version", "aliases", "model_class", "artifact_sha256",
                                               "fingerprint", "run_id", "created_at", "created_by")},
        "runs": chain,
        "pipeline": None,
        "notebook": _notebook(chain, pipeline_run),
        "training_sets": records["training_sets"],
    }
    if pipeline_run is not None:
        tags = pipeline_run["tags"]
        result["pipeline"] = {"name": tags[PIPELINE_TAG], "run_id": pipeline_run["id"],
                              "directory": tags.get(f"{PIPELINE_TAG}.dir")}
    result["nodes"], result["edges"] = _graph(result, pipeline_run)
    return result


def _notebook(chain, pipeline_run):
    """The notebook the model came from: a pipeline's records its path and sha256, a notebook
    run only its path (Jupyter tells the kernel; the file's content is not hashed then)."""
    if pipeline_run is not None and pipeline_run["tags"].get(NOTEBOOK_PATH_TAG) not in (None, "None"):
        return {"path": pipeline_run["tags"][NOTEBOOK_PATH_TAG], "sha256": pipeline_run["tags"].get(NOTEBOOK_SHA256_TAG)}
    path = next((run["notebook_path"] for run in chain if run["notebook_path"]), None)
    return {"path": path, "sha256": None} if path else None


def _graph(result, pipeline_run):
    nodes, edges = [], []

    def node(node_id, kind, label, detail=""):
        if all(existing["id"] != node_id for existing in nodes):
            nodes.append({"id": node_id, "kind": kind, "label": label, "detail": detail})
        return node_id

    model = result["model"]
    model_id = node(f"model:{model['name']}/{model['version']}", "model", f"{model['name']} v{model['version']}",
                    ", ".join(model["aliases"]) or model["model_class"])
    previous = model_id
    for run in result["runs"]:
        kind = "pipeline" if run is pipeline_run else "run"
        label = f"pipeline {run['tags'][PIPELINE_TAG]}" if kind == "pipeline" else f"run {run['name']}"
        run_node = node(f"run:{run['id']}", kind, label, f"{run['id'][:8]} · {run['status']} · {run['user']}")
        edges.append((previous, run_node))
        previous = run_node
    outermost = previous
    if result["notebook"] is not None:
        sha256 = result["notebook"]["sha256"]
        edges.append((outermost, node(f"notebook:{result['notebook']['path']}", "notebook", result["notebook"]["path"],
                                     f"sha256 {sha256[:12]}" if sha256 else "")))
    for training_set in result["training_sets"]:
        set_node = node(f"training_set:{training_set['id']}", "training_set", f"training set {training_set['name']}",
                        f"{training_set['rows']:,} rows · {training_set['digest'][:12]}")
        edges.append((f"run:{training_set['run_id']}" if training_set["run_id"] else model_id, set_node))
        for feature in training_set["features"]:
            feature_node = node(f"feature:{feature['name']}@{feature['version']}", "feature",
                                f"{feature['name']} v{feature['version']}", feature["dtype"])
            edges.append((set_node, feature_node))
            for source in feature["sources"]:
                edges.append((feature_node, node(f"source:{source['digest']}", "source", source["name"],
                                                 f"{source['rows']:,} rows · {source['digest'][:12]}")))
            if feature["code_hash"]:
                edges.append((feature_node, node(f"code:{feature['code_hash']}", "code", "code",
                                                 feature["code_hash"][:12])))
    # A training set built in a sibling step names a run outside the chain: link it from the outermost run.
    known = {n["id"] for n in nodes}
    edges = [(start if start in known else outermost, end) for start, end in edges]
    return nodes, list(dict.fromkeys(edges))
