// A line chart of a few series over the last minutes, drawn on a canvas.
// series: [{label, color, points: [[t_ms, value], …]}]; the x axis spans
// `span_ms` back from now.

export function drawChart(canvas, series, spanMs) {
  const ratio = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 600;
  const cssH = canvas.clientHeight || 180;
  if (canvas.width !== Math.round(cssW * ratio)) canvas.width = Math.round(cssW * ratio);
  if (canvas.height !== Math.round(cssH * ratio)) canvas.height = Math.round(cssH * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, cssW, cssH);

  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 22;
  const w = cssW - left - right;
  const ht = cssH - top - bottom;
  const now = Date.now();
  const t0 = now - spanMs;
  let max = 1;
  for (const s of series) for (const [, v] of s.points) max = Math.max(max, v);
  max = niceCeil(max);

  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ht - (ht * i) / 4;
    g.beginPath();
    g.moveTo(left, y + 0.5);
    g.lineTo(left + w, y + 0.5);
    g.stroke();
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    g.fillText(formatRate((max * i) / 4), left - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const minutes = Math.round(spanMs / 60000);
  for (let m = 0; m <= minutes; m++) {
    const x = left + w - (w * m * 60000) / spanMs;
    g.fillText(m === 0 ? 'now' : `-${m}m`, x, top + ht + 6);
  }

  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.beginPath();
    let started = false;
    for (const [t, v] of s.points) {
      if (t < t0) continue;
      const x = left + (w * (t - t0)) / spanMs;
      const y = top + ht - (ht * v) / max;
      if (started) g.lineTo(x, y);
      else g.moveTo(x, y);
      started = true;
    }
    g.stroke();
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function formatRate(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 10 || v === 0) return String(Math.round(v));
  return v.toFixed(1);
}
