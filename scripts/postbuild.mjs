// The CLI entry must be executable for `npx nano-gateway` and npm's bin links.
import { chmodSync, cpSync, existsSync } from 'node:fs';

const bin = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(bin)) chmodSync(bin, 0o755);

// The status page's HTML, CSS and script (src/admin/status-page.ts inlines them at run time).
cpSync(new URL('../src/admin/page/', import.meta.url), new URL('../dist/admin/page/', import.meta.url), {
  recursive: true,
  filter: (source) => !source.endsWith('.ts'),
});
