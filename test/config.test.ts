import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../src/config/errors.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { runCli, tempDir, writeFiles } from './helpers.js';

// The admin-token tests decide for themselves whether NANO_ADMIN_TOKEN is set.
delete process.env.NANO_ADMIN_TOKEN;

/** A directory holding the files the configs below point at; the config "lives" in it. */
let dir: string;
let file: string;

before(() => {
  dir = tempDir('nano-config-');
  file = path.join(dir, 'nano.toml');
  writeFiles(dir, {
    'server.js': '',
    'apps/web/server.js': '',
    'apps/blog/index.js': '',
    'apps/blog/public/.keep': '',
  });
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const APP = `[apps.web]
hosts = ["web.test"]
entry = "apps/web/server.js"
`;

function parse(text: string, env: NodeJS.ProcessEnv = {}) {
  return parseConfig(text, file, { displayFile: 'nano.toml', env });
}

/** Parses `text`, expecting a ConfigError; returns it. */
function parseError(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parse(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a config error for:\n${text}`);
}

/** 1-based line number of the only line of `text` containing `needle`. */
function lineNo(text: string, needle: string): number {
  const lines = text.split('\n');
  const found = lines.flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  assert.equal(found.length, 1, `${JSON.stringify(needle)} should be on exactly one line`);
  return found[0] as number;
}

/** The error's message is `prefix` (the contract's `file:line: key: ` part) followed by text matching `rest`. */
function assertMessage(err: ConfigError, prefix: string, rest: RegExp = /./): void {
  assert.ok(
    err.message.startsWith(prefix),
    `message ${JSON.stringify(err.message)} should start with ${JSON.stringify(prefix)}`,
  );
  assert.match(err.message.slice(prefix.length), rest);
  assert.ok(!err.message.includes('\n'), 'one line');
}

describe('defaults', () => {
  test('every key of SPEC §3 has its documented default', () => {
    const config = parse(APP);
    assert.deepEqual(config.gateway.listen, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 8081 });
    assert.equal(config.admin.token, null);
    assert.equal(config.gateway.drainTimeoutMs, 30_000);
    assert.equal(config.gateway.upstreamTimeoutMs, 60_000);
    assert.equal(config.gateway.queueTimeoutMs, 10_000);
    assert.deepEqual(config.gateway.trustedProxies, []);
    assert.equal(config.defaultApp, 'web');
    assert.equal(config.apps.length, 1);
    const app = config.apps[0]!;
    assert.equal(app.name, 'web');
    assert.deepEqual(app.hosts, ['web.test']);
    assert.equal(app.entry, path.join(dir, 'apps/web/server.js'));
    assert.equal(app.cwd, path.join(dir, 'apps/web'), "cwd defaults to the entry's directory");
    assert.deepEqual(app.args, []);
    assert.deepEqual(app.nodeArgs, []);
    assert.deepEqual(app.env, {});
    assert.equal(app.maxMemoryMb, 256);
    assert.equal(app.healthPath, null);
    assert.equal(app.readyTimeoutMs, 10_000);
    assert.equal(app.killTimeoutMs, 5_000);
    assert.equal(app.instances, 1);
  });

  test('every key, when given, replaces its default', () => {
    const config = parse(`[gateway]
listen = "127.0.0.1:9090"
default_app = "blog"
drain_timeout_ms = 1000
upstream_timeout_ms = 2000
queue_timeout_ms = 3000
trusted_proxies = ["10.0.0.0/8", "192.168.1.1", "::1", "fd00::/8"]

[admin]
listen = "127.0.0.1:9091"
token = "secret"

${APP}
[apps.blog]
hosts = ["blog.test"]
entry = "apps/blog/index.js"
cwd = "apps/blog/public"
args = ["--port-from-env"]
node_args = ["--enable-source-maps"]
env = { GREETING = "hi" }
max_memory_mb = 512
health_path = "/health"
ready_timeout_ms = 4000
kill_timeout_ms = 500
instances = 3
`);
    assert.deepEqual(config.gateway.listen, { host: '127.0.0.1', port: 9090 });
    assert.equal(config.defaultApp, 'blog');
    assert.equal(config.gateway.drainTimeoutMs, 1000);
    assert.equal(config.gateway.upstreamTimeoutMs, 2000);
    assert.equal(config.gateway.queueTimeoutMs, 3000);
    assert.deepEqual(config.gateway.trustedProxies, ['10.0.0.0/8', '192.168.1.1', '::1', 'fd00::/8']);
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 9091 });
    assert.equal(config.admin.token, 'secret');
    const blog = config.apps.find((a) => a.name === 'blog')!;
    assert.equal(blog.entry, path.join(dir, 'apps/blog/index.js'));
    assert.equal(blog.cwd, path.join(dir, 'apps/blog/public'));
    assert.deepEqual(blog.args, ['--port-from-env']);
    assert.deepEqual(blog.nodeArgs, ['--enable-source-maps']);
    assert.deepEqual(blog.env, { GREETING: 'hi' });
    assert.equal(blog.maxMemoryMb, 512);
    assert.equal(blog.healthPath, '/health');
    assert.equal(blog.readyTimeoutMs, 4000);
    assert.equal(blog.killTimeoutMs, 500);
    assert.equal(blog.instances, 3);
  });

  test('default_app: absent → first app in file order; a name → that app; false → null (404)', () => {
    const two = `${APP}
[apps.blog]
hosts = ["blog.test"]
entry = "apps/blog/index.js"
`;
    assert.equal(parse(two).defaultApp, 'web');
    assert.equal(parse(`[gateway]\ndefault_app = "blog"\n${two}`).defaultApp, 'blog');
    assert.equal(parse(`[gateway]\ndefault_app = false\n${two}`).defaultApp, null);
  });

  test('admin listen = false disables the admin API', () => {
    assert.equal(parse(`[admin]\nlisten = false\n${APP}`).admin.listen, null);
  });

  test('listen accepts "host:port", ":port", a port number and "[::1]:port"', () => {
    const listen = (value: string) => parse(`[gateway]\nlisten = ${value}\n${APP}`).gateway.listen;
    assert.deepEqual(listen('"127.0.0.1:3000"'), { host: '127.0.0.1', port: 3000 });
    assert.deepEqual(listen('":3001"'), { host: '0.0.0.0', port: 3001 });
    assert.deepEqual(listen('3002'), { host: '0.0.0.0', port: 3002 });
    assert.deepEqual(listen('"[::1]:3003"'), { host: '::1', port: 3003 });
    assert.deepEqual(listen('"localhost:3004"'), { host: 'localhost', port: 3004 });
    assert.deepEqual(listen('0'), { host: '0.0.0.0', port: 0 });
  });

  test('listen values that are not an address are errors on the listen line', () => {
    for (const value of ['"garbage"', '""', '70000', '1.5', '"host:99999"', '":-1"', '"a:b:80"', '[8080]']) {
      const text = `[gateway]\nlisten = ${value}\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:2: gateway.listen: ');
    }
  });
});

describe('paths are relative to the config file, not the process cwd', () => {
  test('entry and cwd resolve against the config directory', () => {
    assert.notEqual(process.cwd(), dir);
    const config = parse(`[apps.root]
hosts = ["root.test"]
entry = "server.js"

[apps.blog]
hosts = ["blog.test"]
entry = "./apps/blog/index.js"
cwd = "apps/blog/public"
`);
    const [root, blog] = config.apps;
    assert.equal(root!.entry, path.join(dir, 'server.js'));
    assert.equal(root!.cwd, dir);
    assert.equal(blog!.entry, path.join(dir, 'apps/blog/index.js'));
    assert.equal(blog!.cwd, path.join(dir, 'apps/blog/public'));
  });

  test('loadConfig reads the file and anchors paths at its directory', () => {
    const sub = tempDir('nano-config-load-');
    try {
      writeFiles(sub, { 'conf/nano.toml': `[apps.x]\nhosts = ["x.test"]\nentry = "../code/x.js"\n`, 'code/x.js': '' });
      const { config, text } = loadConfig(path.join(sub, 'conf/nano.toml'), { env: {} });
      assert.match(text, /\[apps\.x\]/);
      assert.equal(config.apps[0]!.entry, path.join(sub, 'code/x.js'));
      assert.equal(config.apps[0]!.cwd, path.join(sub, 'code'));
    } finally {
      rmSync(sub, { recursive: true, force: true });
    }
  });

  test('loadConfig on a missing file is a ConfigError naming the file', () => {
    const missing = path.join(dir, 'does-not-exist.toml');
    assert.throws(
      () => loadConfig(missing, { env: {}, displayFile: 'does-not-exist.toml' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.startsWith('does-not-exist.toml') &&
        /not found|no such|missing/i.test(err.message),
    );
  });

  test('through the CLI: an entry that exists only relative to the process cwd is not found', async () => {
    const sub = tempDir('nano-config-cli-');
    try {
      // package.json exists in the CLI's cwd (the repository root) but not beside the config.
      writeFiles(sub, { 'nano.toml': `[apps.x]\nhosts = ["x.test"]\nentry = "package.json"\n` });
      const bad = await runCli(['check', '-c', path.join(sub, 'nano.toml')]);
      assert.equal(bad.code, 1, bad.stdout + bad.stderr);
      assert.ok(bad.stderr.startsWith(`${path.join(sub, 'nano.toml')}:3: apps.x.entry: `), bad.stderr);

      writeFiles(sub, { 'package.json': '{}' });
      const good = await runCli(['check', '-c', path.join(sub, 'nano.toml')]);
      assert.equal(good.code, 0, good.stderr);
      assert.equal(good.stderr, '');
    } finally {
      rmSync(sub, { recursive: true, force: true });
    }
  });
});

describe('errors name file, line and key', () => {
  test('the SPEC example, through `check`: exactly `nano.toml:14: apps.blog.hosts: expected an array of strings`', async () => {
    const sub = tempDir('nano-config-cli-');
    try {
      const text = [
        '# line 1',
        '[gateway]',
        'listen = "127.0.0.1:0"',
        '',
        '[admin]',
        'listen = false',
        '',
        '[apps.web]',
        'hosts = ["web.test"]',
        'entry = "server.js"',
        '',
        '[apps.blog]',
        'entry = "server.js"',
        'hosts = "blog.test"',
        '',
      ].join('\n');
      assert.equal(lineNo(text, 'hosts = "blog.test"'), 14);
      writeFiles(sub, { 'nano.toml': text, 'server.js': '' });
      const res = await runCli(['check', '-c', 'nano.toml'], { cwd: sub });
      assert.equal(res.code, 1);
      assert.equal(res.stderr, 'nano.toml:14: apps.blog.hosts: expected an array of strings\n');
      assert.equal(res.stdout, '');
    } finally {
      rmSync(sub, { recursive: true, force: true });
    }
  });

  test('ConfigError carries the file, line and key of each issue', () => {
    const text = `${APP}colour = "blue"\n`;
    const err = parseError(text);
    assert.equal(err.issues.length, 1);
    const issue = err.issues[0]!;
    assert.equal(issue.file, 'nano.toml');
    assert.equal(issue.line, 4);
    assert.equal(issue.key, 'apps.web.colour');
    assert.equal(err.message, `nano.toml:4: apps.web.colour: ${issue.message}`);
  });

  test('the line stays right when earlier values hold brackets, "#", quotes or span lines', () => {
    const text = `[gateway]
listen = ":8080" # a comment with [apps.fake] and "quotes"

[apps.web]
args = ["]", "[apps.x]", "# not a comment", 'C:\\path\\', "esc\\"aped]"]
node_args = [
  "--title=[x]",
]
env = {
  A = "}",
  B = "x",
}
hosts = ["web.test"]
entry = """apps/web/server.js"""
bogus = 1
`;
    assertMessage(parseError(text), `nano.toml:${lineNo(text, 'bogus')}: apps.web.bogus: `, /unknown/i);
  });

  test('with several issues, all are kept and the message is the first in file order', () => {
    const text = `[gateway]
drain_timeout_ms = "long"

[apps.web]
hosts = ["web.test"]
entry = "apps/web/server.js"
instances = "2"
`;
    const err = parseError(text);
    assert.ok(err.issues.length >= 2);
    assertMessage(err, 'nano.toml:2: gateway.drain_timeout_ms: ');
    assert.ok(err.issues.some((i) => i.line === 7 && i.key === 'apps.web.instances'));
  });

  describe('unknown keys', () => {
    test('at the top level', () => {
      const text = `colour = "blue"\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:1: colour: ', /unknown/i);
      const table = `${APP}\n[extras]\nx = 1\n`;
      assertMessage(parseError(table), `nano.toml:${lineNo(table, '[extras]')}: extras: `, /unknown/i);
    });

    test('in [gateway]', () => {
      const text = `[gateway]\nlisten = ":8080"\nlistn = ":9090"\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:3: gateway.listn: ', /unknown/i);
    });

    test('in [admin]', () => {
      const text = `[admin]\ntokn = "secret"\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:2: admin.tokn: ', /unknown/i);
    });

    test('in an app', () => {
      const text = `${APP}instance = 2\nmemory = 10\n`;
      const err = parseError(text);
      assertMessage(err, 'nano.toml:4: apps.web.instance: ', /unknown/i);
      assert.ok(err.issues.some((i) => i.line === 5 && i.key === 'apps.web.memory'));
    });
  });

  describe('wrong types', () => {
    test('hosts not an array of strings', () => {
      assertMessage(
        parseError(`[apps.web]\nentry = "server.js"\nhosts = "web.test"\n`),
        'nano.toml:3: apps.web.hosts: ',
        /array of strings/,
      );
      // A multi-line array is blamed on the line of its key.
      const multi = `[apps.web]\nentry = "server.js"\nhosts = [\n  "web.test",\n  42,\n]\n`;
      assertMessage(parseError(multi), 'nano.toml:3: apps.web.hosts: ', /array of strings/);
    });

    test('instances = "2"', () => {
      const text = `${APP}health_path = "/health"\ninstances = "2"\n`;
      assertMessage(parseError(text), 'nano.toml:5: apps.web.instances: ', /number|integer/i);
    });

    test('max_memory_mb = 1.5', () => {
      const text = `${APP}max_memory_mb = 1.5\n`;
      assertMessage(parseError(text), 'nano.toml:4: apps.web.max_memory_mb: ', /whole|integer/i);
    });

    test('listen = true', () => {
      const text = `[gateway]\n\nlisten = true\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:3: gateway.listen: ');
    });

    test('other keys: timeouts, args, entry, default_app', () => {
      const cases: Array<[string, string]> = [
        ['queue_timeout_ms = "soon"', 'gateway.queue_timeout_ms'],
        ['default_app = 3', 'gateway.default_app'],
        ['trusted_proxies = "10.0.0.1"', 'gateway.trusted_proxies'],
      ];
      for (const [line, key] of cases) {
        assertMessage(parseError(`[gateway]\n${line}\n${APP}`), `nano.toml:2: ${key}: `);
      }
      assertMessage(parseError(`${APP}args = "--flag"\n`), 'nano.toml:4: apps.web.args: ');
      assertMessage(parseError(`[apps.web]\nhosts = ["web.test"]\nentry = 5\n`), 'nano.toml:3: apps.web.entry: ');
    });
  });

  test("a host claimed by two apps is an error on the later app's hosts line", () => {
    const text = `[apps.first]
hosts = ["shared.test", "first.test"]
entry = "server.js"

[apps.second]
entry = "server.js"
hosts = ["second.test", "Shared.TEST."]
`;
    const err = parseError(text);
    assertMessage(err, `nano.toml:${lineNo(text, '"Shared.TEST."')}: apps.second.hosts: `, /shared\.test/);
    assert.match(err.message, /first/);
    assert.equal(err.issues.length, 1, 'the first app is not blamed');
  });

  test('the same wildcard in two apps is a clash too', () => {
    const text = `[apps.a]\nhosts = ["*.x.test"]\nentry = "server.js"\n[apps.b]\nhosts = ["*.X.test"]\nentry = "server.js"\n`;
    assertMessage(parseError(text), 'nano.toml:5: apps.b.hosts: ', /\*\.x\.test/);
  });

  test('a missing entry file names the entry line', () => {
    const text = `[apps.web]\nhosts = ["web.test"]\nentry = "apps/web/nope.js"\n`;
    assertMessage(parseError(text), 'nano.toml:3: apps.web.entry: ', /not found|does not exist|no such|missing/i);
    const dirEntry = `[apps.web]\nhosts = ["web.test"]\nentry = "apps/web"\n`;
    assertMessage(parseError(dirEntry), 'nano.toml:3: apps.web.entry: ');
  });

  test('a missing cwd directory names the cwd line', () => {
    const text = `${APP}cwd = "no/such/dir"\n`;
    assertMessage(parseError(text), 'nano.toml:4: apps.web.cwd: ');
  });

  test('missing required hosts or entry is blamed on the [apps.x] header line', () => {
    const noHosts = `[gateway]\nlisten = ":8080"\n\n[apps.web]\nentry = "server.js"\n`;
    assertMessage(parseError(noHosts), 'nano.toml:4: apps.web.hosts: ', /required|at least one/i);
    const noEntry = `[gateway]\nlisten = ":8080"\n\n[apps.web]\nhosts = ["web.test"]\n`;
    assertMessage(parseError(noEntry), 'nano.toml:4: apps.web.entry: ', /required/i);
    const neither = `${APP}\n[apps.empty]\n`;
    const err = parseError(neither);
    const header = lineNo(neither, '[apps.empty]');
    assert.ok(
      err.issues.some((i) => i.line === header && i.key === 'apps.empty.hosts'),
      JSON.stringify(err.issues),
    );
    assert.ok(
      err.issues.some((i) => i.line === header && i.key === 'apps.empty.entry'),
      JSON.stringify(err.issues),
    );
  });

  test('an empty hosts array is an error', () => {
    assertMessage(parseError(`[apps.web]\nhosts = []\nentry = "server.js"\n`), 'nano.toml:2: apps.web.hosts: ');
  });

  test('invalid app names', () => {
    for (const name of ['Bad_Name', '-web', '_web', 'a'.repeat(64)]) {
      const text = `${APP}\n[apps.${name}]\nhosts = ["other.test"]\nentry = "server.js"\n`;
      assertMessage(parseError(text), `nano.toml:5: apps.${name}: `, /name/i);
    }
    // Quoted keys allow any text; how the key is quoted in the message is not fixed.
    for (const name of ['"with space"', '"dot.ted"', '"Émile"']) {
      const text = `${APP}\n[apps.${name}]\nhosts = ["other.test"]\nentry = "server.js"\n`;
      const err = parseError(text);
      assert.match(err.message, /^nano\.toml:5: apps\./, err.message);
      assert.match(err.message, /name/i);
    }
    // The edges of the pattern are valid: a digit first, 63 characters, "_" and "-" inside.
    for (const name of ['0web', 'a'.repeat(63), 'my_app-2']) {
      assert.equal(parse(`[apps.${name}]\nhosts = ["x.test"]\nentry = "server.js"\n`).apps[0]!.name, name);
    }
  });

  test('default_app naming an app that does not exist', () => {
    const text = `[gateway]\nlisten = ":8080"\ndefault_app = "nope"\n${APP}`;
    assertMessage(parseError(text), 'nano.toml:3: gateway.default_app: ', /nope/);
    // Names that are also properties of every JS object are not apps either.
    for (const name of ['constructor', 'tostring', 'hasownproperty']) {
      assertMessage(parseError(`[gateway]\ndefault_app = "${name}"\n${APP}`), 'nano.toml:2: gateway.default_app: ');
    }
  });

  test('a config without apps is an error naming apps', () => {
    for (const text of ['', '[gateway]\nlisten = ":8080"\n', '[admin]\nlisten = false\n']) {
      const err = parseError(text);
      assert.match(err.message, /^nano\.toml(:\d+)?: apps: /, err.message);
      assert.match(err.message, /app/);
    }
    // An empty [apps] table is named with its line.
    assertMessage(parseError('[gateway]\nlisten = ":8080"\n\n[apps]\n'), 'nano.toml:4: apps: ');
  });

  test('a TOML syntax error names the line the parser reports', () => {
    const text = `[gateway]\nlisten = ":8080"\n\n[apps.web\nhosts = ["web.test"]\n`;
    const err = parseError(text);
    assert.match(err.message, /^nano\.toml:4: /, `the parser locates this error on line 4: ${err.message}`);
    const text2 = `${APP}instances = = 2\n`;
    assert.match(parseError(text2).message, /^nano\.toml:4: /);
  });

  test("a redefined key or table is a syntax error on the second definition's line", () => {
    const key = `${APP}hosts = ["again.test"]\n`;
    assert.match(parseError(key).message, /^nano\.toml:4: /);
    const table = `${APP}\n[apps.web]\ninstances = 2\n`;
    assert.match(parseError(table).message, /^nano\.toml:5: /);
  });

  describe('admin token', () => {
    const exposed = `[admin]\nlisten = "0.0.0.0:9000"\n${APP}`;

    test('admin on a non-loopback address without a token is an error on the listen line', () => {
      assertMessage(parseError(exposed), 'nano.toml:2: admin.listen: ', /token/i);
      assertMessage(parseError(`[admin]\nlisten = "[::]:9000"\n${APP}`), 'nano.toml:2: admin.listen: ', /token/i);
      assertMessage(
        parseError(`[admin]\nlisten = "192.168.1.10:9000"\n${APP}`),
        'nano.toml:2: admin.listen: ',
        /token/i,
      );
    });

    test('a token in the file makes it valid', () => {
      const config = parse(`[admin]\nlisten = "0.0.0.0:9000"\ntoken = "secret"\n${APP}`);
      assert.deepEqual(config.admin.listen, { host: '0.0.0.0', port: 9000 });
      assert.equal(config.admin.token, 'secret');
    });

    test('NANO_ADMIN_TOKEN in the environment makes it valid', () => {
      const config = parse(exposed, { NANO_ADMIN_TOKEN: 'from-env' });
      assert.deepEqual(config.admin.listen, { host: '0.0.0.0', port: 9000 });
      assert.equal(config.admin.token, 'from-env');
    });

    test('loopback addresses need no token', () => {
      for (const listen of ['"127.0.0.1:9000"', '"[::1]:9000"', '"localhost:9000"', '9000']) {
        const config = parse(`[admin]\nlisten = ${listen}\n${APP}`);
        assert.equal(config.admin.token, null);
        assert.equal(config.admin.listen?.port, 9000);
      }
    });

    test("through the CLI: NANO_ADMIN_TOKEN in check's environment", async () => {
      const sub = tempDir('nano-config-cli-');
      try {
        writeFiles(sub, { 'nano.toml': exposed, 'apps/web/server.js': '' });
        const without = await runCli(['check'], { cwd: sub });
        assert.equal(without.code, 1);
        assert.ok(without.stderr.startsWith('nano.toml:2: admin.listen: '), without.stderr);
        const withToken = await runCli(['check'], { cwd: sub, env: { NANO_ADMIN_TOKEN: 'from-env' } });
        assert.equal(withToken.code, 0, withToken.stderr);
      } finally {
        rmSync(sub, { recursive: true, force: true });
      }
    });
  });

  test('trusted_proxies entries must be IP addresses or CIDR blocks', () => {
    for (const bad of ['"proxy.example.com"', '"10.0.0.0/33"', '"10.0.0.0/x"', '"::1/129"', '"300.1.1.1"', '42']) {
      const text = `[gateway]\nlisten = ":8080"\ntrusted_proxies = ["127.0.0.1", ${bad}]\n${APP}`;
      assertMessage(parseError(text), 'nano.toml:3: gateway.trusted_proxies: ');
    }
  });
});

describe('apps', () => {
  test('apps keep file order, even names that look like integers', () => {
    const config = parse(`[apps.zeta]
hosts = ["zeta.test"]
entry = "server.js"

[apps.123]
hosts = ["n123.test"]
entry = "server.js"

[apps.alpha]
hosts = ["alpha.test"]
entry = "server.js"

[apps.7]
hosts = ["n7.test"]
entry = "server.js"
`);
    assert.deepEqual(
      config.apps.map((a) => a.name),
      ['zeta', '123', 'alpha', '7'],
    );
    assert.equal(config.defaultApp, 'zeta', 'the first app in the file is the default');
  });

  test('hosts are normalised: lower case, no trailing dot; wildcards and IPv6 literals kept', () => {
    const config = parse(`[apps.web]
hosts = ["Blog.Example.COM.", "*.Example.com", "localhost", "127.0.0.1", "[::1]"]
entry = "server.js"
`);
    assert.deepEqual(config.apps[0]!.hosts, ['blog.example.com', '*.example.com', 'localhost', '127.0.0.1', '::1']);
  });

  test('hosts with a port, a scheme or a misplaced wildcard are rejected on the hosts line', () => {
    for (const host of ['web.test:8080', 'http://web.test', 'a.*.test', 'web test', '']) {
      const text = `[apps.web]\nentry = "server.js"\nhosts = ["ok.test", ${JSON.stringify(host)}]\n`;
      assertMessage(parseError(text), 'nano.toml:3: apps.web.hosts: ');
    }
  });

  test('env: strings kept, numbers and booleans become strings', () => {
    const config = parse(
      `${APP}env = { GREETING = "hi there", COUNT = 3, RATIO = 1.5, DEBUG = true, QUIET = false, EMPTY = "" }\n`,
    );
    assert.deepEqual(config.apps[0]!.env, {
      GREETING: 'hi there',
      COUNT: '3',
      RATIO: '1.5',
      DEBUG: 'true',
      QUIET: 'false',
      EMPTY: '',
    });
    const table = parse(`${APP}\n[apps.web.env]\nGREETING = "hi"\nPORT_HINT = 80\n`);
    assert.deepEqual(table.apps[0]!.env, { GREETING: 'hi', PORT_HINT: '80' });
  });

  test('env: a nested table or an array is an error on its line', () => {
    const nested = `${APP}env = { GREETING = "hi", NESTED = { A = "b" } }\n`;
    assert.match(parseError(nested).message, /^nano\.toml:4: apps\.web\.env(\.NESTED)?: /);
    const dotted = `${APP}\n[apps.web.env]\nGREETING = "hi"\nDEEP.KEY = "x"\n`;
    assert.match(
      parseError(dotted).message,
      new RegExp(`^nano\\.toml:${lineNo(dotted, 'DEEP.KEY')}: apps\\.web\\.env(\\.DEEP)?: `),
    );
    const array = `${APP}env = { LIST = ["a", "b"] }\n`;
    assert.match(parseError(array).message, /^nano\.toml:4: apps\.web\.env(\.LIST)?: /);
    const notTable = `${APP}env = "GREETING=hi"\n`;
    assertMessage(parseError(notTable), 'nano.toml:4: apps.web.env: ');
  });
});

describe('gateway.access_log', () => {
  const dir = tempDir('nano-accesslog-');
  writeFiles(dir, { 'app.js': '' });
  const base = (line: string): string => `[gateway]\n${line}\n\n[apps.web]\nhosts = ["web.test"]\nentry = "app.js"\n`;
  const file = path.join(dir, 'nano.toml');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('defaults to true; false turns it off', () => {
    assert.equal(parseConfig(base(''), file).gateway.accessLog, true);
    assert.equal(parseConfig(base('access_log = false'), file).gateway.accessLog, false);
  });

  test('a non-boolean is an error on its line', () => {
    assert.throws(
      () => parseConfig(base('access_log = "yes"'), file, { displayFile: 'nano.toml' }),
      (err: Error) => err.message.startsWith('nano.toml:2: gateway.access_log: expected true or false'),
    );
  });
});

describe('app lifecycle keys (max_rss_mb, watch, idle_timeout_ms)', () => {
  test('defaults: no watchdog, no watch, never idle; given values are kept', () => {
    const plain = parse(APP).apps[0];
    assert.equal(plain?.maxRssMb, null);
    assert.equal(plain?.watch, false);
    assert.equal(plain?.idleTimeoutMs, 0);
    const set = parse(`${APP}max_rss_mb = 300\nwatch = ["src/**/*.js", "views/**"]\nidle_timeout_ms = 900000\n`)
      .apps[0];
    assert.equal(set?.maxRssMb, 300);
    assert.deepEqual(set?.watch, ['src/**/*.js', 'views/**']);
    assert.equal(set?.idleTimeoutMs, 900000);
    assert.equal(parse(`${APP}watch = true\n`).apps[0]?.watch, true);
  });

  test('wrong values are errors on their own line, naming the key', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['max_rss_mb = "300"', 'apps.web.max_rss_mb', /expected a whole number/],
      ['max_rss_mb = 0', 'apps.web.max_rss_mb', /must be from 1/],
      ['watch = "yes"', 'apps.web.watch', /expected true, false or a non-empty array of globs/],
      ['watch = []', 'apps.web.watch', /non-empty array/],
      ['watch = ["/etc/**"]', 'apps.web.watch', /relative to the app's cwd/],
      ['watch = ["../other/**"]', 'apps.web.watch', /stay inside it/],
      ['idle_timeout_ms = -1', 'apps.web.idle_timeout_ms', /must be from 0/],
      ['idle_timeout_ms = 1.5', 'apps.web.idle_timeout_ms', /expected a whole number/],
    ];
    for (const [line, key, rest] of cases) {
      const text = `${APP}${line}\n`;
      assertMessage(parseError(text), `nano.toml:${lineNo(text, line)}: ${key}: `, rest);
    }
  });
});

describe('[gateway] workers', () => {
  test('default 1; a number is kept; "auto" is the available cores', () => {
    assert.equal(parse(APP).gateway.workers, 1);
    assert.equal(parse(`[gateway]\nworkers = 3\n${APP}`).gateway.workers, 3);
    assert.equal(parse(`[gateway]\nworkers = "auto"\n${APP}`).gateway.workers, availableParallelism());
  });

  test('wrong values are errors on their own line, naming the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['workers = 0', /must be from 1 to 256, got 0/],
      ['workers = 257', /must be from 1 to 256/],
      ['workers = 1.5', /expected a whole number/],
      ['workers = "all"', /expected a number or "auto", got the string "all"/],
      ['workers = true', /expected a number or "auto"/],
    ];
    for (const [line, rest] of cases) {
      const text = `[gateway]\n${line}\n${APP}`;
      assertMessage(parseError(text), `nano.toml:${lineNo(text, line)}: gateway.workers: `, rest);
    }
  });
});
