/**
 * Find the first HTML form on a page and what submitting it would send. Regular expressions
 * are enough here: the pages come from oidc-provider's own small templates, and the driver
 * only needs the action, the method and the named inputs with their values.
 */
export interface HtmlForm {
  action: string;
  method: string;
  /** Every named input in document order: hidden ones with their value, visible ones too. */
  inputs: { name: string; type: string; value: string }[];
}

export function findForm(html: string): HtmlForm | undefined {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (match === null) return undefined;
  const attributes = parseAttributes(match[1] ?? '');
  const inputs: HtmlForm['inputs'] = [];
  for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const attrs = parseAttributes(input[1] ?? '');
    const name = attrs.get('name');
    if (name === undefined) continue;
    inputs.push({ name, type: (attrs.get('type') ?? 'text').toLowerCase(), value: attrs.get('value') ?? '' });
  }
  return {
    action: attributes.get('action') ?? '',
    method: (attributes.get('method') ?? 'get').toUpperCase(),
    inputs,
  };
}

/** The href of the first link whose target contains `fragment`. */
export function findLink(html: string, fragment: string): string | undefined {
  for (const link of html.matchAll(/<a\b([^>]*)>/gi)) {
    const href = parseAttributes(link[1] ?? '').get('href');
    if (href?.includes(fragment)) return href;
  }
  return undefined;
}

function parseAttributes(source: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const m of source.matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    const name = (m[1] ?? '').toLowerCase();
    attributes.set(name, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return attributes;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, entity: string) => {
    const lower = entity.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower] ?? entity;
  });
}
