/**
 * `nano-gateway status`, `reload` and `restart` (SPEC §9) against a running
 * gateway: output, exit status, and where the admin address and token come from.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  adminCall,
  childPidsOf,
  fixtureApp,
  freePort,
  GatewayProcess,
  processAlive,
  type RunResult,
  runCli,
  tempDir,
  waitFor,
  writeFiles,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

/** stderr is exactly one non-empty line; stdout is empty. */
function assertOneErrorLine(res: RunResult): string {
  assert.ok(res.stderr.endsWith('\n'), `stderr ends with a newline: ${JSON.stringify(res.stderr)}`);
  const lines = res.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr is one line: ${JSON.stringify(res.stderr)}`);
  assert.ok((lines[0] as string).trim().length > 0);
  return lines[0] as string;
}

/** Established TCP connections whose local end is 127.0.0.1:port (the server side of clients connected to it). */
function serverConnections(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === '01') n++;
    }
  }
  return n;
}

interface TableRow {
  cells: Record<string, string>;
  line: string;
}

/** Parses the status table: a header of upper-case column names, then one aligned row per app. */
function parseTable(stdout: string): { header: string[]; rows: TableRow[] } {
  const lines = stdout.split('\n');
  const headerLine = lines[0] as string;
  const header = headerLine.split(/\s{2,}/);
  const starts = header.map((h) => headerLine.indexOf(h));
  const rows: TableRow[] = [];
  for (const line of lines.slice(1)) {
    if (line === '' || !/^[a-z0-9]/.test(line) || line.includes(': ')) continue;
    const cells: Record<string, string> = {};
    header.forEach((h, i) => {
      const start = starts[i] as number;
      const end = i + 1 < starts.length ? (starts[i + 1] as number) : line.length;
      // Aligned: every cell starts under its header, after a gap.
      assert.ok(start === 0 || line[start - 1] === ' ', `column ${h} starts after a space in ${JSON.stringify(line)}`);
      assert.notEqual(line[start], ' ', `column ${h} starts under its header in ${JSON.stringify(line)}`);
      cells[h] = line.slice(start, end).trim();
    });
    rows.push({ cells, line });
  }
  return { header, rows };
}

describe('status, reload and restart', () => {
  let gw: GatewayProcess;
  let adminPort: number;
  let cwd: string;
  const TOKEN = 'file-token';

  const section = (port: number, adminExtra: string): string => `[gateway]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:${port}"
${adminExtra}
`;
  let base = '';

  before(async () => {
    adminPort = await freePort();
    base =
      section(adminPort, `token = "${TOKEN}"`) +
      fixtureApp('web', ['web.test', '*.web.test'], 'instances = 2') +
      fixtureApp('gate', ['gate.test'], 'cwd = "."\nenv = { HEALTH_FILE = "gate-ok" }\nready_timeout_ms = 15000');
    gw = await GatewayProcess.start({ config: base, files: { 'gate-ok': '' }, readyApps: { web: 2, gate: 1 } });
    assert.equal(await gw.adminPort(), adminPort);
    cwd = tempDir('nano-cli-cwd-');
  });
  after(async () => {
    await gw?.cleanup();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  const api = async (method: string, urlPath: string): Promise<any> => {
    const res = await adminCall(adminPort, method, urlPath, { token: TOKEN });
    assert.ok(res.status < 300, `${method} ${urlPath}: ${res.status} ${res.body}`);
    return res.json;
  };

  test('status: an aligned table with a header and one row per app: state, pids, requests (address and token from the file)', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await gw.request({ host: 'gate.test', path: '/' })).status, 200);
    await waitFor(
      async () => (await api('GET', '/admin/apps/gate')).requests_total >= 3 || undefined,
      'gate requests to be counted',
    );
    const apps = (await api('GET', '/admin/apps')).apps as any[];
    const res = await runCli(['status', '-c', gw.configFile], { cwd });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    const { header, rows } = parseTable(res.stdout);
    for (const column of ['APP', 'STATE', 'PIDS', 'REQUESTS'])
      assert.ok(header.includes(column), `column ${column} in ${header.join(' ')}`);
    assert.equal(rows.length, 2, res.stdout);
    for (const [i, app] of apps.entries()) {
      const row = rows[i] as TableRow;
      assert.equal(row.cells.APP?.replace(/\s*\*$/, ''), app.name);
      assert.equal(row.cells.STATE, 'ready');
      assert.deepEqual(
        (row.cells.PIDS as string).split(',').map((p) => Number(p.trim())),
        app.instances.map((inst: { pid: number }) => inst.pid),
        `${app.name}: pids`,
      );
      assert.equal(Number(row.cells.REQUESTS), app.requests_total, `${app.name}: requests`);
    }
    assert.ok((rows[0] as TableRow).line.includes('web.test'), 'hosts are shown');
    assert.ok(Number((rows[1] as TableRow).cells.REQUESTS) >= 3);
  });

  test('status --admin URL --token T, without a config file', async () => {
    for (const url of [`http://127.0.0.1:${adminPort}`, `127.0.0.1:${adminPort}`, `http://127.0.0.1:${adminPort}/`]) {
      const res = await runCli(['status', '--admin', url, '--token', TOKEN], { cwd });
      assert.equal(res.code, 0, `${url}: ${res.stderr}`);
      assert.equal(parseTable(res.stdout).rows.length, 2);
    }
    const noToken = await runCli(['status', '--admin', `http://127.0.0.1:${adminPort}`], { cwd });
    assert.equal(noToken.code, 1);
    assert.match(assertOneErrorLine(noToken), /token/i);
    const wrong = await runCli(['status', '--admin', `http://127.0.0.1:${adminPort}`, '--token', 'nope'], { cwd });
    assert.equal(wrong.code, 1);
    assertOneErrorLine(wrong);
    assert.equal(wrong.stdout, '');
  });

  test('the token: --token, then NANO_ADMIN_TOKEN, then the file', async () => {
    // The environment wins over the file: a wrong NANO_ADMIN_TOKEN is used, and refused.
    const envWrong = await runCli(['status', '-c', gw.configFile], { cwd, env: { NANO_ADMIN_TOKEN: 'wrong' } });
    assert.equal(envWrong.code, 1, envWrong.stdout);
    assertOneErrorLine(envWrong);
    // A file without a token at the same address: NANO_ADMIN_TOKEN supplies it.
    const bare = path.join(cwd, 'bare.toml');
    writeFileSync(bare, section(adminPort, '') + fixtureApp('web', ['web.test']));
    const fromEnv = await runCli(['status', '-c', bare], { cwd, env: { NANO_ADMIN_TOKEN: TOKEN } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const none = await runCli(['status', '-c', bare], { cwd });
    assert.equal(none.code, 1);
    assertOneErrorLine(none);
    // --token wins over both.
    const flag = await runCli(['status', '-c', gw.configFile, '--token', TOKEN], {
      cwd,
      env: { NANO_ADMIN_TOKEN: 'wrong' },
    });
    assert.equal(flag.code, 0, flag.stderr);
  });

  test('reload prints what changed after a file edit (exit 0); an invalid file: exit 1, one line', async () => {
    // Hold the operation queue with a restart of "gate" whose new child is not healthy until gate-ok exists,
    // so that the CLI's reload and the watcher's are both queued behind it and apply the same edit together.
    const gatePid = (await api('GET', '/admin/apps/gate')).instances[0].pid as number;
    const children = childPidsOf(gw.pid).length;
    rmSync(path.join(gw.dir, 'gate-ok'));
    const restart = adminCall(adminPort, 'POST', '/admin/apps/gate/restart', { token: TOKEN });
    await waitFor(() => childPidsOf(gw.pid).length === children + 1 || undefined, 'the new gate child to be spawned');
    const connected = serverConnections(adminPort);
    gw.writeConfig(base + fixtureApp('fresh', ['fresh.test']));
    const reload = runCli(['reload', '-c', gw.configFile], { cwd });
    await waitFor(() => serverConnections(adminPort) > connected || undefined, 'the CLI to reach the admin API');
    writeFileSync(path.join(gw.dir, 'gate-ok'), '');
    const res = await reload;
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.equal(res.stdout, 'reloaded: added fresh\n');
    assert.equal((await restart).status, 200);
    await waitFor(() => !processAlive(gatePid) || undefined, 'the old gate child to be drained and stopped');
    assert.equal(JSON.parse((await gw.request({ host: 'fresh.test', path: '/info' })).body).app, 'fresh');

    // Nothing to do: still exit 0.
    const again = await runCli(['reload', '-c', gw.configFile], { cwd });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'reloaded: nothing changed\n');

    gw.writeConfig(`${base + fixtureApp('fresh', ['fresh.test'])}\n[apps.oops]\nhosts = "oops.test"\n`);
    const bad = await runCli(['reload', '-c', gw.configFile], { cwd });
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(assertOneErrorLine(bad), /nano\.toml:\d+: apps\.oops\.(hosts|entry): /);
    assert.equal(
      JSON.parse((await gw.request({ host: 'fresh.test', path: '/info' })).body).app,
      'fresh',
      'the running apps are kept',
    );
    gw.writeConfig(base + fixtureApp('fresh', ['fresh.test']));
    const fixed = await runCli(['reload', '-c', gw.configFile], { cwd });
    assert.equal(fixed.code, 0, fixed.stderr);
  });

  test('restart APP waits and reports old -> new pids; an unknown app: exit 1; no APP: exit 2', async () => {
    const old = ((await api('GET', '/admin/apps/web')).instances as Array<{ pid: number }>).map((i) => i.pid);
    const res = await runCli(['restart', 'web', '-c', gw.configFile], { cwd });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    const now = ((await api('GET', '/admin/apps/web')).instances as Array<{ pid: number }>).map((i) => i.pid);
    assert.equal(now.filter((p) => old.includes(p)).length, 0);
    const m = /^restarted web: pids (.+) -> (.+)\n$/.exec(res.stdout);
    assert.ok(m, res.stdout);
    const listed = (s: string): number[] =>
      s
        .split(/[,\s]+/)
        .filter(Boolean)
        .map(Number);
    assert.deepEqual(listed(m[1] as string), old);
    assert.deepEqual(listed(m[2] as string), now);
    for (const pid of now) assert.ok(processAlive(pid));
    // Exit 0 means the new children already serve.
    assert.ok(now.includes(JSON.parse((await gw.request({ host: 'web.test', path: '/info' })).body).pid));

    const unknown = await runCli(['restart', 'nosuchapp', '-c', gw.configFile], { cwd });
    assert.equal(unknown.code, 1);
    assert.match(assertOneErrorLine(unknown), /nosuchapp/);
    const usage = await runCli(['restart', '-c', gw.configFile], { cwd });
    assert.equal(usage.code, 2);
    assertOneErrorLine(usage);
  });
});

describe('when the admin API cannot be reached', () => {
  test('a gateway that is not running: exit 1, one line naming the address', async () => {
    const port = await freePort();
    const dir = tempDir('nano-cli-down-');
    try {
      writeFiles(dir, { 'nano.toml': `[admin]\nlisten = "127.0.0.1:${port}"\n\n${fixtureApp('web', ['web.test'])}` });
      for (const args of [['status'], ['reload'], ['restart', 'web']]) {
        const viaFile = await runCli([...args, '-c', path.join(dir, 'nano.toml')], { cwd: dir });
        assert.equal(viaFile.code, 1, `${args[0]}: ${viaFile.stdout}`);
        assert.ok(assertOneErrorLine(viaFile).includes(`127.0.0.1:${port}`), viaFile.stderr);
        assert.equal(viaFile.stdout, '');
      }
      const viaFlag = await runCli(['status', '--admin', `http://127.0.0.1:${port}`], { cwd: dir });
      assert.equal(viaFlag.code, 1);
      assert.ok(assertOneErrorLine(viaFlag).includes(`127.0.0.1:${port}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('admin disabled in the config and no --admin: exit 1 with a clear message', async () => {
    const dir = tempDir('nano-cli-off-');
    try {
      writeFiles(dir, { 'nano.toml': `[admin]\nlisten = false\n\n${fixtureApp('web', ['web.test'])}` });
      for (const args of [['status'], ['reload'], ['restart', 'web']]) {
        const res = await runCli([...args, '-c', path.join(dir, 'nano.toml')], { cwd: dir });
        assert.equal(res.code, 1);
        const line = assertOneErrorLine(res);
        assert.match(line, /disabled/);
        assert.match(line, /--admin/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
