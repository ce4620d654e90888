// The "MLOps" sidebar: registry status, search, refresh, and the three sections.
// Nothing is fetched until the panel is first shown, and then only what the first screen
// needs (experiments and models, not their runs or versions), so it paints fast on a big
// registry.
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { IStatus, requestAPI } from './api';
import { button, errorState, h } from './dom';
import { ExperimentsSection } from './experiments';
import { FeaturesSection } from './features';
import { mlopsIcon } from './icons';
import { ModelsSection } from './models';
import { ISection } from './section';

// Typing in the search box waits this long for a pause before searching.
const SEARCH_DELAY_MS = 250;

export class MlopsSidebar extends Widget {
  private sections: ISection[];
  private status = h('div', { class: 'mlops-status-line' });
  private started = false;
  private searchTimer = 0;

  constructor(openRun: (id: string) => void) {
    super();
    this.id = 'mlops-sidebar';
    this.addClass('mlops-sidebar');
    this.title.icon = mlopsIcon;
    this.title.caption = 'MLOps';
    this.sections = [
      new FeaturesSection(),
      new ExperimentsSection(openRun),
      new ModelsSection(() => void this.refresh())
    ];
    const search = h('input', {
      class: 'jp-mod-styled mlops-search',
      type: 'search',
      'data-mlops-search': '',
      placeholder: 'Search features, experiments, models',
      'aria-label': 'Search'
    });
    search.addEventListener('input', () => {
      window.clearTimeout(this.searchTimer);
      this.searchTimer = window.setTimeout(
        () => void this.settle(this.sections.map(s => s.search(search.value.trim()))),
        SEARCH_DELAY_MS
      );
    });
    this.node.append(
      h(
        'header',
        { class: 'mlops-header' },
        h('h2', {}, 'MLOps'),
        button('Refresh', 'refresh', () => void this.refresh(), 'Fetch everything again')
      ),
      this.status,
      search,
      ...this.sections.map(s => s.node)
    );
  }

  /** Fetch everything afresh; `data-mlops-ready` is "false" until it is all on screen. */
  refresh(): Promise<void> {
    return this.settle([this.loadAll()]);
  }

  // The status first: when the registry cannot be reached, one error says why instead of
  // the same message in every section.
  private async loadAll(): Promise<void> {
    let status: IStatus;
    try {
      status = await requestAPI<IStatus>('status');
    } catch (error) {
      this.status.replaceChildren(errorState(error));
      this.sections.forEach(s => (s.node.hidden = true));
      return;
    }
    this.status.replaceChildren(`${status.registry} · ${status.user}`);
    this.status.title = status.experiment
      ? `active experiment: ${status.experiment}`
      : 'no active experiment';
    this.sections.forEach(s => (s.node.hidden = false));
    await Promise.all(this.sections.map(s => s.refresh()));
  }

  protected onAfterShow(msg: Message): void {
    this.start();
  }

  // A panel restored open at start-up is attached visible and gets no after-show message.
  protected onAfterAttach(msg: Message): void {
    if (this.isVisible) {
      this.start();
    }
  }

  private start(): void {
    if (!this.started) {
      this.started = true;
      const opened = performance.now();
      void this.refresh().then(() =>
        // For the benchmark: milliseconds from the panel opening to its first data painted.
        this.node.setAttribute(
          'data-mlops-load-ms',
          String(Math.round(performance.now() - opened))
        )
      );
    }
  }

  private async settle(work: Promise<void>[]): Promise<void> {
    this.node.setAttribute('data-mlops-ready', 'false');
    await Promise.all(work);
    this.node.setAttribute('data-mlops-ready', 'true');
  }
}
