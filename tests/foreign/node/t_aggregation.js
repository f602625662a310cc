'use strict';
const J = require(require('path').join(__dirname, '..', '..', '..', 'docs', 'spec', 'conformance.json'));
const V = J.aggregation;
const U = require('./util.js'); const R = require('./rng.js'); const T = require('./state.js'); const A = require('./agg.js'); const P = require('./proto.js');
const { check, eq, skip, refuses } = require('./check.js');
const S = 'aggregation';
const h64 = U.f64ToHex, f64 = U.f64FromHex;
const str = (a) => a.map(String);

// ---- arithmetic ----
V.as_fp32.inputs.float64.forEach((h, k) => eq(S, 'as_fp32', h, U.f32ToHex(Math.fround(f64(h))), V.as_fp32.expected.float32[k]));
check(S, 'as_fp32', 'overflow tie -> inf (refused as a coefficient)', Math.fround(f64(V.as_fp32.inputs.overflow)) === Infinity);
V.lower_median.inputs.values.forEach((v, k) => eq(S, 'lower_median', JSON.stringify(v), h64(A.lowmed(v)), V.lower_median.expected.lower_median[k]));
// pairwise sum sanity (no vector of its own): n=8..300 against numpy's documented blocking is all we can do; skip

// ---- lr ----
V.lr_schedule.inputs.cases.forEach((c, k) => eq(S, 'lr_schedule', `${c.schedule} r=${c.round}/${c.rounds}`, h64(A.lrOf(c.schedule, f64(c.lr), c.round, c.rounds)), V.lr_schedule.expected.lr[k]));

// ---- codecs ----
for (const codec of ['fp32', 'fp16']) {
  const v = V['codec_' + codec];
  v.inputs.payloads.forEach((p, k) => eq(S, 'codec_' + codec, p, A.decode(codec, U.unhex(p)).map(h64), [v.expected.values[k]]));
  for (const [p, r] of Object.entries(v.expected.refused)) {
    let why = null; try { A.decode(codec, U.unhex(p)); } catch (e) { why = e.message; }
    check(S, 'codec_' + codec, `refuse ${p}`, why !== null, `(${why} / vector: ${r.why})`);
  }
}
{
  const v = V.codec_onebyte, M = v.expected.magnitudes.map(f64);
  A.setOnebyte(M);
  // check the table against the spec's formula: M[k] = fl(0.001 * E[k]), E[k] = correctly rounded e^((k-1)/8)
  const bad = [], expBad = [];
  for (let k = 1; k < 128; k++) {
    const E = expCR(k - 1, 8);
    if (h64(0.001 * E) !== v.expected.magnitudes[k]) bad.push(k);
    if (h64(0.001 * Math.exp((k - 1) / 8)) !== v.expected.magnitudes[k]) expBad.push(k);
  }
  check(S, 'codec_onebyte', 'magnitudes = fl(0.001 * correctly-rounded exp((k-1)/8))', bad.length === 0 && v.expected.magnitudes[0] === '0000000000000000', 'differs at k=' + bad);
  module.exports.onebyteMathExpDiffers = expBad;
  eq(S, 'codec_onebyte', 'signed payload', A.decode('onebyte', U.unhex(v.inputs.signed_payload)).map(h64), v.expected.signed_values);
}
function expCR(n, d) { return require('./expcr.js').expCR(n / d); }

// ---- step seeds ----
{
  const i = V.step_seeds.inputs, e = V.step_seeds.expected, rs = BigInt(i.run_seed), r = i.round;
  eq(S, 'step_seeds', 'fedkseed client 42', [0, 1, 2].map(t => R.uniformIndex(i.fedkseed_num_seeds, rs, r, 42, t)), e.fedkseed_index_client42);
  eq(S, 'step_seeds', 'fedkseed shared', [0, 1, 2].map(t => R.uniformIndex(i.fedkseed_num_seeds, rs, r, 0xFFFFFFFF, t)), e.fedkseed_index_shared);
  eq(S, 'step_seeds', 'pool first', str(R.seedPool(rs, 3)), e.fedkseed_pool_first);
  eq(S, 'step_seeds', 'fedkseed-pro client 42', e.fedkseed_pro_index_client42.map((_, t) => R.weightedIndex(i.fedkseed_pro_cum_weights, rs, r, 42, t).index), e.fedkseed_pro_index_client42);
  const fb = {}; for (const l of [0, 1]) for (const k of [0, 1]) fb[`block${l}_k${k}`] = R.deriveSeed(rs, 0xFE77E7, r, 42, l, k).toString();
  eq(S, 'step_seeds', 'ferret client 42', fb, e.ferret_basis_seed_client42);
  eq(S, 'step_seeds', 'mezo', str([0, 1, 2].map(t => R.deriveSeed(rs, 0x3E20, r, t))), e.mezo_step_seed);
  eq(S, 'step_seeds', 'onebyte participant 42', str([0, 1, 2].map(t => R.deriveSeed(rs, 0x1B, r, 42, t))), e.onebyte_sample_seed_participant42);
}

// ---- client weights ----
{
  const v = V.client_weights, c = v.inputs.claims;
  eq(S, 'client_weights', 'equal', A.weights(c, {}, 'fedkseed').map(h64), v.expected.equal);
  eq(S, 'client_weights', 'samples', A.weights(c, { weighting: 'samples' }, 'fedkseed').map(h64), v.expected.samples);
  eq(S, 'client_weights', 'capped (default weight_cap, guessed 1.0)', A.weights(c, { weighting: 'capped' }, 'fedkseed').map(h64), v.expected.capped);
  eq(S, 'client_weights', 'capped 1.5', A.weights(c, { weighting: 'capped', weight_cap: 1.5 }, 'fedkseed').map(h64), v.expected['capped_1.5']);
  eq(S, 'client_weights', 'capped 0.3 nine', A.weights(v.inputs.nine_claims, { weighting: 'capped', weight_cap: 0.3 }, 'fedkseed').map(h64), v.expected['capped_0.3_nine_clients']);
  refuses(S, 'client_weights', 'zero claim', () => A.weights([1, 0, 2], {}, 'fedkseed'));
}

// ---- robust rules on hand-made contributions ----
function expectCombined(vec, label, comb, e, clients) {
  if (e.keys) eq(S, vec, label + ' keys', str(comb.keys), e.keys.map(String));
  eq(S, vec, label + ' values', comb.values.map(h64), e.values);
}
{
  const v = V.robust_rules;
  const contribs = v.inputs.contributions.map(c => ({ client: c.client, num_samples: c.num_samples, keys: c.keys.map(BigInt), values: c.values.map(f64) }));
  for (const [name, e] of Object.entries(v.expected)) {
    const comb = A.combine(contribs, e.robust, 'fedkseed');
    expectCombined('robust_rules', name, comb, e);
    eq(S, 'robust_rules', name + ' scalar_bound', Number.isFinite(comb.B) ? h64(comb.B) : 'inf', e.scalar_bound);
    const sc = {}; for (const [k, s] of Object.entries(comb.scales)) sc[k] = h64(s);
    eq(S, 'robust_rules', name + ' norm_scales', sc, e.norm_scales);
  }
}

// ---- full rounds ----
function res(r) { return { client: r.client, num_samples: BigInt(r.num_samples), payload: U.unhex(r.payload) }; }
function layoutOf(arr) { // [[name, shape, offset]]
  const slots = arr.map(([name, shape, offset]) => { const n = shape.reduce((a, b) => a * b, 1); return { name, shape, offset, numel: n, padded: Math.ceil(n / 64) * 64 }; });
  const last = slots[slots.length - 1]; return { slots, size: last.offset + last.padded };
}
function checkRound(vec, label, cfg, results, lr, e, opts = {}) {
  let out;
  try { out = A.aggregate(cfg, results.map(res), lr, opts); } catch (err) { check(S, vec, label + ' aggregates', false, err.message); return null; }
  const { contribs, comb, update } = out;
  if (e.step_indices) { const si = {}; for (const c of contribs) si[c.client] = c.keys.map(Number); const want = {}; for (const k of Object.keys(e.step_indices)) if (si[k]) want[k] = si[k]; eq(S, vec, label + ' step indices', want, e.step_indices); }
  if (e.weights) eq(S, vec, label + ' weights', comb.weights.map(h64), e.weights);
  if (e.norms) eq(S, vec, label + ' norms', comb.norms.map(h64), e.norms);
  if (e.norm_scales) { const sc = {}; for (const [k, s] of Object.entries(comb.scales)) sc[k] = h64(s); eq(S, vec, label + ' norm_scales', sc, e.norm_scales); }
  if (e.scalar_bound) eq(S, vec, label + ' scalar_bound', Number.isFinite(comb.B) ? h64(comb.B) : 'inf', e.scalar_bound);
  if (e.combined) expectCombined(vec, label + ' combined', comb, e.combined);
  const u = e.update || e.kept_update;
  if (u) {
    eq(S, vec, label + ' update coefs_f32', update.entries.map(x => U.f32ToHex(x.coef)), u.coefs_f32);
    eq(S, vec, label + ' update coef_ints', str(update.entries.map(x => x.c)), u.coef_ints);
    eq(S, vec, label + ' update seeds', str(update.entries.map(x => x.seed)), u.seeds);
    eq(S, vec, label + ' update kind', update.kind, u.kind);
    if (u.pool_indices) eq(S, vec, label + ' update pool indices', update.entries.map(x => x.pool), u.pool_indices);
    if (u.starts) { eq(S, vec, label + ' update starts', update.entries.map(x => x.start), u.starts); eq(S, vec, label + ' update stops', update.entries.map(x => x.stop), u.stops); }
  }
  return out;
}
const lrFor = (v) => v.inputs.lr ? f64(v.inputs.lr) : A.lrOf(v.inputs.strategy.lr_schedule || 'constant', v.inputs.strategy.lr, v.inputs.round, v.inputs.rounds);
for (const vec of ['fedkseed_round', 'fedkseed_round_samples_clip']) {
  const v = V[vec], i = v.inputs;
  checkRound(vec, 'round', { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: i.robust }, i.results, lrFor(v), v.expected);
}
{
  const v = V.fedkseed_shared_rules, i = v.inputs;
  for (const name of ['mean', 'median', 'trimmed_mean_0.25']) {
    const e = v.expected[name];
    const out = checkRound('fedkseed_shared_rules', name, { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: e.robust }, i.results, lrFor(v), e);
    if (out) eq(S, 'fedkseed_shared_rules', name + ' shared step indices', out.contribs[0].keys.map(Number), v.expected.step_indices_shared);
  }
  eq(S, 'fedkseed_shared_rules', 'slot', 0xFFFFFFFF, v.expected.slot);
}
{
  const v = V.outliers, i = v.inputs;
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: i.robust };
  const contribs = i.results.map(res).map(r => A.contributions(cfg, r));
  const o = A.outliers(contribs, i.robust);
  eq(S, 'outliers', 'norms (all results)', o.norms.map(h64), v.expected.norms);
  eq(S, 'outliers', 'left out', o.left, v.expected.left_out);
  checkRound('outliers', 'kept', cfg, i.results, lrFor(v), { kept_update: v.expected.kept_update }, { outliers: true });
}
{
  const v = V.fedkseed_refusals, i = v.inputs, e = v.expected;
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: {} }, lr = lrFor(v);
  const ok = { client: 5, num_samples: 7n, payload: U.unhex('0000803f000000bf0000003f00000000') };
  let why = null, coefs = null;
  try { A.aggregate(cfg, [{ client: 5, num_samples: 7n, payload: U.unhex(e.coef_above_one.payload) }], lr); } catch (err) { why = err.message; }
  check(S, 'fedkseed_refusals', 'coef_above_one refused', why !== null, why);
  { // the coefficient it refuses
    const c = A.contributions(cfg, { client: 5, num_samples: 1n, payload: U.unhex(e.coef_above_one.payload) }); const comb = A.combine([c], {}, 'fedkseed');
    coefs = comb.keys.map((k, j) => comb.values[j]).filter(x => x !== 0).map(a => U.f32ToHex(Math.fround(-lr * a)));
    eq(S, 'fedkseed_refusals', 'coef_above_one update coefs', coefs, e.coef_above_one.update_coefs_f32);
  }
  // the other refusals name no input bytes: build our own
  refuses(S, 'fedkseed_refusals', 'nan_scalar (own payload)', () => A.aggregate(cfg, [{ ...ok, payload: U.unhex('0000c07f000000bf0000003f00000000') }], lr));
  refuses(S, 'fedkseed_refusals', 'ragged_payload (own 15 bytes)', () => A.aggregate(cfg, [{ ...ok, payload: Buffer.alloc(15) }], lr));
  refuses(S, 'fedkseed_refusals', 'three_scalars (own)', () => A.aggregate(cfg, [{ ...ok, payload: Buffer.alloc(12) }], lr));
  refuses(S, 'fedkseed_refusals', 'zero_samples (own)', () => A.aggregate(cfg, [{ ...ok, num_samples: 0n }], lr));
}
{
  const v = V.ferret_round, i = v.inputs, e = v.expected, L = layoutOf(i.layout);
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: i.robust || {}, layout: L, size: L.size };
  eq(S, 'ferret_round', 'blocks', A.ferretBlocks(L, L.size), e.blocks);
  const out = checkRound('ferret_round', 'round', cfg, i.results, lrFor(v), e);
  if (out) {
    eq(S, 'ferret_round', 'bases per block', out.contribs[0].counts, e.bases_per_block);
    const bs = {}; for (const c of out.contribs) { const per = []; let t = 0; c.counts.forEach((K) => { per.push(str(c.keys.slice(t, t + K))); t += K; }); bs[c.client] = per; }
    eq(S, 'ferret_round', 'basis seeds', bs, e.basis_seeds);
  }
}
{
  const v = V.ferret_adaptive_round, i = v.inputs, e = v.expected, L = layoutOf(i.layout);
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: i.robust || {}, layout: L, size: L.size };
  const out = checkRound('ferret_adaptive_round', 'round', cfg, i.results, lrFor(v), e);
  if (out) { const bp = {}; for (const c of out.contribs) bp[c.client] = c.counts; eq(S, 'ferret_adaptive_round', 'bases per block', bp, e.bases_per_block); }
  const ok = (p) => ({ client: 0, num_samples: 30n, payload: p });
  refuses(S, 'ferret_adaptive_round', 'a_zero_count (own payload)', () => A.aggregate(cfg, [ok(U.unhex('0000010002000100' + '0000'.repeat(4)))], 1));
  refuses(S, 'ferret_adaptive_round', 'count_mismatch (own: 5 coefficients, 4 named)', () => A.aggregate(cfg, [ok(U.unhex('01000100010001' + '00' + '0000'.repeat(5)))], 1));
  refuses(S, 'ferret_adaptive_round', 'payload_shorter_than_counts (own 6 bytes)', () => A.aggregate(cfg, [ok(Buffer.alloc(6))], 1));
}
{
  const v = V.onebyte_round, i = v.inputs, e = v.expected;
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, round: i.round, robust: i.robust || {} };
  const out = checkRound('onebyte_round', 'round', { ...cfg, strategy: { codec: 'onebyte', ...i.strategy } }, i.results, lrFor(v), e);
  if (out) { const ss = {}; for (const c of out.contribs) ss[c.client] = str(c.keys); eq(S, 'onebyte_round', 'sample seeds', ss, e.sample_seeds); }
  refuses(S, 'onebyte_round', 'wrong_count (own 1-byte payload)', () => A.aggregate({ ...cfg, strategy: { codec: 'onebyte', ...i.strategy } }, [{ client: 0, num_samples: 1n, payload: Buffer.from([0x41]) }], 0.002));
}
// ---- FedKSeed-Pro ----
for (const [VEC, EXP] of [['fedkseed_pro_rounds', require('./expcr.js').expCR], ['fedkseed_pro_rounds (V8 Math.exp, informational)', Math.exp]]) {
  const v = V.fedkseed_pro_rounds, i = v.inputs, st = i.strategy;
  const pro = new A.ProState(st.num_seeds, st.importance_clip, st.temperature !== undefined ? st.temperature : 1.0 /* guessed default */, EXP);
  v.expected.rounds.forEach((e, n) => {
    const r = e.round, label = `round ${r}`;
    const { w } = pro.weights();
    const bc = A.broadcastBytes(w);
    eq(S, VEC, label + ' broadcast', U.hex(bc), e.broadcast);
    const cum = A.cumFromBroadcast(bc, st.num_seeds);
    eq(S, VEC, label + ' cum weights', str(cum), e.cum_weights.map(String));
    // encode each client's float64 scalars by the fp32 codec (f32), as the reference client does
    const results = i.clients.map(c => { const g = i.payloads[String(r)][String(c)].map(f64); const b = Buffer.alloc(4 * g.length); g.forEach((x, t) => b.writeFloatLE(x, 4 * t)); return { client: c, num_samples: 5, payload: U.hex(b) }; });
    eq(S, VEC, label + ' encoded payloads', results, e.results);
    const cfg = { strategy: st, run_seed: i.run_seed, round: r, robust: i.robust, cum };
    const lr = A.lrOf(st.lr_schedule || 'constant', st.lr, r, i.rounds);
    eq(S, VEC, label + ' lr', h64(lr), e.lr);
    const out = checkRound(VEC, label, cfg, e.results, f64(e.lr), e);
    if (!out) return;
    pro.observe(out.contribs, out.comb.clipped);
    const a = e.after_observe, nw = pro.weights();
    eq(S, VEC, label + ' abs_sum', pro.abs.map(h64), a.abs_sum);
    eq(S, VEC, label + ' count', pro.count.map(h64), a.count);
    eq(S, VEC, label + ' probabilities', nw.p.map(h64), a.probabilities);
    eq(S, VEC, label + ' integer weights', nw.w, a.integer_weights);
  });
}
{
  const v = V.fedkseed_pro_broadcast_refusals, K = v.inputs.num_seeds;
  // the vector gives the decoded cumulative weights but not the broadcast bytes: rebuild weights from differences
  const cum = v.expected.decoded.cumulative_weights.map(BigInt); const w = cum.map((c, j) => Number(j ? c - cum[j - 1] : c));
  const ok = w.every(x => x >= 1 && x <= 0xFFFFFFFF);
  check(S, 'fedkseed_pro_broadcast_refusals', 'decoded: differences are valid uint32 weights (bytes not in vector)', ok, JSON.stringify(w));
  if (ok) eq(S, 'fedkseed_pro_broadcast_refusals', 'decoded round-trip', str(A.cumFromBroadcast(A.broadcastBytes(w), K)), v.expected.decoded.cumulative_weights.map(String)); eq(S, 'fedkseed_pro_broadcast_refusals', 'broadcast bytes', Buffer.from(A.broadcastBytes(w)).toString('hex'), v.expected.decoded.broadcast);
  refuses(S, 'fedkseed_pro_broadcast_refusals', '28_bytes (own)', () => A.cumFromBroadcast(Buffer.alloc(28, 1), K));
  refuses(S, 'fedkseed_pro_broadcast_refusals', 'a_zero_weight (own)', () => A.cumFromBroadcast(A.broadcastBytes([1, 2, 0, 3, 3, 3, 3, 3]), K));
}
// ---- relayed round ----
{
  const v = V.relayed_round, i = v.inputs, e = v.expected;
  const cfg = { strategy: i.strategy, run_seed: i.run_seed, robust: {} };
  const held = { round: i.held_result.round, client: i.held_result.client, num_samples: BigInt(i.held_result.num_samples), payload: U.unhex(i.held_result.payload) };
  function receive(bytes, me, heldRes) {
    const g = P.decode('GlobalUpdate', bytes);
    if (!(g.results.length || g.own_result_omitted)) throw new Error('not relayed');
    const rs = g.results.map(x => ({ client: x.client, num_samples: x.num_samples, payload: x.payload }));
    if (g.own_result_omitted) { if (!heldRes) throw new Error('own result not held'); if (heldRes.round !== g.round) throw new Error(`held round ${heldRes.round}`); rs.push({ client: me, num_samples: heldRes.num_samples, payload: heldRes.payload }); }
    rs.sort((a, b) => a.client - b.client);
    for (let k = 1; k < rs.length; k++) if (rs[k].client === rs[k - 1].client) throw new Error(`client ${rs[k].client} twice`);
    const plan = { clients: rs.map(x => x.client), lr: g.lr, round: g.round };
    const out = A.aggregate({ ...cfg, round: g.round }, rs, g.lr);
    return { g, plan, out };
  }
  const got = receive(U.unhex(i.message), i.receiver_client, held);
  eq(S, 'relayed_round', 'plan', { clients: got.plan.clients, lr: h64(got.plan.lr), round: got.plan.round }, e.plan);
  eq(S, 'relayed_round', 'result clients in order', got.plan.clients, e.result_clients_in_order);
  const up = got.out.update;
  eq(S, 'relayed_round', 'applied', { coef_ints: str(up.entries.map(x => x.c)), kind: up.kind, seeds: str(up.entries.map(x => x.seed)), starts: null, stops: null }, e.applied);
  // coefficient form: decode the vector's bytes and compare with what we would send; and apply both
  const cf = P.decode('GlobalUpdate', U.unhex(e.coefficient_form));
  const mine = P.encode('GlobalUpdate', { round: got.g.round, kind: up.kind, coefs: Buffer.concat(up.entries.map(x => { const b = Buffer.alloc(4); b.writeFloatLE(x.coef); return b; })), pool_indices: up.entries.map(x => x.pool) });
  eq(S, 'relayed_round', 'coefficient form bytes (canonical encoding)', U.hex(mine), e.coefficient_form);
  const L = require('./t_state.js').layout, base = require('./t_state.js').base;
  const pool = R.seedPool(i.run_seed, i.strategy.num_seeds);
  const coefs = []; for (let k = 0; k < cf.coefs.length; k += 4) coefs.push(cf.coefs.readFloatLE(k));
  const a = new T.WideState(L, base); a.apply(T.seedUpdate(cf.kind, cf.pool_indices.map(j => pool[j]), coefs, cf.starts, cf.stops, L.size));
  const b = new T.WideState(L, base); b.apply({ kind: up.kind, entries: up.entries.map(x => ({ seed: x.seed, c: x.c, start: 0, stop: L.size })) });
  check(S, 'relayed_round', 'coefficient form applies the same (on the state.layout model)', a.checksum() === b.checksum() && e.coefficient_form_applies_the_same === true);
  // refusals: the vector states them without bytes; build the messages
  const g0 = P.decode('GlobalUpdate', U.unhex(i.message));
  const twice = P.encode('GlobalUpdate', { round: 2, lr: g0.lr, results: [g0.results[0], g0.results[0], g0.results[1]] });
  let why = null; try { receive(twice, 3, null); } catch (err) { why = err.message; }
  check(S, 'relayed_round', 'client_twice (own message)', why === e.client_twice.why, why);
  why = null; try { receive(U.unhex(i.message), 3, { ...held, round: 1 }); } catch (err) { why = err.message; }
  check(S, 'relayed_round', 'held_for_another_round', why === e.held_for_another_round.why, why);
  why = null; try { receive(U.unhex(i.message), 3, null); } catch (err) { why = err.message; }
  check(S, 'relayed_round', 'not_held', why === e.not_held.why, why);
}
