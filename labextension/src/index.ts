// mlops-jupyter in JupyterLab: the registry sidebar, and the notebook's pipeline actions.
// Everything here talks only to the server extension's REST API under /mlops/api/.
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { convertNotebook } from './convert';
import { mlopsIcon } from './icons';
import { openRun } from './runDetail';
import { MlopsSidebar } from './sidebar';
import { markStep, watchStepBadges } from './stepTags';

const CONVERT = 'mlops:convert-notebook';
const MARK_STEP = 'mlops:mark-step';
const CATEGORY = 'MLOps';

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-jupyter:sidebar',
  description: 'The MLOps registry sidebar: features, experiments and runs, models.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new MlopsSidebar(id => openRun(app, id));
    shell.add(sidebar, 'left', { rank: 600 });
    // Remembers whether the panel was open across page reloads.
    restorer?.add(sidebar, sidebar.id);
  }
};

const notebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-jupyter:notebook',
  description: 'Convert a notebook to a pipeline; mark cells as pipeline steps.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const { commands } = app;
    commands.addCommand(CONVERT, {
      label: 'Convert to pipeline',
      caption: 'Save the notebook and convert it to a pipeline of steps',
      icon: mlopsIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: () =>
        tracker.currentWidget ? convertNotebook(tracker.currentWidget) : undefined
    });
    // The cell right-clicked when run from the context menu (right-clicking does not make a
    // cell active), else the active cell. Only code cells become steps.
    const targetCell = (args: ReadonlyPartialJSONObject): Cell | null => {
      const hit =
        args.origin === 'context-menu'
          ? app.contextMenuHitTest(node => node.classList.contains('jp-Cell'))
          : undefined;
      const cell =
        tracker.currentWidget?.content.widgets.find(c => c.node === hit) ??
        tracker.activeCell;
      return cell?.model.type === 'code' ? cell : null;
    };
    commands.addCommand(MARK_STEP, {
      label: 'Mark as pipeline step…',
      caption: 'Tag the code cell step:NAME, making it a step of the converted pipeline',
      isEnabled: args => targetCell(args) !== null,
      execute: args => {
        const cell = targetCell(args);
        return cell ? markStep(cell) : undefined;
      }
    });
    palette?.addItem({ command: CONVERT, category: CATEGORY });
    palette?.addItem({ command: MARK_STEP, category: CATEGORY });
    app.contextMenu.addItem({
      command: MARK_STEP,
      selector: '.jp-Notebook .jp-CodeCell',
      rank: 20,
      args: { origin: 'context-menu' }
    });

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        // The button converts its own notebook, even when another one has the focus.
        const button = new ToolbarButton({
          icon: mlopsIcon,
          label: 'Pipeline',
          tooltip: 'Convert to pipeline',
          onClick: () => void convertNotebook(panel)
        });
        button.node.setAttribute('data-mlops-action', 'convert');
        panel.toolbar.insertAfter('cellType', 'mlops-convert', button);
        void panel.context.ready.then(() => watchStepBadges(panel.content));
        return button;
      }
    });
  }
};

export default [sidebarPlugin, notebookPlugin];
