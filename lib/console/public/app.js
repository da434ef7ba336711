// The Fencepost console's page: Preact components written with htm (tagged templates, so
// no build step), one live subscription (server-sent events) per shown view, hash routes:
// #/locks[/NAME], #/streams[/NAME], #/transactions[/ID], #/membership. The server is the
// only source of data and the judge of every action; this page only shows and asks.
import { h, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

// ---- data -----------------------------------------------------------------------------

/** The latest answer of a GET endpoint, kept live over /api/events. */
function useLive(topic) {
  const [state, setState] = useState({ loading: true });
  useEffect(() => {
    if (!topic) return undefined;
    setState({ loading: true });
    const source = new EventSource(`/api/events?topic=${encodeURIComponent(topic)}`);
    source.addEventListener("snapshot", (event) => {
      const { status, body } = JSON.parse(event.data);
      setState(status === 200 ? { data: body, revision: Number(event.lastEventId), at: Date.now() } : { error: body.error, status, at: Date.now() });
    });
    source.onerror = () => setState((s) => ({ ...s, disconnected: true }));
    source.onopen = () => setState((s) => ({ ...s, disconnected: false }));
    return () => source.close();
  }, [topic]);
  return state;
}

/** Re-renders every second, so relative times move. */
function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

async function act(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json", "x-fencepost-console": "1" }, body: JSON.stringify(body ?? {}) });
  const answer = await response.json();
  if (!response.ok) throw Object.assign(new Error(answer.error?.message ?? response.statusText), { type: answer.error?.type ?? "Error" });
  return answer;
}

// ---- formatting -----------------------------------------------------------------------

function span(ms) {
  const a = Math.abs(ms);
  return a < 120_000 ? `${(a / 1000).toFixed(a < 10_000 ? 1 : 0)} s` : a < 7_200_000 ? `${Math.round(a / 60_000)} min` : a < 172_800_000 ? `${Math.round(a / 3_600_000)} h` : `${Math.round(a / 86_400_000)} d`;
}

function absolute(at) {
  const d = new Date(at);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A time both ways: relative ("3.2 s ago", "in 41 s") above, absolute (local time) below. */
function When({ at, now }) {
  if (at === undefined || at === null) return html`<span class="muted">–</span>`;
  const ms = at - now;
  return html`<span class="when" title=${new Date(at).toISOString()}>${ms >= 0 ? `in ${span(ms)}` : `${span(ms)} ago`}<small>${absolute(at)}</small></span>`;
}

const json = (value, max = 80) => {
  const text = JSON.stringify(value) ?? "null";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
};

const link = (path, text) => html`<a href=${`#${path}`}>${text}</a>`;
const enc = encodeURIComponent;

// ---- shared pieces --------------------------------------------------------------------

function Problem({ live, what }) {
  if (live.loading) return html`<p class="empty">Loading ${what}…</p>`;
  if (live.status === 503) return html`<div class="empty" data-state="not-configured"><strong>Not configured.</strong> ${live.error.message}.</div>`;
  return html`<div class="error" role="alert"><strong>${live.error.type}</strong>: ${live.error.message}</div>`;
}

/** Says so when live updates stopped (the console went away); EventSource keeps retrying. */
function Stale({ live }) {
  if (!live.disconnected) return null;
  return html`<div class="error" role="status">Live updates interrupted: reconnecting…${live.at ? ` Showing what was read at ${absolute(live.at)}.` : ""}</div>`;
}

// ---- locks ----------------------------------------------------------------------------

function lockState(l) {
  return l.released ? "free" : l.expired ? "expired" : "held";
}

function Locks() {
  const [prefix, setPrefix] = useState("");
  const live = useLive(`/api/locks?prefix=${enc(prefix)}`);
  const now = useNow();
  return html`<section>
    <h2>Locks</h2>
    <${Stale} live=${live} />
    <div class="toolbar">
      <input type="text" placeholder="Filter by name prefix" aria-label="Filter by name prefix" value=${prefix} onInput=${(e) => setPrefix(e.target.value)} />
      ${live.data && html`<span class="muted">${live.data.locks.length} lock${live.data.locks.length === 1 ? "" : "s"}${live.data.truncated ? " (first 1000 scanned)" : ""}</span>`}
    </div>
    ${!live.data ? html`<${Problem} live=${live} what="locks" />` : live.data.locks.length === 0 ? html`<div class="empty">No locks${prefix ? ` starting with “${prefix}”` : ""} yet. A lock appears here once a client acquires it, for example <code>npx fencepost lock acquire demo</code>.</div>` : html`
    <table id="locks">
      <thead><tr><th>Name</th><th>State</th><th>Holder</th><th class="num">Fencing token</th><th>Lease</th><th>Expires</th><th class="num">Waiting</th></tr></thead>
      <tbody>${live.data.locks.map((l) => html`<tr data-lock=${l.name}>
        <td>${link(`/locks/${enc(l.name)}`, l.name)}</td>
        <td><span class=${`badge ${lockState(l)}`}>${lockState(l)}</span></td>
        <td class="mono">${l.holder ?? "–"}</td>
        <td class="num mono">${l.fencingToken}</td>
        <td>${l.released ? "–" : span(l.leaseMs)}</td>
        <td>${l.released ? html`<span class="muted">–</span>` : html`<${When} at=${l.expiresAt} now=${now} />`}</td>
        <td class="num">${l.waiters}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

function LockDetail({ name }) {
  const live = useLive(`/api/locks/${enc(name)}`);
  const now = useNow();
  const d = live.data;
  return html`<section>
    <p>${link("/locks", "← Locks")}</p>
    <h2>Lock <code>${name}</code></h2>
    <${Stale} live=${live} />
    ${!d ? html`<${Problem} live=${live} what="the lock" />` : !d.state ? html`<div class="empty">No item for this lock: it was never acquired, or it was swept while free (its token floor is kept).</div>` : html`
      <dl class="facts" id="lock-facts">
        <dt>State</dt><dd><span class=${`badge ${lockState(d.state)}`}>${lockState(d.state)}</span>${d.state.expired ? html` <span class="muted">the lease ran out: the next acquire takes it over</span>` : ""}</dd>
        <dt>Holder</dt><dd class="mono">${d.state.holder ?? "–"}</dd>
        <dt>Fencing token</dt><dd class="mono">${d.state.fencingToken}</dd>
        <dt>Lease</dt><dd>${d.state.released ? "–" : span(d.state.leaseMs)}</dd>
        <dt>Expires</dt><dd>${d.state.released ? "–" : html`<${When} at=${d.state.expiresAt} now=${now} />`}<div class="muted">by wall clocks, an estimate: takeover is timed on the waiter's own clock</div></dd>
        <dt>Queue</dt><dd>${d.state.waiters === 0 ? "nobody waiting" : html`${d.state.waiters} waiting, served first come, first served${d.state.nextWaiters?.length ? html`:<ol id="queue" class="mono">${d.state.nextWaiters.map((w) => html`<li>${w}</li>`)}</ol>${d.state.waiters > d.state.nextWaiters.length ? html`<span class="muted">and ${d.state.waiters - d.state.nextWaiters.length} more</span>` : ""}` : ""}`}</dd>
        <dt>Data</dt><dd class="mono">${d.state.data ?? "–"}</dd>
      </dl>`}
    ${d && html`<h3>Token history (seen by this console)</h3>
      ${d.history.length === 0 ? html`<div class="empty">No tokens seen yet.</div>` : html`<table id="token-history">
        <thead><tr><th class="num">Fencing token</th><th>Holder</th><th>First seen</th></tr></thead>
        <tbody>${d.history.map((t) => html`<tr><td class="num mono">${t.fencingToken}</td><td class="mono">${t.holder ?? "–"}</td><td><${When} at=${t.seenAt} now=${now} /></td></tr>`)}</tbody>
      </table>`}
      <p class="muted">The lock table keeps only the latest token; this history is what the console saw while it ran (grants that came and went between two reads are not in it).</p>`}
  </section>`;
}

// ---- streams --------------------------------------------------------------------------

function Streams() {
  const live = useLive("/api/streams");
  const d = live.data;
  return html`<section>
    <h2>Streams</h2>
    <${Stale} live=${live} />
    ${!d ? html`<${Problem} live=${live} what="streams" />` : d.streams.length === 0 ? html`<div class="empty">No streams yet. A stream appears once something is published to it (<code>broadcast.publish(stream, payload)</code>).</div>` : html`
    <table id="streams">
      <thead><tr><th>Stream</th><th class="num">Head</th><th>Consumer groups (cursor / lag)</th><th class="num">Max lag</th></tr></thead>
      <tbody>${d.streams.map((s) => html`<tr data-stream=${s.stream}>
        <td>${link(`/streams/${enc(s.stream)}`, s.stream)}</td>
        <td class="num mono">${s.head}</td>
        <td>${s.groups.length === 0 ? html`<span class="muted">no group has a cursor yet</span>` : s.groups.map((g) => html`<span class="badge" style="margin-right:6px">${g.group}: ${g.position} / ${g.lag}</span>`)}</td>
        <td class="num mono">${s.groups.length === 0 ? "–" : Math.max(...s.groups.map((g) => g.lag))}</td>
      </tr>`)}</tbody>
    </table>${d.truncated ? html`<p class="muted">The scan stopped early: more streams may exist.</p>` : ""}`}
  </section>`;
}

function StreamDetail({ name }) {
  const live = useLive(`/api/streams/${enc(name)}`);
  const d = live.data;
  return html`<section>
    <p>${link("/streams", "← Streams")}</p>
    <h2>Stream <code>${name}</code></h2>
    <${Stale} live=${live} />
    ${live.data === null ? html`<div class="empty">No such stream: nothing was ever published to it.</div>` : !d ? html`<${Problem} live=${live} what="the stream" />` : html`
      <dl class="facts" id="stream-facts">
        <dt>Head</dt><dd class="mono" data-head>${d.head}</dd>
        <dt>Holes</dt><dd>${d.holes.holes.length === 0 ? html`none in ${d.holes.after + 1}..${d.holes.upTo}` : html`<span class="badge in-doubt">${d.holes.holes.length} hole${d.holes.holes.length === 1 ? "" : "s"}</span> at <span class="mono">${d.holes.holes.slice(0, 20).join(", ")}${d.holes.holes.length > 20 ? "…" : ""}</span> <span class="muted">(numbers handed out, not yet written; a consumer fills a lasting one with a no-op)</span>`}</dd>
      </dl>
      <h3>Consumer groups</h3>
      ${d.groups.length === 0 ? html`<div class="empty">No consumer group has a cursor on this stream yet.</div>` : html`<table id="groups">
        <thead><tr><th>Group</th><th class="num">Cursor</th><th class="num">Lag</th></tr></thead>
        <tbody>${d.groups.map((g) => html`<tr data-group=${g.group}><td>${g.group}</td><td class="num mono">${g.position}</td><td class="num mono">${g.lag}</td></tr>`)}</tbody>
      </table>`}
      <h3>Recent messages</h3>
      ${d.tail.length === 0 ? html`<div class="empty">Nothing written yet.</div>` : html`<table id="tail">
        <thead><tr><th class="num">Seq</th><th>Kind</th><th>Payload</th><th>Dedup id</th><th>Lamport</th></tr></thead>
        <tbody>${d.tail.map((s) => html`<tr><td class="num mono">${s.seq}</td><td>${s.kind === "noop" ? html`<span class="badge">no-op</span>` : "message"}</td><td class="mono">${s.kind === "message" ? json(safeParse(s.payload), 100) : "–"}</td><td class="mono">${s.dedupId ?? "–"}</td><td class="mono">${s.lamport ? `${s.lamport.counter}@${s.lamport.node}` : "–"}</td></tr>`)}</tbody>
      </table>`}`}
  </section>`;
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---- transactions ---------------------------------------------------------------------

function txState(t) {
  return t.status === "preparing" ? "preparing" : t.status;
}

function TxTable({ id, rows, now }) {
  return html`<table id=${id}>
    <thead><tr><th>Transaction</th><th>Status</th><th>Phase two</th><th>Path</th><th class="num">Branches</th><th>Created</th><th>Deadline</th></tr></thead>
    <tbody>${rows.map((t) => html`<tr data-tx=${t.txId}>
      <td>${link(`/transactions/${enc(t.txId)}`, t.txId)}</td>
      <td><span class=${`badge ${txState(t)}`}>${t.status}</span></td>
      <td>${t.done ? "done" : "unfinished"}</td>
      <td>${t.path}</td>
      <td class="num">${t.branches.length}</td>
      <td><${When} at=${t.createdAt} now=${now} /></td>
      <td>${t.status === "preparing" ? html`<${When} at=${t.deadline} now=${now} />` : html`<span class="muted">decided</span>`}</td>
    </tr>`)}</tbody>
  </table>`;
}

function Transactions({ config }) {
  const live = useLive("/api/transactions");
  const now = useNow();
  const [outcome, setOutcome] = useState(undefined);
  const [confirming, setConfirming] = useState(false);
  const d = live.data;
  const recover = async () => {
    setConfirming(false);
    try {
      const r = await act("/api/actions/recover");
      setOutcome({ ok: `Recovery examined ${r.examined}: aborted ${r.aborted} undecided, re-drove ${r.redriven} decided; ${r.completed} finished, ${r.stillInDoubt} still in doubt.` });
    } catch (err) {
      setOutcome({ error: err });
    }
  };
  return html`<section>
    <h2>Transactions</h2>
    <${Stale} live=${live} />
    ${config.allowActions && html`<div class="toolbar">
      ${confirming ? html`<span>Finish every transaction past its deadline now (undecided ones are aborted)?</span><button class="danger confirm" onClick=${recover}>Confirm recover</button><button onClick=${() => setConfirming(false)}>Cancel</button>` : html`<button onClick=${() => setConfirming(true)}>Recover stuck transactions…</button>`}
    </div>`}
    ${outcome?.ok && html`<div class="notice">${outcome.ok}</div>`}
    ${outcome?.error && html`<div class="error" role="alert"><strong>${outcome.error.type}</strong>: ${outcome.error.message}</div>`}
    ${!d ? html`<${Problem} live=${live} what="transactions" />` : html`
      <h3>In doubt (${d.inDoubt.length})</h3>
      ${d.inDoubt.length === 0 ? html`<div class="empty" id="in-doubt-empty">No transaction in doubt: none is unfinished past its deadline.</div>` : html`<${TxTable} id="in-doubt" rows=${d.inDoubt} now=${now} />`}
      <h3>Unfinished, within their deadline (${d.unfinished.length})</h3>
      ${d.unfinished.length === 0 ? html`<div class="empty">None running.</div>` : html`<${TxTable} id="unfinished" rows=${d.unfinished} now=${now} />`}
      <h3>Finished (seen by this console)</h3>
      ${d.finished.length === 0 ? html`<div class="empty">None yet. The decision log keeps no index of finished transactions: open one by id (<code>#/transactions/ID</code>).</div>` : html`<${TxTable} id="finished" rows=${d.finished} now=${now} />`}`}
  </section>`;
}

function TransactionDetail({ id, config }) {
  const live = useLive(`/api/transactions/${enc(id)}`);
  const now = useNow();
  const [asking, setAsking] = useState(undefined);
  const [reason, setReason] = useState("");
  const [outcome, setOutcome] = useState(undefined);
  const t = live.data;
  const run = async () => {
    const action = asking;
    setAsking(undefined);
    try {
      await act(`/api/actions/${action}`, { txId: id, reason });
      setOutcome({ ok: `${action === "abort" ? "Aborted" : "Forgotten"}; the audit trail below records it.` });
      setReason("");
    } catch (err) {
      setOutcome({ error: err });
    }
  };
  return html`<section>
    <p>${link("/transactions", "← Transactions")}</p>
    <h2>Transaction <code>${id}</code></h2>
    <${Stale} live=${live} />
    ${outcome?.ok && html`<div class="notice">${outcome.ok}</div>`}
    ${outcome?.error && html`<div class="error" role="alert"><strong>${outcome.error.type}</strong>: ${outcome.error.message}</div>`}
    ${live.data === null ? html`<div class="empty">No record of this transaction: it never began, or finished longer ago than the retention period (presumed aborted).</div>` : !t ? html`<${Problem} live=${live} what="the transaction" />` : html`
      <dl class="facts" id="tx-facts">
        <dt>Status</dt><dd><span class=${`badge ${txState(t)}`} data-status>${t.status}</span> ${t.done ? "done" : html`<strong>unfinished</strong>`}${!t.done && t.deadline < now ? html` <span class="badge in-doubt">in doubt</span>` : ""}</dd>
        <dt>Path</dt><dd>${t.path === "fast" ? "fast path (one TransactWriteItems)" : "two-phase commit"}</dd>
        <dt>Created</dt><dd><${When} at=${t.createdAt} now=${now} /></dd>
        <dt>Deadline</dt><dd><${When} at=${t.deadline} now=${now} /></dd>
        <dt>Decided</dt><dd>${t.decidedAt ? html`<${When} at=${t.decidedAt} now=${now} />` : "not yet"}</dd>
        <dt>Finished</dt><dd>${t.doneAt ? html`<${When} at=${t.doneAt} now=${now} />` : "not yet"}</dd>
        <dt>Reason</dt><dd>${t.reason ?? "–"}</dd>
      </dl>
      <h3>Branches</h3>
      <table id="branches"><thead><tr><th>#</th><th>Participant</th><th>Input</th></tr></thead>
        <tbody>${t.branches.map((b, i) => html`<tr><td>${i + 1}</td><td class="mono">${b.participant}</td><td class="mono">${json(b.input, 140)}</td></tr>`)}</tbody>
      </table>
      <p class="muted">Votes are kept by the participants; the record holds the decision, and the reason of the first no vote.</p>
      <h3>Audit trail</h3>
      ${t.audit.length === 0 ? html`<div class="empty" id="audit-empty">No operator has acted on this transaction.</div>` : html`<table id="audit"><thead><tr><th>When</th><th>Operator</th><th>Action</th><th>Reason</th></tr></thead>
        <tbody>${t.audit.map((a) => html`<tr><td><${When} at=${a.at} now=${now} /></td><td class="mono">${a.operator}</td><td>${a.action}</td><td>${a.reason}</td></tr>`)}</tbody></table>`}
      <h3>Actions</h3>
      ${!config.allowActions ? html`<div class="empty">Read-only console: start it with <code>--allow-actions</code> to abort or forget.</div>` : html`<div class="panel">
        ${asking ? html`<div>
            <p><strong>${asking === "abort" ? "Abort" : "Forget"} ${id}?</strong> ${asking === "abort" ? "An undecided transaction is decided aborted and its participants release what they reserved. A committed one cannot be aborted." : "A decided transaction is marked done without the acknowledgement of a participant that is gone for good."} It is recorded as ${config.operator}.</p>
            <label>Reason (goes in the audit trail)<textarea aria-label="Reason" value=${reason} onInput=${(e) => setReason(e.target.value)} /></label>
            <p><button class="danger confirm" disabled=${reason.trim() === ""} onClick=${run}>Confirm ${asking}</button> <button onClick=${() => setAsking(undefined)}>Cancel</button></p>
          </div>` : html`<button class="danger" onClick=${() => setAsking("abort")}>Abort…</button> <button class="danger" onClick=${() => setAsking("forget")}>Forget…</button>`}
      </div>`}`}
  </section>`;
}

// ---- membership -----------------------------------------------------------------------

function Membership() {
  const [namespace, setNamespace] = useState("default");
  // What is typed is kept as typed (the page re-renders every second) and read on Enter or leaving the field.
  const [typed, setTyped] = useState(namespace);
  const live = useLive(`/api/membership?namespace=${enc(namespace)}`);
  const now = useNow();
  const d = live.data;
  return html`<section>
    <h2>Membership</h2>
    <${Stale} live=${live} />
    <div class="toolbar"><label>Namespace <input type="text" aria-label="Namespace" value=${typed} onInput=${(e) => setTyped(e.target.value)} onChange=${(e) => setNamespace(e.target.value || "default")} /></label>
      ${d && html`<span class="muted">revision ${d.revision}</span>`}</div>
    ${!d ? html`<${Problem} live=${live} what="membership" />` : html`
      <h3>Sessions (${d.sessions.length})</h3>
      ${d.sessions.length === 0 ? html`<div class="empty">No sessions in this namespace. Clients open them with <code>coord.openSession({ ttlMs })</code>.</div>` : html`<table id="sessions">
        <thead><tr><th>Session</th><th>State</th><th>Owner</th><th>TTL</th><th class="num">Keys</th><th>Renewed</th><th>Expires (estimate)</th></tr></thead>
        <tbody>${d.sessions.map((s) => html`<tr data-session=${s.id}><td class="mono">${s.id}</td><td><span class=${`badge ${s.state}`}>${s.state}</span></td><td class="mono">${s.owner ?? "–"}</td><td>${span(s.ttlMs)}</td><td class="num">${s.keys.length}</td>
          <td><${When} at=${s.renewedAt} now=${now} /></td><td>${s.state === "live" && s.renewedAt ? html`<${When} at=${s.renewedAt + s.ttlMs} now=${now} />` : html`<span class="muted">–</span>`}</td></tr>`)}</tbody>
      </table>`}
      <h3>Groups (${d.groups.length})</h3>
      ${d.groups.length === 0 ? html`<div class="empty">No group has members. Members join with <code>coord.group(name).join(session)</code>.</div>` : html`<div class="cards">${d.groups.map((g) => html`<div class="panel" data-group=${g.group}>
        <strong>${g.group}</strong> <span class="badge">epoch ${g.epoch}</span> <span class="muted">revision ${g.revision}</span>
        <table style="margin-top:8px"><thead><tr><th>Member (session)</th><th>Meta</th><th class="num">Joined at revision</th></tr></thead>
          <tbody>${g.members.map((m) => html`<tr><td class="mono" title=${m.id}>${m.id.length > 13 ? `${m.id.slice(0, 8)}…${m.id.slice(-4)}` : m.id}</td><td class="mono">${json(m.meta, 60)}</td><td class="num">${m.joinedRevision}</td></tr>`)}</tbody></table>
      </div>`)}</div>`}
      <h3>Keys (${d.keys.length}${d.keysTruncated ? ", first 200" : ""})</h3>
      ${d.keys.length === 0 ? html`<div class="empty">No keys outside the groups' own.</div>` : html`<table id="keys">
        <thead><tr><th>Key</th><th>Value</th><th class="num">Revision</th><th class="num">Version</th><th>Session (ephemeral)</th></tr></thead>
        <tbody>${d.keys.map((e) => html`<tr><td class="mono">${e.key}</td><td class="mono">${json(e.value, 80)}</td><td class="num">${e.revision}</td><td class="num">${e.version}</td><td class="mono">${e.session ?? "–"}</td></tr>`)}</tbody>
      </table>`}`}
  </section>`;
}

// ---- shell ----------------------------------------------------------------------------

function useRoute() {
  const read = () => (location.hash.replace(/^#/, "") || "/locks").split("/").filter(Boolean);
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

const PAGES = [
  ["locks", "Locks"],
  ["streams", "Streams"],
  ["transactions", "Transactions"],
  ["membership", "Membership"],
];

function App() {
  const [config, setConfig] = useState(undefined);
  useEffect(() => {
    fetch("/api/config").then((r) => r.json()).then(setConfig);
  }, []);
  const [page, ...rest] = useRoute();
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : undefined;
  if (!config) return html`<p class="empty">Connecting…</p>`;
  const body =
    page === "locks" ? (arg ? html`<${LockDetail} name=${arg} />` : html`<${Locks} />`)
    : page === "streams" ? (arg ? html`<${StreamDetail} name=${arg} />` : html`<${Streams} />`)
    : page === "transactions" ? (arg ? html`<${TransactionDetail} id=${arg} config=${config} />` : html`<${Transactions} config=${config} />`)
    : page === "membership" ? html`<${Membership} />`
    : html`<div class="empty">No such page.</div>`;
  return html`
    <header>
      <h1>Fencepost</h1>
      <nav>${PAGES.map(([id, label]) => html`<a href=${`#/${id}`} class=${page === id ? "active" : ""}>${label}</a>`)}</nav>
      <div class="meta">
        <span>${config.where}</span>
        ${config.allowActions ? html`<span class="badge rw" title="Recover, abort and forget are enabled">actions enabled</span>` : html`<span class="badge ro" title="Start with --allow-actions to act">read-only</span>`}
        <span title="Live: the page updates itself"><span class="dot"></span> live</span>
      </div>
    </header>
    <main>${body}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
