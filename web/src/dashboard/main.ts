/**
 * The live dashboard: polls `/api/v1/performance/metrics` every second with the admin token kept
 * in this tab's sessionStorage, charts the last two minutes (uPlot), lists the participants on
 * this node with their latest quality, and starts and follows load tests.
 */

import "uplot/dist/uPlot.min.css";
import "./dashboard.css";
import { type ApiSchemas, createApiClient } from "@wakili/sdk";
import { Chart, type ChartSpec } from "./charts.js";
import { bytes, num } from "./format.js";

const POLL_MS = 1000;
const TOKEN_KEY = "wakili.adminToken";

/** Parts of the snapshot the OpenAPI document leaves open (server: wakili-server performance.rs). */
interface SignalingFigures {
  connectionsOpen: number;
  activeConsultations: number;
  activeParticipants: number;
  joins: number;
}
interface TurnFigures {
  relayedBytesToPeers: number;
  relayedBytesFromPeers: number;
  allocationsActive: number;
}
interface Quality {
  level: string;
  score: number;
  rttMs: number;
  packetLossPct: number;
  outboundKbps: number;
  candidateType: string;
}
interface LoadTestProgress {
  phase: string;
  elapsedS: number;
  joined: number;
  participants: number;
  signalsSent: number;
  signalsReceived: number;
  errors: number;
}
interface Latency {
  p50: number;
  p95: number;
  p99: number;
}
interface LoadTestReport {
  participants: number;
  rooms: number;
  joined: number;
  joinsPerS: number;
  joinMs: Latency | null;
  signalMs: Latency | null;
  signalsSent: number;
  signalsReceived: number;
  qualityReports: number;
  messagesPerS: number;
  errorCount: number;
  errors: Record<string, number>;
}

type Snapshot = ApiSchemas["PerformanceSnapshot"];

const CHARTS: ChartSpec[] = [
  { key: "connections", title: "Socket.IO connections", unit: "" },
  { key: "consultations", title: "Active consultations", unit: "" },
  { key: "signalRate", title: "Signals relayed per second", unit: "/s" },
  { key: "joinP95", title: "Join latency p95", unit: " ms" },
  { key: "turnRate", title: "TURN relayed", unit: " B/s" },
  { key: "recordingRate", title: "Recording ingest", unit: " B/s" },
  { key: "pushRate", title: "Push sent + failed per second", unit: "/s" },
];

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`the page has no #${id}`);
  }
  return element as T;
};

const token = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const api = createApiClient({ baseUrl: location.origin, token });
const charts = new Map<string, Chart>();
let previous: Snapshot | null = null;
let timer: ReturnType<typeof setInterval> | undefined;

function setStatus(text: string, error = false): void {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

/** Per second between two snapshots. */
function rate(now: Snapshot, before: Snapshot | null, pick: (s: Snapshot) => number): number | null {
  if (!before) {
    return null;
  }
  const seconds = (Date.parse(now.at) - Date.parse(before.at)) / 1000;
  return seconds > 0 ? Math.max(0, (pick(now) - pick(before)) / seconds) : null;
}

const turnOf = (s: Snapshot) => (s.turn ?? null) as TurnFigures | null;
const turnBytes = (s: Snapshot) => {
  const turn = turnOf(s);
  return turn ? turn.relayedBytesToPeers + turn.relayedBytesFromPeers : 0;
};

function render(s: Snapshot): void {
  const sig = s.signaling as unknown as SignalingFigures;
  const turn = turnOf(s);
  const signalRate = rate(s, previous, (x) => x.signalsRelayed);
  const text: Record<string, string> = {
    "stat-connections": num(sig.connectionsOpen),
    "stat-consultations": num(sig.activeConsultations),
    "stat-participants": num(sig.activeParticipants),
    "stat-joins": num(sig.joins),
    "stat-signals": num(s.signalsRelayed),
    "stat-signal-rate": num(signalRate, 1),
    "stat-join-p95": s.joinLatencyMs.p95 == null ? "–" : `${num(s.joinLatencyMs.p95, 1)} ms`,
    "stat-turn": turn ? `${bytes(turnBytes(s))} · ${num(turn.allocationsActive)} alloc.` : "relay off",
    "stat-recording": `${bytes(s.recordingIngestedBytes)} · backlog ${num(s.replicationBacklog)}`,
    "stat-push": `${num(s.push.sent)} / ${num(s.push.failed)} / ${num(s.push.queued)}`,
    "stat-bandwidth": `${num(s.bandwidthKbps / 1000, 1)} Mbit/s`,
    "stat-process": `${num(s.processCpuSeconds, 1)} s · ${bytes(s.processResidentBytes)}`,
  };
  for (const [id, value] of Object.entries(text)) {
    $(id).textContent = value;
  }

  const at = Date.parse(s.at);
  const samples: Record<string, number | null> = {
    connections: sig.connectionsOpen,
    consultations: sig.activeConsultations,
    signalRate,
    joinP95: s.joinLatencyMs.p95 ?? null,
    turnRate: rate(s, previous, turnBytes),
    recordingRate: rate(s, previous, (x) => x.recordingIngestedBytes),
    pushRate: rate(s, previous, (x) => x.push.sent + x.push.failed),
  };
  for (const [key, chart] of charts) {
    chart.push(at, samples[key] ?? null);
  }
  previous = s;
  renderParticipants(s);
}

function renderParticipants(s: Snapshot): void {
  const rows: HTMLTableRowElement[] = [];
  for (const c of s.consultations.slice(0, 50)) {
    for (const p of c.participants) {
      const q = (p.quality ?? null) as Quality | null;
      const cells = [
        c.consultationId.slice(-12),
        p.participantId.slice(0, 8),
        p.role,
        q ? q.level : "–",
        q ? num(q.score, 2) : "–",
        q ? `${num(q.rttMs)} ms` : "–",
        q ? `${num(q.packetLossPct, 1)} %` : "–",
        q ? `${num(q.outboundKbps)} kbit/s` : "–",
        q ? q.candidateType || "–" : "–",
      ];
      const tr = document.createElement("tr");
      cells.forEach((value, i) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (i === 3 && q) {
          td.className = `level-${q.level}`;
        }
        tr.append(td);
      });
      rows.push(tr);
    }
  }
  $<HTMLTableElement>("consultations").tBodies[0]?.replaceChildren(...rows);
}

function showLoadTest(status: ApiSchemas["LoadTestStatus"]): void {
  const line = $("loadtest-status");
  line.classList.remove("error");
  const p = status.progress as unknown as LoadTestProgress;
  line.textContent =
    `Load test ${status.state}: ${p.phase}, ${num(p.elapsedS)} s, joined ${num(p.joined)}/${num(p.participants)}, ` +
    `signals ${num(p.signalsReceived)}/${num(p.signalsSent)}, errors ${num(p.errors)}`;
  const table = $<HTMLTableElement>("loadtest-results");
  const r = (status.report ?? null) as LoadTestReport | null;
  if (!r) {
    table.hidden = true;
    return;
  }
  const ms = (l: Latency | null) => (l ? `${num(l.p50, 2)} / ${num(l.p95, 2)} / ${num(l.p99, 2)} ms` : "–");
  const errors = Object.entries(r.errors)
    .map(([kind, n]) => ` · ${kind}: ${n}`)
    .join("");
  const rows: [string, string][] = [
    ["Participants / rooms", `${num(r.participants)} / ${num(r.rooms)}`],
    ["Joined", num(r.joined)],
    ["Joins/s", num(r.joinsPerS, 1)],
    ["Join latency p50 / p95 / p99", ms(r.joinMs)],
    ["Signal latency p50 / p95 / p99", ms(r.signalMs)],
    ["Signals sent / delivered", `${num(r.signalsSent)} / ${num(r.signalsReceived)}`],
    ["Quality reports", num(r.qualityReports)],
    ["Messages/s", num(r.messagesPerS, 1)],
    ["Errors", `${num(r.errorCount)}${errors}`],
  ];
  table.tBodies[0]?.replaceChildren(
    ...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(th, td);
      return tr;
    }),
  );
  table.hidden = false;
}

const errorText = (error: unknown) =>
  (error as { error?: { message?: string } } | undefined)?.error?.message ?? "";

async function poll(): Promise<void> {
  if (!token()) {
    return;
  }
  try {
    const metrics = await api.GET("/api/v1/performance/metrics");
    if (metrics.data) {
      render(metrics.data);
      setStatus(`Live · updated ${new Date().toLocaleTimeString()}`);
    } else {
      setStatus(`The server answered ${metrics.response.status}: ${errorText(metrics.error)}`, true);
    }
    const loadTest = await api.GET("/api/v1/performance/load-tests");
    if (loadTest.data) {
      showLoadTest(loadTest.data);
    }
  } catch (error) {
    setStatus(`Cannot reach the server: ${error instanceof Error ? error.message : String(error)}`, true);
  }
}

function start(): void {
  clearInterval(timer);
  previous = null;
  void poll();
  timer = setInterval(() => void poll(), POLL_MS);
}

async function startLoadTest(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const text = (name: string): string => {
    const value = data.get(name);
    return typeof value === "string" ? value : "";
  };
  const body = {
    participants: Number(text("participants")),
    roomSize: Number(text("roomSize")),
    rampUp: text("rampUp"),
    duration: text("duration"),
    messageInterval: text("messageInterval"),
    joinInterval: text("joinInterval"),
  };
  const answer = await api.POST("/api/v1/performance/load-tests", { body });
  if (answer.response.status === 202 && answer.data) {
    showLoadTest(answer.data);
  } else {
    const line = $("loadtest-status");
    line.textContent = `Not started (${answer.response.status}): ${errorText(answer.error)}`;
    line.classList.add("error");
  }
}

for (const spec of CHARTS) {
  charts.set(spec.key, new Chart(spec, $("charts"), (v) => num(v, v !== null && Math.abs(v) < 10 ? 1 : 0)));
}
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = $<HTMLInputElement>("token");
  sessionStorage.setItem(TOKEN_KEY, field.value.trim());
  field.value = "";
  setStatus("Connecting…");
  start();
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  setStatus("Token forgotten. Enter an admin token to start.");
});
$<HTMLFormElement>("loadtest-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void startLoadTest(event.target as HTMLFormElement);
});
if (token()) {
  start();
}
