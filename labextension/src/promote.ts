// Promote and demote behind confirmation dialogs. A promotion first asks the server what the
// gates say (POST check changes nothing), shows those verdicts, and only then promotes: with
// every gate passed as "Promote", past a failed gate as "Promote anyway" with a reason.
import {
  Dialog,
  InputDialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { IModelVersion, IPromotionCheck, IVerdict, postAPI } from './api';
import { append, h } from './dom';

// Offered first in the alias list; any other alias can be typed.
const USUAL_ALIASES = ['staging', 'production'];

/** Ask, check, confirm and promote; resolves true when an alias moved. */
export async function promote(
  name: string,
  version: IModelVersion
): Promise<boolean> {
  const choice = await InputDialog.getItem({
    title: `Promote ${name} v${version.version}`,
    label: 'Alias to give this version',
    items: USUAL_ALIASES.filter(a => !version.aliases.includes(a)).concat(
      USUAL_ALIASES.filter(a => version.aliases.includes(a))
    ),
    editable: true,
    okLabel: 'Check gates'
  });
  const alias = choice.value?.trim();
  if (!choice.button.accept || !alias) {
    return false;
  }
  const models = `models/${encodeURIComponent(name)}`;
  let check: IPromotionCheck;
  try {
    check = await postAPI<IPromotionCheck>(`${models}/check`, {
      version: version.version,
      to: alias
    });
  } catch (error) {
    await showErrorMessage(`Cannot promote ${name} v${version.version}`, error as Error);
    return false;
  }
  if (!check.changed) {
    await showDialog({
      title: `${name} v${version.version} already holds ${alias}`,
      buttons: [Dialog.okButton()]
    });
    return false;
  }
  const force = !check.passed;
  let reason = '';
  for (;;) {
    const body = new ConfirmBody(describeMove(check), check.verdicts, force, reason);
    const result = await showDialog({
      title: `Promote ${name} v${version.version} to ${alias}?`,
      body,
      buttons: [
        Dialog.cancelButton(),
        force
          ? Dialog.warnButton({ label: 'Promote anyway' })
          : Dialog.okButton({ label: 'Promote' })
      ],
      focusNodeSelector: 'textarea'
    });
    if (!result.button.accept) {
      return false;
    }
    reason = result.value ?? '';
    // The server would refuse a forced promotion without a reason too; asking here keeps what
    // the user typed and saves a round trip.
    if (!force || reason) {
      break;
    }
    await showErrorMessage(
      'A reason is required',
      'Promoting past a failed gate is recorded in the model history: say why.'
    );
  }
  try {
    await postAPI(`${models}/promote`, {
      version: version.version,
      to: alias,
      reason: reason || null,
      force
    });
  } catch (error) {
    await showErrorMessage(`${name} v${version.version} was not promoted`, error as Error);
    return false;
  }
  Notification.success(`${name} v${version.version} is now ${alias}`, {
    autoClose: 4000
  });
  return true;
}

/** Confirm and take one of the version's aliases away; resolves true when it moved. */
export async function demote(
  name: string,
  version: IModelVersion
): Promise<boolean> {
  let alias = version.aliases[0];
  if (version.aliases.length > 1) {
    const choice = await InputDialog.getItem({
      title: `Demote ${name} v${version.version}`,
      label: 'Alias to take away',
      items: version.aliases
    });
    if (!choice.button.accept || !choice.value) {
      return false;
    }
    alias = choice.value;
  }
  const result = await showDialog({
    title: `Take ${alias} away from ${name} v${version.version}?`,
    body: new ConfirmBody(
      `Loading ${name}@${alias} will fail until another version is promoted to ${alias}.`,
      [],
      false,
      ''
    ),
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Demote' })],
    focusNodeSelector: 'textarea'
  });
  if (!result.button.accept) {
    return false;
  }
  try {
    await postAPI(`models/${encodeURIComponent(name)}/demote`, {
      alias,
      reason: result.value || null
    });
  } catch (error) {
    await showErrorMessage(`${alias} was not taken away`, error as Error);
    return false;
  }
  Notification.success(`${name} v${version.version} no longer holds ${alias}`, {
    autoClose: 4000
  });
  return true;
}

function describeMove(check: IPromotionCheck): string {
  return check.from_version === null
    ? `No version holds ${check.alias} yet.`
    : `${check.alias} moves from v${check.from_version} to v${check.to_version}.`;
}

/** The dialog's body: what happens, the gates' verdicts, and a reason; its value is the reason. */
class ConfirmBody extends Widget implements Dialog.IBodyWidget<string> {
  private reason: HTMLTextAreaElement;

  constructor(summary: string, verdicts: IVerdict[], required: boolean, reason: string) {
    super();
    this.addClass('mlops-confirm');
    this.reason = h('textarea', {
      class: 'mlops-reason',
      'data-mlops-reason': '',
      rows: '2',
      placeholder: required
        ? 'Reason (required: a gate failed)'
        : 'Reason (optional, kept in the model history)'
    });
    this.reason.value = reason;
    append(
      this.node,
      h('p', {}, summary),
      verdicts.length
        ? h(
            'ul',
            { class: 'mlops-verdicts' },
            ...verdicts.map(v =>
              h(
                'li',
                {
                  class: `mlops-verdict mlops-verdict-${v.passed ? 'passed' : 'failed'}`,
                  'data-mlops-gate': v.gate
                },
                `${v.passed ? '✓' : '✗'} ${v.gate}: ${v.message}`
              )
            )
          )
        : null,
      required
        ? h('p', { class: 'mlops-warning' }, 'A gate failed. Promote anyway only with a reason.')
        : null,
      this.reason
    );
  }

  getValue(): string {
    return this.reason.value.trim();
  }
}
