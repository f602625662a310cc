'use strict';
const V = require(require('path').join(__dirname, '..', '..', '..', 'docs', 'spec', 'conformance.json')).randomness;
const R = require('./rng.js');
const { sha256, hex } = require('./util.js');
const { check, eq, skip, refuses } = require('./check.js');
const S = 'randomness';

for (const c of V.splitmix64) eq(S, 'splitmix64', c.x, R.splitmix64(BigInt(c.x)).toString(), c.out);
for (const c of V.mix32) eq(S, 'mix32', c.x, R.mix32(c.x), c.out);
for (const c of V.seed_keys) { const k = R.seedKeys(c.seed); eq(S, 'seed_keys', c.seed, [k.a, k.b], [c.key_a, c.key_b]); }
refuses(S, 'seed_keys', 'refuse 2^63', () => R.seedKeys(1n << 63n));
for (const c of V.word_hash) eq(S, 'word_hash', `${c.seed}/${c.word}`, R.wordHash(R.seedKeys(c.seed), c.word), c.out);

// Gaussian table from runs
const gt = V.gaussian_table;
const G = R.gaussianTable(gt.runs);
const gb = Buffer.from(G.buffer.slice(0));
eq(S, 'gaussian_table', 'sha256', hex(sha256(gb)), gt.sha256);
let sq = 0n, mono = true, sym = true, maxAbs = 0;
for (let u = 0; u < 65536; u++) { sq += BigInt(G[u]) * BigInt(G[u]); if (u && G[u] < G[u - 1]) mono = false; if (G[65535 - u] !== -G[u]) sym = false; maxAbs = Math.max(maxAbs, Math.abs(G[u])); }
eq(S, 'gaussian_table', 'second moment', sq.toString(), gt.second_moment_times_65536);
check(S, 'gaussian_table', 'nondecreasing, antisymmetric, max 1107', mono && sym && maxAbs === 1107, `${mono} ${sym} ${maxAbs}`);
eq(S, 'gaussian_table', 'entries', G.length, gt.entries);

for (const c of V.directions) {
  const k = R.seedKeys(c.seed);
  eq(S, 'directions', `rademacher seed ${c.seed}`, c.indices.map(i => R.zInt('rademacher', k, i)), c.rademacher);
  eq(S, 'directions', `gaussian seed ${c.seed}`, c.indices.map(i => R.zInt('gaussian', k, i)), c.gaussian);
}
// directions_block: the vector does not say what bytes are hashed; try plausible encodings.
{
  const b = V.directions_block, k = R.seedKeys(b.seed);
  const tries = {};
  for (const kind of ['rademacher', 'gaussian']) {
    const z = R.zRange(kind, k, b.first_index, b.first_index + b.count);
    const unit = kind === 'gaussian' ? 1 / 256 : 1;
    const enc = {
      int8: Buffer.from(Int8Array.from(z).buffer), int16le: Buffer.from(Int16Array.from(z).buffer),
      int32le: Buffer.from(Int32Array.from(z).buffer), int64le: Buffer.from(BigInt64Array.from(Array.from(z, BigInt)).buffer),
      f32le_z: Buffer.from(Float32Array.from(z, x => x * unit).buffer), f64le_z: Buffer.from(Float64Array.from(z, x => x * unit).buffer),
      f32le_zint: Buffer.from(Float32Array.from(z).buffer),
    };
    const want = b[kind + '_sha256'];
    const hit = Object.keys(enc).filter(e => hex(sha256(enc[e])) === want);
    tries[kind] = hit;
    check(S, 'directions_block', kind, hit.length > 0, hit.length ? `matched encoding ${hit.join(',')}` : 'no guessed encoding matched');
  }
  module.exports.blockEncodings = tries;
}
for (const c of V.derive) {
  eq(S, 'derive', `derive(${c.parts})`, R.derive(...c.parts).toString(), c.out);
  eq(S, 'derive', `derive_seed(${c.parts})`, R.deriveSeed(...c.parts).toString(), c.derive_seed);
}
for (const c of V.uniform_index) eq(S, 'uniform_index', `${c.k}:${c.parts}`, R.uniformIndex(c.k, ...c.parts), c.out);
{
  const w = V.weighted_index;
  for (const d of w.draws) { const r = R.weightedIndex(w.cumulative, ...d.parts); eq(S, 'weighted_index', `${d.parts}`, [r.index, Number(r.u)], [d.out, d.u]); }
}
{
  const p = V.seed_pool;
  eq(S, 'seed_pool', `K=${p.k}`, R.seedPool(p.master_seed, p.k).map(String), p.seeds);
}
for (const c of V.sample_clients) skip(S, 'sample_clients', `round ${c.round} attempt ${c.attempt}`, 'needs numpy PCG64/SeedSequence/choice: not specified in the spec');
