// A run's full record in the main area: opened by clicking a run row in the sidebar.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { requestAPI } from './api';
import { errorState, formatNumber, formatTime, h } from './dom';
import { runIcon } from './icons';

const SUMMARY: [string, string][] = [
  ['experiment', 'Experiment'],
  ['status', 'Status'],
  ['user', 'User'],
  ['start_time', 'Started'],
  ['end_time', 'Ended'],
  ['parent_run_id', 'Parent run'],
  ['notebook_path', 'Notebook'],
  ['source_path', 'Source'],
  ['git_commit', 'Git commit'],
  ['code_hash', 'Code hash'],
  ['python_version', 'Python']
];

/** Show run `id`, reusing its tab when it is already open. */
export function openRun(app: JupyterFrontEnd, id: string): void {
  const widgetId = `mlops-run-${id}`;
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === widgetId) {
      app.shell.activateById(widgetId);
      return;
    }
  }
  const content = new Widget();
  content.addClass('mlops-run-detail');
  content.node.setAttribute('data-mlops-run-detail', id);
  content.node.append(h('div', { class: 'mlops-loading' }, 'Loading run…'));
  const widget = new MainAreaWidget({ content });
  widget.id = widgetId;
  widget.title.label = `Run ${id.slice(0, 8)}`;
  widget.title.icon = runIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(widgetId);
  requestAPI<Record<string, any>>(`runs/${encodeURIComponent(id)}`).then(
    run => {
      widget.title.label = run.name ? `Run ${run.name}` : widget.title.label;
      content.node.replaceChildren(...renderRun(run));
    },
    error => content.node.replaceChildren(errorState(error))
  );
}

function renderRun(run: Record<string, any>): HTMLElement[] {
  const summary = SUMMARY.filter(([key]) => run[key] != null).map(
    ([key, label]): [string, string] => [
      label,
      key.endsWith('_time') ? formatTime(run[key]) : String(run[key])
    ]
  );
  const artifacts = (run.artifacts ?? []).map((a: any) => [
    a.path,
    `${a.size} bytes`,
    a.sha256
  ]);
  const datasets = (run.datasets ?? []).map((d: any) => [
    d.name,
    d.context,
    `${d.rows} rows`,
    d.digest
  ]);
  return [
    h('h2', {}, run.name ? `${run.name} (${run.id})` : run.id),
    table(summary),
    section('Metrics', pairs(run.metrics)),
    section('Parameters', pairs(run.params)),
    section('Tags', pairs(run.tags)),
    section('Artifacts', artifacts),
    section('Datasets', datasets),
    section('Packages', pairs(run.packages)),
    run.code
      ? h('details', {}, h('summary', {}, 'Code'), h('pre', {}, run.code))
      : null
  ].filter((node): node is HTMLElement => node !== null);
}

function pairs(values: Record<string, unknown> | undefined): string[][] {
  return Object.entries(values ?? {}).map(([key, value]) => [
    key,
    formatNumber(value)
  ]);
}

// An empty section says so rather than vanishing, so a reader knows nothing was recorded.
function section(title: string, rows: string[][]): HTMLElement {
  return h(
    'section',
    {},
    h('h3', {}, title),
    rows.length ? table(rows) : h('div', { class: 'mlops-empty' }, 'none recorded')
  );
}

function table(rows: string[][]): HTMLElement {
  return h(
    'table',
    { class: 'mlops-table' },
    ...rows.map(cells => h('tr', {}, ...cells.map(cell => h('td', {}, cell))))
  );
}
