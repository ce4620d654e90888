// What the sidebar asks of each of its sections, and the collapsible frame they share.
import { h } from './dom';

export interface ISection {
  /** The section's node, `[data-mlops-section=NAME]`. */
  readonly node: HTMLElement;
  /** Fetch afresh and render; settles once data, an empty state or an error is on screen. */
  refresh(): Promise<void>;
  /** Show what matches `text`; settles once rendered. */
  search(text: string): Promise<void>;
}

/** `<details open data-mlops-section=NAME>` with a title; returns the frame and its body. */
export function sectionFrame(
  name: string,
  title: string
): { node: HTMLElement; body: HTMLElement; count: HTMLElement } {
  const count = h('span', { class: 'mlops-count' });
  const body = h('div', { class: 'mlops-section-body' });
  const node = h(
    'details',
    { class: 'mlops-section', 'data-mlops-section': name, open: '' },
    h('summary', { class: 'mlops-section-title' }, title, count),
    body
  );
  return { node, body, count };
}

/** Case-insensitive substring match; an empty search matches everything. */
export function matches(text: string, search: string): boolean {
  return !search || text.toLowerCase().includes(search.toLowerCase());
}
