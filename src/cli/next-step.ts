/**
 * The CLI's and the proxy's words for a next action: a command the user can paste. The
 * library only says what should happen (src/next-action.ts); this is the one place that
 * turns it into `latchkey …`.
 */
import { isLatchkeyError } from '../errors.js';
import { MESSAGE_MAX, networkText } from '../network-text.js';
import { describeNextAction, type NextAction, orLoginNote, repairWords } from '../next-action.js';

/** The CLI flag for each library option a `configure` action may name. */
const OPTION_FLAGS: Readonly<Record<string, string>> = {
  maxMessageBytes: '`latchkey proxy --max-message-size <MiB>`',
};

export function loginCommand(server: string): string {
  return `latchkey login ${server}`;
}

export function renderNextStep(action: NextAction): string {
  const detail = action.detail === undefined ? '' : `; ${action.detail}`;
  switch (action.kind) {
    case 'login':
      return renderLogin(action, detail);
    case 'logout':
      return renderLogout(action, detail);
    case 'diagnose':
      return `check the URL, or run \`latchkey doctor${action.server === undefined ? '' : ` ${action.server}`}\`${detail}`;
    case 'inspect-events':
      return 'retry; if it keeps happening, `latchkey events` shows what the other process did';
    case 'repair-store':
      return `${repairWords(action)}; to give up the stored credentials instead, run \`latchkey reset --yes\` and log in again`;
    case 'configure':
      return renderConfigure(action);
    case 'operator':
      return action.orLogin === true && action.server !== undefined
        ? `${describeNextAction({ ...action, orLogin: false })}${orLoginNote(`\`${loginCommand(action.server)}\``)}`
        : describeNextAction(action);
    case 'retry':
      return describeNextAction(action);
  }
}

function renderLogout(action: NextAction, detail: string): string {
  const command = `latchkey logout${action.server === undefined ? '' : ` ${action.server}`}`;
  if (action.strict !== true) return `retry \`${command}\`${detail}`;
  return action.again === true
    ? `retry \`${command}\` later, or run it without --strict to delete the local copy anyway${detail}`
    : `run \`${command}\` without --strict to delete the local copy anyway${detail}`;
}

function renderLogin(action: NextAction, detail: string): string {
  const server = action.server ?? '<server-url>';
  if (action.needsClientId === true) {
    return `register a client at the authorization server, then run \`latchkey login ${server} --client-id <client-id>\`${detail}`;
  }
  if (action.idp === true) return `run \`latchkey login --idp ${server}\`${detail}`;
  const device = action.device === true ? ' --device' : '';
  const browser = action.device === false ? ' without --device, in a browser' : '';
  return `run \`${loginCommand(server)}${device}\`${action.again === true ? ' again' : ''}${browser}${detail}`;
}

function renderConfigure(action: NextAction): string {
  const flag = action.option === undefined ? undefined : OPTION_FLAGS[action.option];
  if (flag === undefined) return describeNextAction(action);
  return `${action.detail ?? 'change the setting'}; set it with ${flag}`;
}

/** An error as the CLI prints it: what happened, then the command to run. */
export function describeForCli(error: unknown): string | undefined {
  if (!isLatchkeyError(error) || error.next === undefined) return undefined;
  return renderNextStep(error.next);
}

/** What happened, then the command to run; a LatchkeyError's message is already safe. */
export function cliMessage(error: unknown): string {
  if (!isLatchkeyError(error)) return networkText(String(error), { maxLength: MESSAGE_MAX });
  const next = describeForCli(error);
  return next === undefined ? error.message : `${error.message} Next step: ${next}`;
}
