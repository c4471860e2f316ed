// Wakili live dashboard: polls /api/v1/performance/metrics every second with the admin token
// kept in sessionStorage, draws the last two minutes on plain canvases, lists the active
// consultations and starts/watches load tests. No libraries, no build step.
'use strict';

const POLL_MS = 1000;
const KEEP = 120;
const TOKEN_KEY = 'wakili.adminToken';

const $ = (id) => document.getElementById(id);
const series = {};
let previous = null;
let timer = null;

const CHARTS = [
  { key: 'connections', title: 'Socket.IO connections', unit: '' },
  { key: 'consultations', title: 'Active consultations', unit: '' },
  { key: 'signalRate', title: 'Signals relayed per second', unit: '/s' },
  { key: 'joinP95', title: 'Join latency p95', unit: ' ms' },
  { key: 'turnRate', title: 'TURN relayed', unit: ' B/s' },
  { key: 'recordingRate', title: 'Recording ingest', unit: ' B/s' },
  { key: 'pushRate', title: 'Push sent + failed per second', unit: '/s' },
];

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function setStatus(text, error) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', Boolean(error));
}

function bytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function num(n, digits = 0) {
  return n == null || Number.isNaN(n) ? '–' : Number(n).toLocaleString('en', { maximumFractionDigits: digits });
}

function buildCharts() {
  const box = $('charts');
  for (const c of CHARTS) {
    series[c.key] = [];
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.id = `chart-${c.key}`;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${c.title}, last two minutes`);
    const cap = document.createElement('figcaption');
    const name = document.createElement('span');
    name.textContent = c.title;
    const last = document.createElement('span');
    last.id = `last-${c.key}`;
    last.textContent = '–';
    cap.append(name, last);
    fig.append(canvas, cap);
    box.append(fig);
  }
}

function draw(chart) {
  const canvas = $(`chart-${chart.key}`);
  const data = series[chart.key];
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...data.filter((v) => v != null));
  const left = 44;
  const top = 8;
  const bottom = h - 16;
  g.strokeStyle = '#d0d7de';
  g.fillStyle = '#57606a';
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 2; i += 1) {
    const y = top + ((bottom - top) * i) / 2;
    g.beginPath(); g.moveTo(left, y); g.lineTo(w - 4, y); g.stroke();
    g.fillText(num(max * (1 - i / 2), max < 10 ? 1 : 0), 2, y + 4);
  }
  g.fillText('−2 min', left, h - 3);
  g.fillText('now', w - 26, h - 3);
  g.strokeStyle = '#0b5cad';
  g.lineWidth = 2;
  g.beginPath();
  let started = false;
  data.forEach((v, i) => {
    if (v == null) return;
    const x = left + ((w - 4 - left) * (i + KEEP - data.length)) / (KEEP - 1);
    const y = bottom - ((bottom - top) * v) / max;
    if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
  });
  g.stroke();
  const lastValue = data[data.length - 1];
  $(`last-${chart.key}`).textContent = lastValue == null ? '–' : `${num(lastValue, 1)}${chart.unit}`;
}

function push(key, value) {
  const list = series[key];
  list.push(value);
  if (list.length > KEEP) list.shift();
}

function rate(now, before, pick) {
  if (!before) return null;
  const dt = (Date.parse(now.at) - Date.parse(before.at)) / 1000;
  if (!(dt > 0)) return null;
  return Math.max(0, (pick(now) - pick(before)) / dt);
}

const turnBytes = (s) => (s.turn ? s.turn.relayedBytesToPeers + s.turn.relayedBytesFromPeers : 0);

function render(s) {
  const sig = s.signaling;
  $('stat-connections').textContent = num(sig.connectionsOpen);
  $('stat-consultations').textContent = num(sig.activeConsultations);
  $('stat-participants').textContent = num(sig.activeParticipants);
  $('stat-joins').textContent = num(sig.joins);
  $('stat-signals').textContent = num(s.signalsRelayed);
  const signalRate = rate(s, previous, (x) => x.signalsRelayed);
  $('stat-signal-rate').textContent = num(signalRate, 1);
  $('stat-join-p95').textContent = s.joinLatencyMs.p95 == null ? '–' : `${num(s.joinLatencyMs.p95, 1)} ms`;
  $('stat-turn').textContent = s.turn ? `${bytes(turnBytes(s))} · ${num(s.turn.allocationsActive)} alloc.` : 'relay off';
  $('stat-recording').textContent = `${bytes(s.recordingIngestedBytes)} · backlog ${num(s.replicationBacklog)}`;
  $('stat-push').textContent = `${num(s.push.sent)} / ${num(s.push.failed)} / ${num(s.push.queued)}`;
  $('stat-bandwidth').textContent = `${num(s.bandwidthKbps / 1000, 1)} Mbit/s`;
  $('stat-process').textContent = `${num(s.processCpuSeconds, 1)} s · ${bytes(s.processResidentBytes)}`;

  push('connections', sig.connectionsOpen);
  push('consultations', sig.activeConsultations);
  push('signalRate', signalRate);
  push('joinP95', s.joinLatencyMs.p95);
  push('turnRate', rate(s, previous, turnBytes));
  push('recordingRate', rate(s, previous, (x) => x.recordingIngestedBytes));
  push('pushRate', rate(s, previous, (x) => x.push.sent + x.push.failed));
  CHARTS.forEach(draw);
  previous = s;

  const body = $('consultations').tBodies[0];
  const rows = [];
  for (const c of s.consultations.slice(0, 50)) {
    for (const p of c.participants) {
      const tr = document.createElement('tr');
      const q = p.quality;
      const cells = [c.consultationId.slice(-12), p.participantId.slice(0, 8), p.role,
        q ? q.level : '–', q ? num(q.score, 2) : '–', q ? `${num(q.rttMs)} ms` : '–',
        q ? `${num(q.packetLossPct, 1)} %` : '–', q ? `${num(q.outboundKbps)} kbit/s` : '–',
        q ? q.candidateType || '–' : '–'];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (i === 3 && q) td.className = `level-${q.level}`;
        tr.append(td);
      });
      rows.push(tr);
    }
  }
  body.replaceChildren(...rows);
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

function showLoadTest(status) {
  const el = $('loadtest-status');
  el.classList.remove('error');
  const p = status.progress;
  el.textContent = `Load test ${status.state}: ${p.phase}, ${num(p.elapsedS, 0)} s, joined ${num(p.joined)}/${num(p.participants)}, `
    + `signals ${num(p.signalsReceived)}/${num(p.signalsSent)}, errors ${num(p.errors)}`;
  const table = $('loadtest-results');
  if (!status.report) { table.hidden = true; return; }
  const r = status.report;
  const ms = (s) => (s ? `${num(s.p50, 2)} / ${num(s.p95, 2)} / ${num(s.p99, 2)} ms` : '–');
  const rows = [
    ['Participants / rooms', `${num(r.participants)} / ${num(r.rooms)}`],
    ['Joined', num(r.joined)],
    ['Joins/s', num(r.joinsPerS, 1)],
    ['Join latency p50 / p95 / p99', ms(r.joinMs)],
    ['Signal latency p50 / p95 / p99', ms(r.signalMs)],
    ['Signals sent / delivered', `${num(r.signalsSent)} / ${num(r.signalsReceived)}`],
    ['Quality reports', num(r.qualityReports)],
    ['Messages/s', num(r.messagesPerS, 1)],
    ['Errors', `${num(r.errorCount)}${Object.entries(r.errors).map(([k, v]) => ` · ${k}: ${v}`).join('')}`],
  ];
  table.tBodies[0].replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = k;
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(th, td);
    return tr;
  }));
  table.hidden = false;
}

async function poll() {
  if (!token()) return;
  try {
    const { status, data } = await api('GET', '/api/v1/performance/metrics');
    if (status !== 200) {
      setStatus(`The server answered ${status}: ${data.error ? data.error.message : ''}`, true);
    } else {
      render(data);
      setStatus(`Live · updated ${new Date().toLocaleTimeString()}`);
    }
    const lt = await api('GET', '/api/v1/performance/load-tests');
    if (lt.status === 200) showLoadTest(lt.data);
  } catch (e) {
    setStatus(`Cannot reach the server: ${e.message}`, true);
  }
}

function start() {
  clearInterval(timer);
  previous = null;
  poll();
  timer = setInterval(poll, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  buildCharts();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    setStatus('Connecting…');
    start();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    setStatus('Token forgotten. Enter an admin token to start.');
  });
  $('loadtest-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = Object.fromEntries(form.entries());
    body.participants = Number(body.participants);
    body.roomSize = Number(body.roomSize);
    const el = $('loadtest-status');
    const { status, data } = await api('POST', '/api/v1/performance/load-tests', body);
    if (status === 202) showLoadTest(data);
    else {
      el.textContent = `Not started (${status}): ${data.error ? data.error.message : ''}`;
      el.classList.add('error');
    }
  });
  if (token()) start();
});
