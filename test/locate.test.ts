import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import toml from 'toml';
import { joinKeyPath, type KeyLocations, lineOf, locateKeys } from '../src/config/locate.js';

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
  assert.deepEqual(
    parsed,
    Object.keys(expected).sort(),
    `the parser's keys (the example's expectation is wrong):\n${numbered(text)}`,
  );
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
      été: 4,
      '😀 smile': 5,
      '\u001b[0m A': 6,
      'raw\ttab é': 7,
    });
  });

  test('literal keys keep their backslashes; quoted keys may hold "#", "=", "[" and the other quote', () => {
    const text = [
      "'C:\\temp\\new' = 1",
      `'say "hi"' = 2`,
      `"it's # [not] = a table" = 3`,
      "[tbl.'x\\u0041']",
      '"" = 4',
      '',
    ].join('\n');
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
    const text = ['[apps.web]', 'env = { A = "1", "B\\u0021" = "2", nested = { x.y = 1 } }', 'empty = {}', ''].join(
      '\n',
    );
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
    const text = [
      'env = {',
      '  A = "1", # B = "no"',
      '  # [not.a.table]',
      '  C = [1,',
      '    2],',
      '}',
      'after = 1',
      '',
    ].join('\n');
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
      loc.tables.map((t) => [t.path, t.headerLine, t.lastContentLine]),
      [
        ['a.b', 1, 2],
        ['a', 4, 5],
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
      loc.tables.map((t) => [t.path, t.headerLine]),
      [
        ['srv[0]', 1],
        ['srv[0].port[0]', 3],
        ['srv[1]', 5],
        ['srv[1].tls', 7],
        ['srv[1].port[0]', 9],
        ['srv[1].port[1]', 11],
      ],
    );
  });
});

describe('locateKeys: comments, multi-line strings, line endings', () => {
  test('comments that look like keys or headers are not read', () => {
    const text = [
      '# [fake]',
      'a = 1 # b = 2',
      '[t] # [u]',
      'c = [ # d = 1',
      '  1, # ]',
      '] # e = {',
      '  # f = 1',
      '',
    ].join('\n');
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

// ---------------------------------------------------------------------------
// Generated documents: the generator knows the line of every key it writes.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
}

type Kind = 'root' | 'implicit' | 'table' | 'dotted' | 'aot' | 'leaf';

/** What the generator has defined: enough of TOML's table rules to write only valid documents. */
interface Node {
  kind: Kind;
  /** Key names from the root, as a header spells them. */
  names: string[];
  /** Resolved path, with `[i]` for array elements. */
  path: string[];
  children: Map<string, Node>;
  /** The elements of an array of tables. */
  elements: Node[];
}

function child(parent: Node, name: string, kind: Kind): Node {
  const node: Node = {
    kind,
    names: [...parent.names, name],
    path: [...parent.path, name],
    children: new Map(),
    elements: [],
  };
  parent.children.set(name, node);
  return node;
}

const BARE_CHARS = [...'abcxyzQRS0123456789_-'];
/** Characters of quoted names: no '.' or ']', which would make joined paths ambiguous. */
const NAME_CHARS = [...'abqZ09_- #=[{},"\'\\\t\n\r\b\f\u001b\u0000\u007féß€😀\u2028'];
const NAMED_ESCAPES: Record<string, string> = {
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\f': '\\f',
  '\r': '\\r',
  '"': '\\"',
  '\\': '\\\\',
  '\u001b': '\\e',
};
const SCALARS = [
  '1',
  '-17',
  '+3',
  '1_000',
  '0xDEAD_beef',
  '0o755',
  '0b1101',
  '3.14',
  '-0.5e-3',
  '6.02E+23',
  'inf',
  '-inf',
  'nan',
  'true',
  'false',
  '1979-05-27T07:32:00Z',
  '1979-05-27 07:32:00.999-07:00',
  '1979-05-27T07:32:00',
  '1979-05-27',
  '07:32:00',
  '07:32',
];
const STRING_CHARS = [...'ab Z9#=[]{},.\'"\\\té😀'];
const LITERAL_CHARS = STRING_CHARS.filter((c) => c !== "'");
const ML_BASIC_BITS = [
  '[fake.table]',
  '[[fake.array]]',
  'key = "value"',
  "k = 'v'",
  '# hash',
  "'''",
  '""',
  '\\"""',
  '\\\\',
  '\\u00e9',
  '{ a = 1 }',
  '= [',
  'a.b = 1',
  ']',
  '\\t',
];
const ML_LITERAL_BITS = [
  '[fake.table]',
  '[[fake]]',
  'key = "v"',
  '"""',
  '\\n stays',
  'C:\\dir\\',
  "'",
  "''",
  '# hash',
  'x = {',
  '] }',
];
const COMMENT_BITS = [
  '[x]',
  '[[y]]',
  'k = 1',
  '"',
  "'",
  '"""',
  "'''",
  '{',
  '}',
  ',',
  'é',
  ' ',
  '\t',
  '#',
  '\\',
  'z.w = "v"',
];

class DocGen {
  text = '';
  line = 1;
  readonly expected = new Map<string, number>();
  readonly tables: { path: string; headerLine: number; lastContentLine: number }[] = [];
  readonly root: Node = { kind: 'root', names: [], path: [], children: new Map(), elements: [] };
  readonly nl: string;

  constructor(readonly rng: Rng) {
    this.nl = rng.chance(0.2) ? '\r\n' : '\n';
  }

  emit(s: string): void {
    this.text += s;
    for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) this.line++;
  }

  /** The key at `path` is written on the current line (unless it appeared before). */
  note(path: readonly string[]): void {
    const key = joinKeyPath(path);
    if (!this.expected.has(key)) this.expected.set(key, this.line);
  }

  ws(): string {
    return this.rng.pick(['', '', ' ', '  ', '\t']);
  }

  comment(): string {
    let c = '#';
    for (let n = this.rng.int(5); n > 0; n--) c += this.rng.pick(COMMENT_BITS);
    return c;
  }

  /** Blank and comment-only lines. */
  filler(): void {
    while (this.rng.chance(0.3)) this.emit(`${this.ws()}${this.rng.chance(0.6) ? this.comment() : ''}${this.nl}`);
  }

  endOfLine(): void {
    this.emit(`${this.ws()}${this.rng.chance(0.3) ? this.comment() : ''}${this.nl}`);
  }

  newName(scope: Node): string {
    for (;;) {
      let name = '';
      const r = this.rng.int(20);
      if (r === 0) name = '';
      else if (r < 11) for (let n = 1 + this.rng.int(6); n > 0; n--) name += this.rng.pick(BARE_CHARS);
      else for (let n = 1 + this.rng.int(5); n > 0; n--) name += this.rng.pick(NAME_CHARS);
      if (!scope.children.has(name)) return name;
    }
  }

  spell(name: string): string {
    const r = this.rng.int(10);
    if (/^[A-Za-z0-9_-]+$/.test(name) && r < 6) return name;
    // A literal string cannot hold a quote or a control character (other than tab).
    if (![...name].some((c) => c === "'" || (c < ' ' && c !== '\t') || c === '\u007f') && r < 8) return `'${name}'`;
    return `"${this.escape(name)}"`;
  }

  /** A basic string's body for `s`, escaping what must be and some of the rest, in every form. */
  escape(s: string): string {
    let out = '';
    for (const ch of s) {
      const cp = ch.codePointAt(0) ?? 0;
      const must = ch === '"' || ch === '\\' || (cp < 0x20 && ch !== '\t') || cp === 0x7f;
      if (!must && !this.rng.chance(0.25)) {
        out += ch;
        continue;
      }
      const hex = (digits: number): string => {
        const h = cp.toString(16).padStart(digits, '0');
        return this.rng.chance(0.5) ? h.toUpperCase() : h;
      };
      const forms: string[] = [`\\U${hex(8)}`];
      const named = NAMED_ESCAPES[ch];
      if (named) forms.push(named, named);
      if (cp <= 0xffff) forms.push(`\\u${hex(4)}`);
      if (cp <= 0xff) forms.push(`\\x${hex(2)}`);
      out += this.rng.pick(forms);
    }
    return out;
  }

  dot(): string {
    return this.rng.pick(['.', '.', ' .', '. ', ' . ', '\t.\t']);
  }

  /** One value for the key at `path`; tables and arrays in it record their keys as they are written. */
  value(path: string[], depth: number): void {
    const r = this.rng.int(depth > 2 ? 5 : 10);
    if (r < 2) this.emit(this.rng.pick(SCALARS));
    else if (r < 3) this.basicString();
    else if (r < 4) {
      let body = '';
      for (let n = this.rng.int(6); n > 0; n--) body += this.rng.pick(LITERAL_CHARS);
      this.emit(`'${body}'`);
    } else if (r < 5) this.multiline();
    else if (r < 8) this.array(path, depth);
    else this.inlineTable(path, depth);
  }

  basicString(): void {
    let body = '';
    for (let n = this.rng.int(6); n > 0; n--) body += this.rng.pick(STRING_CHARS);
    this.emit(`"${this.escape(body)}"`);
  }

  multiline(): void {
    const basic = this.rng.chance(0.5);
    const q = basic ? '"""' : "'''";
    const bits = basic ? ML_BASIC_BITS : ML_LITERAL_BITS;
    this.emit(q);
    this.emit(this.rng.chance(0.5) ? this.nl : 'start ');
    for (let n = this.rng.int(6); n > 0; n--) {
      this.emit(this.rng.pick(bits));
      const sep = this.rng.int(4);
      if (sep === 0) this.emit(' ');
      else if (sep === 1 && basic)
        this.emit(`${this.ws()}\\${this.ws()}${this.nl}${this.ws()}`); // line-ending backslash
      else this.emit(this.nl);
    }
    // Up to two quotes of the delimiter's kind may end the content.
    this.emit(`end${this.rng.pick(['', q[0] ?? '', `${q[0] ?? ''}${q[0] ?? ''}`])}${q}`);
  }

  array(path: string[], depth: number): void {
    const multi = this.rng.chance(0.4);
    const n = this.rng.int(4);
    this.emit('[');
    for (let i = 0; i < n; i++) {
      if (multi) {
        this.emit(this.nl);
        this.filler();
        this.emit(this.ws());
      } else this.emit(this.ws());
      const element = indexed(path, i);
      if (depth < 3 && this.rng.chance(0.4)) {
        this.note(element);
        if (this.rng.chance(0.6)) this.inlineTable(element, depth + 1);
        else this.array(element, depth + 1);
      } else if (this.rng.chance(0.5)) this.emit(this.rng.pick(SCALARS));
      else this.basicString();
      if (multi && this.rng.chance(0.2)) this.emit(`${this.ws()}${this.comment()}${this.nl}`);
      if (i < n - 1 || this.rng.chance(0.3)) this.emit(`${this.ws()},`);
      if (multi && this.rng.chance(0.3)) this.emit(`${this.ws()}${this.comment()}`);
    }
    this.emit(multi ? `${this.nl}${this.ws()}]` : `${this.ws()}]`);
  }

  inlineTable(path: string[], depth: number): void {
    // Over several lines, with comments and a trailing comma: TOML 1.1, which the parser reads.
    const multi = this.rng.chance(0.3);
    const scope: Node = { kind: 'leaf', names: [], path, children: new Map(), elements: [] };
    const dotted = new Set<Node>();
    const n = this.rng.int(4);
    this.emit('{');
    for (let i = 0; i < n; i++) {
      if (multi) {
        this.emit(this.nl);
        this.filler();
      }
      this.emit(this.ws());
      this.keyValue(scope, dotted, depth + 1);
      if (i < n - 1 || (multi && this.rng.chance(0.4))) this.emit(`${this.ws()},`);
      if (multi && this.rng.chance(0.3)) this.emit(`${this.ws()}${this.comment()}`);
    }
    this.emit(multi ? `${this.nl}${this.ws()}}` : `${this.ws()}}`);
  }

  /** A key (maybe dotted, reusing tables the same table's dotted keys made) and its value. */
  keyValue(scope: Node, dotted: Set<Node>, depth: number): void {
    let node = scope;
    const parts: string[] = [];
    for (let j = 1 + (this.rng.chance(0.35) ? this.rng.int(3) : 0); j > 1; j--) {
      const reusable = [...node.children.values()].filter((c) => dotted.has(c));
      if (reusable.length > 0 && this.rng.chance(0.5)) node = this.rng.pick(reusable);
      else {
        node = child(node, this.newName(node), 'dotted');
        dotted.add(node);
      }
      parts.push(node.names[node.names.length - 1] ?? '');
      this.note(node.path);
    }
    const leaf = child(node, this.newName(node), 'leaf');
    parts.push(leaf.names[leaf.names.length - 1] ?? '');
    this.note(leaf.path);
    this.emit(`${parts.map((p) => this.spell(p)).join(this.dot())}${this.ws()}=${this.ws()}`);
    this.value(leaf.path, depth);
  }

  section(scope: Node): void {
    const dotted = new Set<Node>();
    for (let n = this.rng.int(5); n > 0; n--) {
      this.filler();
      this.emit(this.ws());
      this.keyValue(scope, dotted, 0);
      const table = this.tables[this.tables.length - 1];
      if (table) table.lastContentLine = this.line;
      this.endOfLine();
    }
  }

  /** Tables a header can name: the last element of an array of tables stands for it. */
  containers(): Node[] {
    const out: Node[] = [];
    const walk = (n: Node): void => {
      out.push(n);
      for (const c of n.children.values()) {
        if (c.kind === 'aot') {
          const last = c.elements[c.elements.length - 1];
          if (last) walk(last);
        } else if (c.kind === 'implicit' || c.kind === 'table' || c.kind === 'dotted') walk(c);
      }
    };
    walk(this.root);
    return out;
  }

  header(): void {
    this.filler();
    const isArray = this.rng.chance(0.35);
    const parent = this.rng.pick(this.containers());
    let target: Node;
    // A header may define a table other headers implied (not a dotted key's), or add to an array of tables.
    const reuse = [...parent.children.values()].filter((c) => c.kind === (isArray ? 'aot' : 'implicit'));
    if (reuse.length > 0 && this.rng.chance(0.5)) target = this.rng.pick(reuse);
    else {
      let node = parent;
      for (let n = this.rng.int(3); n > 0; n--) node = child(node, this.newName(node), 'implicit');
      target = child(node, this.newName(node), isArray ? 'aot' : 'table');
    }
    let scope = target;
    if (isArray) {
      scope = {
        kind: 'table',
        names: target.names,
        path: indexed(target.path, target.elements.length),
        children: new Map(),
        elements: [],
      };
      target.elements.push(scope);
    } else target.kind = 'table';

    // The header mentions every table on its path; an array of tables on it, by its last element.
    const line = this.line;
    for (let n: Node | undefined = target; n && n !== this.root; n = this.parentOf(n)) this.note(n.path);
    if (isArray) this.note(scope.path);
    const open = isArray ? '[[' : '[';
    const close = isArray ? ']]' : ']';
    this.emit(
      `${this.ws()}${open}${this.ws()}${target.names.map((p) => this.spell(p)).join(this.dot())}${this.ws()}${close}`,
    );
    this.tables.push({ path: joinKeyPath(scope.path), headerLine: line, lastContentLine: line });
    this.endOfLine();
    this.section(scope);
  }

  /** The node holding `n`: for a table in an array element, that element. */
  parentOf(n: Node): Node | undefined {
    let node: Node = this.root;
    for (const name of n.names.slice(0, -1)) {
      const next = node.children.get(name);
      if (!next) return undefined;
      node = next.kind === 'aot' ? (next.elements[next.elements.length - 1] ?? next) : next;
    }
    return node;
  }

  document(): void {
    if (this.rng.chance(0.05)) this.emit('\uFEFF');
    this.section(this.root);
    for (let n = this.rng.int(7); n > 0; n--) this.header();
    this.filler();
    // The last line may have no newline: a comment, blanks, or a key's.
    const end = this.rng.int(10);
    if (end === 0) this.emit(this.comment());
    else if (end === 1) this.emit(this.rng.pick([' ', '\t', '  ']));
    else if (end === 2 && this.text.endsWith(this.nl)) this.text = this.text.slice(0, -this.nl.length);
  }
}

function generate(seed: number): DocGen {
  const doc = new DocGen(new Rng(seed));
  doc.document();
  return doc;
}

describe('locateKeys against toml.parse on generated documents', () => {
  const WANTED = 250;
  const docs: { seed: number; doc: DocGen; parsed: Table }[] = [];
  let attempts = 0;
  for (let seed = 1; docs.length < WANTED && seed < WANTED * 3; seed++) {
    attempts++;
    const doc = generate(seed);
    try {
      docs.push({ seed, doc, parsed: toml.parse(doc.text) as Table });
    } catch {
      // An invalid document: the generator's fault, counted below.
    }
  }
  const located = new Map<number, KeyLocations>();
  const locate = ({ seed, doc }: { seed: number; doc: DocGen }): KeyLocations => {
    const found = located.get(seed) ?? locateKeys(doc.text);
    located.set(seed, found);
    return found;
  };
  /** deepEqual, with the document in the message only when it fails (building it each time is slow). */
  const same = (actual: unknown, expected: unknown, seed: number, doc: DocGen, what: string): void => {
    if (!isDeepStrictEqual(actual, expected))
      assert.deepEqual(actual, expected, `seed ${seed}: ${what}:\n${numbered(doc.text)}`);
  };

  test('the generator writes valid TOML and covers every feature', () => {
    assert.equal(docs.length, WANTED);
    assert.ok(
      attempts - WANTED <= WANTED * 0.05,
      `${attempts - WANTED} of ${attempts} generated documents did not parse`,
    );
    const all = docs.map((d) => d.doc.text);
    const count = (re: RegExp): number => all.filter((t) => re.test(t)).length;
    const features: [string, RegExp][] = [
      ['\\" in a key', /^[^#\n]*"[^"\n]*\\"[^\n]*=/m],
      ['\\u', /\\u[0-9a-fA-F]{4}/],
      ['\\U', /\\U[0-9a-fA-F]{8}/],
      ['\\e or \\x', /\\e|\\x[0-9a-fA-F]{2}/],
      ['literal key', /^\s*'[^'\n]*'\s*=/m],
      ['dotted key', /^\s*[^#\s[=]+\s*\.\s*[^=\n]*=/m],
      ['inline table', /=\s*\{/],
      ['multi-line inline table', /\{\r?\n/],
      ['inline array of tables', /\[\s*\{/],
      ['sub-table', /^\s*\[[^[\n]*\.[^\n]*\]/m],
      ['array of tables', /^\s*\[\[/m],
      ['comment after a value', /= [^\n#]+#/],
      ['comment in an array', /,\s*#/],
      ['multi-line basic string with [ and =', /"""[\s\S]*?\[[\s\S]*?=[\s\S]*?"""/],
      ['multi-line literal string with [ and =', /'''[\s\S]*?\[[\s\S]*?=[\s\S]*?'''/],
      ['line-ending backslash', /\\[ \t]*\r?\n/],
      ['CRLF', /\r\n/],
      ['byte-order mark', /^\uFEFF/],
    ];
    for (const [name, re] of features) assert.ok(count(re) >= 3, `${name}: in ${count(re)} documents`);
  });

  test('every key the parser finds is located on the line the generator wrote it', () => {
    let keys = 0;
    for (const d of docs) {
      const { seed, doc, parsed } = d;
      const parsedKeys = [...parsedPaths(parsed)].sort();
      // The generator's own bookkeeping must agree with the parser, or the check below means nothing.
      same(parsedKeys, [...doc.expected.keys()].sort(), seed, doc, "the generator's keys are not the parser's");
      const loc = locate(d);
      for (const key of parsedKeys) {
        const got = loc.lines.get(key);
        const want = doc.expected.get(key);
        if (got !== want) {
          assert.fail(
            `seed ${seed}: ${JSON.stringify(key)} located on line ${got}, written on line ${want}:\n${numbered(doc.text)}`,
          );
        }
      }
      same(
        [...loc.lines.keys()].filter((k) => !doc.expected.has(k)),
        [],
        seed,
        doc,
        'keys the parser does not have',
      );
      keys += parsedKeys.length;
    }
    assert.ok(keys > WANTED * 10, `only ${keys} keys checked`);
  });

  test('every table header is found, with its span', () => {
    let tables = 0;
    for (const d of docs) {
      const got = locate(d).tables;
      same(got, d.doc.tables, d.seed, d.doc, 'tables');
      tables += got.length;
    }
    assert.ok(tables > WANTED, `only ${tables} tables checked`);
  });
});
