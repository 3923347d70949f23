/**
 * parseConfig for HTTPS (SPEC §10, §3): the `[tls]` table, its defaults and
 * errors, and each app's `tls` key, including certificate files read and
 * checked at load time. Every error is `file:line: key: message`, on the
 * line of the key it is about.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';
import { type Ca, type Leaf, makeCa, makeKey, makeLeaf } from './tls/pki.js';

let dir: string;
let file: string;
let ca: Ca;
/** Covers blog.test and www.blog.test. */
let blog: Leaf;
/** Covers *.shop.test only. */
let shopWild: Leaf;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nano-tls-config-'));
  file = path.join(dir, 'nano.toml');
  writeFileSync(path.join(dir, 'app.js'), '');
  ca = makeCa(dir, 'Config Test CA');
  blog = makeLeaf(ca, dir, { names: ['blog.test', 'www.blog.test'], file: 'blog' });
  shopWild = makeLeaf(ca, dir, { names: ['*.shop.test'], file: 'shop-wild' });
  makeLeaf(ca, dir, { names: ['a.shop.test'], file: 'shop-one' });
  makeKey(dir, 'stray.key');
  writeFileSync(path.join(dir, 'chain.crt'), blog.certPem + ca.certPem);
  writeFileSync(path.join(dir, 'not-pem.txt'), 'hello, not a certificate\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

function parse(text: string) {
  return parseConfig(text, file, { displayFile: 'nano.toml', env: {} });
}

function parseError(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a config error for:\n${text}`);
}

/** 1-based line of the only line of `text` containing `needle`. */
function lineNo(text: string, needle: string): number {
  const found = text.split('\n').flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  assert.equal(found.length, 1, `${JSON.stringify(needle)} should be on exactly one line`);
  return found[0]!;
}

/**
 * `text` fails with one issue, `nano.toml:LINE: KEY: message` where LINE is
 * the line holding `on`, and the message matches `rest`.
 */
function expectIssue(text: string, key: string, on: string, rest: RegExp): ConfigError {
  const err = parseError(text);
  const prefix = `nano.toml:${lineNo(text, on)}: ${key}: `;
  assert.ok(
    err.message.startsWith(prefix),
    `${JSON.stringify(err.message)} should start with ${JSON.stringify(prefix)}`,
  );
  assert.match(err.message.slice(prefix.length), rest);
  assert.ok(!err.message.includes('\n'), 'one line');
  assert.equal(err.issues.length, 1, `one issue: ${err.issues.map((i) => i.message).join(' | ')}`);
  assert.equal(err.issues[0]!.key, key);
  assert.equal(err.issues[0]!.line, lineNo(text, on));
  return err;
}

const ADMIN = '[admin]\nlisten = false\n';

function app(name: string, hosts: string[], extra = ''): string {
  return `\n[apps.${name}]\nhosts = ${JSON.stringify(hosts)}\nentry = "app.js"\n${extra}\n`;
}

function tlsFiles(cert: string, key: string): string {
  return `tls = { cert = "${cert}", key = "${key}" }`;
}

describe('[tls] table', () => {
  test('no [tls] table: no HTTPS, every app plain HTTP', () => {
    const config = parse(ADMIN + app('web', ['web.test']));
    assert.equal(config.tls, null);
    assert.equal(config.apps[0]!.tls, false);
    assert.deepEqual(config.fileCertificates, []);
  });

  test('an empty [tls] table has the documented defaults, and apps default to tls = "acme"', () => {
    const config = parse(`${ADMIN}[tls]\n${app('web', ['web.test'])}`);
    assert.deepEqual(config.tls, {
      listen: { host: '0.0.0.0', port: 443 },
      acmeDirectory: 'https://acme-v02.api.letsencrypt.org/directory',
      acmeEmail: null,
      acmeCa: null,
      storage: path.join(dir, '.nano-gateway', 'certs'),
      redirectHttp: true,
      hstsMaxAge: 0,
    });
    assert.equal(config.apps[0]!.tls, 'acme');
    assert.deepEqual(config.fileCertificates, []);
  });

  test('every key, when given, replaces its default; storage is relative to the config file', () => {
    const text = `${ADMIN}[tls]
listen = "127.0.0.1:8443"
acme_directory = "https://localhost:14000/dir"
acme_email = "ops@example.com"
acme_ca_file = "Config_Test_CA.crt"
storage = "state/certs"
redirect_http = false
hsts_max_age = 31536000
${app('web', ['web.test'])}`;
    const config = parse(text);
    assert.deepEqual(config.tls, {
      listen: { host: '127.0.0.1', port: 8443 },
      acmeDirectory: 'https://localhost:14000/dir',
      acmeEmail: 'ops@example.com',
      acmeCa: ca.certPem,
      storage: path.join(dir, 'state', 'certs'),
      redirectHttp: false,
      hstsMaxAge: 31_536_000,
    });
    const absolute = parse(
      `${ADMIN}[tls]\nstorage = "/var/lib/nano/certs"\nlisten = 8443\n${app('web', ['web.test'])}`,
    );
    assert.equal(absolute.tls?.storage, '/var/lib/nano/certs');
    assert.deepEqual(absolute.tls?.listen, { host: '0.0.0.0', port: 8443 });
  });

  test('an unknown key names itself and the keys there are', () => {
    const text = `${ADMIN}[tls]\nacme_dir = "https://ca.test/dir"\n${app('web', ['web.test'])}`;
    expectIssue(
      text,
      'tls.acme_dir',
      'acme_dir',
      /^unknown key \(expected one of: listen, acme_directory, .*hsts_max_age\)$/,
    );
  });

  test('[tls] that is not a table', () => {
    const text = `tls = 443\n${ADMIN}${app('web', ['web.test'])}`;
    expectIssue(text, 'tls', 'tls = 443', /^expected a table, got number 443$/);
  });

  const wrongTypes: [string, string, RegExp][] = [
    ['listen', 'listen = true', /^expected "host:port", ":port" or a port number, got boolean true$/],
    ['listen', 'listen = "127.0.0.1:99999"', /port must be a whole number from 0 to 65535/],
    ['acme_directory', 'acme_directory = 5', /^expected a string, got number 5$/],
    ['acme_email', 'acme_email = ["ops@example.com"]', /^expected a string, got an array$/],
    ['acme_ca_file', 'acme_ca_file = false', /^expected a string, got boolean false$/],
    ['storage', 'storage = 1', /^expected a string, got number 1$/],
    ['storage', 'storage = ""', /^must not be empty$/],
    ['redirect_http', 'redirect_http = "yes"', /^expected true or false, got the string "yes"$/],
    ['hsts_max_age', 'hsts_max_age = "1y"', /^expected a whole number, got the string "1y"$/],
    ['hsts_max_age', 'hsts_max_age = 1.5', /^expected a whole number, got number 1.5$/],
    ['hsts_max_age', 'hsts_max_age = -1', /^must be from 0 to \d+, got -1$/],
  ];
  for (const [key, line, rest] of wrongTypes) {
    test(`a wrong value: ${line}`, () => {
      const text = `${ADMIN}[tls]\n${line}\n${app('web', ['web.test'])}`;
      expectIssue(text, `tls.${key}`, line, rest);
    });
  }

  test('acme_directory must be an http(s) URL', () => {
    for (const value of ['acme-v02.api.letsencrypt.org/directory', 'ftp://ca.test/dir', 'not a url']) {
      const line = `acme_directory = "${value}"`;
      const text = `${ADMIN}[tls]\n${line}\n${app('web', ['web.test'])}`;
      expectIssue(
        text,
        'tls.acme_directory',
        line,
        new RegExp(`^expected an https:// \\(or http://\\) URL, got ${JSON.stringify(value)}$`),
      );
    }
  });

  test('acme_email must be an e-mail address', () => {
    for (const value of ['ops', 'ops@', '@example.com', 'o ps@example.com']) {
      const line = `acme_email = "${value}"`;
      const text = `${ADMIN}[tls]\n${line}\n${app('web', ['web.test'])}`;
      expectIssue(text, 'tls.acme_email', line, /^expected an e-mail address, got "/);
    }
  });

  test('acme_ca_file must exist and hold a PEM certificate', () => {
    const missing = `${ADMIN}[tls]\nacme_ca_file = "missing-ca.pem"\n${app('web', ['web.test'])}`;
    const err = expectIssue(missing, 'tls.acme_ca_file', 'acme_ca_file', /^file not found: /);
    assert.ok(err.message.endsWith(path.join(dir, 'missing-ca.pem')), 'names the resolved path');

    const notPem = `${ADMIN}[tls]\nacme_ca_file = "not-pem.txt"\n${app('web', ['web.test'])}`;
    const err2 = expectIssue(notPem, 'tls.acme_ca_file', 'acme_ca_file', /no PEM certificate in it$/);
    assert.ok(err2.message.includes(path.join(dir, 'not-pem.txt')));
  });

  test('every issue is reported, in line order; the message is the first', () => {
    const text = `${ADMIN}[tls]\nhsts_max_age = -5\nacme_email = "nope"\nredirect_http = 1\n${app('web', ['web.test'])}`;
    const err = parseError(text);
    assert.deepEqual(
      err.issues.map((i) => [i.line, i.key]),
      [
        [lineNo(text, 'hsts_max_age'), 'tls.hsts_max_age'],
        [lineNo(text, 'acme_email'), 'tls.acme_email'],
        [lineNo(text, 'redirect_http'), 'tls.redirect_http'],
      ],
    );
    assert.ok(err.message.startsWith(`nano.toml:${lineNo(text, 'hsts_max_age')}: tls.hsts_max_age: `));
  });
});

describe('app tls', () => {
  const TLS = `${ADMIN}[tls]\nstorage = "certs"\n`;

  test('"acme" (explicit or by default), false, and files', () => {
    const config = parse(
      TLS +
        app('a', ['a.test']) +
        app('b', ['b.test'], 'tls = "acme"') +
        app('c', ['c.test'], 'tls = false') +
        app('d', ['*.shop.test'], 'tls = false') +
        app('e', ['blog.test'], tlsFiles('blog.crt', 'blog.key')),
    );
    assert.deepEqual(
      config.apps.map((a) => [a.name, a.tls]),
      [
        ['a', 'acme'],
        ['b', 'acme'],
        ['c', false],
        ['d', false],
        ['e', { cert: path.join(dir, 'blog.crt'), key: path.join(dir, 'blog.key') }],
      ],
    );
    assert.deepEqual(
      config.fileCertificates.map((c) => c.app),
      ['e'],
    );
  });

  test('tls = false without [tls] is allowed', () => {
    assert.equal(parse(ADMIN + app('web', ['web.test'], 'tls = false')).apps[0]!.tls, false);
  });

  test('a wildcard host under acme names the host: on the hosts line when tls is absent', () => {
    const text = TLS + app('shop', ['shop.test', '*.shop.test']);
    expectIssue(text, 'apps.shop.hosts', 'hosts =', /^host "\*\.shop\.test": ACME's HTTP-01 challenge cannot issue/);
  });

  test('a wildcard host under acme names the host: on the tls line when tls = "acme"', () => {
    const text = TLS + app('shop', ['*.shop.test'], 'tls = "acme"');
    expectIssue(text, 'apps.shop.tls', 'tls = "acme"', /^host "\*\.shop\.test": .*wildcard/);
  });

  test('tls without a [tls] table', () => {
    for (const value of ['"acme"', '{ cert = "blog.crt", key = "blog.key" }', 'true']) {
      const text = ADMIN + app('web', ['blog.test'], `tls = ${value}`);
      expectIssue(text, 'apps.web.tls', 'tls =', /^needs a \[tls\] table/);
    }
  });

  test('tls = true, a number, or another string', () => {
    for (const [value, got] of [
      ['true', 'boolean true'],
      ['1', 'number 1'],
      ['"files"', 'the string "files"'],
    ]) {
      const text = TLS + app('web', ['blog.test'], `tls = ${value}`);
      expectIssue(
        text,
        'apps.web.tls',
        'tls =',
        new RegExp(`^expected "acme", false or \\{ cert = "FILE", key = "FILE" \\}, got ${got}$`),
      );
    }
  });

  test('a tls table needs cert and key, and nothing else', () => {
    const noCert = TLS + app('web', ['blog.test'], 'tls = { key = "blog.key" }');
    expectIssue(noCert, 'apps.web.tls.cert', 'tls =', /^required: the PEM certificate file/);
    const noKey = TLS + app('web', ['blog.test'], 'tls = { cert = "blog.crt" }');
    expectIssue(noKey, 'apps.web.tls.key', 'tls =', /^required: the PEM private key file/);
    const extra = TLS + app('web', ['blog.test'], 'tls = { cert = "blog.crt", key = "blog.key", chain = "ca.crt" }');
    expectIssue(extra, 'apps.web.tls.chain', 'tls =', /^unknown key \(expected one of: cert, key\)$/);
    const wrongType = TLS + app('web', ['blog.test'], 'tls = { cert = 1, key = "blog.key" }');
    expectIssue(wrongType, 'apps.web.tls.cert', 'tls =', /^expected a string, got number 1$/);
  });

  /** How a file problem names the hosts it leaves without a certificate (SPEC §10: "naming the key and the host"). */
  const FOR = (...hosts: string[]) =>
    ` \\(the certificate for ${hosts.map((h) => `"${h.replace(/\./g, '\\.')}"`).join(', ')}\\)`;

  test('a missing certificate or key file names the key, the resolved path and the hosts', () => {
    const noCertFile = TLS + app('web', ['blog.test', 'www.blog.test'], tlsFiles('gone.crt', 'blog.key'));
    const err = expectIssue(
      noCertFile,
      'apps.web.tls.cert',
      'tls =',
      new RegExp(`^file not found: .*gone\\.crt${FOR('blog.test', 'www.blog.test')}$`),
    );
    assert.ok(err.message.includes(`file not found: ${path.join(dir, 'gone.crt')}`), 'the resolved path');
    const noKeyFile = TLS + app('web', ['blog.test'], tlsFiles('blog.crt', 'gone.key'));
    expectIssue(
      noKeyFile,
      'apps.web.tls.key',
      'tls =',
      new RegExp(`^file not found: .*gone\\.key${FOR('blog.test')}$`),
    );
  });

  test('a certificate file that is not PEM, or a key file that is not a key', () => {
    const notCert = TLS + app('web', ['blog.test'], tlsFiles('not-pem.txt', 'blog.key'));
    expectIssue(
      notCert,
      'apps.web.tls.cert',
      'tls =',
      new RegExp(`not-pem\\.txt: no PEM certificate in it${FOR('blog.test')}$`),
    );
    const notKey = TLS + app('web', ['blog.test'], tlsFiles('blog.crt', 'blog.crt'));
    expectIssue(
      notKey,
      'apps.web.tls.key',
      'tls =',
      new RegExp(`blog\\.crt: not a PEM private key.*${FOR('blog.test')}$`),
    );
  });

  test("a key that is not the certificate's: key apps.X.tls.key, on its own line in a [apps.X.tls] table", () => {
    const inline = TLS + app('web', ['blog.test'], tlsFiles('blog.crt', 'stray.key'));
    const err = expectIssue(
      inline,
      'apps.web.tls.key',
      'tls =',
      new RegExp(`is not the private key of the certificate in .*blog\\.crt${FOR('blog.test')}$`),
    );
    assert.ok(
      err.message.includes(
        `${path.join(dir, 'stray.key')} is not the private key of the certificate in ${path.join(dir, 'blog.crt')}`,
      ),
      err.message,
    );
    const table = `${TLS}${app('web', ['blog.test'])}\n[apps.web.tls]\ncert = "blog.crt"\nkey = "stray.key"\n`;
    expectIssue(table, 'apps.web.tls.key', 'key = "stray.key"', /is not the private key/);
  });

  test('a certificate that does not cover a host: key apps.X.tls.cert, naming the host and what it covers', () => {
    const text = TLS + app('web', ['blog.test', 'news.test', 'www.blog.test'], tlsFiles('blog.crt', 'blog.key'));
    expectIssue(
      text,
      'apps.web.tls.cert',
      'tls =',
      /^the certificate in .*blog\.crt does not cover host "news\.test" \(it covers: blog\.test, www\.blog\.test\)$/,
    );
    // A *. name covers one label exactly.
    for (const host of ['shop.test', 'a.b.shop.test']) {
      const deep = TLS + app('shop', [host], tlsFiles('shop-wild.crt', 'shop-wild.key'));
      expectIssue(
        deep,
        'apps.shop.tls.cert',
        'tls =',
        new RegExp(`does not cover host "${host.replace(/\./g, '\\.')}"`),
      );
    }
    // Two hosts uncovered: two issues, one per host.
    const two = TLS + app('web', ['x.test', 'y.test'], tlsFiles('blog.crt', 'blog.key'));
    assert.deepEqual(
      parseError(two).issues.map((i) => [i.key, /"(\w\.test)"/.exec(i.message)?.[1]]),
      [
        ['apps.web.tls.cert', 'x.test'],
        ['apps.web.tls.cert', 'y.test'],
      ],
    );
  });

  test('a wildcard app host is covered only by the identical wildcard name', () => {
    const one = TLS + app('shop', ['*.shop.test'], tlsFiles('shop-one.crt', 'shop-one.key'));
    expectIssue(
      one,
      'apps.shop.tls.cert',
      'tls =',
      /does not cover host "\*\.shop\.test" \(it covers: a\.shop\.test\)$/,
    );
    const config = parse(
      TLS + app('shop', ['*.shop.test', 'a.shop.test', 'b.shop.test'], tlsFiles('shop-wild.crt', 'shop-wild.key')),
    );
    assert.deepEqual(config.fileCertificates[0]!.facts.names, ['*.shop.test']);
    assert.deepEqual(config.fileCertificates[0]!.hosts, ['*.shop.test', 'a.shop.test', 'b.shop.test']);
  });

  test('fileCertificates carries the PEM text and the facts of a valid pair', () => {
    const config = parse(
      TLS +
        app('web', ['web.test']) +
        app('blog', ['blog.test', 'www.blog.test'], tlsFiles('blog.crt', 'blog.key')) +
        app('shop', ['a.shop.test'], tlsFiles('shop-wild.crt', 'shop-wild.key')),
    );
    assert.equal(config.fileCertificates.length, 2);
    const [first, second] = config.fileCertificates;
    assert.deepEqual(first, {
      app: 'blog',
      hosts: ['blog.test', 'www.blog.test'],
      certFile: path.join(dir, 'blog.crt'),
      keyFile: path.join(dir, 'blog.key'),
      certPem: blog.certPem,
      keyPem: blog.keyPem,
      facts: {
        names: ['blog.test', 'www.blog.test'],
        notBefore: new Date(new X509Certificate(blog.certPem).validFrom).toISOString(),
        notAfter: new Date(new X509Certificate(blog.certPem).validTo).toISOString(),
        issuer: 'Config Test CA',
        serial: blog.serial,
      },
    });
    const days = (Date.parse(first!.facts.notAfter) - Date.parse(first!.facts.notBefore)) / 86_400_000;
    assert.equal(days, 30, "makeLeaf's default lifetime");
    assert.equal(second!.app, 'shop');
    assert.deepEqual(second!.facts.names, ['*.shop.test']);
    assert.equal(second!.certPem, shopWild.certPem);
  });

  test("a chain file is served whole; its facts are the leaf's", () => {
    const config = parse(TLS + app('blog', ['blog.test'], tlsFiles('chain.crt', 'blog.key')));
    const cert = config.fileCertificates[0]!;
    assert.equal(cert.certPem, blog.certPem + ca.certPem);
    assert.deepEqual(cert.facts.names, ['blog.test', 'www.blog.test']);
    assert.equal(cert.facts.serial, blog.serial);
  });
});
