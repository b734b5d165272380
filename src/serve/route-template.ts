import { ROUTES } from './routes.js';

/** Each template as a pattern: literal parts escaped, each `{name}` one non-empty segment. */
const PATTERNS = ROUTES.map((r) => ({
  template: r.template,
  pattern: new RegExp(
    `^${r.template
      .split(/\{[^}]+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]+')}$`,
  ),
}));

/**
 * The route template a path matched, for metrics labels: a raw path would put every user id
 * into a label (unbounded series, and personal data in the metrics). Unmatched paths share one.
 */
export function routeTemplateOf(rawUrl: string | undefined): string {
  const path = (rawUrl ?? '/').split('?')[0] ?? '/';
  return PATTERNS.find((p) => p.pattern.test(path))?.template ?? 'unmatched';
}
