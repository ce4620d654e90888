// A tiny element builder: the panel is plain DOM so that it paints without a framework's start-up.

type Attributes = Record<string, string | undefined>;
type Child = Node | string | null | undefined | false;

/** `h('div', {class: 'x', 'data-y': 'z'}, child, …)`; undefined attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) {
      node.setAttribute(name, value);
    }
  }
  append(node, ...children);
  return node;
}

/** Append the children that are there: null, undefined and false stand for "nothing". */
export function append(parent: HTMLElement, ...children: Child[]): void {
  for (const child of children) {
    if (child) {
      parent.append(child);
    }
  }
}

/** A button that runs `action` on click, without letting the click reach the row under it. */
export function button(
  label: string,
  action: string,
  onClick: () => void,
  title?: string
): HTMLButtonElement {
  const node = h(
    'button',
    { class: 'jp-Button mlops-button', 'data-mlops-action': action, title },
    label
  );
  node.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return node;
}

/** The empty state: what is missing and how to make some. */
export function emptyState(text: string): HTMLElement {
  return h('div', { class: 'mlops-empty' }, text);
}

/** The error state: the server's one-line message and what to do next. */
export function errorState(error: unknown): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  return h(
    'div',
    { class: 'mlops-error' },
    h('div', { class: 'mlops-error-message' }, message),
    h('div', { class: 'mlops-hint' }, 'Fix the cause, then press Refresh.')
  );
}

/** Metrics as `name value` pairs, the first `count` of them, numbers shortened. */
export function metricText(
  metrics: Record<string, number>,
  count = 3
): string {
  return Object.entries(metrics)
    .slice(0, count)
    .map(([name, value]) => `${name} ${formatNumber(value)}`)
    .join(' · ');
}

export function formatNumber(value: unknown): string {
  // Four significant digits, without the trailing zeros toPrecision leaves (0.9900 → 0.99).
  return typeof value === 'number' && !Number.isInteger(value)
    ? String(Number(value.toPrecision(4)))
    : String(value);
}

/** A timestamp (ISO text or epoch seconds) as the user's local date and time. */
export function formatTime(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') {
    return '';
  }
  const date = new Date(typeof value === 'number' ? value * 1000 : value);
  return isNaN(date.getTime())
    ? String(value)
    : date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}
