/**
 * Fitting text into a terminal of a given width. Widths are counted in UTF-16 code units:
 * good for the URLs, states and durations status prints; a wide (CJK) account name may
 * overshoot by a few columns.
 */

/** The default width a table must fit: the classic terminal, and what most panes have at least. */
export const TERMINAL_WIDTH = 80;

/** `text`, or its start and end around an ellipsis when longer than `width`. */
export function middleEllipsis(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 1) return '…'.slice(0, width);
  const keep = width - 1;
  const head = Math.ceil(keep / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
}

/** Word-wrap `text` to `width`, continuation lines indented by `indent` spaces; long words are cut. */
export function wrap(text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  const room = (): number => width - (lines.length === 0 ? 0 : indent);
  for (const word of text.split(/\s+/).filter(Boolean)) {
    let rest = word;
    while (rest.length > 0) {
      const sep = line === '' ? '' : ' ';
      if (line.length + sep.length + rest.length <= room()) {
        line += sep + rest;
        rest = '';
      } else if (line !== '') {
        lines.push(line);
        line = '';
      } else {
        const cut = room();
        lines.push(rest.slice(0, cut));
        rest = rest.slice(cut);
      }
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : ' '.repeat(indent) + l));
}

/**
 * Text from a token or the network made safe for a terminal: C0 and C1 controls (ESC, the
 * one-byte CSI) and bidi overrides become `?`, so a stored value can never move the cursor,
 * recolour the screen or reorder what is shown around it.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '?');
}
