'use strict';
// state.md: layout, fingerprint, model checksum, coefficient integers, wide and compact states.
const U = require('./util.js');
const R = require('./rng.js');
const { blake2b, sha256, f32, rne, bigToF32 } = U;

// ---- layout ----
function numel(shape) { return shape.reduce((a, b) => a * b, 1); }
// params: [{name, shape, dtype}] in parameter order; patterns: Python-re regexes (used here as JS RegExp: the
// vector's patterns mean the same in both)
function buildLayout(params, patterns) {
  const train = (!patterns || !patterns.length) ? params : params.filter(p => patterns.some(re => new RegExp(re, 'u').test(p.name)));
  if (!train.length) throw new Error('no trainable parameter');
  let off = 0; const slots = [];
  for (const p of train) { const n = numel(p.shape), padded = Math.ceil(n / 64) * 64; slots.push({ name: p.name, shape: p.shape, dtype: p.dtype, offset: off, numel: n, padded }); off += padded; }
  return { slots, size: off };
}
// Python json.dumps(ensure_ascii=True) of a string
function pyJsonStr(s) {
  let o = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i); // UTF-16 code unit: surrogate pairs come out as two \u escapes, as Python writes them
    if (c === 0x22) o += '\\"'; else if (c === 0x5c) o += '\\\\';
    else if (c === 0x08) o += '\\b'; else if (c === 0x0c) o += '\\f'; else if (c === 0x0a) o += '\\n'; else if (c === 0x0d) o += '\\r'; else if (c === 0x09) o += '\\t';
    else if (c < 0x20 || c > 0x7e) o += '\\u' + c.toString(16).padStart(4, '0');
    else o += s[i];
  }
  return o + '"';
}
function fingerprintText(layout, base) {
  const slots = layout.slots.map(s => `[${pyJsonStr(s.name)}, [${s.shape.join(', ')}], ${pyJsonStr(s.dtype)}, ${s.offset}]`);
  return `{"base": ${pyJsonStr(base)}, "slots": [${slots.join(', ')}], "spec": "fedseed-rng-v1"}`;
}
const fingerprint = (layout, base) => U.hex(sha256(Buffer.from(fingerprintText(layout, base), 'utf8')));
function shapeText(shape) { return shape.length === 0 ? '()' : shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`; }
// entries: [{name, shape, data(Buffer LE raw)}], parameters then buffers
function modelStream(entries) { return Buffer.concat(entries.flatMap(e => [Buffer.from(e.name, 'utf8'), Buffer.from(shapeText(e.shape), 'ascii'), e.data])); }

// ---- coefficients ----
const TWO56 = Math.pow(2, 56), TWO48 = Math.pow(2, 48);
function coefToInt(coef, kind) { // coef: a float32 value as a JS number
  if (!Number.isFinite(coef) || Math.abs(coef) > 1) throw new Error('coefficient ' + coef + ' refused');
  const x = coef * (kind === 'gaussian' ? TWO48 : TWO56); // exact
  return BigInt(rne(x));
}
const ZMAX = { rademacher: 1n, gaussian: 1107n };
const absB = (x) => x < 0n ? -x : x;
// an update: {kind, entries:[{seed: BigInt, c: BigInt, start, stop}]}; check ranges before anything
function checkRanges(update, size) {
  for (const e of update.entries) {
    if (!(e.start >= 0 && e.stop <= size && e.start < e.stop && e.start % 64 === 0 && e.stop % 64 === 0)) throw new Error(`bad range [${e.start}, ${e.stop})`);
    R.seedKeys(e.seed); // refuses seeds outside [0, 2^63)
  }
  if (!(update.kind in ZMAX)) throw new Error('kind ' + update.kind);
}
// float32 coefficients -> integer entries
function seedUpdate(kind, seeds, coefs, starts, stops, size) {
  const n = seeds.length; if (coefs.length !== n) throw new Error('coefs/seeds count');
  if (starts && starts.length && (starts.length !== n || stops.length !== n)) throw new Error('ranges count');
  const entries = seeds.map((s, k) => ({ seed: BigInt(s), c: coefToInt(coefs[k], kind), start: (starts && starts.length) ? Number(starts[k]) : 0, stop: (stops && stops.length) ? Number(stops[k]) : size }));
  return { kind, entries };
}

class WideState {
  constructor(layout, baseWeights /* Float32Array(size), padding 0 */) {
    this.layout = layout; this.size = layout.size;
    this.w0 = Float32Array.from(baseWeights); this.w = Float32Array.from(baseWeights);
    this.delta = new Array(this.size).fill(0n); this.B = 0n;
  }
  materialise() {
    const s = Math.pow(2, -56);
    for (let i = 0; i < this.size; i++) this.w[i] = f32(this.w0[i] + bigToF32(this.delta[i]) * s);
  }
  apply(update) {
    checkRanges(update, this.size);
    if (update.kind === 'gaussian') R.gaussianTable(); // must be loaded already
    let G = 0n; for (const e of update.entries) G += absB(e.c) * ZMAX[update.kind];
    if (this.B + G >= (1n << 62n)) throw new Error('wide bound: B + G >= 2^62');
    this.B += G;
    for (const e of update.entries) {
      const z = R.zRange(update.kind, R.seedKeys(e.seed), e.start, e.stop);
      for (let i = e.start; i < e.stop; i++) this.delta[i] += e.c * BigInt(z[i - e.start]);
    }
    this.materialise();
  }
  applyDense(u /* Float32Array */) {
    const d = Array.from(u, x => BigInt(rne(x * TWO56)));
    let G = 0n; for (const x of d) if (absB(x) > G) G = absB(x);
    if (this.B + G >= (1n << 62n)) throw new Error('wide bound');
    this.B += G; for (let i = 0; i < this.size; i++) this.delta[i] += d[i];
    this.materialise();
  }
  checksum() { return U.hex(blake2b(Buffer.from(this.w.buffer.slice(0)), 16)); }
}
// merged catch-up: rounds of float updates -> sorted integer entries
function mergeRounds(rounds, size) {
  const sums = new Map();
  for (const u of rounds) for (const e of u.entries) {
    const whole = e.start === 0 && e.stop === size && !e.ranged;
    const k = whole ? `W|${e.seed}` : `R|${e.seed}|${e.start}|${e.stop}`;
    const cur = sums.get(k) || { seed: e.seed, start: e.start, stop: e.stop, whole, c: 0n };
    cur.c += e.c; sums.set(k, cur);
  }
  const list = [...sums.values()].filter(x => x.c !== 0n);
  list.sort((a, b) => (a.whole !== b.whole) ? (a.whole ? -1 : 1) : (a.seed !== b.seed ? (a.seed < b.seed ? -1 : 1) : (a.start - b.start) || (a.stop - b.stop)));
  return list;
}

// ---- compact ----
function frexpE(m) { // e with 2^(e-1) <= m < 2^e, m > 0 finite
  const b = Buffer.alloc(8); b.writeDoubleBE(m); const ex = (b.readUInt16BE(0) >> 4) & 0x7ff;
  if (ex === 0) { let e = -1022; let x = m; while (x < Math.pow(2, e - 1)) e--; return e; }
  return ex - 1022;
}
function exponentOf(m) { return m === 0 ? 30 : Math.min(30, 29 - frexpE(m)); }
function roundCoef(c, s) { // c BigInt in 2^-56 units -> RHA(c * 2^(s-56))
  const sh = BigInt(56 - s); const a = absB(c);
  const r = (a + (1n << (sh - 1n))) >> sh;
  return c < 0n ? -r : r;
}
class CompactState {
  constructor(layout, baseWeights /* per element real values, padding 0 */) {
    this.layout = layout; this.size = layout.size;
    this.exps = layout.slots.map(sl => { let m = 0; for (let j = 0; j < sl.numel; j++) m = Math.max(m, Math.abs(baseWeights[sl.offset + j])); return exponentOf(m); });
    this.cls = new Int8Array(this.size); // exponent per element
    layout.slots.forEach((sl, k) => { for (let i = sl.offset; i < sl.offset + sl.padded; i++) this.cls[i] = this.exps[k]; });
    this.q = new Int32Array(this.size); this.baseRounded = 0;
    layout.slots.forEach((sl, k) => { const sc = Math.pow(2, this.exps[k]); for (let j = 0; j < sl.numel; j++) { const x = baseWeights[sl.offset + j] * sc, r = rne(x); if (r !== x) this.baseRounded++; this.q[sl.offset + j] = r; } });
    this.classes = [...new Set(this.exps)];
  }
  classCoefs(c) { const o = {}; for (const s of this.classes) o[s] = roundCoef(c, s); return o; }
  apply(update) {
    if (update.kind !== 'rademacher') throw new Error('compact state: rademacher only');
    checkRanges(update, this.size);
    // bound: group by key
    const keys = new Map();
    for (const e of update.entries) { const k = `${e.seed}|${e.start}|${e.stop}`; const cur = keys.get(k) || { start: e.start, stop: e.stop, C: {} }; const cc = this.classCoefs(e.c); for (const s of this.classes) cur.C[s] = (cur.C[s] || 0n) + cc[s]; keys.set(k, cur); }
    for (const s of this.classes) {
      let mx = 0; for (let i = 0; i < this.size; i++) if (this.cls[i] === s) mx = Math.max(mx, Math.abs(this.q[i]));
      let sum = 0n;
      for (const K of keys.values()) {
        const meets = this.layout.slots.some((sl, k) => this.exps[k] === s && sl.padded > 0 && K.start < sl.offset + sl.padded && sl.offset < K.stop);
        if (meets) sum += absB(K.C[s]);
      }
      if (BigInt(mx) + sum > 2147483647n) throw new Error(`compact bound at s=${s}`);
    }
    const q = Array.from(this.q, BigInt);
    for (const e of update.entries) {
      const cc = this.classCoefs(e.c); const z = R.zRange('rademacher', R.seedKeys(e.seed), e.start, e.stop);
      for (let i = e.start; i < e.stop; i++) q[i] += cc[this.cls[i]] * BigInt(z[i - e.start]);
    }
    for (let i = 0; i < this.size; i++) this.q[i] = Number(q[i]);
  }
  weight(i) { return bigToF32(BigInt(this.q[i])) * Math.pow(2, -this.cls[i]); }
  checksum() { return U.hex(blake2b(Buffer.concat([Buffer.from(Int8Array.from(this.exps).buffer), Buffer.from(this.q.buffer.slice(0))]), 16)); }
}
module.exports = { buildLayout, fingerprintText, fingerprint, shapeText, modelStream, coefToInt, seedUpdate, WideState, mergeRounds, roundCoef, exponentOf, CompactState, checkRanges };
