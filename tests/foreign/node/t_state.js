'use strict';
const J = require(require('path').join(__dirname, '..', '..', '..', 'docs', 'spec', 'conformance.json'));
const V = J.state;
const U = require('./util.js'); const R = require('./rng.js'); const T = require('./state.js');
const { check, eq, refuses } = require('./check.js');
const S = 'state';
R.gaussianTable(J.randomness.gaussian_table.runs);

// ---- layout ----
const LI = V.layout.inputs;
const params = LI.parameters.map(p => ({ name: p.name, shape: p.shape, dtype: 'float32', values: p.values.map(U.f32FromHex) }));
const layout = T.buildLayout(params, LI.trainable_patterns);
eq(S, 'layout', 'slots', layout.slots.map(s => ({ dtype: s.dtype, name: s.name, numel: s.numel, offset: s.offset, padded: s.padded, shape: s.shape })), V.layout.expected.slots);
eq(S, 'layout', 'size', layout.size, V.layout.expected.size);
const ftext = T.fingerprintText(layout, LI.base);
eq(S, 'layout', 'fingerprint text', ftext, V.layout.expected.fingerprint_text);
eq(S, 'layout', 'fingerprint sha256', T.fingerprint(layout, LI.base), V.layout.expected.fingerprint);
eq(S, 'layout', 'python json escapes', [T.fingerprintText({ slots: [{ name: 'a"\\\b\f\n\r\t\x01\x7f/\u{1F600}', shape: [], dtype: 'float32', offset: 0 }] }, 'x')],
  ['{"base": "x", "slots": [["a\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u007f/\\ud83d\\ude00", [], "float32", 0]], "spec": "fedseed-rng-v1"}']);
// base weights per element (padding 0)
const base = new Float32Array(layout.size);
for (const sl of layout.slots) { const p = params.find(x => x.name === sl.name); p.values.forEach((v, j) => { base[sl.offset + j] = v; }); }

// ---- model checksum ----
{
  const ents = V.model_checksum.inputs.entries;
  for (const e of ents) { // shape text: rebuild from the shape we know
    const known = { frozen: [2], 'lin.weight': [3, 5], 'lin.bias': [3], 'blk.gain_é': [7], count: [], scale: [1] }[e.name];
    eq(S, 'model_checksum', `shape text ${e.name}`, T.shapeText(known), e.shape_text);
  }
  // parameters' raw bytes from the layout vector, buffers from the description (count int64 = ?, scale float32)
  const p = params.map(x => ({ name: x.name, shape: x.shape, data: Buffer.from(Float32Array.from(x.values).buffer) }));
  for (const x of p) eq(S, 'model_checksum', `raw bytes ${x.name}`, U.hex(x.data), ents.find(e => e.name === x.name).data);
  const bufs = ents.filter(e => e.name === 'count' || e.name === 'scale').map(e => ({ name: e.name, shape: e.name === 'count' ? [] : [1], data: U.unhex(e.data) }));
  const stream = T.modelStream([...p, ...bufs]);
  eq(S, 'model_checksum', 'stream', U.hex(stream), V.model_checksum.expected.stream);
  eq(S, 'model_checksum', 'blake2b-128', U.hex(U.blake2b(stream, 16)), V.model_checksum.expected.blake2b_128);
  eq(S, 'model_checksum', 'equals layout base', V.model_checksum.expected.blake2b_128, LI.base);
}

// ---- coef_to_int ----
for (const kind of ['rademacher', 'gaussian']) V.coef_to_int.inputs[kind].forEach((h, k) => {
  let got; try { got = T.coefToInt(U.f32FromHex(h), kind).toString(); } catch (e) { got = null; }
  eq(S, 'coef_to_int', `${kind} ${h}`, got, V.coef_to_int.expected[kind][k]);
});

// helpers
function upd(u, size = layout.size) { return T.seedUpdate(u.kind, u.seeds, u.coefs.map(U.f32FromHex), u.starts, u.stops, size); }
const pick = (arr, idx) => idx.map(i => arr[i]);
const hx32 = (a) => Array.from(a, U.f32ToHex);

// ---- wide_apply / gaussian ----
for (const name of ['wide_apply', 'wide_apply_gaussian']) {
  const v = V[name], st = new T.WideState(layout, base), idx = v.inputs.indices;
  v.inputs.updates.forEach((u, k) => {
    const e = v.expected.after[k], up = upd(u);
    eq(S, name, `update ${k} coef_ints`, up.entries.map(x => x.c.toString()), e.coef_ints);
    st.apply(up);
    eq(S, name, `update ${k} delta`, pick(st.delta, idx).map(String), e.delta);
    eq(S, name, `update ${k} weights`, hx32(pick(st.w, idx)), e.weights);
    eq(S, name, `update ${k} checksum`, st.checksum(), e.checksum);
  });
}
// ---- wide_materialize ----
{
  const v = V.wide_materialize.inputs;
  const got = v.delta.map((d, k) => U.f32ToHex(Math.fround(U.f32FromHex(v.w0[k]) + U.bigToF32(BigInt(d)) * Math.pow(2, -56))));
  got.forEach((g, k) => eq(S, 'wide_materialize', `delta ${v.delta[k]} w0 ${v.w0[k]}`, g, V.wide_materialize.expected.weights[k]));
}
// ---- wide_base ----
{
  const v = V.wide_base, st = new T.WideState(layout, base), idx = v.inputs.indices;
  eq(S, 'wide_base', 'round-0 weights', hx32(pick(st.w, idx)), v.expected.weights);
  eq(S, 'wide_base', 'round-0 checksum', st.checksum(), v.expected.checksum);
  st.apply({ kind: 'rademacher', entries: [] });
  eq(S, 'wide_base', 'after empty update weights', hx32(pick(st.w, idx)), v.expected.after_empty_update.weights);
  eq(S, 'wide_base', 'after empty update checksum', st.checksum(), v.expected.after_empty_update.checksum);
}
// ---- wide_bound ----
for (const kind of ['rademacher', 'gaussian']) {
  const st = new T.WideState(layout, base), acc = [];
  for (const u of V.wide_bound.inputs.sequences[kind]) { try { st.apply(upd(u)); acc.push(true); } catch (e) { acc.push(false); } }
  eq(S, 'wide_bound', `${kind} accepted`, acc, V.wide_bound.expected[kind].accepted);
  eq(S, 'wide_bound', `${kind} checksum`, st.checksum(), V.wide_bound.expected[kind].checksum);
}
// ---- wide_dense ----
{
  const v = V.wide_dense, st = new T.WideState(layout, base), u = new Float32Array(layout.size), idx = v.inputs.indices;
  for (const [i, h] of Object.entries(v.inputs.dense)) u[Number(i)] = U.f32FromHex(h);
  st.applyDense(u);
  eq(S, 'wide_dense', 'delta', pick(st.delta, idx).map(String), v.expected.delta);
  eq(S, 'wide_dense', 'weights', hx32(pick(st.w, idx)), v.expected.weights);
  eq(S, 'wide_dense', 'checksum', st.checksum(), v.expected.checksum);
}
// ---- merged ----
for (const name of ['whole', 'ranged']) {
  const rounds = V.merged.inputs.rounds[name].map(u => { const x = upd(u); if (u.starts) x.entries.forEach(e => { e.ranged = true; }); return x; });
  const m = T.mergeRounds(rounds, layout.size);
  const e = V.merged.expected[name];
  eq(S, 'merged', `${name} entries`, m.map(x => ({ coef_int: x.c.toString(), seed: x.seed.toString(), start: x.whole ? null : x.start, stop: x.whole ? null : x.stop })), e.merged);
  const a = new T.WideState(layout, base); a.apply({ kind: e.kind, entries: m.map(x => ({ seed: x.seed, c: x.c, start: x.start, stop: x.stop })) });
  const b = new T.WideState(layout, base); for (const r of rounds) b.apply(r);
  eq(S, 'merged', `${name} checksum (merged)`, a.checksum(), e.checksum);
  eq(S, 'merged', `${name} checksum (one by one)`, b.checksum(), e.checksum);
}
// ---- compact ----
{
  const v = V.compact_base, st = new T.CompactState(layout, base);
  eq(S, 'compact_base', 'exponents', st.exps, v.expected.exponents);
  eq(S, 'compact_base', 'q', pick(st.q, v.inputs.indices), v.expected.q);
  eq(S, 'compact_base', 'weights', v.inputs.weight_indices.map(i => U.f32ToHex(st.weight(i))), v.expected.weights);
  eq(S, 'compact_base', 'base_rounded', st.baseRounded, v.expected.base_rounded);
  eq(S, 'compact_base', 'checksum', st.checksum(), v.expected.checksum);
  eq(S, 'compact_base', 'exponent examples (2.0, 1.5, 0.02, 0)', [2.0, 1.5, 0.02, 0].map(T.exponentOf), [27, 28, 30, 30]);
}
V.round_coef.inputs.cases.forEach((c, k) => eq(S, 'round_coef', `${c.coef_int}@${c.exponent}`, T.roundCoef(BigInt(c.coef_int), c.exponent).toString(), V.round_coef.expected.rounded[k]));
{
  const v = V.compact_apply, st = new T.CompactState(layout, base);
  v.inputs.updates.forEach((u, k) => {
    const e = v.expected.after[k], up = upd(u);
    eq(S, 'compact_apply', `update ${k} class coefs`, up.entries.map(x => { const c = st.classCoefs(x.c); const o = {}; for (const s of Object.keys(c)) o[s] = c[s].toString(); return o; }), e.class_coefs);
    st.apply(up);
    eq(S, 'compact_apply', `update ${k} q`, pick(st.q, v.inputs.indices), e.q);
    eq(S, 'compact_apply', `update ${k} weights`, v.inputs.weight_indices.map(i => U.f32ToHex(st.weight(i))), e.weights);
    eq(S, 'compact_apply', `update ${k} checksum`, st.checksum(), e.checksum);
  });
  refuses(S, 'compact_apply', 'gaussian refused', () => st.apply(upd({ kind: 'gaussian', seeds: ['1'], coefs: ['3f000000'] })));
}
{
  const v = V.compact_rounds, st = new T.CompactState(layout, base);
  const per = [], sum = { c: 0n };
  for (const u of v.inputs.rounds) { const up = upd(u); const c = st.classCoefs(up.entries[0].c); const o = {}; for (const s in c) o[s] = c[s].toString(); per.push(o); sum.c += up.entries[0].c; st.apply(up); }
  eq(S, 'compact_rounds', 'per round class coefs', per, v.expected.per_round);
  const m = st.classCoefs(sum.c), mo = {}; for (const s in m) mo[s] = m[s].toString();
  eq(S, 'compact_rounds', 'rounded merged sum (not used)', mo, v.expected.rounded_merged_sum_not_used);
  eq(S, 'compact_rounds', 'checksum', st.checksum(), v.expected.checksum);
}
{
  const v = V.compact_bound, st = new T.CompactState(layout, base), acc = [];
  for (const u of v.inputs.updates) { try { st.apply(upd(u)); acc.push(true); } catch (e) { acc.push(false); } }
  eq(S, 'compact_bound', 'accepted', acc, v.expected.accepted);
  eq(S, 'compact_bound', 'checksum', st.checksum(), v.expected.checksum);
}
// malformed ranges refused whole
{
  const st = new T.WideState(layout, base); const before = st.checksum();
  refuses(S, 'wide_apply', 'misaligned second range refused whole', () => st.apply({ kind: 'rademacher', entries: [{ seed: 1n, c: 5n, start: 0, stop: 64 }, { seed: 2n, c: 5n, start: 64, stop: 100 }] }));
  check(S, 'wide_apply', 'state unchanged after refusal', st.checksum() === before);
}
module.exports = { layout, base };
