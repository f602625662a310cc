'use strict';
// aggregation.md: arithmetic, lr schedule, codecs, contributions, [robust], global update, FedKSeed-Pro weights.
const U = require('./util.js'); const R = require('./rng.js'); const T = require('./state.js');
const f32 = Math.fround;

// ---- arithmetic ----
function sumSeq(a) { let s = 0; for (const x of a) s = s + x; return s; }
function sumPw(a) {
  const pw = (a) => {
    const n = a.length;
    if (n < 8) { let s = 0; for (const x of a) s = s + x; return s; }
    if (n <= 128) {
      const r = a.slice(0, 8); let i = 8;
      for (; i + 8 <= n; i += 8) for (let j = 0; j < 8; j++) r[j] = r[j] + a[i + j];
      let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) s = s + a[i];
      return s;
    }
    let h = Math.floor(n / 2); h -= h % 8;
    return pw(a.slice(0, h)) + pw(a.slice(h));
  };
  return pw(a) + 0;
}
function lowmed(v) { if (!v.length) return 0.0; const s = [...v].sort((a, b) => a - b); return s[Math.floor((v.length - 1) / 2)]; }
function norm(v) { return Math.sqrt(sumSeq(v.map(x => x * x))); }

// ---- learning rate ----
function lrOf(schedule, lr, r, T) {
  if (schedule === 'constant' || T <= 1) return lr;
  const f = (r - 1) / (T - 1);
  if (schedule === 'cosine') return (lr * 0.5) * (1.0 + Math.cos(Math.PI * f));
  if (schedule === 'linear') return lr * (1.0 - f);
  throw new Error('schedule ' + schedule);
}

// ---- codecs ----
let ONEBYTE = null; // magnitudes M[0..127] from the vector
function setOnebyte(m) { ONEBYTE = m; }
function decode(codec, b) {
  b = Buffer.from(b); const out = [];
  if (codec === 'fp32') {
    if (b.length % 4) throw new Error(`${b.length} bytes: not whole float32 scalars`);
    for (let i = 0; i < b.length; i += 4) { const x = b.readFloatLE(i); if (!Number.isFinite(x)) throw new Error(Number.isNaN(x) ? 'NaN' : (x > 0 ? '+inf' : '-inf')); out.push(x); }
  } else if (codec === 'fp16') {
    if (b.length % 2) throw new Error(`${b.length} byte: not whole fp16 scalars`);
    for (let i = 0; i < b.length; i += 2) {
      const h = b.readUInt16LE(i), s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
      if (e === 31) throw new Error(m ? 'NaN' : (s ? '-inf' : '+inf'));
      const v = e === 0 ? m * Math.pow(2, -24) : (1024 + m) * Math.pow(2, e - 25);
      out.push(s ? -v : v);
    }
  } else if (codec === 'onebyte') {
    for (const x of b) { const k = x & 0x7f; const v = k === 0 ? 0.0 : ONEBYTE[k]; out.push(x & 0x80 ? -v : v); }
  } else throw new Error('codec ' + codec);
  return out;
}
const WIDTH = { fp32: 4, fp16: 2, onebyte: 1 };

// ---- strategy helpers ----
const SHARED_SLOT = 0xFFFFFFFF;
function ferretBlocks(layout /* slots with offset, padded */, size) {
  const P = layout.slots.map(s => s.padded).sort((a, b) => a - b);
  const target = 0.9 * P[Math.floor(P.length / 2)];
  const blocks = []; let start = null;
  for (const s of layout.slots) {
    if (start === null) start = s.offset;
    if (s.offset + s.padded - start >= target) { blocks.push([start, s.offset + s.padded]); start = null; }
  }
  if (start !== null) blocks.push([start, size]);
  return blocks;
}
// config: {strategy:{name, local_steps, num_seeds, shared_seeds, num_bases, adaptive_k, samples_per_step, codec, server_lr},
//          run_seed, round, layout, size, cum (FedKSeed-Pro cumulative weights)}
// result: {client, num_samples, payload} -> {client, num_samples, keys:[BigInt], values:[], blockOf: Map(key->block)}
function contributions(cfg, res) {
  const st = cfg.strategy, codec = st.codec || 'fp32', rs = BigInt(cfg.run_seed), r = cfg.round;
  let payload = Buffer.from(res.payload), counts = null;
  const name = st.name;
  let blocks = null;
  if (name === 'ferret') {
    blocks = ferretBlocks(cfg.layout, cfg.size);
    if (st.adaptive_k) {
      if (payload.length < 2 * blocks.length) throw new Error(`${payload.length} bytes < ${blocks.length} uint16`);
      counts = []; for (let l = 0; l < blocks.length; l++) counts.push(payload.readUInt16LE(2 * l));
      counts.forEach((k, l) => { if (k === 0) throw new Error(`K_${l} = 0`); });
      payload = payload.subarray(2 * blocks.length);
    } else counts = blocks.map(() => Math.max(1, Math.floor(st.num_bases / blocks.length)));
  }
  const g = decode(codec, payload);
  const keys = [], blockOf = [];
  if (name === 'fedkseed' || name === 'fedkseed-pro') {
    if (g.length !== st.local_steps) throw new Error(`${g.length} scalars, local_steps is ${st.local_steps}`);
    const slot = st.shared_seeds ? SHARED_SLOT : res.client;
    for (let t = 0; t < g.length; t++) keys.push(BigInt(name === 'fedkseed' ? R.uniformIndex(st.num_seeds, rs, r, slot, t) : R.weightedIndex(cfg.cum, rs, r, slot, t).index));
  } else if (name === 'ferret') {
    const n = counts.reduce((a, b) => a + b, 0);
    if (g.length !== n) throw new Error(`${g.length} coefficients, ${n} named`);
    counts.forEach((K, l) => { for (let k = 0; k < K; k++) { keys.push(R.deriveSeed(rs, 0xFE77E7, r, res.client, l, k)); blockOf.push(blocks[l]); } });
  } else if (name === 'onebyte') {
    if (g.length !== st.samples_per_step) throw new Error(`${payload.length} byte, ${st.samples_per_step} samples`);
    for (let t = 0; t < g.length; t++) keys.push(R.deriveSeed(rs, 0x1B, r, res.client, t));
  } else throw new Error('strategy ' + name);
  return { client: res.client, num_samples: res.num_samples, keys, values: g, blockOf, counts };
}

// ---- [robust] ----
const RDEF = { weighting: 'equal', norm_factor: 1.5, rule: 'mean', clip: 0, clip_factor: 10, outlier_factor: 0, trim_fraction: 0.2, weight_cap: 1.0 };
function weights(claims, robust, strategyName) {
  const rb = { ...RDEF, ...robust };
  for (const c of claims) if (BigInt(c) === 0n) throw new Error('num_samples 0');
  let m = claims.map(c => Number(c));
  if (strategyName === 'onebyte' || rb.weighting === 'equal') m = m.map(() => 1);
  else if (rb.weighting === 'capped') { const cap = rb.weight_cap * lowmed(m); m = m.map(x => Math.min(x, cap)); }
  else if (rb.weighting !== 'samples') throw new Error('weighting ' + rb.weighting);
  const s = sumPw(m); return m.map(x => x / s);
}
const cmpB = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
// contribs in ascending client order
function steps1to5(contribs, rb) {
  for (const c of contribs) for (const g of c.values) if (!Number.isFinite(g)) throw new Error('non-finite scalar');
  let B = rb.clip > 0 ? rb.clip : Infinity;
  if (rb.clip_factor > 0) { const mags = contribs.flatMap(c => c.values.map(Math.abs)).filter(x => x > 0); if (mags.length) B = Math.min(B, rb.clip_factor * lowmed(mags)); }
  const clipped = contribs.map(c => c.values.map(g => Number.isFinite(B) ? Math.min(Math.max(g, -B), B) : g));
  const vecs = contribs.map((c, i) => {
    const m = new Map();
    c.keys.forEach((k, t) => { const kk = k.toString(); m.set(kk, m.has(kk) ? m.get(kk) + clipped[i][t] : 0 + clipped[i][t]); });
    const ks = [...m.keys()].map(BigInt).sort(cmpB);
    return { keys: ks, v: ks.map(k => m.get(k.toString())) };
  });
  const norms = vecs.map(x => norm(x.v));
  return { B, clipped, vecs, norms };
}
function combine(contribs, robust, strategyName) {
  const rb = { ...RDEF, ...robust };
  const w = weights(contribs.map(c => c.num_samples), rb, strategyName);
  const { B, clipped, vecs, norms } = steps1to5(contribs, rb);
  const scales = {};
  if (rb.norm_factor > 0) {
    const pos = norms.filter(n => n > 0); const L = pos.length ? rb.norm_factor * lowmed(pos) : 0;
    vecs.forEach((x, i) => { if (L > 0 && norms[i] > L) { const s = L / norms[i]; scales[contribs[i].client] = s; x.v = x.v.map(v => v * s); } });
  }
  const all = [...new Set(vecs.flatMap(x => x.keys.map(String)))].map(BigInt).sort(cmpB);
  const A = all.map(k => {
    const have = []; vecs.forEach((x, i) => { const p = x.keys.findIndex(y => y === k); if (p >= 0) have.push({ i, v: x.v[p] }); });
    if (rb.rule === 'mean') return sumSeq(have.map(h => w[h.i] * h.v));
    const G = have.map(h => h.v).sort((a, b) => a - b), m = G.length;
    if (rb.rule === 'median') return m % 2 ? G[(m - 1) / 2] : (G[m / 2 - 1] + G[m / 2]) / 2;
    if (rb.rule === 'trimmed_mean') { const t = Math.floor(rb.trim_fraction * m); return sumPw(G.slice(t, m - t)) / (m - 2 * t); }
    throw new Error('rule ' + rb.rule);
  }).map(a => Number.isFinite(B) ? Math.min(Math.max(a, -B), B) : a);
  return { keys: all, values: A, B, norms, scales, weights: w, clipped };
}
function outliers(contribs, robust) {
  const rb = { ...RDEF, ...robust };
  if (!(rb.outlier_factor > 0) || contribs.length < 3) return { kept: contribs, left: [], norms: null };
  const { norms } = steps1to5(contribs, rb);
  const pos = norms.filter(n => n > 0); const L = pos.length ? rb.outlier_factor * lowmed(pos) : 0;
  const left = contribs.filter((c, i) => L > 0 && norms[i] > L).map(c => c.client);
  return { kept: contribs.filter(c => !left.includes(c.client)), left, norms };
}
// ---- the global update ----
function globalUpdate(cfg, comb, contribs, lr) {
  const st = cfg.strategy, kind = st.direction || 'rademacher';
  let ent = [];
  if (st.name === 'fedkseed' || st.name === 'fedkseed-pro') {
    comb.keys.forEach((k, j) => { const A = comb.values[j]; if (A !== 0) ent.push({ key: k, pool: Number(k), seed: R.deriveSeed(cfg.run_seed, 0x9001, k), coef: f32(-lr * A) }); });
  } else if (st.name === 'ferret') {
    comb.keys.forEach((k, j) => {
      let blk = null; for (const c of contribs) { const p = c.keys.findIndex(x => x === k); if (p >= 0) { blk = c.blockOf[p]; break; } }
      ent.push({ key: k, seed: k, start: blk[0], stop: blk[1], coef: f32(-st.server_lr * comb.values[j]) });
    });
  } else if (st.name === 'onebyte') {
    const c = -lr / st.samples_per_step;
    comb.keys.forEach((k, j) => ent.push({ key: k, seed: k, coef: f32(c * comb.values[j]) }));
  }
  for (const e of ent) if (!Number.isFinite(e.coef) || Math.abs(e.coef) > 1) throw new Error(`coefficient ${U.f32ToHex(e.coef)} refused`);
  for (const e of ent) e.c = T.coefToInt(e.coef, kind);
  return { kind, entries: ent };
}
// a whole round: results (ascending client) -> combined, update (throws on refusal)
function aggregate(cfg, results, lr, opts = {}) {
  const sorted = [...results].sort((a, b) => a.client - b.client);
  let contribs = sorted.map(r => contributions(cfg, r));
  let out = null;
  if (opts.outliers) { out = outliers(contribs, cfg.robust); contribs = out.kept; }
  const comb = combine(contribs, cfg.robust, cfg.strategy.name);
  const update = globalUpdate(cfg, comb, contribs, lr);
  return { contribs, comb, update, out };
}
// ---- FedKSeed-Pro's sampling weights ----
class ProState {
  constructor(K, importanceClip, temperature, exp = Math.exp) { this.exp = exp; this.K = K; this.abs = new Array(K).fill(0.0); this.count = new Array(K).fill(1.0); this.ic = importanceClip; this.temp = temperature; }
  observe(contribs, clipped) { contribs.forEach((c, i) => c.keys.forEach((k, t) => { const j = Number(k); this.abs[j] = this.abs[j] + Math.min(Math.abs(clipped[i][t]), this.ic); this.count[j] = this.count[j] + 1; })); }
  weights() {
    const a = this.abs.map((s, j) => s / this.count[j]);
    const lo = Math.min(...a), hi = Math.max(...a);
    const ap = a.map(x => (x - lo) / ((hi - lo) + 1e-10));
    const mx = Math.max(...ap);
    const e = ap.map(x => this.exp((x - mx) / this.temp));
    const se = sumPw(e); const p = e.map(x => x / se);
    const w = p.map(x => Math.max(1, U.rne(x * 16777216)));
    return { p, w };
  }
}
function broadcastBytes(w) { const b = Buffer.alloc(4 * w.length); w.forEach((x, j) => b.writeUInt32LE(x, 4 * j)); return b; }
function cumFromBroadcast(b, K) {
  b = Buffer.from(b);
  if (b.length !== 4 * K) throw new Error(`${b.length} bytes, not ${4 * K}`);
  const c = []; let s = 0n;
  for (let j = 0; j < K; j++) { const w = b.readUInt32LE(4 * j); if (w === 0) throw new Error('weight 0'); s += BigInt(w); c.push(s); }
  return c;
}
module.exports = { sumSeq, sumPw, lowmed, norm, lrOf, setOnebyte, decode, WIDTH, ferretBlocks, contributions, weights, combine, outliers, globalUpdate, aggregate, ProState, broadcastBytes, cumFromBroadcast, RDEF, steps1to5 };
