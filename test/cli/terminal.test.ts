/* eslint-disable no-control-regex -- these tests look for terminal control codes on purpose */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { approveDevice, type TestMcpServer } from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));
const SOCKET = `latchkey-test-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The device-flow display and the spinner in a real terminal: latchkey runs inside tmux and
 * the test reads the screen with capture-pane, as a person would see it.
 */
describe('latchkey login in a real terminal (tmux)', () => {
  let cli: CliEnv;
  let mcp: TestMcpServer;
  let env: Record<string, string>;
  before(async () => {
    cli = await startCliEnv({ deviceFlow: true });
    ({ mcp, env } = cli);
  });
  after(async () => {
    try {
      tmux('kill-server');
    } catch {
      // Already gone.
    }
    await cli.close();
  });

  it('shows the code and a live spinner, then a clean success line', async () => {
    const exports = Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const command = `env ${exports} TERM=xterm-256color ${process.execPath} --import ${TSX} ${CLI} login ${mcp.url} --device; echo EXIT=$?; sleep 60`;
    tmux('new-session', '-d', '-x', '160', '-y', '60', '-s', 'login', command);
    const screen = (): string => tmux('capture-pane', '-p', '-t', 'login', '-S', '-200');
    const code = await waitFor(
      'the device code on screen',
      () => /enter the code:\s+(\S+)/.exec(screen())?.[1],
    );
    const first = screen();
    assert.match(first, new RegExp(`To sign in to ${mcp.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(first, /[▀▄█]/, 'the QR code is drawn with block characters');
    const uri = /open this page on any device:\s+(\S+)/.exec(first)?.[1];
    assert.ok(uri !== undefined);
    // The spinner animates on its own line below the prompt.
    const frames = new Set<string>();
    await waitFor('several spinner frames', () => {
      const line = screen()
        .split('\n')
        .find((l) => l.includes('Waiting for you to approve'));
      if (line !== undefined) frames.add(line.trim()[0] ?? '');
      return frames.size >= 2 ? true : undefined;
    });
    await approveDevice(uri, code, { subject: 'terminal-user' });
    const final = await waitFor('the command to finish', () =>
      /EXIT=(\d+)/.test(screen()) ? screen() : undefined,
    );
    assert.match(final, /EXIT=0/);
    assert.match(final, /Logged in to /);
    assert.doesNotMatch(final, /Waiting for you to approve/, 'the spinner erased itself');
    assert.match(final, /enter the code:/, 'the prompt above it was not garbled');
  });

  it('off a terminal, stderr carries no carriage returns or escape codes', async () => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, 'login', mcp.url, '--device'], {
      env: { ...process.env, ...env, TERM: 'xterm-256color' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await waitFor('the device code', () => /enter the code:\s+(\S+)/.exec(stderr)?.[1]);
    const uri = /open this page on any device:\s+(\S+)/.exec(stderr)?.[1];
    assert.ok(uri !== undefined);
    await approveDevice(uri, code, { subject: 'pipe-user' });
    const exit = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(exit, 0, stderr);
    assert.doesNotMatch(stderr, /[\r\x1b]/);
    assert.match(stderr, /Waiting for you to approve the code on the other device\.\.\.\n/);
    assert.equal((stderr.match(/Waiting for you/g) ?? []).length, 1, 'printed once, not animated');
  });
});
