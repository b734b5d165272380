import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { middleEllipsis, terminalSafe, wrap } from '../../src/cli/fit.js';

describe('fitting text to the terminal', () => {
  it('cuts in the middle, keeping both ends, to exactly the width', () => {
    assert.equal(middleEllipsis('https://mcp.example.com/mcp', 40), 'https://mcp.example.com/mcp');
    const cut = middleEllipsis('https://mcp.example.com/a/very/long/path/to/the/mcp', 20);
    assert.equal(cut.length, 20);
    assert.match(cut, /^https:\/\/mc.*….*the\/mcp$/);
  });

  it('wraps words to the width, indents continuations, and cuts a word longer than a line', () => {
    const lines = wrap('the authorization server did not answer within 30 s', 20, 4);
    assert.deepEqual(lines, ['the authorization', '    server did not', '    answer within 30', '    s']);
    const long = wrap('x'.repeat(45), 20, 4);
    assert.ok(long.every((l) => l.length <= 20));
    assert.equal(long.join('').replace(/ /g, ''), 'x'.repeat(45));
  });

  it('turns control characters and bidi overrides into ?', () => {
    assert.equal(terminalSafe('ann\u001b[2J\u009b1m\u202eevil'), 'ann?[2J?1m?evil');
    assert.equal(terminalSafe('ann@example.com'), 'ann@example.com');
  });
});
