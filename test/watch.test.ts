/**
 * Watch and restart (SPEC §12, README "Watch and restart"), black-box against
 * the real CLI: an edit of an app's file is a rolling restart with no failed
 * request, a burst of writes is one restart, node_modules/, .git/ and
 * dot-files are ignored (and not even watched), globs watch exactly their
 * files, a broken edit leaves the old version serving with `last_error`, the
 * restart is in /admin/reloads as `watch`, and a reload that turns `watch`
 * off or removes the app closes its watcher (counted in /proc inotify watches).
 *
 * "No restart" is never shown by sleeping: a second app, `probe`, is edited
 * after the writes that must be ignored, and once probe has restarted (its
 * 300 ms settle and a child start later) any restart those writes caused
 * would have been triggered.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  adminCall,
  adminGatewaySection,
  GatewayProcess,
  type LogLine,
  loadUntil,
  processAlive,
  tempDir,
  versionOf,
  waitFor,
  writeFiles,
} from './helpers.js';
import { httpsRequest } from './tls/https-client.js';
import { makeCa, makeLeaf } from './tls/pki.js';

delete process.env.NANO_ADMIN_TOKEN;

/**
 * A CommonJS app whose GET /version answers `VERSION pid`, VERSION being a
 * constant of its source (or of the module it requires), so that an edit
 * changes the answer.
 */
function server(version: string, versionFrom = ''): string {
  const source = versionFrom ? `require(${JSON.stringify(versionFrom)}).VERSION` : JSON.stringify(version);
  return `'use strict';
const http = require('node:http');
const VERSION = ${source};
const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.end('ok');
    return;
  }
  if (req.url === '/version') {
    const body = VERSION + ' ' + process.pid;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  if (req.method === 'POST' && req.url === '/hash') {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => res.end(String(bytes)));
    return;
  }
  res.writeHead(404);
  res.end('not found');
});
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
});
`;
}

/** A syntax error: a child running it exits at start. */
const BROKEN = `'use strict';\nconst VERSION = 'v2' +;\n`;

/** An app table: `name.test` -> `DIR/server.js` (cwd DIR), with `watch`. */
function appTable(name: string, dir: string, watch: string, extra = ''): string {
  return `[apps.${name}]
hosts = ["${name}.test"]
entry = "${dir}/server.js"
health_path = "/health"
ready_timeout_ms = 5000
watch = ${watch}
${extra}
`;
}

/** The probe app: a clock made of its own watch restarts. */
const PROBE_TABLE = appTable('probe', 'probe', 'true');
const PROBE_FILES = { 'probe/server.js': server('p0') };

/** The inotify watches the process holds: `inotify wd:` lines of every inotify fd's fdinfo. */
function inotifyWatches(pid: number): number {
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (link !== 'anon_inode:inotify') continue;
    const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    count += info.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return count;
}

/**
 * What `watch` on `dir` watches of `files`: the folder itself, and every
 * file and folder under it but node_modules/, .git/ and dot-files (each a
 * watch of its own).
 */
function watchedEntries(files: Record<string, string>, dir: string): number {
  const entries = new Set<string>(['']);
  for (const name of Object.keys(files)) {
    if (!name.startsWith(`${dir}/`)) continue;
    const parts = name.slice(dir.length + 1).split('/');
    if (parts.some((p) => p.startsWith('.') || p === 'node_modules')) continue;
    for (let i = 1; i <= parts.length; i++) entries.add(parts.slice(0, i).join('/'));
  }
  return entries.size;
}

/**
 * Starts a gateway with these app tables and files, and waits until the app
 * watchers watch: the config file's watcher (1 watch) is made only after
 * they are ready, so their watches and its one are all there.
 */
async function startWatching(
  tables: string,
  files: Record<string, string>,
  watchedDirs: string[],
  moreWatches = 0,
): Promise<{ gw: GatewayProcess; admin: number; watches: number }> {
  const gw = await GatewayProcess.start({ config: adminGatewaySection() + tables, files });
  try {
    const expected = 1 + moreWatches + watchedDirs.reduce((n, dir) => n + watchedEntries(files, dir), 0);
    const watches = await waitFor(() => {
      const n = inotifyWatches(gw.pid);
      return n >= expected ? n : undefined;
    }, `${expected} inotify watches`);
    return { gw, admin: await gw.adminPort(), watches };
  } catch (err) {
    await gw.cleanup();
    throw err;
  }
}

function edit(gw: GatewayProcess, files: Record<string, string>): void {
  writeFiles(gw.dir, files);
}

/** `FILE changed: restarting APP` lines, from log index `from` on. */
function triggers(gw: GatewayProcess, app: string, from = 0): LogLine[] {
  return gw.logs.slice(from).filter((l) => l.app === app && String(l.msg).endsWith(`changed: restarting ${app}`));
}

function restarts(gw: GatewayProcess, app: string, from = 0): number {
  return gw.logs.slice(from).filter((l) => l.msg === `app restarted: ${app}`).length;
}

/**
 * Waits for the watch restart of `app` that follows log index `from`: its
 * trigger line, then `app restarted` after it. Returns the trigger line.
 */
async function watchRestart(gw: GatewayProcess, app: string, from: number, timeoutMs = 15_000): Promise<LogLine> {
  const trigger = await gw.waitForLog(
    (l) => l.app === app && String(l.msg).endsWith(`changed: restarting ${app}`),
    timeoutMs,
    from,
  );
  await gw.waitForLog((l) => l.msg === `app restarted: ${app}`, timeoutMs, gw.logs.indexOf(trigger, from) + 1);
  return trigger;
}

let probeVersion = 0;

/**
 * Edits probe's file (under `root`, the gateway's folder unless said) and
 * waits for its restart: the later event that shows earlier writes had their chance.
 */
async function tick(gw: GatewayProcess, root = gw.dir): Promise<void> {
  const mark = gw.logs.length;
  probeVersion++;
  writeFiles(root, { 'probe/server.js': server(`p${probeVersion}`) });
  const trigger = await watchRestart(gw, 'probe', mark);
  assert.equal(trigger.file, 'server.js');
  assert.equal((await served(gw, 'probe')).version, `p${probeVersion}`);
}

async function served(gw: GatewayProcess, app: string): Promise<{ version: string; pid: number }> {
  const res = await gw.request({ host: `${app}.test`, path: '/version' });
  assert.equal(res.status, 200, `${app}: ${res.status} ${res.body}`);
  return versionOf(res.body);
}

describe('watch and restart', () => {
  test('an edit under load is a rolling restart: no failed request, the new code answers', async () => {
    const files = {
      'web/server.js': server('v1'),
      'web/lib/util.js': 'module.exports = {};\n',
      'web/public/index.html': '<p>hi</p>\n',
    };
    const { gw } = await startWatching(appTable('web', 'web', 'true'), files, ['web']);
    try {
      const oldPid = gw.readyPids('web')[0] as number;
      assert.deepEqual(await served(gw, 'web'), { version: 'v1', pid: oldPid });
      let stop = false;
      let asked = 0;
      const load = loadUntil(gw.port, ['web.test'], 12, () => {
        asked++;
        return stop;
      });
      try {
        await waitFor(() => asked > 200 || undefined, 'the load to run');
        const mark = gw.logs.length;
        edit(gw, { 'web/server.js': server('v2') });
        const trigger = await watchRestart(gw, 'web', mark);
        assert.equal(trigger.file, 'server.js');
        const now = await served(gw, 'web');
        assert.equal(now.version, 'v2');
        assert.notEqual(now.pid, oldPid);
        // The old child drains and exits while the load goes on, then more load on the new one.
        await waitFor(() => !processAlive(oldPid) || undefined, 'the old child to exit', 15_000);
        const at = asked;
        await waitFor(() => asked > at + 200 || undefined, 'load after the swap');
      } finally {
        stop = true;
      }
      const result = await load;
      console.log(
        `watch restart under load: ${result.total} requests, ${result.errors.length + result.non2xx.length} failed`,
      );
      assert.deepEqual(result.errors, []);
      assert.deepEqual(result.non2xx, []);
      assert.deepEqual([...(result.versions.get('web.test') ?? [])].sort(), ['v1', 'v2']);
      assert.equal(triggers(gw, 'web').length, 1);
      assert.equal(restarts(gw, 'web'), 1);
    } finally {
      await gw.cleanup();
    }
  });

  test('a burst of 5 writes is one restart; a later (rename) save is one more', async () => {
    const files = { 'web/server.js': server('v1') };
    const { gw } = await startWatching(appTable('web', 'web', 'true'), files, ['web']);
    try {
      assert.equal(gw.readyPids('web').length, 1);
      const mark = gw.logs.length;
      // The burst's shape, not a wait for anything: writes 25 ms apart, each one seen by the watcher on its
      // own (it folds events of one file closer than 5 ms), all within the 300 ms the restart waits for.
      for (let i = 1; i <= 5; i++) {
        if (i > 1) await new Promise((resolve) => setTimeout(resolve, 25));
        edit(gw, { 'web/server.js': server(`b${i}`) });
      }
      await watchRestart(gw, 'web', mark);
      assert.equal((await served(gw, 'web')).version, 'b5', 'the last write is what runs');
      assert.equal(triggers(gw, 'web').length, 1, 'one restart for the burst');
      assert.equal(restarts(gw, 'web'), 1);
      assert.equal(gw.readyPids('web').length, 2);

      // The later event: a deliberate edit, whose own restart comes after any the burst could still have queued.
      // Saved the way many editors save (a temporary file, then a rename over the file): one burst too.
      const second = gw.logs.length;
      const file = path.join(gw.dir, 'web', 'server.js');
      writeFileSync(`${file}.tmp`, server('c'));
      renameSync(`${file}.tmp`, file);
      await watchRestart(gw, 'web', second);
      assert.equal((await served(gw, 'web')).version, 'c');
      assert.equal(triggers(gw, 'web').length, 2, 'exactly one more restart');
      assert.equal(restarts(gw, 'web'), 2);
      assert.equal(gw.readyPids('web').length, 3);
    } finally {
      await gw.cleanup();
    }
  });

  test('node_modules/, .git/ and dot-files make no restart; a real file then makes exactly one', async () => {
    const files = {
      'web/server.js': server('v1'),
      'web/node_modules/pkg/index.js': 'module.exports = 1;\n',
      'web/.git/HEAD': 'ref: refs/heads/main\n',
      ...PROBE_FILES,
    };
    const { gw, watches } = await startWatching(appTable('web', 'web', 'true') + PROBE_TABLE, files, ['web', 'probe']);
    try {
      const mark = gw.logs.length;
      edit(gw, {
        'web/node_modules/pkg/index.js': 'module.exports = 2;\n',
        'web/node_modules/fresh/lib/index.js': 'module.exports = 3;\n',
        'web/.git/HEAD': 'ref: refs/heads/other\n',
        'web/.git/refs/heads/other': '0123456789abcdef\n',
        'web/.env': 'SECRET=1\n',
        'web/.cache/blob': 'x\n',
      });
      await tick(gw);
      assert.deepEqual(triggers(gw, 'web', mark), [], 'no restart for ignored files');
      assert.equal(gw.readyPids('web').length, 1);
      assert.equal(inotifyWatches(gw.pid), watches, 'the new ignored folders are not watched');

      const real = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      const trigger = await watchRestart(gw, 'web', real);
      assert.equal(trigger.file, 'server.js');
      assert.equal((await served(gw, 'web')).version, 'v2');
      assert.equal(triggers(gw, 'web').length, 1);
      assert.equal(gw.readyPids('web').length, 2, 'the pid count goes up by exactly 1');
    } finally {
      await gw.cleanup();
    }
  });

  test('a broken edit leaves the old version serving with last_error; a fix restarts it', async () => {
    const files = { 'web/server.js': server('v1') };
    const { gw, admin } = await startWatching(
      appTable('web', 'web', 'true').replace('ready_timeout_ms = 5000', 'ready_timeout_ms = 2000'),
      files,
      ['web'],
    );
    try {
      const oldPid = gw.readyPids('web')[0] as number;
      let stop = false;
      const load = loadUntil(gw.port, ['web.test'], 4, () => stop);
      const mark = gw.logs.length;
      try {
        edit(gw, { 'web/server.js': BROKEN });
        await gw.waitForLog((l) => l.msg === 'web was not restarted after a change', 15_000, mark);
      } finally {
        stop = true;
      }
      const result = await load;
      assert.deepEqual(result.errors, []);
      assert.deepEqual(result.non2xx, []);
      assert.deepEqual([...(result.versions.get('web.test') ?? [])], ['v1'], 'only the old version answered');
      assert.equal(restarts(gw, 'web'), 0);
      for (let i = 0; i < 5; i++) assert.deepEqual(await served(gw, 'web'), { version: 'v1', pid: oldPid });

      const status = await adminCall(admin, 'GET', '/admin/apps/web');
      assert.equal(status.status, 200, status.body);
      assert.equal(typeof status.json.last_error, 'string', status.body);
      assert.notEqual(status.json.last_error, '');
      assert.deepEqual(
        status.json.instances.map((i: { pid: number }) => i.pid),
        [oldPid],
      );
      const reloads = await adminCall(admin, 'GET', '/admin/reloads');
      const failed = reloads.json.reloads[0];
      assert.equal(failed.trigger, 'watch', reloads.body);
      assert.equal(failed.result, 'partial');
      assert.deepEqual(
        failed.failed.map((f: { name: string }) => f.name),
        ['web'],
      );

      const fix = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      await watchRestart(gw, 'web', fix);
      const now = await served(gw, 'web');
      assert.equal(now.version, 'v2');
      assert.notEqual(now.pid, oldPid);
      const fixed = await adminCall(admin, 'GET', '/admin/apps/web');
      assert.equal(fixed.json.last_error, null, fixed.body);
    } finally {
      await gw.cleanup();
    }
  });

  test('globs: a change to src/lib/x.js restarts, views/a.html and other files do not', async () => {
    const files = {
      'web/server.js': server('', './src/lib/x.js'),
      'web/src/lib/x.js': "module.exports = { VERSION: 'x1' };\n",
      'web/views/a.html': '<p>a</p>\n',
      ...PROBE_FILES,
    };
    const { gw } = await startWatching(appTable('web', 'web', '["src/**/*.js"]') + PROBE_TABLE, files, [
      'web',
      'probe',
    ]);
    try {
      assert.equal((await served(gw, 'web')).version, 'x1');
      const mark = gw.logs.length;
      edit(gw, {
        'web/views/a.html': '<p>b</p>\n',
        'web/views/new.html': '<p>new</p>\n',
        'web/src/lib/notes.txt': 'not a .js file\n',
      });
      await tick(gw);
      assert.deepEqual(triggers(gw, 'web', mark), [], 'no restart for files outside the globs');
      assert.equal(gw.readyPids('web').length, 1);

      const real = gw.logs.length;
      edit(gw, { 'web/src/lib/x.js': "module.exports = { VERSION: 'x2' };\n" });
      const trigger = await watchRestart(gw, 'web', real);
      assert.equal(trigger.file, 'src/lib/x.js');
      assert.equal((await served(gw, 'web')).version, 'x2');
      assert.equal(triggers(gw, 'web').length, 1);
      assert.equal(gw.readyPids('web').length, 2, 'the pid count goes up by exactly 1');
    } finally {
      await gw.cleanup();
    }
  });

  test("watch = true over the config file's folder: an edit of the config file is a reload, not a restart", async () => {
    // probe lives outside the watched folder, so that its edits are no reason to restart web.
    const outside = tempDir('nano-watch-probe-');
    writeFiles(outside, PROBE_FILES);
    const probe = PROBE_TABLE.replace(
      'entry = "probe/server.js"',
      `entry = ${JSON.stringify(path.join(outside, 'probe', 'server.js'))}`,
    );
    const tables = appTable('web', 'web', 'true', 'cwd = "."') + probe;
    const files = { 'web/server.js': server('v1') };
    // web watches the gateway's folder, web/ and web/server.js (3) and nano.toml (the config watcher's
    // watch too, the 1 counted anyway); probe its folder and file (2).
    let gw: GatewayProcess | undefined;
    try {
      ({ gw } = await startWatching(tables, files, [], 3 + 2));
      const mark = gw.logs.length;
      gw.writeConfig(`${adminGatewaySection() + tables}\n# edited\n`, 'in-place');
      const reload = await gw.waitForReloads(1);
      assert.deepEqual(reload.unchanged, ['web', 'probe'], JSON.stringify(reload));
      await tick(gw, outside);
      assert.deepEqual(triggers(gw, 'web', mark), [], 'the config file is no reason to restart');
      assert.equal(gw.readyPids('web').length, 1);

      const real = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      const trigger = await watchRestart(gw, 'web', real);
      assert.equal(trigger.file, 'web/server.js');
      assert.equal((await served(gw, 'web')).version, 'v2');
      assert.equal(triggers(gw, 'web').length, 1);
    } finally {
      await gw?.cleanup();
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('watch = true over certificate files: replacing them changes the certificate, not the app', async () => {
    const outside = tempDir('nano-watch-probe-');
    const pki = tempDir('nano-watch-pki-');
    writeFiles(outside, PROBE_FILES);
    const probe = PROBE_TABLE.replace(
      'entry = "probe/server.js"',
      `entry = ${JSON.stringify(path.join(outside, 'probe', 'server.js'))}`,
    );
    const ca = makeCa(pki, 'Nano Watch Test CA');
    const first = makeLeaf(ca, pki, { names: ['web.test'], file: 'first' });
    const second = makeLeaf(ca, pki, { names: ['web.test'], file: 'second' });
    const tables =
      '[tls]\nlisten = "127.0.0.1:0"\nstorage = ".certs"\nredirect_http = false\n\n' +
      appTable('web', 'web', 'true', 'cwd = "."\ntls = { cert = "web.crt", key = "web.key" }') +
      probe;
    const files = { 'web/server.js': server('v1'), 'web.crt': first.certPem, 'web.key': first.keyPem };
    let gw: GatewayProcess | undefined;
    try {
      ({ gw } = await startWatching(tables, files, [], 3 + 2));
      const mark = gw.logs.length;
      // As certbot or a deploy script does: the new pair written over the old one.
      edit(gw, { 'web.key': second.keyPem, 'web.crt': second.certPem });
      const tlsPort = await gw.httpsPort();
      await waitFor(async () => {
        // Between the two writes the pair does not match: a handshake may fail, then the next one is tried.
        const reply = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'web.test', path: '/' }).catch(
          () => null,
        );
        return reply?.serial === second.serial || undefined;
      }, 'the new certificate to be served');
      await tick(gw, outside);
      assert.deepEqual(triggers(gw, 'web', mark), [], 'certificate files are no reason to restart');
      assert.equal(restarts(gw, 'web', mark), 0);

      const real = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      const trigger = await watchRestart(gw, 'web', real);
      assert.equal(trigger.file, 'web/server.js');
      assert.equal((await served(gw, 'web')).version, 'v2');
    } finally {
      await gw?.cleanup();
      rmSync(outside, { recursive: true, force: true });
      rmSync(pki, { recursive: true, force: true });
    }
  });

  test('a change to an idle app restarts nothing and is not in /admin/reloads; its next start runs the new code', async () => {
    const files = { 'web/server.js': server('v1') };
    const { gw, admin } = await startWatching(appTable('web', 'web', 'true', 'idle_timeout_ms = 800'), files, ['web']);
    try {
      await waitFor(async () => {
        const app = await adminCall(admin, 'GET', '/admin/apps/web');
        return app.json.state === 'idle' || undefined;
      }, 'web to go idle');
      const started = gw.readyPids('web').length;
      const mark = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      const line = await gw.waitForLog(
        (l) => l.app === 'web' && String(l.msg).includes('is idle, its next start'),
        15_000,
        mark,
      );
      assert.equal(line.file, 'server.js');
      assert.deepEqual(triggers(gw, 'web', mark), []);
      const reloads = await adminCall(admin, 'GET', '/admin/reloads');
      assert.deepEqual(
        reloads.json.reloads.filter((r: { trigger: string }) => r.trigger === 'watch'),
        [],
        reloads.body,
      );
      assert.equal(gw.readyPids('web').length, started, 'no child was started for the change');
      assert.equal((await served(gw, 'web')).version, 'v2');
    } finally {
      await gw.cleanup();
    }
  });

  test('/admin/reloads lists the restart with trigger watch', async () => {
    const files = { 'web/server.js': server('v1'), ...PROBE_FILES };
    const { gw, admin } = await startWatching(appTable('web', 'web', 'true') + PROBE_TABLE, files, ['web', 'probe']);
    try {
      const before = await adminCall(admin, 'GET', '/admin/reloads');
      assert.equal(before.status, 200, before.body);
      assert.deepEqual(before.json.reloads, []);
      const mark = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2') });
      await watchRestart(gw, 'web', mark);
      const after = await adminCall(admin, 'GET', '/admin/reloads');
      assert.equal(after.json.reloads.length, 1, after.body);
      const [record] = after.json.reloads;
      assert.equal(record.trigger, 'watch');
      assert.equal(record.result, 'ok');
      assert.deepEqual(record.changed, ['web']);
      assert.deepEqual(record.unchanged, ['probe']);
      assert.deepEqual(record.failed, []);
    } finally {
      await gw.cleanup();
    }
  });

  test('watch = false by a reload, and removing the app, close the watcher; node_modules costs no watches', async () => {
    const files: Record<string, string> = {
      'web/server.js': server('v1'),
      'web/a/one.js': '1\n',
      'web/b/two.js': '2\n',
      'web/c/d/three.js': '3\n',
      'web/c/d/e/four.txt': '4\n',
      ...PROBE_FILES,
    };
    for (let i = 0; i < 30; i++) {
      files[`web/node_modules/pkg${i}/package.json`] = '{}\n';
      files[`web/node_modules/pkg${i}/lib/index.js`] = 'module.exports = 0;\n';
    }
    const webEntries = watchedEntries(files, 'web');
    const probeEntries = watchedEntries(files, 'probe');
    assert.equal(webEntries, 11, 'web/, a/, b/, c/, c/d/, c/d/e/ and 5 files');
    const tables = (webWatch: string, probe: boolean) => appTable('web', 'web', webWatch) + (probe ? PROBE_TABLE : '');
    const { gw, watches } = await startWatching(tables('true', true), files, ['web', 'probe']);
    try {
      const fdsBefore = gw.openFds();
      // More packages under node_modules (and a .git) while running: still no watch for them.
      const more: Record<string, string> = { 'web/.git/HEAD': 'ref: refs/heads/main\n' };
      for (let i = 0; i < 20; i++) more[`web/node_modules/late${i}/sub/index.js`] = 'module.exports = 0;\n';
      edit(gw, more);
      await tick(gw);
      assert.equal(inotifyWatches(gw.pid), watches, 'node_modules and .git are not entered');

      // watch = false: the reload closes web's watcher (it also rolls web, whose config changed).
      gw.writeConfig(adminGatewaySection() + tables('false', true));
      const reload = await gw.waitForReloads(1);
      assert.match(String(reload.msg), /^reload finished/, JSON.stringify(reload));
      assert.deepEqual(reload.failed, [], JSON.stringify(reload));
      const closed = watches - webEntries;
      await waitFor(() => inotifyWatches(gw.pid) <= closed || undefined, "web's watches to go");
      assert.equal(inotifyWatches(gw.pid), closed, "exactly web's watches went: none was in node_modules");
      const webPids = gw.readyPids('web').length;
      const mark = gw.logs.length;
      edit(gw, { 'web/server.js': server('v2'), 'web/a/one.js': '11\n' });
      await tick(gw);
      assert.deepEqual(triggers(gw, 'web', mark), [], 'no restart with watch = false');
      assert.equal(gw.readyPids('web').length, webPids);
      assert.equal((await served(gw, 'web')).version, 'v1');

      // Removing probe closes its watcher too.
      gw.writeConfig(adminGatewaySection() + tables('false', false));
      const removal = await gw.waitForReloads(2);
      assert.deepEqual(removal.removed, ['probe'], JSON.stringify(removal));
      const gone = closed - probeEntries;
      await waitFor(() => inotifyWatches(gw.pid) <= gone || undefined, "probe's watches to go");
      assert.equal(inotifyWatches(gw.pid), gone);
      await waitFor(() => gw.openFds() <= fdsBefore || undefined, 'no more open fds than at the start');
    } finally {
      await gw.cleanup();
    }
  });
});
