# ruff: noqa: E501  (the in-page JavaScript keeps one check a line)
"""In-page accessibility checks for the audit's browser tests.

AUDIT: `page.evaluate(AUDIT)` returns a list of problems with the page (empty when it passes):
one <h1>; a specific <title>; no duplicate ids, nor references to missing ones; every control
named; errors tied to their control; images with alt; tables with (non-empty) column headers;
a main landmark and a skip link; messages in a status region; no positive tabindex, no inline
click handlers; no two buttons with the same name that do different things.

JS_ONLY_CONTROLS: the visible buttons that do nothing without JavaScript (type=button).
"""

AUDIT = r"""() => {
  const problems = [];
  const short = el => el.outerHTML.slice(0, 160).replace(/\s+/g, ' ');
  const visible = el => el.getClientRects().length > 0 || el.type === 'hidden';
  const h1s = document.querySelectorAll('h1');
  if (h1s.length !== 1) problems.push(`h1 count ${h1s.length}: ` + [...h1s].map(h => h.textContent.trim()).join(' | '));
  const title = document.title.trim();
  if (!title || /^Identity Portal( · Identity Portal)?$/.test(title)) problems.push(`title not specific: "${title}"`);
  // duplicate ids
  const seen = {};
  document.querySelectorAll('[id]').forEach(el => { seen[el.id] = (seen[el.id] || 0) + 1; });
  Object.entries(seen).filter(([, n]) => n > 1).forEach(([id, n]) => problems.push(`duplicate id "${id}" x${n}`));
  // references to ids that do not exist
  document.querySelectorAll('[aria-describedby],[aria-labelledby],[aria-controls],label[for]').forEach(el => {
    for (const attr of ['aria-describedby', 'aria-labelledby', 'aria-controls', 'for']) {
      const v = el.getAttribute(attr);
      if (!v) continue;
      if (attr === 'for' && el.tagName !== 'LABEL') continue;
      v.split(/\s+/).filter(Boolean).forEach(id => { if (!document.getElementById(id)) problems.push(`${attr}="${id}" points nowhere: ${short(el)}`); });
    }
  });
  // form controls named
  const named = el => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const lb = el.getAttribute('aria-labelledby');
    if (lb && lb.split(/\s+/).some(id => document.getElementById(id) && document.getElementById(id).textContent.trim())) return true;
    if (el.labels && [...el.labels].some(l => l.textContent.trim())) return true;
    if (el.getAttribute('title')) return true;
    return false;
  };
  document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach(el => {
    if (['submit', 'button', 'reset'].includes(el.type)) { if (!el.value && !named(el)) problems.push('unnamed input button: ' + short(el)); return; }
    if (!named(el)) problems.push('unnamed control: ' + short(el));
  });
  document.querySelectorAll('button, a[href]').forEach(el => {
    if (!el.textContent.trim() && !named(el) && !el.querySelector('img[alt]:not([alt=""])')) problems.push('unnamed button/link: ' + short(el));
  });
  // images
  document.querySelectorAll('img:not([alt])').forEach(el => problems.push('img without alt: ' + short(el)));
  document.querySelectorAll('svg:not([aria-hidden=true]):not([role=img])').forEach(el => { if (!el.closest('[aria-hidden=true]')) problems.push('svg neither hidden nor role=img: ' + short(el)); });
  document.querySelectorAll('svg[role=img]').forEach(el => { if (!named(el) && !el.querySelector('title')) problems.push('svg img unnamed: ' + short(el)); });
  // tables
  document.querySelectorAll('table').forEach(t => {
    const ths = t.querySelectorAll('th');
    if (!ths.length) problems.push('table without th: ' + short(t));
    ths.forEach(th => { if (!th.hasAttribute('scope') && !th.closest('thead')) problems.push('th without scope outside thead: ' + short(th)); });
    t.querySelectorAll('thead th').forEach(th => { if (!th.textContent.trim() && !named(th)) problems.push('empty column header: ' + short(th) + ' in ' + (t.id || t.className || t.querySelector('caption')?.textContent || '')); });
  });
  // landmarks
  if (!document.querySelector('main, [role=main]')) problems.push('no main landmark');
  if (!document.querySelector('a.skip-link[href="#main"]')) problems.push('no skip link');
  // messages region
  document.querySelectorAll('.messages').forEach(m => { if (!['status', 'alert'].includes(m.getAttribute('role'))) problems.push('messages region without role'); });
  document.querySelectorAll('.message').forEach(m => { if (!m.closest('[role=status],[role=alert]')) problems.push('message outside a status region: ' + short(m)); });
  // keyboard
  document.querySelectorAll('[tabindex]').forEach(el => { if (parseInt(el.getAttribute('tabindex'), 10) > 0) problems.push('positive tabindex: ' + short(el)); });
  document.querySelectorAll('[onclick]').forEach(el => problems.push('inline onclick: ' + short(el)));
  document.querySelectorAll('a[href^="javascript:"], a[href="#"]').forEach(el => problems.push('script/empty link: ' + short(el)));
  // errors
  document.querySelectorAll('.field-error, .errorlist').forEach(e => {
    const holder = e.closest('[id]');
    const id = holder && holder.id;
    const field = e.closest('.field');
    if (!field) return;
    const control = field.querySelector('input:not([type=hidden]), select, textarea');
    if (!control) return;
    const described = (control.getAttribute('aria-describedby') || '').split(/\s+/);
    const inLabel = control.labels && [...control.labels].some(l => l.contains(e));
    const fieldset = e.closest('fieldset');
    const fsDescribed = fieldset && (fieldset.getAttribute('aria-describedby') || '').split(/\s+/).includes(id);
    if (!(id && described.includes(id)) && !inLabel && !fsDescribed) problems.push('error not associated: ' + e.textContent.trim().slice(0, 80) + ' / control ' + short(control));
  });
  // buttons with one name doing different things
  const byName = {};
  document.querySelectorAll('button[type=submit], button:not([type]), input[type=submit]').forEach(b => {
    if (!b.form) return;
    const name = (b.getAttribute('aria-label') || b.textContent || b.value || '').trim().replace(/\s+/g, ' ');
    const target = (b.getAttribute('formaction') || b.form.action) + ' ' + (b.name ? b.name + '=' + b.value : '');
    (byName[name] = byName[name] || new Set()).add(target);
  });
  Object.entries(byName).filter(([, t]) => t.size > 1).forEach(([n, t]) => problems.push(`ambiguous button "${n}" x${t.size}: ` + [...t].slice(0, 3).map(x => x.replace(location.origin, '')).join(', ')));
  return problems;
}"""

JS_ONLY_CONTROLS = r"""() => [...document.querySelectorAll('button[type=button]')]
    .filter(el => el.getClientRects().length > 0 && !el.disabled)
    .map(el => el.outerHTML.slice(0, 140))"""
