import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CliArgs } from './args.js';
import { STARTER_APP, STARTER_CONFIG } from './templates.js';

/** `nano-gateway init [DIR]`: write a starter config and app; never overwrite. */
export function runInit(args: CliArgs): number {
  const dir = path.resolve(args.positionals[0] ?? '.');
  const files = [
    { file: path.join(dir, 'nano.toml'), text: STARTER_CONFIG },
    { file: path.join(dir, 'apps', 'hello', 'server.js'), text: STARTER_APP },
  ];
  const existing = files.filter((f) => existsSync(f.file)).map((f) => path.relative(process.cwd(), f.file) || f.file);
  if (existing.length > 0) {
    process.stderr.write(
      `nano-gateway init: ${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; ` +
        'nothing written\n',
    );
    return 1;
  }
  for (const { file, text } of files) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text, { flag: 'wx' });
  }
  const shown = path.relative(process.cwd(), dir) || '.';
  process.stdout.write(
    `wrote ${path.join(shown, 'nano.toml')} and ${path.join(shown, 'apps/hello/server.js')}\n` +
      `run: ${shown === '.' ? '' : `cd ${shown} && `}npx nano-gateway\n` +
      'then: curl -H "Host: hello.localhost" http://127.0.0.1:8080/\n',
  );
  return 0;
}
