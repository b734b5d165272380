/**
 * What should happen after a failure, as data. The library decides *what* (log in again,
 * wait, fix the configuration...); each face decides how to say it: the CLI and the proxy
 * as a `latchkey …` command (src/cli/next-step.ts), a service as a link, an embedder in its
 * own words. Nothing here names a CLI command.
 */

export type NextActionKind =
  /** An interactive login for `server` is needed. */
  | 'login'
  /** Nothing to change: trying again later can succeed (see `retryAt`). */
  | 'retry'
  /** Logging out did not finish; run the logout again. */
  | 'logout'
  /** The caller's configuration or input is wrong; `detail` says what to change. */
  | 'configure'
  /** Something only the server's operator can fix; `detail` says what. */
  | 'operator'
  /** The local store needs a repair (restore a file or data key, or discard the store). */
  | 'repair-store'
  /** Run the connection diagnosis for `server`. */
  | 'diagnose'
  /** Read the recent lifecycle events to see what another process did. */
  | 'inspect-events';

export interface NextAction {
  readonly kind: NextActionKind;
  /** The server the action concerns, when it has one. */
  readonly server?: string | undefined;
  /** Face-neutral words that complete the action ("check its id at https://as…"). */
  readonly detail?: string | undefined;
  /**
   * `login`: true, the device flow is the one to use (or the one that failed); false, the
   * browser flow is (the device flow cannot work at this server).
   */
  readonly device?: boolean | undefined;
  /**
   * `login`: a login was just attempted, so this is "log in again". `logout` with `strict`:
   * the failure may pass, so a later strict logout can succeed.
   */
  readonly again?: boolean | undefined;
  /**
   * `logout`: a strict logout kept the credential because revocation failed; a best-effort
   * logout deletes the local copy anyway.
   */
  readonly strict?: boolean | undefined;
  /** `login`: the AS does not register clients itself; a client id must be supplied. */
  readonly needsClientId?: boolean | undefined;
  /** `login`: `server` is an enterprise identity provider; the sign-in is to its session. */
  readonly idp?: boolean | undefined;
  /** `repair-store`: the store file concerned. */
  readonly path?: string | undefined;
  /** `retry`: the earliest moment (epoch ms) a retry makes sense. */
  readonly retryAt?: number | undefined;
  /** `configure`: the library option to change (`maxMessageBytes`); each face names its own. */
  readonly option?: string | undefined;
  /**
   * `operator`: a new login may help too (some servers answer 500 instead of 401 to a token
   * they reject).
   */
  readonly orLogin?: boolean | undefined;
}

/** The library's own words for an action, used in `LatchkeyError.nextStep` and logs. */
export function describeNextAction(action: NextAction): string {
  const detail = action.detail === undefined ? '' : `; ${action.detail}`;
  switch (action.kind) {
    case 'login':
      return `${action.again === true ? 'log in again' : 'log in'}${loginTarget(action)}${detail}`;
    case 'retry':
      return action.detail ?? 'wait and retry';
    case 'logout':
      return `log out again${action.server === undefined ? '' : ` of ${action.server}`}${strictNote(action)}${detail}`;
    case 'diagnose':
      return `diagnose the connection${action.server === undefined ? '' : ` to ${action.server}`}${detail}`;
    case 'inspect-events':
      return `retry; if it keeps happening, the recent credential events show what the other process did${detail}`;
    case 'repair-store':
      return `${repairWords(action)}, or discard the stored credentials and log in again`;
    case 'configure':
      return `${action.detail ?? action.kind}${action.option === undefined ? '' : `; the \`${action.option}\` option sets it`}`;
    case 'operator':
      return `${action.detail ?? action.kind}${action.orLogin === true ? orLoginNote('logging in again') : ''}`;
  }
}

/** How to repair the store without losing it: the caller's words, else restore `path`. */
export function repairWords(action: NextAction): string {
  if (action.detail !== undefined) return action.detail;
  return action.path === undefined
    ? 'restore the store from a backup'
    : `restore ${action.path} from a backup`;
}

function strictNote(action: NextAction): string {
  if (action.strict !== true) return '';
  return `${action.again === true ? ' later,' : ''} or without strict mode to delete the local copy anyway`;
}

/** The `orLogin` clause of an `operator` action; `how` is each face's words for a login. */
export function orLoginNote(how: string): string {
  return `; if it began when your credential changed, ${how} gets a fresh token (some servers answer 500 instead of 401 to a token they reject)`;
}

function loginTarget(action: NextAction): string {
  const server = action.server === undefined ? '' : ` to ${action.server}`;
  const how =
    action.device === true ? ' with the device flow' : action.device === false ? ' in a browser' : '';
  const client = action.needsClientId === true ? ' with a registered client id' : '';
  return `${server}${how}${client}`;
}

export function configure(detail: string): NextAction {
  return { kind: 'configure', detail };
}

export function operator(detail: string): NextAction {
  return { kind: 'operator', detail };
}

export function loginAction(server: string, extra: Omit<NextAction, 'kind' | 'server'> = {}): NextAction {
  return { kind: 'login', server, ...extra };
}
