// Instance Portal dashboard. Plain JavaScript, no build step, no network
// access beyond this portal: the instance may be offline.
//
// Safety rule of this file: data from the APIs reaches the DOM only through
// textContent, attributes set one by one, or the log-line parser below,
// which builds nodes from a whitelist. innerHTML is never used.
//
// Every URL is relative to the page ("api/apps", not "/api/apps"): the page
// is reached through the portal's port, SSH forwards, Cloudflare tunnels and
// other proxies, and must follow whatever prefix brought it here.
(function () {
  'use strict';

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  // el builds an element: el('a', {class: 'btn', href: u}, 'Open').
  // Children that are strings become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function formatBytes(n) {
    if (n === undefined || n === null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function pct(used, total) {
    if (!total || used === undefined || used === null) return null;
    return Math.max(0, Math.min(100, (used / total) * 100));
  }

  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  // safeHTTPURL returns u when it is an absolute http(s) URL, else null:
  // an API value must never become a javascript: link.
  function safeHTTPURL(u) {
    if (typeof u !== 'string' || u === '') return null;
    try {
      const p = new URL(u);
      return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null;
    } catch (e) {
      return null;
    }
  }

  function normPath(p) {
    if (typeof p !== 'string' || p === '') return '/';
    return p.startsWith('/') ? p : '/' + p;
  }

  let toastTimer = 0;
  function toast(msg, kind) {
    const t = $('toast');
    t.textContent = msg;
    t.className = 'toast ' + (kind || '');
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === 'error' ? 8000 : 3500);
  }

  // copyText uses the Clipboard API where the page is a secure context
  // (https, localhost) and a hidden textarea elsewhere (plain http on the
  // instance's IP, where navigator.clipboard does not exist).
  async function copyText(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        toast('Copied to the clipboard');
        return;
      }
    } catch (e) { /* fall through to the textarea */ }
    const ta = el('textarea', { class: 'offscreen', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    ta.remove();
    toast(ok ? 'Copied to the clipboard' : 'Copy failed: select the text and copy it by hand', ok ? '' : 'error');
  }

  async function getJSON(url, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs || 8000);
    try {
      const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal });
      const body = await r.json().catch(() => null);
      if (!r.ok) {
        const msg = body && body.error ? body.error : r.status + ' ' + r.statusText;
        throw new Error(msg);
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  async function postJSON(url, data) {
    const r = await fetch(url, {
      method: 'POST',
      cache: 'no-store',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(data),
    });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error(body && body.error ? body.error : r.status + ' ' + r.statusText);
    return body;
  }

  // poller runs fn now and then every interval ms (interval may be a
  // function of the last result), never two at once, and pauses while the
  // tab is hidden.
  function poller(fn, interval) {
    let timer = 0;
    let running = false;
    async function tick() {
      timer = 0;
      if (running) return;
      running = true;
      let next;
      try { next = await fn(); } finally { running = false; }
      if (!document.hidden) {
        timer = setTimeout(tick, typeof interval === 'function' ? interval(next) : interval);
      }
    }
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && !timer && !running) tick();
    });
    tick();
    return { now: () => { clearTimeout(timer); tick(); } };
  }

  // ------------------------------------------------------------ shared state

  const state = {
    apps: [],
    appsLoaded: false,
    portal: null, // the "Instance Portal" entry of /api/apps
    info: { instance_label: '', tunnel_scheme: 'http' },
    tunnels: [],
    tunnelsError: '',
    sshOpen: new Set(), // apps whose SSH hint is unfolded, kept across re-renders
    appsKey: '', // what the app cards were last built from
    hostname: '',
    gpuSummary: '',
  };

  // ------------------------------------------------------------ app links

  // accessMode tells how this page was reached, from the browser's own
  // location and the portal entry: 'external' (the portal's port, through
  // vastauth), 'public' (the provider's public mapping of that port),
  // 'internal' (an SSH forward to the portal's internal port, no auth), or
  // 'other' (a Cloudflare tunnel or some other proxy: other ports of this
  // host are then out of reach).
  function accessMode(loc, portal) {
    if (!portal) return 'external';
    const port = loc.port ? Number(loc.port) : (loc.protocol === 'https:' ? 443 : 80);
    if (port === portal.external_port) return 'external';
    if (portal.public_port && port === portal.public_port) return 'public';
    if (port === portal.internal_port) return 'internal';
    return 'other';
  }

  // tunnelPort is the local port a tunnel target points at, or 0.
  function tunnelPort(target) {
    try {
      const u = new URL(target);
      return Number(u.port) || 0;
    } catch (e) {
      return 0;
    }
  }

  // appTunnelPort is the port a tunnel for the app targets, as the portal
  // resolved it (/api/apps tunnel_port): the external port when the portal
  // serves it (so its authentication applies), the app's own port for a
  // link-only entry, 0 when nothing listens there.
  function appTunnelPort(app) { return app.tunnel_port || 0; }

  // canTunnel: something listens on appTunnelPort. A proxied app whose port
  // is not published has no server of ours, and tunnelling its internal
  // port would skip authentication.
  function canTunnel(app) { return appTunnelPort(app) > 0; }

  // appLinks decides the app's links. env: {loc: {protocol, hostname, port},
  // portal, tunnelURLs: Map(port → running tunnel URL), namedURLs}. The
  // app's scheme and ports are the portal's resolved facts (/api/apps).
  // Returns {primary: {url, label, title} | null, extra: [{url, label}]}.
  function appLinks(app, env) {
    const path = normPath(app.open_path);
    const mode = accessMode(env.loc, env.portal);
    const tunnel = safeHTTPURL(env.tunnelURLs.get(appTunnelPort(app)) || '');
    const tunnelLink = tunnel ? { url: new URL(path, tunnel).href, label: 'Open via tunnel', title: 'Through its Cloudflare tunnel' } : null;
    const direct = safeHTTPURL(app.direct_url);
    const host = env.loc.hostname;

    let primary = null;
    if (!app.listening) {
      primary = tunnelLink; // nothing listens on its port: tunnel or SSH only
    } else if (mode === 'other' && tunnelLink) {
      primary = tunnelLink; // other ports of this host are unreachable from here
    } else if (direct) {
      primary = { url: direct, label: 'Open', title: 'Direct: public IP and port' };
    } else {
      let port = app.external_port;
      let scheme = app.scheme === 'https' ? 'https:' : 'http:';
      if (app.served) {
        if (mode === 'external' || mode === 'public') scheme = env.loc.protocol;
        if (mode === 'public' && app.public_port) port = app.public_port;
      }
      try {
        primary = { url: new URL(scheme + '//' + host + ':' + port + path).href, label: 'Open', title: 'Port ' + port + ' of this host' };
      } catch (e) {
        primary = null;
      }
    }
    const extra = [];
    if (tunnelLink && (!primary || primary.url !== tunnelLink.url)) extra.push(tunnelLink);
    // The named tunnel's ingress rules that point at this app's ports.
    for (const port of new Set([appTunnelPort(app), app.internal_port])) {
      for (const named of (env.namedURLs && env.namedURLs.get(port)) || []) {
        const u = safeHTTPURL(named);
        if (u) extra.push({ url: new URL(path, u).href, label: 'Open via ' + new URL(u).hostname, title: 'Through the named Cloudflare tunnel' });
      }
    }
    return { primary: primary, extra: extra };
  }

  function linkEnv() {
    const urls = new Map();
    const named = new Map(); // local port → public https URLs of the named tunnel
    for (const t of state.tunnels) {
      if (t.type === 'quick' && t.state === 'running' && t.url) urls.set(tunnelPort(t.target), t.url);
      if (t.type === 'named' && t.state === 'running' && Array.isArray(t.ingress)) {
        for (const r of t.ingress) {
          const port = r.hostname && r.service ? tunnelPort(r.service) : null;
          if (!port) continue;
          if (!named.has(port)) named.set(port, []);
          named.get(port).push('https://' + r.hostname);
        }
      }
    }
    return {
      loc: { protocol: location.protocol, hostname: location.hostname, port: location.port },
      portal: state.portal,
      tunnelURLs: urls,
      namedURLs: named,
    };
  }

  // renderApps rebuilds the cards when their inputs changed (the apps, the
  // running tunnels), so a poll that changes nothing leaves the DOM alone.
  function renderApps() {
    if (!state.appsLoaded) return; // keep "Loading…" until /api/apps answers
    const box = $('apps');
    const apps = state.apps;
    const key = JSON.stringify([apps, state.info, state.tunnels.map((t) => [t.type, t.target, t.state, t.url])]);
    if (key === state.appsKey) return;
    state.appsKey = key;
    $('apps-count').textContent = apps.length ? apps.length + (apps.length === 1 ? ' app' : ' apps') : '';
    if (!apps.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No applications in portal.yaml.' }));
      return;
    }
    const env = linkEnv();
    const tunnelByPort = new Map();
    for (const t of state.tunnels) if (t.type === 'quick') tunnelByPort.set(tunnelPort(t.target), t);

    const cards = apps.map((app) => {
      const isPortal = state.portal === app;
      const links = appLinks(app, env);
      const badges = el('div', { class: 'badges' });
      if (isPortal) badges.append(el('span', { class: 'badge accent', text: 'this page' }));
      if (!app.proxied) badges.append(el('span', { class: 'badge', text: 'link only', title: 'The app serves this port itself; the portal does not proxy it' }));
      else if (!app.served) badges.append(el('span', { class: 'badge warn', text: 'not exposed', title: 'No public port mapping: reach it with a tunnel or an SSH forward' }));
      if (app.served) {
        badges.append(app.auth
          ? el('span', { class: 'badge ok lock', text: 'auth', title: 'Requests need the instance token' })
          : el('span', { class: 'badge warn', text: 'no auth', title: 'Anyone who can reach the port can use the app' }));
      }
      const t = tunnelByPort.get(appTunnelPort(app));
      if (t && t.state !== 'stopped') badges.append(el('span', { class: 'badge state-' + t.state, text: 'tunnel ' + t.state.replace('_', ' ') }));

      const ports = app.proxied
        ? ':' + app.external_port + (app.public_port ? ' (public :' + app.public_port + ')' : '') + ' → ' + app.hostname + ':' + app.internal_port
        : app.hostname + ':' + app.internal_port;

      const actions = el('div', { class: 'actions' });
      if (links.primary) {
        actions.append(el('a', { class: 'btn primary', href: links.primary.url, target: '_blank', rel: 'noopener noreferrer', title: links.primary.title + ': ' + links.primary.url }, links.primary.label + ' ↗'));
      } else {
        actions.append(el('span', { class: 'btn disabled', title: 'No address reaches it from here; use a tunnel or the SSH forward' }, 'Open'));
      }
      for (const x of links.extra) {
        actions.append(el('a', { class: 'btn', href: x.url, target: '_blank', rel: 'noopener noreferrer', title: x.url }, x.label + ' ↗'));
      }
      if (canTunnel(app) && (!t || t.state === 'stopped')) {
        actions.append(el('button', { class: 'btn ghost tunnel-btn', type: 'button', title: 'Publish through a Cloudflare quick tunnel', onclick: () => createTunnel(app) }, 'Tunnel'));
      }
      const sshBtn = el('button', { class: 'btn ghost', type: 'button', 'aria-expanded': 'false' }, 'SSH');
      actions.append(sshBtn);

      // Copy puts exactly one runnable command on the clipboard; what to
      // open afterwards is separate text.
      const ssh = app.ssh_command
        ? el('div', { class: 'ssh', hidden: !state.sshOpen.has(app.name) },
          el('code', { text: app.ssh_command }),
          el('button', { class: 'btn small', type: 'button', onclick: () => copyText(app.ssh_command) }, 'Copy'),
          el('span', { class: 'muted', text: 'then open ' + app.ssh_open_url }))
        : el('div', { class: 'ssh', hidden: !state.sshOpen.has(app.name) },
          el('span', { class: 'muted', text: app.ssh_missing + ', then open ' + app.ssh_open_url }));
      sshBtn.setAttribute('aria-expanded', String(!ssh.hidden));
      sshBtn.addEventListener('click', () => {
        ssh.hidden = !ssh.hidden;
        if (ssh.hidden) state.sshOpen.delete(app.name); else state.sshOpen.add(app.name);
        sshBtn.setAttribute('aria-expanded', String(!ssh.hidden));
      });

      return el('article', { class: 'app' + (isPortal ? ' self' : ''), 'data-app': app.name },
        el('div', { class: 'app-head' },
          el('span', { class: 'app-icon', text: (app.name || '?').trim().charAt(0).toUpperCase() || '?' }),
          el('div', { class: 'app-title' },
            el('h3', { text: app.name }),
            el('div', { class: 'ports mono', text: ports }))),
        badges, actions, ssh);
    });
    box.replaceChildren(...cards);
    renderTunnelSelect();
  }

  async function loadApps() {
    try {
      const apps = await getJSON('api/apps');
      state.apps = Array.isArray(apps) ? apps : [];
      state.appsLoaded = true;
      state.portal = state.apps.find((a) => a.name === 'Instance Portal') || null;
      renderApps();
      updateLogout();
    } catch (e) {
      $('apps').replaceChildren(el('div', { class: 'empty error', text: 'Could not load the applications: ' + e.message }));
    }
  }

  async function loadInfo() {
    try {
      const info = await getJSON('api/dashboard');
      if (info && typeof info === 'object') state.info = Object.assign(state.info, info);
    } catch (e) { /* optional: the defaults do */ }
    renderHeader();
  }

  function updateLogout() {
    // Log out exists only where vastauth stands in front of the page.
    const mode = accessMode(location, state.portal);
    $('logout').hidden = !(state.portal && state.portal.auth && mode !== 'internal');
  }

  function renderHeader() {
    const parts = [state.info.instance_label, state.hostname, state.gpuSummary].filter(Boolean);
    $('instance').textContent = parts.join(' · ') || location.hostname;
    document.title = (state.info.instance_label ? state.info.instance_label + ' · ' : '') + 'Instance Portal';
  }

  // --------------------------------------------------------------- metrics

  const HISTORY = 60;
  const history = new Map(); // key → [values]

  function pushHistory(key, v) {
    let h = history.get(key);
    if (!h) { h = []; history.set(key, h); }
    h.push(isNum(v) ? v : null);
    if (h.length > HISTORY) h.shift();
    return h;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function sparkline(values) {
    const w = 120, hgt = 28;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + hgt);
    svg.setAttribute('class', 'spark');
    svg.setAttribute('aria-hidden', 'true');
    const pts = [];
    values.forEach((v, i) => {
      if (v === null) return;
      const x = (i + HISTORY - values.length) * (w / (HISTORY - 1));
      const y = hgt - 1 - (Math.max(0, Math.min(100, v)) / 100) * (hgt - 2);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
    });
    if (pts.length > 1) {
      const area = document.createElementNS(SVG, 'polygon');
      const first = pts[0].split(',')[0], last = pts[pts.length - 1].split(',')[0];
      area.setAttribute('points', first + ',' + hgt + ' ' + pts.join(' ') + ' ' + last + ',' + hgt);
      area.setAttribute('class', 'spark-area');
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', pts.join(' '));
      line.setAttribute('class', 'spark-line');
      svg.append(area, line);
    }
    return svg;
  }

  function level(p) { return p === null ? '' : p >= 90 ? 'hot' : p >= 70 ? 'warm' : ''; }

  // meter: a labelled bar; p is 0-100 or null (unknown).
  // Fill levels warn for what runs out (memory, disk); a busy GPU or CPU
  // is not a problem, so 'busy' meters never turn red.
  function meter(label, valueText, p, kind) {
    return el('div', { class: 'meter' + (kind === 'busy' ? ' with-spark' : '') },
      el('div', { class: 'meter-top' }, el('span', { class: 'meter-label', text: label }), el('span', { class: 'meter-value', text: valueText })),
      el('div', { class: 'bar' + (p === null ? ' unknown' : '') },
        el('span', { class: 'fill ' + (kind === 'busy' ? 'busy' : level(p)) })));
  }

  // setFill sizes the bar of a meter built by meter(); CSSOM, not markup,
  // so the page's CSP needs no 'unsafe-inline'.
  function setFill(m, p) {
    const fill = m.querySelector('.fill');
    fill.style.width = (p === null ? 0 : p.toFixed(1)) + '%';
  }

  function stat(label, value) {
    return el('div', { class: 'stat' }, el('span', { class: 'stat-label', text: label }), el('span', { class: 'stat-value', text: value }));
  }

  function renderGPUs(m) {
    const box = $('gpus');
    if (!m.available) {
      box.replaceChildren(el('div', { class: 'nogpu' },
        el('span', { class: 'nogpu-icon', 'aria-hidden': 'true', text: '⌁' }),
        el('div', null,
          el('strong', { text: 'GPU metrics unavailable' }),
          el('div', { class: 'reason', text: 'No GPU: ' + (m.reason || 'no GPU was found') }))));
      state.gpuSummary = '';
      return;
    }
    const gpus = Array.isArray(m.gpus) ? m.gpus : [];
    const names = new Map();
    for (const g of gpus) names.set(g.name || 'GPU', (names.get(g.name || 'GPU') || 0) + 1);
    state.gpuSummary = [...names].map(([n, c]) => (c > 1 ? c + ' × ' : '') + n).join(', ');
    const cards = gpus.map((g) => {
      const util = isNum(g.utilization_percent) ? g.utilization_percent : null;
      const memP = pct(g.memory_used_bytes, g.memory_total_bytes);
      const hist = pushHistory('gpu' + (g.uuid || g.index), util);
      const utilM = meter('Utilisation', util === null ? 'n/a' : util.toFixed(0) + '%', util, 'busy');
      setFill(utilM, util);
      utilM.querySelector('.meter-value').before(sparkline(hist));
      const memM = meter('Memory', g.memory_total_bytes ? formatBytes(g.memory_used_bytes) + ' / ' + formatBytes(g.memory_total_bytes) : 'n/a', memP);
      setFill(memM, memP);
      const stats = el('div', { class: 'stats' });
      if (isNum(g.temperature_c)) stats.append(stat('Temp', g.temperature_c.toFixed(0) + ' °C'));
      if (isNum(g.power_draw_watts)) stats.append(stat('Power', g.power_draw_watts.toFixed(0) + (isNum(g.power_limit_watts) ? ' / ' + g.power_limit_watts.toFixed(0) : '') + ' W'));
      if (isNum(g.fan_speed_percent)) stats.append(stat('Fan', g.fan_speed_percent.toFixed(0) + '%'));
      if (isNum(g.sm_clock_mhz)) stats.append(stat('SM clock', g.sm_clock_mhz + ' MHz'));
      if (Array.isArray(g.processes)) stats.append(stat('Processes', String(g.processes.length)));
      const warn = [];
      if (isNum(g.ecc_uncorrected) && g.ecc_uncorrected > 0) warn.push(g.ecc_uncorrected + ' uncorrected ECC errors');
      if (isNum(g.xid_last) && g.xid_last > 0) warn.push('XID ' + g.xid_last);
      if (Array.isArray(g.clock_event_reason_names)) {
        const bad = g.clock_event_reason_names.filter((n) => /thermal|power_brake|hw_slowdown/i.test(n));
        if (bad.length) warn.push('throttled: ' + bad.join(', '));
      }
      return el('article', { class: 'gpu' },
        el('div', { class: 'gpu-head' },
          el('span', { class: 'gpu-index', text: 'GPU ' + g.index }),
          el('span', { class: 'gpu-name', text: g.name || '', title: [g.name, g.uuid, g.pci_bus_id].filter(Boolean).join(' · ') })),
        utilM, memM, stats,
        warn.length ? el('div', { class: 'gpu-warn', text: warn.join(' · ') }) : null);
    });
    box.replaceChildren(...cards);
  }

  function renderSystem(m) {
    const s = m.system || {};
    const box = $('system');
    const items = [];
    const cpu = isNum(s.cpu_percent) ? s.cpu_percent : null;
    const cpuHist = pushHistory('cpu', cpu);
    const cores = isNum(s.cpu_limit_cores) ? s.cpu_limit_cores : null;
    const cpuM = meter('CPU' + (cores ? ' · ' + (Number.isInteger(cores) ? cores : cores.toFixed(1)) + ' cores' : ''), cpu === null ? '…' : cpu.toFixed(0) + '%', cpu, 'busy');
    setFill(cpuM, cpu);
    cpuM.querySelector('.meter-value').before(sparkline(cpuHist));
    items.push(cpuM);
    const memP = pct(s.memory_used_bytes, s.memory_limit_bytes);
    const memM = meter('Memory', s.memory_limit_bytes ? formatBytes(s.memory_used_bytes) + ' / ' + formatBytes(s.memory_limit_bytes) : formatBytes(s.memory_used_bytes), memP);
    setFill(memM, memP);
    items.push(memM);
    for (const d of Array.isArray(s.disks) ? s.disks : []) {
      const p = pct(d.used_bytes, d.total_bytes);
      const dm = meter('Disk ' + d.label + ' (' + d.path + ')', formatBytes(d.used_bytes) + ' / ' + formatBytes(d.total_bytes), p);
      setFill(dm, p);
      items.push(dm);
    }
    if (Array.isArray(s.errors) && s.errors.length) items.push(el('div', { class: 'sys-errors', text: s.errors.join('; ') }));
    box.replaceChildren(...items);
  }

  // renderMetrics shows one /api/metrics answer (gpumetrics.Snapshot).
  function renderMetrics(m) {
    renderGPUs(m);
    renderSystem(m);
    const meta = [];
    if (m.driver_version) meta.push('driver ' + m.driver_version);
    if (m.cuda_version) meta.push('CUDA ' + m.cuda_version);
    if (m.stale) meta.push('stale' + (m.stale_reason ? ': ' + m.stale_reason : ''));
    $('metrics-meta').textContent = meta.join(' · ');
    $('metrics-meta').classList.toggle('warn-text', !!m.stale);
    if (m.hostname) state.hostname = m.hostname;
    renderHeader();
  }

  async function pollMetrics() {
    try {
      const m = await getJSON('api/metrics', 5000);
      setConn(true);
      renderMetrics(m);
    } catch (e) {
      setConn(false, e.message);
    }
  }

  function setConn(ok, why) {
    const c = $('conn');
    c.textContent = ok ? 'online' : 'offline';
    c.className = 'pill ' + (ok ? 'ok' : 'bad');
    c.title = ok ? 'The portal answers' : 'The portal does not answer: ' + (why || '');
  }

  // --------------------------------------------------------------- tunnels

  function appForTunnel(t) {
    const port = tunnelPort(t.target);
    return state.apps.find((a) => appTunnelPort(a) === port) || null;
  }

  function renderTunnels() {
    const box = $('tunnels');
    if (state.tunnelsError) {
      box.replaceChildren(el('div', { class: 'empty error', text: state.tunnelsError }));
      return;
    }
    const list = state.tunnels;
    if (!list.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No tunnels. Create one to reach an app through a public trycloudflare.com address.' }));
      return;
    }
    const rows = list.map((t) => {
      const app = t.type === 'quick' ? appForTunnel(t) : null;
      const url = safeHTTPURL(t.url);
      const title = t.type === 'named' ? 'Named tunnel' : (app ? app.name : t.target);
      const actions = el('div', { class: 'actions' });
      if (t.type === 'quick') {
        if (t.state === 'stopped') {
          actions.append(el('button', { class: 'btn small', type: 'button', onclick: () => tunnelAction('', t.target, 'Starting the tunnel…') }, 'Start'));
        } else {
          actions.append(
            el('button', { class: 'btn small', type: 'button', title: 'Restart cloudflared for a new address', onclick: () => tunnelAction('refresh', t.target, 'Asking for a new address…') }, 'Refresh'),
            el('button', { class: 'btn small danger', type: 'button', onclick: () => tunnelAction('stop', t.target, 'Stopping the tunnel…') }, 'Stop'));
        }
      }
      const lines = [];
      if (url) {
        lines.push(el('div', { class: 'tunnel-url' },
          el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'mono', text: url }),
          el('button', { class: 'btn small ghost', type: 'button', onclick: () => copyText(url) }, 'Copy')));
      } else if (t.state === 'starting' || t.state === 'restarting') {
        lines.push(el('div', { class: 'muted', text: 'Waiting for Cloudflare to register the tunnel…' }));
      }
      if (t.type === 'named' && Array.isArray(t.ingress)) {
        for (const r of t.ingress) {
          if (!r.hostname) continue;
          const u = safeHTTPURL('https://' + r.hostname + (r.path || ''));
          lines.push(el('div', { class: 'tunnel-url' },
            u ? el('a', { href: u, target: '_blank', rel: 'noopener noreferrer', class: 'mono', text: r.hostname + (r.path || '') }) : el('span', { class: 'mono', text: r.hostname }),
            el('span', { class: 'muted mono', text: ' → ' + (r.service || '') })));
        }
      }
      if (t.cooldown_until && t.state === 'rate_limited') {
        const until = new Date(t.cooldown_until);
        lines.push(el('div', { class: 'warn-text', text: 'Cloudflare rate limit: next try at ' + (isNaN(until) ? t.cooldown_until : until.toLocaleTimeString()) }));
      }
      if (t.last_error) lines.push(el('div', { class: 'tunnel-error mono', text: t.last_error }));
      return el('article', { class: 'tunnel', 'data-target': t.target || 'named' },
        el('div', { class: 'tunnel-head' },
          el('span', { class: 'pill state-' + t.state, text: (t.state || '').replace('_', ' ') }),
          el('strong', { text: title }),
          el('span', { class: 'muted mono', text: t.type === 'quick' ? t.target : t.type }),
          t.restarts ? el('span', { class: 'muted', text: t.restarts + (t.restarts === 1 ? ' restart' : ' restarts') }) : null,
          actions),
        ...lines);
    });
    box.replaceChildren(...rows);
  }

  function renderTunnelSelect() {
    const sel = $('tunnel-app');
    const prev = sel.value;
    const active = new Set(state.tunnels.filter((t) => t.type === 'quick' && t.state !== 'stopped').map((t) => tunnelPort(t.target)));
    const opts = state.apps.filter((a) => canTunnel(a) && !active.has(appTunnelPort(a)))
      .map((a) => el('option', { value: String(appTunnelPort(a)), text: a.name + ' (:' + appTunnelPort(a) + ')' }));
    if (!opts.length) opts.push(el('option', { value: '', text: 'Every app has a tunnel' }));
    sel.replaceChildren(...opts);
    if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
    $('tunnel-create').disabled = !sel.value;
  }

  function tunnelTarget(app) {
    // The same target the portal gives its own quick tunnels, so that a
    // tunnel created here is not a second one to the same port.
    const scheme = app.scheme === 'https' ? 'https' : 'http';
    return scheme + '://localhost:' + appTunnelPort(app);
  }

  function createTunnel(app) {
    return tunnelAction('', tunnelTarget(app), 'Creating a tunnel for ' + app.name + '…');
  }

  async function tunnelAction(action, target, msg) {
    toast(msg);
    try {
      await postJSON('api/tunnels' + (action ? '/' + action : ''), { target: target });
      tunnelsPoll.now();
    } catch (e) {
      toast('Tunnel: ' + e.message, 'error');
    }
  }

  async function pollTunnels() {
    try {
      const body = await getJSON('api/tunnels');
      state.tunnels = body && Array.isArray(body.tunnels) ? body.tunnels : [];
      state.tunnelsError = '';
    } catch (e) {
      state.tunnelsError = 'Tunnels unavailable: ' + e.message;
    }
    renderTunnels();
    renderApps();
    return state.tunnels.some((t) => t.state === 'starting' || t.state === 'restarting');
  }

  // ------------------------------------------------------------------ logs

  // Log lines arrive as HTML rendered on the server from terminal output:
  // escaped text plus <span class="term-…"> for colours. They are not
  // trusted as markup: parseLogLine rebuilds them from a whitelist (spans
  // with term-* classes, character references); any other tag is dropped.
  const TOKEN = /<span class="([^"<>]*)">|<\/span>|<[^>]*>|&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});/g;
  const NAMED = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  const CLASS_OK = /^term-(fg|bg)(i?[0-9]{1,3})$/;
  const CLASS_X = /^term-(fg|bg)x([0-9]{1,3})$/;

  function xterm256(n) {
    const base = ['#000000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5',
      '#666666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#ffffff'];
    if (n < 16) return base[n];
    if (n < 232) {
      const v = [0, 95, 135, 175, 215, 255];
      const i = n - 16;
      return 'rgb(' + v[Math.floor(i / 36)] + ',' + v[Math.floor(i / 6) % 6] + ',' + v[i % 6] + ')';
    }
    const g = 8 + (n - 232) * 10;
    return 'rgb(' + g + ',' + g + ',' + g + ')';
  }

  function decodeRef(ref) {
    if (ref[0] === '#') {
      const cp = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) return String.fromCodePoint(cp);
      return '\ufffd';
    }
    return Object.prototype.hasOwnProperty.call(NAMED, ref) ? NAMED[ref] : null;
  }

  // parseLogLine appends the nodes of one HTML line to parent.
  function parseLogLine(html, parent) {
    if (html.indexOf('<') < 0 && html.indexOf('&') < 0) {
      parent.append(html);
      return;
    }
    const stack = [parent];
    let text = '';
    let last = 0;
    const flush = () => { if (text) { stack[stack.length - 1].append(text); text = ''; } };
    TOKEN.lastIndex = 0;
    let m;
    while ((m = TOKEN.exec(html)) !== null) {
      text += html.slice(last, m.index);
      last = TOKEN.lastIndex;
      const tok = m[0];
      if (m[2] !== undefined) { // character reference
        const ch = decodeRef(m[2]);
        text += ch === null ? tok : ch;
      } else if (m[1] !== undefined) { // <span class="…">
        flush();
        const span = document.createElement('span');
        for (const c of m[1].split(' ')) {
          let x;
          if (CLASS_OK.test(c)) span.classList.add(c);
          else if ((x = CLASS_X.exec(c)) && Number(x[2]) < 256) {
            if (x[1] === 'fg') span.style.color = xterm256(Number(x[2]));
            else span.style.backgroundColor = xterm256(Number(x[2]));
          }
        }
        stack[stack.length - 1].append(span);
        stack.push(span);
      } else if (tok === '</span>') {
        flush();
        if (stack.length > 1) stack.pop();
      }
      // any other tag: dropped
    }
    text += html.slice(last);
    flush();
  }

  const MAX_DOM_LINES = 2000;  // lines kept in the page
  const MAX_MODEL_LINES = 6000; // lines kept in memory across files
  const REOPEN_KEEP = 64;      // final lines per file an update may reopen

  // The model: entries in arrival order, each {file, html, live, dead, el};
  // per file, its last final entries (an update may reopen a few) and its
  // live block (the unfinished line or the redrawn window). The DOM shows
  // the last MAX_DOM_LINES entries that pass the file filter.
  const logs = {
    entries: [],
    dead: 0,
    files: new Map(), // name → {finals: [], live: []}
    known: new Map(), // name → size (chips)
    filter: '',
    stick: true,
    unseen: 0,
  };

  const fileHue = (name) => {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  };

  function entryEl(e) {
    if (e.el) return e.el;
    const d = document.createElement('div');
    d.className = e.live ? 'ln live' : 'ln';
    const tag = document.createElement('span');
    tag.className = 'lf';
    tag.textContent = e.file;
    tag.style.color = 'hsl(' + fileHue(e.file) + ' 70% 68%)';
    d.append(tag);
    parseLogLine(e.html, d);
    e.el = d;
    return d;
  }

  const visible = (e) => !logs.filter || e.file === logs.filter;

  function fileState(name) {
    let st = logs.files.get(name);
    if (!st) {
      st = { finals: [], live: [] };
      logs.files.set(name, st);
    }
    if (!logs.known.has(name)) {
      logs.known.set(name, null);
      renderChips();
    }
    return st;
  }

  function kill(list) {
    for (const e of list) {
      if (e.dead) continue;
      e.dead = true;
      logs.dead++;
      if (e.el) e.el.remove();
    }
  }

  function killFile(name) {
    const st = logs.files.get(name);
    if (!st) return;
    kill(logs.entries.filter((e) => e.file === name));
    logs.files.delete(name);
  }

  // add places new entries at the end, or before anchor (an entry of the
  // same file still alive), in the model and, if shown, in the DOM.
  function add(list, anchor) {
    if (!list.length) return;
    let idx = anchor ? logs.entries.lastIndexOf(anchor) : -1;
    if (idx >= 0) logs.entries.splice(idx, 0, ...list);
    else { for (const e of list) logs.entries.push(e); }
    const shown = list.filter(visible);
    if (!shown.length) return;
    const els = shown.map(entryEl);
    if (idx >= 0 && anchor.el && anchor.el.parentNode === logView) anchor.el.before(...els);
    else logView.append(...els);
    logs.unseen += shown.length;
  }

  const mk = (file, html, live) => ({ file: file, html: typeof html === 'string' ? html : '', live: live, dead: false, el: null });

  function onSnapshot(ev) {
    killFile(ev.file);
    const st = fileState(ev.file);
    const finals = (ev.lines || []).map((h) => mk(ev.file, h, false));
    const live = (ev.live || []).map((h) => mk(ev.file, h, true));
    add(finals.concat(live));
    st.finals = finals.slice(-REOPEN_KEEP);
    st.live = live;
  }

  function onAppend(ev) {
    const st = fileState(ev.file);
    kill(st.live);
    st.live = [];
    const finals = (ev.lines || []).map((h) => mk(ev.file, h, false));
    add(finals);
    st.finals.push(...finals);
    if (st.finals.length > REOPEN_KEEP * 2) st.finals = st.finals.slice(-REOPEN_KEEP);
  }

  // onUpdate rewrites a progress bar in place: the new live block takes the
  // place of the old one (and of the reopened final lines).
  function onUpdate(ev) {
    const st = fileState(ev.file);
    const reopen = Math.max(0, Math.min(Number(ev.reopen) || 0, st.finals.length));
    const removed = (reopen ? st.finals.splice(st.finals.length - reopen) : []).concat(st.live);
    const anchor = removed.find((e) => !e.dead) || null;
    const live = (ev.lines || []).map((h) => mk(ev.file, h, true));
    add(live, anchor);
    kill(removed);
    st.live = live;
  }

  function handleEvent(ev) {
    if (!ev || typeof ev.type !== 'string') return;
    switch (ev.type) {
      case 'snapshot': if (ev.file) onSnapshot(ev); break;
      case 'append': if (ev.file) onAppend(ev); break;
      case 'update': if (ev.file) onUpdate(ev); break;
      case 'reset': if (ev.file) { killFile(ev.file); fileState(ev.file); } break;
      case 'removed':
        if (ev.file) {
          killFile(ev.file);
          logs.known.delete(ev.file);
          if (logs.filter === ev.file) setFilter('');
          else renderChips();
        }
        break;
      case 'lagged':
        setLogState('resyncing', 'warn', 'The log stream fell behind; the view is being refreshed');
        break;
      default: // ping and future events
    }
  }

  // afterBatch bounds the DOM and the model, then follows the end.
  function afterBatch() {
    const excess = logView.childElementCount - MAX_DOM_LINES;
    if (excess > 0) {
      const r = document.createRange();
      r.setStartBefore(logView.firstElementChild);
      r.setEndAfter(logView.children[excess - 1]);
      r.deleteContents();
    }
    if (logs.entries.length > MAX_MODEL_LINES || logs.dead > 2000) {
      let alive = logs.entries.filter((e) => !e.dead);
      if (alive.length > MAX_MODEL_LINES) {
        const drop = alive.slice(0, alive.length - MAX_MODEL_LINES * 0.8);
        kill(drop);
        alive = alive.slice(drop.length);
      }
      logs.entries = alive;
      logs.dead = 0;
    }
    if (logs.stick) {
      logView.scrollTop = logView.scrollHeight;
      logs.unseen = 0;
    }
    $('log-jump').hidden = logs.stick || logs.unseen === 0;
    if (!logs.stick && logs.unseen) $('log-jump').textContent = '↓ ' + logs.unseen + ' new';
  }

  function rebuildLogView() {
    const shown = [];
    for (let i = logs.entries.length - 1; i >= 0 && shown.length < MAX_DOM_LINES; i--) {
      const e = logs.entries[i];
      if (!e.dead && visible(e)) shown.push(e);
    }
    shown.reverse();
    logView.replaceChildren(...shown.map(entryEl));
    logView.classList.toggle('single', !!logs.filter);
    if (!shown.length) logView.append(el('div', { class: 'log-empty', text: logs.filter ? 'No lines in ' + logs.filter + ' yet.' : 'No log lines yet.' }));
    logs.stick = true;
    logs.unseen = 0;
    afterBatch();
  }

  function setFilter(name) {
    logs.filter = name;
    const dl = $('logs-download');
    if (name) {
      dl.href = 'api/logs/download?file=' + encodeURIComponent(name);
      dl.textContent = 'Download ' + name;
    } else {
      dl.href = 'api/logs/download';
      dl.textContent = 'Download all';
    }
    renderChips();
    rebuildLogView();
  }

  function renderChips() {
    const box = $('log-files');
    const names = [...logs.known.keys()].sort();
    const chip = (name, label, size) => el('button', {
      class: 'chip' + (logs.filter === name ? ' active' : ''), type: 'button', role: 'tab',
      'aria-selected': String(logs.filter === name), 'data-file': name,
      onclick: () => { if (logs.filter !== name) setFilter(name); },
    }, label, size !== null && size !== undefined ? el('span', { class: 'chip-size', text: formatBytes(size) }) : null);
    box.replaceChildren(chip('', 'All files', null), ...names.map((n) => chip(n, n, logs.known.get(n))));
  }

  async function loadLogFiles() {
    try {
      const body = await getJSON('api/logs/files');
      const files = body && Array.isArray(body.files) ? body.files : [];
      const now = new Set(files.map((f) => f.name));
      for (const f of files) logs.known.set(f.name, f.size);
      for (const n of [...logs.known.keys()]) {
        if (!now.has(n)) { logs.known.delete(n); killFile(n); }
      }
      if (logs.filter && !now.has(logs.filter)) setFilter('');
      else renderChips();
      if (!files.length && !logs.entries.length) rebuildLogView();
    } catch (e) {
      setLogState('unavailable', 'bad', e.message);
    }
  }

  function setLogState(text, kind, title) {
    const s = $('logs-state');
    s.textContent = text;
    s.className = 'pill ' + (kind || '');
    s.title = title || '';
  }

  let logView = null;
  let wsAttempt = 0;
  let wsRefused = 0; // WebSocket handshakes in a row that never opened
  let wsTimer = 0;

  function onLogMessage(data) {
    if (typeof data !== 'string') return;
    // One message may carry several events, one JSON object per line.
    for (const line of data.split('\n')) {
      if (!line) continue;
      let ev;
      try { ev = JSON.parse(line); } catch (e) { continue; }
      handleEvent(ev);
    }
    const empty = logView.querySelector('.log-empty');
    if (empty && logs.entries.length) empty.remove();
    if ($('logs-state').textContent === 'resyncing') setLogState('live', 'ok', 'Streaming');
    afterBatch();
  }

  // connectLogs opens the WebSocket (it passes Cloudflare tunnels, which
  // buffer Server-Sent Events). Where the WebSocket is refused twice in a
  // row before it ever opens (a proxy that drops upgrades, or one that
  // rewrites Host so the server's origin check fails) the page falls back
  // to the same events over Server-Sent Events.
  function connectLogs() {
    clearTimeout(wsTimer);
    if (wsRefused >= 2 && window.EventSource) {
      connectSSE();
      return;
    }
    const u = new URL('api/logs/ws?tail=400', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = 0;
    let ws;
    try {
      ws = new WebSocket(u.href);
    } catch (e) {
      wsRefused++;
      scheduleReconnect();
      return;
    }
    setLogState(wsAttempt ? 'reconnecting…' : 'connecting…', 'warn');
    ws.onopen = () => {
      opened = Date.now();
      wsRefused = 0;
      setLogState('live', 'ok', 'Streaming over a WebSocket');
      loadLogFiles();
    };
    ws.onmessage = (msg) => {
      wsAttempt = 0;
      onLogMessage(msg.data);
    };
    ws.onclose = () => {
      if (!opened) wsRefused++;
      else if (Date.now() - opened > 5000) wsAttempt = 0;
      scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function connectSSE() {
    const es = new EventSource('api/logs/stream?tail=400');
    setLogState('connecting…', 'warn');
    es.onopen = () => {
      setLogState('live', 'ok', 'Streaming over Server-Sent Events (the WebSocket was refused)');
      loadLogFiles();
    };
    es.onmessage = (msg) => onLogMessage(msg.data);
    es.onerror = () => {
      // EventSource retries by itself while CONNECTING; CLOSED means the
      // server answered with an error: start over, WebSocket first.
      if (es.readyState === EventSource.CLOSED) {
        wsRefused = 0;
        scheduleReconnect();
      } else {
        setLogState('reconnecting…', 'bad', 'The log stream closed; the browser retries');
      }
    };
  }

  function scheduleReconnect() {
    const delay = wsRefused === 1 ? 200 : Math.min(15000, 500 * Math.pow(2, wsAttempt)) * (0.75 + Math.random() * 0.5);
    wsAttempt = Math.min(wsAttempt + 1, 10);
    setLogState('reconnecting in ' + Math.ceil(delay / 1000) + ' s', 'bad', 'The log stream closed; retrying with backoff');
    wsTimer = setTimeout(connectLogs, delay);
  }

  function initLogs() {
    logView = $('log');
    logView.addEventListener('scroll', () => {
      const atEnd = logView.scrollTop + logView.clientHeight >= logView.scrollHeight - 24;
      logs.stick = atEnd;
      if (atEnd) { logs.unseen = 0; $('log-jump').hidden = true; }
    }, { passive: true });
    $('log-jump').addEventListener('click', () => {
      logs.stick = true;
      afterBatch();
    });
    $('log-wrap').addEventListener('change', (e) => logView.classList.toggle('wrap', e.target.checked));
    renderChips();
    rebuildLogView();
    connectLogs();
  }

  // ------------------------------------------------------------------ start

  let tunnelsPoll = null;

  function start() {
    $('tunnel-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const port = Number($('tunnel-app').value);
      const app = state.apps.find((a) => canTunnel(a) && appTunnelPort(a) === port);
      if (app) createTunnel(app);
    });
    $('tunnel-app').addEventListener('change', () => { $('tunnel-create').disabled = !$('tunnel-app').value; });
    renderHeader();
    loadInfo().then(() => renderApps());
    poller(loadApps, 30000);
    poller(pollMetrics, 2000);
    tunnelsPoll = poller(pollTunnels, (busy) => (busy ? 1500 : 5000));
    initLogs();
  }

  // For tests and for the curious: the pure parts, callable from a console.
  window.portalDashboard = Object.freeze({
    appLinks: appLinks, accessMode: accessMode, parseLogLine: parseLogLine, renderMetrics: renderMetrics,
  });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
