/**
 * Finds where keys and tables sit in a TOML document.
 *
 * The TOML parser reports positions only for syntax errors, but the README
 * wants every config error to name the line of the key it is about, and the
 * admin API (issue 5) edits app tables in place. Both need a map from a
 * dotted key path to its line, and the line span of each table. This scanner
 * runs only on text the real parser has accepted, so it follows TOML's
 * lexical structure (strings, comments, arrays, inline tables) without
 * re-validating it.
 */

export interface TableSpan {
  /** Dotted path of the table header, e.g. `apps.blog`; an array of tables' element has its index: `srv[1].port[0]`. */
  path: string;
  /** 1-based line of the header. */
  headerLine: number;
  /**
   * 1-based line where the table's last key/value ends (the header line for
   * an empty table). Comments and blank lines after it, which usually belong
   * to whatever comes next, are not counted.
   */
  lastContentLine: number;
}

export interface KeyLocations {
  /** Dotted key path → 1-based line where the key (or table header) is written. */
  lines: Map<string, number>;
  /** Every table header in file order. */
  tables: TableSpan[];
}

export function joinKeyPath(parts: readonly string[]): string {
  return parts.join('.');
}

class Scanner {
  pos = 0;
  line = 1;
  constructor(readonly text: string) {}

  peek(offset = 0): string {
    return this.text[this.pos + offset] ?? '';
  }

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  advance(): string {
    const ch = this.text[this.pos++] ?? '';
    if (ch === '\n') this.line++;
    return ch;
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** Skips spaces, newlines and comments (inside arrays and multi-line inline tables). */
  skipBlank(): void {
    for (;;) {
      const ch = this.peek();
      if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') this.advance();
      else if (ch === '#') this.skipComment();
      else return;
    }
  }

  skipComment(): void {
    while (!this.atEnd() && this.peek() !== '\n') this.pos++;
  }

  skipToLineEnd(): void {
    while (!this.atEnd() && this.peek() !== '\n') this.pos++;
  }

  readString(): string {
    if (this.startsWith('"""')) return this.readDelimited('"""', true);
    if (this.startsWith("'''")) return this.readDelimited("'''", false);
    if (this.peek() === '"') return this.readDelimited('"', true);
    return this.readDelimited("'", false);
  }

  private readDelimited(quote: string, escapes: boolean): string {
    this.pos += quote.length;
    let out = '';
    while (!this.atEnd()) {
      if (this.startsWith(quote)) {
        this.pos += quote.length;
        // A multi-line string may end with up to two extra quote characters.
        if (quote.length === 3) {
          while (this.peek() === quote[0]) out += this.advance();
        }
        return out;
      }
      const ch = this.advance();
      out += escapes && ch === '\\' ? this.readEscape() : ch;
    }
    return out;
  }

  /**
   * Decodes the escape after a backslash, as keys need: TOML 1.0's, and 1.1's
   * \e and \xHH, which the parser accepts. A line-ending backslash (in values
   * only, which are skipped) keeps its newline, so lines still count.
   */
  private readEscape(): string {
    const ch = this.advance();
    switch (ch) {
      case 'b':
        return '\b';
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'f':
        return '\f';
      case 'r':
        return '\r';
      case 'e':
        return '\u001b';
      case 'x':
        return this.readCodePoint(2);
      case 'u':
        return this.readCodePoint(4);
      case 'U':
        return this.readCodePoint(8);
    }
    return ch; // \" and \\
  }

  private readCodePoint(digits: number): string {
    let hex = '';
    while (hex.length < digits && /[0-9A-Fa-f]/.test(this.peek())) hex += this.advance();
    const code = Number.parseInt(hex, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '';
  }

  /** Reads a key: bare or quoted parts joined by dots. */
  readKey(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skipSpaces();
      const ch = this.peek();
      if (ch === '"' || ch === "'") {
        parts.push(this.readString());
      } else {
        let bare = '';
        while (/[A-Za-z0-9_-]/.test(this.peek())) bare += this.text[this.pos++];
        parts.push(bare);
      }
      this.skipSpaces();
      if (this.peek() === '.') {
        this.pos++;
        continue;
      }
      return parts;
    }
  }
}

/** The path of an array's i-th element: `[i]` after the array's key (`servers[0]`). */
function elementPath(path: readonly string[], i: number): string[] {
  return [...path.slice(0, -1), `${path[path.length - 1] ?? ''}[${i}]`];
}

/**
 * Returns the line of every key and table header. Keys inside inline tables
 * are recorded under their full path (`apps.a.env.GREETING`); a table in an
 * array, of tables or inline, under its index (`servers[1].port`).
 */
export function locateKeys(text: string): KeyLocations {
  const s = new Scanner(text);
  // Node reads a byte-order mark into the text; it is not part of the first key.
  if (text.startsWith('\uFEFF')) s.pos = 1;
  const lines = new Map<string, number>();
  const tables: TableSpan[] = [];
  let prefix: string[] = [];
  /** Elements so far of each array of tables, by resolved path (`servers[1].port`). */
  const arrayCounts = new Map<string, number>();

  const record = (parts: string[], line: number): void => {
    const key = joinKeyPath(parts);
    if (!lines.has(key)) lines.set(key, line);
  };

  const readValue = (path: string[]): void => {
    s.skipSpaces();
    const ch = s.peek();
    if (ch === '"' || ch === "'") {
      s.readString();
    } else if (ch === '[') {
      s.advance();
      for (let i = 0; ; i++) {
        s.skipBlank();
        if (s.peek() === ']' || s.atEnd()) {
          s.advance();
          return;
        }
        // Two tables in one array may hold the same key: the index tells them apart.
        const element = elementPath(path, i);
        if (s.peek() === '{' || s.peek() === '[') record(element, s.line);
        readValue(element);
        s.skipBlank();
        if (s.peek() === ',') s.advance();
      }
    } else if (ch === '{') {
      s.advance();
      for (;;) {
        s.skipBlank();
        if (s.peek() === '}' || s.atEnd()) {
          s.advance();
          return;
        }
        const line = s.line;
        const key = s.readKey();
        const full = [...path, ...key];
        for (let i = path.length + 1; i <= full.length; i++) record(full.slice(0, i), line);
        s.skipSpaces();
        if (s.peek() === '=') s.advance();
        readValue(full);
        s.skipBlank();
        if (s.peek() === ',') s.advance();
      }
    } else {
      // Scalars: numbers, booleans, dates. They end at a delimiter.
      while (!s.atEnd() && !/[,\]}\n#]/.test(s.peek())) s.advance();
    }
  };

  while (!s.atEnd()) {
    s.skipSpaces();
    // Spaces at the very end, with no newline after them, are not a key.
    if (s.atEnd()) break;
    const ch = s.peek();
    if (ch === '\n' || ch === '\r') {
      s.advance();
      continue;
    }
    if (ch === '#') {
      s.skipComment();
      continue;
    }
    if (ch === '[') {
      const line = s.line;
      const isArray = s.peek(1) === '[';
      s.pos += isArray ? 2 : 1;
      const parts = s.readKey();
      s.pos += isArray ? 2 : 1;
      // A header names the last element of every array of tables on its path
      // (`[[srv.port]]` after a second `[[srv]]` is `srv[1].port[n]`).
      prefix = [];
      for (const [i, part] of parts.entries()) {
        const table = [...prefix, part];
        record(table, line);
        const count = arrayCounts.get(joinKeyPath(table));
        if (isArray && i === parts.length - 1) {
          arrayCounts.set(joinKeyPath(table), (count ?? 0) + 1);
          prefix = elementPath(table, count ?? 0);
        } else if (count !== undefined) {
          prefix = elementPath(table, count - 1);
        } else {
          prefix = table;
          continue;
        }
        record(prefix, line);
      }
      tables.push({ path: joinKeyPath(prefix), headerLine: line, lastContentLine: line });
      s.skipToLineEnd();
      continue;
    }
    const line = s.line;
    const key = s.readKey();
    const full = [...prefix, ...key];
    for (let i = prefix.length + 1; i <= full.length; i++) record(full.slice(0, i), line);
    s.skipSpaces();
    if (s.peek() === '=') s.advance();
    readValue(full);
    const current = tables[tables.length - 1];
    if (current) current.lastContentLine = s.line;
    s.skipToLineEnd();
  }
  return { lines, tables };
}

/**
 * The line to blame for a key: the key itself, else its nearest written
 * ancestor (a missing `hosts` is blamed on the `[apps.blog]` header).
 */
export function lineOf(locations: KeyLocations, path: readonly string[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const line = locations.lines.get(joinKeyPath(path.slice(0, n)));
    if (line !== undefined) return line;
  }
  return undefined;
}
