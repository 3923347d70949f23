// nano-gateway status page (README, Status page): plain DOM, no framework.
// It polls the admin API's JSON endpoints every second, updates the parts
// that changed in place, and follows one app's log over a streaming fetch.
// Every call carries the token kept in sessionStorage; a 401 leaves nothing
// on screen but the token form.

/** The admin API's root: the page is served at `/admin/` and at `/admin`. */
const BASE = location.pathname.endsWith('/') ? location.pathname : `${location.pathname}/`;
const POLL_MS = 1000;
/** Poll interval while the tab is hidden (a visible tab refreshes at once). */
const HIDDEN_POLL_MS = 10_000;
const LOG_LINES = 50;
const LOG_CAP = 200;
const RELOADS_SHOWN = 10;
/** The req/s and 5xx/s figures: the average over this many of the last seconds. */
const RATE_SECONDS = 10;
const TOKEN_KEY = 'nano-gateway.admin-token';
const SVG = 'http://www.w3.org/2000/svg';
const CHART_W = 240;
const CHART_H = 40;

class Unauthorized extends Error {}

const $ = (id) => document.getElementById(id);

const state = {
  /** The last poll succeeded with the current token. */
  authorized: false,
  /** A token was just typed in: a 401 now means "wrong token". */
  submitted: false,
  /** Bumped whenever polling (re)starts or stops; a loop of an older generation ends. */
  generation: 0,
  /** Ends the current wait between polls early. */
  wake: null,
  /** Server clock minus ours, when they differ by more than a few seconds (for uptimes). */
  skewMs: 0,
  /** App name -> its card's elements. */
  cards: new Map(),
  /** Names in the log <select>, joined. */
  logNames: null,
  /** The app whose log is followed ('' for every line), undefined before the first. */
  logApp: undefined,
  logController: null,
  noticeTimer: null,
};

// ---------------------------------------------------------------- helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** Writes only what changed, so that an unchanged page costs no layout. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setClass(node, className) {
  if (node.className !== className) node.className = className;
}

const TONES = {
  ready: 'good',
  valid: 'good',
  ok: 'good',
  starting: 'warn',
  restarting: 'warn',
  draining: 'warn',
  renewing: 'warn',
  pending: 'warn',
  partial: 'warn',
  paused: 'warn',
  maintenance: 'warn',
  failed: 'bad',
  crashed: 'bad',
  invalid: 'bad',
  backoff: 'bad',
};

function badge(node, word) {
  setText(node, word);
  setClass(node, `badge ${TONES[word] ?? ''}`.trim());
}

const pad = (n) => String(n).padStart(2, '0');

function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function dateTime(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function ago(iso) {
  const seconds = (now() - Date.parse(iso)) / 1000;
  if (seconds < 5) return 'just now';
  return `${duration(seconds).split(' ')[0]} ago`;
}

function until(iso) {
  const seconds = (Date.parse(iso) - now()) / 1000;
  if (seconds < 0) return `expired ${duration(-seconds).split(' ')[0]} ago`;
  if (seconds < 86400) return `in ${duration(seconds).split(' ')[0]}`;
  return `in ${Math.floor(seconds / 86400)} d`;
}

function bytes(n) {
  if (!n) return '—';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

function ms(value) {
  if (value === null || value === undefined) return '—';
  return value < 1 ? `≤${value} ms` : `≤${Math.round(value)} ms`;
}

function rate(value) {
  return value >= 100 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
}

/** Now on the gateway's clock. */
function now() {
  return Date.now() + state.skewMs;
}

function sleep(delay) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, delay);
    state.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

// ---------------------------------------------------------------- API

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function setToken(value) {
  try {
    if (value === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // Storage refused (a privacy mode): the token lives as long as this page.
    state.memoryToken = value;
  }
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  const token = getToken() ?? state.memoryToken ?? null;
  if (token) headers.set('authorization', `Bearer ${token}`);
  const res = await fetch(BASE + path, { cache: 'no-store', ...init, headers });
  if (res.status === 401) {
    res.body?.cancel().catch(() => {});
    throw new Unauthorized('unauthorized');
  }
  return res;
}

async function errorMessage(res) {
  const text = await res.text().catch(() => '');
  try {
    return JSON.parse(text).error.message;
  } catch {
    return `${res.status} ${res.statusText}`.trim();
  }
}

async function apiJson(path, init) {
  const res = await api(path, init);
  if (!res.ok) throw new Error(await errorMessage(res));
  return { body: await res.json(), date: res.headers.get('date') };
}

// ---------------------------------------------------------------- polling

function startPolling() {
  const generation = ++state.generation;
  state.wake?.();
  loop(generation);
}

function stopPolling() {
  state.generation++;
  state.wake?.();
}

/** An action changed something: poll now rather than at the next tick. */
function refresh() {
  state.wake?.();
}

async function loop(generation) {
  while (generation === state.generation) {
    const started = Date.now();
    await pollOnce(generation);
    if (generation !== state.generation) return;
    const interval = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
    await sleep(Math.max(50, interval - (Date.now() - started)));
  }
}

async function pollOnce(generation) {
  let results;
  try {
    results = await Promise.all(['apps', 'health', 'traffic', 'reloads', 'certificates'].map((p) => apiJson(p)));
  } catch (err) {
    if (generation !== state.generation) return;
    if (err instanceof Unauthorized) showTokenForm();
    else showUnreachable(err);
    return;
  }
  if (generation !== state.generation) return;
  const [apps, health, traffic, reloads, certificates] = results;
  showAuthorized();
  const serverNow = Date.parse(apps.date ?? '');
  if (Number.isFinite(serverNow)) {
    const skew = serverNow + 500 - Date.now();
    state.skewMs = Math.abs(skew) > 3000 ? skew : 0;
  }
  $('unreachable').hidden = true;
  renderHealth(health.body);
  renderApps(apps.body.apps, traffic.body.apps ?? {});
  renderReloads(reloads.body.reloads);
  renderCertificates(certificates.body.certificates);
  renderLogSelect(apps.body.apps);
  setText($('updated'), `updated ${clock(new Date())}`);
}

// ---------------------------------------------------------------- token form and page states

function showAuthorized() {
  $('loading').hidden = true;
  if (state.authorized) return;
  state.authorized = true;
  state.submitted = false;
  $('token-form').hidden = true;
  $('token-error').hidden = true;
  $('token-submit').disabled = false;
  $('main').hidden = false;
  $('controls').hidden = false;
}

/** Without a valid token, nothing of the gateway stays on the page: only the form. */
function showTokenForm() {
  const hadToken = Boolean(getToken() ?? state.memoryToken);
  const message = state.submitted
    ? 'That token was refused. Check [admin] token (or NANO_ADMIN_TOKEN) and try again.'
    : hadToken
      ? 'The saved token was refused; enter the current one.'
      : '';
  stopPolling();
  closeLog();
  setToken(null);
  state.memoryToken = null;
  state.authorized = false;
  state.submitted = false;
  clearGatewayData();
  $('loading').hidden = true;
  $('main').hidden = true;
  $('controls').hidden = true;
  $('notice').hidden = true;
  $('token-form').hidden = false;
  $('token-submit').disabled = false;
  const error = $('token-error');
  error.hidden = message === '';
  error.textContent = message;
  const input = $('token-input');
  input.value = '';
  input.focus();
}

function clearGatewayData() {
  $('apps').replaceChildren();
  state.cards.clear();
  $('reloads').replaceChildren();
  $('certificates').replaceChildren();
  $('log-app').replaceChildren();
  $('log').replaceChildren();
  state.logNames = null;
  state.logApp = undefined;
  setText($('log-state'), '');
  $('config-error').hidden = true;
  $('config-error').replaceChildren();
  $('unreachable').hidden = true;
  setText($('gateway-status'), '');
  setText($('updated'), '');
}

function showUnreachable(err) {
  const message = `Cannot reach the gateway's admin API (${err.message}); retrying every second.`;
  $('loading').hidden = true;
  if (!state.authorized && !$('token-form').hidden) {
    // Waiting for a token: say so on the form, and keep asking.
    const error = $('token-error');
    error.textContent = message;
    error.hidden = false;
    $('token-submit').disabled = false;
    return;
  }
  $('main').hidden = false;
  const banner = $('unreachable');
  setText(banner, message);
  banner.hidden = false;
  setText($('gateway-status'), 'unreachable');
  setClass($('gateway-status'), 'pill warn');
}

function onTokenSubmit(event) {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  setToken(value);
  if (getToken() === null) state.memoryToken = value;
  state.submitted = true;
  $('token-submit').disabled = true;
  startPolling();
}

function notify(text, bad = false) {
  const notice = $('notice');
  notice.textContent = text;
  notice.className = bad ? 'notice bad' : 'notice';
  notice.hidden = false;
  clearTimeout(state.noticeTimer);
  state.noticeTimer = setTimeout(() => (notice.hidden = true), bad ? 12_000 : 6000);
}

// ---------------------------------------------------------------- gateway health

function renderHealth(health) {
  const status = $('gateway-status');
  const banner = $('config-error');
  if (health.config_error) {
    setText(status, 'config error');
    setClass(status, 'pill bad');
    const text = `${health.config_error}`;
    if (banner.hidden || banner.dataset.error !== text) {
      banner.dataset.error = text;
      banner.replaceChildren(
        'The last config reload was rejected; the gateway keeps serving the previous config.',
        el('span', { class: 'mono', text }),
      );
      banner.hidden = false;
    }
  } else {
    setText(status, 'ok');
    setClass(status, 'pill good');
    banner.hidden = true;
  }
}

// ---------------------------------------------------------------- apps

function createCard(name) {
  const restart = el(
    'button',
    { type: 'button', 'data-testid': 'restart', 'aria-label': `Restart ${name}` },
    'Restart',
  );
  restart.addEventListener('click', () => restartApp(name, restart));
  const stat = (label, testid) => {
    const dd = el('dd', { 'data-testid': testid, text: '—' });
    return { box: el('div', {}, el('dt', { text: label }), dd), dd };
  };
  const requests = stat('req/s', 'app-rps');
  const errors = stat('5xx/s', 'app-eps');
  requests.box.title = `requests per second, the last ${RATE_SECONDS} s`;
  errors.box.title = `5xx answers per second, the last ${RATE_SECONDS} s`;
  const p50 = stat('p50', 'app-p50');
  const p99 = stat('p99', 'app-p99');
  const total = stat('requests', 'app-total');
  const chart = svg('svg', {
    viewBox: `0 0 ${CHART_W} ${CHART_H}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'data-testid': 'app-chart',
  });
  const chartTitle = svg('title', {});
  const peak = el('span');
  const instances = el('tbody');
  const card = {
    name,
    root: null,
    nameEl: el('h3', { 'data-testid': 'app-name', text: name }),
    defaultEl: el('span', { class: 'badge default', 'data-testid': 'app-default', text: 'default', hidden: true }),
    stateEl: el('span', { class: 'badge', 'data-testid': 'app-state' }),
    hostsEl: el('ul', { class: 'hosts', 'data-testid': 'app-hosts', 'aria-label': `hosts of ${name}` }),
    hostsKey: null,
    requests: requests.dd,
    errors: errors.dd,
    p50: p50.dd,
    p99: p99.dd,
    total: total.dd,
    chart,
    chartTitle,
    peak,
    instances,
    lastError: el('div', { class: 'last-error', 'data-testid': 'app-last-error', hidden: true }),
  };
  card.root = el(
    'article',
    { class: 'card', 'data-testid': 'app', 'data-app': name },
    el('div', { class: 'card-head' }, card.nameEl, card.defaultEl, card.stateEl, restart),
    card.hostsEl,
    el('dl', { class: 'stats' }, requests.box, errors.box, p50.box, p99.box, total.box),
    el(
      'div',
      { class: 'chart' },
      chart,
      el(
        'div',
        { class: 'chart-legend' },
        el(
          'span',
          {},
          'last 60 s',
          el('span', { class: 'swatch', 'aria-hidden': 'true' }),
          'requests',
          el('span', { class: 'swatch err', 'aria-hidden': 'true' }),
          '5xx',
        ),
        peak,
      ),
    ),
    el(
      'div',
      { class: 'table-wrap' },
      el(
        'table',
        { 'data-testid': 'instances' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', { text: 'pid' }),
            el('th', { class: 'port', text: 'port' }),
            el('th', { text: 'state' }),
            el('th', { class: 'num', text: 'RSS' }),
            el('th', { class: 'num', text: 'uptime' }),
            el('th', { class: 'num', text: 'restarts' }),
          ),
        ),
        instances,
      ),
    ),
    card.lastError,
  );
  return card;
}

function renderApps(apps, traffic) {
  const container = $('apps');
  const seen = new Set();
  let previous = null;
  for (const app of apps) {
    seen.add(app.name);
    let card = state.cards.get(app.name);
    if (!card) {
      card = createCard(app.name);
      state.cards.set(app.name, card);
    }
    updateCard(card, app, traffic[app.name]);
    // Config order, moving only what is out of place.
    const expected = previous ? previous.nextSibling : container.firstChild;
    if (expected !== card.root) container.insertBefore(card.root, expected);
    previous = card.root;
  }
  for (const [name, card] of state.cards) {
    if (!seen.has(name)) {
      card.root.remove();
      state.cards.delete(name);
    }
  }
  const empty = container.querySelector('.empty');
  if (apps.length === 0 && !empty) container.append(el('p', { class: 'muted empty', text: 'No apps configured.' }));
  if (apps.length > 0 && empty) empty.remove();
}

function updateCard(card, app, traffic) {
  card.defaultEl.hidden = !app.default;
  badge(card.stateEl, app.state);
  const hostsKey = app.hosts.join('\n');
  if (card.hostsKey !== hostsKey) {
    card.hostsKey = hostsKey;
    card.hostsEl.replaceChildren(...app.hosts.map((host) => el('li', { text: host })));
  }
  setText(card.total, String(app.requests_total));
  renderTraffic(card, traffic);
  card.instances.replaceChildren(
    ...(app.instances.length
      ? app.instances.map((instance) =>
          el(
            'tr',
            { 'data-testid': 'instance' },
            el('td', { class: 'mono', 'data-testid': 'instance-pid', text: instance.pid ?? '—' }),
            el('td', { class: 'mono port', text: instance.port }),
            el('td', {}, badgeEl(instance.state)),
            el('td', { class: 'num', text: bytes(instance.rss_bytes) }),
            el('td', {
              class: 'num',
              text: instance.started_at ? duration((now() - Date.parse(instance.started_at)) / 1000) : '—',
              title: instance.started_at ?? undefined,
            }),
            el('td', { class: 'num', text: instance.restarts }),
          ),
        )
      : [el('tr', {}, el('td', { class: 'empty', colspan: 6, text: 'no instances' }))]),
  );
  const lastError = app.last_error ?? '';
  setText(card.lastError, lastError);
  card.lastError.hidden = lastError === '';
}

function badgeEl(word) {
  const node = el('span');
  badge(node, word);
  return node;
}

function renderTraffic(card, traffic) {
  const requests = traffic?.requests ?? [];
  const errors = traffic?.errors ?? [];
  const sum = (list) => list.reduce((a, b) => a + b, 0);
  const recent = (list) => sum(list.slice(-RATE_SECONDS)) / RATE_SECONDS;
  const totalErrors = sum(errors);
  setText(card.requests, rate(recent(requests)));
  setText(card.errors, rate(recent(errors)));
  card.errors.classList.toggle('has-errors', recent(errors) > 0);
  setText(card.p50, ms(traffic?.p50_ms));
  setText(card.p99, ms(traffic?.p99_ms));
  const peak = Math.max(1, ...requests);
  const average = requests.length ? sum(requests) / requests.length : 0;
  setText(card.peak, `peak ${rate(Math.max(0, ...requests))}/s · avg ${rate(average)}/s`);
  const slots = Math.max(requests.length, 1);
  const width = CHART_W / slots;
  const bars = [];
  const height = (n) => Math.max(1.5, (n / peak) * (CHART_H - 2));
  requests.forEach((n, i) => {
    if (n > 0) {
      const h = height(n);
      bars.push(svg('rect', { class: 'bar', x: i * width + 0.4, y: CHART_H - h, width: width - 0.8, height: h }));
    }
  });
  errors.forEach((n, i) => {
    if (n > 0) {
      const h = height(n);
      bars.push(svg('rect', { class: 'err', x: i * width + 0.4, y: CHART_H - h, width: width - 0.8, height: h }));
    }
  });
  setText(
    card.chartTitle,
    `${card.name}: requests and 5xx answers per second over the last minute (peak ${Math.max(0, ...requests)}/s, ${totalErrors} 5xx)`,
  );
  card.chart.replaceChildren(card.chartTitle, ...bars);
}

async function restartApp(name, button) {
  button.disabled = true;
  button.textContent = 'Restarting…';
  try {
    await apiJson(`apps/${encodeURIComponent(name)}/restart`, { method: 'POST' });
    notify(`${name} restarted: its new instances are serving.`);
  } catch (err) {
    if (err instanceof Unauthorized) return showTokenForm();
    notify(`Restarting ${name} failed: ${err.message}`, true);
  } finally {
    button.disabled = false;
    button.textContent = 'Restart';
    refresh();
  }
}

async function reloadConfig() {
  const button = $('reload');
  button.disabled = true;
  button.textContent = 'Reloading…';
  try {
    const { body } = await apiJson('reload', { method: 'POST' });
    const failed = body.failed?.length
      ? ` Failed: ${body.failed.map((f) => `${f.name} (${f.error})`).join(', ')}.`
      : '';
    notify(`Config reloaded: ${changes(body)}.${failed}`, Boolean(body.failed?.length));
  } catch (err) {
    if (err instanceof Unauthorized) return showTokenForm();
    notify(`Reload refused: ${err.message}`, true);
  } finally {
    button.disabled = false;
    button.textContent = 'Reload config';
    refresh();
  }
}

function changes(summary) {
  const parts = [];
  if (summary.added?.length) parts.push(`added ${summary.added.join(', ')}`);
  if (summary.changed?.length) parts.push(`changed ${summary.changed.join(', ')}`);
  if (summary.removed?.length) parts.push(`removed ${summary.removed.join(', ')}`);
  if (summary.failed?.length) parts.push(`failed ${summary.failed.map((f) => f.name).join(', ')}`);
  return parts.length ? parts.join('; ') : 'nothing changed';
}

// ---------------------------------------------------------------- reloads and certificates

function renderReloads(reloads) {
  const rows = reloads
    .slice(0, RELOADS_SHOWN)
    .map((r) =>
      el(
        'tr',
        { 'data-testid': 'reload-row' },
        el('td', { text: ago(r.at), title: r.at }),
        el('td', { text: r.trigger }),
        el('td', {}, badgeEl(r.result)),
        el('td', { class: r.error ? 'wrap mono' : 'wrap', text: r.error ?? changes(r) }),
        el('td', { class: 'num', text: Math.round(r.ms) }),
      ),
    );
  $('reloads').replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: 5, text: 'No reloads yet.' }))]),
  );
}

function renderCertificates(certificates) {
  const rows = certificates.map((c) => {
    const expires = el('td', { class: c.last_error ? 'wrap' : '' });
    if (c.not_after) {
      const days = (Date.parse(c.not_after) - now()) / 86_400_000;
      const tone = days < 7 ? 'bad' : days < 21 ? 'warn' : '';
      expires.append(
        el('span', { title: c.not_after, text: dateTime(new Date(c.not_after)) }),
        ' ',
        el('span', { class: `badge ${tone}`.trim(), text: until(c.not_after) }),
      );
      if (c.renew_at) expires.append(el('div', { class: 'muted small', text: `renews ${until(c.renew_at)}` }));
    } else expires.append(el('span', { class: 'muted', text: 'none yet' }));
    if (c.last_error) expires.append(el('div', { class: 'error-text small', text: c.last_error }));
    return el(
      'tr',
      { 'data-testid': 'cert-row' },
      el('td', { class: 'mono', text: c.host }),
      el('td', { text: c.app }),
      el('td', { text: c.source }),
      el('td', {}, badgeEl(c.state)),
      expires,
    );
  });
  $('certificates').replaceChildren(
    ...(rows.length
      ? rows
      : [el('tr', {}, el('td', { class: 'empty', colspan: 5, text: 'No certificates: plain HTTP only.' }))]),
  );
}

// ---------------------------------------------------------------- log tail

function renderLogSelect(apps) {
  const names = apps.map((a) => a.name);
  const key = names.join('\n');
  const select = $('log-app');
  if (state.logNames !== key) {
    state.logNames = key;
    select.replaceChildren(
      ...names.map((name) => el('option', { value: name, text: name })),
      el('option', { value: '', text: 'all apps and the gateway' }),
    );
  }
  let wanted = state.logApp;
  if (wanted === undefined || (wanted !== '' && !names.includes(wanted))) wanted = names[0] ?? '';
  if (select.value !== wanted) select.value = wanted;
  if (wanted !== state.logApp) openLog(wanted);
}

function closeLog() {
  state.logController?.abort();
  state.logController = null;
}

function openLog(app) {
  closeLog();
  state.logApp = app;
  const controller = new AbortController();
  state.logController = controller;
  $('log').replaceChildren();
  setText($('log-state'), 'connecting…');
  followLog(app, controller);
}

async function followLog(app, controller) {
  const query = new URLSearchParams({ lines: String(LOG_LINES), follow: '1' });
  if (app) query.set('app', app);
  try {
    const res = await api(`logs?${query}`, { signal: controller.signal });
    if (!res.ok) throw new Error(await errorMessage(res));
    if (!res.body) throw new Error('this browser cannot read a streamed response');
    setText($('log-state'), 'live');
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let partial = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      partial += decoder.decode(value, { stream: true });
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      appendLog(lines);
    }
    if (controller.signal.aborted) return;
    setText($('log-state'), 'stream ended; reconnecting…');
  } catch (err) {
    if (controller.signal.aborted) return;
    // The poll sees the 401 too, and shows the form.
    if (err instanceof Unauthorized) return;
    setText($('log-state'), `${err.message}; reconnecting…`);
  }
  setTimeout(() => {
    if (state.logController === controller && state.authorized) openLog(app);
  }, 2000);
}

function appendLog(lines) {
  const list = $('log');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  const fragment = document.createDocumentFragment();
  for (const text of lines) {
    if (!text.trim()) continue;
    let line;
    try {
      line = JSON.parse(text);
    } catch {
      line = { time: null, app: null, pid: null, stream: 'stdout', msg: text };
    }
    const stream = line.stream === 'stderr' ? 'err' : line.stream === 'gateway' ? 'gw' : 'out';
    // As `nano-gateway logs` prints it: APP[PID] out|err|gw, or `gateway` for the gateway's own lines.
    const source = line.app ? `${line.app}${line.pid ? `[${line.pid}]` : ''} ${stream}` : 'gateway';
    const time = line.time ? new Date(line.time) : null;
    fragment.append(
      el(
        'li',
        { class: line.stream ?? 'stdout', 'data-testid': 'log-line' },
        el('span', { class: 't', text: time ? clock(time) : '', title: line.time ?? undefined }),
        el('span', { class: 'src', text: source }),
        el('span', { class: 'msg', text: String(line.msg ?? '') }),
      ),
    );
  }
  list.append(fragment);
  while (list.childElementCount > LOG_CAP) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ---------------------------------------------------------------- start

$('token-form').addEventListener('submit', onTokenSubmit);
$('reload').addEventListener('click', reloadConfig);
$('log-app').addEventListener('change', () => openLog($('log-app').value));
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});
startPolling();
