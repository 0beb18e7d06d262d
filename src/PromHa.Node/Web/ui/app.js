// PromHa's page: the cluster at a glance, live, from the node that serves it. No framework and no
// build step: the file is embedded in the promha executable as it is written here.
'use strict';

const $ = sel => document.querySelector(sel);
const TOKEN_KEY = 'promha-admin-token';
let status = null;          // the last status event
let versions = [];          // config versions, newest first
let configStatus = null;    // /api/v1/config/status
let seenEpoch = -1, seenConfig = -1;

// ---- the admin token: asked for once, kept for this tab only (sessionStorage) ----
const token = () => sessionStorage.getItem(TOKEN_KEY);

function showToken() {
  $('#token-state').textContent = token() ? 'admin token set' : 'no admin token';
  $('#token-forget').hidden = !token();
}

function askToken() {
  return new Promise(resolve => {
    const dialog = $('#token-dialog');
    $('#token-input').value = '';
    dialog.addEventListener('close', () => {
      const value = $('#token-input').value.trim();
      if (dialog.returnValue === 'ok' && value) sessionStorage.setItem(TOKEN_KEY, value);
      showToken();
      resolve(dialog.returnValue === 'ok' && value ? value : null);
    }, { once: true });
    dialog.showModal();
  });
}

// Every call carries the token when there is one; a 401 asks for it once and tries again.
async function api(path, options = {}, retried = false) {
  const headers = Object.assign({}, options.headers);
  if (token()) headers.Authorization = 'Bearer ' + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && !retried) {
    if (await askToken()) return api(path, options, true);
  }
  return response;
}

async function json(path) {
  const r = await api(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

// ---- small DOM helpers: text only, never HTML from the API ----
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const when = iso => iso ? new Date(iso).toLocaleString() : '';
const ago = iso => {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
const ok = (good, yes = 'healthy', no = 'down') => el('span', { class: good ? 'ok' : 'bad' }, good ? yes : no);

// ---- the cluster view, from the event stream ----
function banners(s) {
  const list = [];
  if (!s.master) list.push(['bad', 'No master: nobody delivers notifications and /primary answers 503 on every node.']);
  if (s.split) list.push(['bad', `Split: ${s.split.peerMaster} is master (epoch ${s.split.peerEpoch}) on ${s.split.peer}'s side of a cut link ` +
    `since ${when(s.split.since)}; ${s.split.thisSideKeeps ? 'this side keeps the role' : 'this side gives it up when the link is back'}.`]);
  if (s.paused) list.push(['warn', `Paused since ${when(s.pausedSince)} by ${s.pausedBy}: no automatic failover until the cluster is resumed.`]);
  const master = s.nodes.find(n => n.node === s.master);
  if (master && !master.prometheusHealthy)
    list.push(['bad', `The master's Prometheus (${master.node}) is unhealthy${s.paused ? ', and the cluster is paused: nothing takes over' : ''}.`]);
  for (const n of s.nodes) {
    if (n.configError)
      list.push(['bad', `${n.node} runs config v${n.configVersion ?? 0}, not the latest` +
        `${n.configBehindSince ? ` (behind since ${when(n.configBehindSince)})` : ''}: ${n.configError}`]);
    else if (n.configBehindSince && Date.now() - new Date(n.configBehindSince).getTime() > 120_000)
      list.push(['warn', `${n.node} has not run the latest config version since ${when(n.configBehindSince)} (${n.configState}).`]);
    if (!n.reachable) list.push(['warn', `${n.node} is unreachable.`]);
  }
  const rejected = configStatus?.rejected?.[0];
  if (rejected && Date.now() - new Date(rejected.at).getTime() < 3600_000)
    list.push(['warn', `A config candidate was rejected ${ago(rejected.at)} on ${rejected.node}: ${rejected.reason}`]);
  $('#banners').replaceChildren(...list.map(([kind, text]) => el('div', { class: 'banner ' + kind, role: 'alert' }, text)));
}

function renderStatus(s) {
  status = s;
  $('#served-by').textContent = `${s.node} (${s.role})`;
  $('#master').textContent = s.master ?? 'none';
  $('#master').className = 'value ' + (s.master ? 'ok' : 'bad');
  $('#epoch').textContent = s.epoch;
  $('#lease').textContent = s.leaseLeftSeconds == null ? '–' : `${s.leaseLeftSeconds.toFixed(1)} s`;
  $('#singleton').textContent = s.singletonNode ?? '?';
  $('#config-latest').textContent = s.configLatest ? `v${s.configLatest}` : 'none';
  $('#pause').hidden = s.paused;
  $('#resume').hidden = !s.paused;
  banners(s);

  const rows = s.nodes.map(n => {
    const role = n.witness ? 'witness' : n.node === s.master ? 'master' : 'standby';
    const links = [];
    if (n.prometheusUrl) links.push(el('a', { href: n.prometheusUrl, target: '_blank', rel: 'noopener' }, 'Prometheus'));
    if (n.alertmanagerUrl) links.push(' · ', el('a', { href: n.alertmanagerUrl, target: '_blank', rel: 'noopener' }, 'Alertmanager'));
    if (n.apiUrl) links.push(' · ', el('a', { href: n.apiUrl.replace(/\/$/, '') + '/', target: '_blank', rel: 'noopener' }, 'page'));
    const canTake = role === 'standby' && n.reachable && n.prometheusHealthy;
    return el('tr', { 'data-node': n.node, class: role },
      el('td', {}, n.node, n.node === s.node ? el('span', { class: 'here' }, ' (this node)') : null),
      el('td', { class: 'role' }, role),
      el('td', {}, ok(n.reachable, 'yes', 'no')),
      el('td', {}, n.witness ? '–' : ok(n.prometheusHealthy)),
      el('td', {}, n.witness || !n.alertmanagerUrl ? '–' : ok(n.alertmanagerHealthy)),
      el('td', { class: 'config', title: n.configState ?? '' }, n.configVersion ? `v${n.configVersion}` : '–',
        n.configState && n.configState !== 'current' ? el('span', { class: n.configError ? 'bad' : 'warn' }, ` ${n.configState}`) : null),
      el('td', {}, n.lastReportAgeSeconds == null ? '–' : `${n.lastReportAgeSeconds} s`),
      el('td', {}, links),
      el('td', {}, canTake ? el('button', { type: 'button', class: 'take', onclick: () => switchover(n.node) }, 'Make master…') : null));
  });
  $('#nodes tbody').replaceChildren(...rows);

  const select = $('#switchover-to');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'the best standby'),
    ...s.nodes.filter(n => !n.witness && n.node !== s.master).map(n => el('option', { value: n.node }, n.node)));
  select.value = s.nodes.some(n => n.node === chosen) ? chosen : '';

  $('#own-group').textContent = s.group;
  loadGroups();

  // what changes rarely is fetched when it changed
  if (s.epoch !== seenEpoch) { seenEpoch = s.epoch; loadHistory(); }
  if (s.configLatest !== seenConfig) { seenConfig = s.configLatest; loadConfig(); }
}

function connect() {
  const live = $('#live');
  const events = new EventSource('/api/v1/events');
  events.addEventListener('status', e => {
    live.textContent = 'live';
    live.className = 'live on';
    renderStatus(JSON.parse(e.data));
  });
  events.onerror = () => {
    // EventSource reconnects by itself; say so while it does
    live.textContent = 'reconnecting…';
    live.className = 'live off';
    // once: EventSource keeps retrying every second, each retry failing the same way
    if (!$('#lost'))
      $('#banners').prepend(el('div', { id: 'lost', class: 'banner bad', role: 'alert' },
        'Lost the connection to the node that serves this page; its status is old. Open another node\'s page from the table.'));
  };
}

// ---- groups (a cluster of several HA groups) ----
let groupsAt = 0;
async function loadGroups() {
  if (Date.now() - groupsAt < 2000) return; // the status stream ticks every second; the groups change less often
  groupsAt = Date.now();
  try {
    const groups = await json('/api/v1/groups');
    const several = groups.length > 1 || (groups.length === 1 && groups[0].name !== 'default');
    $('#groups-section').hidden = !several;
    if (!several) return;
    $('#groups tbody').replaceChildren(...groups.map(g => el('tr', { 'data-group': g.name },
      el('td', {}, g.name),
      el('td', { class: g.master ? 'ok' : 'bad' }, g.master ?? 'none'),
      el('td', {}, g.epoch),
      el('td', {}, g.nodes.join(', ')),
      el('td', {}, el('a', { href: `/groups/${encodeURIComponent(g.name)}/prometheus/`, target: '_blank', rel: 'noopener' }, 'Prometheus'),
        ' · ', el('a', { href: `/groups/${encodeURIComponent(g.name)}/alertmanager/`, target: '_blank', rel: 'noopener' }, 'Alertmanager')))));
  } catch (e) {
    // the groups table is extra: the rest of the page goes on
  }
}

// ---- history ----
async function loadHistory() {
  try {
    const history = await json('/api/v1/history?limit=30');
    $('#history').replaceChildren(...history.map(h => el('li', { 'data-epoch': h.epoch },
      el('span', { class: 'epoch' }, `epoch ${h.epoch}`), ' ',
      el('b', {}, h.node), ` became master (${h.reason})`,
      h.previous ? ` after ${h.previous}` : '', ' · ',
      el('time', { datetime: h.at, title: when(h.at) }, when(h.at)),
      h.hooks ? el('span', { class: 'hooks' }, ' · hooks: ' + h.hooks.map(r => `${r.role} exit ${r.exitCode ?? 'timeout'}`).join(', ')) : null)));
  } catch (e) {
    $('#history').replaceChildren(el('li', { class: 'bad' }, e.message));
  }
}

// ---- configuration ----
async function loadConfig() {
  try {
    [versions, configStatus] = await Promise.all([json('/api/v1/config/versions?limit=30'), json('/api/v1/config/status')]);
  } catch (e) {
    $('#versions tbody').replaceChildren(el('tr', {}, el('td', { colspan: 10, class: 'bad' }, e.message)));
    return;
  }
  const running = v => (configStatus.nodes ?? []).filter(n => n.applied === v).map(n => n.node).join(', ');
  $('#versions tbody').replaceChildren(...versions.map((v, i) => el('tr', { 'data-version': v.version },
    el('td', {}, `v${v.version}`),
    el('td', {}, el('input', { type: 'radio', name: 'diff-from', value: v.version, checked: i === 1, 'aria-label': `diff from v${v.version}` })),
    el('td', {}, el('input', { type: 'radio', name: 'diff-to', value: v.version, checked: i === 0, 'aria-label': `diff to v${v.version}` })),
    el('td', {}, v.author), el('td', {}, v.source), el('td', { title: when(v.at) }, ago(v.at)),
    el('td', {}, v.fileCount), el('td', {}, v.bytes),
    el('td', {}, running(v.version)),
    el('td', {}, i === 0 ? null : el('button', { type: 'button', class: 'rollback', onclick: () => rollback(v.version) }, 'Roll back to this…')))));
  const rejected = configStatus.rejected ?? [];
  $('#rejected').replaceChildren(...(rejected.length === 0 ? [] : [el('h3', {}, 'Rejected candidates'),
    el('ul', { class: 'rejected' }, rejected.slice(0, 10).map(r => el('li', {},
      `${when(r.at)} on ${r.node} (${r.source}, by ${r.author}): `, el('pre', {}, r.reason))))]));
  if (status) banners(status);
}

function renderDiff(text, split) {
  const out = $('#diff-out');
  if (!text.trim()) { out.replaceChildren(el('p', {}, 'The two versions have the same files.')); return; }
  const files = text.split(/^(?=diff )/m);
  out.replaceChildren(...files.map(block => {
    const lines = block.replace(/\n$/, '').split('\n');
    const title = el('h4', {}, lines[0].replace(/^diff /, ''));
    const body = lines.slice(1).filter(l => !l.startsWith('--- ') && !l.startsWith('+++ '));
    if (!split) {
      return el('div', { class: 'file' }, title, el('pre', { class: 'diff unified' },
        body.map(l => el('span', { class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : l.startsWith('@@') ? 'hunk' : '' }, l + '\n'))));
    }
    // side by side: context on both sides, runs of removals beside the additions that follow them
    const rows = [];
    let dels = [], adds = [];
    const flush = () => {
      for (let i = 0; i < Math.max(dels.length, adds.length); i++)
        rows.push(el('tr', {}, el('td', { class: dels[i] !== undefined ? 'del' : 'none' }, dels[i] ?? ''),
          el('td', { class: adds[i] !== undefined ? 'add' : 'none' }, adds[i] ?? '')));
      dels = []; adds = [];
    };
    for (const l of body) {
      if (l.startsWith('-')) dels.push(l.slice(1));
      else if (l.startsWith('+')) adds.push(l.slice(1));
      else {
        flush();
        rows.push(l.startsWith('@@') ? el('tr', { class: 'hunk' }, el('td', { colspan: 2 }, l))
          : el('tr', {}, el('td', {}, l.slice(1)), el('td', {}, l.slice(1))));
      }
    }
    flush();
    return el('div', { class: 'file' }, title, el('table', { class: 'diff split' }, rows));
  }));
}

async function showDiff() {
  const from = document.querySelector('input[name=diff-from]:checked')?.value;
  const to = document.querySelector('input[name=diff-to]:checked')?.value;
  if (!from || !to) { $('#diff-out').textContent = 'Choose a "from" and a "to" version.'; return; }
  const r = await api(`/api/v1/config/diff?from=${from}&to=${to}`);
  const text = await r.text();
  if (!r.ok) { $('#diff-out').replaceChildren(el('p', { class: 'bad' }, `HTTP ${r.status}: ${text}`)); return; }
  renderDiff(text, document.querySelector('input[name=diff-view]:checked').value === 'split');
  $('#diff-out').dataset.from = from;
  $('#diff-out').dataset.to = to;
}

// ---- actions: each confirmed, each with the admin token ----
async function act(question, path) {
  if (!confirm(question)) return;
  if (!token() && !await askToken()) { result('not sent: an action needs the admin token', false); return; }
  const r = await api(path, { method: 'POST' });
  let message = await r.text();
  try { const body = JSON.parse(message); message = body.message ?? body.reason ?? body.outcome ?? message; } catch { /* plain text */ }
  result(`${r.ok ? 'done' : `refused (HTTP ${r.status})`}: ${message}`, r.ok);
}

function result(text, good) {
  const out = $('#action-result');
  out.textContent = text;
  out.className = good ? 'ok' : 'bad';
}

const switchover = to => act(
  `Move the master role from ${status?.master ?? 'the master'} to ${to || 'the best standby'}?`,
  '/api/v1/switchover' + (to ? `?to=${encodeURIComponent(to)}` : ''));

const pause = () => act('Pause the cluster? While paused, nothing takes over if the master fails.', '/api/v1/pause?by=web');
const resume = () => act('Resume the cluster? Automatic failover is back.', '/api/v1/resume?by=web');

const rollback = version => act(
  `Make a new config version with the content of v${version}? Every node applies it.`,
  `/api/v1/config/rollback/${version}?author=web`);

// ---- notifications ----
async function loadNotifications() {
  let data;
  try {
    data = await json('/api/v1/notifications?limit=50');
  } catch (e) {
    $('#notifications tbody').replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'bad' }, e.message)));
    return;
  }
  const byReceiver = {};
  for (const n of data.notifications) {
    const r = byReceiver[n.receiver] ??= { pending: 0, delivered: 0, failed: 0, other: 0 };
    r[n.state in r ? n.state : 'other']++;
  }
  $('#receivers').replaceChildren(...Object.entries(byReceiver).map(([name, r]) => el('div', { class: 'card', 'data-receiver': name },
    el('span', { class: 'label' }, `receiver ${name} (last 50)`),
    el('span', { class: 'value' }, `${r.pending} pending · ${r.delivered} delivered · `, el('span', { class: r.failed ? 'bad' : '' }, `${r.failed} failed`)))));
  $('#direct').textContent = data.directIntegrations.length
    ? `Sent by the master's Alertmanager itself (not through the gate): ${data.directIntegrations.join(', ')}` : '';
  // a suppressed notification names the delivery it duplicates (its row's id, shortened)
  const short = id => id.slice(-8);
  $('#notifications tbody').replaceChildren(...data.notifications.map(n => el('tr', { class: n.state, 'data-id': n.id },
    el('td', { title: `${when(n.acceptedAt)} · ${n.id}` }, ago(n.acceptedAt), ' ', el('span', { class: 'id' }, short(n.id))), el('td', {}, n.receiver),
    el('td', {}, `${n.firing} firing, ${n.resolved} resolved`), el('td', {}, n.state),
    el('td', { title: n.duplicateOf ?? '' }, (n.reason ?? '') + (n.duplicateOf ? ` of ${short(n.duplicateOf)}` : '')),
    el('td', {}, n.deliveredBy ?? ''), el('td', {}, n.attempts), el('td', { class: 'bad' }, n.error ?? ''))));
}

// ---- start ----
document.addEventListener('DOMContentLoaded', () => {
  showToken();
  $('#token-set').addEventListener('click', () => askToken().then(() => { loadConfig(); loadNotifications(); }));
  $('#token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showToken(); });
  $('#switchover').addEventListener('click', () => switchover($('#switchover-to').value));
  $('#diff').addEventListener('click', showDiff);
  $('#pause').addEventListener('click', pause);
  $('#resume').addEventListener('click', resume);
  for (const r of document.querySelectorAll('input[name=diff-view]'))
    r.addEventListener('change', () => { if ($('#diff-out').dataset.from) showDiff(); });
  connect();
  loadNotifications();
  setInterval(loadNotifications, 10_000);
  setInterval(() => { if (status) loadHistory(); }, 30_000);
});
