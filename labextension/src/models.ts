// Models section: one row per model; expanding a row lists its versions with alias badges and
// the Promote / Demote actions.
import { IItems, IModel, IModelVersion, requestAPI } from './api';
import { button, emptyState, errorState, formatTime, h, metricText } from './dom';
import { demote, promote } from './promote';
import { ISection, matches, sectionFrame } from './section';

export class ModelsSection implements ISection {
  readonly node: HTMLElement;
  private body: HTMLElement;
  private count: HTMLElement;
  private items: IModel[] = [];
  private text = '';
  private expanded = new Set<string>();

  /** `changed` runs after a promotion or demotion, to redraw everything that shows aliases. */
  constructor(private changed: () => void) {
    ({ node: this.node, body: this.body, count: this.count } = sectionFrame(
      'models',
      'Models'
    ));
  }

  async refresh(): Promise<void> {
    try {
      this.items = (await requestAPI<IItems<IModel>>('models')).items;
    } catch (error) {
      this.count.textContent = '';
      this.body.replaceChildren(errorState(error));
      return;
    }
    const names = new Set(this.items.map(m => m.name));
    this.expanded = new Set([...this.expanded].filter(name => names.has(name)));
    await this.render();
  }

  async search(text: string): Promise<void> {
    this.text = text;
    await this.render();
  }

  private async render(): Promise<void> {
    const shown = this.items.filter(m => matches(m.name, this.text));
    this.count.textContent = ` (${this.items.length})`;
    if (!shown.length) {
      this.body.replaceChildren(
        emptyState(
          this.items.length
            ? `No model matches "${this.text}".`
            : 'No models yet: register one with mlops.register_model(model, NAME) inside a run.'
        )
      );
      return;
    }
    const groups = shown.map(m => this.group(m));
    this.body.replaceChildren(...groups.map(g => g.node));
    await Promise.all(groups.filter(g => g.open).map(g => g.load()));
  }

  private group(model: IModel) {
    const aliases = Object.entries(model.aliases).map(([alias, version]) =>
      h('span', { class: 'mlops-alias-summary' }, `${alias} v${version}`)
    );
    const header = h(
      'div',
      {
        class: 'mlops-row mlops-expandable',
        'data-mlops-model': model.name,
        'aria-expanded': 'false',
        role: 'button',
        tabindex: '0',
        title: `created by ${model.created_by}; click to show its versions`
      },
      h('span', { class: 'mlops-caret' }),
      h('span', { class: 'mlops-name' }, model.name),
      h(
        'span',
        { class: 'mlops-muted' },
        model.latest_version ? `latest v${model.latest_version}` : 'no versions'
      ),
      ...aliases
    );
    const versions = h('div', { class: 'mlops-versions' });
    const node = h('div', { class: 'mlops-group' }, header);
    const load = async () => {
      header.setAttribute('aria-expanded', 'true');
      versions.replaceChildren(h('div', { class: 'mlops-loading' }, 'Loading versions…'));
      node.append(versions);
      try {
        const { items } = await requestAPI<IItems<IModelVersion>>(
          `models/${encodeURIComponent(model.name)}/versions`
        );
        versions.replaceChildren(
          ...(items.length
            ? items.map(v => this.versionRow(model.name, v))
            : [emptyState(`No versions: register one with mlops.register_model(model, "${model.name}").`)])
        );
      } catch (error) {
        versions.replaceChildren(errorState(error));
      }
    };
    const toggle = () => {
      if (this.expanded.delete(model.name)) {
        header.setAttribute('aria-expanded', 'false');
        versions.remove();
      } else {
        this.expanded.add(model.name);
        void load();
      }
    };
    header.addEventListener('click', toggle);
    header.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        toggle();
      }
    });
    return { node, load, open: this.expanded.has(model.name) };
  }

  private versionRow(name: string, version: IModelVersion): HTMLElement {
    const act = (done: Promise<boolean>) =>
      void done.then(changed => changed && this.changed());
    return h(
      'div',
      {
        class: 'mlops-row mlops-version',
        'data-mlops-version': `${name}/${version.version}`,
        title: [
          version.description,
          version.model_class,
          `by ${version.created_by} ${formatTime(version.created_at)}`,
          version.run_id && `run ${version.run_id}`
        ]
          .filter(Boolean)
          .join('\n')
      },
      h('span', { class: 'mlops-version-tag' }, `v${version.version}`),
      ...version.aliases.map(alias => h('span', { class: 'mlops-alias' }, alias)),
      h('span', { class: 'mlops-metrics' }, metricText(version.metrics, 2)),
      h(
        'span',
        { class: 'mlops-actions' },
        button('Promote', 'promote', () => act(promote(name, version)), 'Give this version an alias, after the gates agree'),
        version.aliases.length
          ? button('Demote', 'demote', () => act(demote(name, version)), 'Take an alias away from this version')
          : null
      )
    );
  }
}
