// Experiments section: one row per experiment; expanding a row fetches its first page of runs.
import { IExperiment, IItems, requestAPI } from './api';
import { emptyState, errorState, h } from './dom';
import { RunList } from './runs';
import { ISection, matches, sectionFrame } from './section';

export class ExperimentsSection implements ISection {
  readonly node: HTMLElement;
  private body: HTMLElement;
  private count: HTMLElement;
  private items: IExperiment[] = [];
  private text = '';
  // Kept across refreshes so that an expanded experiment stays open with fresh runs.
  private expanded = new Map<string, RunList>();

  constructor(private open: (id: string) => void) {
    ({ node: this.node, body: this.body, count: this.count } = sectionFrame(
      'experiments',
      'Experiments'
    ));
  }

  async refresh(): Promise<void> {
    try {
      this.items = (await requestAPI<IItems<IExperiment>>('experiments')).items;
    } catch (error) {
      this.count.textContent = '';
      this.body.replaceChildren(errorState(error));
      return;
    }
    const names = new Set(this.items.map(e => e.name));
    for (const name of this.expanded.keys()) {
      if (!names.has(name)) {
        this.expanded.delete(name);
      }
    }
    this.render();
    await Promise.all([...this.expanded.values()].map(list => list.reload()));
  }

  // Names are already here: searching filters them without asking the server.
  async search(text: string): Promise<void> {
    this.text = text;
    this.render();
  }

  private render(): void {
    const shown = this.items.filter(e => matches(e.name, this.text));
    this.count.textContent = ` (${this.items.length})`;
    if (!shown.length) {
      this.body.replaceChildren(
        emptyState(
          this.items.length
            ? `No experiment matches "${this.text}".`
            : 'No runs yet: start one with %%mlops run NAME in a notebook.'
        )
      );
      return;
    }
    this.body.replaceChildren(...shown.map(e => this.row(e)));
  }

  private row(experiment: IExperiment): HTMLElement {
    const list = this.expanded.get(experiment.name);
    const header = h(
      'div',
      {
        class: 'mlops-row mlops-expandable',
        'data-mlops-experiment': experiment.name,
        'aria-expanded': list ? 'true' : 'false',
        role: 'button',
        tabindex: '0',
        title: `created by ${experiment.created_by}; click to show its runs`
      },
      h('span', { class: 'mlops-caret' }),
      h('span', { class: 'mlops-name' }, experiment.name),
      h('span', { class: 'mlops-muted' }, `${experiment.runs} runs`)
    );
    const group = h('div', { class: 'mlops-group' }, header, list?.node);
    const toggle = () => {
      const open = this.expanded.get(experiment.name);
      if (open) {
        this.expanded.delete(experiment.name);
        open.node.remove();
        header.setAttribute('aria-expanded', 'false');
      } else {
        const runs = new RunList(experiment.name, this.open);
        this.expanded.set(experiment.name, runs);
        group.append(runs.node);
        header.setAttribute('aria-expanded', 'true');
        void runs.reload();
      }
    };
    header.addEventListener('click', toggle);
    header.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        toggle();
      }
    });
    return group;
  }
}
