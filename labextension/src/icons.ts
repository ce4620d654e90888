// The extension's icons, as LabIcons so that they follow the theme's colours.
import { LabIcon } from '@jupyterlab/ui-components';

// A small "flow" glyph: three nodes joined, for the sidebar tab and the convert button.
export const mlopsIcon = new LabIcon({
  name: 'mlops-jupyter:mlops',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161"><circle cx="5" cy="6" r="3"/><circle cx="19" cy="6" r="3"/><circle cx="12" cy="19" r="3"/><path d="M7 7.5l4 9 1.6-.8-4-9zM17 7.5l-4 9-1.6-.8 4-9z"/></g></svg>'
});

// A play triangle in a circle: a run.
export const runIcon = new LabIcon({
  name: 'mlops-jupyter:run',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161"><path d="M12 2a10 10 0 100 20 10 10 0 000-20zm0 2a8 8 0 110 16 8 8 0 010-16zM10 8v8l6-4z"/></g></svg>'
});
