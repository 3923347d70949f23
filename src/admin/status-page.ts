import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * The status page (README, Status page): one self-contained HTML document,
 * assembled from `page/index.html`, `page/status.css` and `page/status.js`
 * (kept apart in the source tree so that each is linted and formatted as
 * what it is; `npm run build` copies them next to this module). The style
 * and the script are inlined, and the content security policy allows
 * exactly those two by hash: nothing else runs or loads, and the page talks
 * only to the admin listener it came from.
 */
export interface StatusPage {
  body: Buffer;
  headers: Record<string, string | number>;
}

const PAGE_DIR = new URL('./page/', import.meta.url);
const STYLE_SLOT = '<style></style>';
const SCRIPT_SLOT = '<script type="module"></script>';

let cached: StatusPage | null = null;

/** The page, read and hashed once (its files do not change while the gateway runs). */
export function statusPage(): StatusPage {
  cached ??= buildStatusPage();
  return cached;
}

export function buildStatusPage(dir: URL = PAGE_DIR): StatusPage {
  const read = (name: string): string => {
    try {
      return readFileSync(new URL(name, dir), 'utf8');
    } catch (err) {
      throw new Error(`status page asset ${name} is missing (npm run build copies it): ${(err as Error).message}`);
    }
  };
  const template = read('index.html');
  const css = read('status.css');
  const js = read('status.js');
  if (!template.includes(STYLE_SLOT) || !template.includes(SCRIPT_SLOT))
    throw new Error(`status page: index.html needs an empty ${STYLE_SLOT} and ${SCRIPT_SLOT}`);
  if (/<\/style/i.test(css) || /<\/script/i.test(js)) throw new Error('status page: an asset closes its own tag');
  // Function replacers: `$` in the assets is not a replacement pattern.
  const html = template
    .replace(STYLE_SLOT, () => `<style>${css}</style>`)
    .replace(SCRIPT_SLOT, () => `<script type="module">${js}</script>`);
  const body = Buffer.from(html, 'utf8');
  const policy = [
    "default-src 'self'",
    `script-src '${sha256(js)}'`,
    `style-src '${sha256(css)}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    body,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': body.length,
      'cache-control': 'no-store',
      'content-security-policy': policy,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    },
  };
}

function sha256(text: string): string {
  return `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
}
