#!/usr/bin/env bash
# Virtualenvs for the optional export tests (tests/test_pipeline_export.py): one with the kfp SDK,
# one with Airflow 3, which pins its own SQLAlchemy and friends and so never goes into .venv.
# Neither gets mlops-jupyter: the exported jobs call the main venv's `mlops` by its path.
# A venv whose stamp already names the pinned versions is kept, so reruns cost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
ROOT="${MLOPS_TEST_EXPORT_ENVS:-.venv-export}"

setup() {  # NAME REQUIREMENT...
  local venv="$ROOT/$1" started=$SECONDS
  shift
  if [ "$(cat "$venv/.installed" 2>/dev/null)" = "$*" ]; then
    return
  fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # kfp-server-api is published only as a source archive, so wheels are preferred, not required.
  "$venv/bin/python" -m pip install --quiet --prefer-binary "$@"
  echo "$*" > "$venv/.installed"
  echo "export venv $venv: $* in $((SECONDS - started)) s"
}

setup kfp kfp==2.17.3
setup airflow apache-airflow==3.3.2 apache-airflow-providers-standard==1.21.0
