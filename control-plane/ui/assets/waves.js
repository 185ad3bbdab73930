// A campaign's waves as bars: each wave's devices by state against the wave's size.
import { h } from './dom.js';

const PARTS = [
  ['succeeded', 'succeeded', 'ok'],
  ['assigned', 'in progress', 'busy'],
  ['failed', 'failed', 'bad'],
  // Silent past the device timeout: a failure for the thresholds, but a different fix (power, link).
  ['timed-out', 'timed out', 'late'],
  ['rolled-back', 'rolled back', 'bad2'],
  ['pending', 'pending', 'idle'],
];

export function waveBars(c) {
  return h('ol', { class: 'waves', 'aria-label': `waves of ${c.name}` }, c.waves.map((w) => {
    // Answers from control planes before the timed-out count have none: read it as 0.
    const d = { 'timed-out': 0, ...w.devices };
    const size = Math.max(1, w.cumulativeDevices - (c.waves[w.wave - 2]?.cumulativeDevices ?? 0), PARTS.reduce((n, [k]) => n + d[k], 0));
    const current = w.wave === c.currentWave && (c.status === 'running' || c.status === 'paused');
    return h('li', { class: current ? 'wave current' : 'wave', 'data-wave': w.wave, 'data-succeeded': d.succeeded, 'data-assigned': d.assigned, 'data-failed': d.failed + d['timed-out'] + d['rolled-back'], 'data-timed-out': d['timed-out'], 'data-pending': d.pending },
      h('span', { class: 'wave-name' }, `Wave ${w.wave}`, h('span', { class: 'muted' }, ` ${w.target} · ${w.cumulativeDevices} cumulative`)),
      h('div', { class: 'bar', role: 'img', 'aria-label': PARTS.map(([k, t]) => `${d[k]} ${t}`).join(', ') },
        PARTS.filter(([k]) => d[k] > 0).map(([k, t, cls]) => h('span', { class: `seg ${cls}`, style: null, 'data-width': Math.round((d[k] / size) * 1000) / 10, title: `${d[k]} ${t}` }))),
      h('span', { class: 'wave-counts' }, PARTS.map(([k, t, cls]) => h('span', { class: `count ${cls}` }, h('b', null, String(d[k])), ` ${t}`))));
  }));
}

/** Inline styles are refused by the CSP: widths are set through the CSSOM after rendering. */
export function sizeBars(root) {
  for (const seg of root.querySelectorAll('.seg[data-width]')) seg.style.width = `${seg.dataset.width}%`;
}
