'use strict';
// randomness.md: splitmix64, keys, word hash, directions, Gaussian table, derive, pools.
const { M64, sha256 } = require('./util.js');
const M32n = 0xFFFFFFFFn;

function splitmix64(x) {
  x = (BigInt(x) + 0x9E3779B97F4A7C15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94D049BB133111EBn) & M64;
  return x ^ (x >> 31n);
}
function mix32(x) { // x: Number in [0, 2^32)
  x = x >>> 0;
  x = (x ^ (x >>> 16)) >>> 0; x = Math.imul(x, 0x7FEB352D) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0; x = Math.imul(x, 0x2C1B3C6D) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}
function seedKeys(seed) {
  seed = BigInt(seed);
  if (seed < 0n || seed > (1n << 63n) - 1n) throw new Error('seed out of range');
  const k = splitmix64(seed);
  return { a: Number(k & M32n), b: Number(k >> 32n) };
}
function wordHash(keys, j) { // j BigInt word index
  j = BigInt(j);
  const lo = Number(j & M32n), hi = Number((j >> 32n) & M32n);
  return mix32((mix32((lo ^ keys.a) >>> 0) ^ hi ^ keys.b) >>> 0);
}
let G = null;
function gaussianTable(runs) {
  if (G) return G;
  G = new Int32Array(65536); let u = 0;
  for (const [v, c] of runs) for (let i = 0; i < c; i++) G[u++] = v;
  if (u !== 65536) throw new Error('table length ' + u);
  return G;
}
// z_int of element i (BigInt or Number) for a kind
function zInt(kind, keys, i) {
  i = BigInt(i);
  if (kind === 'rademacher') { const h = wordHash(keys, i >> 5n); return ((h >>> Number(i & 31n)) & 1) ? -1 : 1; }
  if (kind === 'gaussian') { const h = wordHash(keys, i >> 1n); return G[(h >>> (16 * Number(i & 1n))) & 0xFFFF]; }
  throw new Error('kind ' + kind);
}
// a whole range [start, stop) as Int32Array (fast path: one hash per word)
function zRange(kind, keys, start, stop) {
  const out = new Int32Array(stop - start);
  for (let i = start; i < stop; i++) {
    if (kind === 'rademacher') { const h = wordHash(keys, BigInt(i >>> 5)); out[i - start] = ((h >>> (i & 31)) & 1) ? -1 : 1; }
    else if (kind === 'gaussian') { const h = wordHash(keys, BigInt(i >>> 1)); out[i - start] = G[(h >>> (16 * (i & 1))) & 0xFFFF]; }
    else throw new Error('kind ' + kind);
  }
  return out;
}
function derive(...parts) {
  let h = 0x6A09E667F3BCC908n;
  for (const p of parts) { const q = BigInt(p); if (q < 0n) throw new Error('negative part'); h = splitmix64(h ^ (q & M64)); }
  return h;
}
const deriveSeed = (...p) => derive(...p) & ((1n << 63n) - 1n);
const uniformIndex = (k, ...p) => Number(derive(...p) % BigInt(k));
function weightedIndex(cum, ...p) { // cum: array of BigInt/Number cumulative weights
  const c = cum.map(BigInt); const u = derive(...p) % c[c.length - 1];
  for (let j = 0; j < c.length; j++) if (c[j] > u) return { index: j, u };
  throw new Error('unreachable');
}
const seedPool = (runSeed, K) => Array.from({ length: K }, (_, j) => deriveSeed(runSeed, 0x9001, j));

module.exports = { splitmix64, mix32, seedKeys, wordHash, gaussianTable, zInt, zRange, derive, deriveSeed, uniformIndex, weightedIndex, seedPool };
