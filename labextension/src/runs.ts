// One experiment's runs, 50 at a time: an experiment may hold 10,000 runs, so only the page
// asked for is fetched and drawn, and "More" appends the next.
import { IPage, IRun, requestAPI, withQuery } from './api';
import { button, emptyState, errorState, formatTime, h, metricText } from './dom';

const PAGE = 50;

export class RunList {
  readonly node = h(
    'div',
    { class: 'mlops-runs' },
    h('div', { class: 'mlops-loading' }, 'Loading runs…')
  );
  private loaded = 0;

  constructor(
    private experiment: string,
    private open: (id: string) => void
  ) {}

  /** Start again from the first page. */
  reload(): Promise<void> {
    this.loaded = 0;
    return this.fetchPage(true);
  }

  private async fetchPage(first: boolean): Promise<void> {
    let page: IPage<IRun>;
    try {
      page = await requestAPI<IPage<IRun>>(
        withQuery('runs', {
          experiment: this.experiment,
          limit: PAGE,
          offset: this.loaded
        })
      );
    } catch (error) {
      // A failed first page replaces the list; a failed "More" keeps the rows already shown.
      this.node.querySelector('[data-mlops-action="more"]')?.remove();
      this.node.append(errorState(error));
      return;
    }
    if (first) {
      this.node.replaceChildren();
    }
    this.node.querySelector('[data-mlops-action="more"]')?.remove();
    this.node.querySelector('.mlops-error')?.remove();
    this.loaded += page.items.length;
    if (first && page.items.length === 0) {
      this.node.append(
        emptyState(
          `No runs yet: start one with %%mlops run NAME in a notebook (after %mlops experiment ${this.experiment}).`
        )
      );
      return;
    }
    this.node.append(...page.items.map(run => this.row(run)));
    if (this.loaded < page.total) {
      this.node.append(
        button(
          `More (${this.loaded} of ${page.total})`,
          'more',
          () => void this.fetchPage(false),
          `Show the next ${PAGE} runs`
        )
      );
    }
  }

  private row(run: IRun): HTMLElement {
    const node = h(
      'div',
      {
        class: 'mlops-row mlops-run',
        'data-mlops-run': run.id,
        role: 'button',
        tabindex: '0',
        title: `${run.id}\n${run.user}, started ${formatTime(run.start_time)}\nClick to open`
      },
      h('span', {
        class: `mlops-status mlops-status-${run.status.toLowerCase()}`,
        title: run.status
      }),
      h('span', { class: 'mlops-name' }, run.name || run.id.slice(0, 8)),
      h('span', { class: 'mlops-metrics' }, metricText(run.metrics))
    );
    node.addEventListener('click', () => this.open(run.id));
    node.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.open(run.id);
      }
    });
    return node;
  }
}
