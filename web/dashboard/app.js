// Instance Portal dashboard. Plain JavaScript, no build step, no network
// access beyond this portal: the instance may be offline.
//
// Safety rule of this file: data from the APIs reaches the DOM only through
// textContent, attributes set one by one, or the log-line parser below,
// which builds nodes from a whitelist. Markup is never parsed from data.
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

  // formatDuration: 42 → "42 s", 3725 → "1 h 02 m", 200000 → "2 d 7 h".
  function formatDuration(sec) {
    if (!isNum(sec) || sec < 0) return '';
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    const two = (n) => (n < 10 ? '0' : '') + n;
    if (d) return d + ' d ' + h + ' h';
    if (h) return h + ' h ' + two(m) + ' m';
    if (m) return m + ' m ' + two(s) + ' s';
    return s + ' s';
  }

  function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }

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
  async function copyText(text, what) {
    const done = (what || 'Copied') + ' to the clipboard';
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        toast(done);
        return true;
      }
    } catch (e) { /* fall through to the textarea */ }
    const ta = el('textarea', { class: 'offscreen', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    ta.remove();
    toast(ok ? done : 'Copy failed: select the text and copy it by hand', ok ? '' : 'error');
    return ok;
  }

  // apiError carries the HTTP status and the JSON body of a failed call:
  // the APIs say what was wrong in body.error.
  function apiError(r, body) {
    const err = new Error(body && typeof body.error === 'string' && body.error ? body.error : r.status + ' ' + r.statusText);
    err.status = r.status;
    err.body = body;
    return err;
  }

  async function getJSON(url, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs || 8000);
    try {
      const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal });
      const body = await r.json().catch(() => null);
      if (!r.ok) throw apiError(r, body);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // postJSON sends a state-changing call. Content-Type: application/json is
  // what the APIs require (a cross-site form cannot send it).
  async function postJSON(url, data, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs || 40000);
    try {
      const r = await fetch(url, {
        method: 'POST',
        cache: 'no-store',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(data || {}),
        signal: ctl.signal,
      });
      const body = await r.json().catch(() => null);
      if (!r.ok) throw apiError(r, body);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // poller runs fn now and then every interval ms (interval may be a
  // function of the last result), never two at once. It pauses while the
  // browser tab is hidden or active() says no (a dashboard tab not shown);
  // wake() resumes it, now() runs it at once (after a running call).
  function poller(fn, interval, active) {
    let timer = 0;
    let running = false;
    let again = false;
    const isActive = () => !document.hidden && (!active || active());
    async function tick() {
      clearTimeout(timer);
      timer = 0;
      if (running) { again = true; return; }
      running = true;
      let next;
      try { next = await fn(); } catch (e) { next = undefined; } finally { running = false; }
      if (again) {
        again = false;
        timer = setTimeout(tick, 0);
      } else if (isActive()) {
        timer = setTimeout(tick, typeof interval === 'function' ? interval(next) : interval);
      }
    }
    const wake = () => { if (isActive() && !timer && !running) tick(); };
    document.addEventListener('visibilitychange', wake);
    if (isActive()) tick();
    return { now: tick, wake: wake };
  }

  // ------------------------------------------------------------ shared state

  const state = {
    apps: [],
    appsLoaded: false,
    portal: null, // the "Instance Portal" entry of /api/apps
    info: { instance_label: '', tunnel_scheme: 'http' },
    tunnels: [],
    tunnelsError: '',
    procs: [],
    procsLoaded: false,
    procsError: '',
    busy: new Map(), // program id → action in flight ('start', 'stop', 'restart')
    procErrors: new Map(), // program id → the last action's error
    appsKey: '', // what the app cards were last built from
    hostname: '',
    gpuSummary: '',
    tab: 'overview',
  };

  const polls = {};

  // ------------------------------------------------------------------ theme

  // The theme follows the system unless the user picked one; the choice is
  // kept in localStorage (which may be unavailable: then it lasts the visit)
  // and in the portal_theme cookie, which every port of this host shares, so
  // that an app's starting-up page follows it too.
  const THEMES = ['system', 'light', 'dark'];
  function storedTheme() {
    try { return localStorage.getItem('portal-theme') || 'system'; } catch (e) { return 'system'; }
  }
  function applyTheme(t) {
    if (THEMES.indexOf(t) < 0) t = 'system';
    if (t === 'system') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', t);
    const b = $('theme');
    b.textContent = t === 'light' ? '☀' : t === 'dark' ? '☾' : '◐';
    b.title = 'Theme: ' + (t === 'system' ? 'follows the system' : t) + ' (click to change)';
    b.setAttribute('aria-label', b.title);
  }
  // nextTheme: the first click always changes what the user sees, so from
  // "system" it goes to the scheme the system is not showing, then to the
  // other one, then back to the system's.
  function nextTheme(t, systemDark) {
    const first = systemDark ? 'light' : 'dark';
    if (t === 'system') return first;
    if (t === first) return first === 'light' ? 'dark' : 'light';
    return 'system';
  }
  function cycleTheme() {
    const systemDark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
    const next = nextTheme(storedTheme(), systemDark);
    try {
      if (next === 'system') localStorage.removeItem('portal-theme'); else localStorage.setItem('portal-theme', next);
    } catch (e) { /* not kept */ }
    document.cookie = next === 'system'
      ? 'portal_theme=; Path=/; Max-Age=0; SameSite=Lax'
      : 'portal_theme=' + next + '; Path=/; Max-Age=31536000; SameSite=Lax';
    applyTheme(next);
  }

  // ------------------------------------------------------------------- tabs

  const TABS = ['overview', 'processes', 'tunnels', 'provisioning', 'logs', 'help'];

  function tabFromHash(hash) {
    const t = String(hash || '').replace(/^#/, '');
    return TABS.indexOf(t) >= 0 ? t : 'overview';
  }

  function showTab(tab, initial) {
    state.tab = tab;
    for (const t of TABS) {
      const on = t === tab;
      $('view-' + t).hidden = !on;
      const a = $('tab-' + t);
      a.classList.toggle('active', on);
      a.setAttribute('aria-selected', String(on));
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    if (tab === 'logs') logsShown();
    if (initial) return; // the pollers have just started
    if (tab === 'overview') { polls.apps.now(); polls.metrics.now(); polls.boot.now(); }
    if (tab === 'processes') polls.procs.now();
    if (tab === 'tunnels') polls.tunnels.now();
    if (tab === 'help') polls.links.now();
    if (tab === 'provisioning') polls.prov.now();
    if (tab === 'logs' && polls.logFiles) polls.logFiles.wake();
  }

  function goTab(tab) {
    if (location.hash !== '#' + tab) location.hash = tab; // hashchange shows it
    else showTab(tab);
  }

  // ----------------------------------------------------------- the Open flow

  // needsHandoff: a link to another host does not carry this page's session
  // cookie (cookies belong to a host, whatever its port), so the user would
  // meet a password prompt there. Such links are opened with a handoff token.
  function needsHandoff(url, loc) {
    try {
      return new URL(url).hostname !== loc.hostname;
    } catch (e) {
      return false;
    }
  }

  // withHandoff adds the one-time token to a URL, keeping its path, query
  // and fragment.
  function withHandoff(url, token) {
    const u = new URL(url);
    u.searchParams.set('portal_handoff', token);
    return u.href;
  }

  // handoffLink asks the portal for a token bound to the link's origin
  // (valid 60 s, usable once) and returns the link that carries it. The
  // page never holds the login secret itself.
  async function handoffLink(url) {
    const origin = new URL(url).origin;
    const body = await postJSON('api/handoff', { origin: origin }, 8000);
    if (body && typeof body.url === 'string' && safeHTTPURL(body.url) && new URL(body.url).origin === origin) return body.url;
    if (body && typeof body.token === 'string' && body.token) return withHandoff(url, body.token);
    throw new Error('the portal gave no handoff token');
  }

  // openWithHandoff opens url in a new tab, logged in. The tab is opened
  // at once (inside the click, so no popup blocker objects) and sent on
  // when the token arrives. Without a token the plain link is opened: the
  // user can still log in there.
  async function openWithHandoff(url) {
    const w = window.open('', '_blank');
    if (w) w.opener = null;
    let target = url;
    try {
      target = await handoffLink(url);
    } catch (e) {
      // 404: no vastauth in front of this page (an SSH forward to the
      // internal port), so there is no session to hand off: say nothing.
      if (e.status !== 404) toast('Opened without a login handoff (' + e.message + '): log in there', 'error');
    }
    if (w && !w.closed) w.location.replace(target);
    else if (!w) location.assign(target);
  }

  // linkButton is an <a> that opens in a new tab; links to another host go
  // through the handoff.
  function linkButton(link, cls) {
    const a = el('a', { class: cls, href: link.url, target: '_blank', rel: 'noopener noreferrer', title: (link.title ? link.title + ': ' : '') + link.url }, link.label + ' ↗');
    if (link.handoff) {
      a.dataset.handoff = '1';
      a.addEventListener('click', (ev) => {
        if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return; // the browser's own way
        ev.preventDefault();
        openWithHandoff(link.url);
      });
    }
    return a;
  }

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
  // portal, tunnelURLs: Map(port → running tunnel URL), namedURLs: Map(port →
  // [https URL])}. The app's scheme and ports are the portal's resolved
  // facts (/api/apps). Returns {primary: link | null, extra: [link]}, a link
  // being {url, label, title, handoff}: handoff when the link leaves this
  // host for an app behind the portal's authentication.
  function appLinks(app, env) {
    const path = normPath(app.open_path);
    const mode = accessMode(env.loc, env.portal);
    const host = env.loc.hostname;
    const mk = (url, label, title) => ({ url: url, label: label, title: title, handoff: !!app.auth && needsHandoff(url, env.loc) });

    const tunnel = safeHTTPURL(env.tunnelURLs.get(appTunnelPort(app)) || '');
    const tunnelLink = tunnel ? mk(new URL(path, tunnel).href, 'Open via tunnel', 'Through its Cloudflare quick tunnel') : null;
    // The named tunnel's ingress rules that route this app's ports.
    const named = [];
    for (const port of new Set([appTunnelPort(app), app.internal_port])) {
      for (const n of (env.namedURLs && env.namedURLs.get(port)) || []) {
        const u = safeHTTPURL(n);
        if (u) named.push(mk(new URL(path, u).href, 'Open via ' + new URL(u).hostname, 'Through the named Cloudflare tunnel'));
      }
    }
    const direct = safeHTTPURL(app.direct_url);

    // The app's own port on this host (or its direct public address); only
    // when something listens there. Through a tunnel or another proxy the
    // other ports of this host are out of reach: the tunnels come first and
    // the port is a last guess.
    let portLink = null;
    if (app.listening && direct) {
      portLink = mk(direct, 'Open', 'Direct: public IP and port');
      portLink.extraLabel = 'Open via IP';
    } else if (app.listening && (mode !== 'other' || (!tunnelLink && !named.length))) {
      let port = app.external_port;
      let scheme = app.scheme === 'https' ? 'https:' : 'http:';
      if (app.served) {
        if (mode === 'external' || mode === 'public') scheme = env.loc.protocol;
        if (mode === 'public' && app.public_port) port = app.public_port;
      }
      try {
        portLink = mk(new URL(scheme + '//' + host + ':' + port + path).href, 'Open', 'Port ' + port + ' of this host');
        portLink.extraLabel = 'Open on :' + port;
      } catch (e) {
        portLink = null;
      }
    }

    // Preference: the named tunnel (a stable https name) when it routes the
    // app; the quick tunnel when nothing listens on the port or the page
    // came through a tunnel or other proxy (other ports of this host are
    // out of reach then); else the port.
    let primary;
    if (named.length) primary = named[0];
    else if (!app.listening) primary = tunnelLink;
    else if (mode === 'other' && tunnelLink) primary = tunnelLink;
    else primary = portLink;
    const extra = [];
    const seen = new Set(primary ? [primary.url] : []);
    for (const l of [portLink, tunnelLink].concat(named)) {
      if (!l || seen.has(l.url)) continue;
      seen.add(l.url);
      extra.push(l === portLink ? Object.assign({}, l, { label: l.extraLabel }) : l);
    }
    return { primary: primary, extra: extra };
  }

  // secureOffer: a page that came over plain http to an address other than
  // loopback (an SSH forward is encrypted already) is offered the portal's
  // own https tunnel when one runs: the named tunnel first, else the quick.
  function secureOffer(env) {
    if (!env.portal || env.loc.protocol !== 'http:') return null;
    const h = env.loc.hostname;
    if (h === 'localhost' || h === '127.0.0.1' || h === '[::1]' || h === '::1') return null;
    const port = appTunnelPort(env.portal);
    const named = ((env.namedURLs && env.namedURLs.get(port)) || []).map(safeHTTPURL).filter((u) => u && u.startsWith('https:'));
    const quick = safeHTTPURL(env.tunnelURLs.get(port) || '');
    const u = named[0] || (quick && quick.startsWith('https:') ? quick : null);
    return u ? new URL('/', u).href : null;
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

  // ------------------------------------------------------------- app states

  // APP_STATES: the live states /api/apps gives each app, with what the
  // card says about them.
  const APP_STATES = {
    running: { label: 'running', title: 'The app answers on its port' },
    starting: { label: 'starting', title: 'Its program runs but the port does not answer yet' },
    stopped: { label: 'stopped', title: 'Its program is stopped: Start runs it again' },
    failed: { label: 'failed', title: 'Its program crashed or could not start: see its log' },
    not_configured: { label: 'not configured', title: 'Installed, but not in portal.yaml: its start script skipped it' },
    external: { label: 'external', title: 'It answers, but no supervisord program of this portal runs it' },
    not_answering: { label: 'not answering', title: 'Nothing answers on its port and no supervisord program of this portal runs it: start the app, or add a program for it' },
  };

  // ACTIONS: a program action's button text, idle and in flight.
  const ACTIONS = { start: ['Start', 'Starting…'], stop: ['Stop', 'Stopping…'], restart: ['Restart', 'Restarting…'] };

  // sortApps keeps the API's order but puts stopped and not-configured apps
  // last: what can be opened comes first.
  function sortApps(apps) {
    const rank = (a) => (a.state === 'stopped' || a.state === 'not_configured' ? 1 : 0);
    return apps.map((a, i) => [a, i]).sort((x, y) => rank(x[0]) - rank(y[0]) || x[1] - y[1]).map((x) => x[0]);
  }

  // programLog is the log file of a supervisord program: <name>.log, the
  // name being the part of the id after its group.
  function programLog(id) {
    const s = String(id || '');
    return s.slice(s.lastIndexOf(':') + 1) + '.log';
  }

  // renderApps rebuilds the cards when their inputs changed (the apps, the
  // running tunnels, actions in flight), so a poll that changes nothing
  // leaves the DOM alone.
  function renderApps() {
    if (!state.appsLoaded) return; // keep "Loading…" until /api/apps answers
    const box = $('apps');
    const apps = sortApps(state.apps);
    const key = JSON.stringify([apps, state.info, state.tunnels.map((t) => [t.type, t.target, t.state, t.url, t.ingress]),
      [...state.busy], [...state.procErrors]]);
    if (key === state.appsKey) return;
    state.appsKey = key;
    $('apps-count').textContent = apps.length ? plural(apps.length, 'app', 'apps') : '';
    const env = linkEnv();
    renderSecureHint(env);
    if (!apps.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No applications in portal.yaml.' }));
      renderTunnelSelect();
      return;
    }
    const tunnelByPort = new Map();
    for (const t of state.tunnels) if (t.type === 'quick') tunnelByPort.set(tunnelPort(t.target), t);
    box.replaceChildren(...apps.map((app) => appCard(app, env, tunnelByPort)));
    renderTunnelSelect();
  }

  function appCard(app, env, tunnelByPort) {
    const isPortal = state.portal === app;
    const st = APP_STATES[app.state] ? app.state : '';
    const notConfigured = st === 'not_configured';
    const badges = el('div', { class: 'badges' });
    if (isPortal) badges.append(el('span', { class: 'badge accent', text: 'this page' }));
    if (!notConfigured) {
      if (!app.proxied) badges.append(el('span', { class: 'badge', text: 'link only', title: 'The app serves this port itself; the portal does not proxy it' }));
      else if (!app.served) badges.append(el('span', { class: 'badge warn', text: 'not exposed', title: 'No public port mapping: reach it with a tunnel or an SSH forward' }));
      if (app.served) {
        badges.append(app.auth
          ? el('span', { class: 'badge ok lock', text: 'auth', title: 'Requests need the instance token' })
          : el('span', { class: 'badge warn', text: 'no auth', title: 'Anyone who can reach the port can use the app' }));
      }
    }
    const t = tunnelByPort.get(appTunnelPort(app));
    if (t && t.state !== 'stopped') badges.append(el('span', { class: 'badge state-' + t.state, text: 'tunnel ' + t.state.replace('_', ' '), title: t.state === 'failed' && t.last_error ? t.last_error : null }));

    let ports;
    if (notConfigured) ports = 'program ' + (app.program || app.name) + ' · not in portal.yaml';
    else if (app.proxied) ports = ':' + app.external_port + (app.public_port ? ' (public :' + app.public_port + ')' : '') + ' → ' + app.hostname + ':' + app.internal_port;
    else ports = app.hostname + ':' + app.internal_port;

    const actions = el('div', { class: 'actions' });
    const busy = app.program ? state.busy.get(app.program) : '';
    const progButton = (action, cls) => el('button', {
      class: 'btn ' + cls, type: 'button', 'data-action': action, disabled: !!busy,
      title: ACTIONS[action][0] + ' the supervisord program ' + app.program,
      onclick: () => processAction(app.program, action),
    }, busy === action ? ACTIONS[action][1] : ACTIONS[action][0]);

    if (notConfigured) {
      if (app.program) actions.append(progButton('start', 'ghost'));
    } else {
      const links = appLinks(app, env);
      const stoppedLike = st === 'stopped' || st === 'failed';
      if (st === 'stopped' && app.program) actions.append(progButton('start', 'primary'));
      if (st === 'failed' && app.program) actions.append(progButton('restart', 'primary'));
      if (links.primary) actions.append(linkButton(links.primary, 'btn ' + (stoppedLike ? '' : 'primary')));
      else actions.append(el('span', { class: 'btn disabled', title: 'No address reaches it from here; use a tunnel or the SSH forward' }, 'Open'));
      for (const x of links.extra) actions.append(linkButton(x, 'btn'));
      if (st === 'failed' && app.program) {
        actions.append(el('button', { class: 'btn ghost', type: 'button', onclick: () => showLog(programLog(app.program)) }, 'Show log'));
      }
      if (canTunnel(app) && (!t || t.state === 'stopped')) {
        actions.append(el('button', { class: 'btn ghost tunnel-btn', type: 'button', title: 'Publish through a Cloudflare quick tunnel', onclick: () => createTunnel(app) }, 'Tunnel'));
      } else if (canTunnel(app) && t.state === 'failed') {
        // Retry where it failed (issue 21): the badge says why (its title).
        actions.append(el('button', { class: 'btn ghost tunnel-btn', type: 'button', 'data-action': 'retry-tunnel', title: 'Start its quick tunnel again' + (t.last_error ? ': it failed with ' + t.last_error : ''), onclick: () => tunnelAction('refresh', t.target, 'Retrying the tunnel for ' + app.name + '…') }, 'Retry tunnel'));
      }
      if (app.ssh_command || app.ssh_missing) {
        actions.append(el('button', { class: 'btn ghost ssh-btn', type: 'button', 'aria-haspopup': 'dialog', onclick: () => openSSH(app) }, 'SSH'));
      }
    }

    const notes = [];
    if (notConfigured) notes.push(notConfiguredHelp(app));
    const err = app.program ? state.procErrors.get(app.program) : '';
    if (err) notes.push(el('div', { class: 'card-error', text: err }));

    return el('article', { class: 'app' + (isPortal ? ' self' : '') + (st ? ' is-' + st : ''), 'data-app': app.name, 'data-state': st || null },
      el('div', { class: 'app-head' },
        el('span', { class: 'app-icon', text: (app.name || '?').trim().charAt(0).toUpperCase() || '?' }),
        el('div', { class: 'app-title' },
          el('h3', { text: app.name }),
          el('div', { class: 'ports mono', text: ports })),
        st ? el('span', { class: 'pill app-state state-' + st, title: APP_STATES[st].title + (app.program_state ? ' (supervisord: ' + app.program_state + ')' : ''), text: APP_STATES[st].label }) : null),
      badges, ...notes, actions);
  }

  // notConfiguredHelp explains how to add an app whose program skipped
  // itself: an entry in portal.yaml (the ports are the user's to choose).
  function notConfiguredHelp(app) {
    const key = /^[A-Za-z0-9_-]+$/.test(app.name) ? app.name : JSON.stringify(app.name);
    const yaml = '  ' + key + ':\n    hostname: localhost\n    external_port: <public port>\n    internal_port: <port the app listens on>\n    open_path: /\n    name: ' + app.name;
    return el('details', { class: 'howto' },
      el('summary', null, 'How to add it'),
      el('p', null, 'Its start script skipped it because ', el('code', { text: app.name }), ' is not under ',
        el('code', { text: 'applications:' }), ' in ', el('code', { text: '/etc/portal.yaml' }),
        '. Add an entry like this one (or the same in PORTAL_CONFIG), then press Start:'),
      el('div', { class: 'codebox' },
        el('pre', { class: 'mono', text: yaml }),
        el('button', { class: 'btn small ghost', type: 'button', onclick: () => copyText(yaml, 'Entry copied') }, 'Copy')));
  }

  function renderSecureHint(env) {
    const box = $('secure-hint');
    const u = secureOffer(env);
    if (!u) { box.hidden = true; box.replaceChildren(); return; }
    box.replaceChildren(
      el('span', null, 'This page came over plain HTTP. A secure address for it runs: '),
      linkButton({ url: u, label: 'Open ' + new URL(u).hostname, title: 'The portal through its https tunnel, logged in', handoff: true }, 'btn small'));
    box.hidden = false;
  }

  async function loadApps() {
    try {
      const apps = await getJSON('api/apps');
      state.apps = Array.isArray(apps) ? apps.filter((a) => a && typeof a === 'object') : [];
      state.appsLoaded = true;
      state.portal = state.apps.find((a) => a.name === 'Instance Portal') || null;
      renderApps();
      updateLogout();
    } catch (e) {
      $('apps').replaceChildren(el('div', { class: 'empty error', text: 'Could not load the applications: ' + e.message }));
    }
    return state.apps.some((a) => a.state === 'starting');
  }

  // bootNotice says what the instance's provisioning (PROVISIONING_SCRIPT,
  // /api/boot) means for the user: null when there is nothing to say.
  function bootNotice(b) {
    if (!b || typeof b !== 'object') return null;
    const since = b.since ? new Date(b.since) : null;
    const when = since && !isNaN(since) ? since.toLocaleString() : '';
    if (b.provisioning === 'failed') {
      // code: the script's exit status, or a word such as "download".
      const code = b.code === undefined || b.code === null ? '' : String(b.code);
      return {
        kind: 'bad',
        title: 'Provisioning failed' + (/^[0-9]+$/.test(code) ? ' (exit status ' + code + ')' : code ? ' (' + code + ')' : ''),
        text: (typeof b.message === 'string' && b.message ? b.message : 'The provisioning script did not finish.') + (when ? '\nSince ' + when + '.' : ''),
      };
    }
    if (b.provisioning === 'running') {
      return { kind: 'quiet', title: 'Provisioning is running', text: 'Apps may still be installing' + (when ? ' (since ' + when + ')' : '') + '.' };
    }
    return null;
  }

  // renderExposure warns about listeners that bypass the portal's
  // authentication (/api/boot "exposed": package exposure), naming each
  // program and port.
  function renderExposure(b) {
    const box = $('exposure-banner');
    const list = b && Array.isArray(b.exposed) ? b.exposed : [];
    if (!list.length) { box.hidden = true; box.replaceChildren(); return; }
    const lines = list.map((e) => (e.program ? e.program + (e.pid ? ' (pid ' + e.pid + ')' : '') : 'An unknown process') +
      ' listens on ' + e.address + ' port ' + e.port);
    box.className = 'banner bad';
    box.replaceChildren(
      el('strong', { text: list.length === 1 ? 'An app is reachable without authentication' : list.length + ' apps are reachable without authentication' }),
      el('span', { class: 'banner-msg', text: lines.join('\n') + '\nBind it to 127.0.0.1 and let the portal proxy it, or allow the port in /opt/instance-tools/tests/exposure-allowlist/.' }));
    box.hidden = false;
  }

  let bootMissing = false; // an older portal without /api/boot: ask once
  async function loadBoot() {
    if (bootMissing) return false;
    let b = null;
    try {
      b = await getJSON('api/boot');
    } catch (e) {
      bootMissing = e.status === 404;
      b = null; // nothing to say
    }
    renderExposure(b);
    const n = bootNotice(b);
    const box = $('boot-banner');
    if (!n) { box.hidden = true; box.replaceChildren(); return false; }
    box.className = 'banner ' + n.kind;
    box.dataset.provisioning = b.provisioning;
    box.replaceChildren(
      el('strong', { text: n.title }),
      el('span', { class: 'banner-msg', text: n.text }),
      el('button', { class: 'btn small' + (n.kind === 'bad' ? '' : ' ghost'), type: 'button', onclick: () => showLog('provisioning.log') }, 'Show provisioning.log'));
    box.hidden = false;
    return b.provisioning === 'running';
  }

  // loadIdle shows idle auto-stop's line ("idle for 12 min, stops at 30
  // min") with a button that postpones the stop by one window. The API is
  // absent (404) when auto-stop is off: the line stays hidden.
  let idleMissing = false;
  async function loadIdle() {
    if (idleMissing) return;
    const box = $('idle-line');
    let s = null;
    try {
      s = await getJSON('api/idle');
    } catch (e) {
      idleMissing = e.status === 404;
    }
    if (!s || !s.enabled) { box.hidden = true; return; }
    const mins = Math.round(s.stop_after_seconds / 60);
    const btn = el('button', { class: 'btn small ghost', type: 'button' }, 'Postpone by ' + (mins >= 1 ? mins + ' min' : s.stop_after_seconds + ' s'));
    btn.onclick = async () => {
      btn.disabled = true;
      try { await postJSON('api/idle/postpone', {}); } catch (e) { btn.title = String(e.message || e); }
      loadIdle();
    };
    box.replaceChildren(el('strong', { text: 'Idle auto-stop' }), el('span', { class: 'banner-msg', text: s.summary }), btn);
    box.hidden = false;
  }

  async function loadInfo() {
    try {
      const info = await getJSON('api/dashboard');
      if (info && typeof info === 'object') state.info = Object.assign(state.info, info);
    } catch (e) { /* optional: the defaults do */ }
    // The archive button names the directory it downloads.
    const dir = state.info.log_archive_dir;
    if (dir) {
      const a = $('logs-download-all');
      a.textContent = 'Download ' + dir;
      a.title = 'Everything in ' + dir + ' (the portal\'s logs and the clean copies log-tee writes) as one archive';
    }
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

  // ------------------------------------------------------------ SSH dialog

  // openSSH shows the forward for one app: exactly one runnable command
  // with a Copy button, and what to open once it runs as separate text.
  // Without the instance's address or SSH port the dialog says what is
  // missing instead of offering a command with placeholders.
  function openSSH(app) {
    const dlg = $('ssh-dialog');
    $('ssh-title').textContent = 'SSH port forward: ' + app.name;
    const open = safeHTTPURL(app.ssh_open_url);
    const body = [];
    if (app.ssh_command) {
      body.push(
        el('p', { class: 'step' }, el('span', { class: 'step-n', text: '1' }), 'Run this on your computer (it keeps the forward open while it runs):'),
        el('div', { class: 'codebox' },
          el('code', { class: 'mono ssh-command', text: app.ssh_command }),
          el('button', { class: 'btn small primary ssh-copy', type: 'button', onclick: () => copyText(app.ssh_command, 'Command copied') }, 'Copy')));
    } else {
      body.push(el('p', { class: 'warn-box', text: (app.ssh_missing || 'The SSH address of this instance is unknown') + '.' }));
    }
    if (open) {
      body.push(el('p', { class: 'step' }, el('span', { class: 'step-n', text: app.ssh_command ? '2' : '→' }), 'Then open ',
        el('a', { href: open, target: '_blank', rel: 'noopener noreferrer', class: 'mono ssh-open', text: open }),
        ' in your browser.'));
    }
    body.push(el('p', { class: 'muted small', text: 'The forward reaches the app on its own port without the portal in between: no TLS and no login needed, as if it ran on your computer.' }));
    $('ssh-body').replaceChildren(...body);
    if (typeof dlg.showModal === 'function') dlg.showModal(); else dlg.setAttribute('open', '');
  }

  // ------------------------------------------------------------- processes

  // PROC_KIND maps supervisord's states to the pill colours.
  const PROC_KIND = {
    RUNNING: 'ok', STARTING: 'warn', STOPPING: 'warn', BACKOFF: 'bad', FATAL: 'bad', UNKNOWN: 'bad', STOPPED: '', EXITED: '',
  };

  // procButtons: which actions a program offers. Protected programs can
  // only be started; Stop and Restart would be refused (403).
  function procButtons(p) {
    const running = p.state === 'RUNNING' || p.state === 'STARTING' || p.state === 'BACKOFF';
    const out = [];
    if (!running && p.state !== 'STOPPING') out.push('start');
    if (!p.protected && (running || p.state === 'STOPPING')) out.push('stop');
    if (!p.protected) out.push('restart');
    return out;
  }

  async function loadProcs() {
    try {
      const body = await getJSON('api/processes');
      state.procs = body && Array.isArray(body.processes) ? body.processes.filter((p) => p && typeof p.name === 'string') : [];
      state.procsError = '';
    } catch (e) {
      state.procsError = e.status === 404 ? 'This portal has no process control.' : 'Processes unavailable: ' + e.message;
      state.procsStart = e.body && typeof e.body.start_command === 'string' ? e.body.start_command : '';
    }
    state.procsLoaded = true;
    renderProcs();
  }

  // supervisordHint: how to start the supervisord the API could not reach
  // (its 503 names the command, issue 21). From a checkout (make run) it is
  // examples/supervisord.conf; in the image the entrypoint starts it, so its
  // absence means the container was started without the entrypoint.
  function supervisordHint(cmd) {
    if (!cmd) return [];
    const checkout = cmd.includes('examples/');
    return [el('div', { class: 'howto procs-hint' },
      el('p', { text: checkout
        ? 'This portal runs from a checkout (make run). Start a supervisord on its socket (.run/supervisor.sock) from the repository root, in another shell:'
        : 'In the image the entrypoint starts supervisord, so this container was started without it. Start it with:' }),
      el('div', { class: 'codebox' },
        el('pre', { class: 'mono', text: cmd }),
        el('button', { class: 'btn small ghost', type: 'button', onclick: () => copyText(cmd, 'Command copied') }, 'Copy')))];
  }

  let procsKey = '';
  function renderProcs() {
    const box = $('procs');
    if (state.procsError) {
      procsKey = '';
      box.replaceChildren(el('div', { class: 'empty error', text: state.procsError }), ...supervisordHint(state.procsStart));
      $('procs-meta').textContent = '';
      return;
    }
    if (!state.procsLoaded) return;
    const list = state.procs;
    const running = list.filter((p) => p.state === 'RUNNING').length;
    $('procs-meta').textContent = list.length ? running + ' of ' + list.length + ' running' : '';
    if (!list.length) {
      procsKey = '';
      box.replaceChildren(el('div', { class: 'empty', text: 'supervisord runs no programs.' }));
      return;
    }
    // A poll where only the clocks moved updates them in place: rebuilding
    // the rows every 2 s would swallow a click that spans a rebuild.
    const key = JSON.stringify([list.map((p) => Object.assign({}, p, { uptime_seconds: 0, description: '' })), [...state.busy], [...state.procErrors]]);
    if (key === procsKey) {
      for (const p of list) {
        const row = box.querySelector('article.proc[data-id="' + CSS.escape(p.id || p.name) + '"]');
        if (!row) continue;
        const up = row.querySelector('.uptime');
        if (up && isNum(p.uptime_seconds)) up.textContent = 'up ' + formatDuration(p.uptime_seconds);
        const desc = row.querySelector('.proc-desc');
        if (desc) desc.textContent = p.description || '';
      }
      return;
    }
    procsKey = key;
    const rows = list.map((p) => {
      const id = p.id || p.name;
      const busy = state.busy.get(id);
      const kind = PROC_KIND[p.state] !== undefined ? PROC_KIND[p.state] : 'bad';
      const facts = [];
      if (p.state === 'RUNNING' && isNum(p.uptime_seconds)) facts.push(el('span', { class: 'uptime', title: 'Uptime', text: 'up ' + formatDuration(p.uptime_seconds) }));
      if (p.pid) facts.push(el('span', { class: 'muted mono', text: 'pid ' + p.pid }));
      if ((p.state === 'EXITED' || p.state === 'FATAL' || p.state === 'BACKOFF') && isNum(p.exit_status)) facts.push(el('span', { class: 'muted', text: 'exit status ' + p.exit_status }));
      const badges = [];
      if (p.group && p.group !== p.name) badges.push(el('span', { class: 'badge', text: 'group ' + p.group }));
      if (p.protected) badges.push(el('span', { class: 'badge lock', title: p.protected_reason || 'Protected: it cannot be stopped from here', text: 'protected' }));
      if (p.skipped) badges.push(el('span', { class: 'badge warn', title: 'Its start script found its app missing from portal.yaml', text: 'skipped' + (p.app ? ': ' + p.app + ' not configured' : '') }));
      const actions = el('div', { class: 'actions' });
      for (const a of procButtons(p)) {
        actions.append(el('button', {
          class: 'btn small' + (a === 'stop' ? ' danger' : '') + (a === 'start' ? ' primary' : ''), type: 'button', 'data-action': a, disabled: !!busy,
          onclick: () => processAction(id, a),
        }, busy === a ? ACTIONS[a][1] : ACTIONS[a][0]));
      }
      actions.append(el('button', { class: 'btn small ghost', type: 'button', 'data-action': 'log', onclick: () => showLog(programLog(p.name)) }, 'Show log'));
      const err = state.procErrors.get(id);
      return el('article', { class: 'proc', 'data-proc': p.name, 'data-id': id, 'data-state': p.state },
        el('div', { class: 'proc-head' },
          el('span', { class: 'pill ' + kind, text: String(p.state || '?').toLowerCase() }),
          el('strong', { class: 'proc-name', text: p.name }),
          ...badges, ...facts, actions),
        p.description ? el('div', { class: 'muted small proc-desc', text: p.description }) : null,
        p.spawn_error ? el('div', { class: 'card-error', text: p.spawn_error }) : null,
        err ? el('div', { class: 'card-error', text: err }) : null);
    });
    box.replaceChildren(...rows);
  }

  // processAction starts, stops or restarts a program. The API waits for
  // the state change (bounded), then the lists are read again.
  async function processAction(id, action) {
    if (!id || state.busy.has(id)) return;
    state.busy.set(id, action);
    state.procErrors.delete(id);
    renderProcs();
    renderApps();
    try {
      const body = await postJSON('api/processes/' + encodeURIComponent(id) + '/' + action, {});
      const p = body && body.process;
      if (p && typeof p.name === 'string') {
        const i = state.procs.findIndex((x) => (x.id || x.name) === id);
        if (i >= 0) state.procs[i] = p;
      }
    } catch (e) {
      state.procErrors.set(id, action.charAt(0).toUpperCase() + action.slice(1) + ' failed: ' + e.message);
    } finally {
      state.busy.delete(id);
    }
    renderProcs();
    polls.procs.now();
    polls.apps.now();
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
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function sparkline(values) {
    const w = 120, hgt = 28;
    const svg = svgEl('svg', { viewBox: '0 0 ' + w + ' ' + hgt, class: 'spark', 'aria-hidden': 'true' });
    svg.append(svgEl('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, class: 'spark-base' }));
    const pts = [];
    values.forEach((v, i) => {
      if (v === null) return;
      const x = (i + HISTORY - values.length) * (w / (HISTORY - 1));
      const y = hgt - 1 - (Math.max(0, Math.min(100, v)) / 100) * (hgt - 2);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
    });
    if (pts.length > 1) {
      const first = pts[0].split(',')[0], last = pts[pts.length - 1].split(',')[0];
      svg.append(
        svgEl('polygon', { points: first + ',' + hgt + ' ' + pts.join(' ') + ' ' + last + ',' + hgt, class: 'spark-area' }),
        svgEl('polyline', { points: pts.join(' '), class: 'spark-line' }));
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

  // diskFigures shows a disk as df does: Use% is used / (used + available
  // to unprivileged users), rounded up, so blocks reserved for root and
  // space this container cannot use do not make a full disk look roomy.
  function diskFigures(d) {
    const used = Number(d.used_bytes) || 0;
    if (!isNum(d.available_bytes)) {
      const p = pct(used, d.total_bytes);
      return { p: p, text: formatBytes(used) + ' / ' + formatBytes(d.total_bytes), usePct: p === null ? null : Math.ceil(p) };
    }
    const avail = d.available_bytes;
    const size = used + avail;
    // The API's own figure when it gives one (the same rule, computed once).
    const usePct = isNum(d.used_percent) ? d.used_percent : size > 0 ? Math.ceil((used * 100) / size) : 0;
    return {
      p: size > 0 ? Math.min(100, (used * 100) / size) : 0,
      usePct: usePct,
      text: formatBytes(used) + ' used · ' + formatBytes(avail) + ' free (' + usePct + '%)',
    };
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
      const f = diskFigures(d);
      const dm = meter('Disk ' + d.label + ' (' + d.path + ')', f.text, f.p);
      dm.classList.add('disk');
      dm.dataset.path = d.path;
      dm.title = 'As df shows it: ' + formatBytes(d.used_bytes) + ' used, ' + formatBytes(d.available_bytes) + ' available to this container, ' + formatBytes(d.total_bytes) + ' in all (space reserved for root and used by others counts as used)';
      setFill(dm, f.p);
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

  // parseTunnelInput turns what a user typed into a tunnel target: a port
  // ("8080"), host:port ("localhost:8080") or a URL. A bare port takes the
  // scheme of the app served there (https when the portal serves it with
  // TLS). Which hosts are allowed is the API's rule: its error is shown.
  // Returns {target} or {error}.
  function parseTunnelInput(input, apps) {
    const s = String(input || '').trim();
    if (!s) return { error: 'Type a port (8080), localhost:8080 or a URL' };
    let m = /^:?([0-9]{1,5})$/.exec(s);
    if (m) {
      const port = Number(m[1]);
      if (port < 1 || port > 65535) return { error: 'A port is a number from 1 to 65535' };
      const app = (apps || []).find((a) => appTunnelPort(a) === port);
      return { target: (app && app.scheme === 'https' ? 'https' : 'http') + '://localhost:' + port };
    }
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
      m = /^(localhost|127\.0\.0\.1|\[::1\]):([0-9]{1,5})(\/.*)?$/i.exec(s);
      if (m) return { target: 'http://' + s };
    }
    return { target: s };
  }

  // internalApp: the proxied app whose internal port a tunnel targets; such
  // a tunnel reaches the app without the portal's login.
  function internalApp(t) {
    const port = tunnelPort(t.target);
    return state.apps.find((a) => a.proxied && a.internal_port === port && a.external_port !== port) || null;
  }

  function tunnelTitle(t) {
    if (t.type === 'named') return 'Named tunnel';
    const app = appForTunnel(t);
    if (app) return app.name;
    const inner = internalApp(t);
    return inner ? inner.name + ' · internal port' : t.target;
  }

  let tunnelsKey = '';
  function renderTunnels() {
    const box = $('tunnel-list');
    const key = JSON.stringify([state.tunnelsError, state.tunnels, state.apps.map((a) => [a.name, a.tunnel_port, a.auth])]);
    if (key === tunnelsKey) return;
    tunnelsKey = key;
    if (state.tunnelsError) {
      box.replaceChildren(el('div', { class: 'empty error', text: state.tunnelsError }));
      return;
    }
    const list = state.tunnels;
    const up = list.filter((t) => t.state === 'running').length;
    $('tunnels-meta').textContent = list.length ? up + ' of ' + list.length + ' running' : '';
    if (!list.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No tunnels. Create one to reach an app through a public trycloudflare.com address.' }));
      return;
    }
    const rows = list.map((t) => {
      const url = safeHTTPURL(t.url);
      const app = t.type === 'quick' ? appForTunnel(t) : null;
      const actions = el('div', { class: 'actions' });
      if (url) actions.append(el('button', { class: 'btn small ghost', type: 'button', 'data-action': 'copy', onclick: () => copyText(url, 'Address copied') }, 'Copy'));
      if (t.type === 'quick') {
        if (t.state === 'stopped') {
          actions.append(el('button', { class: 'btn small', type: 'button', 'data-action': 'start', onclick: () => tunnelAction('', t.target, 'Starting the tunnel…') }, 'Start'));
        } else {
          // A failed tunnel is retried; a working one gets a new address.
          // A failed one is dismissed (removed from the list) rather than
          // stopped: nothing runs.
          const retry = t.state === 'failed';
          actions.append(
            el('button', { class: 'btn small', type: 'button', 'data-action': 'refresh', title: retry ? 'Start cloudflared again' : 'Restart cloudflared for a new address', onclick: () => tunnelAction('refresh', t.target, retry ? 'Retrying the tunnel…' : 'Asking for a new address…') }, retry ? 'Retry' : 'Refresh'),
            retry
              ? el('button', { class: 'btn small ghost', type: 'button', 'data-action': 'dismiss', title: 'Remove this failed tunnel from the list', onclick: () => tunnelAction('stop', t.target, 'Dismissing the failed tunnel…') }, 'Dismiss')
              : el('button', { class: 'btn small danger', type: 'button', 'data-action': 'stop', onclick: () => tunnelAction('stop', t.target, 'Stopping the tunnel…') }, 'Stop'));
        }
      }
      const lines = [];
      if (url) {
        const link = { url: url, label: url.replace(/\/$/, ''), title: 'Open through the tunnel', handoff: !!(app && app.auth) || (t.type === 'quick' && state.portal && appTunnelPort(state.portal) === tunnelPort(t.target) && state.portal.auth) };
        lines.push(el('div', { class: 'tunnel-url' }, linkButton(link, 'mono url-link')));
      } else if (t.state === 'starting' || t.state === 'restarting') {
        lines.push(el('div', { class: 'muted', text: 'Waiting for Cloudflare to register the tunnel…' }));
      }
      if (t.type === 'named' && Array.isArray(t.ingress)) {
        for (const r of t.ingress) {
          if (!r.hostname) continue;
          const u = safeHTTPURL('https://' + r.hostname + (r.path || ''));
          lines.push(el('div', { class: 'tunnel-url' },
            u ? el('a', { href: u, target: '_blank', rel: 'noopener noreferrer', class: 'mono', text: r.hostname + (r.path || '') }) : el('span', { class: 'mono', text: r.hostname }),
            el('span', { class: 'muted mono', text: ' → ' + (r.service || '') }),
            u ? el('button', { class: 'btn small ghost', type: 'button', onclick: () => copyText(u, 'Address copied') }, 'Copy') : null));
        }
      }
      if (t.cooldown_until && t.state === 'rate_limited') {
        const until = new Date(t.cooldown_until);
        lines.push(el('div', { class: 'warn-text', text: 'Cloudflare rate limit: next try at ' + (isNaN(until) ? t.cooldown_until : until.toLocaleTimeString()) }));
      }
      if (t.warning) lines.push(tunnelWarning(t));
      // The API keeps the last error after a recovery; it matters only
      // while the tunnel is not running.
      if (t.last_error && t.state !== 'running') lines.push(el('div', { class: 'tunnel-error mono', text: t.last_error }));
      return el('article', { class: 'tunnel', 'data-target': t.target || 'named', 'data-state': t.state || '' },
        el('div', { class: 'tunnel-head' },
          el('span', { class: 'pill state-' + t.state, text: (t.state || '').replace('_', ' ') }),
          el('strong', { text: tunnelTitle(t) }),
          el('span', { class: 'muted mono', text: t.type === 'quick' ? t.target : t.type }),
          t.restarts ? el('span', { class: 'muted', text: plural(t.restarts, 'restart', 'restarts') }) : null,
          t.type === 'quick' && internalApp(t) ? el('span', { class: 'badge warn', title: 'This tunnel reaches the app behind the portal\'s back: anyone with its address can use it', text: 'no login' }) : null,
          actions),
        ...lines);
    });
    box.replaceChildren(...rows);
  }

  // tunnelWarning: the API warns about a tunnel to an app's internal port
  // (it skips the portal's authentication) and suggests the external one.
  function tunnelWarning(t) {
    const box = el('div', { class: 'warn-box tunnel-warning' }, el('span', { text: t.warning }));
    const suggested = typeof t.suggested_target === 'string' ? t.suggested_target : '';
    if (suggested && suggested !== t.target) {
      box.append(' ', el('button', {
        class: 'btn small', type: 'button', 'data-action': 'use-suggested',
        onclick: async () => {
          await tunnelAction('stop', t.target, 'Stopping the unauthenticated tunnel…');
          await tunnelAction('', suggested, 'Creating a tunnel to ' + suggested + '…');
        },
      }, 'Use ' + suggested + ' (with login)'));
    }
    return box;
  }

  const CUSTOM = '__custom__';

  let tunnelChoice = ''; // what the user picked in the select, kept across re-renders
  function renderTunnelSelect() {
    const sel = $('tunnel-app');
    const prev = tunnelChoice;
    const active = new Set(state.tunnels.filter((t) => t.type === 'quick' && t.state !== 'stopped').map((t) => tunnelPort(t.target)));
    const opts = state.apps.filter((a) => canTunnel(a) && !active.has(appTunnelPort(a)))
      .map((a) => el('option', { value: String(appTunnelPort(a)), text: a.name + ' (:' + appTunnelPort(a) + ')' }));
    opts.push(el('option', { value: CUSTOM, text: 'Another local port or URL…' }));
    sel.replaceChildren(...opts);
    if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
    syncTunnelForm();
  }

  function syncTunnelForm() {
    const custom = $('tunnel-app').value === CUSTOM;
    $('tunnel-custom').hidden = !custom;
  }

  function setFormMsg(text, kind, extra) {
    const box = $('tunnel-form-msg');
    if (!text) { box.hidden = true; box.replaceChildren(); return; }
    box.className = 'form-msg ' + (kind || 'error');
    box.replaceChildren(el('span', { text: text }), ...(extra || []));
    box.hidden = false;
  }

  // submitTunnelForm creates the tunnel the form names; an error (the
  // client's or the API's own) is shown under the form, not in a toast.
  async function submitTunnelForm() {
    const v = $('tunnel-app').value;
    let target;
    if (v === CUSTOM) {
      const r = parseTunnelInput($('tunnel-custom').value, state.apps);
      if (r.error) { setFormMsg(r.error); $('tunnel-custom').focus(); return; }
      target = r.target;
    } else {
      const app = state.apps.find((a) => canTunnel(a) && appTunnelPort(a) === Number(v));
      if (!app) { setFormMsg('Choose an application or another port'); return; }
      target = tunnelTarget(app);
    }
    setFormMsg('');
    $('tunnel-create').disabled = true;
    try {
      const body = await postJSON('api/tunnels', { target: target });
      const t = body && body.tunnel;
      if (body && typeof body.warning === 'string' && body.warning) {
        showCreateWarning(Object.assign({}, t || {}, { target: (t && t.target) || target, warning: body.warning, suggested_target: body.suggested_target }));
      } else if (t && t.warning) {
        showCreateWarning(t);
      } else {
        $('tunnel-custom').value = '';
        setFormMsg('Tunnel to ' + ((t && t.target) || target) + ' created: its address follows in a moment.', 'ok');
      }
      polls.tunnels.now();
    } catch (e) {
      // A create that failed after listing the tunnel (cloudflared missing)
      // has its row, with the error and Retry: say it once, there.
      const failed = e.body && e.body.tunnel && e.body.tunnel.state === 'failed';
      setFormMsg(failed ? 'The tunnel did not start: its row below says why.' : e.message);
      if (failed) polls.tunnels.now();
    } finally {
      $('tunnel-create').disabled = false;
    }
  }

  function showCreateWarning(t) {
    const w = tunnelWarning(t);
    setFormMsg('', '');
    const box = $('tunnel-form-msg');
    box.className = 'form-msg warn';
    box.replaceChildren(...w.childNodes);
    box.hidden = false;
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
    setFormMsg(''); // the form's last answer is stale now
    try {
      const body = await postJSON('api/tunnels' + (action ? '/' + action : ''), { target: target });
      if (body && typeof body.warning === 'string' && body.warning) toast(body.warning, 'error');
    } catch (e) {
      toast('Tunnel: ' + e.message, 'error');
    }
    polls.tunnels.now();
  }

  async function pollTunnels() {
    try {
      const body = await getJSON('api/tunnels');
      state.tunnels = body && Array.isArray(body.tunnels) ? body.tunnels.filter((t) => t && typeof t === 'object') : [];
      state.tunnelsError = '';
    } catch (e) {
      state.tunnelsError = 'Tunnels unavailable: ' + e.message;
    }
    renderTunnels();
    renderApps();
    return state.tunnels.some((t) => t.state === 'starting' || t.state === 'restarting');
  }

  // ------------------------------------------------------------- Tools & Help

  // ICONS: the fixed set /api/links may name, drawn here as strokes on a
  // 24×24 grid (no icon font, no request). Each is a list of shapes:
  // a string is a path, an array is a circle [cx, cy, r].
  const ICONS = {
    link: ['M9.5 14.5l5-5', 'M11 7l1.6-1.6a3.9 3.9 0 0 1 5.5 5.5L16.5 12.5', 'M13 17l-1.6 1.6a3.9 3.9 0 0 1-5.5-5.5L7.5 11.5'],
    book: ['M5 5a2 2 0 0 1 2-2h12v15H7a2 2 0 0 0-2 2z', 'M5 20a2 2 0 0 0 2 2h12v-4', 'M9 7h6'],
    code: ['M8 7l-5 5 5 5', 'M16 7l5 5-5 5', 'M13.5 4l-3 16'],
    terminal: ['M3 5h18v14H3z', 'M7 10l3 2.5L7 15', 'M12.5 15H17'],
    cube: ['M12 3l8 4.5v9L12 21l-8-4.5v-9z', 'M4 7.5l8 4.5 8-4.5', 'M12 12v9'],
    globe: [[12, 12, 9], 'M3 12h18', 'M12 3c2.8 2.5 4 5.5 4 9s-1.2 6.5-4 9', 'M12 3c-2.8 2.5-4 5.5-4 9s1.2 6.5 4 9'],
    tool: ['M14.5 4a5 5 0 0 0 5.5 6.8L11 19.8a2.3 2.3 0 0 1-3.3-3.3l9-9A5 5 0 0 1 14.5 4z', 'M14.5 4l-1 3.5 3 3 3.5-1'],
    tag: ['M3 3h8.5L21 12.5 12.5 21 3 11.5z', [7.5, 7.5, 1.6]],
    grid: ['M4 4h6.5v6.5H4z', 'M13.5 4H20v6.5h-6.5z', 'M4 13.5h6.5V20H4z', 'M13.5 13.5H20V20h-6.5z'],
    gpu: ['M2.5 6.5h17v10h-17z', [8, 11.5, 2.5], [14.5, 11.5, 2.5], 'M5 16.5v3', 'M9 16.5v3', 'M13 16.5v3', 'M19.5 9h2'],
    rocket: ['M12 2.5c3.5 2.5 5 6.5 3.5 12h-7C7 9 8.5 5 12 2.5z', [12, 9, 1.7], 'M8.5 14.5L5.5 17l.5-4.5 2.2-2', 'M15.5 14.5l3 2.5-.5-4.5-2.2-2', 'M10.5 17.5L12 21l1.5-3.5'],
    image: ['M3 4.5h18v15H3z', [8.5, 9.5, 1.7], 'M21 15.5l-5-5-9.5 9'],
    download: ['M12 3.5v11', 'M7 10l5 5 5-5', 'M4.5 19.5h15'],
    star: ['M12 3l2.7 5.6 6.1.8-4.4 4.3 1 6.1L12 16.9l-5.4 2.9 1-6.1-4.4-4.3 6.1-.8z'],
    zap: ['M13.5 2.5L4.5 14H11l-1 7.5 9-11.5h-6.5z'],
    database: ['M4 6c0-1.7 3.6-3 8-3s8 1.3 8 3-3.6 3-8 3-8-1.3-8-3z', 'M4 6v12c0 1.7 3.6 3 8 3s8-1.3 8-3V6', 'M4 12c0 1.7 3.6 3 8 3s8-1.3 8-3'],
  };

  function icon(name) {
    const shapes = ICONS[name] || ICONS.link;
    const svg = svgEl('svg', { viewBox: '0 0 24 24', class: 'icon', 'aria-hidden': 'true', 'data-icon': ICONS[name] ? name : 'link' });
    for (const s of shapes) {
      svg.append(Array.isArray(s) ? svgEl('circle', { cx: s[0], cy: s[1], r: s[2] }) : svgEl('path', { d: s }));
    }
    return svg;
  }

  function helpCard(c) {
    const url = safeHTTPURL(c.url);
    const links = Array.isArray(c.links) ? c.links.filter((l) => l && typeof l.label === 'string' && safeHTTPURL(l.url)) : [];
    const snippet = typeof c.snippet === 'string' && c.snippet ? c.snippet : '';
    return el('article', { class: 'help-card', 'data-source': String(c.source || ''), 'data-id': c.id || null },
      el('div', { class: 'help-head' },
        el('span', { class: 'help-icon' }, icon(c.icon)),
        el('h3', { text: String(c.label || '') })),
      c.description ? el('p', { class: 'help-desc', text: String(c.description) }) : null,
      snippet ? el('div', { class: 'codebox' },
        el('pre', { class: 'mono', text: snippet }),
        el('button', { class: 'btn small ghost', type: 'button', onclick: () => copyText(snippet) }, 'Copy')) : null,
      (url || links.length) ? el('div', { class: 'actions' },
        url ? el('a', { class: 'btn primary', href: url, target: '_blank', rel: 'noopener noreferrer', title: url }, String(c.button_text || 'Open') + ' ↗') : null,
        ...links.map((l) => el('a', { class: 'btn small ghost', href: safeHTTPURL(l.url), target: '_blank', rel: 'noopener noreferrer', title: l.url }, l.label + ' ↗'))) : null);
  }

  let linksKey = '';
  async function loadLinks() {
    let body;
    try {
      body = await getJSON('api/links');
    } catch (e) {
      linksKey = '';
      $('help-list').replaceChildren(el('div', { class: 'empty error', text: e.status === 404 ? 'This portal serves no Tools & Help links.' : 'Tools & Help unavailable: ' + e.message }));
      return;
    }
    const key = JSON.stringify(body);
    if (key === linksKey) return;
    linksKey = key;
    const cards = body && Array.isArray(body.cards) ? body.cards.filter((c) => c && typeof c === 'object') : [];
    const warnings = body && Array.isArray(body.warnings) ? body.warnings.filter((w) => typeof w === 'string') : [];
    const wbox = $('help-warnings');
    wbox.hidden = !warnings.length;
    wbox.replaceChildren(...(warnings.length ? [
      el('strong', { text: plural(warnings.length, 'entry', 'entries') + ' of the links file skipped' }),
      el('ul', null, ...warnings.map((w) => el('li', { class: 'mono', text: w })))] : []));
    $('help-meta').textContent = cards.length ? plural(cards.length, 'card', 'cards') : '';
    $('help-list').replaceChildren(...(cards.length ? cards.map(helpCard) : [el('div', { class: 'empty', text: 'No links.' })]));
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
  // 24-bit colour: exactly six lowercase hex digits, nothing else.
  const CLASS_T = /^term-(fg|bg)t-([0-9a-f]{6})$/;

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

  function hexRGB(hex) {
    const n = parseInt(hex, 16);
    return 'rgb(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ')';
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
          } else if ((x = CLASS_T.exec(c))) {
            if (x[1] === 'fg') span.style.color = hexRGB(x[2]);
            else span.style.backgroundColor = hexRGB(x[2]);
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

  // logLineText is the plain text of one HTML line, as the page shows it.
  function logLineText(html) {
    const d = document.createElement('div');
    parseLogLine(typeof html === 'string' ? html : '', d);
    return d.textContent;
  }

  // linesAsText joins lines for the clipboard; with several files each
  // line names its file, as the view does.
  function linesAsText(lines, withFile) {
    return lines.map((l) => (withFile ? l.file + ' │ ' : '') + l.text.replace(/\u00a0/g, ' ')).join('\n') + (lines.length ? '\n' : '');
  }

  // findAll lists where needle occurs in hay, ignoring case where lower
  // case keeps the length (so offsets stay valid), else matching exactly.
  function findAll(hay, needle) {
    const out = [];
    if (!needle) return out;
    let h = hay, n = needle;
    const hl = hay.toLowerCase(), nl = needle.toLowerCase();
    if (hl.length === hay.length && nl.length === needle.length) { h = hl; n = nl; }
    for (let i = h.indexOf(n); i >= 0; i = h.indexOf(n, i + n.length)) out.push(i);
    return out;
  }

  // highlight wraps each occurrence of needle in the text of line (the
  // file tag excluded) in <mark>, across colour spans, and returns the
  // number marked. Each mark carries its occurrence's number in the line.
  function highlight(line, needle) {
    const nodes = [];
    let text = '';
    const walk = document.createTreeWalker(line, NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => (n.parentNode.closest && n.parentNode.closest('.lf') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      nodes.push({ node: n, start: text.length });
      text += n.data;
    }
    const hits = findAll(text, needle);
    for (let k = hits.length - 1; k >= 0; k--) {
      const a = hits[k], b = a + needle.length;
      for (let j = nodes.length - 1; j >= 0; j--) {
        const { node, start } = nodes[j];
        const end = start + node.data.length;
        if (end <= a || start >= b) continue;
        const r = document.createRange();
        r.setStart(node, Math.max(a, start) - start);
        r.setEnd(node, Math.min(b, end) - start);
        const mark = document.createElement('mark');
        mark.dataset.k = String(k);
        r.surroundContents(mark);
      }
    }
    return hits.length;
  }

  const MAX_DOM_LINES = 2000;  // lines kept in the page
  const MAX_MODEL_LINES = 6000; // lines kept in memory across files
  const REOPEN_KEEP = 64;      // final lines per file an update may reopen
  // While paused, events are held to replay on Resume, up to these bounds;
  // beyond, Resume starts the stream again instead (its snapshots bring
  // every file's recent lines). Lines past MAX_MODEL_LINES would be dropped
  // on replay anyway.
  const MAX_PAUSED_EVENTS = 20000;
  const MAX_PAUSED_LINES = MAX_MODEL_LINES;

  // The model: entries in arrival order, each {file, html, live, dead, el,
  // text}; per file, its last final entries (an update may reopen a few)
  // and its live block (the unfinished line or the redrawn window). The DOM
  // shows the last MAX_DOM_LINES entries that pass the file filter, or,
  // while a search result further back is shown ("detached"), a window
  // around it.
  const logs = {
    entries: [],
    dead: 0,
    files: new Map(), // name → {finals: [], live: []}
    known: new Map(), // name → size (chips)
    filter: '',
    stick: true,
    unseen: 0,
    detached: false,
    paused: false,
    unfollowed: new Set(), // files the portal stopped following (too many files)
    queue: [], // events received while paused
    queuedLines: 0,
    overflow: false,
  };

  const search = { q: '', list: [], total: 0, curEntry: null, curK: 0, cur: -1 };

  const fileHue = (name) => {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  };

  function entryText(e) {
    if (e.text === undefined) e.text = logLineText(e.html);
    return e.text;
  }

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
    if (e.text === undefined) e.text = d.textContent.slice(e.file.length);
    if (search.q && findAll(e.text, search.q).length) highlight(d, search.q);
    e.el = d;
    return d;
  }

  const visible = (e) => !logs.filter || e.file === logs.filter;

  let filesTimer = 0;
  function fileState(name) {
    let st = logs.files.get(name);
    if (!st) {
      st = { finals: [], live: [] };
      logs.files.set(name, st);
    }
    if (!logs.known.has(name)) {
      logs.known.set(name, null);
      renderChips();
      // A file created after the list was read: read it again for its size.
      clearTimeout(filesTimer);
      filesTimer = setTimeout(loadLogFiles, 1000);
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

  // add places new entries at the end (the stream sends events in arrival
  // order across files, snapshots included, so "All files" interleaves
  // them as they arrived) or before anchor (an entry of the same file still
  // alive: a progress bar redrawn in place), in the model and, if shown, in
  // the DOM.
  function add(list, anchor) {
    if (!list.length) return;
    const idx = anchor ? logs.entries.lastIndexOf(anchor) : -1;
    if (idx >= 0) logs.entries.splice(idx, 0, ...list);
    else { for (const e of list) logs.entries.push(e); }
    const shown = list.filter(visible);
    if (!shown.length) return;
    if (logs.detached) { logs.unseen += shown.length; return; }
    const els = shown.map(entryEl);
    if (idx >= 0 && anchor.el && anchor.el.parentNode === logView) anchor.el.before(...els);
    else logView.append(...els);
    logs.unseen += shown.length;
  }

  const mk = (file, html, live) => ({ file: file, html: typeof html === 'string' ? html : '', live: live, dead: false, el: null, text: undefined });

  // onSnapshot forgets a file. The stream sends its lines with it (older
  // portals) or as the appends that follow, merged across files in arrival
  // order, and its live block as an update.
  function onSnapshot(ev) {
    killFile(ev.file);
    const st = fileState(ev.file);
    logs.unfollowed.delete(ev.file);
    const finals = (Array.isArray(ev.lines) ? ev.lines : []).map((h) => mk(ev.file, h, false));
    const live = (Array.isArray(ev.live) ? ev.live : []).map((h) => mk(ev.file, h, true));
    add(finals.concat(live));
    st.finals = finals.slice(-REOPEN_KEEP);
    st.live = live;
  }

  function onAppend(ev) {
    const st = fileState(ev.file);
    kill(st.live);
    st.live = [];
    const finals = (Array.isArray(ev.lines) ? ev.lines : []).map((h) => mk(ev.file, h, false));
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
      case 'unfollowed': // past max_files: its lines stay, nothing new comes
        if (ev.file) { logs.unfollowed.add(ev.file); renderChips(); }
        break;
      case 'lagged':
        setLogState('resyncing', 'warn', 'The log stream fell behind; the view is being refreshed');
        break;
      default: // ping and future events
    }
  }

  // afterBatch bounds the DOM and the model, refreshes the search, then
  // follows the end.
  function afterBatch() {
    const empty = logView.querySelector('.log-empty');
    if (empty && logView.querySelector('.ln')) empty.remove();
    if (!logs.detached) {
      const excess = logView.childElementCount - MAX_DOM_LINES;
      if (excess > 0) {
        const r = document.createRange();
        r.setStartBefore(logView.firstElementChild);
        r.setEndAfter(logView.children[excess - 1]);
        r.deleteContents();
      }
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
    if (search.q) updateSearch();
    if (logs.stick && !logs.detached) {
      logView.scrollTop = logView.scrollHeight;
      logs.unseen = 0;
    }
    const jump = $('log-jump');
    jump.hidden = (logs.stick && !logs.detached) || (!logs.detached && logs.unseen === 0);
    if (!jump.hidden) jump.textContent = logs.unseen ? '↓ ' + logs.unseen + ' new' : '↓ Latest';
  }

  // rebuildLogView shows the last MAX_DOM_LINES lines of the filter and
  // follows the end (keepScroll: unless the user had scrolled up).
  function rebuildLogView(keepScroll) {
    const shown = [];
    for (let i = logs.entries.length - 1; i >= 0 && shown.length < MAX_DOM_LINES; i--) {
      const e = logs.entries[i];
      if (!e.dead && visible(e)) shown.push(e);
    }
    shown.reverse();
    logView.replaceChildren(...shown.map(entryEl));
    logView.classList.toggle('single', !!logs.filter);
    if (!shown.length) logView.append(el('div', { class: 'log-empty', text: logs.filter ? 'No lines in ' + logs.filter + ' yet.' : 'No log lines yet.' }));
    logs.detached = false;
    if (!keepScroll) logs.stick = true;
    logs.unseen = 0;
    afterBatch();
  }

  // showAround shows a window of lines around e (a search result older
  // than the lines on screen); new lines are counted until "↓" returns to
  // the end.
  function showAround(e) {
    const all = logs.entries.filter((x) => !x.dead && visible(x));
    const i = all.indexOf(e);
    if (i < 0) return;
    const from = Math.max(0, i - MAX_DOM_LINES / 2);
    const to = Math.min(all.length, from + MAX_DOM_LINES);
    logView.replaceChildren(...all.slice(from, to).map(entryEl));
    logs.detached = to < all.length;
    logs.stick = false;
    logs.unseen = 0;
  }

  function setFilter(name) {
    logs.filter = name;
    const dl = $('logs-download');
    if (name) {
      dl.href = 'api/logs/download?file=' + encodeURIComponent(name);
      dl.textContent = 'Download ' + name;
      dl.title = 'This log file';
    } else {
      dl.href = 'api/logs/download';
      dl.textContent = 'Download';
      dl.title = 'The portal\'s log files as one archive';
    }
    search.curEntry = null;
    renderChips();
    rebuildLogView();
  }

  function renderChips() {
    const box = $('log-files');
    const names = [...logs.known.keys()].sort();
    if (logs.filter && !logs.known.has(logs.filter)) names.push(logs.filter);
    const chip = (name, label, size) => el('button', {
      class: 'chip' + (logs.filter === name ? ' active' : '') + (logs.unfollowed.has(name) ? ' unfollowed' : ''), type: 'button', role: 'tab',
      title: logs.unfollowed.has(name) ? 'Not followed now (the portal follows the most recently written files): new lines show once it is written to again' : null,
      'aria-selected': String(logs.filter === name), 'data-file': name,
      onclick: () => { if (logs.filter !== name) setFilter(name); },
    }, label, size !== null && size !== undefined ? el('span', { class: 'chip-size', text: formatBytes(size) }) : null);
    box.replaceChildren(chip('', 'All files', null), ...names.map((n) => chip(n, n, logs.known.get(n))));
  }

  // showLog opens the log view on one file (a program's "Show log").
  function showLog(file) {
    goTab('logs');
    if (logs.filter !== file) setFilter(file);
  }

  async function loadLogFiles() {
    try {
      const body = await getJSON('api/logs/files');
      const files = body && Array.isArray(body.files) ? body.files : [];
      const now = new Set(files.map((f) => f.name));
      for (const f of files) {
        logs.known.set(f.name, f.size);
        if (f.followed === false) logs.unfollowed.add(f.name); else logs.unfollowed.delete(f.name);
      }
      for (const n of [...logs.known.keys()]) {
        if (!now.has(n)) { logs.known.delete(n); killFile(n); }
      }
      renderChips();
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

  // ---- search

  // updateSearch lists the matches over the loaded lines of the selected
  // files (not only those on screen) and keeps the current one.
  function updateSearch() {
    const list = [];
    let total = 0;
    if (search.q) {
      for (const e of logs.entries) {
        if (e.dead || !visible(e)) continue;
        const n = findAll(entryText(e), search.q).length;
        if (n) { list.push({ e: e, n: n, before: total }); total += n; }
      }
    }
    search.list = list;
    search.total = total;
    search.cur = -1;
    if (search.curEntry) {
      const hit = list.find((x) => x.e === search.curEntry);
      if (hit && search.curK < hit.n) search.cur = hit.before + search.curK;
      else search.curEntry = null;
    }
    renderHits();
  }

  function renderHits() {
    const hits = $('log-hits');
    if (!search.q) { hits.textContent = ''; hits.className = 'hits'; return; }
    hits.textContent = search.total ? (search.cur >= 0 ? search.cur + 1 : '–') + ' / ' + search.total : 'no match';
    hits.className = 'hits' + (search.total ? '' : ' none');
  }

  function setSearch(q) {
    if (q === search.q) return;
    search.q = q;
    search.curEntry = null;
    // Lines are drawn again with (or without) their marks.
    for (const e of logs.entries) e.el = null;
    const wasDetached = logs.detached;
    rebuildLogView(!wasDetached);
    updateSearch();
  }

  // stepSearch moves to the next (dir 1) or previous (-1) match, bringing
  // its line into view even when it is older than the lines on screen.
  function stepSearch(dir) {
    if (!search.total) return;
    let i = search.cur < 0 ? (dir > 0 ? 0 : search.total - 1) : (search.cur + dir + search.total) % search.total;
    if (search.cur < 0 && dir < 0) i = search.total - 1;
    let lo = 0, hi = search.list.length - 1;
    while (lo < hi) { // the entry holding occurrence i
      const mid = (lo + hi + 1) >> 1;
      if (search.list[mid].before <= i) lo = mid; else hi = mid - 1;
    }
    const hit = search.list[lo];
    search.curEntry = hit.e;
    search.curK = i - hit.before;
    search.cur = i;
    if (!hit.e.el || !hit.e.el.isConnected) showAround(hit.e);
    for (const m of logView.querySelectorAll('mark.current')) m.classList.remove('current');
    const line = entryEl(hit.e);
    const marks = line.querySelectorAll('mark[data-k="' + search.curK + '"]');
    for (const m of marks) m.classList.add('current');
    logs.stick = false;
    (marks[0] || line).scrollIntoView({ block: 'center' });
    renderHits();
    afterBatch();
  }

  // ---- pause, copy

  function setPaused(p) {
    logs.paused = p;
    const b = $('log-pause');
    b.setAttribute('aria-pressed', String(p));
    b.classList.toggle('active', p);
    if (p) {
      renderPause();
      return;
    }
    b.textContent = 'Pause';
    const q = logs.queue;
    const overflow = logs.overflow;
    logs.queue = [];
    logs.queuedLines = 0;
    logs.overflow = false;
    if (overflow) {
      // Too much arrived to replay: forget what the page holds and start
      // the stream again; its snapshots bring every file's recent lines.
      kill(logs.entries);
      logs.entries = [];
      logs.dead = 0;
      logs.files.clear();
      rebuildLogView();
      restartLogStream();
      return;
    }
    for (const ev of q) handleEvent(ev);
    afterBatch();
  }

  function renderPause() {
    $('log-pause').textContent = logs.queuedLines ? 'Resume · ' + logs.queuedLines + ' new' : 'Resume';
  }

  function copyVisibleLines() {
    const lines = logs.entries.filter((e) => !e.dead && e.el && e.el.isConnected).map((e) => ({ file: e.file, text: entryText(e) }));
    if (!lines.length) { toast('No lines to copy'); return; }
    copyText(linesAsText(lines, !logs.filter), plural(lines.length, 'line', 'lines') + ' copied');
  }

  // ---- transport

  let logView = null;
  let wsAttempt = 0;
  let wsRefused = 0; // WebSocket handshakes in a row that never opened
  let wsTimer = 0;
  let logConn = null; // the open WebSocket or EventSource
  let useSSE = false;

  function onLogMessage(data) {
    if (typeof data !== 'string') return;
    const events = [];
    // One message may carry several events, one JSON object per line.
    for (const line of data.split('\n')) {
      if (!line) continue;
      try { events.push(JSON.parse(line)); } catch (e) { /* skip */ }
    }
    if (logs.paused) {
      for (const ev of events) {
        if (ev && ev.type === 'append' && Array.isArray(ev.lines)) logs.queuedLines += ev.lines.length;
        if (!logs.overflow) logs.queue.push(ev);
      }
      if (logs.queue.length > MAX_PAUSED_EVENTS || logs.queuedLines > MAX_PAUSED_LINES) { logs.queue = []; logs.overflow = true; }
      renderPause();
      return;
    }
    for (const ev of events) handleEvent(ev);
    if ($('logs-state').textContent === 'resyncing') setLogState('live', 'ok', logConn && logConn.url && logConn.url.startsWith('ws') ? 'Streaming over a WebSocket' : 'Streaming over Server-Sent Events');
    afterBatch();
  }

  // connectLogs opens the WebSocket (it passes Cloudflare tunnels, which
  // buffer Server-Sent Events). Where the WebSocket is refused twice in a
  // row before it ever opens (a proxy that drops upgrades, or one that
  // rewrites Host so the server's origin check fails) the page falls back
  // to the same events over Server-Sent Events.
  function connectLogs() {
    clearTimeout(wsTimer);
    if ((useSSE || wsRefused >= 2) && window.EventSource) {
      useSSE = true;
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
    logConn = ws;
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
      if (logConn !== ws) return; // replaced on purpose
      if (!opened) wsRefused++;
      else if (Date.now() - opened > 5000) wsAttempt = 0;
      scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function connectSSE() {
    const es = new EventSource('api/logs/stream?tail=400');
    logConn = es;
    setLogState('connecting…', 'warn');
    es.onopen = () => {
      setLogState('live', 'ok', 'Streaming over Server-Sent Events (the WebSocket was refused)');
      loadLogFiles();
    };
    es.onmessage = (msg) => onLogMessage(msg.data);
    es.onerror = () => {
      if (logConn !== es) return;
      // EventSource retries by itself while CONNECTING; CLOSED means the
      // server answered with an error: start over, WebSocket first.
      if (es.readyState === EventSource.CLOSED) {
        wsRefused = 0;
        useSSE = false;
        scheduleReconnect();
      } else {
        setLogState('reconnecting…', 'bad', 'The log stream closed; the browser retries');
      }
    };
  }

  // restartLogStream drops the stream and opens a new one: its snapshots
  // replace what the page holds.
  function restartLogStream() {
    const c = logConn;
    logConn = null;
    if (c) c.close();
    connectLogs();
  }

  function scheduleReconnect() {
    logConn = null;
    const delay = wsRefused === 1 ? 200 : Math.min(15000, 500 * Math.pow(2, wsAttempt)) * (0.75 + Math.random() * 0.5);
    wsAttempt = Math.min(wsAttempt + 1, 10);
    setLogState('reconnecting in ' + Math.ceil(delay / 1000) + ' s', 'bad', 'The log stream closed; retrying with backoff');
    wsTimer = setTimeout(connectLogs, delay);
  }

  // logsShown: the view was hidden while lines arrived; show the end.
  function logsShown() {
    if (logs.stick && !logs.detached) logView.scrollTop = logView.scrollHeight;
  }

  function initLogs() {
    logView = $('log');
    logView.addEventListener('scroll', () => {
      if (logView.clientHeight === 0) return; // hidden tab
      const atEnd = logView.scrollTop + logView.clientHeight >= logView.scrollHeight - 24;
      logs.stick = atEnd && !logs.detached;
      if (logs.stick) { logs.unseen = 0; $('log-jump').hidden = true; }
    }, { passive: true });
    $('log-jump').addEventListener('click', () => {
      logs.stick = true;
      if (logs.detached) rebuildLogView(); else afterBatch();
    });
    $('log-wrap').addEventListener('change', (e) => logView.classList.toggle('wrap', e.target.checked));
    $('log-pause').addEventListener('click', () => setPaused(!logs.paused));
    $('log-copy').addEventListener('click', copyVisibleLines);
    let qTimer = 0;
    $('log-q').addEventListener('input', (e) => {
      clearTimeout(qTimer);
      const v = e.target.value;
      qTimer = setTimeout(() => setSearch(v), 120);
    });
    $('log-q').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        clearTimeout(qTimer);
        setSearch(e.target.value);
        stepSearch(e.shiftKey ? -1 : 1);
      } else if (e.key === 'Escape') {
        e.target.value = '';
        setSearch('');
      }
    });
    $('log-search').addEventListener('submit', (e) => e.preventDefault());
    $('log-next').addEventListener('click', () => { setSearch($('log-q').value); stepSearch(1); });
    $('log-prev').addEventListener('click', () => { setSearch($('log-q').value); stepSearch(-1); });
    renderChips();
    rebuildLogView();
    connectLogs();
  }

  // ----------------------------------------------------------- provisioning

  // The provisioner's live progress (/api/provisioning, package provstatus):
  // a bar per download, the phases with their timing, the running command's
  // last lines, and how the run ended.

  // A run whose document has not changed for this long while it says
  // "running" has probably lost its provisioner (killed, rebooted).
  const PROV_STALE_S = 120;

  function secondsBetween(a, b) {
    const x = Date.parse(a), y = b ? Date.parse(b) : Date.now();
    return isNaN(x) || isNaN(y) ? null : Math.max(0, (y - x) / 1000);
  }

  // provisioningEnd says how a run stands, for the banner: null before any
  // run. kind: ok (done), bad (failed), warn (stopped or silent), quiet.
  function provisioningEnd(s, nowMs) {
    if (!s || typeof s !== 'object' || !s.state || s.state === 'none') return null;
    const took = secondsBetween(s.started_at, s.finished_at);
    const phase = typeof s.failed_phase === 'string' && s.failed_phase ? s.failed_phase : '';
    const err = typeof s.error === 'string' ? s.error : '';
    const dry = s.dry_run ? ' (dry run)' : '';
    switch (s.state) {
      case 'done':
        return { kind: 'ok', title: 'Provisioning done' + dry, text: took !== null ? 'Finished in ' + (formatDuration(took) || '0 s') + '.' : '' };
      case 'failed':
        return { kind: 'bad', title: 'Provisioning failed' + (phase ? ' at phase ' + phase : ''), text: err || 'No error was recorded.' };
      case 'stopped':
        return { kind: 'warn', title: 'Provisioning stopped' + (phase ? ' at phase ' + phase : ''), text: err || 'The run was stopped before it finished.' };
      case 'running': {
        const quiet = secondsBetween(s.updated_at, nowMs ? new Date(nowMs).toISOString() : null);
        if (quiet !== null && quiet > PROV_STALE_S) {
          return { kind: 'warn', title: 'Provisioning has not reported for ' + formatDuration(quiet), text: 'The provisioner may have stopped; see provisioning.log.' };
        }
        return { kind: 'quiet', title: 'Provisioning is running' + dry, text: took !== null ? 'For ' + (formatDuration(took) || '0 s') + '.' : '' };
      }
    }
    return { kind: 'quiet', title: 'Provisioning: ' + s.state, text: err };
  }

  // downloadFigures is what a download's row says: percent (null when the
  // size is unknown) and "1.2 GiB / 4.0 GiB · 35 MiB/s · 1 m 20 s left".
  function downloadFigures(d) {
    const bytes = isNum(d.bytes) ? d.bytes : 0, total = isNum(d.total) && d.total > 0 ? d.total : 0;
    const p = total ? Math.min(100, (100 * bytes) / total) : (d.state === 'done' ? 100 : null);
    const parts = [total ? formatBytes(bytes) + ' / ' + formatBytes(total) : formatBytes(bytes)];
    if (d.state === 'running') {
      if (isNum(d.rate_bps) && d.rate_bps > 0) parts.push(formatBytes(Math.round(d.rate_bps)) + '/s');
      if (isNum(d.eta_seconds) && d.eta_seconds >= 0 && d.rate_bps > 0) parts.push((formatDuration(d.eta_seconds) || '0 s') + ' left');
    }
    if (d.resumed) parts.push('resumed');
    return { percent: p, text: parts.join(' · ') };
  }

  function downloadRow(d) {
    const f = downloadFigures(d);
    const name = String(d.dest || d.source || '').replace(/\/+$/, '').split('/').pop() || String(d.source || '');
    const fill = el('span', { class: 'fill' + (d.state === 'failed' ? ' hot' : d.state === 'done' ? ' done' : '') });
    if (f.percent !== null) fill.style.width = f.percent.toFixed(1) + '%';
    const bar = el('div', { class: 'bar' + (f.percent === null ? ' unknown' : ''), role: 'progressbar', 'aria-label': name,
      'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': f.percent === null ? null : Math.round(f.percent) }, fill);
    return el('li', { class: 'prov-dl state-' + String(d.state || ''), 'data-id': String(d.id || '') },
      el('div', { class: 'meter-top' },
        el('span', { class: 'prov-dl-name', title: String(d.source || ''), text: name }),
        el('span', { class: 'badge state-' + String(d.state || ''), text: String(d.state || '') })),
      bar,
      el('div', { class: 'prov-dl-figs meta', text: f.text }),
      el('div', { class: 'prov-dl-src meta mono', text: String(d.kind || '') + ' · ' + String(d.source || '') + (d.dest ? ' → ' + d.dest : '') }),
      d.error ? el('div', { class: 'prov-dl-err', text: String(d.error) }) : null);
  }

  function phaseRow(p) {
    const took = p.started_at ? secondsBetween(p.started_at, p.finished_at) : null;
    const timing = took === null ? '' : (formatDuration(took) || '0 s') + (p.finished_at ? '' : ' so far');
    return el('li', { class: 'prov-phase state-' + String(p.state || ''), 'data-phase': String(p.name || '') },
      el('span', { class: 'prov-phase-name', text: String(p.name || '') }),
      el('span', { class: 'badge state-' + String(p.state || ''), text: String(p.state || '') }),
      el('span', { class: 'meta', text: [isNum(p.items) && p.items ? plural(p.items, 'item', 'items') : '', timing].filter(Boolean).join(' · ') }),
      p.error ? el('div', { class: 'prov-dl-err', text: String(p.error) }) : null);
  }

  let provMissing = false; // an older portal without /api/provisioning
  async function loadProvisioning() {
    if (provMissing) return false;
    let s;
    try {
      s = await getJSON('api/provisioning');
    } catch (e) {
      provMissing = e.status === 404;
      $('prov-downloads').replaceChildren(el('div', { class: 'empty error', text: 'Could not read the provisioning progress: ' + e.message }));
      return false;
    }
    renderProvisioning(s);
    return s && s.state === 'running';
  }

  function renderProvisioning(s) {
    const end = provisioningEnd(s, Date.now());
    const box = $('prov-end');
    const meta = $('prov-meta');
    if (!end) {
      box.hidden = true;
      meta.textContent = '';
      $('prov-downloads').replaceChildren(el('div', { class: 'empty', text: 'No provisioning run on this instance (no PROVISIONING_MANIFEST, /provisioning.yaml or provisioner run yet).' }));
      $('prov-phases').replaceChildren();
      $('prov-command').replaceChildren(el('div', { class: 'empty', text: 'No command running.' }));
      return;
    }
    box.className = 'banner ' + end.kind;
    box.dataset.state = s.state;
    box.replaceChildren(el('strong', { text: end.title }), end.text ? el('span', { class: 'banner-msg', text: end.text }) : null);
    box.hidden = false;
    const started = s.started_at ? new Date(s.started_at) : null;
    meta.textContent = [s.source ? String(s.source) : '', started && !isNaN(started) ? 'started ' + started.toLocaleString() : ''].filter(Boolean).join(' · ');

    const dls = Array.isArray(s.downloads) ? s.downloads : [];
    $('prov-downloads').replaceChildren(dls.length
      ? el('ul', { class: 'prov-dl-list' }, ...dls.map(downloadRow))
      : el('div', { class: 'empty', text: 'No downloads in this run.' }));
    const phases = Array.isArray(s.phases) ? s.phases : [];
    $('prov-phases').replaceChildren(...phases.map(phaseRow));

    const c = s.command && typeof s.command === 'object' ? s.command : null;
    if (!c) {
      $('prov-command').replaceChildren(el('div', { class: 'empty', text: 'No command running.' }));
    } else {
      const tail = Array.isArray(c.tail) ? c.tail.map(String) : [];
      $('prov-command').replaceChildren(
        el('div', { class: 'meta', text: 'phase ' + String(c.phase || '') }),
        el('code', { class: 'prov-cmd-line', text: String(c.line || '') }),
        el('pre', { class: 'prov-tail', text: tail.join('\n') }));
    }
  }

  // ------------------------------------------------------------------ start

  function start() {
    applyTheme(storedTheme());
    $('theme').addEventListener('click', cycleTheme);
    $('tunnel-form').addEventListener('submit', (e) => {
      e.preventDefault();
      submitTunnelForm();
    });
    $('tunnel-custom').addEventListener('input', () => setFormMsg(''));
    $('tunnel-app').addEventListener('change', () => {
      tunnelChoice = $('tunnel-app').value;
      syncTunnelForm();
      setFormMsg('');
      if ($('tunnel-app').value === CUSTOM) $('tunnel-custom').focus();
    });
    renderTunnelSelect();
    renderHeader();
    loadInfo().then(() => renderApps());
    const on = (tab) => () => state.tab === tab;
    state.tab = tabFromHash(location.hash);
    // App states change while programs start: every 5 s on the overview
    // (2 s while one is starting), every 30 s otherwise (the tunnel list
    // and the Open links need them).
    polls.apps = poller(loadApps, (starting) => (state.tab !== 'overview' ? 30000 : starting ? 2000 : 5000));
    polls.metrics = poller(pollMetrics, () => (state.tab === 'overview' ? 2000 : 15000));
    polls.tunnels = poller(pollTunnels, (busy) => (busy ? 1500 : 5000));
    polls.procs = poller(loadProcs, 2000, on('processes'));
    // Provisioning: every 5 s while it runs, else every 30 s (it may be
    // rerun), on the overview only.
    polls.boot = poller(loadBoot, (running) => (running ? 5000 : 30000), on('overview'));
    polls.idle = poller(loadIdle, 10000, on('overview'));
    polls.links = poller(loadLinks, 15000, on('help'));
    // Provisioning progress, on its tab: every second while a run goes on,
    // every 3 s otherwise (a run may start at any moment).
    polls.prov = poller(loadProvisioning, (running) => (running ? 1000 : 3000), on('provisioning'));
    $('prov-log').addEventListener('click', () => showLog('provisioning.log'));
    // The file chips' sizes grow with their files: read the list again
    // every 5 s while the Logs tab is shown (they went stale, issue 21).
    polls.logFiles = poller(loadLogFiles, 5000, on('logs'));
    window.addEventListener('hashchange', () => showTab(tabFromHash(location.hash)));
    initLogs();
    showTab(state.tab, true);
    const dlg = $('ssh-dialog');
    dlg.addEventListener('click', (e) => { if (e.target === dlg) dlg.close(); }); // a click on the backdrop
  }

  // For tests and for the curious: the pure parts, callable from a console.
  window.portalDashboard = Object.freeze({
    appLinks: appLinks, accessMode: accessMode, parseLogLine: parseLogLine, renderMetrics: renderMetrics,
    secureOffer: secureOffer, needsHandoff: needsHandoff, withHandoff: withHandoff, handoffLink: handoffLink,
    sortApps: sortApps, programLog: programLog, procButtons: procButtons, formatDuration: formatDuration,
    diskFigures: diskFigures, bootNotice: bootNotice, parseTunnelInput: parseTunnelInput, logLineText: logLineText,
    linesAsText: linesAsText, findAll: findAll, highlight: highlight, icon: icon, iconNames: Object.keys(ICONS),
    provisioningEnd: provisioningEnd, downloadFigures: downloadFigures,
  });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
