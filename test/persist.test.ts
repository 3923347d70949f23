/**
 * The text edits behind POST and DELETE /admin/apps (SPEC §8): the rest of
 * nano.toml stays byte for byte, and what is written reads back the same.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import toml from 'toml';
import { parseConfig } from '../src/config/load.js';
import { appendAppTable, ConfigEditError, removeAppTable } from '../src/config/persist.js';
import { FIXTURE_APP } from './helpers.js';

const FILE = path.join(path.dirname(FIXTURE_APP), 'nano.toml');
const ENTRY = JSON.stringify(FIXTURE_APP);

/** The TOML parser's reading of `text`, as plain objects. */
function parse(text: string): any {
  return JSON.parse(JSON.stringify(toml.parse(text)));
}

describe('appendAppTable', () => {
  const keys = {
    hosts: ['new.test', '*.new.test'],
    entry: FIXTURE_APP,
    env: { GREETING: 'hi' },
    instances: 2,
    health_path: '/health',
  };
  const originals: Record<string, string> = {
    'ends with a newline': `[gateway]\nlisten = ":0"   # comment\n\n[apps.a]\nhosts = ["a.test"]\nentry = ${ENTRY}\n`,
    'ends with a blank line': `[apps.a]\nhosts = ["a.test"]\nentry = ${ENTRY}\n\n`,
    'no final newline': `[apps.a]\nhosts = ["a.test"]\nentry = ${ENTRY}`,
    'ends in a comment without newline': `[apps.a]\nhosts = ["a.test"]\nentry = ${ENTRY}\n# the end`,
    'ends with a sub-table': `[apps.a]\nhosts = ["a.test"]\nentry = ${ENTRY}\n\n[apps.a.env]\nX = "1"\n`,
    'CRLF line ends': `[gateway]\r\nlisten = ":0"\r\n\r\n[apps.a]\r\nhosts = ["a.test"]\r\nentry = ${ENTRY}\r\n`,
  };

  for (const [what, original] of Object.entries(originals)) {
    test(`${what}: the original is a prefix and the result is a valid config with the new app`, () => {
      const text = appendAppTable(original, 'new', keys);
      assert.ok(text.startsWith(original));
      assert.doesNotMatch(
        text.slice(Math.max(0, original.length - 2)),
        /\n\s*\n\s*\n/,
        'no double blank line where the table was added',
      );
      const config = parseConfig(text, FILE);
      assert.deepEqual(
        config.apps.map((a) => a.name),
        ['a', 'new'],
      );
      const app = config.apps[1];
      assert.deepEqual(app?.hosts, ['new.test', '*.new.test']);
      assert.equal(app?.entry, FIXTURE_APP);
      assert.deepEqual(app?.env, { GREETING: 'hi' });
      assert.equal(app?.instances, 2);
      assert.equal(app?.healthPath, '/health');
      // The original app reads the same as before.
      assert.deepEqual(parse(text).apps.a, parse(original).apps.a);
    });
  }

  test('into an empty file', () => {
    const text = appendAppTable('', 'web', { hosts: ['w.test'], entry: FIXTURE_APP });
    assert.deepEqual(parse(text), { apps: { web: { hosts: ['w.test'], entry: FIXTURE_APP } } });
    assert.ok(text.startsWith('[apps.web]\n'));
    assert.ok(text.endsWith('\n'));
  });

  test('strings round-trip through the TOML parser: quotes, backslashes, unicode, control characters, odd keys', () => {
    const values = [
      'plain',
      'say "hi"',
      "it's",
      'C:\\path\\to\\file',
      'ends with a backslash \\',
      '\\"',
      'line1\nline2\r\n',
      'tab\there',
      'bell\u0007 null\u0000 esc\u001b us\u001f del\u007f',
      '\b\f\v',
      'grüße, 日本語, emoji 😀, combining é',
      '\u2028\u2029\u0085',
      '# not a comment',
      '[apps.fake]',
      '"""',
      "'''",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a value that looks like a shell variable, on purpose
      '${HOME}',
      '',
    ];
    const env: Record<string, string> = {};
    values.forEach((v, i) => {
      env[`V${i}`] = v;
    });
    env['dotted.key'] = 'd';
    env['with space'] = 's';
    env.ünïcode = 'u';
    env['quote"key'] = 'q';
    env[''] = 'empty key';
    const args = [...values];
    const text = appendAppTable('', 'web', {
      hosts: ['web.test'],
      entry: FIXTURE_APP,
      env,
      args,
      node_args: [],
      health_path: '/h?x="1"',
    });
    const back = parse(text).apps.web;
    assert.deepEqual(back.env, env);
    assert.deepEqual(back.args, args);
    assert.deepEqual(back.node_args, []);
    assert.equal(back.health_path, '/h?x="1"');
    // Each key is on its own line: no value broke out of its string.
    assert.equal(text.trimEnd().split('\n').length, 1 + 6);
  });

  test('numbers and booleans are written as TOML values; unknown keys are kept for validation to reject', () => {
    const text = appendAppTable('', 'web', {
      hosts: ['w.test'],
      entry: FIXTURE_APP,
      instances: 3,
      max_memory_mb: 512,
      env: { ON: true },
      colour: 'blue',
    });
    const back = parse(text).apps.web;
    assert.equal(back.instances, 3);
    assert.equal(back.max_memory_mb, 512);
    assert.equal(back.env.ON, true);
    assert.equal(back.colour, 'blue');
    assert.throws(() => parseConfig(text, FILE), /apps\.web\.colour: unknown key/);
  });

  test('values that TOML cannot hold are refused with ConfigEditError', () => {
    for (const bad of [null, Number.NaN, Number.POSITIVE_INFINITY, () => 1]) {
      assert.throws(
        () => appendAppTable('', 'web', { hosts: ['w.test'], entry: FIXTURE_APP, instances: bad }),
        (err: unknown) => err instanceof ConfigEditError,
      );
    }
  });
});

describe('removeAppTable', () => {
  const app = (name: string, extra = ''): string =>
    `[apps.${name}]\nhosts = ["${name}.test"]\nentry = ${ENTRY}\n${extra}`;
  const head = `# my gateway\n[gateway]\nlisten = "127.0.0.1:0"  # loopback\n\n[admin]\nlisten = false\n`;
  const three =
    `${head}\n` +
    `# first app\n${app('first')}# after first\n\n` +
    `# middle app\n${app('mid', 'instances = 2   # two\n')}[apps.mid.env]\nA = "1"\n# after mid\n\n` +
    `# last app\n${app('last')}# after last\n`;

  test('the middle table and its sub-table: exactly those lines go', () => {
    const out = removeAppTable(three, 'mid');
    const expected =
      `${head}\n` +
      `# first app\n${app('first')}# after first\n\n` +
      `# middle app\n# after mid\n\n` +
      `# last app\n${app('last')}# after last\n`;
    assert.equal(out, expected);
    assert.deepEqual(Object.keys(parse(out).apps), ['first', 'last']);
  });

  test('the first and the last table', () => {
    assert.equal(
      removeAppTable(three, 'first'),
      `${head}\n# first app\n# after first\n\n# middle app\n${app('mid', 'instances = 2   # two\n')}[apps.mid.env]\nA = "1"\n# after mid\n\n# last app\n${app('last')}# after last\n`,
    );
    assert.equal(
      removeAppTable(three, 'last'),
      `${head}\n# first app\n${app('first')}# after first\n\n# middle app\n${app('mid', 'instances = 2   # two\n')}[apps.mid.env]\nA = "1"\n# after mid\n\n# last app\n# after last\n`,
    );
  });

  test('no double blank line is left, with or without comments around the table', () => {
    const plain = `${head}\n${app('a')}\n${app('b')}\n${app('c')}`;
    assert.equal(removeAppTable(plain, 'a'), `${head}\n${app('b')}\n${app('c')}`);
    assert.equal(removeAppTable(plain, 'b'), `${head}\n${app('a')}\n${app('c')}`);
    assert.equal(removeAppTable(plain, 'c'), `${head}\n${app('a')}\n${app('b')}`);
    const noFinalNewline = `${head}\n${app('a')}\n${app('b')}`.slice(0, -1);
    assert.equal(removeAppTable(noFinalNewline, 'b'), `${head}\n${app('a')}`.slice(0, -1));
    for (const name of ['first', 'mid', 'last'])
      assert.doesNotMatch(removeAppTable(three, name), /\n[ \t]*\n[ \t]*\n/, name);
  });

  test('a blank line between a table and its sub-table: the app goes, every other line stays, no double blank', () => {
    const text = `${head}\n${app('a')}\n${app('b', 'instances = 1\n')}\n[apps.b.env]\nB = "1"\n# after b\n\n${app('c')}`;
    const out = removeAppTable(text, 'b');
    assert.equal(out, `${head}\n${app('a')}\n# after b\n\n${app('c')}`);
  });

  test('a sub-table written away from its table goes too; apps whose names share a prefix stay', () => {
    const text = `# top\n${app('web')}\n${app('web2')}\n[apps.web.env]\nX = "1"\n\n${app('web-x')}\n[apps.web2.env]\nY = "2"\n`;
    const out = removeAppTable(text, 'web');
    assert.equal(out, `# top\n\n${app('web2')}\n${app('web-x')}\n[apps.web2.env]\nY = "2"\n`);
    assert.deepEqual(parse(out).apps, {
      web2: { hosts: ['web2.test'], entry: FIXTURE_APP, env: { Y: '2' } },
      'web-x': { hosts: ['web-x.test'], entry: FIXTURE_APP },
    });
  });

  test('a quoted table name, spaces in the header, multi-line values and tricky strings', () => {
    const text =
      `${app('a')}\n` +
      `[ apps."b" ]   # quoted\nhosts = [\n  "b.test",   # one\n  "b2.test",\n]\nentry = ${ENTRY}\nargs = ["[apps.c]", "# x"]\n# kept\n\n` +
      `${app('c')}`;
    const out = removeAppTable(text, 'b');
    assert.equal(out, `${app('a')}\n# kept\n\n${app('c')}`);
    assert.deepEqual(Object.keys(parse(out).apps), ['a', 'c']);
  });

  test('CRLF files keep their line ends', () => {
    const text = `${head}\n${app('a')}\n${app('b')}\n${app('c')}`.replace(/\n/g, '\r\n');
    const out = removeAppTable(text, 'b');
    assert.equal(out, `${head}\n${app('a')}\n${app('c')}`.replace(/\n/g, '\r\n'));
  });

  test('the table at the very top of the file', () => {
    const text = `${app('a')}\n${app('b')}`;
    const out = removeAppTable(text, 'a');
    // The blank line after it may stay as the first line, but no more.
    assert.ok(out === app('b') || out === `\n${app('b')}`, JSON.stringify(out));
  });

  test('ConfigEditError for an app not written as its own table, or not in the file', () => {
    const inline = `[apps]\nweb = { hosts = ["w.test"], entry = ${ENTRY} }\nother = { hosts = ["o.test"], entry = ${ENTRY} }\n`;
    const dotted = `[apps]\nweb.hosts = ["w.test"]\nweb.entry = ${ENTRY}\n`;
    for (const text of [inline, dotted]) {
      assert.throws(
        () => removeAppTable(text, 'web'),
        (err: unknown) =>
          err instanceof ConfigEditError && /own \[apps\.web\] table/.test(err.message) && err.key === 'apps.web',
      );
    }
    assert.throws(
      () => removeAppTable(three, 'nosuchapp'),
      (err: unknown) => err instanceof ConfigEditError && /not in the file/.test(err.message),
    );
    // Only the sub-table exists: there is no [apps.x] table to remove.
    assert.throws(() => removeAppTable(`[apps.x.env]\nA = "1"\n`, 'x'), ConfigEditError);
  });
});
