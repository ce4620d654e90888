// Pipeline steps from cell tags: "Mark as pipeline step…" sets the `step:NAME` tag the
// converter reads, and every tagged cell carries a badge with its step's name.
import { InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { Notebook } from '@jupyterlab/notebook';
import { h } from './dom';

const PREFIX = 'step:';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Identifiers Python will not take as a function name, which is what a step becomes.
const KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except ' +
    'finally for from global if import in is lambda nonlocal not or pass raise return try ' +
    'while with yield').split(' ')
);

export function stepOf(cell: Cell): string | null {
  const tags = (cell.model.getMetadata('tags') as string[] | undefined) ?? [];
  const tag = tags.find(t => t.startsWith(PREFIX));
  return tag ? tag.slice(PREFIX.length).trim() : null;
}

/** Why `name` cannot be a step's name, or null when it can. */
export function stepNameProblem(name: string): string | null {
  if (!IDENTIFIER.test(name)) {
    return `"${name}" is not a Python identifier: use letters, digits and _, not starting with a digit`;
  }
  if (KEYWORDS.has(name)) {
    return `"${name}" is a Python keyword`;
  }
  if (name === 'parameters') {
    return '"parameters" is the tag of the parameters cell, not a step name';
  }
  return null;
}

/** Ask for a step name until it is valid, then tag `cell` with it, replacing any step tag. */
export async function markStep(cell: Cell): Promise<void> {
  let text = stepOf(cell) ?? '';
  for (;;) {
    const result = await InputDialog.getText({
      title: 'Mark as pipeline step',
      label: 'Step name (a Python identifier)',
      placeholder: 'load_data',
      text,
      okLabel: 'Mark'
    });
    if (!result.button.accept || result.value === null) {
      return;
    }
    text = result.value.trim();
    const problem = stepNameProblem(text);
    if (!problem) {
      break;
    }
    await showErrorMessage('Not a valid step name', problem);
  }
  const tags = ((cell.model.getMetadata('tags') as string[] | undefined) ?? []).filter(
    t => !t.startsWith(PREFIX)
  );
  cell.model.setMetadata('tags', [...tags, PREFIX + text]);
}

/** Keep every cell's badge in line with its tags, for the life of the notebook. */
export function watchStepBadges(notebook: Notebook): void {
  const watched = new WeakSet<Cell>();
  const sync = () => {
    for (const cell of notebook.widgets) {
      if (!watched.has(cell)) {
        watched.add(cell);
        // Tags change through this command, the property inspector, or a collaborator.
        cell.model.metadataChanged.connect(() => showBadge(cell));
      }
      showBadge(cell);
    }
  };
  // Cell widgets for new model cells are made by the notebook's own handler of the same
  // signal; waiting a tick makes sure they exist whichever handler runs first.
  const later = () => void Promise.resolve().then(sync);
  const follow = () => notebook.model?.cells.changed.connect(later);
  notebook.modelChanged.connect(() => {
    follow();
    later();
  });
  follow();
  sync();
}

function showBadge(cell: Cell): void {
  const step = stepOf(cell);
  cell.toggleClass('mlops-step-cell', step !== null);
  let badge = cell.node.querySelector<HTMLElement>(':scope > .mlops-step-badge');
  if (step === null) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = h('div', { class: 'mlops-step-badge', title: 'Pipeline step (cell tag step:NAME)' });
    cell.node.prepend(badge);
  }
  badge.textContent = step;
}
