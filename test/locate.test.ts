import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import toml from 'toml';
import { joinKeyPath, lineOf, locateKeys, type KeyLocations } from '../src/config/locate.js';

/*
 * locate.ts is a second TOML lexer: it must find every key the real parser
 * finds, at the line it is written on. Paths are the decoded key strings
 * joined by '.', with `[i]` after an array for its i-th table (or array)
 * element, as locateKeys records them. No generated key contains '.' or ']',
 * so the joined form is unambiguous.
 */

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Every key path in a parsed document: tables, values, and the table/array elements of arrays. */
function parsedPaths(doc: Table): Set<string> {
  const out = new Set<string>();
  const walk = (value: unknown, parts: string[]): void => {
    if (isTable(value)) {
      for (const [k, v] of Object.entries(value)) {
        const child = [...parts, k];
        out.add(joinKeyPath(child));
        walk(v, child);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => {
        if (!isTable(v) && !Array.isArray(v)) return;
        const child = indexed(parts, i);
        out.add(joinKeyPath(child));
        walk(v, child);
      });
    }
  };
  walk(doc, []);
  return out;
}

function indexed(parts: readonly string[], i: number): string[] {
  return [...parts.slice(0, -1), `${parts[parts.length - 1] ?? ''}[${i}]`];
}

/** `text` with line numbers, for failure messages. */
function numbered(text: string): string {
  return text
    .split('\n')
    .map((l, i) => `${String(i + 1).padStart(3)}| ${JSON.stringify(l).slice(1, -1)}`)
    .join('\n');
}

/** Asserts that locateKeys finds exactly the parser's keys, each on `expected`'s line. */
function assertLocated(text: string, expected: Record<string, number>, loc: KeyLocations = locateKeys(text)): void {
  const parsed = [...parsedPaths(toml.parse(text) as Table)].sort();
  assert.deepEqual(parsed, Object.keys(expected).sort(), `the parser's keys (the example's expectation is wrong):\n${numbered(text)}`);
  assert.deepEqual(Object.fromEntries(loc.lines), expected, `located keys:\n${numbered(text)}`);
}

describe('locateKeys: quoted keys', () => {
  test('a \\u escape in a quoted key is decoded (it was kept as "u00e9", so errors fell back to the table header)', () => {
    const text = ['[apps.web.env]', 'PLAIN = "x"', '"caf\\u00e9" = 1', ''].join('\n');
    const loc = locateKeys(text);
    assert.equal(loc.lines.get('apps.web.env.café'), 3);
    assert.equal(lineOf(loc, ['apps', 'web', 'env', 'café']), 3);
    assert.equal(loc.lines.has('apps.web.env.cafu00e9'), false);
  });

  test('every escape of a basic string: \\b \\t \\n \\f \\r \\" \\\\ \\uXXXX \\UXXXXXXXX, and TOML 1.1 \\e \\xHH', () => {
    const text = [
      '"a\\"b" = 1',
      '"back\\\\slash" = 2',
      '"\\b\\t\\n\\f\\r" = 3',
      '"\\u00E9t\\u00e9" = 4',
      '"\\U0001F600 smile" = 5',
      '"\\e[0m \\x41" = 6',
      '"raw\ttab é" = 7',
      '',
    ].join('\n');
    assertLocated(text, {
      'a"b': 1,
      'back\\slash': 2,
      '\b\t\n\f\r': 3,
      'été': 4,
      '😀 smile': 5,
      '\u001b[0m A': 6,
      'raw\ttab é': 7,
    });
  });

  test('literal keys keep their backslashes; quoted keys may hold "#", "=", "[" and the other quote', () => {
    const text = ["'C:\\temp\\new' = 1", `'say "hi"' = 2`, `"it's # [not] = a table" = 3`, "[tbl.'x\\u0041']", '"" = 4', ''].join('\n');
    assertLocated(text, {
      'C:\\temp\\new': 1,
      'say "hi"': 2,
      "it's # [not] = a table": 3,
      tbl: 4,
      'tbl.x\\u0041': 4,
      'tbl.x\\u0041.': 5,
    });
  });
});

describe('locateKeys: dotted keys and inline tables', () => {
  test('dotted keys record every prefix on their line, with whitespace around the dots', () => {
    const text = ['name = "x"', 'site . "a b" .\tport = 80', "site.'a b'.host = 'h'", 'site.other = 1', ''].join('\n');
    assertLocated(text, { name: 1, site: 2, 'site.a b': 2, 'site.a b.port': 2, 'site.a b.host': 3, 'site.other': 4 });
  });

  test('keys in inline tables, nested and dotted, under their full path', () => {
    const text = ['[apps.web]', 'env = { A = "1", "B\\u0021" = "2", nested = { x.y = 1 } }', 'empty = {}', ''].join('\n');
    assertLocated(text, {
      apps: 1,
      'apps.web': 1,
      'apps.web.env': 2,
      'apps.web.env.A': 2,
      'apps.web.env.B!': 2,
      'apps.web.env.nested': 2,
      'apps.web.env.nested.x': 2,
      'apps.web.env.nested.x.y': 2,
      'apps.web.empty': 3,
    });
  });

  test('an inline table over several lines (TOML 1.1), with comments and a trailing comma', () => {
    const text = ['env = {', '  A = "1", # B = "no"', '  # [not.a.table]', '  C = [1,', '    2],', '}', 'after = 1', ''].join('\n');
    assertLocated(text, { env: 1, 'env.A': 2, 'env.C': 4, after: 7 });
  });

  test('tables in an inline array are numbered like arrays of tables', () => {
    const text = ['points = [', '  { x = 1 },', '  { x = 2, y = [[{ z = 3 }]] },', ']', ''].join('\n');
    assertLocated(text, {
      points: 1,
      'points[0]': 2,
      'points[0].x': 2,
      'points[1]': 3,
      'points[1].x': 3,
      'points[1].y': 3,
      'points[1].y[0]': 3,
      'points[1].y[0][0]': 3,
      'points[1].y[0][0].z': 3,
    });
  });
});

describe('locateKeys: sub-tables and arrays of tables', () => {
  test('a super-table defined after its sub-table keeps the line where it first appears', () => {
    const text = ['[a.b]', 'x = 1', '', '[a]', 'y = 2', ''].join('\n');
    const loc = locateKeys(text);
    assertLocated(text, { a: 1, 'a.b': 1, 'a.b.x': 2, 'a.y': 5 }, loc);
    assert.deepEqual(
      loc.tables.map((t) => [t.path, t.headerLine, t.lastContentLine, t.endLine]),
      [
        ['a.b', 1, 2, 3],
        ['a', 4, 5, 6],
      ],
    );
  });

  test('sub-tables and arrays inside an array of tables belong to its last element', () => {
    const text = [
      '[[srv]]', //   1
      'name = "a"',
      '[[srv.port]]',
      'n = 1',
      '[[srv]]', //   5
      'name = "b"',
      '[srv.tls]',
      'on = true',
      '[[srv.port]]',
      'n = 2', //    10
      '[[srv.port]]',
      'n = 3',
      '',
    ].join('\n');
    const loc = locateKeys(text);
    assertLocated(
      text,
      {
        srv: 1,
        'srv[0]': 1,
        'srv[0].name': 2,
        'srv[0].port': 3,
        'srv[0].port[0]': 3,
        'srv[0].port[0].n': 4,
        'srv[1]': 5,
        'srv[1].name': 6,
        'srv[1].tls': 7,
        'srv[1].tls.on': 8,
        'srv[1].port': 9,
        'srv[1].port[0]': 9,
        'srv[1].port[0].n': 10,
        'srv[1].port[1]': 11,
        'srv[1].port[1].n': 12,
      },
      loc,
    );
    assert.deepEqual(
      loc.tables.map((t) => [t.path, t.headerLine, t.isArray]),
      [
        ['srv[0]', 1, true],
        ['srv[0].port[0]', 3, true],
        ['srv[1]', 5, true],
        ['srv[1].tls', 7, false],
        ['srv[1].port[0]', 9, true],
        ['srv[1].port[1]', 11, true],
      ],
    );
  });
});

describe('locateKeys: comments, multi-line strings, line endings', () => {
  test('comments that look like keys or headers are not read', () => {
    const text = ['# [fake]', 'a = 1 # b = 2', '[t] # [u]', 'c = [ # d = 1', '  1, # ]', '] # e = {', '  # f = 1', ''].join('\n');
    const loc = locateKeys(text);
    assertLocated(text, { a: 2, t: 3, 't.c': 4 }, loc);
    assert.deepEqual(
      loc.tables.map((t) => [t.path, t.lastContentLine]),
      [['t', 6]],
    );
  });

  test('multi-line strings holding "[", "=", quotes and line-ending backslashes', () => {
    const text = [
      'a = """', //          1
      '[fake.table]',
      'k = "v" \\',
      '   [[fake]] \\"""',
      'x = 1""""', //        5
      "b = '''",
      '[lit] = "\\"""',
      "y = '' ''''",
      '[real]', //           9
      'c = """\\\\"""',
      "d = '''C:\\dir\\'''",
      'e = """"quoted" \\\\\\',
      '"""',
      'f = 1', //           14
      '',
    ].join('\n');
    const loc = locateKeys(text);
    assertLocated(text, { a: 1, b: 6, real: 9, 'real.c': 10, 'real.d': 11, 'real.e': 12, 'real.f': 14 }, loc);
    assert.deepEqual(
      loc.tables.map((t) => t.path),
      ['real'],
    );
  });

  test('CRLF line endings give the same lines as LF', () => {
    const lf = ['# c', '[a]', 'x = """', 'line', '"""', '"q\\u0041" = { y = 1 } # c', '[[b]]', 'z = 1', ''].join('\n');
    const expected = { a: 2, 'a.x': 3, 'a.qA': 6, 'a.qA.y': 6, b: 7, 'b[0]': 7, 'b[0].z': 8 };
    assertLocated(lf, expected);
    const crlf = lf.replaceAll('\n', '\r\n');
    const loc = locateKeys(crlf);
    assertLocated(crlf, expected, loc);
    assert.deepEqual(
      loc.tables.map((t) => [t.path, t.headerLine, t.lastContentLine]),
      [
        ['a', 2, 6],
        ['b[0]', 7, 8],
      ],
    );
  });

  test('blanks after the last line, with no newline after them, are not a key', () => {
    const text = '[t]\nx = 1\n  ';
    const loc = locateKeys(text);
    assertLocated(text, { t: 1, 't.x': 2 }, loc);
    assert.equal(loc.tables[0]?.lastContentLine, 2);
  });

  test('a byte-order mark before the first key', () => {
    const text = '\uFEFFfirst = 1\n[t]\nsecond = 2\n';
    assertLocated(text, { first: 1, t: 2, 't.second': 3 });
  });
});

