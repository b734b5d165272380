/* eslint-disable no-control-regex -- these tests look for terminal control codes on purpose */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createSpinner } from '../../src/cli/spinner.js';

function capture(isTTY: boolean, env: NodeJS.ProcessEnv = {}) {
  let text = '';
  return { io: { err: (t: string) => void (text += t), env, isTTY }, text: () => text };
}

describe('spinner', () => {
  it('off a terminal: one plain line per wait, no carriage returns or escape codes', () => {
    const out = capture(false);
    const spinner = createSpinner(out.io);
    spinner.print('Open https://as.example/device and enter ABCD-EFGH\n');
    spinner.start('Waiting for you to approve the code on the other device...');
    spinner.start('Waiting for you to approve the code on the other device...');
    spinner.stop();
    assert.equal(
      out.text(),
      'Open https://as.example/device and enter ABCD-EFGH\nWaiting for you to approve the code on the other device...\n',
    );
    assert.doesNotMatch(out.text(), /[\r\x1b]/);
  });

  it('on a terminal: animates in place, keeps printed lines intact, and erases itself', async () => {
    const out = capture(true);
    const spinner = createSpinner(out.io);
    spinner.start('Waiting');
    await new Promise((r) => setTimeout(r, 300));
    spinner.print('a line');
    spinner.stop();
    const text = out.text();
    assert.ok((text.match(/Waiting/g) ?? []).length >= 3, 'redrawn several times');
    assert.match(text, /\r\x1b\[2Ka line\n/, 'the spinner line is cleared before a printed line');
    assert.ok(text.endsWith('\r\x1b[2K'), 'stop leaves a clean line');
    assert.match(text, /\x1b\[36m/, 'coloured on a terminal');
  });

  it('respects NO_COLOR and TERM=dumb', () => {
    const noColor = capture(true, { NO_COLOR: '1' });
    const a = createSpinner(noColor.io);
    a.start('Waiting');
    a.stop();
    assert.doesNotMatch(noColor.text(), /\x1b\[36m/);
    const dumb = capture(true, { TERM: 'dumb' });
    const b = createSpinner(dumb.io);
    b.start('Waiting');
    b.stop();
    assert.equal(dumb.text(), 'Waiting\n');
  });
});
