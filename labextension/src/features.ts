// Features section: newest version of each feature and whether its expectations hold.
import { IFeature, IItems, requestAPI, withQuery } from './api';
import { emptyState, errorState, formatTime, h } from './dom';
import { ISection, sectionFrame } from './section';

export class FeaturesSection implements ISection {
  readonly node: HTMLElement;
  private body: HTMLElement;
  private count: HTMLElement;
  private text = '';

  constructor() {
    ({ node: this.node, body: this.body, count: this.count } = sectionFrame(
      'features',
      'Features'
    ));
  }

  search(text: string): Promise<void> {
    this.text = text;
    return this.refresh();
  }

  // The server searches names and descriptions, so a search is a fetch.
  async refresh(): Promise<void> {
    const asked = this.text;
    let items: IFeature[];
    try {
      items = (
        await requestAPI<IItems<IFeature>>(
          withQuery('features', { search: asked })
        )
      ).items;
    } catch (error) {
      this.count.textContent = '';
      this.body.replaceChildren(errorState(error));
      return;
    }
    if (asked !== this.text) {
      return; // a newer search is on its way: do not paint stale rows over it
    }
    this.count.textContent = ` (${items.length})`;
    this.body.replaceChildren(
      ...(items.length
        ? items.map(featureRow)
        : [
            emptyState(
              asked
                ? `No feature matches "${asked}".`
                : 'No features yet: register one with mlops.register_feature(NAME, values, entity=…, timestamp=…) in a notebook.'
            )
          ])
    );
  }
}

function featureRow(feature: IFeature): HTMLElement {
  const { status, rules, failures } = feature.expectations;
  const label =
    status === 'none'
      ? 'no expectations'
      : status === 'passed'
        ? `✓ ${rules} rule${rules === 1 ? '' : 's'}`
        : `✗ ${failures.length} of ${rules} failed`;
  const title = [
    feature.description,
    `${feature.dtype}, ${feature.rows} rows, by ${feature.created_by} ${formatTime(feature.created_at)}`,
    ...failures.map(f => `failed: ${typeof f === 'string' ? f : JSON.stringify(f)}`)
  ]
    .filter(Boolean)
    .join('\n');
  return h(
    'div',
    { class: 'mlops-row', 'data-mlops-feature': feature.name, title },
    h('span', { class: 'mlops-name' }, feature.name),
    h('span', { class: 'mlops-version-tag' }, `v${feature.version}`),
    h('span', { class: 'mlops-muted' }, feature.dtype),
    h(
      'span',
      { class: `mlops-expectations mlops-expectations-${status}` },
      label
    )
  );
}
