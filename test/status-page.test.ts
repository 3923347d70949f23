/**
 * The status page (README, Status page) in a real browser: Debian's
 * chromium driven by playwright-core (never a downloaded browser), against
 * the real CLI. One gateway and one browser per describe.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import {
  adminCall,
  adminGatewaySection,
  fixtureApp,
  GatewayProcess,
  ROOT,
  request,
  tempDir,
  waitFor,
} from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const MISSING = 'chromium is not installed: apt-get install chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** Git-ignored: screenshots of the page as the tests saw it. */
const ARTIFACTS = path.join(ROOT, 'test-artifacts');

// Without chromium the suites skip, except on CI, where they fail (in `before`) saying what to install.
const skip = !HAVE_CHROMIUM && !process.env.CI ? MISSING : false;

interface Browser {
  context: BrowserContext;
  /** Console errors and page errors (a CSP violation is one). */
  problems: string[];
  close(): Promise<void>;
}

async function launchBrowser(): Promise<Browser> {
  if (!HAVE_CHROMIUM) throw new Error(MISSING);
  const profile = tempDir('nano-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1200, height: 800 },
  });
  const problems: string[] = [];
  context.on('page', (page) => watch(page, problems));
  for (const page of context.pages()) watch(page, problems);
  return {
    context,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

function watch(page: Page, problems: string[]): void {
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    // A 401 answer is logged as a failed resource: expected on the token form.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) problems.push(message.text());
  });
}

async function openPage(browser: Browser, url: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(url);
  return page;
}

function card(page: Page, app: string) {
  return page.locator(`[data-testid="app"][data-app="${app}"]`);
}

async function pidsShown(page: Page, app: string): Promise<number[]> {
  const texts = await card(page, app).locator('[data-testid="instance-pid"]').allTextContents();
  return texts.map(Number).sort((a, b) => a - b);
}

async function pidsOf(adminPort: number, app: string, token?: string): Promise<number[]> {
  const res = await adminCall(adminPort, 'GET', `/admin/apps/${app}`, token === undefined ? {} : { token });
  return (res.json.instances as Array<{ pid: number }>).map((i) => i.pid).sort((a, b) => a - b);
}

function screenshotPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

describe('status page', { skip, timeout: 120_000 }, () => {
  const alpha = fixtureApp('alpha', ['alpha.test'], 'instances = 2');
  const beta = fixtureApp('beta', ['beta.test', '*.beta.test']);
  const config = `${adminGatewaySection()}\n${alpha}\n${beta}`;
  let gw: GatewayProcess;
  let adminPort: number;
  let browser: Browser;
  let page: Page;
  let url: string;

  before(async () => {
    browser = await launchBrowser();
    gw = await GatewayProcess.start({ config, readyApps: { alpha: 2, beta: 1 } });
    adminPort = await gw.adminPort();
    url = `http://127.0.0.1:${adminPort}/admin/`;
    page = await openPage(browser, url);
  });

  after(async () => {
    await browser?.close();
    await gw?.cleanup();
  });

  test('GET /admin/ is one self-contained page, served without a token, with a strict policy', async () => {
    for (const pathname of ['/admin/', '/admin']) {
      const res = await adminCall(adminPort, 'GET', pathname);
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.equal(res.headers['cache-control'], 'no-store');
      const csp = String(res.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'sha256-[^']+'(;|$)/);
      assert.match(csp, /style-src 'sha256-[^']+'(;|$)/);
      assert.match(csp, /connect-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      // Nothing loaded from elsewhere: no external script, stylesheet, font or image.
      assert.doesNotMatch(res.body, /<script[^>]+src=|<link[^>]+stylesheet|@import|@font-face|url\(/i);
      assert.doesNotMatch(res.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
    const head = await adminCall(adminPort, 'HEAD', '/admin/');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const post = await adminCall(adminPort, 'POST', '/admin/');
    assert.equal(post.status, 405);
  });

  test('shows every app with its hosts, default marker, state and instances', async () => {
    const alphaPids = await pidsOf(adminPort, 'alpha');
    const betaPids = await pidsOf(adminPort, 'beta');
    await card(page, 'beta').waitFor();
    await waitFor(
      async () => (await card(page, 'alpha').locator('[data-testid="instance"]').count()) === alphaPids.length,
      'both alpha instances on the page',
    );
    assert.deepEqual(await pidsShown(page, 'alpha'), alphaPids);
    assert.deepEqual(await pidsShown(page, 'beta'), betaPids);
    assert.deepEqual(await page.locator('[data-testid="app-name"]').allTextContents(), ['alpha', 'beta']);
    assert.equal(await card(page, 'alpha').locator('[data-testid="app-state"]').textContent(), 'ready');
    assert.equal(await card(page, 'alpha').locator('[data-testid="app-default"]').isVisible(), true);
    assert.equal(await card(page, 'beta').locator('[data-testid="app-default"]').isVisible(), false);
    assert.deepEqual(await card(page, 'beta').locator('[data-testid="app-hosts"] li').allTextContents(), [
      'beta.test',
      '*.beta.test',
    ]);
    assert.equal(await page.locator('[data-testid="config-error"]').isVisible(), false);
    assert.equal(await page.locator('[data-testid="gateway-status"]').textContent(), 'ok');
    assert.match((await page.locator('[data-testid="certificates"]').textContent()) ?? '', /No certificates/);
  });

  test('charts the traffic and its 5xx answers', async () => {
    for (let i = 0; i < 6; i++) await gw.request({ host: 'beta.test', path: '/' });
    for (let i = 0; i < 3; i++) await gw.request({ host: 'beta.test', path: '/status?code=503' });
    const beta = card(page, 'beta');
    await beta.locator('[data-testid="app-chart"] rect.err').first().waitFor({ state: 'attached' });
    assert.ok((await beta.locator('[data-testid="app-chart"] rect.bar').count()) > 0);
    assert.match((await beta.locator('[data-testid="app-p50"]').textContent()) ?? '', /ms$/);
    await waitFor(
      async () => Number(await beta.locator('[data-testid="app-total"]').textContent()) >= 9,
      'requests_total on the card',
    );
  });

  test('an app added by a config edit appears without a page reload, and a config error shows', async () => {
    // Gone if the page were loaded again.
    await page.evaluate('window.marker = "same page"');
    const reloadsBefore = gw.reloadsEnded().length;
    gw.writeConfig(`${config}\n${fixtureApp('gamma', ['gamma.test'])}`);
    await gw.waitForReloads(reloadsBefore + 1);
    await card(page, 'gamma').locator('[data-testid="instance-pid"]').first().waitFor();
    assert.deepEqual(await pidsShown(page, 'gamma'), await pidsOf(adminPort, 'gamma'));
    await page.locator('[data-testid="reload-row"]').first().filter({ hasText: 'added gamma' }).waitFor();

    gw.writeConfig(`${gw.readConfig()}\n[apps.broken\n`);
    await gw.waitForReloads(reloadsBefore + 2);
    const banner = page.locator('[data-testid="config-error"]');
    await banner.waitFor({ state: 'visible' });
    assert.match((await banner.textContent()) ?? '', /nano\.toml/);
    assert.equal(await page.locator('[data-testid="gateway-status"]').textContent(), 'config error');

    gw.writeConfig(`${config}\n${fixtureApp('gamma', ['gamma.test'])}`);
    await gw.waitForReloads(reloadsBefore + 3);
    await banner.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate('window.marker'), 'same page');
  });

  test('the restart button replaces the shown pids; the reload button reports what changed', async () => {
    const before = await pidsShown(page, 'beta');
    assert.deepEqual(before, await pidsOf(adminPort, 'beta'));
    await card(page, 'beta').locator('[data-testid="restart"]').click();
    const after = await waitFor(
      async () => {
        const shown = await pidsShown(page, 'beta');
        return shown.length === before.length && shown.every((pid) => !before.includes(pid)) && shown;
      },
      'new pids on the beta card',
      15_000,
    );
    assert.deepEqual(after, await pidsOf(adminPort, 'beta'));
    await page.locator('[data-testid="notice"]', { hasText: 'beta restarted' }).waitFor();

    await page.locator('[data-testid="reload-config"]').click();
    await page.locator('[data-testid="notice"]', { hasText: 'nothing changed' }).waitFor();
  });

  test('the log tail follows the first app, and the app chosen in the select', async () => {
    const select = page.locator('[data-testid="log-app"]');
    assert.equal(await select.inputValue(), 'alpha');
    const log = page.locator('[data-testid="log"]');
    const alphaLine = `hello from alpha ${Date.now()}`;
    await gw.request({ host: 'alpha.test', path: `/say?text=${encodeURIComponent(alphaLine)}` });
    await log.locator('[data-testid="log-line"]', { hasText: alphaLine }).waitFor();

    await select.selectOption('beta');
    const betaLine = `hello from beta ${Date.now()}`;
    // The stream re-opens with the recent lines: the new one may come with them or after them.
    await gw.request({ host: 'beta.test', path: `/say?text=${encodeURIComponent(betaLine)}` });
    await log.locator('[data-testid="log-line"]', { hasText: betaLine }).waitFor();
    assert.equal(await log.locator('[data-testid="log-line"]', { hasText: alphaLine }).count(), 0);
    assert.ok((await log.locator('[data-testid="log-line"]').count()) <= 200);
    await select.selectOption('alpha');
    await log.locator('[data-testid="log-line"]', { hasText: alphaLine }).waitFor();
  });

  test('fits a 360 px wide phone screen', async () => {
    await page.screenshot({ path: screenshotPath('status-page-1200.png'), fullPage: true });
    await page.setViewportSize({ width: 360, height: 740 });
    await page.waitForTimeout(300);
    const width = Number(await page.evaluate('document.scrollingElement.scrollWidth'));
    assert.ok(width <= 360, `the page is ${width} px wide at a 360 px viewport`);
    await page.screenshot({ path: screenshotPath('status-page-360.png'), fullPage: true });
    await page.setViewportSize({ width: 1200, height: 800 });
  });

  test('no script error and no content security policy violation on the way', () => {
    assert.deepEqual(browser.problems, []);
  });
});

describe('status page with a token', { skip, timeout: 120_000 }, () => {
  let gw: GatewayProcess;
  let adminPort: number;
  let browser: Browser;

  before(async () => {
    browser = await launchBrowser();
    gw = await GatewayProcess.start({
      config: `${adminGatewaySection('', 'token = "s3cret"')}\n${fixtureApp('hidden-app', ['hidden.test'])}`,
    });
    adminPort = await gw.adminPort();
  });

  after(async () => {
    await browser?.close();
    await gw?.cleanup();
  });

  test('asks for the token first, refuses a wrong one, and shows the apps with the right one', async () => {
    const page = await openPage(browser, `http://127.0.0.1:${adminPort}/admin/`);
    const form = page.locator('[data-testid="token-form"]');
    await form.waitFor({ state: 'visible' });
    assert.equal(await page.locator('[data-testid="token-error"]').isVisible(), false);
    assert.doesNotMatch((await page.locator('body').textContent()) ?? '', /hidden-app/);
    assert.equal(await page.locator('#main').isVisible(), false);
    assert.equal(await page.locator('[data-testid="reload-config"]').isVisible(), false);

    await page.locator('[data-testid="token-input"]').fill('wrong');
    await page.locator('[data-testid="token-submit"]').click();
    await page.locator('[data-testid="token-error"]').waitFor({ state: 'visible' });
    assert.match((await page.locator('[data-testid="token-error"]').textContent()) ?? '', /refused/);
    assert.equal(await form.isVisible(), true);
    assert.doesNotMatch((await page.locator('body').textContent()) ?? '', /hidden-app/);

    await page.locator('[data-testid="token-input"]').fill('s3cret');
    await page.locator('[data-testid="token-submit"]').click();
    await card(page, 'hidden-app').locator('[data-testid="instance-pid"]').first().waitFor();
    assert.deepEqual(await pidsShown(page, 'hidden-app'), await pidsOf(adminPort, 'hidden-app', 's3cret'));
    assert.equal(await form.isVisible(), false);
    assert.equal(await page.evaluate('sessionStorage.getItem("nano-gateway.admin-token")'), 's3cret');
    // The log stream sends the token too.
    await page.locator('[data-testid="log-line"]').first().waitFor();

    // Kept for the tab: a reload of the page goes straight to the apps.
    await page.reload();
    await card(page, 'hidden-app').waitFor();
    assert.equal(await form.isVisible(), false);
    await page.screenshot({ path: screenshotPath('status-page-token.png') });

    // A fresh tab has no token: the form again.
    const other = await openPage(browser, `http://127.0.0.1:${adminPort}/admin/`);
    await other.locator('[data-testid="token-form"]').waitFor({ state: 'visible' });
    assert.doesNotMatch((await other.locator('body').textContent()) ?? '', /hidden-app/);
    await other.close();
    await page.close();
    assert.deepEqual(browser.problems, []);
  });

  test('the API still refuses calls without the token', async () => {
    assert.equal((await adminCall(adminPort, 'GET', '/admin/apps')).status, 401);
    assert.equal((await request(adminPort, { path: '/admin/' })).status, 200);
  });
});
