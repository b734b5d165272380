import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));
const SOCKET = `latchkey-demo-test-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A terminal with no display: no DISPLAY, WAYLAND_DISPLAY or BROWSER, as over SSH or in a container. */
function headless(args: string): string {
  return `env -u DISPLAY -u WAYLAND_DISPLAY -u BROWSER -u SSH_CONNECTION -u SSH_TTY TERM=xterm-256color ${process.execPath} ${BIN} demo ${args}; echo EXIT=$?; sleep 120`;
}

/** `latchkey demo` as a person runs it: in a real terminal (tmux), read off the screen. */
describe('latchkey demo in a real terminal without a display', () => {
  after(() => {
    try {
      tmux('kill-server');
    } catch {
      // Already gone.
    }
  });

  it("approves its own login, and shows none of oidc-provider's coloured warnings", async () => {
    tmux('new-session', '-d', '-x', '100', '-y', '80', '-s', 'demo', headless('--token-seconds 2'));
    const screen = (): string => tmux('capture-pane', '-p', '-t', 'demo', '-S', '-300');
    // Generous: the tour itself waits out one token lifetime; a loaded machine is slow to start.
    const final = await waitFor(
      'the demo to finish',
      () => (/EXIT=\d+|enter the code/.test(screen()) ? screen() : undefined),
      180_000,
    );
    assert.match(final, /EXIT=0/, final);
    assert.doesNotMatch(final, /oidc-provider (WARNING|NOTICE)/, 'no provider notices, coloured or not');
    assert.doesNotMatch(final, /enter the code/, 'no device code pointing at 127.0.0.1');
    assert.match(final, /--by-hand/, 'says how to sign in yourself');
    assert.match(final, /whoami -> "demo-user"/);
    assert.match(final, /logged in as "demo-user"/, 'the account, not the local subject');
    assert.match(final, /^http:\/\/127\.0\.0\.1:\d+\/mcp +demo-user +valid /m, 'status names the account');
  });

  it('--by-hand waits for the person, and says where the page works and how to skip it', async () => {
    tmux('new-session', '-d', '-x', '100', '-y', '80', '-s', 'hand', headless('--by-hand'));
    const screen = (): string => tmux('capture-pane', '-p', '-t', 'hand', '-S', '-300');
    const shown = await waitFor(
      'the device prompt',
      () => (/enter the code|EXIT=\d+/.test(screen()) ? screen() : undefined),
      120_000,
    );
    assert.match(shown, /enter the code/, shown);
    assert.match(shown, /use a browser on\s+this machine/);
    assert.match(shown, /Ctrl-C, then `latchkey demo`/);
    assert.doesNotMatch(shown, /oidc-provider (WARNING|NOTICE)/);
    tmux('send-keys', '-t', 'hand', 'C-c');
  });
});
