// "Convert to pipeline": save the notebook, have the server convert it, show what came out.
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { IConversion, postAPI } from './api';
import { append, h } from './dom';

export async function convertNotebook(panel: NotebookPanel): Promise<void> {
  const { context } = panel;
  const title = `Convert ${context.localPath} to a pipeline`;
  let result: IConversion;
  try {
    // The server reads the file on disk, so what the user sees must be saved first.
    await context.save();
    result = await postAPI<IConversion>('convert', { path: context.path });
  } catch (error) {
    await showErrorMessage(title, error as Error);
    return;
  }
  await showDialog({
    title: `Pipeline written to ${result.directory}`,
    body: conversionBody(result),
    buttons: [Dialog.okButton()]
  });
}

function conversionBody(result: IConversion): Widget {
  const body = new Widget();
  body.addClass('mlops-conversion');
  body.node.setAttribute('data-mlops-conversion', result.directory);
  const steps = result.steps.map(step =>
    h(
      'li',
      { 'data-mlops-step': step.name },
      h('strong', {}, step.name),
      ` (cells ${step.cells.join(', ')})`,
      step.inputs.length ? ` ← ${step.inputs.join(', ')}` : '',
      step.outputs.length ? ` → ${step.outputs.join(', ')}` : ''
    )
  );
  const warnings = result.warnings.map(w =>
    h(
      'li',
      { class: 'mlops-warning' },
      [w.step && `step ${w.step}`, w.cell !== null && `cell ${w.cell}`]
        .filter(Boolean)
        .join(', ') + (w.step || w.cell !== null ? ': ' : '') + w.message
    )
  );
  append(
    body.node,
    h('p', {}, `${result.steps.length} step${result.steps.length === 1 ? '' : 's'} found, in this order:`),
    h('ol', {}, ...steps),
    warnings.length ? h('p', {}, 'Warnings:') : null,
    warnings.length ? h('ul', {}, ...warnings) : null,
    h('p', { class: 'mlops-hint' }, `Run it with: mlops pipeline run ${result.directory}`)
  );
  return body;
}
