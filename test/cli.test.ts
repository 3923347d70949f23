import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  CLI,
  canConnect,
  fixtureApp,
  freePort,
  GatewayProcess,
  gatewaySection,
  ROOT,
  runCli,
  tempDir,
  writeFiles,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir('nano-cli-');
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** stderr is exactly one non-empty line. */
function assertOneLine(stderr: string): string {
  assert.ok(stderr.endsWith('\n'), `stderr should end with a newline: ${JSON.stringify(stderr)}`);
  const lines = stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr should be one line: ${JSON.stringify(stderr)}`);
  assert.ok(lines[0]!.trim().length > 0, 'stderr line is not empty');
  return lines[0]!;
}

describe('check', () => {
  const config = `[gateway]
listen = "127.0.0.1:0"
default_app = "beta"

[admin]
listen = false

[apps.alpha]
hosts = ["Alpha.Test", "*.alpha.test"]
entry = "server.js"

[apps.beta]
hosts = ["beta.test"]
entry = "server.js"
`;

  test('a valid config: exit 0, each app with its hosts, the default marked', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'nano.toml': config, 'server.js': '' });
      const res = await runCli(['check', '-c', path.join(dir, 'nano.toml')]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr, '');
      const lines = res.stdout.split('\n');
      const alpha = lines.filter((l) => /\balpha\b/.test(l) && l.includes('alpha.test'));
      const beta = lines.filter((l) => /\bbeta\b/.test(l) && l.includes('beta.test'));
      assert.equal(alpha.length, 1, res.stdout);
      assert.equal(beta.length, 1, res.stdout);
      assert.ok(alpha[0]!.includes('*.alpha.test'), 'every host of the app is on its line');
      assert.ok(!alpha[0]!.includes('Alpha.Test'), 'hosts are shown normalised');
      assert.match(beta[0]!, /default/i, 'the default app is marked');
      assert.doesNotMatch(alpha[0]!, /default/i);
      // Apps are listed in file order.
      assert.ok(res.stdout.indexOf(alpha[0]!) < res.stdout.indexOf(beta[0]!));
    });
  });

  test('stdout closed early (piped into head): exit 0 without an EPIPE stack', async () => {
    await inTempDir(async (dir) => {
      // More than a pipe's 64 KiB of table, so the writes outlast the reader.
      const apps = Array.from(
        { length: 1500 },
        (_, i) => `[apps.app${i}]\nhosts = ["app${i}.a-rather-long-host-name.test"]\nentry = "server.js"\n`,
      );
      writeFiles(dir, { 'nano.toml': `[admin]\nlisten = false\n\n${apps.join('\n')}`, 'server.js': '' });
      const child = spawn(process.execPath, [CLI, 'check', '-c', path.join(dir, 'nano.toml')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      // Read one chunk, then close the pipe as `head` does.
      child.stdout.once('data', () => child.stdout.destroy());
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(stderr, '');
      assert.equal(code, 0);
    });
  });

  test('without -c it checks ./nano.toml; with default_app = false no app is marked', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'nano.toml': config.replace('default_app = "beta"', 'default_app = false'), 'server.js': '' });
      const res = await runCli(['check'], { cwd: dir });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /alpha\.test/);
      assert.match(res.stdout, /beta\.test/);
      assert.doesNotMatch(res.stdout, /\(default\)/);
    });
  });

  test('an invalid config: exit 1, exactly one `file:line: key: message` line on stderr', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, {
        'nano.toml': config.replace('entry = "server.js"\n', 'entry = "server.js"\ninstances = "2"\n'),
        'server.js': '',
      });
      const res = await runCli(['check', '-c', 'nano.toml'], { cwd: dir });
      assert.equal(res.code, 1);
      const line = assertOneLine(res.stderr);
      assert.match(line, /^nano\.toml:11: apps\.alpha\.instances: \S/);
      assert.equal(res.stdout, '');
    });
  });

  test('a TOML syntax error: exit 1, one line with the file and the line the parser reports', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'nano.toml': '[gateway]\nlisten = ":8080"\n\n[apps.web\nhosts = ["web.test"]\n' });
      const res = await runCli(['check'], { cwd: dir });
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /^nano\.toml:4: /);
    });
  });

  test('a duplicate host: the error names the later app', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'nano.toml': config.replace('["beta.test"]', '["beta.test", "alpha.test"]'), 'server.js': '' });
      const res = await runCli(['check'], { cwd: dir });
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /^nano\.toml:13: apps\.beta\.hosts: .*alpha\.test/);
    });
  });

  test('a missing config file: exit 1, one line naming the file', async () => {
    await inTempDir(async (dir) => {
      const res = await runCli(['check', '-c', 'missing.toml'], { cwd: dir });
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /missing\.toml/);
      assert.equal(res.stdout, '');
      const implicit = await runCli(['check'], { cwd: dir });
      assert.equal(implicit.code, 1);
      assert.match(assertOneLine(implicit.stderr), /nano\.toml/);
    });
  });
});

describe('init', () => {
  test('init DIR writes nano.toml and apps/hello/server.js, and check then passes', async () => {
    await inTempDir(async (dir) => {
      const target = path.join(dir, 'site');
      const res = await runCli(['init', target]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr, '');
      assert.ok(existsSync(path.join(target, 'nano.toml')));
      assert.ok(existsSync(path.join(target, 'apps/hello/server.js')));
      const check = await runCli(['check', '-c', path.join(target, 'nano.toml')]);
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /hello/);
      assert.match(check.stdout, /hello\.localhost/);
    });
  });

  test('init without DIR writes into the current directory', async () => {
    await inTempDir(async (dir) => {
      const res = await runCli(['init'], { cwd: dir });
      assert.equal(res.code, 0, res.stderr);
      assert.ok(existsSync(path.join(dir, 'nano.toml')));
      assert.ok(existsSync(path.join(dir, 'apps/hello/server.js')));
      assert.equal((await runCli(['check'], { cwd: dir })).code, 0);
    });
  });

  test('init again: exit 1, names the existing files, writes nothing', async () => {
    await inTempDir(async (dir) => {
      assert.equal((await runCli(['init', dir])).code, 0);
      // Make the files differ from what init would write, so that a rewrite would show.
      const config = path.join(dir, 'nano.toml');
      const server = path.join(dir, 'apps/hello/server.js');
      writeFileSync(config, '# my own config\n');
      writeFileSync(server, '// my own app\n');
      const res = await runCli(['init', dir]);
      assert.equal(res.code, 1);
      const line = assertOneLine(res.stderr);
      assert.match(line, /nano\.toml/);
      assert.match(line, /server\.js/);
      assert.equal(readFileSync(config, 'utf8'), '# my own config\n');
      assert.equal(readFileSync(server, 'utf8'), '// my own app\n');
    });
  });

  test('only apps/hello/server.js exists: exit 1, names it, nano.toml is not created', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'apps/hello/server.js': '// mine\n' });
      const res = await runCli(['init', dir]);
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /server\.js/);
      assert.ok(!existsSync(path.join(dir, 'nano.toml')), 'nano.toml must not be written');
      assert.equal(readFileSync(path.join(dir, 'apps/hello/server.js'), 'utf8'), '// mine\n');
    });
  });

  test('only nano.toml exists: exit 1, names it, apps/hello/server.js is not created', async () => {
    await inTempDir(async (dir) => {
      writeFiles(dir, { 'nano.toml': '# mine\n' });
      const res = await runCli(['init', dir]);
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /nano\.toml/);
      assert.ok(!existsSync(path.join(dir, 'apps/hello/server.js')), 'server.js must not be written');
      assert.equal(readFileSync(path.join(dir, 'nano.toml'), 'utf8'), '# mine\n');
    });
  });

  test('the generated config and app run: hello.localhost answers 200', async () => {
    let gw: GatewayProcess | undefined;
    await inTempDir(async (dir) => {
      assert.equal((await runCli(['init', dir])).code, 0);
      const generated = readFileSync(path.join(dir, 'nano.toml'), 'utf8');
      const server = readFileSync(path.join(dir, 'apps/hello/server.js'), 'utf8');
      // Same config, but on an OS-chosen port and without the admin API on the shared 8081.
      const config = `${generated.replace(/^listen\s*=.*$/m, 'listen = "127.0.0.1:0"')}\n[admin]\nlisten = false\n`;
      assert.notEqual(
        config.replace('\n[admin]\nlisten = false\n', ''),
        generated,
        'the generated config has a [gateway] listen line',
      );
      try {
        gw = await GatewayProcess.start({ config, files: { 'apps/hello/server.js': server } });
        const res = await gw.request({ host: 'hello.localhost', path: '/' });
        assert.equal(res.status, 200, res.body);
        assert.match(res.body, /hello/i);
        const health = await gw.request({ host: 'hello.localhost', path: '/health' });
        assert.equal(health.status, 200);
      } finally {
        await gw?.cleanup();
      }
    });
  });
});

describe('usage', () => {
  test('--help: exit 0, usage on stdout', async () => {
    const res = await runCli(['--help']);
    assert.equal(res.code, 0);
    assert.equal(res.stderr, '');
    assert.match(res.stdout, /usage/i);
    for (const word of ['start', 'check', 'init', '--listen', '--log-level'])
      assert.ok(res.stdout.includes(word), word);
  });

  test('--version prints the version from package.json', async () => {
    const res = await runCli(['--version']);
    assert.equal(res.code, 0);
    assert.equal(res.stdout.trim(), VERSION);
    assert.equal(res.stderr, '');
  });

  // Run in an empty directory: if an argument were accepted, `start` would fail on the
  // missing nano.toml with status 1 instead of 2 (and not keep running).
  const usageErrors: Array<[string, string[], RegExp]> = [
    ['an unknown command', ['frobnicate'], /frobnicate/],
    ['an unknown option', ['--frobnicate'], /frobnicate/],
    ['an unknown option after a command', ['check', '--frobnicate'], /frobnicate/],
    ['--log-level nonsense', ['--log-level', 'nonsense'], /log-level|nonsense/],
    ['--listen garbage', ['--listen', 'garbage'], /listen|garbage/],
    ['--listen with a port out of range', ['start', '--listen', '127.0.0.1:70000'], /listen|70000/],
    ['-c without a file', ['check', '-c'], /-c|config/],
  ];
  for (const [what, args, mention] of usageErrors) {
    test(`${what}: exit 2 with one line on stderr`, async () => {
      await inTempDir(async (dir) => {
        const res = await runCli(args, { cwd: dir, timeoutMs: 8_000 });
        assert.equal(res.timedOut, false, 'the CLI exited');
        assert.equal(res.code, 2, `status for ${args.join(' ')}: ${res.stderr}`);
        assert.match(assertOneLine(res.stderr), mention);
        assert.equal(res.stdout, '');
      });
    });
  }

  test('start with an invalid config: exit 1, the error line on stderr, nothing left running', async () => {
    await inTempDir(async (dir) => {
      const port = await freePort();
      const marker = path.join(dir, 'child-started');
      writeFiles(dir, {
        'nano.toml': `[gateway]
listen = "127.0.0.1:${port}"

[admin]
listen = false

[apps.web]
hosts = ["web.test"]
entry = "server.cjs"
bogus = true
`,
        'server.cjs': `require('node:fs').writeFileSync(${JSON.stringify(marker)}, String(process.pid));\n`,
      });
      const res = await runCli(['start', '-c', 'nano.toml', '--json'], { cwd: dir, timeoutMs: 8_000 });
      assert.equal(res.timedOut, false, 'the gateway exited by itself');
      assert.equal(res.code, 1);
      assert.match(assertOneLine(res.stderr), /^nano\.toml:10: apps\.web\.bogus: /);
      assert.doesNotMatch(res.stdout, /listening on/);
      assert.equal(await canConnect(port), false, 'nothing listens on the configured port');
      assert.ok(!existsSync(marker), 'no app child was started');
    });
  });
});

describe('start', () => {
  test('--listen overrides the file; start-up logs say where it listens and which hosts go to which app', async () => {
    // Hold the file's port, so that listening there would fail.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const held = (blocker.address() as net.AddressInfo).port;
    let gw: GatewayProcess | undefined;
    try {
      gw = await GatewayProcess.start({
        config:
          gatewaySection().replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${held}"`) +
          fixtureApp('alpha', ['Alpha.Test', '*.alpha.test']) +
          fixtureApp('beta', ['beta.test']),
        args: ['--listen', '127.0.0.1:0'],
      });
      assert.match(gw.readConfig(), new RegExp(`listen = "127\\.0\\.0\\.1:${held}"`), 'the file names the held port');
      assert.notEqual(gw.port, held);
      assert.ok(gw.port > 0);

      const logs = gw.logs;
      const listenIdx = logs.findIndex((l) => l.msg?.startsWith('listening on') === true && l.app === undefined);
      assert.ok(listenIdx >= 0, 'a "listening on" line');
      const listening = logs[listenIdx]!;
      const address = new URL(String(listening.address));
      assert.equal(address.hostname, '127.0.0.1');
      assert.equal(Number(address.port), gw.port);
      assert.ok(listening.msg!.includes(String(gw.port)), 'the message names the port');

      for (const [app, hosts] of [
        ['alpha', ['alpha.test', '*.alpha.test']],
        ['beta', ['beta.test']],
      ] as const) {
        const lines = logs.filter((l) => l.app === app && Array.isArray(l.hosts));
        assert.equal(lines.length, 1, `one start-up line for ${app}`);
        const line = lines[0]!;
        assert.deepEqual(line.hosts, hosts);
        for (const host of hosts) assert.ok(line.msg?.includes(host), `${JSON.stringify(line.msg)} names ${host}`);
        assert.ok(line.msg?.includes(app), `${JSON.stringify(line.msg)} names ${app}`);
        const idx = logs.indexOf(line);
        assert.ok(idx > listenIdx, 'the routes follow the listening line');
        const firstChildLine = logs.findIndex((l) => l.app === app && l !== line);
        assert.ok(
          firstChildLine === -1 || idx < firstChildLine,
          `${app}'s route line comes before its children's lines`,
        );
      }
      // The listening line is the gateway's first word: nothing from an app precedes it.
      assert.ok(logs.slice(0, listenIdx).every((l) => l.app === undefined));

      const res = await gw.request({ host: 'x.alpha.test', path: '/info' });
      assert.equal(res.status, 200, res.body);
      assert.equal(JSON.parse(res.body).app, 'alpha');
    } finally {
      await gw?.cleanup();
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('a listen address in use: exit 1 with one line naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const held = (blocker.address() as net.AddressInfo).port;
    try {
      await inTempDir(async (dir) => {
        writeFiles(dir, {
          'nano.toml':
            gatewaySection().replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${held}"`) +
            fixtureApp('solo', ['solo.test']),
        });
        const res = await runCli(['start', '-c', 'nano.toml', '--json'], { cwd: dir, timeoutMs: 8_000 });
        assert.equal(res.timedOut, false, 'the gateway exited by itself');
        assert.equal(res.code, 1);
        assert.match(assertOneLine(res.stderr), new RegExp(`127\\.0\\.0\\.1:${held}`));
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
