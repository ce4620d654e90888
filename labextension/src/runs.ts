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
    let content: HTMLElement[];
    try {
      const page = await requestAPI<IPage<IRun>>(
        withQuery('runs', {
          experiment: this.experiment,
          limit: PAGE,
          offset: this.loaded
        })
      );
      this.loaded += page.items.length;
      content = this.render(page, first);
    } catch (error) {
      content = [errorState(error)];
    }
    // A first page replaces the list; "More" (or its error) comes after the rows shown.
    if (first) {
      this.node.replaceChildren();
    }
    this.node.querySelector('[data-mlops-action="more"]')?.remove();
    this.node.querySelector('.mlops-error')?.remove();
    this.node.append(...content);
  }

  private render(page: IPage<IRun>, first: boolean): HTMLElement[] {
    if (first && page.items.length === 0) {
      return [
        emptyState(
          `No runs yet: start one with %%mlops run NAME in a notebook (after %mlops experiment ${this.experiment}).`
        )
      ];
    }
    const rows = page.items.map(run => this.row(run));
    if (this.loaded < page.total) {
      const more = button(
        `More (${this.loaded} of ${page.total})`,
        'more',
        () => {
          more.disabled = true; // a second click would fetch the same page twice
          void this.fetchPage(false);
        },
        `Show the next ${PAGE} runs`
      );
      rows.push(more);
    }
    return rows;
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
