// Interactive charts and visible table overflow, on top of server-rendered pages.
//
// Each <figure class="chart" data-chart="…"> is drawn as SVG by the server (tuner_site/charts.py,
// the first paint and the no-JavaScript view). Here it is redrawn with the vendored uPlot from
// the JSON twin its config names: a readout of every series at the pointer's step, drag to zoom
// steps, double-click to reset, a log-scale toggle, checkpoint marks and best checkpoints. The
// drawing rules (smoothing window, sparse series, gaps, colours) come from the server's config.
// Pages swapped in by htmx are set up again; a chart's zoom and scale survive the swap.
(function () {
  "use strict";

  const instances = new Map(); // figure -> {u, observer}
  const kept = new Map(); // chart key -> {zoom: [min, max] | null, log: bool, data}

  // Numbers as tuner_site/formatting.py writes them, rule for rule, so a value reads the same in
  // a table and in a chart's readout (tests/test_browser_formatting.py runs both on one table).
  // toFixed, toPrecision and toExponential round an exact half away from zero, as formatting.py
  // does. The server sends each series' column format (unit, decimals) in the chart's config.
  function grouped(text) {
    const [whole, frac] = text.split("."), sign = whole.startsWith("-") ? "-" : "";
    return sign + whole.slice(sign.length).replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac === undefined ? "" : "." + frac);
  }

  function fixed(v, decimals) {
    const text = grouped(v.toFixed(decimals));
    return text.startsWith("-") && !/[1-9]/.test(text) ? text.slice(1) : text; // no "-0.000"
  }

  function significant(v, digits) {
    const text = v.toPrecision(digits);
    return text.includes(".") && !text.includes("e") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }

  function scientific(v, decimals) {
    if (v === 0) return "0";
    const [mantissa, exponent] = v.toExponential(decimals).split("e");
    return mantissa + "e" + Number(exponent);
  }

  function metric(v) {
    if (v == null || v === "") return "—";
    if (typeof v !== "number") return String(v);
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
    const m = Math.abs(v);
    if (m >= 1e15) return scientific(v, 3);
    if (Number.isInteger(v) || m >= 999.5) return fixed(v, 0);
    if (v !== 0 && m < 1e-3) return scientific(v, 3);
    return significant(v, 4);
  }

  function duration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "";
    if (seconds < 59.95) return metric(Number(seconds >= 1 ? seconds.toFixed(1) : seconds.toPrecision(3))) + "s";
    const total = Number(seconds.toFixed(0)), hours = Math.floor(total / 3600), rest = total % 3600;
    const minutes = Math.floor(rest / 60), secs = rest % 60;
    return hours ? hours + "h " + minutes + "m " + secs + "s" : minutes + "m " + secs + "s";
  }

  // formatting.Column: every value of one column (or chart series) alike. spec: {unit, decimals}.
  function column(spec) {
    const unit = (spec && spec.unit) || "", decimals = spec ? spec.decimals : null;
    return (value) => {
      if (typeof value !== "number" || !Number.isFinite(value) || Math.abs(value) >= 1e15) return metric(value);
      if (unit === "s") return duration(value) || metric(value);
      if (unit === "lr") return scientific(value, decimals || 0);
      const v = unit === "%" ? value * 100 : value;
      const text = decimals == null ? scientific(v, 3) : fixed(v, decimals);
      return text + (unit === "%" ? "%" : unit ? " " + unit : "");
    };
  }

  // formatting.tick: an axis label, short; shares as percentages.
  function tick(v, unit) {
    if (unit === "%") return tick(v * 100, "") + "%";
    if (v === 0) return "0";
    const m = Math.abs(v);
    if (m >= 10000 || m < 0.01) return scientific(v, 1).replace(".0e", "e");
    return m >= 1000 ? fixed(v, 0) : significant(v, 4);
  }

  // The same centred moving average over `window` steps as tuner_site.charts.moving_average.
  function movingAverage(steps, values, window) {
    const half = window / 2, n = steps.length, sums = [0], out = [];
    for (let i = 0; i < n; i++) sums.push(sums[i] + values[i]);
    const lower = (x) => { let lo = 0, hi = n; while (lo < hi) { const m = (lo + hi) >> 1; if (steps[m] < x) lo = m + 1; else hi = m; } return lo; };
    const upper = (x) => { let lo = 0, hi = n; while (lo < hi) { const m = (lo + hi) >> 1; if (steps[m] <= x) lo = m + 1; else hi = m; } return lo; };
    for (let i = 0; i < n; i++) {
      const s = steps[i], h = Math.min(half, s - steps[0], steps[n - 1] - s);
      const lo = lower(s - h), hi = upper(s + h);
      out.push((sums[hi] - sums[lo]) / (hi - lo));
    }
    return out;
  }

  // What tests/test_browser_formatting.py checks against the server's rules.
  window.tunerNumbers = { metric, duration, column, tick, movingAverage };

  // Lines from the JSON twin: [{name, steps, values}] with only finite values.
  function linesFrom(json, config) {
    const byName = new Map();
    if (json.series) {
      for (const name of Object.keys(json.series)) {
        const steps = [], values = [];
        json.series[name].forEach((v, i) => { if (v != null && Number.isFinite(v)) { steps.push(json.steps[i]); values.push(v); } });
        byName.set(name, { steps, values });
      }
    } else {
      for (const r of json.runs || []) byName.set(r.trainer + "/" + r.run, { steps: r.steps, values: r.values });
    }
    return config.series.map((s) => ({ ...s, ...(byName.get(s.name) || { steps: [], values: [] }) }));
  }

  // The pass rate by step of each prompt set a sweep evaluated checkpoints on (the config
  // carries them whole): dashed lines with a dot per checkpoint, on the right-hand 0–100 % axis.
  // A final model evaluated beside the checkpoint of its step is a dot of its own (uPlot has
  // one value per step and line), as the server draws it.
  function rateLines(config) {
    const out = [];
    for (const r of config.rates || []) {
      const line = { steps: [], values: [], labels: [], checkpoints: [] }, extra = { steps: [], values: [], labels: [], checkpoints: [] };
      r.steps.forEach((s, i) => {
        const into = line.steps.includes(s) ? extra : line;
        into.steps.push(s); into.values.push(r.values[i]); into.labels.push(r.labels[i]); into.checkpoints.push(r.checkpoints[i]);
      });
      const common = { name: r.name + " pass rate", color: r.color, rate: true, sparse: true, smooth: false, breaks: [], format: { unit: "%", decimals: 0 } };
      out.push({ ...common, ...line });
      if (extra.steps.length) out.push({ ...common, ...extra, dotsOnly: true });
    }
    return out;
  }

  // uPlot wants one x array: the union of every line's steps, plus a point inside each gap,
  // where a line gets null (a break); elsewhere a line without a value there gets undefined.
  function align(lines) {
    const xs = new Set();
    for (const l of lines) {
      l.steps.forEach((s) => xs.add(s));
      for (const b of l.breaks) {
        const i = l.steps.indexOf(b);
        if (i > 0) { l.gapAt = l.gapAt || []; const mid = (l.steps[i - 1] + b) / 2; l.gapAt.push(mid); xs.add(mid); }
      }
    }
    const x = [...xs].sort((a, b) => a - b), index = new Map(x.map((s, i) => [s, i]));
    const column = (steps, values, gaps) => {
      const ys = new Array(x.length).fill(undefined);
      steps.forEach((s, i) => { ys[index.get(s)] = values[i]; });
      (gaps || []).forEach((s) => { ys[index.get(s)] = null; });
      return ys;
    };
    const data = [x], series = [{ label: "step" }];
    for (const l of lines) {
      const isolated = [];
      const starts = [0, ...l.breaks.map((b) => l.steps.indexOf(b)).filter((i) => i > 0), l.steps.length];
      for (let k = 0; k + 1 < starts.length; k++) if (starts[k + 1] - starts[k] === 1) isolated.push(index.get(l.steps[starts[k]]));
      const points = { size: 6, filter: (u, si, show) => (show || !isolated.length ? null : isolated) };
      if (l.sparse) points.show = true;
      else if (l.avg) points.show = false; // the faint raw line of a smoothed series
      else points.space = 24; // dense: a marker per point only once zoomed in far enough
      data.push(column(l.steps, l.values, l.gapAt));
      if (l.rate) {
        const dots = { show: true, size: 8, fill: l.color };
        series.push({ label: l.name, stroke: l.color, width: 1.5, dash: [4, 3], scale: "rate", points: dots, ...(l.dotsOnly ? { paths: () => null } : {}) });
        continue;
      }
      series.push({ label: l.name, stroke: l.color, width: l.smooth ? 1 : 1.5, alpha: l.smooth ? 0.35 : 1, points });
      if (l.avg) {
        data.push(column(l.steps, l.avg, l.gapAt));
        series.push({ label: l.name + " (average)", stroke: l.color, width: 2, points: { show: false } });
      }
    }
    return { data, series };
  }

  // The value a line has at step x, else its nearest logged value (and that step).
  function nearest(line, x) {
    const s = line.steps;
    if (!s.length) return null;
    let lo = 0, hi = s.length - 1;
    while (lo < hi) { const m = (lo + hi) >> 1; if (s[m] < x) lo = m + 1; else hi = m; }
    if (lo > 0 && Math.abs(s[lo - 1] - x) <= Math.abs(s[lo] - x)) lo -= 1;
    return { step: s[lo], value: line.values[lo] };
  }

  function atOrBefore(line, step) {
    let found = null;
    line.steps.forEach((s, i) => { if (s <= step) found = { step: s, value: line.values[i] }; });
    return found;
  }

  function draw(figure, config, json) {
    const key = config.source + "#" + config.title;
    const state = kept.get(key) || { zoom: null, log: false };
    kept.set(key, { ...state, data: json });
    const metricLines = linesFrom(json, config).map((l) => ({
      ...l,
      avg: l.smooth && l.steps.length ? movingAverage(l.steps, l.values, config.window) : null,
    }));
    const rates = rateLines(config), lines = [...metricLines, ...rates];
    // The log scale is the left axis's: pass rates keep their 0–100 % axis.
    const positive = metricLines.every((l) => l.values.every((v) => v > 0));
    const { data, series } = align(lines);
    const old = instances.get(figure);
    if (old) { old.observer.disconnect(); old.u.destroy(); }

    let box = figure.querySelector(".interactive");
    if (!box) {
      box = document.createElement("div");
      box.className = "interactive";
      box.innerHTML = '<div class="chart-controls"><label><input type="checkbox" name="log"> log scale</label>'
        + ' <button type="button" class="reset-zoom" hidden>Reset zoom</button>'
        + ' <span class="muted small hint">drag across to zoom steps · double-click to reset</span></div>'
        + '<div class="canvas"></div><output class="readout muted small" aria-live="off"></output>';
      figure.append(box);
    }
    const logBox = box.querySelector("input[name=log]"), reset = box.querySelector(".reset-zoom");
    const readout = box.querySelector(".readout");
    logBox.checked = state.log && positive;
    logBox.disabled = !positive;
    logBox.parentElement.title = positive ? "" : "A log scale needs every value above 0, and this chart has values at or below 0.";
    const marks = config.marks || [], best = config.best, bests = config.bests || {};

    function showReadout(u) {
      const idx = u.cursor.idx;
      if (idx == null) { readout.textContent = "Point at the chart to read every series at that step."; return; }
      const x = u.data[0][idx], parts = ["step " + metric(Math.round(x))];
      for (const l of lines) {
        const hit = nearest(l, x), write = column(l.format);
        if (!hit) { parts.push(l.name + " —"); continue; }
        let text = l.name + " " + write(hit.value);
        if (l.rate) { const i = l.steps.indexOf(hit.step); text = l.name + " " + l.checkpoints[i] + " " + l.labels[i] + " (" + write(hit.value) + ")"; }
        if (l.avg) text += " (average " + write(l.avg[l.steps.indexOf(hit.step)]) + ")";
        if (hit.step !== x) text += " at step " + metric(hit.step);
        parts.push(text);
      }
      readout.textContent = parts.join(" · ");
    }

    const width = () => Math.max(figure.clientWidth, 200);
    const height = () => (window.matchMedia("(max-width: 600px)").matches ? 200 : 240);
    const font = "11px system-ui, sans-serif", labelFont = "12px system-ui, sans-serif";
    const opts = {
      width: width(),
      height: height(),
      scales: { x: { time: false }, y: { distr: logBox.checked ? 3 : 1, log: 10 }, rate: { range: [-0.05, 1.05] } },
      axes: [
        { label: config.x_title, font, labelFont, labelSize: 18, size: 30, stroke: "#6b7280", grid: { stroke: "#eef0f3" } },
        {
          label: config.y_title, font, labelFont, labelSize: 18, stroke: "#6b7280", grid: { stroke: "#eef0f3" },
          values: (u, vals) => vals.map((v) => tick(v, config.unit)),
          size: (u, values) => 14 + 7 * Math.max(3, ...(values || []).map((v) => String(v).length)),
        },
        ...(rates.length ? [{
          scale: "rate", side: 1, label: "pass rate", font, labelFont, labelSize: 18, size: 44, stroke: "#6b7280",
          grid: { show: false }, splits: () => [0, 0.25, 0.5, 0.75, 1], values: (u, vals) => vals.map((v) => Math.round(v * 100) + "%"),
        }] : []),
      ],
      series,
      legend: { show: false },
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      hooks: {
        drawAxes: [(u) => {
          const ctx = u.ctx, { top, height: h } = u.bbox;
          ctx.save();
          ctx.lineWidth = devicePixelRatio;
          for (const s of marks) {
            const px = u.valToPos(s, "x", true);
            if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = s === best ? "#10b981" : "#9ca3af";
            ctx.lineWidth = (s === best ? 2 : 1) * devicePixelRatio;
            ctx.setLineDash(s === best ? [] : [3 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + h); ctx.stroke();
          }
          ctx.restore();
        }],
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          for (const l of lines) {
            const step = bests[l.name];
            const hit = step == null ? null : atOrBefore(l, step);
            if (!hit) continue;
            const px = u.valToPos(hit.step, "x", true), py = u.valToPos(hit.value, "y", true);
            ctx.beginPath(); ctx.arc(px, py, 6 * devicePixelRatio, 0, 2 * Math.PI);
            ctx.fillStyle = "#fff"; ctx.fill();
            ctx.beginPath(); ctx.arc(px, py, 4 * devicePixelRatio, 0, 2 * Math.PI);
            ctx.fillStyle = l.color; ctx.fill();
          }
          ctx.restore();
        }],
        setCursor: [showReadout],
        setScale: [(u, scaleKey) => {
          if (scaleKey !== "x") return;
          const { min, max } = u.scales.x, all = [u.data[0][0], u.data[0][u.data[0].length - 1]];
          const zoomed = min > all[0] || max < all[1];
          const entry = kept.get(key);
          entry.zoom = zoomed ? [min, max] : null;
          reset.hidden = !zoomed;
          figure.dataset.xRange = Math.round(min) + "," + Math.round(max);
        }],
      },
    };
    const u = new uPlot(opts, data, box.querySelector(".canvas"));
    if (state.zoom) u.setScale("x", { min: state.zoom[0], max: state.zoom[1] });
    const observer = new ResizeObserver(() => u.setSize({ width: width(), height: height() }));
    observer.observe(figure);
    instances.set(figure, { u, observer });
    showReadout(u);
    logBox.onchange = () => { kept.get(key).log = logBox.checked; draw(figure, config, json); };
    reset.onclick = () => u.setScale("x", { min: u.data[0][0], max: u.data[0][u.data[0].length - 1] });
    figure.classList.add("is-interactive");
    figure.dataset.log = logBox.checked ? "1" : "0";
  }

  function setUpChart(figure) {
    if (!window.uPlot || instances.has(figure) || figure.dataset.pending) return;
    const config = JSON.parse(figure.dataset.chart);
    const cached = kept.get(config.source + "#" + config.title);
    if (cached && cached.data) draw(figure, config, cached.data); // no flash back to the SVG
    figure.dataset.pending = "1";
    fetch(config.source, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status + " from " + config.source))))
      .then((json) => { if (figure.isConnected) draw(figure, config, json); })
      .catch((err) => console.warn("chart stays as drawn by the server:", err))
      .finally(() => { delete figure.dataset.pending; });
  }

  // Tables wider than their box: a shadow on the edge that hides columns, and a line saying
  // how many are out of view and which way to scroll.
  function watchOverflow(wrap) {
    if (wrap.dataset.watched) return;
    wrap.dataset.watched = "1";
    const hint = document.createElement("p");
    hint.className = "overflow-hint";
    wrap.before(hint);
    const update = () => {
      const box = wrap.getBoundingClientRect();
      const ths = [...wrap.querySelectorAll("thead tr:first-child th")].filter((th) => th.offsetParent);
      const right = ths.filter((th) => th.getBoundingClientRect().right > box.right + 1).length;
      const left = ths.filter((th) => th.getBoundingClientRect().left < box.left - 1).length;
      wrap.classList.toggle("more-right", right > 0);
      wrap.classList.toggle("more-left", left > 0);
      const parts = [];
      if (left) parts.push("← " + left + " column" + (left > 1 ? "s" : "") + " to the left");
      if (right) parts.push(right + " more column" + (right > 1 ? "s" : "") + " to the right →");
      hint.textContent = parts.length ? parts.join(" · ") + " (scroll the table sideways)" : "";
      hint.classList.toggle("shown", parts.length > 0);
    };
    wrap.addEventListener("scroll", update, { passive: true });
    new ResizeObserver(update).observe(wrap);
    update();
  }

  function setUp(root) {
    for (const [figure, inst] of instances) {
      if (!figure.isConnected) { inst.observer.disconnect(); inst.u.destroy(); instances.delete(figure); }
    }
    root.querySelectorAll("figure.chart[data-chart]").forEach(setUpChart);
    root.querySelectorAll(".table-wrap").forEach(watchOverflow);
    root.querySelectorAll("button[data-copy][hidden], button[data-copy-link][hidden]").forEach((b) => { b.hidden = false; });
    document.querySelectorAll(".overflow-hint").forEach((hint) => { if (!hint.nextElementSibling || !hint.nextElementSibling.classList.contains("table-wrap")) hint.remove(); });
  }

  // Copy buttons: data-copy="…" copies that text (a checkpoint's path), data-copy-link this page's
  // address, absolute, as htmx keeps it (a run page's ranking and columns included), for a
  // teammate. They are hidden until this script can make them work.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // Plain http on a LAN has no clipboard API: copy through a selected text area instead.
    return new Promise((resolve, reject) => {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.cssText = "position: fixed; top: 0; opacity: 0";
      document.body.append(area);
      area.select();
      const copied = document.execCommand("copy");
      area.remove();
      if (copied) resolve(); else reject(new Error("the browser refused to copy"));
    });
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-copy], button[data-copy-link]");
    if (!button) return;
    const text = button.hasAttribute("data-copy-link") ? location.href.split("#")[0] : button.dataset.copy;
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    copyText(text).then(
      () => { button.textContent = "Copied"; },
      () => { button.textContent = "Could not copy: select the text"; },
    ).finally(() => setTimeout(() => { button.textContent = label; }, 2000));
  });

  // A menu (<details id=…>) opened by the user stays open when htmx swaps the part of the
  // page it is in: a running run's page refreshes every few seconds, and the checkpoint
  // table's column menu swaps the page's live part on every tick. The server renders it closed.
  let openMenus = [];
  document.addEventListener("htmx:beforeSwap", () => {
    openMenus = [...document.querySelectorAll("details[id][open]")].map((d) => d.id);
  });
  document.addEventListener("htmx:afterSwap", () => {
    for (const id of openMenus) { const menu = document.getElementById(id); if (menu) menu.open = true; }
  });

  document.addEventListener("htmx:load", (e) => setUp(e.detail.elt));
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => setUp(document));
  else setUp(document);
})();
